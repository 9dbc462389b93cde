"""The skills' service hours over HTTP (agent_desktop/api/calendars.py) on a seeded SQLite
database: an admin sets a skill's week, its after-hours route and its holidays; a supervisor
reads them and is refused a change (403, on record), an agent may not even read; a bad change
is a 400 that says why (bad hours, an unknown skill, a loop of routes, the 7x24 skill), never a
5xx; every change is audited; the IVR's read sees the change at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from acd.calendar import decide
from agent_desktop.app import create_app
from config.settings import WebSettings, load_settings
from cti.db import calendars as store
from cti.db.models_recordings import AuditLog
from cti.db.session import make_engine, make_session_factory
from hotline.wiring import build_services
from tests.support.desk import logged_in
from tests.support.fakes import Clock, FakeBus
from tests.support.seeded_db import SeededDb

T0 = datetime(2026, 12, 7, 2, 30, tzinfo=UTC)
SH = ZoneInfo("Asia/Shanghai")
DAYTIME = {d: "08:00-20:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@dataclass
class Env:
    transport: httpx.ASGITransport
    sessions: Any

    async def as_user(self, user: str, seat: str | None = None) -> httpx.AsyncClient:
        return await logged_in(self.transport, user, seat)

    def audit(self) -> list[tuple[str, str | None, str, bool]]:
        with self.sessions() as s:
            return [(a.action, a.target, a.actor, a.allowed)
                    for a in s.scalars(select(AuditLog).where(AuditLog.action.like(
                        "calendars.%")).order_by(AuditLog.id))]


@pytest.fixture
async def env(seeded_db: SeededDb, tmp_path: Path) -> AsyncIterator[Env]:
    engine = make_engine(seeded_db(tmp_path))
    sessions = make_session_factory(engine)
    with sessions.begin() as s:  # the demo's own calendars are not this test's
        for skill in store.calendars_of(s):
            store.remove_calendar(s, skill)
    settings = replace(load_settings(env={}), state_dir=tmp_path, web=WebSettings())
    clock, bus = Clock(T0), FakeBus()
    ctx = build_services(settings, sessions, bus=bus, clock=clock).web_context(bus=bus)
    yield Env(httpx.ASGITransport(app=create_app(ctx)), sessions)
    engine.dispose()


async def test_an_admin_sets_hours_routes_and_days_and_the_ivr_sees_them(env: Env) -> None:
    admin = await env.as_user("admin")
    r = await admin.put("/api/calendars/english", json={
        "week": DAYTIME, "after_hours": "route", "route_to": "general"})
    assert r.status_code == 200, r.text
    assert r.json() == {"skill": "english", "after_hours": "route", "route_to": "general",
                        "updated_by": "admin"}
    r = await admin.put("/api/calendars/english/days/2026-10-01",
                        json={"kind": "holiday", "note": "国庆节"})
    assert r.status_code == 200 and r.json()["hours"] == "closed"
    r = await admin.put("/api/calendars/english/days/2026-10-10",
                        json={"kind": "special", "hours": "09:00-12:00", "note": "调休"})
    assert r.status_code == 200 and r.json()["hours"] == "09:00-12:00"

    cals = store.load(env.sessions)  # what the IVR reads at the next call
    night = decide(cals, "english", datetime(2026, 12, 7, 21, tzinfo=SH), SH)
    assert (night.action, night.target) == ("route", "general")
    assert not cals["english"].is_open(datetime(2026, 10, 1, 10, tzinfo=SH), SH)

    sup = await env.as_user("S01")
    r = await sup.get("/api/calendars")
    assert r.status_code == 200
    [cal] = r.json()
    assert cal["skill"] == "english" and cal["week"]["mon"] == "08:00-20:00"
    assert [(d["day"], d["kind"], d["note"]) for d in cal["days"]] == [
        ("2026-10-01", "holiday", "国庆节"), ("2026-10-10", "special", "调休")]

    r = await admin.delete("/api/calendars/english/days/2026-10-10")
    assert r.status_code == 200 and r.json()["removed"] is True
    r = await admin.delete("/api/calendars/english/days/2026-10-10")
    assert r.status_code == 404
    r = await admin.delete("/api/calendars/english")
    assert r.status_code == 200
    assert store.load(env.sessions) == {}
    assert env.audit() == [
        ("calendars.set", "english", "admin", True),
        ("calendars.set_day", "english/2026-10-01", "admin", True),
        ("calendars.set_day", "english/2026-10-10", "admin", True),
        ("calendars.remove_day", "english/2026-10-10", "admin", True),
        ("calendars.remove", "english", "admin", True)]


async def test_supervisors_read_only_and_agents_nothing_all_on_record(env: Env) -> None:
    sup = await env.as_user("S01")
    r = await sup.put("/api/calendars/english", json={"week": DAYTIME,
                                                      "after_hours": "callback"})
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    r = await sup.put("/api/calendars/english/days/2026-10-01", json={"kind": "holiday"})
    assert r.status_code == 403
    agent = await env.as_user("A001", seat="seat01")
    r = await agent.get("/api/calendars")
    assert r.status_code == 403
    assert store.load(env.sessions) == {}
    assert env.audit() == [("calendars.set", "english", "S01", False),
                           ("calendars.set_day", "english/2026-10-01", "S01", False),
                           ("calendars.list", None, "A001", False)]


@pytest.mark.parametrize(("path", "body", "says"), [
    ("/api/calendars/english", {"week": {"mon": "8-20"}, "after_hours": "callback"},
     "mon: '8' is not a time"),
    ("/api/calendars/english", {"week": {"mon": "08:00-12:00,11:00-13:00"},
                                "after_hours": "callback"}, "overlap"),
    ("/api/calendars/english", {"week": DAYTIME, "after_hours": "route"}, "needs the skill"),
    ("/api/calendars/english", {"week": DAYTIME, "after_hours": "route",
                                "route_to": "nosuch"}, "which is no skill"),
    ("/api/calendars/english", {"week": DAYTIME, "after_hours": "route",
                                "route_to": "english"}, "to itself"),
    ("/api/calendars/nosuch", {"week": DAYTIME, "after_hours": "callback"}, "no skill"),
    ("/api/calendars/general", {"week": DAYTIME, "after_hours": "callback"}, "7×24"),
    ("/api/calendars/english/days/2026-10-01", {"kind": "special", "hours": ""},
     "needs its hours"),
    ("/api/calendars/english/days/2026-10-01", {"kind": "holiday", "hours": "08:00-09:00"},
     "closed all day"),
])
async def test_a_bad_change_is_a_400_that_says_why(env: Env, path: str, body: dict[str, Any],
                                                   says: str) -> None:
    admin = await env.as_user("admin")
    if "/days/" in path:
        r = await admin.put("/api/calendars/english", json={"week": DAYTIME,
                                                            "after_hours": "callback"})
        assert r.status_code == 200
    r = await admin.put(path, json=body)
    assert r.status_code == 400, r.text
    assert says in r.json()["detail"]


async def test_a_loop_of_routes_is_refused_and_unknown_things_are_404(env: Env) -> None:
    admin = await env.as_user("admin")
    r = await admin.put("/api/calendars/english", json={
        "week": DAYTIME, "after_hours": "route", "route_to": "billing"})
    assert r.status_code == 200
    r = await admin.put("/api/calendars/billing", json={
        "week": DAYTIME, "after_hours": "route", "route_to": "english"})
    assert r.status_code == 400 and "loop" in r.json()["detail"]
    r = await admin.put("/api/calendars/repair/days/2026-10-01", json={"kind": "holiday"})
    assert r.status_code == 404 and "set its hours first" in r.json()["detail"]
    r = await admin.delete("/api/calendars/repair")
    assert r.status_code == 404
    r = await admin.put("/api/calendars/Bad Skill", json={"week": DAYTIME,
                                                          "after_hours": "callback"})
    assert r.status_code == 422
    assert set(store.load(env.sessions)) == {"english"}
