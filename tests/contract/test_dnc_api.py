"""The do-not-call list over HTTP (agent_desktop/api/outbound.py) on a seeded SQLite database:
supervisors and admins list, add and remove; agents get 403 (on record); a bad number or a
duplicate is a clear 4xx; every change is audited like the CLI's, with the client's address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from agent_desktop.app import create_app
from config.settings import WebSettings, load_settings
from cti.db import outbound as store
from cti.db.models_recordings import AuditLog
from cti.db.session import make_engine, make_session_factory
from hotline.wiring import build_services
from tests.support.desk import logged_in
from tests.support.fakes import Clock, FakeBus
from tests.support.seeded_db import SeededDb

T0 = datetime(2026, 12, 6, 2, 30, tzinfo=UTC)


@dataclass
class Env:
    transport: httpx.ASGITransport
    sessions: Any

    async def as_user(self, user: str, seat: str | None = None) -> httpx.AsyncClient:
        return await logged_in(self.transport, user, seat)

    def audit(self) -> list[tuple[str, str | None, str, bool, dict[str, Any]]]:
        with self.sessions() as s:
            return [(a.action, a.target, a.actor, a.allowed, a.detail)
                    for a in s.scalars(select(AuditLog).where(AuditLog.action.like(
                        "outbound.dnc%")).order_by(AuditLog.id))]

    def numbers(self) -> list[str]:
        with self.sessions() as s:
            return store.dnc_numbers(s)


@pytest.fixture
async def env(seeded_db: SeededDb, tmp_path: Path) -> AsyncIterator[Env]:
    engine = make_engine(seeded_db(tmp_path))
    sessions = make_session_factory(engine)
    settings = replace(load_settings(env={}), state_dir=tmp_path, web=WebSettings())
    clock, bus = Clock(T0), FakeBus()
    ctx = build_services(settings, sessions, bus=bus, clock=clock).web_context(bus=bus)
    yield Env(httpx.ASGITransport(app=create_app(ctx)), sessions)
    engine.dispose()


async def test_a_supervisor_adds_lists_and_removes_a_number(env: Env) -> None:
    sup = await env.as_user("S01")
    r = await sup.post("/api/outbound/dnc", json={"number": "+86 138-0013-8000",
                                                  "reason": "客户要求不再来电"})
    assert r.status_code == 201, r.text
    assert r.json()["number"] == "13800138000"
    r = await sup.get("/api/outbound/dnc")
    assert r.status_code == 200
    assert r.json() == [{"number": "13800138000", "reason": "客户要求不再来电",
                         "added_by": "S01", "added_at": T0.isoformat()}]
    # any spelling of a number on the list is a duplicate, and the first entry is kept
    r = await sup.post("/api/outbound/dnc", json={"number": "008613800138000", "reason": "x"})
    assert r.status_code == 409 and "already" in r.json()["detail"]
    r = await sup.delete("/api/outbound/dnc/0086%2013800138000")
    assert r.status_code == 200 and r.json() == {"number": "13800138000", "removed": True}
    assert env.numbers() == []
    r = await sup.delete("/api/outbound/dnc/13800138000")
    assert r.status_code == 404 and "not on the do-not-call list" in r.json()["detail"]
    assert env.audit() == [
        ("outbound.dnc_add", "13800138000", "S01", True, {"reason": "客户要求不再来电"}),
        ("outbound.dnc_remove", "13800138000", "S01", True, {})]


async def test_an_admin_may_too(env: Env) -> None:
    admin = await env.as_user("admin")
    r = await admin.post("/api/outbound/dnc", json={"number": "010 6512 3456",
                                                    "reason": "投诉后要求"})
    assert r.status_code == 201 and r.json()["number"] == "01065123456"
    assert env.numbers() == ["01065123456"]


async def test_agents_are_refused_and_on_record(env: Env) -> None:
    sup = await env.as_user("S01")
    assert (await sup.post("/api/outbound/dnc", json={"number": "13800138000",
                                                      "reason": "asked"})).status_code == 201
    agent = await env.as_user("A001", seat="seat01")
    assert (await agent.get("/api/outbound/dnc")).status_code == 403
    r = await agent.post("/api/outbound/dnc", json={"number": "13900139000", "reason": "x"})
    assert r.status_code == 403
    assert (await agent.delete("/api/outbound/dnc/13800138000")).status_code == 403
    assert env.numbers() == ["13800138000"]
    assert [(a, t, who, ok) for a, t, who, ok, _d in env.audit()] == [
        ("outbound.dnc_add", "13800138000", "S01", True),
        ("outbound.dnc_list", None, "A001", False),
        ("outbound.dnc_add", "13900139000", "A001", False),
        ("outbound.dnc_remove", "13800138000", "A001", False)]
    anon = httpx.AsyncClient(transport=env.transport, base_url="http://desk")
    assert (await anon.get("/api/outbound/dnc")).status_code == 401


@pytest.mark.parametrize(("body", "status", "text"), [
    ({"number": "call me", "reason": "x"}, 400, "not a telephone number"),
    ({"number": "138'; DROP TABLE do_not_call; --", "reason": "x"}, 400,
     "not a telephone number"),
    ({"number": "000", "reason": "x"}, 400, "not a telephone number"),
    ({"number": "1" * 25, "reason": "x"}, 400, "not a telephone number"),
    ({"number": "1" * 41, "reason": "x"}, 422, "number"),
    ({"number": "13800138000", "reason": "   "}, 400, "reason"),
    ({"number": "13800138000"}, 422, "reason"),
    ({"number": "13800138000", "reason": "r" * 201}, 422, "reason"),
])
async def test_bad_input_is_a_clear_4xx(env: Env, body: dict[str, Any], status: int,
                                        text: str) -> None:
    sup = await env.as_user("S01")
    r = await sup.post("/api/outbound/dnc", json=body)
    assert r.status_code == status and text in r.json()["detail"], r.text
    assert env.numbers() == [] and env.audit() == []


async def test_removing_a_bad_number_is_a_400(env: Env) -> None:
    sup = await env.as_user("S01")
    r = await sup.delete("/api/outbound/dnc/abc")
    assert r.status_code == 400 and "not a telephone number" in r.json()["detail"]
