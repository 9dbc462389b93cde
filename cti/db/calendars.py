"""The skills' service hours (服务时间, issue 15 §3): each skill's weekly hours and after-hours
action, and its holidays and special days. The IVR reads them at every transfer (`load`), so
a change is heard from the next call on, without a restart; each change from the console or
the CLI is one unit of work with its audit line. What they mean (open or not, where a closed
skill's calls go) is acd.calendar's; every change is checked by it first, and a change that
would make the routes go round a loop, or route to a skill that does not exist, is refused."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from acd.calendar import (
    WEEKDAYS,
    Calendar,
    CalendarError,
    SpecialDay,
    check_routes,
    format_hours,
    parse_hours,
)
from cti.db import web_audit
from cti.db.models_calendars import CalendarDay, SkillCalendar
from cti.db.staff import skill_names
from cti.db.web_audit import AuditEntry

P = ParamSpec("P")
R = TypeVar("R")


class NoCalendar(LookupError):
    """That skill has no calendar (it is open 7×24), or that day is not on it."""


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("naive datetime")
    return now.astimezone(UTC)


def _week(raw: Mapping[str, str]) -> tuple[tuple[Any, ...], ...]:
    unknown = set(raw) - set(WEEKDAYS)
    if unknown:
        raise CalendarError(f"unknown weekdays {sorted(unknown)}: {', '.join(WEEKDAYS)}")
    out = []
    for name in WEEKDAYS:
        try:
            out.append(parse_hours(raw.get(name, "")))
        except CalendarError as exc:
            raise CalendarError(f"{name}: {exc}") from None
    return tuple(out)


def _calendar(row: SkillCalendar, days: list[CalendarDay]) -> Calendar:
    return Calendar(row.skill, _week(row.week), row.after_hours, row.route_to,
                    {d.day: SpecialDay(d.day, d.kind, parse_hours(d.hours), d.note)
                     for d in days})


def calendars_of(s: Session) -> dict[str, Calendar]:
    """Every skill's calendar (a skill without one is open 7×24)."""
    days: dict[str, list[CalendarDay]] = {}
    for d in s.scalars(select(CalendarDay)):
        days.setdefault(d.skill, []).append(d)
    return {r.skill: _calendar(r, days.get(r.skill, []))
            for r in s.scalars(select(SkillCalendar))}


def load(sessions: sessionmaker[Session]) -> dict[str, Calendar]:
    """calendars_of in a unit of work of its own (the IVR's way in, on a worker thread)."""
    with sessions() as s:
        return calendars_of(s)


def set_calendar(s: Session, skill: str, week: Mapping[str, str], *, after_hours: str,
                 route_to: str | None, by: str, now: datetime, always_open: str) -> Calendar:
    """Create or replace a skill's weekly hours and after-hours action (its days are kept).
    CalendarError says what is wrong (bad hours, an unknown skill, a loop of routes)."""
    existing = calendars_of(s)
    days = existing[skill].days if skill in existing else {}
    cal = Calendar(skill, _week(week), after_hours, route_to or None, days)
    check_routes({**existing, skill: cal}, skills=skill_names(s), always_open=always_open)
    text = {name: format_hours(hours) for name, hours in zip(WEEKDAYS, cal.week, strict=True)
            if hours}
    row = s.get(SkillCalendar, skill)
    if row is None:
        s.add(SkillCalendar(skill=skill, week=text, after_hours=after_hours,
                            route_to=cal.route_to, updated_by=by[:64], updated_at=_aware(now)))
    else:
        row.week, row.after_hours, row.route_to = text, after_hours, cal.route_to
        row.updated_by, row.updated_at = by[:64], _aware(now)
    s.flush()
    return cal


def remove_calendar(s: Session, skill: str) -> None:
    """Drop a skill's calendar and its days: it is open 7×24 again. A calendar that another
    routes to may go (that route then finds the skill open)."""
    s.execute(delete(CalendarDay).where(CalendarDay.skill == skill))
    if not s.execute(delete(SkillCalendar).where(SkillCalendar.skill == skill)).rowcount:  # type: ignore[attr-defined]
        raise NoCalendar(f"{skill} has no calendar (it is open 7×24)")


def set_day(s: Session, skill: str, day: date, *, kind: str, hours: str, note: str, by: str,
            now: datetime) -> SpecialDay:
    """Make `day` a holiday (closed) or a special day with its own hours, replacing what that
    day was. NoCalendar: the skill has none (it is open every day anyway)."""
    if s.get(SkillCalendar, skill) is None:
        raise NoCalendar(f"{skill} has no calendar (it is open 7×24): set its hours first")
    special = SpecialDay(day, kind, parse_hours(hours), note)
    row = s.get(CalendarDay, (skill, day))
    text = format_hours(special.hours)
    if row is None:
        s.add(CalendarDay(skill=skill, day=day, kind=kind, hours=text, note=note[:64],
                          added_by=by[:64], added_at=_aware(now)))
    else:
        row.kind, row.hours, row.note = kind, text, note[:64]
        row.added_by, row.added_at = by[:64], _aware(now)
    s.flush()
    return special


def remove_day(s: Session, skill: str, day: date) -> None:
    """The day follows its weekday's hours again."""
    if not s.execute(delete(CalendarDay).where(CalendarDay.skill == skill,
                                               CalendarDay.day == day)).rowcount:  # type: ignore[attr-defined]
        raise NoCalendar(f"{day.isoformat()} is no holiday or special day of {skill}")


def listing(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    """Every calendar, by skill: its week (a day left out is closed), after-hours action, who
    changed it last and when, and its days in date order."""
    with sessions() as s:
        days: dict[str, list[dict[str, Any]]] = {}
        for d in s.scalars(select(CalendarDay).order_by(CalendarDay.day)):
            days.setdefault(d.skill, []).append(
                {"day": d.day.isoformat(), "kind": d.kind, "hours": d.hours, "note": d.note,
                 "added_by": d.added_by, "added_at": d.added_at})
        return [{"skill": r.skill, "week": {n: r.week.get(n, "closed") for n in WEEKDAYS},
                 "after_hours": r.after_hours, "route_to": r.route_to,
                 "updated_by": r.updated_by, "updated_at": r.updated_at,
                 "days": days.get(r.skill, [])}
                for r in s.scalars(select(SkillCalendar).order_by(SkillCalendar.skill))]


def audited(sessions: sessionmaker[Session], entry: AuditEntry,
            fn: Callable[Concatenate[Session, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
    """One change (set_calendar, remove_calendar, set_day, remove_day) and its audit line in
    one unit of work: neither is kept without the other."""
    with sessions.begin() as s:
        out = fn(s, *args, **kwargs)
        web_audit.add(s, entry)
    return out
