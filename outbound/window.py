"""Call windows: no outbound call outside the permitted local hours (default 08:00-21:00, the
center's own time zone) or on a configured quiet day (a holiday, a date) or weekday.

A window that closes before it opens (22:00-06:00) runs over midnight. The window judges the
moment a call is placed; a call already in progress at closing time is not cut off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
SEARCH_DAYS = 400  # how far next_open looks before it gives up (a year of quiet days, and some)


class NeverOpen(ValueError):
    """The window has no open moment within SEARCH_DAYS (every day quiet, or opens == closes)."""


@dataclass(frozen=True)
class CallWindow:
    opens: time = time(8, 0)
    closes: time = time(21, 0)
    tz: ZoneInfo = SHANGHAI
    quiet_days: frozenset[date] = field(default_factory=frozenset)
    quiet_weekdays: frozenset[int] = field(default_factory=frozenset)  # 0 Monday .. 6 Sunday

    def __post_init__(self) -> None:
        if self.opens == self.closes:
            raise NeverOpen(f"a call window that opens and closes at {self.opens} is never open")
        bad = [d for d in self.quiet_weekdays if not 0 <= d <= 6]
        if bad:
            raise ValueError(f"quiet weekdays are 0 (Monday) to 6 (Sunday), not {bad}")

    @property
    def over_midnight(self) -> bool:
        return self.closes < self.opens

    def _quiet(self, day: date) -> bool:
        return day in self.quiet_days or day.weekday() in self.quiet_weekdays

    def _local(self, at: datetime) -> datetime:
        if at.tzinfo is None:
            raise ValueError(f"{at} has no time zone: a call window needs an aware time")
        return at.astimezone(self.tz)

    def _opening_day(self, local: datetime) -> date | None:
        """The day whose window `local` falls in, or None when it is outside every window.
        Past midnight in an over-midnight window, that is yesterday's window."""
        t = local.time()
        if not self.over_midnight:
            return local.date() if self.opens <= t < self.closes else None
        if t >= self.opens:
            return local.date()
        if t < self.closes:
            return local.date() - timedelta(days=1)
        return None

    def allows(self, at: datetime) -> bool:
        """May a call be placed at `at` (any time zone)?"""
        day = self._opening_day(self._local(at))
        return day is not None and not self._quiet(day)

    def next_open(self, at: datetime) -> datetime:
        """The first moment at or after `at` when a call may be placed, in the window's zone."""
        local = self._local(at)
        if self.allows(local):
            return local
        start = local.date() - timedelta(days=1)
        for n in range(SEARCH_DAYS):
            day = start + timedelta(days=n)
            if self._quiet(day):
                continue
            opening = datetime.combine(day, self.opens, self.tz)
            if opening >= local:
                return opening
        raise NeverOpen(f"no open call window within {SEARCH_DAYS} days of {local:%Y-%m-%d}")

    def closes_after(self, at: datetime) -> datetime | None:
        """When the window `at` is in closes; None when `at` is outside the window."""
        local = self._local(at)
        day = self._opening_day(local)
        if day is None or self._quiet(day):
            return None
        end_day = day + timedelta(days=1) if self.over_midnight else day
        return datetime.combine(end_day, self.closes, self.tz)
