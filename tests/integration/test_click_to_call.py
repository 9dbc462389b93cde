"""Click-to-call (拨打客户) and the agent's one-click return visit from the browser desktop, on
real Asterisk (issue 14 §5 and §2): a SIPp phone on the agent's seat, a SIPp UAS as the customer
behind the carrier trunk (tests/integration/conftest.py: CUSTOMER_PORT).

The agent clicks "call customer" on one of their work orders: the seat rings first and answers,
then the customer is dialled on the trunk and answers; the desktop shows the call as the
agent's current call; the agent hangs up from the browser, then calls the customer back from
the (closed) pop card and hangs up again. The call is recorded (indexed under
the call's id), has its record (the number, who placed it) and is on the order's history. Then
the agent clicks the one-click return visit of a resolved order: the outbound engine dials it,
the customer keys 1 and the order is visited. Waits are on AMI events, the page and the
database, with deadlines; nothing sleeps."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.outbound_service import attempt_of
from cti.db import outbound as ob_store
from cti.db.calls import CLICK_TO_CALL_DNIS
from cti.db.models import Agent, Call
from cti.db.models_recordings import Recording
from hotline import stack
from tests.integration.conftest import CUSTOMER_PORT, Backend, CtiProcess
from tests.support.agent_phones import AgentPhones, answering_seats
from tests.support.ami import AmiRecorder, send_action
from tests.support.browser import VIEWPORT, browser, login
from tests.support.ports import port
from workorders.lifecycle import Department, Role, SlaPolicy
from workorders.service import Actor, NewOrder, WorkOrderService

pytestmark = pytest.mark.integration
PHONE_PORT, REGISTER_PORT = port(15072), port(15084)
SEAT = "seat48"
SEAT_RING_MS = 4000
CREW = Actor("crew", Role.DEPARTMENT, Department.REPAIR)
serial = itertools.count(1)


@pytest.fixture(scope="module")
def phones(cti: CtiProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # the seat rings 4 s before it answers (under the tests' 5 s ring timeout): the window in
    # which the agent cancels a click-to-call from the page
    with answering_seats(cti.settings, [SEAT], PHONE_PORT, REGISTER_PORT,
                         tmp_path_factory.mktemp("c2c-phones"), ring_ms=SEAT_RING_MS):
        yield


@pytest.fixture
def customer(tmp_path: Path) -> Iterator[None]:
    """The customer's phone behind the carrier trunk: answers every call we place."""
    phone = AgentPhones(CUSTOMER_PORT, tmp_path / "customer", answer=True, ring_ms=500)
    try:
        yield
    finally:
        phone.stop()


@pytest.fixture(scope="module")
def agent(backend: Backend) -> str:
    """A general agent the other modules leave alone."""
    with backend.sessions() as s:
        rows = s.execute(select(Agent.agent_id, Agent.skills).where(Agent.role == "agent")
                         .order_by(Agent.agent_id)).all()
    general = [a for a, skills in rows if "general" in skills and "english" not in skills]
    assert len(general) > 20, general
    return str(general[14])


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as b:
        yield b


@pytest.fixture
def desk(chromium: Any, web: str, agent: str, phones: None) -> Iterator[Any]:
    """The agent's desktop page, logged in at SEAT; the agent logged out at the end."""
    ctx = chromium.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    try:
        login(page, web, agent, SEAT)
        page.wait_for_url("**/agent.html")
        yield page
    finally:
        stack.wait_until(lambda: page.request.post(
            f"{web}/api/agents/{agent}/logout").status in (200, 401), 30, f"{agent} logged out")
        ctx.close()


def _order(backend: Backend, agent: str, *, resolved: bool = False) -> tuple[str, str]:
    """A repair order the agent accepted (so it is theirs to see); its number and caller. No
    return visit is scheduled by resolving it here: the agent's click places it."""
    svc = WorkOrderService(backend.sessions, SlaPolicy())
    caller = f"{backend.prefix}86{next(serial):05d}"
    me = Actor(agent, Role.AGENT)
    order = svc.create(NewOrder(type="fault_repair", description="家中无电",
                                caller_number=caller), me)
    number = str(order["number"])
    if resolved:
        for to, who in (("dispatched", me), ("department_accepted", CREW), ("on_site", CREW),
                        ("resolved", CREW)):
            svc.transition(number, to, who)
    return number, caller


