"""Service hours per skill (服务时间, issue 15 §3): weekly hours, holidays and special days, and
what a call for a closed skill does (route to an open skill, or a callback). Pure: no I/O.

The 95598 line itself answers 7×24; a skill without a calendar is always open. A calendar has
open intervals for each weekday (local wall-clock time in the center's time zone, `[ivr]
timezone`) and dated exceptions: a holiday (closed all day) or a special day (its own
intervals), either replacing that date's weekday hours. An interval whose end is not after its
start runs past midnight (22:00-06:00) and belongs to the day it starts on: 02:00 on a holiday
that follows an ordinary Monday's 22:00-06:00 is open. Time is judged on the wall clock, so a
zone's summer time moves nothing.

When a skill is closed, `decide` follows its after-hours action: `route` sends the call to
another skill only if that skill is open now (a closed target's own `route` is followed, at
most MAX_HOPS hops, never round a loop); otherwise, or with `callback`, the caller is offered a
callback for when the skill opens (declined: the always-open skill). Loops are refused when a
calendar is stored (`check_routes`), so the hop limit is only a guard.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

DAY_MIN = 24 * 60
MAX_HOPS = 3
SEARCH_DAYS = 400  # how far `opens_at` looks (a year of holidays, and some)
AFTER_HOURS: tuple[str, ...] = ("route", "callback")
DAY_KINDS: tuple[str, ...] = ("holiday", "special")
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"([01]?[0-9]|2[0-4]):([0-5][0-9])")


class CalendarError(ValueError):
    """A calendar that cannot be kept; the message says why (for a 400, or the CLI)."""


@dataclass(frozen=True, order=True)
class Interval:
    """Open from `start` to `end`, in minutes from local midnight. end <= start: runs past
    midnight to `end` on the next day. 0-1440 is the whole day."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not (0 <= self.start < DAY_MIN and 0 <= self.end <= DAY_MIN):
            raise CalendarError(f"{self} is not within one day (00:00-24:00)")
        if self.start == self.end:
            raise CalendarError(f"{self} is empty")

    @property
    def crosses(self) -> bool:
        return self.end <= self.start

    @property
    def length(self) -> int:
        return self.end - self.start + (DAY_MIN if self.crosses else 0)

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"


def _minutes(text: str) -> int:
    m = _HHMM.fullmatch(text.strip())
    if m is None:
        raise CalendarError(f"{text.strip()!r} is not a time: HH:MM, 00:00 to 24:00")
    v = int(m[1]) * 60 + int(m[2])
    if v > DAY_MIN:
        raise CalendarError(f"{text.strip()!r} is after 24:00")
    return v


def parse_hours(text: str) -> tuple[Interval, ...]:
    """'08:00-12:00,13:30-20:00' (any order), '22:00-06:00' (past midnight), '24h' (all day),
    '' or 'closed' (none). Overlapping intervals are refused."""
    text = text.strip().lower()
    if text in ("", "closed", "-"):
        return ()
    if text in ("24h", "00:00-24:00"):
        return (Interval(0, DAY_MIN),)
    out: list[Interval] = []
    for part in text.split(","):
        a, sep, b = part.partition("-")
        if not sep:
            raise CalendarError(f"{part.strip()!r} is not an interval: HH:MM-HH:MM")
        start, end = _minutes(a), _minutes(b)
        if start == DAY_MIN:
            raise CalendarError(f"{part.strip()!r} starts at 24:00: write 00:00")
        if start == end:
            raise CalendarError(f"{part.strip()!r} is empty")
        out.append(Interval(start, end))
    return check_hours(out)


