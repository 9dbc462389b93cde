"""Voice messages left on return visits (回访留言, issue 14 §2) over HTTP, on a seeded SQLite
database: an order's history carries its messages; supervisors list the latest with their
orders (agents 403); the recordings search by work order finds the message, marked as one.
The messages are found through the outbound attempts' call ids whether or not this CTI has an
outbound trunk (it has none here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from agent_desktop.app import create_app
from config.settings import WebSettings, load_settings
from cti.db.session import make_engine, make_session_factory
from hotline.wiring import build_services
from tests.support.desk import logged_in
from tests.support.fakes import Clock, FakeBus
from tests.support.orders import fault_report, return_visit_message
from tests.support.seeded_db import SeededDb

T0 = datetime(2026, 12, 6, 2, 30, tzinfo=UTC)
CALLER = "13800138000"


@dataclass
class Env:
    transport: httpx.ASGITransport
    order: str
    other: str          # an order with no message
    recording: int

    async def as_user(self, user: str, seat: str | None = None) -> httpx.AsyncClient:
        return await logged_in(self.transport, user, seat)


@pytest.fixture
async def env(seeded_db: SeededDb, tmp_path: Path) -> AsyncIterator[Env]:
    engine = make_engine(seeded_db(tmp_path))
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        order = fault_report(s, T0, caller=CALLER, link=False).number
        other = fault_report(s, T0, caller="13900139000", link=False).number
        rec = return_visit_message(s, T0, order, CALLER)
    settings = replace(load_settings(env={}), state_dir=tmp_path, web=WebSettings())
    ctx = build_services(settings, sessions, bus=FakeBus(), clock=Clock(T0)).web_context()
    yield Env(httpx.ASGITransport(app=create_app(ctx)), order, other, rec)
    engine.dispose()


async def test_the_order_carries_its_messages(env: Env) -> None:
    sup = await env.as_user("S01")
    r = await sup.get(f"/api/workorders/{env.order}")
    assert r.status_code == 200, r.text
    [m] = r.json()["return_visit_messages"]
    assert (m["recording_id"], m["duration_s"]) == (env.recording, 7.5)
    assert m["call_id"].startswith("pbx1-") and m["started_at"] == T0.isoformat()
    r = await sup.get(f"/api/workorders/{env.other}")
    assert r.json()["return_visit_messages"] == []


async def test_supervisors_list_the_latest_messages_agents_do_not(env: Env) -> None:
    sup = await env.as_user("S01")
    r = await sup.get("/api/workorders/return-visit-messages")
    assert r.status_code == 200
    assert [(m["number"], m["recording_id"], m["type"], m["caller_number"])
            for m in r.json()] == [(env.order, env.recording, "fault_repair", CALLER)]
    assert (await sup.get("/api/workorders/return-visit-messages?limit=0")).status_code == 422
    agent = await env.as_user("A001", seat="seat01")
    assert (await agent.get("/api/workorders/return-visit-messages")).status_code == 403
    # and may not play it
    assert (await agent.get(f"/api/recordings/{env.recording}/audio")).status_code == 403


async def test_the_recordings_search_by_order_finds_the_message(env: Env) -> None:
    sup = await env.as_user("S01")
    r = await sup.get("/api/recordings", params={"work_order": env.order})
    assert r.status_code == 200, r.text
    [rec] = r.json()
    assert (rec["id"], rec["message"], rec["kind"], rec["seat"]) == (
        env.recording, True, "ivr", "msg")
    assert [o["number"] for o in rec["work_orders"]] == [env.order]
    r = await sup.get("/api/recordings", params={"work_order": env.other})
    assert r.json() == []