def _called_event(backend: Backend, number: str) -> str | None:
    doc = WorkOrderService(backend.sessions, SlaPolicy()).get(number)
    notes = [e["note"] for e in doc["events"] if e["step"] == "called"]
    return notes[0].removeprefix("call_id=") if notes else None


def test_call_customer_from_an_order_then_hang_up_from_the_browser(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, customer: None, agent: str,
        desk: Any) -> None:
    from playwright.sync_api import expect

    number, caller = _order(backend, agent)
    page = desk
    page.reload()  # the order was made after the page's first load
    state = page.get_by_test_id("agent-state")
    expect(state).to_have_attribute("data-state", "not_ready")
    row = page.locator(f'[data-testid="wo-row"][data-number="{number}"]')
    mark = ami.mark()
    row.get_by_test_id("wo-call-customer").click()
    # the seat rings first and answers; then the customer is dialled on the trunk
    seat_up = ami.wait_for(lambda e: e.get("UserEvent") == "HotlineCallbackAnswered"
                           and e.get("Seat") == SEAT, 30, "the seat answered", since=mark)
    call_id = str(seat_up["CallId"])
    assert seat_up["Uniqueid"] == call_id  # the seat's leg carries the call's id
    dialled = ami.wait_for(lambda e: e.get("Event") == "DialEnd"
                           and e.get("Uniqueid") == call_id, 30, "the customer answered",
                           since=mark)
    assert dialled["DialStatus"] == "ANSWER", dialled
    assert str(dialled["DestChannel"]).startswith("PJSIP/carrier-out-"), dialled
    rec = ami.wait_for(lambda e: e.get("UserEvent") == "HotlineRecordingStart"
                       and e.get("CallId") == call_id, 10, "the seat's leg recorded",
                       since=mark)
    assert rec["Seat"] == SEAT
    # the desktop: on the call, with its pop (the customer) and hang-up
    expect(state).to_have_attribute("data-state", "on_call")
    expect(page.get_by_test_id("pop-caller")).to_have_text(caller)
    expect(page.get_by_test_id("call-hangup")).to_be_enabled()
    # the customer is on the seat's own dial: hold, transfer and consult do not apply
    for control in ("call-hold", "call-transfer", "call-consult"):
        expect(page.get_by_test_id(control)).to_be_disabled()
    assert _called_event(backend, number) == call_id  # on the order's history
    m = ami.mark()
    page.get_by_test_id("call-hangup").click()
    ami.wait_for(lambda e: e.get("Event") == "Hangup"
                 and e.get("Channel", "").startswith("PJSIP/carrier-out")
                 and e.get("Linkedid") == call_id, 10, "the customer's leg ended", since=m)
    expect(state).to_have_attribute("data-state", "wrap_up")
    expect(state).to_have_attribute("data-state", "ready",
                                    timeout=(cti.settings.acd.wrap_up_s + 15) * 1000)

    # the last caller's card (closed) calls them back: the seat first again, then the customer
    expect(page.get_by_test_id("pop-closed")).to_be_visible()
    m = ami.mark()
    page.get_by_test_id("pop-call-back").click()
    again = ami.wait_for(lambda e: e.get("UserEvent") == "HotlineCallbackAnswered"
                         and e.get("Seat") == SEAT, 30, "the seat answered again", since=m)
    second = str(again["CallId"])
    assert second != call_id
    assert ami.wait_for(lambda e: e.get("Event") == "DialEnd" and e.get("Uniqueid") == second,
                        30, "the customer answered again", since=m)["DialStatus"] == "ANSWER"
    expect(state).to_have_attribute("data-state", "on_call")
    m = ami.mark()
    page.get_by_test_id("call-hangup").click()
    ami.wait_for(lambda e: e.get("Event") == "Hangup"
                 and e.get("Channel", "").startswith("PJSIP/carrier-out")
                 and e.get("Linkedid") == second, 10, "the call back ended", since=m)
    expect(state).to_have_attribute("data-state", "wrap_up")

    def recorded() -> bool:
        with backend.sessions() as s:
            return s.scalar(select(Recording.id).where(Recording.call_id == call_id)
                            ) is not None

    stack.wait_until(recorded, 20, "the click-to-call's recording indexed")

    def closed() -> Call | None:
        with backend.sessions() as s:
            row = s.scalars(select(Call).where(Call.call_id == call_id)).one_or_none()
        return row if row is not None and row.ended_at is not None else None

    stack.wait_until(lambda: closed() is not None, 10, "the call record closed")
    rec_row = closed()
    assert rec_row is not None
    assert (rec_row.caller_number, rec_row.dnis, rec_row.agent_id, rec_row.seat) == (
        caller, CLICK_TO_CALL_DNIS, agent, SEAT)
    assert rec_row.answered_at is not None
    # in the agent's calls today
    page.reload()
    expect(page.locator(f'[data-testid="mycall"][data-call-id="{call_id}"]')).to_contain_text(
        caller)


