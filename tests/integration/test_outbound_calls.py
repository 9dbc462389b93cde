"""The outbound engine on real Asterisk (issue 14): return visits (回访) placed by the CTI over
the carrier trunk to a SIPp customer phone (tests/integration/conftest.py: outbound_trunk is
CUSTOMER_PORT; [outbound] allows any hour, rings 6 s, retries once after 3 s).

A repair order resolved with the return-visit port schedules its visit at once; the CTI dials
the caller's number, the customer answers and hears the survey: 1 (satisfied) lands on the
order as its return-visit step by the system, 2 (not satisfied) reopens it to its department.
A customer who never answers is tried again, then the visit is handed to the agents' list.
The customer's key is pressed as the survey starts (AMI PlayDTMF with Receive, as if the phone
had sent it). Waits are on AMI events and database conditions with deadlines, never sleeps.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.outbound_service import attempt_of
from callcenter.return_visits import ReturnVisits
from cti.db import outbound as store
from cti.db.models_recordings import Recording
from hotline import stack
from tests.integration.conftest import CUSTOMER_PORT, Backend, CtiProcess
from tests.support.agent_phones import AgentPhones
from tests.support.ami import AmiRecorder, send_action
from workorders.lifecycle import Department, Role, SlaPolicy
from workorders.service import Actor, NewOrder, WorkOrderService

pytestmark = pytest.mark.integration
AGENT, CREW = Actor("A007", Role.AGENT), Actor("crew", Role.DEPARTMENT, Department.REPAIR)
serial = itertools.count(1)


def _service(backend: Backend) -> WorkOrderService:
    visits = ReturnVisits(delay=timedelta(0))
    svc = WorkOrderService(backend.sessions, SlaPolicy(), return_visits=visits)
    visits.workorders = svc
    return svc


def _resolve_repair(svc: WorkOrderService, caller: str) -> str:
    order = svc.create(NewOrder(type="fault_repair", description="家中无电",
                                caller_number=caller), AGENT)
    number = str(order["number"])
    for to, who in (("dispatched", AGENT), ("department_accepted", CREW), ("on_site", CREW),
                    ("resolved", CREW)):
        svc.transition(number, to, who)
    return number


def _job_of(backend: Backend, order: str) -> int:
    found: list[int] = []

    def scheduled() -> bool:
        with backend.sessions() as s:
            found[:] = store.jobs_of_order(s, order)
        return bool(found)

    stack.wait_until(scheduled, 10, f"the return visit of {order} scheduled")
    assert len(found) == 1, found
    return found[0]


def _attempts(backend: Backend, job_id: int) -> list[dict[str, Any]]:
    with backend.sessions() as s:
        return store.attempts_of(s, job_id)


def _order(svc: WorkOrderService, number: str) -> dict[str, Any]:
    return svc.get(number)


def _visit(cti: CtiProcess, ami: AmiRecorder, backend: Backend, svc: WorkOrderService,
           key: str) -> tuple[str, int]:
    """Resolve a repair; answer its return visit and key `key`; the order and its job."""
    caller = f"{backend.prefix}87{next(serial):05d}"
    mark = ami.mark()
    order = _resolve_repair(svc, caller)
    job = _job_of(backend, order)
    answered = ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                            and e.get("UserEvent") == "HotlineOutboundAnswered"
                            and attempt_of(str(e.get("Uniqueid", ""))) is not None,
                            30, f"the return visit of {order} answered", since=mark)
    attempt = int(answered["Attempt"])
    [row] = _attempts(backend, job)
    # the channel is the one the attempt was written with before the dial, an Asterisk id
    assert (row["id"], row["linkedid"]) == (attempt, answered["Uniqueid"])
    assert attempt_of(answered["Uniqueid"]) == attempt
    reply = send_action(ami, {"Action": "PlayDTMF", "Channel": answered["Channel"],
                              "Digit": key, "Duration": "200", "Receive": "yes"})
    assert reply.success, reply
    result = ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                          and e.get("UserEvent") == "HotlineOutboundResult"
                          and e.get("Attempt") == str(attempt), 30, f"key {key} heard",
                          since=mark)
    assert result["Key"] == key
    if key == "2":
        # asked for a voice message now, this customer hangs up instead (the message itself:
        # test_return_visit_message.py)
        assert send_action(ami, {"Action": "Hangup", "Channel": answered["Channel"]}).success
    ami.wait_for(lambda e: e.get("Event") == "Hangup"
                 and e.get("Uniqueid") == answered["Uniqueid"], 30, "the visit ends",
                 since=mark)
    stack.wait_until(lambda: _attempts(backend, job)[0]["outcome"] == "answered", 10,
                     "the attempt recorded as answered")
    # recorded, and indexed under the call's id like every other recording
    stack.wait_until(lambda: _recorded(backend, answered["Uniqueid"]), 20,
                     "the return visit's recording indexed")
    return order, job


def _recorded(backend: Backend, call_id: str) -> bool:
    with backend.sessions() as s:
        return s.scalar(select(Recording.id).where(Recording.call_id == call_id)) is not None


def test_return_visits_answered_score_the_order(cti: CtiProcess, ami: AmiRecorder,
                                                backend: Backend, tmp_path: Path) -> None:
    svc = _service(backend)
    phone = AgentPhones(CUSTOMER_PORT, tmp_path / "customer", answer=True, ring_ms=500)
    try:
        happy, _ = _visit(cti, ami, backend, svc, "1")
        stack.wait_until(lambda: _order(svc, happy)["status"] == "return_visit", 10,
                         "the satisfied visit on the order")
        doc = _order(svc, happy)
        assert doc["satisfaction"] == "satisfied"
        assert [e["actor"] for e in doc["events"] if e["step"] == "return_visit"] == ["system"]

        unhappy, job = _visit(cti, ami, backend, svc, "2")
        stack.wait_until(lambda: _order(svc, unhappy)["status"] == "dispatched", 10,
                         "the unsatisfied order reopened")
        doc = _order(svc, unhappy)
        assert (doc["satisfaction"], doc["department"]) == ("unsatisfied", "repair")
        with backend.sessions() as s:
            done = store.get(s, job)
        assert done is not None and str(done.state) == "done" and done.attempts == 1
    finally:
        phone.stop()


def test_no_answer_is_tried_again_then_handed_to_the_agents(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, tmp_path: Path) -> None:
    svc = _service(backend)
    phone = AgentPhones(CUSTOMER_PORT, tmp_path / "customer-away", answer=False)
    try:
        order = _resolve_repair(svc, f"{backend.prefix}87{next(serial):05d}")
        job = _job_of(backend, order)

        def handed_over() -> bool:
            with backend.sessions() as s:
                j = store.get(s, job)
            return j is not None and str(j.state) == "handed_over"

        stack.wait_until(handed_over, 60, "the visit handed over after two tries")
        attempts = _attempts(backend, job)
        assert [a["outcome"] for a in attempts] == ["no_answer", "no_answer"]
        assert all(a["reason"] == 3 for a in attempts)   # rang out (AST_CONTROL_RINGING)
        # the second try waited its backoff (3 s) after the first ended
        assert (attempts[1]["started_at"] - attempts[0]["ended_at"]).total_seconds() >= 2.5
        # the order waits on the agents' return-visit list, resolved
        assert order in [r["number"] for r in svc.return_visit_list()]
        assert _order(svc, order)["status"] == "resolved"
    finally:
        phone.stop()
