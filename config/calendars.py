"""The [calendars] settings (issue 15 §3): the skill that answers 7×24, where a caller goes who
declines an after-hours callback (or cannot have one), and how long such a callback stays due
after the skill opens. The calendars themselves are data (cti.db.calendars), edited in the
console or with `hotline calendars`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SKILL = re.compile(r"[a-z][a-z0-9_-]{0,31}")  # config.settings.SKILL_PATTERN


@dataclass(frozen=True)
class CalendarSettings:
    always_open: str = "general"
    callback_hours: int = 4


def calendar_settings(raw: Mapping[str, Any]) -> CalendarSettings:
    """Build from the [calendars] table; unknown keys and bad values raise ValueError."""
    if not isinstance(raw, Mapping):
        raise ValueError("[calendars] must be a table")
    unknown = set(raw) - {"always_open", "callback_hours"}
    if unknown:
        raise ValueError(f"[calendars] unknown keys {sorted(unknown)}")
    values: dict[str, Any] = {}
    if "always_open" in raw:
        v = raw["always_open"]
        if not isinstance(v, str) or not SKILL.fullmatch(v):
            raise ValueError("[calendars] always_open must be a skill's name")
        values["always_open"] = v
    if "callback_hours" in raw:
        v = raw["callback_hours"]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 72:
            raise ValueError("[calendars] callback_hours must be a whole number from 1 to 72")
        values["callback_hours"] = v
    return CalendarSettings(**values)
