"""Planned-outage notices by phone (issue 14 §4) on real Asterisk: a planned outage calls
exactly the affected important customers, over the carrier trunk, to a SIPp customer phone
(tests/integration/conftest.py: outbound_trunk is CUSTOMER_PORT; [outbound] allows any hour).

The town: an area with a hospital and a life-support customer (important; she chose English
when she last called) and an ordinary household, and a hospital in another area. A planned
outage over the first area starts in 6 hours, so its 1-day notice is due now. The scheduler
(callcenter.outage_notices, run here for this outage alone: the suite's CTI schedules none
itself, see conftest) makes the jobs; the CTI's outbound engine dials them into
hotline-outage-notice, which plays the notice from the prompt files the CTI chose, in each
customer's language. The hospital keys 1 (AMI PlayDTMF with Receive, as if the phone had sent
it) and hears it again, then to the end; the life-support customer hangs up during it. Each
outcome lands on the customer's job and the console's list; both calls are recorded.
Waits are on AMI events and database conditions with deadlines, never sleeps.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from callcenter.outage_notices import OutageNotices, notice_calls
from callcenter.outage_service import OutageService, Who
from callcenter.outbound_service import attempt_of
from cti.db import outbound as store
from cti.db.models import Account, AccountPhone, Area, Call, Customer
from cti.db.models_outbound import OutboundAttempt, OutboundJob
from cti.db.models_recordings import Recording
from cti.db.outages import NoticeDraft
from hotline import stack
from outages.scope import Cause
from tests.integration.conftest import CUSTOMER_PORT, Backend, CtiProcess
from tests.support.agent_phones import AgentPhones
from tests.support.ami import AmiRecorder, Event, send_action

pytestmark = pytest.mark.integration
serial = itertools.count(1)


def _customer(backend: Backend, s: Any, area: Area, kind: str | None, name: str) -> str:
    """A customer with one account in `area` and one phone; the phone."""
    n = next(serial)
    phone = f"{backend.prefix}89{n:05d}"
    c = Customer(name=name, important=kind is not None, important_kind=kind)
    s.add(c)
    s.flush()
    a = Account(account_no=f"89{backend.prefix[-1]}{n:07d}", customer_id=c.id,
                service_address=f"测试路{n}号", area_id=area.id)
    s.add(a)
    s.flush()
    s.add(AccountPhone(account_id=a.id, phone=phone))
    return phone


def _town(backend: Backend) -> dict[str, Any]:
    with backend.sessions.begin() as s:
        n = next(serial)
        here = Area(code=f"IT89{backend.name[:2]}{n}", name="外呼测试区", kind="urban")
        there = Area(code=f"IT89{backend.name[:2]}{n}x", name="外呼测试外区", kind="urban")
        s.add_all([here, there])
        s.flush()
        return {"area": here.id,
                "hospital": _customer(backend, s, here, "hospital", "测试医院"),
                "life": _customer(backend, s, here, "life_support", "王秀英"),
                "ordinary": _customer(backend, s, here, None, "李强"),
                "far": _customer(backend, s, there, "hospital", "外区医院")}


def _jobs(backend: Backend, outage_id: int) -> dict[str, int]:
    with backend.sessions() as s:
        return {number: job_id for number, job_id in s.execute(
            select(OutboundJob.number, OutboundJob.id).where(OutboundJob.outage_id == outage_id))}


def _attempt_channel(backend: Backend, job_id: int) -> str | None:
    with backend.sessions() as s:
        rows = store.attempts_of(s, job_id)
    return rows[0]["linkedid"] if rows else None


def _user_event(name: str, uniqueid: str) -> Any:
    return lambda e: (e.get("Event") == "UserEvent" and e.get("UserEvent") == name
                      and e.get("Uniqueid") == uniqueid)


def _recorded(backend: Backend, call_id: str) -> bool:
    with backend.sessions() as s:
        return s.scalar(select(Recording.id).where(Recording.call_id == call_id)) is not None


def _planned(backend: Backend, town: dict[str, Any], now: datetime) -> int:
    """A planned outage over the town's area, starting in 6 hours (its 1-day notice due now)."""
    start = now + timedelta(hours=6)
    return OutageService(backend.sessions).publish(NoticeDraft(
        Cause.PLANNED, start, areas=frozenset({town["area"]}),
        schedule_end_at=start + timedelta(hours=9), agent_text="10kV线路计划检修"),
        Who("S01", "supervisor"), now)


