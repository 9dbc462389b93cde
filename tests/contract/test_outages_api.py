"""The outage-notice and storm-mode REST API (agent_desktop/api/outages.py) over the ASGI
transport on a seeded SQLite database: roles checked on the server, agents' reads limited to
their call, bad input as a clear 4xx with the reason, every change audited with the client's
address and sent on MQTT after its commit. No Asterisk needed."""

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
from config.topics import OUTAGES_TOPIC, STORM_TOPIC
from cti.db.models import Account, Call, Feeder
from cti.db.models_recordings import AuditLog
from cti.db.session import make_engine, make_session_factory
from hotline.wiring import build_services
from tests.support.desk import logged_in
from tests.support.fakes import Clock, FakeBus
from tests.support.seeded_db import SeededDb

T0 = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
H = timedelta(hours=1)


@dataclass
class Env:
    transport: httpx.ASGITransport
    clock: Clock
    bus: FakeBus
    sessions: Any
    feeder: int          # a feeder with accounts on it
    account: str         # an account on that feeder
    other_feeder: int
    area: int            # the account's area

    async def as_user(self, user: str, seat: str | None = None) -> httpx.AsyncClient:
        return await logged_in(self.transport, user, seat)

    def audit(self, action: str) -> list[AuditLog]:
        with self.sessions() as s:
            return list(s.scalars(select(AuditLog).where(AuditLog.action == action)
                                  .order_by(AuditLog.id)))


@pytest.fixture
async def env(seeded_db: SeededDb, tmp_path: Path) -> AsyncIterator[Env]:
    engine = make_engine(seeded_db(tmp_path))
    sessions = make_session_factory(engine)
    with sessions() as s:
        acct = s.execute(select(Account.account_no, Account.feeder_id, Account.area_id)
                         .where(Account.feeder_id.is_not(None)).order_by(Account.id)).first()
        assert acct is not None and acct[1] is not None
        other = s.scalar(select(Feeder.id).where(Feeder.id != acct[1]).order_by(Feeder.id))
    assert other is not None
    settings = replace(load_settings(env={}), state_dir=tmp_path, web=WebSettings())
    clock, bus = Clock(T0), FakeBus()
    ctx = build_services(settings, sessions, bus=bus, clock=clock).web_context(bus=bus)
    transport = httpx.ASGITransport(app=create_app(ctx))
    yield Env(transport, clock, bus, sessions, int(acct[1]), acct[0], other, acct[2])
    engine.dispose()


def _suspect(env: Env, feeder: int) -> int:
    """A suspected outage as incident detection opens one: waiting for a supervisor."""
    from callcenter.outage_service import OutageService, Who
    from cti.db.outages import NoticeDraft
    from outages.scope import Cause

    return OutageService(env.sessions).publish(NoticeDraft(
        Cause.REPORTED, T0 - H, feeders=frozenset({feeder}), awaiting_confirmation=True),
        Who("system", "system"), T0)


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def _notice(env: Env, **kw: Any) -> dict[str, Any]:
    return {"cause": "fault", "feeders": [env.feeder], "start_at": (T0 - H).isoformat(),
            "expected_restore_at": (T0 + 2 * H).isoformat(), "agent_text": "10kV线路跳闸",
            **kw}


