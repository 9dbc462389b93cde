"""acd/calendar.py: service hours per skill, holidays, special days, and where a call for a
closed skill goes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from acd.calendar import (
    Calendar,
    CalendarError,
    Interval,
    SpecialDay,
    check_routes,
    decide,
    format_hours,
    parse_hours,
)

SH = ZoneInfo("Asia/Shanghai")
DAYTIME = parse_hours("08:00-20:00")
NIGHT = parse_hours("22:00-06:00")


def at(y: int, mo: int, d: int, h: int, mi: int = 0, tz: ZoneInfo = SH) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz)


def week(hours: tuple[Interval, ...], weekend: tuple[Interval, ...] | None = None
         ) -> tuple[tuple[Interval, ...], ...]:
    return (hours,) * 5 + ((hours if weekend is None else weekend),) * 2


def test_hours_parse_and_print_back() -> None:
    assert parse_hours("13:30-20:00, 08:00-12:00") == (Interval(480, 720), Interval(810, 1200))
    assert format_hours(parse_hours("08:00-12:00,13:30-20:00")) == "08:00-12:00,13:30-20:00"
    assert parse_hours("24h") == (Interval(0, 1440),) and format_hours(parse_hours("24h")) == "24h"
    assert parse_hours("closed") == () and format_hours(()) == "closed"
    assert parse_hours("20:00-24:00") == (Interval(1200, 1440),)
    assert NIGHT[0].crosses and NIGHT[0].length == 8 * 60


@pytest.mark.parametrize(("text", "says"), [
    ("8-20", "not a time"),
    ("08:00", "not an interval"),
    ("25:00-26:00", "not a time"),
    ("08:00-08:00", "empty"),
    ("24:00-06:00", "write 00:00"),
    ("08:00-12:00,11:00-13:00", "overlap"),
    ("22:00-07:00,06:00-08:00", "overlap across midnight"),
])
def test_bad_hours_are_refused_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(CalendarError, match=says):
        parse_hours(text)


def test_weekday_hours() -> None:
    cal = Calendar("business", week(DAYTIME, weekend=()))
    # 2026-12-07 is a Monday
    assert cal.is_open(at(2026, 12, 7, 8, 0), SH)
    assert cal.is_open(at(2026, 12, 7, 19, 59), SH)
    assert not cal.is_open(at(2026, 12, 7, 20, 0), SH)
    assert not cal.is_open(at(2026, 12, 7, 7, 59), SH)
    assert not cal.is_open(at(2026, 12, 12, 10, 0), SH)  # Saturday
    # the next opening after Friday evening is Monday morning
    assert cal.opens_at(at(2026, 12, 11, 21, 0), SH) == at(2026, 12, 14, 8, 0)
    assert cal.opens_at(at(2026, 12, 7, 9, 0), SH) == at(2026, 12, 7, 9, 0)


def test_a_holiday_overrides_its_weekday_and_a_special_day_has_its_own_hours() -> None:
    cal = Calendar("business", week(DAYTIME), days={
        date(2026, 10, 1): SpecialDay(date(2026, 10, 1), "holiday", note="国庆节"),
        date(2026, 10, 10): SpecialDay(date(2026, 10, 10), "special", parse_hours("09:00-12:00"),
                                       note="调休"),
    })
    assert not cal.is_open(at(2026, 10, 1, 10), SH)                 # a Thursday, closed
    assert cal.opens_at(at(2026, 10, 1, 10), SH) == at(2026, 10, 2, 8)
    assert cal.is_open(at(2026, 10, 10, 11, 59), SH)
    assert not cal.is_open(at(2026, 10, 10, 12, 0), SH)            # not its weekday's 20:00
    assert not cal.is_open(at(2026, 10, 10, 8, 30), SH)
    assert cal.is_open(at(2026, 10, 9, 19), SH)                    # the days around: weekday


def test_special_day_and_holiday_shapes_are_checked() -> None:
    with pytest.raises(CalendarError, match="closed all day"):
        SpecialDay(date(2026, 10, 1), "holiday", DAYTIME)
    with pytest.raises(CalendarError, match="needs its hours"):
        SpecialDay(date(2026, 10, 1), "special")
    with pytest.raises(CalendarError, match="one of holiday, special"):
        SpecialDay(date(2026, 10, 1), "vacation")


def test_an_interval_across_midnight_belongs_to_the_day_it_starts() -> None:
    # open Friday and Saturday nights only
    cal = Calendar("night", ((), (), (), (), NIGHT, NIGHT, ()))
    assert cal.is_open(at(2026, 12, 11, 23), SH)       # Friday 23:00
    assert cal.is_open(at(2026, 12, 12, 5, 59), SH)    # Saturday 05:59: Friday's night
    assert not cal.is_open(at(2026, 12, 12, 6), SH)
    assert cal.is_open(at(2026, 12, 13, 2), SH)        # Sunday 02:00: Saturday's night
    assert not cal.is_open(at(2026, 12, 14, 2), SH)    # Monday 02:00: Sunday had none
    assert not cal.is_open(at(2026, 12, 11, 2), SH)    # Friday 02:00: Thursday had none
    assert cal.opens_at(at(2026, 12, 12, 7), SH) == at(2026, 12, 12, 22)
    # a holiday on the Saturday closes its own night, not Friday's that runs into it
    holiday = Calendar("night", cal.week, days={
        date(2026, 12, 12): SpecialDay(date(2026, 12, 12), "holiday")})
    assert holiday.is_open(at(2026, 12, 12, 3), SH)
    assert not holiday.is_open(at(2026, 12, 12, 23), SH)


def test_wall_clock_time_in_the_centers_zone_whatever_the_instant_says() -> None:
    cal = Calendar("business", week(DAYTIME))
    # 00:30 UTC is 08:30 in Shanghai: open; 12:30 UTC is 20:30 there: closed
    assert cal.is_open(datetime(2026, 12, 7, 0, 30, tzinfo=UTC), SH)
    assert not cal.is_open(datetime(2026, 12, 7, 12, 30, tzinfo=UTC), SH)
    # a zone with summer time: the wall clock decides on both sides of the change
    london = ZoneInfo("Europe/London")
    assert cal.is_open(datetime(2026, 3, 30, 7, 30, tzinfo=UTC), london)   # 08:30 BST
    assert not cal.is_open(datetime(2026, 3, 27, 7, 30, tzinfo=UTC), london)  # 07:30 GMT
    with pytest.raises(ValueError, match="naive"):
        cal.is_open(datetime(2026, 12, 7, 9), SH)


def test_no_calendar_is_always_open() -> None:
    d = decide({}, "general", at(2026, 12, 7, 3), SH)
    assert (d.open, d.action, d.target) == (True, "open", "general")


def test_closed_routes_to_an_open_skill_and_says_when_it_opens() -> None:
    cals = {"english": Calendar("english", week(DAYTIME), "route", "general")}
    d = decide(cals, "english", at(2026, 12, 7, 22), SH)
    assert (d.open, d.action, d.target, d.hops) == (False, "route", "general", ("general",))
    assert d.opens_at == at(2026, 12, 8, 8)
    assert decide(cals, "english", at(2026, 12, 7, 9), SH).action == "open"


def test_a_closed_route_target_is_followed_or_falls_to_a_callback() -> None:
    cals = {
        "english": Calendar("english", week(DAYTIME), "route", "billing"),
        "billing": Calendar("billing", week(parse_hours("08:00-22:00")), "route", "general"),
    }
    # 21:00: billing is open
    assert decide(cals, "english", at(2026, 12, 7, 21), SH).target == "billing"
    # 23:00: billing is closed too and routes on to general (no calendar: open)
    d = decide(cals, "english", at(2026, 12, 7, 23), SH)
    assert (d.action, d.target, d.hops) == ("route", "general", ("billing", "general"))
    # a closed target that offers a callback: the caller is offered one for english
    cals["billing"] = Calendar("billing", week(parse_hours("08:00-22:00")))
    d = decide(cals, "english", at(2026, 12, 7, 23), SH)
    assert (d.action, d.target, d.opens_at) == ("callback", "english", at(2026, 12, 8, 8))


def test_a_loop_is_never_followed_round_and_is_refused_when_checked() -> None:
    cals = {
        "a": Calendar("a", week(DAYTIME), "route", "b"),
        "b": Calendar("b", week(DAYTIME), "route", "a"),
    }
    d = decide(cals, "a", at(2026, 12, 7, 23), SH)
    assert (d.action, d.hops) == ("callback", ("b",))
    with pytest.raises(CalendarError, match="loop: a → b → a"):
        check_routes(cals)


def test_checks_on_routes_and_skills() -> None:
    with pytest.raises(CalendarError, match="to itself"):
        Calendar("a", week(DAYTIME), "route", "a")
    with pytest.raises(CalendarError, match="needs the skill"):
        Calendar("a", week(DAYTIME), "route")
    with pytest.raises(CalendarError, match="one of route, callback"):
        Calendar("a", week(DAYTIME), "voicemail")
    with pytest.raises(CalendarError, match="no skill"):
        check_routes({"a": Calendar("a", week(DAYTIME), "route", "zz")}, skills={"a"})
    with pytest.raises(CalendarError, match="7×24"):
        check_routes({"general": Calendar("general", week(DAYTIME))}, skills={"general"},
                     always_open="general")
    check_routes({"a": Calendar("a", week(DAYTIME), "route", "general")},
                 skills={"a", "general"}, always_open="general")


def test_a_calendar_closed_every_day_never_opens() -> None:
    cal = Calendar("gone", week(()))
    assert cal.opens_at(at(2026, 12, 7, 9), SH) is None
    d = decide({"gone": cal}, "gone", at(2026, 12, 7, 9), SH)
    assert (d.action, d.opens_at) == ("callback", None)
