"""After-hours callbacks through the outbound service (callcenter/callbacks.py), against a fake
AMI and a migrated SQLite database: a callback the IVR booked is dialled only when its skill is
open and one of its agents is ready, into hotline-callback-due with the skill (checked against
the configured ones), the queue priority and the customer's number; the answer writes the
call's record before the customer is queued; the hangup ends the job done; no answer is tried
again; callbacks take the trunk before return visits; one never started before its deadline
is written expired."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.callbacks import PURPOSE, Callbacks
from callcenter.ivr_services import DbIvrServices
from callcenter.outbound_service import OutboundConfig, OutboundService, attempt_of
from cti.db import calendars as calendar_store
from cti.db import outbound as store
from cti.db.calls import CALLBACK_DNIS
from cti.db.migrate import upgrade
from cti.db.models import Call
from cti.db.session import make_engine, make_session_factory
from cti.db.staff import ensure_shipped_skills
from outbound.callback import QUEUE_PRIORITY, Agents
from outbound.jobs import Job, Purpose, State
from outbound.pacing import Capacity, Pacing
from outbound.retry import RetryPolicy
from outbound.window import SHANGHAI
from tests.support.fakes import Clock, FakeAmi

VISIT = Purpose("return_visit", "hotline-return-visit", hand_over=True)
T0 = datetime(2026, 12, 8, 10, 0, tzinfo=SHANGHAI)  # a Tuesday morning
NUMBER = "13800138000"


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with factory.begin() as s:
        ensure_shipped_skills(s, T0)
    yield factory
    engine.dispose()


class World:
    def __init__(self, sessions: sessionmaker[Session], *, channels_free: int = 30) -> None:
        self.sessions = sessions
        self.ami = FakeAmi()
        self.clock = Clock(T0)
        self.channels_free = channels_free
        self.agents = Agents()
        callbacks = Callbacks(sessions, lambda: self.agents, tz=SHANGHAI,
                              always_open="general")

        def capacity() -> Capacity:
            return Capacity(active=0, channels_free=self.channels_free,
                            ready_agents=sum(self.agents.ready.values()),
                            waiting_inbound=sum(self.agents.waiting.values()))

        self.service = OutboundService(
            sessions, self.ami,
            OutboundConfig(trunk="carrier-out", ring_s=20,
                           retry=RetryPolicy(max_attempts=2, backoff_s=(600,)),
                           pacing=Pacing(max_concurrent=4, reserve_channels=2)),
            {VISIT.name: VISIT, PURPOSE.name: PURPOSE}, capacity=capacity,
            paused=lambda: False, clock=self.clock,
            variables={PURPOSE.name: callbacks.variables},
            admit={PURPOSE.name: callbacks.admit}, answered={PURPOSE.name: callbacks.answered})
        assert asyncio.run(self.service.recover([])) == 0

    def book(self, skill: str, *, at: datetime | None = None, lang: str = "zh",
             number: str = NUMBER, valid_for: timedelta = timedelta(hours=4)) -> int:
        """As the IVR books it (callcenter.ivr_services), for when `skill` opens (`at`)."""
        ivr = DbIvrServices(self.sessions)
        at = at or self.clock.now
        return asyncio.run(ivr.book_callback(call_id="pbx1-1.1", caller=number, skill=skill,
                                             at=at, lang=lang, valid_for=valid_for,
                                             now=at - timedelta(hours=10)))

    def job(self, job_id: int) -> Job:
        with self.sessions() as s:
            job = store.get(s, job_id)
        assert job is not None
        return job

    def tick(self) -> list[int]:
        return asyncio.run(self.service.tick())

    def event(self, **headers: str) -> None:
        asyncio.run(self.service.on_ami_event(headers))

    def originate(self, attempt: int) -> dict[str, Any]:
        [o] = [o for o in self.ami.named("Originate") if attempt_of(o["ChannelId"]) == attempt]
        return o

    def call(self, call_id: str) -> Call | None:
        with self.sessions() as s:
            return s.scalar(select(Call).where(Call.call_id == call_id))


def _variables(originate: dict[str, Any]) -> dict[str, str]:
    return dict(v.split("=", 1) for v in originate["Variable"])


def test_a_callback_is_dialled_when_an_agent_of_its_skill_is_ready_and_queued_to_it(
        sessions: sessionmaker[Session]) -> None:
    w = World(sessions)
    job = w.book("billing", lang="en")
    assert w.job(job).skill == "billing"           # the IVR's booking names the skill
    assert w.tick() == []                          # nobody ready: the customer is not called
    w.agents = Agents(ready={"general": 3})
    assert w.tick() == []                          # agents, but none of billing
    w.agents = Agents(ready={"billing": 1}, waiting={"billing": 1})
    assert w.tick() == []                          # its one agent is an inbound caller's
    w.agents = Agents(ready={"billing": 1, "general": 1})
    [attempt] = w.tick()
    o = w.originate(attempt)
    assert (o["Context"], o["Channel"]) == ("hotline-callback-due", f"PJSIP/{NUMBER}@carrier-out")
    assert _variables(o) | {"HOTLINE_ATTEMPT": "", "HOTLINE_JOB": ""} == {
        "HOTLINE_ATTEMPT": "", "HOTLINE_JOB": "", "HOTLINE_LANG": "en",
        "HOTLINE_SKILL": "billing", "HOTLINE_PRIORITY": str(QUEUE_PRIORITY),
        "HOTLINE_CUSTOMER": NUMBER}
    assert w.tick() == []                          # its agent is counted as taken meanwhile

    # the customer answers: the call's record is there before they are queued
    chan = o["ChannelId"]
    w.event(Event="OriginateResponse", Response="Success", Reason="4", Uniqueid=chan)
    call = w.call(chan)
    assert call is not None
    assert (call.caller_number, call.dnis, call.skill, call.outcome, call.language,
            call.priority) == (NUMBER, CALLBACK_DNIS, "billing", "transfer", "en",
                               QUEUE_PRIORITY)
    assert call.ivr_path == [{"node": "callback", "job": job, "skill": "billing"}]
    # the call goes on in the queue; its hangup ends the job done (the call record has the rest)
    w.event(Event="Hangup", Uniqueid=chan, Cause="16")
    after = w.job(job)
    assert (after.state, after.attempts, after.last_outcome) == (State.DONE, 1, "answered")


def test_a_closed_skill_is_called_back_when_it_opens(sessions: sessionmaker[Session]) -> None:
    w = World(sessions)
    with sessions.begin() as s:
        calendar_store.set_calendar(s, "billing", {d: "08:00-20:00" for d in (
            "mon", "tue", "wed", "thu", "fri", "sat", "sun")}, after_hours="callback",
            route_to=None, by="test", now=T0, always_open="general")
    w.agents = Agents(ready={"billing": 2})
    w.clock.now = T0.replace(hour=20, minute=30)   # closed (the call window is still open)
    job = w.book("billing", at=T0.replace(hour=20, minute=0), valid_for=timedelta(hours=20))
    assert w.tick() == [] and w.job(job).state is State.SCHEDULED
    w.clock.now = (T0 + timedelta(days=1)).replace(hour=8, minute=0)
    [attempt] = w.tick()
    assert _variables(w.originate(attempt))["HOTLINE_SKILL"] == "billing"


def test_no_answer_is_tried_again_then_given_up(sessions: sessionmaker[Session]) -> None:
    w = World(sessions)
    w.agents = Agents(ready={"repair": 1})
    job = w.book("repair")
    [a1] = w.tick()
    w.event(Event="OriginateResponse", Response="Failure", Reason="3",
            Uniqueid=w.originate(a1)["ChannelId"])
    assert w.job(job).state is State.SCHEDULED and w.call(w.originate(a1)["ChannelId"]) is None
    w.clock.advance(timedelta(minutes=10))
    [a2] = w.tick()
    w.event(Event="OriginateResponse", Response="Failure", Reason="5",
            Uniqueid=w.originate(a2)["ChannelId"])
    after = w.job(job)
    # no agents' list of callbacks to hand it to: it ends given up (logged for the supervisor)
    assert (after.state, after.attempts, after.last_outcome) == (State.GAVE_UP, 2, "busy")


def test_callbacks_take_the_trunk_before_return_visits(sessions: sessionmaker[Session]) -> None:
    w = World(sessions, channels_free=3)            # 2 kept for inbound callers: room for one
    w.agents = Agents(ready={"general": 1})
    with sessions.begin() as s:
        visit = store.schedule(s, purpose="return_visit", number="13900139000", lang="zh",
                               now=T0 - timedelta(hours=1), created_by="system",
                               work_order_number="R1").job_id
    job = w.book("general")
    [attempt] = w.tick()
    assert w.originate(attempt)["Context"] == "hotline-callback-due"
    assert w.job(job).state is State.DIALING and w.job(visit).state is State.SCHEDULED


def test_an_unconfigured_skill_goes_to_the_always_open_one_and_late_jobs_expire(
        sessions: sessionmaker[Session]) -> None:
    w = World(sessions)
    w.agents = Agents(ready={"general": 1})
    gone = w.book("water", number="13700137000")    # a skill removed since the booking
    late = w.book("billing", number="13600136000", at=T0 - timedelta(hours=5))
    [attempt] = w.tick()
    assert attempt_of(w.originate(attempt)["ChannelId"]) == attempt
    assert _variables(w.originate(attempt))["HOTLINE_SKILL"] == "general"
    assert w.job(gone).state is State.DIALING
    # its 4 hours ran out with no billing agent ever free: expired, not left due for ever
    assert w.job(late).state is State.EXPIRED
    with sessions() as s:
        assert [j.id for j in store.due(s, datetime.now(UTC) + timedelta(days=1))] == []
