"""The [outages] settings: incident detection's threshold, window and mode; parsed and checked
once at startup (outages.incidents.DetectionSettings is what they build)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from outages.incidents import DetectionSettings, Mode


@dataclass(frozen=True)
class OutageSettings:
    # N fault reports from one feeder or 台区 within the window open a suspected outage
    detect_threshold: int = 5
    detect_window_min: float = 15.0
    # 'confirm': callers hear a suspected outage once a supervisor confirms it; 'auto': at once
    detect_mode: str = Mode.CONFIRM.value
    # false: fault reports are not counted and the hotline opens no outage on its own (they
    # are still linked into the notices that supervisors publish)
    detect: bool = True

    def detection(self) -> DetectionSettings | None:
        """What incident detection runs with; None when it is off."""
        if not self.detect:
            return None
        return DetectionSettings(threshold=self.detect_threshold,
                                 window=timedelta(minutes=self.detect_window_min),
                                 mode=Mode(self.detect_mode))


KNOWN = frozenset(OutageSettings.__dataclass_fields__)


def _int(raw: Mapping[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"[outages] {key} must be a whole number, not {value!r}")
    return value


def _minutes(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"[outages] {key} must be a number of minutes, not {value!r}")
    return float(value)


def outage_settings(raw: Mapping[str, Any]) -> OutageSettings:
    """Build from the [outages] table; unknown keys and bad values raise ValueError (the
    settings loader turns it into SettingsError with the file name)."""
    if not isinstance(raw, Mapping):
        raise ValueError("[outages] must be a table")
    unknown = set(raw) - KNOWN
    if unknown:
        raise ValueError(f"[outages]: unknown setting(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(KNOWN))}")
    d = OutageSettings()
    mode = raw.get("detect_mode", d.detect_mode)
    if mode not in {m.value for m in Mode}:
        raise ValueError(f"[outages] detect_mode must be 'confirm' or 'auto', not {mode!r}")
    detect = raw.get("detect", d.detect)
    if not isinstance(detect, bool):
        raise ValueError(f"[outages] detect must be true or false, not {detect!r}")
    s = OutageSettings(detect_threshold=_int(raw, "detect_threshold", d.detect_threshold),
                       detect_window_min=_minutes(raw, "detect_window_min",
                                                  d.detect_window_min),
                       detect_mode=str(mode), detect=detect)
    if s.detect_threshold < 2:
        raise ValueError(f"[outages] detect_threshold must be at least 2 reports, not "
                         f"{s.detect_threshold} (one report is one household's fault)")
    if not 0 < s.detect_window_min <= 24 * 60:
        raise ValueError(f"[outages] detect_window_min must be more than 0 and at most 1440 "
                         f"(a day), not {s.detect_window_min:g}")
    return s
