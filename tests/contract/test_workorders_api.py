"""The work-order REST API (agent_desktop/api/workorders.py) over the ASGI transport on a seeded
SQLite database: roles per step, history with actors, urging alerts after commit, at-risk,
return visits, confidential reports, errors as JSON. No Asterisk needed."""

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
from cti.db.models import Account, Area
from cti.db.session import make_engine, make_session_factory
from cti.notifier import SUPERVISOR_ALERTS_TOPIC as ALERTS_TOPIC
from hotline.wiring import build_services
from tests.support.desk import logged_in
from tests.support.fakes import Clock, FakeBus
from tests.support.seeded_db import SeededDb

T0 = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
MIN = timedelta(minutes=1)


@dataclass
class Env:
    transport: httpx.ASGITransport
    clock: Clock
    bus: FakeBus
    urban_account: str

    async def as_user(self, user: str, seat: str | None = None) -> httpx.AsyncClient:
        return await logged_in(self.transport, user, seat)


@pytest.fixture
async def env(seeded_db: SeededDb, tmp_path: Path) -> AsyncIterator[Env]:
    engine = make_engine(seeded_db(tmp_path))
    sessions = make_session_factory(engine)
    with sessions() as s:
        urban = s.scalars(select(Account.account_no).join(Area, Area.id == Account.area_id)
                          .where(Area.kind == "urban").order_by(Account.id)).first()
    assert urban is not None
    settings = replace(load_settings(env={}), state_dir=tmp_path, web=WebSettings())
    clock, bus = Clock(T0), FakeBus()
    ctx = build_services(settings, sessions, bus=bus, clock=clock).web_context(bus=bus)
    transport = httpx.ASGITransport(app=create_app(ctx))
    yield Env(transport, clock, bus, urban)
    engine.dispose()


async def test_a_repair_through_every_step_with_roles(env: Env) -> None:
    agent = await env.as_user("A001", "seat01")
    sup = await env.as_user("S01")
    r = await agent.post("/api/workorders", json={
        "type": "fault_repair", "caller_number": "13800000001",
        "account_number": env.urban_account, "description": "家中无电，邻居有电"})
    assert r.status_code == 201, r.text
    order = r.json()
    number = order["number"]
    assert (order["status"], order["clocks"][0]["name"], order["clocks"][0]["due_at"]) == (
        "accepted", "arrival", (T0 + 45 * MIN).isoformat())
    assert order["next_steps"]["agent"] == ["dispatched"]

    async def step(client: httpx.AsyncClient, to: str, **kw: Any) -> httpx.Response:
        env.clock.now += MIN
        return await client.post(f"/api/workorders/{number}/transitions", json={"to": to, **kw})

    assert (await step(agent, "dispatched", department="repair", note="抢修一班")).status_code \
        == 200
    r = await step(agent, "department_accepted")
    assert r.status_code == 403 and "agent may not take" in r.json()["detail"]
    r = await step(sup, "resolved")
    assert r.status_code == 409 and "not a step" in r.json()["detail"]
    for to in ("department_accepted", "on_site", "resolved"):
        assert (await step(sup, to)).status_code == 200
    assert (await step(agent, "return_visit", satisfied=True)).status_code == 200
    assert (await step(agent, "archived")).status_code == 403
    r = await step(sup, "archived")
    assert r.status_code == 200 and r.json()["status"] == "archived"

    doc = (await agent.get(f"/api/workorders/{number}")).json()
    assert [(e["step"], e["actor"]) for e in doc["events"]] == [
        ("accepted", "A001"), ("dispatched", "A001"), ("department_accepted", "S01"),
        ("on_site", "S01"), ("resolved", "S01"), ("return_visit", "A001"),
        ("archived", "S01")]
    assert [e["at"] for e in doc["events"]] == sorted(e["at"] for e in doc["events"])
    assert doc["clocks"][0]["met"] is True and doc["satisfaction"] == "satisfied"


async def test_errors_are_clear_json(env: Env) -> None:
    anon = httpx.AsyncClient(transport=env.transport, base_url="http://desk")
    assert (await anon.get("/api/workorders")).status_code == 401
    agent = await env.as_user("A002", "seat02")
    for method, url, body, status, text in [
        ("get", "/api/workorders/26112799999", None, 404, "no work order"),
        ("get", "/api/workorders/abc", None, 400, "11 digits"),
        ("post", "/api/workorders", {"type": "repair", "description": "x",
                                     "caller_number": "1"}, 400, "unknown work-order type"),
        ("post", "/api/workorders", {"type": "complaint"}, 422, "description"),
        ("get", "/api/workorders?status=open", None, 400, "unknown work-order step"),
        ("get", "/api/workorders?limit=0", None, 422, "limit"),
        ("get", "/api/workorders/at-risk", None, 403, "supervisor"),
    ]:
        r = await agent.request(method, url, json=body)
        assert r.status_code == status, (url, r.text)
        assert text in r.json()["detail"], (url, r.text)