def test_a_planned_outage_calls_exactly_the_affected_important_customers(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, tmp_path: Path) -> None:
    town = _town(backend)
    now = datetime.now(UTC)
    # the life-support customer chose English when they last called the hotline
    with backend.sessions.begin() as s:
        s.add(Call(call_id=f"it89-{backend.name}-{town['life']}", uniqueid="it89",
                   caller_number=town["life"], dnis="95598", language="en",
                   started_at=now - timedelta(days=3)))
    oid = _planned(backend, town, now)
    phone = AgentPhones(CUSTOMER_PORT, tmp_path / "customers", answer=True, ring_ms=500)
    try:
        mark = ami.mark()
        scheduler = OutageNotices(backend.sessions, (7, 1))
        assert scheduler.sync(now, outage_ids={oid})["created"] == 2
        jobs = _jobs(backend, oid)
        # the two important customers in the area; not the ordinary one, not the far hospital
        assert set(jobs) == {town["hospital"], town["life"]}

        channels: dict[str, str] = {}

        def both_dialled() -> bool:
            for number, job_id in jobs.items():
                chan = _attempt_channel(backend, job_id)
                if chan:
                    channels[number] = chan
            return len(channels) == 2

        stack.wait_until(both_dialled, 30, "both notice calls dialled")
        answered: dict[str, Event] = {}
        for number, chan in channels.items():
            answered[number] = ami.wait_for(_user_event("HotlineOutboundAnswered", chan), 30,
                                            f"the notice to {number} answered", since=mark)
            assert answered[number]["Purpose"] == "outage_notice"
            assert attempt_of(chan) == int(answered[number]["Attempt"])
        # each hears it in their language: the English speaker in English
        for number, lang in ((town["hospital"], "zh"), (town["life"], "en")):
            said = send_action(ami, {"Action": "Getvar", "Channel": answered[number]["Channel"],
                                     "Variable": "CHANNEL(language)"})
            assert said.get("Value") == lang, (number, said)

        # the hospital keys 1 as the notice starts (the answered event comes just before it;
        # the key waits on the channel if it is early): it hears it again, then to the end
        hospital = channels[town["hospital"]]
        reply = send_action(ami, {"Action": "PlayDTMF", "Channel": answered[town["hospital"]][
            "Channel"], "Digit": "1", "Duration": "200", "Receive": "yes"})
        assert reply.success, reply
        again = ami.wait_for(_user_event("HotlineOutageNoticeRepeat", hospital), 30,
                             "the notice repeated", since=mark)
        assert again["Repeats"] == "1"
        # the life-support customer hangs up while it plays (it lasts some 15 s)
        life = channels[town["life"]]
        reply = send_action(ami, {"Action": "Hangup",
                                  "Channel": answered[town["life"]]["Channel"]})
        assert reply.success, reply
        early = ami.wait_for(_user_event("HotlineOutboundResult", life), 30,
                             "hung up early, told to the CTI", since=mark)
        assert (early["Heard"], early["Repeats"]) == ("0", "0")
        heard = ami.wait_for(_user_event("HotlineOutboundResult", hospital), 90,
                             "the hospital heard it to the end", since=mark)
        assert (heard["Heard"], heard["Repeats"]) == ("1", "1")
        for chan in (hospital, life):
            ami.wait_for(lambda e, c=chan: e.get("Event") == "Hangup" and e.get("Uniqueid") == c,
                         30, "the notice call ends", since=mark)

        def outcomes() -> dict[str, tuple[Any, ...]]:
            with backend.sessions() as s:
                rows = s.scalars(select(OutboundJob).where(OutboundJob.outage_id == oid)).all()
                return {r.number: (r.state, r.attempts, r.last_outcome,
                                   (r.result or {}).get("Heard"), (r.result or {}).get("Repeats"))
                        for r in rows}

        want = {town["hospital"]: ("done", 1, "answered", "1", "1"),
                town["life"]: ("done", 1, "answered", "0", "0")}
        stack.wait_until(lambda: outcomes() == want, 15, "each outcome on its customer's job")
        # the console's list says the same, per customer
        listed = {c["number"]: (c["heard"], c["repeats"], c["state"])
                  for c in notice_calls(backend.sessions, oid)}
        assert listed == {town["hospital"]: (True, 1, "done"),
                          town["life"]: (False, 0, "done")}
        # nobody else was called since the outage was published: every attempt is one of ours,
        # and the ordinary and far customers have no job of any kind
        with backend.sessions() as s:
            begun = set(s.scalars(select(OutboundAttempt.job_id)
                                  .where(OutboundAttempt.started_at >= now)))
            others = s.scalars(select(OutboundJob.id).where(
                OutboundJob.number.in_([town["ordinary"], town["far"]]))).all()
        assert begun == set(jobs.values()) and others == []
        # a later pass (every tick, or after a restart) makes no second call
        assert scheduler.sync(datetime.now(UTC), outage_ids={oid}) == {
            "created": 0, "moved": 0, "cancelled": 0}
        # both calls recorded, indexed under the call's id like every other recording
        for chan in (hospital, life):
            stack.wait_until(lambda c=chan: _recorded(backend, c), 20,
                             "the notice call's recording indexed")
    finally:
        phone.stop()


