"""cti/db/calendars.py on both databases: a skill's hours and days kept and read back as
acd.calendar's calendars, the checks that refuse a bad change, and the audit line with it."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.calendar import CalendarError, decide, parse_hours
from cti.db import calendars as store
from cti.db.models_recordings import AuditLog
from cti.db.staff import ensure_shipped_skills
from cti.db.web_audit import AuditEntry

SH = ZoneInfo("Asia/Shanghai")
DAYTIME = {d: "08:00-20:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture
def skills(session_factory: sessionmaker[Session], now: datetime) -> sessionmaker[Session]:
    with session_factory.begin() as s:
        ensure_shipped_skills(s, now)
    return session_factory


def test_hours_and_days_are_kept_and_read_at_each_call(skills: sessionmaker[Session],
                                                       now: datetime) -> None:
    with skills.begin() as s:
        store.set_calendar(s, "english", DAYTIME, after_hours="route", route_to="general",
                           by="A01", now=now, always_open="general")
        store.set_day(s, "english", date(2026, 10, 1), kind="holiday", hours="", note="国庆节",
                      by="A01", now=now)
        store.set_day(s, "english", date(2026, 10, 10), kind="special", hours="09:00-12:00",
                      note="调休", by="A01", now=now)
    cals = store.load(skills)
    assert set(cals) == {"english"}
    cal = cals["english"]
    assert cal.week[0] == parse_hours("08:00-20:00") and cal.route_to == "general"
    assert not cal.is_open(datetime(2026, 10, 1, 10, tzinfo=SH), SH)
    assert cal.is_open(datetime(2026, 10, 10, 10, tzinfo=SH), SH)
    d = decide(cals, "english", datetime(2026, 12, 7, 21, tzinfo=SH), SH)
    assert (d.action, d.target) == ("route", "general")

    # replacing the week keeps the days; a day can be replaced and removed
    with skills.begin() as s:
        store.set_calendar(s, "english", {"mon": "09:00-17:00"}, after_hours="callback",
                           route_to=None, by="A02", now=now, always_open="general")
        store.set_day(s, "english", date(2026, 10, 1), kind="special", hours="10:00-12:00",
                      note="半天", by="A02", now=now)
        store.remove_day(s, "english", date(2026, 10, 10))
        with pytest.raises(store.NoCalendar, match="no holiday or special day"):
            store.remove_day(s, "english", date(2026, 10, 10))
    [row] = store.listing(skills)
    assert row["week"]["mon"] == "09:00-17:00" and row["week"]["tue"] == "closed"
    assert (row["after_hours"], row["route_to"], row["updated_by"]) == ("callback", None, "A02")
    assert [(d["day"], d["kind"], d["hours"], d["note"]) for d in row["days"]] == [
        ("2026-10-01", "special", "10:00-12:00", "半天")]

    with skills.begin() as s:
        store.remove_calendar(s, "english")
        with pytest.raises(store.NoCalendar, match="open 7×24"):
            store.remove_calendar(s, "english")
    assert store.load(skills) == {} and store.listing(skills) == []


def test_bad_changes_are_refused_and_nothing_is_kept(skills: sessionmaker[Session],
                                                     now: datetime) -> None:
    def put(skill: str, week: dict[str, str], after: str = "callback",
            to: str | None = None) -> None:
        with skills.begin() as s:
            store.set_calendar(s, skill, week, after_hours=after, route_to=to, by="A01",
                               now=now, always_open="general")

    put("english", DAYTIME, "route", "billing")
    with pytest.raises(CalendarError, match="loop: english → billing → english"):
        put("billing", DAYTIME, "route", "english")
    with pytest.raises(CalendarError, match="no skill"):
        put("english", DAYTIME, "route", "nosuch")
    with pytest.raises(CalendarError, match="no skill 'nosuch'"):
        put("nosuch", DAYTIME)
    with pytest.raises(CalendarError, match="7×24"):
        put("general", DAYTIME)
    with pytest.raises(CalendarError, match="mon: .*overlap"):
        put("billing", {"mon": "08:00-12:00,11:00-13:00"})
    with pytest.raises(CalendarError, match="unknown weekdays"):
        put("billing", {"monday": "08:00-12:00"})
    with pytest.raises(store.NoCalendar, match="set its hours first"), skills.begin() as s:
        store.set_day(s, "repair", date(2026, 10, 1), kind="holiday", hours="", note="",
                      by="A01", now=now)
    with pytest.raises(CalendarError, match="needs its hours"), skills.begin() as s:
        store.set_day(s, "english", date(2026, 10, 1), kind="special", hours="closed",
                      note="", by="A01", now=now)
    assert set(store.load(skills)) == {"english"}
    assert store.load(skills)["english"].route_to == "billing"


def test_a_change_and_its_audit_line_are_one_unit(skills: sessionmaker[Session],
                                                  now: datetime) -> None:
    def entry(action: str) -> AuditEntry:
        return AuditEntry(at=now, actor="A01", role="admin", action=action, target="english",
                          allowed=True, client_ip=None, detail={})

    store.audited(skills, entry("calendars.set"), store.set_calendar, "english", DAYTIME,
                  after_hours="callback", route_to=None, by="A01", now=now,
                  always_open="general")
    with pytest.raises(CalendarError):
        store.audited(skills, entry("calendars.set"), store.set_calendar, "english",
                      {"mon": "bad"}, after_hours="callback", route_to=None, by="A01",
                      now=now, always_open="general")
    with skills() as s:
        assert list(s.scalars(select(AuditLog.action))) == ["calendars.set"]


async def test_the_ivr_reads_the_hours_and_books_one_callback_per_number(
        skills: sessionmaker[Session], now: datetime) -> None:
    from callcenter.ivr_services import CALLBACK_PURPOSE, DbIvrServices
    from cti.db.models_outbound import OutboundJob

    ivr = DbIvrServices(skills)
    with skills.begin() as s:
        store.set_calendar(s, "english", DAYTIME, after_hours="callback", route_to=None,
                           by="A01", now=now, always_open="general")
    assert set(await ivr.calendars()) == {"english"}
    opens = datetime(2026, 11, 28, 8, tzinfo=SH)
    kw = {"caller": "+86 138 0013 8000", "skill": "english", "at": opens, "lang": "en",
          "valid_for": timedelta(hours=4), "now": now}
    first = await ivr.book_callback(call_id="c1", **kw)  # type: ignore[arg-type]
    assert await ivr.book_callback(call_id="c2", **kw) == first  # type: ignore[arg-type]
    with skills() as s:
        job = s.get(OutboundJob, first)
        assert job is not None
        assert (job.purpose, job.number, job.state, job.lang) == (
            CALLBACK_PURPOSE, "13800138000", "scheduled", "en")
        assert job.not_before == opens and job.expires_at == opens + timedelta(hours=4)
