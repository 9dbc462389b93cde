"""Click-to-call over the web API (拨打客户, issue 14 §5), with the real ACD service and call
control in the loop and fakes at the ports (the PBX, AMI, the bus): who may call, which number,
the do-not-call list, an agent already on a call, the call record and the order's history, and
hang-up; hold and transfer are refused on it. Both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from acd import engine as acd
from acd.model import AcdConfig
from agent_desktop.app import create_app
from callcenter.acd_service import AcdService
from callcenter.agent_commands import AgentCommands
from callcenter.call_control import CallControl
from cti.ami.translate import CallTracker
from cti.db import outbound as ob_store
from cti.db.acd_store import DbAcdStore
from cti.db.calls import CLICK_TO_CALL_DNIS
from cti.db.models import Call, WorkOrder, WorkOrderEvent
from cti.db.models_recordings import AuditLog
from cti.db.session import make_engine, make_session_factory
from hotline.wiring import build_services
from tests.contract.test_web_api import (  # noqa: F401 - fixtures by name
    AGENT_LEG,
    BOTH_DATABASES,
    SEATS,
    T0,
    Env,
    _settings,
    backend,
    db_url,
    pg_template,
)
from tests.support.fakes import Clock, FakeAmi, FakeBus, FakePbx

CUSTOMER = "13800000009"


@pytest.fixture
async def env(db_url: str, tmp_path: Path) -> AsyncIterator[Env]:  # noqa: F811
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    pbx, bus, tracker = FakePbx(), FakeBus(), CallTracker()
    ami = FakeAmi(variables=AGENT_LEG)
    store = DbAcdStore(sessions)
    settings = _settings(tmp_path)
    settings = replace(settings, pbx=replace(settings.pbx, outbound_trunk="carrier-out"))
    # the call ids the desktop makes name this node (its systemname), as Asterisk's do
    service = AcdService.create(AcdConfig(wrap_up_s=15, default_node=settings.pbx.systemname),
                                pbx, bus, store)
    clock = Clock(T0)
    ctx = build_services(settings, sessions, bus=bus, clock=clock).web_context(
        acd=service, pbx=ami, bus=bus,
        agent_commands=AgentCommands(service, bus, store, SEATS),
        calls=CallControl(ami, service, tracker))
    writer = asyncio.create_task(service.run(), name="acd")
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://desk") as client:
        yield Env(client, ctx, service, clock, pbx, ami, bus, tracker)
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    engine.dispose()


async def order_of(client: httpx.AsyncClient, number: str = CUSTOMER) -> str:
    r = await client.post("/api/workorders", json={
        "type": "fault_repair", "caller_number": number, "description": "家中无电"})
    assert r.status_code == 201, r.text
    return str(r.json()["number"])


def state(env: Env, agent_id: str) -> str:
    return str(env.service.engine.agents[agent_id].state)


@BOTH_DATABASES
async def test_an_agent_calls_the_orders_customer_the_seat_first_then_hangs_up(
        env: Env) -> None:
    agent = await env.as_user("A001", "seat01")
    number = await order_of(agent)
    r = await agent.post(f"/api/workorders/{number}/call")
    assert r.status_code == 202, r.text
    doc = r.json()
    call_id = doc["call_id"]
    assert (doc["number"], doc["work_order"]) == (CUSTOMER, number)
    assert call_id.startswith(env.ctx.settings.pbx.systemname + "-")
    await env.settle()
    # the seat is rung (the PBX port's click_to_call), the agent out of routing meanwhile
    assert env.pbx.clicked == [("seat01", call_id, CUSTOMER)]
    assert state(env, "A001") == "reserved"
    # a second click while the first rings: refused, nothing more dialled
    r = await agent.post(f"/api/workorders/{number}/call")
    assert r.status_code == 409 and "on a call" in r.json()["detail"], r.text
    assert len(env.pbx.clicked) == 1
    # the seat answers (the dialplan's HotlineCallbackAnswered): on the call
    env.service.submit(acd.AgentAnswered(agent_id="A001", call_id=call_id))
    await env.settle()
    assert state(env, "A001") == "on_call"
    for path, body in (("hold", {"on": True}), ("transfer", {"skill": "billing"})):
        r = await agent.post(f"/api/calls/{call_id}/{path}", json=body)
        assert r.status_code == 409 and "click-to-call" in r.json()["detail"], (path, r.text)
    r = await agent.post(f"/api/calls/{call_id}/hangup")
    assert r.status_code == 200, r.text
    [hangup] = env.ami.named("Hangup")
    assert hangup["Channel"] == call_id  # the seat's leg: its Uniqueid is the call's id
    env.service.submit(acd.CallEnded(call_id=call_id))  # the seat leg's end (the dialplan's h)
    await env.settle()
    assert state(env, "A001") == "wrap_up"
    with env.ctx.sessions.begin() as s:
        call = s.scalars(select(Call).where(Call.call_id == call_id)).one()
        assert (call.caller_number, call.dnis, call.agent_id, call.seat) == (
            CUSTOMER, CLICK_TO_CALL_DNIS, "A001", "seat01")
        assert call.answered_at is not None and call.ended_at is not None
        assert call.outcome is None  # not an inbound call's 'fallback'
        order_id = s.scalars(select(WorkOrder.id).where(WorkOrder.number == number)).one()
        events = s.scalars(select(WorkOrderEvent).where(
            WorkOrderEvent.work_order_id == order_id, WorkOrderEvent.step == "called")).all()
        assert [(e.actor, e.note) for e in events] == [("A001", f"call_id={call_id}")]
    # it is in the agent's calls, and its caller can be called back from it after the call
    mine = (await agent.get("/api/calls")).json()
    assert call_id in [c["call_id"] for c in mine]
    r = await agent.post(f"/api/calls/{call_id}/call-back")
    assert r.status_code == 202, r.text
    await env.settle()
    assert [c[2] for c in env.pbx.clicked] == [CUSTOMER, CUSTOMER]


async def test_the_agent_cancels_their_click_to_call_while_their_seat_rings(env: Env) -> None:
    """Before the seat answers, the agent's hang-up ends the seat's ringing leg; the customer
    was never dialled, the agent is out of the reservation. Nobody else may, and a queued call
    ringing an agent is not theirs to cancel (declining it is a ring-no-answer)."""
    agent = await env.as_user("A001", "seat01")
    other = await env.as_user("A002", "seat02")
    number = await order_of(agent)
    r = await agent.post(f"/api/workorders/{number}/call")
    assert r.status_code == 202, r.text
    call_id = r.json()["call_id"]
    await env.settle()
    assert state(env, "A001") == "reserved"
    assert (await other.post(f"/api/calls/{call_id}/hangup")).status_code == 403
    assert env.ami.named("Hangup") == []
    r = await agent.post(f"/api/calls/{call_id}/hangup")
    assert r.status_code == 200, r.text
    [hangup] = env.ami.named("Hangup")
    assert hangup["Channel"] == call_id  # the seat's ringing leg
    env.service.submit(acd.CallAbandoned(call_id=call_id))  # that leg's end, unanswered
    await env.settle()
    # as for a seat that never answered: the reservation is over and the agent ready
    assert state(env, "A001") == "ready" and call_id not in env.service.view.calls
    r = await agent.post("/api/agents/A001/state", json={"state": "not_ready"})
    assert r.status_code == 200, r.text
    # a queued call offered to A002 (their seat rings): not cancellable from the desktop
    assert (await other.post("/api/agents/A002/state", json={"state": "ready"})).status_code \
        == 200
    env.service.call_waiting("pbx1-1764900000.1", "PJSIP/carrier-00000001", "13900000001",
                             "general", 0, None)
    await env.settle()
    assert state(env, "A002") == "reserved"
    r = await other.post("/api/calls/pbx1-1764900000.1/hangup")
    assert r.status_code == 403, r.text
    assert len(env.ami.named("Hangup")) == 1


@BOTH_DATABASES
async def test_bad_numbers_and_the_do_not_call_list_are_refused_and_say_why(env: Env) -> None:
    agent = await env.as_user("A001", "seat01")
    for bad in ("000", "110"):
        number = await order_of(agent, bad)
        r = await agent.post(f"/api/workorders/{number}/call")
        assert r.status_code == 400 and "number" in r.json()["detail"], r.text
    number = await order_of(agent, "+8613800000010")
    with env.ctx.sessions.begin() as s:
        ob_store.dnc_add(s, "13800000010", reason="客户要求勿扰", by="S01", now=T0)
    r = await agent.post(f"/api/workorders/{number}/call")
    assert r.status_code == 409, r.text
    assert "do-not-call" in r.json()["detail"] and "客户要求勿扰" in r.json()["detail"]
    await env.settle()
    assert env.pbx.clicked == [] and state(env, "A001") == "not_ready"


async def test_who_may_call(env: Env) -> None:
    a1 = await env.as_user("A001", "seat01")
    number = await order_of(a1)
    # another agent: not their order (an order they may not see is a 404)
    a2 = await env.as_user("A002", "seat02")
    assert (await a2.post(f"/api/workorders/{number}/call")).status_code == 404
    # a supervisor sees it but has no seat in the ACD: refused, and audited
    sup = await env.as_user("S01")
    r = await sup.post(f"/api/workorders/{number}/call")
    assert r.status_code == 409 and "seat" in r.json()["detail"], r.text
    with env.ctx.sessions.begin() as s:
        row = s.execute(select(AuditLog.actor, AuditLog.action, AuditLog.allowed)
                        .where(AuditLog.action == "call.click_to_call")).one()
    assert tuple(row) == ("S01", "call.click_to_call", False)
    # not logged in at all
    anon = httpx.AsyncClient(transport=env.client._transport, base_url="http://desk")
    assert (await anon.post(f"/api/workorders/{number}/call")).status_code == 401
    # an unknown order, a call id out of shape, and another agent's call
    unknown = "9" * len(number)
    assert (await a1.post(f"/api/workorders/{unknown}/call")).status_code == 404
    assert (await a1.post("/api/workorders/WO-NONE/call")).status_code == 400
    assert (await a1.post("/api/calls/bad%20id/call-back")).status_code == 422
    r = await a1.post(f"/api/workorders/{number}/call")
    assert r.status_code == 202
    call_id = r.json()["call_id"]
    assert (await a2.post(f"/api/calls/{call_id}/call-back")).status_code == 403
    assert env.pbx.clicked and all(c[0] == "seat01" for c in env.pbx.clicked)


async def test_a_report_s_reporter_is_not_called_by_an_agent(env: Env) -> None:
    agent = await env.as_user("A001", "seat01")
    r = await agent.post("/api/workorders", json={
        "type": "report", "caller_number": CUSTOMER, "description": "有人窃电"})
    assert r.status_code == 201, r.text
    r = await agent.post(f"/api/workorders/{r.json()['number']}/call")
    assert r.status_code == 403 and "confidential" in r.json()["detail"]
