"""The [callers] settings (issue 15 §3): when agents' nuisance reports put a number on the
nuisance list by themselves (`nuisance_after` reports within `nuisance_window_days`). The
lists themselves are data (cti.db.callers), edited in the console or with `hotline callers`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class CallerSettings:
    nuisance_after: int = 3
    nuisance_window_days: int = 90

    @property
    def nuisance_window(self) -> timedelta:
        return timedelta(days=self.nuisance_window_days)


def caller_settings(raw: Mapping[str, Any]) -> CallerSettings:
    """Build from the [callers] table; unknown keys and bad values raise ValueError."""
    if not isinstance(raw, Mapping):
        raise ValueError("[callers] must be a table")
    unknown = set(raw) - {"nuisance_after", "nuisance_window_days"}
    if unknown:
        raise ValueError(f"[callers] unknown keys {sorted(unknown)}")
    values = {}
    for name, low in (("nuisance_after", 1), ("nuisance_window_days", 1)):
        if name in raw:
            v = raw[name]
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"[callers] {name} must be a whole number of at least {low}")
            values[name] = v
    return CallerSettings(**values)