def check_hours(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """The intervals sorted, or CalendarError when two overlap (a past-midnight one counts
    into the next day)."""
    ivs = tuple(sorted(intervals))
    spans = sorted((iv.start, iv.start + iv.length) for iv in ivs)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise CalendarError(f"hours {format_hours(ivs)} overlap")
    # a past-midnight interval must not run into the same day's first hours of the next day
    if spans and spans[-1][1] > DAY_MIN and spans[-1][1] - DAY_MIN > spans[0][0]:
        raise CalendarError(f"hours {format_hours(ivs)} overlap across midnight")
    if sum(iv.length for iv in ivs) > DAY_MIN:
        raise CalendarError(f"hours {format_hours(ivs)} are longer than a day")
    return ivs


def format_hours(intervals: Iterable[Interval]) -> str:
    """parse_hours' text: 'closed' for none, '24h' for the whole day."""
    ivs = tuple(intervals)
    if not ivs:
        return "closed"
    if ivs == (Interval(0, DAY_MIN),):
        return "24h"
    return ",".join(str(iv) for iv in ivs)


@dataclass(frozen=True)
class SpecialDay:
    """A dated exception: a holiday (closed) or a special day with its own hours."""

    day: date
    kind: str
    hours: tuple[Interval, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in DAY_KINDS:
            raise CalendarError(f"a day is one of {', '.join(DAY_KINDS)}, not {self.kind!r}")
        if self.kind == "holiday" and self.hours:
            raise CalendarError("a holiday is closed all day: give a special day for hours")
        if self.kind == "special" and not self.hours:
            raise CalendarError("a special day needs its hours (a closed day is a holiday)")


@dataclass(frozen=True)
class Calendar:
    """A skill's service hours: `week[0]` Monday .. `week[6]` Sunday, and dated exceptions."""

    skill: str
    week: tuple[tuple[Interval, ...], ...]
    after_hours: str = "callback"
    route_to: str | None = None
    days: Mapping[date, SpecialDay] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.week) != 7:
            raise CalendarError("a week has 7 days, Monday first")
        for hours in self.week:
            check_hours(hours)
        if self.after_hours not in AFTER_HOURS:
            raise CalendarError(f"after hours is one of {', '.join(AFTER_HOURS)}, not "
                                f"{self.after_hours!r}")
        if self.after_hours == "route" and not self.route_to:
            raise CalendarError("after hours 'route' needs the skill to route to")
        if self.after_hours == "callback" and self.route_to:
            raise CalendarError("after hours 'callback' routes nowhere: leave route_to out")
        if self.route_to == self.skill:
            raise CalendarError(f"{self.skill} cannot route to itself")

    def hours_on(self, day: date) -> tuple[Interval, ...]:
        special = self.days.get(day)
        return special.hours if special is not None else self.week[day.weekday()]

    def is_open(self, now: datetime, tz: tzinfo) -> bool:
        local = _local(now, tz)
        t = local.hour * 60 + local.minute
        today, yesterday = local.date(), local.date() - timedelta(days=1)
        if any(t >= iv.start if iv.crosses else iv.start <= t < iv.end
               for iv in self.hours_on(today)):
            return True
        return any(iv.crosses and t < iv.end for iv in self.hours_on(yesterday))

    def opens_at(self, now: datetime, tz: tzinfo) -> datetime | None:
        """`now` when open; else the next opening (local time), None when none is within
        SEARCH_DAYS."""
        if self.is_open(now, tz):
            return _local(now, tz)
        local = _local(now, tz)
        for n in range(SEARCH_DAYS):
            day = local.date() + timedelta(days=n)
            for iv in self.hours_on(day):
                at = datetime.combine(day, time(iv.start // 60, iv.start % 60), tzinfo=tz)
                if at.replace(tzinfo=None) > local.replace(tzinfo=None):
                    return at
        return None


def _local(now: datetime, tz: tzinfo) -> datetime:
    if now.tzinfo is None:
        raise ValueError("naive datetime: give an aware one")
    return now.astimezone(tz)


@dataclass(frozen=True)
class Decision:
    """Where a call for `skill` goes now. action: `open` (as asked), `route` (to `target`, an
    open skill), `callback` (offer one for `opens_at`; declined: the always-open skill)."""

    skill: str
    action: str
    target: str
    opens_at: datetime | None = None
    hops: tuple[str, ...] = ()

    @property
    def open(self) -> bool:
        return self.action == "open"


def decide(calendars: Mapping[str, Calendar], skill: str, now: datetime,
           tz: tzinfo) -> Decision:
    """Where a call for `skill` goes at `now` (aware)."""
    cal = calendars.get(skill)
    if cal is None or cal.is_open(now, tz):
        return Decision(skill, "open", skill)
    opens = cal.opens_at(now, tz)
    seen: set[str] = {skill}
    hops: list[str] = []
    cur = cal
    while len(hops) < MAX_HOPS and cur.after_hours == "route" and cur.route_to \
            and cur.route_to not in seen:
        target = cur.route_to
        seen.add(target)
        hops.append(target)
        nxt = calendars.get(target)
        if nxt is None or nxt.is_open(now, tz):
            return Decision(skill, "route", target, opens, tuple(hops))
        cur = nxt
    return Decision(skill, "callback", skill, opens, tuple(hops))


def check_routes(calendars: Mapping[str, Calendar], *, skills: Iterable[str] | None = None,
                 always_open: str | None = None) -> None:
    """CalendarError for a route to an unknown skill, a calendar on the always-open skill, or
    a loop of routes (a → b → a)."""
    known = set(skills) if skills is not None else None
    for cal in calendars.values():
        if always_open is not None and cal.skill == always_open:
            raise CalendarError(f"{always_open} is the 7×24 skill ([calendars] always_open): "
                                "it has no service hours")
        if known is not None and cal.skill not in known:
            raise CalendarError(f"no skill {cal.skill!r}")
        if cal.route_to and known is not None and cal.route_to not in known:
            raise CalendarError(f"{cal.skill} routes to {cal.route_to!r}, which is no skill")
    for start in calendars:
        seen = [start]
        cur = calendars[start]
        while cur.route_to:
            if cur.route_to in seen:
                raise CalendarError("routes go round in a loop: "
                                    + " → ".join([*seen[seen.index(cur.route_to):],
                                                  cur.route_to]))
            seen.append(cur.route_to)
            nxt = calendars.get(cur.route_to)
            if nxt is None:
                break
            cur = nxt