def test_a_notice_heard_while_the_cti_is_down_is_kept_and_not_called_again(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, tmp_path: Path) -> None:
    """The customer answers, the CTI dies, the customer hangs up during the notice: the
    dialplan kept the result in AstDB (none|heard|repeats), the restarted CTI reads it there,
    the job is done with it and the customer is not called a second time."""
    town = _town(backend)
    now = datetime.now(UTC)
    oid = _planned(backend, town, now)
    phone = AgentPhones(CUSTOMER_PORT, tmp_path / "customers", answer=True, ring_ms=500)
    killed = False
    try:
        mark = ami.mark()
        assert OutageNotices(backend.sessions, (7, 1)).sync(now, outage_ids={oid})[
            "created"] == 2
        job = _jobs(backend, oid)[town["hospital"]]
        stack.wait_until(lambda: _attempt_channel(backend, job) is not None, 30,
                         "the notice dialled")
        chan = str(_attempt_channel(backend, job))
        answered = ami.wait_for(_user_event("HotlineOutboundAnswered", chan), 30,
                                "the notice answered", since=mark)
        cti.kill9()
        killed = True
        assert send_action(ami, {"Action": "Hangup", "Channel": answered["Channel"]}).success
        told = ami.wait_for(_user_event("HotlineOutboundResult", chan), 30,
                            "the result, told to nobody", since=mark)
        assert (told["Heard"], told["Repeats"]) == ("0", "0")
        cti.start()
        killed = False

        def settled() -> tuple[Any, ...]:
            with backend.sessions() as s:
                r = s.get(OutboundJob, job)
                assert r is not None
                return (r.state, r.attempts, r.last_outcome, (r.result or {}).get("Heard"))

        stack.wait_until(lambda: settled() == ("done", 1, "answered", "0"), 30,
                         "the notice settled from the kept result")
        with backend.sessions() as s:
            assert len(store.attempts_of(s, job)) == 1  # not dialled again
    finally:
        if killed:
            cti.start()
        phone.stop()
        # the other customer's notice, cut by the kill or by the phone's end, is not tried
        # again in a later module
        with backend.sessions.begin() as s:
            s.execute(update(OutboundJob).where(OutboundJob.outage_id == oid,
                                                OutboundJob.state == "scheduled")
                      .values(state="cancelled"))