async def test_a_supervisor_publishes_updates_confirms_and_closes_with_audit_and_mqtt(
        env: Env) -> None:
    sup = await env.as_user("S01")
    r = await sup.post("/api/outages", json=_notice(env))
    assert r.status_code == 201, r.text
    doc = r.json()
    oid = doc["id"]
    assert (doc["state"], doc["cause_zh"], doc["feeders"], doc["created_by"]) == (
        "active", "故障停电", [env.feeder], "S01")
    listed = (await sup.get("/api/outages")).json()
    assert oid in [n["id"] for n in listed["active"]]
    assert set(listed) >= {"active", "suspected", "upcoming", "closed", "version"}
    # the change went out after its commit, retained, with the new revision
    [sent] = env.bus.on(OUTAGES_TOPIC)
    assert (sent["changed_id"], sent["action"], sent["version"]) == (oid, "publish",
                                                                     listed["version"])
    assert (OUTAGES_TOPIC, 1, True) in env.bus.options

    # a 台区 and a planned window: the whole notice is replaced
    r = await sup.put(f"/api/outages/{oid}", json=_notice(
        env, cause="planned", feeders=[], transformer_areas=[{"area_id": env.area,
                                                               "name": "泉城路9号台区"}],
        start_at=(T0 + H).isoformat(), schedule_end_at=(T0 + 5 * H).isoformat(),
        expected_restore_at=None))
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["transformer_areas"]) == (
        "upcoming", [[env.area, "泉城路9号台区"]])

    # a suspected outage waits for a supervisor; confirming it makes callers hear it
    sid = _suspect(env, env.other_feeder)
    assert [n["id"] for n in (await sup.get("/api/outages")).json()["suspected"]] == [sid]
    r = await sup.post(f"/api/outages/{sid}/confirm")
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["confirmed_by"]) == ("active", "S01")
    r = await sup.post(f"/api/outages/{oid}/close")
    assert r.status_code == 200 and r.json()["state"] == "closed"
    assert r.json()["restored_at"] is not None
    assert [n["id"] for n in (await sup.get("/api/outages")).json()["closed"]][:1] == [oid]
    r = await sup.post(f"/api/outages/{oid}/close")
    assert r.status_code == 404 and "no open outage notice" in r.json()["detail"]

    lines = [(a.action, a.actor, a.role, a.client_ip, a.target, a.allowed)
             for a in env.audit("outage.publish") + env.audit("outage.update")
             + env.audit("outage.confirm") + env.audit("outage.close")]
    assert lines == [
        ("outage.publish", "S01", "supervisor", "127.0.0.1", f"outage:{oid}", True),
        ("outage.update", "S01", "supervisor", "127.0.0.1", f"outage:{oid}", True),
        ("outage.confirm", "S01", "supervisor", "127.0.0.1", f"outage:{sid}", True),
        ("outage.close", "S01", "supervisor", "127.0.0.1", f"outage:{oid}", True)]
    history = (await sup.get(f"/api/outages/{oid}/history")).json()
    assert [h["action"] for h in history] == ["outage.close", "outage.update", "outage.publish"]


async def test_agents_read_active_notices_only_and_may_change_nothing(env: Env) -> None:
    sup = await env.as_user("S01")
    oid = (await sup.post("/api/outages", json=_notice(env))).json()["id"]
    _suspect(env, env.other_feeder)
    agent = await env.as_user("A001", "seat01")
    doc = (await agent.get("/api/outages")).json()
    assert oid in [n["id"] for n in doc["active"]]  # with the demo's own outages
    assert all(not n["awaiting_confirmation"] for n in doc["active"])
    assert set(doc) == {"version", "at", "active"}
    for method, url, body in [
        ("post", "/api/outages", _notice(env)),
        ("put", f"/api/outages/{oid}", _notice(env)),
        ("post", f"/api/outages/{oid}/confirm", None),
        ("post", f"/api/outages/{oid}/close", None),
        ("get", f"/api/outages/{oid}", None),
        ("get", "/api/outages/board", None),
        ("get", "/api/outages/places", None),
        ("post", "/api/storm", {"on": True}),
    ]:
        r = await agent.request(method, url, json=body)
        assert r.status_code == 403, (url, r.text)
        assert "supervisor" in r.json()["detail"], (url, r.text)
    # refused, and on record
    refused = env.audit("outage.close") + env.audit("storm.on")
    assert [(a.actor, a.allowed, a.client_ip) for a in refused] == [
        ("A001", False, "127.0.0.1"), ("A001", False, "127.0.0.1")]
    assert oid in [n["id"] for n in (await agent.get("/api/outages")).json()["active"]]
    anon = httpx.AsyncClient(transport=env.transport, base_url="http://desk")
    assert (await anon.get("/api/outages")).status_code == 401
    assert (await anon.get("/api/storm")).status_code == 401


async def test_an_agent_reads_the_notices_of_their_own_calls_account(env: Env) -> None:
    sup = await env.as_user("S01")
    oid = (await sup.post("/api/outages", json=_notice(env))).json()["id"]
    with env.sessions.begin() as s:
        for call_id, agent_id in (("1790000000.1", "A001"), ("1790000000.2", "A002")):
            s.add(Call(call_id=call_id, uniqueid=call_id, caller_number="13900000000",
                       dnis="95598", started_at=T0 - timedelta(minutes=5), ivr_path=[],
                       account_no=env.account, agent_id=agent_id, answered_at=T0))
    agent = await env.as_user("A001", "seat01")
    url = f"/api/outages/account/{env.account}"
    r = await agent.get(url)
    assert r.status_code == 403 and "call_id" in r.json()["detail"]
    r = await agent.get(url, params={"call_id": "1790000000.1"})
    assert r.status_code == 200, r.text
    [n] = r.json()
    assert (n["outage_id"], n["cause_zh"], n["agent_text"], n["feeders"]) == (
        oid, "故障停电", "10kV线路跳闸", [env.feeder])
    r = await agent.get(url, params={"call_id": "1790000000.2"})
    assert r.status_code == 403, r.text  # another agent's call
    r = await agent.get("/api/outages/account/3799999999", params={"call_id": "1790000000.1"})
    assert r.status_code == 403 and "not this call's" in r.json()["detail"]
    r = await agent.get(url, params={"call_id": "1790000000.9"})
    assert r.status_code == 404
    assert len((await sup.get(url)).json()) == 1
    r = await sup.get("/api/outages/account/3799999999")
    assert r.status_code == 404 and "no account" in r.json()["detail"]