async def test_urge_alerts_supervisors_and_at_risk_and_return_visits(env: Env) -> None:
    agent = await env.as_user("A003", "seat03")
    number = (await agent.post("/api/workorders", json={
        "type": "fault_repair", "caller_number": "13800000003",
        "account_number": env.urban_account, "description": "线路打火"})).json()["number"]
    r = await agent.post(f"/api/workorders/{number}/urge", json={"note": "还没人来"})
    assert r.status_code == 200 and r.json()["urge_count"] == 1
    assert [t for t, _ in env.bus.sent] == [ALERTS_TOPIC]
    assert b'"kind":"urge"' in env.bus.raw[0][1] and number.encode() in env.bus.raw[0][1]

    env.clock.now = T0 + 37 * MIN  # 82% of the urban 45 minutes
    agent, sup = await env.as_user("A003", "seat03"), await env.as_user("S02")  # idle expiry
    r = await sup.get("/api/workorders/at-risk")
    assert r.status_code == 200, r.text
    assert [(o["number"], o["percent_used"]) for o in r.json()] == [(number, 82.2)]

    consult = (await agent.post("/api/workorders", json={
        "type": "complaint", "caller_number": "13800000004",
        "description": "营业厅态度差"})).json()["number"]
    for to in ("dispatched", "department_accepted", "resolved"):
        r = await sup.post(f"/api/workorders/{consult}/transitions", json={"to": to})
        assert r.status_code == 200, r.text
    visits = (await agent.get("/api/workorders/return-visits")).json()
    assert [(v["number"], v["return_visit_required"]) for v in visits] == [(consult, True)]
    r = await agent.post(f"/api/workorders/{consult}/urge")
    assert r.status_code == 409 and "only open orders" in r.json()["detail"]


async def test_search_and_confidential_reports(env: Env) -> None:
    agent = await env.as_user("A004", "seat04")
    sup = await env.as_user("S03")
    made = []
    for i, (t, text) in enumerate([("consultation", "阶梯电价"), ("report", "有人窃电"),
                                   ("praise", "抢修及时")]):
        env.clock.now = T0 + i * MIN
        r = await agent.post("/api/workorders", json={
            "type": t, "caller_number": f"1380000001{i}", "description": text})
        assert r.status_code == 201, r.text
        made.append(r.json()["number"])
    page = (await agent.get("/api/workorders", params={"limit": 2})).json()
    assert page["total"] == 3 and [i["number"] for i in page["items"]] == made[:0:-1]
    found = (await agent.get("/api/workorders", params={"q": "窃电"})).json()["items"]
    assert [i["number"] for i in found] == [made[1]]
    assert found[0]["caller_number"] == "138****0011"  # an agent does not see the reporter
    shown = (await sup.get(f"/api/workorders/{made[1]}")).json()
    assert shown["caller_number"] == "13800000011"
    r = await agent.get("/api/workorders", params={"from": "2026-11-27T10:31:00",
                                                   "to": "2026-11-27T10:33:00"})
    assert [i["number"] for i in r.json()["items"]] == [made[2], made[1]]  # Beijing time
    r = await agent.post(f"/api/workorders/{made[0]}/transitions", json={"to": "resolved"})
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    r = await agent.post(f"/api/workorders/{made[2]}/link", json={"master": made[0]})
    assert r.status_code == 403


async def test_one_click_return_visit_call(env: Env, seeded_db: SeededDb,
                                           tmp_path: Path) -> None:
    """Issue 14: an agent dials a resolved order's return visit at once; the outbound
    engine's job is due now, ahead of the scheduled visits. Only a resolved order is visited,
    and without an outbound trunk the desktop is told to call by hand."""
    from cti.db import outbound as store

    agent = await env.as_user("A001", "seat01")
    sup = await env.as_user("S01")
    r = await agent.post("/api/workorders", json={
        "type": "fault_repair", "caller_number": "13800000009", "description": "家中无电"})
    number = r.json()["number"]
    r = await agent.post(f"/api/workorders/{number}/return-visit-call")
    assert r.status_code == 409 and "only a resolved order" in r.json()["detail"], r.text
    for to, kw in (("dispatched", {"department": "repair"}), ("department_accepted", {}),
                   ("on_site", {}), ("resolved", {})):
        env.clock.now += MIN
        assert (await sup.post(f"/api/workorders/{number}/transitions",
                               json={"to": to, **kw})).status_code == 200
    env.clock.now += MIN
    r = await agent.post(f"/api/workorders/{number}/return-visit-call")
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    engine = make_engine(seeded_db(tmp_path))   # the same file: seeded_db caches by folder
    try:
        with make_session_factory(engine)() as s:
            [job] = [j for j in store.due(s, env.clock.now) if j.id == job_id]
            assert (job.number, job.priority, job.not_before) == ("13800000009", 10,
                                                                   env.clock.now)
            assert store.jobs_of_order(s, number) == [job_id]   # resolving made it, once
    finally:
        engine.dispose()