def test_the_agent_cancels_a_click_to_call_while_their_seat_rings(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, customer: None, agent: str,
        desk: Any) -> None:
    """Hang-up works before the seat answers: the seat's ringing leg ends, the customer is
    never dialled, and the agent is free again."""
    from playwright.sync_api import expect

    number, _caller = _order(backend, agent)
    page = desk
    page.reload()
    state = page.get_by_test_id("agent-state")
    expect(state).to_have_attribute("data-state", "not_ready")
    hangup = page.get_by_test_id("call-hangup")
    expect(hangup).to_be_disabled()
    mark = ami.mark()
    page.locator(f'[data-testid="wo-row"][data-number="{number}"]').get_by_test_id(
        "wo-call-customer").click()
    expect(state).to_have_attribute("data-state", "reserved")
    expect(hangup).to_be_enabled()
    hangup.click()
    gone = ami.wait_for(lambda e: e.get("Event") == "Hangup"
                        and e.get("Channel", "").startswith(f"PJSIP/{SEAT}-"), 10,
                        "the seat's ringing leg ended", since=mark)
    call_id = str(gone["Uniqueid"])
    expect(state).to_have_attribute("data-state", "ready")
    assert not [e for e in ami.events()[mark:]
                if e.get("UserEvent") == "HotlineCallbackAnswered" and e.get("Seat") == SEAT]
    assert not [e for e in ami.events()[mark:] if e.get("Event") == "DialBegin"
                and e.get("DestChannel", "").startswith("PJSIP/carrier-out")
                and e.get("Linkedid") == call_id], "the customer was dialled"
    expect(hangup).to_be_disabled()


def test_one_click_return_visit_from_the_agents_desktop(
        ami: AmiRecorder, backend: Backend, customer: None, agent: str, desk: Any) -> None:
    from playwright.sync_api import expect

    number, _ = _order(backend, agent, resolved=True)
    page = desk
    page.reload()  # the order was resolved after the page's first load
    row = page.locator(f'[data-testid="rv-row"][data-number="{number}"]')
    mark = ami.mark()
    row.get_by_test_id("rv-call").click()
    expect(row.get_by_test_id("rv-call")).to_have_attribute("data-state", "dialling")
    answered = ami.wait_for(lambda e: e.get("UserEvent") == "HotlineOutboundAnswered"
                            and attempt_of(str(e.get("Uniqueid", ""))) is not None,
                            30, "the return visit answered", since=mark)
    with backend.sessions() as s:
        jobs = ob_store.jobs_of_order(s, number)
        [attempt] = ob_store.attempts_of(s, jobs[0])
    assert len(jobs) == 1 and attempt["linkedid"] == answered["Uniqueid"]
    reply = send_action(ami, {"Action": "PlayDTMF", "Channel": answered["Channel"],
                              "Digit": "1", "Duration": "200", "Receive": "yes"})
    assert reply.success, reply
    svc = WorkOrderService(backend.sessions, SlaPolicy())
    stack.wait_until(lambda: svc.get(number)["status"] == "return_visit", 30,
                     "the satisfied visit on the order")
    assert svc.get(number)["satisfaction"] == "satisfied"