async def test_bad_input_is_a_clear_4xx_with_the_reason(env: Env) -> None:
    sup = await env.as_user("S01")
    cases: list[tuple[str, str, Any, int, str]] = [
        ("post", "/api/outages", _notice(env, feeders=[]), 400, "needs a scope"),
        ("post", "/api/outages", _notice(env, feeders=[999999]), 400, "no such feeder: 999999"),
        ("post", "/api/outages", _notice(env, feeders=[], areas=[424242]), 400,
         "no such area: 424242"),
        ("post", "/api/outages", _notice(env, transformer_areas=[{"area_id": env.area,
                                                                 "name": "  "}]),
         400, "台区 needs a name"),
        ("post", "/api/outages", _notice(env, expected_restore_at=(T0 - 2 * H).isoformat()),
         400, "expected restoration before its start"),
        ("post", "/api/outages", _notice(env, cause="planned"), 400,
         "needs a schedule ending after start"),
        ("post", "/api/outages", _notice(env, cause="typhoon"), 400, "unknown cause 'typhoon'"),
        ("post", "/api/outages", _notice(env, master_order="26112799999"), 400,
         "no such work order"),
        ("post", "/api/outages", _notice(env, master_order="x"), 422, "master_order"),
        ("post", "/api/outages", _notice(env, agent_text="长" * 300), 422, "agent_text"),
        ("post", "/api/outages", _notice(env, start_at="yesterday"), 422, "start_at"),
        ("post", "/api/outages", {"feeders": [env.feeder]}, 422, "cause"),
        ("post", "/api/outages", _notice(env, feeders=[-1]), 422, "feeders"),
        ("post", "/api/outages", _notice(env, feeders=list(range(1, 600))), 422, "feeders"),
        ("post", "/api/outages/99999/close", None, 404, "no open outage notice 99999"),
        ("post", "/api/outages/99999999999999/close", None, 422, "outage_id"),
        ("put", "/api/outages/99999", _notice(env), 404, "no open outage notice"),
        ("get", "/api/outages/99999", None, 404, "no outage notice 99999"),
        ("get", "/api/outages/abc", None, 422, "outage_id"),
        ("get", "/api/outages?closed=-1", None, 422, "closed"),
        ("post", "/api/storm", {"on": "maybe"}, 422, "on"),
    ]
    for method, url, body, status, text in cases:
        r = await sup.request(method, url, json=body)
        assert r.status_code == status, (url, body, r.text)
        assert text in r.json()["detail"], (url, r.text)
    r = await sup.post("/api/outages", content=b"{not json",
                       headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["detail"], r.text
    # nothing was published by any of them
    assert (await sup.get("/api/outages")).json()["version"] == 1
    assert env.bus.on(OUTAGES_TOPIC) == []


async def test_a_time_without_a_zone_is_the_centers_local_time(env: Env) -> None:
    sup = await env.as_user("S01")
    r = await sup.post("/api/outages", json=_notice(
        env, start_at="2026-11-27T09:00:00", expected_restore_at="2026-11-27T12:30:00"))
    assert r.status_code == 201, r.text
    assert _at(r.json()["start_at"]) == datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # 09:00 CST
    assert _at(r.json()["expected_restore_at"]) == datetime(2026, 11, 27, 4, 30, tzinfo=UTC)


async def test_storm_mode_switch_with_who_and_when(env: Env) -> None:
    sup = await env.as_user("S01")
    agent = await env.as_user("A001", "seat01")
    assert (await agent.get("/api/storm")).json()["on"] is False
    r = await sup.post("/api/storm", json={"on": True, "detail": "台风“海葵”登陆"})
    assert r.status_code == 200, r.text
    assert (r.json()["on"], r.json()["by"], r.json()["trigger"], r.json()["changed"]) == (
        True, "S01", "manual", True)
    assert _at(r.json()["since"]) == T0
    again = await sup.post("/api/storm", json={"on": True})
    assert again.json()["changed"] is False
    state = (await agent.get("/api/storm")).json()
    assert (state["on"], state["by"]) == (True, "S01")
    [sent] = env.bus.on(STORM_TOPIC)
    assert (sent["on"], sent["by"]) == (True, "S01")
    assert (STORM_TOPIC, 1, True) in env.bus.options
    env.clock.now = T0 + 10 * timedelta(minutes=1)
    r = await sup.post("/api/storm", json={"on": False})
    assert r.status_code == 200, r.text
    assert r.json()["on"] is False and _at(r.json()["since"]) == env.clock.now
    [on] = env.audit("storm.on")
    [off] = env.audit("storm.off")
    assert (on.actor, on.client_ip, on.detail["detail"], off.actor) == (
        "S01", "127.0.0.1", "台风“海葵”登陆", "S01")
    history = (await sup.get("/api/storm/history")).json()
    assert [h["action"] for h in history] == ["storm.off", "storm.on"]


async def test_the_board_shows_active_and_suspected_outages_with_their_figures(env: Env) -> None:
    sup = await env.as_user("S01")
    oid = (await sup.post("/api/outages", json=_notice(env))).json()["id"]
    with env.sessions.begin() as s:
        s.add(Call(call_id="1790000000.3", uniqueid="1790000000.3", caller_number="1390000",
                   dnis="95598", started_at=T0 - timedelta(minutes=2), ivr_path=[],
                   outage_ids=[oid], outcome="deflected"))
    board = (await sup.get("/api/outages/board")).json()
    row = next(r for r in board["active"] if r["outage_id"] == oid)
    assert row["customers"] >= 1 and row["heard"] == 1 and row["deflection_rate"] == 1.0
    assert board["storm"]["on"] is False and board["window_s"] == 900
    places = (await sup.get("/api/outages/places")).json()
    assert env.feeder in [f["id"] for f in places["feeders"]]
    assert places["areas"] and places["transformer_areas"]


async def test_a_planned_outages_notice_calls_are_listed_for_supervisors_only(env: Env) -> None:
    """Issue 14 §4: the console's list of a planned outage's calls to its important customers,
    supervisors and admins only (an agent's try refused and on record); 404 and 422 for bad
    ids."""
    from callcenter.outage_notices import OutageNotices
    from cti.db.models import AccountPhone, Customer

    with env.sessions() as s:
        area = s.scalar(select(Account.area_id).join(Customer)
                        .join(AccountPhone, AccountPhone.account_id == Account.id)
                        .where(Customer.important.is_(True)).order_by(Account.id))
        important = set(s.scalars(select(Account.account_no).join(Customer)
                                  .join(AccountPhone, AccountPhone.account_id == Account.id)
                                  .where(Customer.important.is_(True),
                                         Account.area_id == area)))
    assert area is not None and important
    sup = await env.as_user("S01")
    start = T0 + 48 * H
    r = await sup.post("/api/outages", json={
        "cause": "planned", "areas": [area], "start_at": start.isoformat(),
        "schedule_end_at": (start + 9 * H).isoformat(), "agent_text": "计划检修"})
    assert r.status_code == 201, r.text
    oid = r.json()["id"]
    assert (await sup.get(f"/api/outages/{oid}/notice-calls")).json() == []
    OutageNotices(env.sessions, (7, 1)).sync(T0)

    calls = (await sup.get(f"/api/outages/{oid}/notice-calls")).json()
    assert {c["account_no"] for c in calls} == important
    assert {c["lead_days"] for c in calls} == {7, 1}
    assert {(c["state"], c["attempts"], c["heard"]) for c in calls} == {("scheduled", 0, None)}
    assert all(c["important_kind"] and c["customer_name"] for c in calls)

    agent = await env.as_user("A001", "seat01")
    r = await agent.get(f"/api/outages/{oid}/notice-calls")
    assert r.status_code == 403 and "supervisor" in r.json()["detail"]
    assert [(a.actor, a.allowed, a.target) for a in env.audit("outage.read")] == [
        ("A001", False, f"outage:{oid}")]
    assert (await sup.get("/api/outages/999999/notice-calls")).status_code == 404
    for bad in ("0", "x", str(2**40)):
        assert (await sup.get(f"/api/outages/{bad}/notice-calls")).status_code == 422
