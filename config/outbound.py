"""The [outbound] settings: the outbound engine's call window, pacing, retries and return
visits (issue 14). The engine runs only where [pbx] outbound_trunk names the carrier; parsed
and checked once at startup."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from outbound.pacing import Pacing
from outbound.retry import RetryPolicy
from outbound.window import CallWindow, NeverOpen


@dataclass(frozen=True)
class OutboundSettings:
    enabled: bool = True
    # local hours (the IVR's time zone) in which calls may be placed, and days without any
    window_opens: str = "08:00"
    window_closes: str = "21:00"
    quiet_days: tuple[str, ...] = ()          # "2027-02-06", ...
    quiet_weekdays: tuple[int, ...] = ()      # 0 Monday .. 6 Sunday
    # pacing: calls at once per purpose, and trunk channels kept free for inbound callers
    max_concurrent: int = 4
    trunk_channels: int = 30
    reserve_channels: int = 2
    ring_s: float = 30.0
    # retries on no answer, busy, rejected or failed
    max_attempts: int = 3
    backoff_min: tuple[float, ...] = (15.0, 60.0)
    busy_backoff_min: float = 5.0
    # a resolved repair or complaint is visited this long after
    return_visit_delay_min: float = 60.0
    # a planned outage's affected important customers are called this many days before it
    # starts (issue 14 §4); [] calls nobody
    outage_notice_days: tuple[int, ...] = (7, 1)
    tick_s: float = 1.0
    timezone: str = field(default="Asia/Shanghai", compare=False)

    def window(self) -> CallWindow:
        # "24:00" closes at the end of the day ("00:00"-"24:00": any hour, quiet days aside)
        closes = time.max if self.window_closes == "24:00" else time.fromisoformat(
            self.window_closes)
        return CallWindow(opens=time.fromisoformat(self.window_opens), closes=closes,
                          tz=ZoneInfo(self.timezone),
                          quiet_days=frozenset(date.fromisoformat(d) for d in self.quiet_days),
                          quiet_weekdays=frozenset(self.quiet_weekdays))

    def retry(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts,
                           backoff_s=tuple(m * 60 for m in self.backoff_min),
                           busy_backoff_s=self.busy_backoff_min * 60)

    def pacing(self) -> Pacing:
        return Pacing(max_concurrent=self.max_concurrent, reserve_channels=self.reserve_channels)

    @property
    def return_visit_delay(self) -> timedelta:
        return timedelta(minutes=self.return_visit_delay_min)


KNOWN = frozenset(OutboundSettings.__dataclass_fields__) - {"timezone"}


def _number(raw: Mapping[str, Any], key: str, default: float, *, whole: bool = False,
            low: float = 0) -> Any:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            whole and not isinstance(value, int)) or value < low:
        what = "a whole number" if whole else "a number"
        raise ValueError(f"[outbound] {key} must be {what} of at least {low:g}, not {value!r}")
    return value if whole else float(value)


def outbound_settings(raw: Mapping[str, Any], timezone: str = "Asia/Shanghai"
                      ) -> OutboundSettings:
    """Build from the [outbound] table; unknown keys and bad values raise ValueError (the
    settings loader turns it into SettingsError with the file name)."""
    if not isinstance(raw, Mapping):
        raise ValueError("[outbound] must be a table")
    unknown = set(raw) - KNOWN
    if unknown:
        raise ValueError(f"[outbound]: unknown setting(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(KNOWN))}")
    d = OutboundSettings()
    enabled = raw.get("enabled", d.enabled)
    if not isinstance(enabled, bool):
        raise ValueError(f"[outbound] enabled must be true or false, not {enabled!r}")
    backoff = raw.get("backoff_min", list(d.backoff_min))
    if (not isinstance(backoff, list) or not backoff
            or any(isinstance(b, bool) or not isinstance(b, int | float) or b < 0
                   for b in backoff)):
        raise ValueError(f"[outbound] backoff_min must be a list of minutes, not {backoff!r}")
    notice_days = raw.get("outage_notice_days", list(d.outage_notice_days))
    if not isinstance(notice_days, list) or any(
            isinstance(x, bool) or not isinstance(x, int) or not 1 <= x <= 30
            for x in notice_days):
        raise ValueError("[outbound] outage_notice_days must be a list of whole days, 1 to 30, "
                         f"not {notice_days!r}")
    days = raw.get("quiet_days", [])
    weekdays = raw.get("quiet_weekdays", [])
    if not isinstance(days, list) or not all(isinstance(x, str) for x in days):
        raise ValueError(f"[outbound] quiet_days must be a list of dates, not {days!r}")
    if not isinstance(weekdays, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in weekdays):
        raise ValueError(f"[outbound] quiet_weekdays must be a list of 0-6, not {weekdays!r}")
    s = OutboundSettings(
        enabled=enabled,
        window_opens=str(raw.get("window_opens", d.window_opens)),
        window_closes=str(raw.get("window_closes", d.window_closes)),
        quiet_days=tuple(days), quiet_weekdays=tuple(weekdays),
        max_concurrent=_number(raw, "max_concurrent", d.max_concurrent, whole=True),
        trunk_channels=_number(raw, "trunk_channels", d.trunk_channels, whole=True, low=1),
        reserve_channels=_number(raw, "reserve_channels", d.reserve_channels, whole=True),
        ring_s=_number(raw, "ring_s", d.ring_s, low=5),
        max_attempts=_number(raw, "max_attempts", d.max_attempts, whole=True, low=1),
        backoff_min=tuple(float(b) for b in backoff),
        busy_backoff_min=_number(raw, "busy_backoff_min", d.busy_backoff_min),
        return_visit_delay_min=_number(raw, "return_visit_delay_min",
                                       d.return_visit_delay_min),
        outage_notice_days=tuple(sorted(set(notice_days), reverse=True)),
        tick_s=_number(raw, "tick_s", d.tick_s, low=0.1),
        timezone=timezone)
    try:
        s.window()
    except (ValueError, NeverOpen) as exc:
        raise ValueError(f"[outbound] call window: {exc}") from None
    return s
