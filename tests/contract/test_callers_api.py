"""The inbound caller lists over HTTP (agent_desktop/api/callers.py) on a seeded SQLite database:
supervisors list, add and remove nuisance and VIP numbers; agents get 403 (on record); the
agent who took a call reports it as a nuisance once, and the third report of a number puts it
on the nuisance list by itself; every change is audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from agent_desktop.app import create_app
from config.settings import WebSettings, load_settings
from cti.db import callers as store
from cti.db.calls import record_call_start
from cti.db.models import Call
from cti.db.models_recordings import AuditLog
from cti.db.session import make_engine, make_session_factory
from hotline.wiring import build_services
from tests.support.desk import logged_in
from tests.support.fakes import Clock, FakeBus
from tests.support.seeded_db import SeededDb

T0 = datetime(2026, 12, 6, 2, 30, tzinfo=UTC)
ABUSER = "13700001111"


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
                        "callers.%")).order_by(AuditLog.id))]

    def kinds(self, number: str) -> frozenset[str]:
        return store.kinds_in(self.sessions, number)

    def a_call(self, call_id: str, caller: str, agent: str | None) -> None:
        with self.sessions.begin() as s:
            record_call_start(s, call_id=call_id, uniqueid=call_id, caller_number=caller,
                              dnis="95598", now=T0 - timedelta(minutes=5))
            s.execute(Call.__table__.update().where(Call.call_id == call_id)
                      .values(agent_id=agent))


@pytest.fixture
async def env(seeded_db: SeededDb, tmp_path: Path) -> AsyncIterator[Env]:
    engine = make_engine(seeded_db(tmp_path))
    sessions = make_session_factory(engine)
    settings = replace(load_settings(env={}), state_dir=tmp_path, web=WebSettings())
    clock, bus = Clock(T0), FakeBus()
    ctx = build_services(settings, sessions, bus=bus, clock=clock).web_context(bus=bus)
    yield Env(httpx.ASGITransport(app=create_app(ctx)), sessions)
    engine.dispose()


@pytest.mark.parametrize("kind", ["nuisance", "vip"])
async def test_a_supervisor_adds_lists_and_removes_a_number(env: Env, kind: str) -> None:
    sup = await env.as_user("S01")
    r = await sup.post(f"/api/callers/{kind}", json={"number": "+86 138-0013-8000",
                                                    "reason": "经核实"})
    assert r.status_code == 201, r.text
    assert r.json()["number"] == "13800138000"
    assert env.kinds("13800138000") == {kind}
    r = await sup.get(f"/api/callers/{kind}")
    assert r.status_code == 200
    assert [(e["number"], e["reason"], e["added_by"]) for e in r.json()] == [
        ("13800138000", "经核实", "S01")]
    r = await sup.post(f"/api/callers/{kind}", json={"number": "008613800138000",
                                                    "reason": "x"})
    assert r.status_code == 409 and "already" in r.json()["detail"]
    r = await sup.delete(f"/api/callers/{kind}/13800138000")
    assert r.status_code == 200 and r.json()["removed"] is True
    assert env.kinds("13800138000") == frozenset()
    r = await sup.delete(f"/api/callers/{kind}/13800138000")
    assert r.status_code == 404
    assert env.audit() == [(f"callers.add_{kind}", "13800138000", "S01", True),
                           (f"callers.remove_{kind}", "13800138000", "S01", True)]


async def test_agents_may_not_change_the_lists_and_bad_input_is_a_clear_4xx(env: Env) -> None:
    agent = await env.as_user("A001", seat="seat01")
    r = await agent.post("/api/callers/vip", json={"number": "13800138000", "reason": "x"})
    assert r.status_code == 403
    r = await agent.get("/api/callers/nuisance")
    assert r.status_code == 403
    assert env.kinds("13800138000") == frozenset()
    sup = await env.as_user("S01")
    r = await sup.post("/api/callers/friends", json={"number": "13800138000", "reason": "x"})
    assert r.status_code == 422
    r = await sup.post("/api/callers/vip", json={"number": "call me", "reason": "x"})
    assert r.status_code == 400 and "not a telephone number" in r.json()["detail"]
    r = await sup.post("/api/callers/vip", json={"number": "13800138000", "reason": "  "})
    assert r.status_code == 400
    assert [(a, ok) for a, _t, _u, ok in env.audit()] == [("callers.add", False),
                                                          ("callers.list", False)]


async def test_the_third_report_of_a_number_puts_it_on_the_nuisance_list(env: Env) -> None:
    for i in range(3):
        env.a_call(f"n{i}", ABUSER, "A001")
    env.a_call("other", ABUSER, "A002")
    agent = await env.as_user("A001", seat="seat01")
    r = await agent.post("/api/calls/n0/nuisance")
    assert r.status_code == 200, r.text
    assert r.json() == {"call_id": "n0", "number": ABUSER, "listed": False}
    r = await agent.post("/api/calls/n0/nuisance")  # once per call
    assert r.status_code == 409
    r = await agent.post("/api/calls/other/nuisance")  # another agent's call
    assert r.status_code == 403
    r = await agent.post("/api/calls/nope/nuisance")
    assert r.status_code == 404
    assert (await agent.post("/api/calls/n1/nuisance")).json()["listed"] is False
    assert env.kinds(ABUSER) == frozenset()
    r = await agent.post("/api/calls/n2/nuisance")
    assert r.json() == {"call_id": "n2", "number": ABUSER, "listed": True}
    assert env.kinds(ABUSER) == {"nuisance"}
    sup = await env.as_user("S01")
    [entry] = (await sup.get("/api/callers/nuisance")).json()
    assert (entry["number"], entry["added_by"], entry["reports"]) == (ABUSER, "system", 3)
    assert [(a, t, u, ok) for a, t, u, ok in env.audit()] == [
        ("callers.report", "n0", "A001", True), ("callers.report", "other", "A001", False),
        ("callers.report", "n1", "A001", True), ("callers.report", "n2", "A001", True)]
