"""The outbound service against a fake AMI and a migrated SQLite database: it dials due jobs
(one Originate each, never re-sent, the attempt written first), keeps to pacing, the window,
storm mode and the do-not-call list, settles attempts from Asterisk's events (busy, no answer,
answered and hung up, a survey's result) and, after a restart, never dials an attempt again
whose end it did not hear."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from callcenter.outbound_service import (
    OutboundConfig,
    OutboundService,
    attempt_of,
    channel_id,
)
from cti.db import outbound as store
from cti.db.migrate import upgrade
from cti.db.session import make_engine, make_session_factory
from outbound.jobs import Job, Purpose, State
from outbound.pacing import Capacity, Pacing
from outbound.retry import RetryPolicy
from outbound.window import SHANGHAI
from tests.support.fakes import Clock, FakeAmi

VISIT = Purpose("return_visit", "hotline-return-visit", hand_over=True)
T0 = datetime(2026, 12, 7, 10, 0, tzinfo=SHANGHAI)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


class World:
    def __init__(self, sessions: sessionmaker[Session], *, max_concurrent: int = 2,
                 channels_free: int = 30, recover: bool = True) -> None:
        self.sessions = sessions
        self.ami = FakeAmi()
        self.clock = Clock(T0)
        self.storm = False
        self.channels_free = channels_free
        self.results: list[tuple[int, dict[str, str]]] = []

        async def on_result(job: Job, result: dict[str, str], at: datetime) -> None:
            self.results.append((job.id, result))

        self.service = OutboundService(
            sessions, self.ami,
            OutboundConfig(trunk="carrier-out", ring_s=20,
                           retry=RetryPolicy(max_attempts=2, backoff_s=(600,)),
                           pacing=Pacing(max_concurrent=max_concurrent, reserve_channels=2)),
            {"return_visit": VISIT},
            capacity=lambda: Capacity(active=0, channels_free=self.channels_free),
            paused=lambda: self.storm, clock=self.clock, results={"return_visit": on_result})
        if recover:  # as the daemon does on its AMI connection, before any tick dials
            assert asyncio.run(self.service.recover([])) == 0

    def schedule(self, number: str, order: str) -> int:
        with self.sessions() as s:
            job = store.schedule(s, purpose="return_visit", number=number, lang="zh",
                                 now=self.clock(), created_by="system",
                                 work_order_number=order).job_id
            s.commit()
        return job

    def job(self, job_id: int) -> Job:
        with self.sessions() as s:
            job = store.get(s, job_id)
        assert job is not None
        return job

    def attempts(self, job_id: int) -> list[dict[str, Any]]:
        with self.sessions() as s:
            return store.attempts_of(s, job_id)

    def tick(self) -> list[int]:
        return asyncio.run(self.service.tick())

    def event(self, **headers: str) -> None:
        asyncio.run(self.service.on_ami_event(headers))

    def chan(self, attempt: int) -> str:
        """The ChannelId the attempt was dialled on (an Asterisk id carrying the attempt)."""
        [cid] = [o["ChannelId"] for o in self.ami.named("Originate")
                 if attempt_of(o["ChannelId"]) == attempt]
        return cid


def test_due_jobs_are_dialled_once_each_within_pacing(sessions: sessionmaker[Session]) -> None:
    w = World(sessions, max_concurrent=2)
    jobs = [w.schedule(f"1380013800{i}", f"R{i}") for i in range(3)]
    begun = w.tick()
    assert len(begun) == 2                       # max_concurrent
    originates = w.ami.named("Originate")
    assert [attempt_of(o["ChannelId"]) for o in originates] == begun
    # an Asterisk id in form (the recorder names recordings by it), the attempt in its sequence
    assert re.fullmatch(r"pbx1-\d+\.9000000\d\d", originates[0]["ChannelId"])
    assert originates[0]["Channel"] == "PJSIP/13800138000@carrier-out"
    assert originates[0]["Context"] == "hotline-return-visit"
    assert all(i is False for i, a in zip(w.ami.idempotent, w.ami.sent, strict=True)
               if a["Action"] == "Originate")     # never re-sent
    assert w.tick() == []                         # nothing more while both are out
    assert [w.job(j).state for j in jobs] == [State.DIALING, State.DIALING, State.SCHEDULED]
    assert attempt_of(channel_id(17, "pbx1", 1796535000)) == 17
    assert attempt_of("pbx1-1796535000.42") is None            # a channel of Asterisk's own
    assert attempt_of("PJSIP/seat01-0001") is None
    with w.sessions() as s:
        assert [a["linkedid"] for a in store.attempts_of(s, jobs[0])] == [originates[0][
            "ChannelId"]]                                          # written before the dial


def test_busy_then_answered_with_a_survey_key(sessions: sessionmaker[Session]) -> None:
    w = World(sessions)
    job = w.schedule("13800138000", "R1")
    [a1] = w.tick()
    w.event(Event="Hangup", Uniqueid=w.chan(a1), Cause="17")
    w.event(Event="OriginateResponse", Response="Failure", Reason="1",
            Uniqueid=w.chan(a1))
    after = w.job(job)
    assert after.state is State.SCHEDULED and after.last_outcome == "busy"
    assert w.tick() == []                         # the backoff
    w.clock.advance(timedelta(minutes=10))
    [a2] = w.tick()
    w.event(Event="OriginateResponse", Response="Success", Reason="4",
            Uniqueid=w.chan(a2), Linkedid="L1")
    # a result that did not come from the attempt's own channel, or with a bad key, is ignored
    w.event(Event="UserEvent", UserEvent="HotlineOutboundResult", Attempt=str(a2), Key="1",
            Uniqueid="pbx1-1796535000.17")
    w.event(Event="UserEvent", UserEvent="HotlineOutboundResult", Attempt=str(a2),
            Key="1\r\nEvent: x", Uniqueid=w.chan(a2))
    assert w.results == []
    w.event(Event="UserEvent", UserEvent="HotlineOutboundResult", Attempt=str(a2), Key="1",
            Uniqueid=w.chan(a2))
    w.clock.advance(timedelta(seconds=40))
    w.event(Event="Hangup", Uniqueid=w.chan(a2), Cause="16")
    done = w.job(job)
    assert done.state is State.DONE and done.attempts == 2
    assert w.results == [(job, {"Key": "1"})]
    rows = w.attempts(job)
    assert [(r["outcome"], r["cause"]) for r in rows] == [("busy", 17), ("answered", 16)]
    assert rows[1]["duration_s"] == 40.0
    # a repeated Hangup changes nothing
    w.event(Event="Hangup", Uniqueid=w.chan(a2), Cause="16")
    assert len(w.attempts(job)) == 2


def test_no_answer_twice_hands_the_visit_over(sessions: sessionmaker[Session]) -> None:
    w = World(sessions)
    job = w.schedule("13800138000", "R1")
    for _ in range(2):
        [a] = w.tick()
        w.event(Event="OriginateResponse", Response="Failure", Reason="3",
                Uniqueid=w.chan(a))
        w.clock.advance(timedelta(minutes=10))
    assert w.job(job).state is State.HANDED_OVER
    assert w.tick() == []


def test_nothing_outside_the_window_in_storm_mode_or_on_the_do_not_call_list(
        sessions: sessionmaker[Session]) -> None:
    w = World(sessions)
    blocked = w.schedule("13900139000", "R2")
    with sessions() as s:
        store.dnc_add(s, "+86 139 0013 9000", reason="asked", by="S01", now=T0)
        s.commit()
    job = w.schedule("13800138000", "R1")
    w.clock.advance(timedelta(hours=11, minutes=30))       # 21:30 in Shanghai
    assert w.tick() == []
    w.clock.advance(timedelta(hours=11))                   # 08:30 the next day
    w.storm = True
    assert w.tick() == []
    w.storm = False
    w.channels_free = 2                                    # all kept for inbound callers
    assert w.tick() == []
    w.channels_free = 30
    [a] = w.tick()
    assert w.job(blocked).state is State.BLOCKED
    assert w.job(job).state is State.DIALING
    assert [o["Channel"] for o in w.ami.named("Originate")] == [
        "PJSIP/13800138000@carrier-out"] and a > 0


def test_a_number_listed_while_running_is_not_dialled_at_the_next_tick(
        sessions: sessionmaker[Session]) -> None:
    """The console (and the CLI) add through dnc_add_audited while the engine runs: the engine
    reads the list at every tick, it caches nothing."""
    from cti.db.web_audit import AuditEntry

    w = World(sessions, max_concurrent=1)
    first = w.schedule("13800138000", "R1")
    assert len(w.tick()) == 1                    # the engine has ticked with an empty list
    later = w.schedule("13900139000", "R2")
    store.dnc_add_audited(sessions, "+86 139-0013-9000", reason="asked",
                          audit=lambda n: AuditEntry(at=T0, actor="S01", role="supervisor",
                                                     action="outbound.dnc_add", target=n,
                                                     allowed=True), now=T0)
    w.event(Event="OriginateResponse", Response="Failure", Reason="3",
            Uniqueid=w.chan(w.attempts(first)[0]["id"]))
    assert w.tick() == []
    assert w.job(later).state is State.BLOCKED
    assert [o["Channel"] for o in w.ami.named("Originate")] == ["PJSIP/13800138000@carrier-out"]


def test_a_restart_never_dials_twice(sessions: sessionmaker[Session]) -> None:
    w = World(sessions)
    live_job, lost_job = w.schedule("13800138000", "R1"), w.schedule("13900139000", "R2")
    a_live, a_lost = w.tick()
    # the CTI dies; a new one starts: Asterisk still has the first call up
    again = World(sessions, recover=False)
    assert again.tick() == []                              # not before the recovery
    settled = asyncio.run(again.service.recover([w.chan(a_live), "PJSIP/seat01-0001"]))
    assert settled == 1
    assert again.tick() == []                              # nobody dialled again
    assert again.ami.named("Originate") == []
    lost = again.job(lost_job)
    assert lost.state is State.SCHEDULED and lost.last_outcome == "unknown"
    # the live call is heard to its end by the new process
    again.event(Event="Hangup", Uniqueid=w.chan(a_live), Cause="16")
    assert again.job(live_job).state is State.DONE
    assert [r["outcome"] for r in again.attempts(lost_job)] == ["unknown"]


def test_a_key_pressed_while_no_cti_listened_is_read_back_not_dialled_again(
        sessions: sessionmaker[Session]) -> None:
    """The customer answered and keyed while the CTI was down, and hung up before it came
    back: the dialplan kept the key in AstDB (hotline-rec/<UTC day>/ob<attempt>). The new
    process reads it there: the visit is answered and scored, and nobody is dialled again.
    Without a kept key the attempt is unknown and waits its backoff, as before."""
    w = World(sessions)
    kept_job, lost_job = w.schedule("13800138000", "R1"), w.schedule("13900139000", "R2")
    a_kept, a_lost = w.tick()
    day = w.clock().astimezone(UTC).strftime("%Y%m%d")
    again = World(sessions, recover=False)
    again.ami.astdb[f"hotline-rec/{day}/ob{a_kept}"] = "2"
    assert asyncio.run(again.service.recover([])) == 1        # only the lost one unknown
    assert again.tick() == [] and again.ami.named("Originate") == []
    kept = again.job(kept_job)
    assert kept.state is State.DONE and kept.last_outcome == "answered"
    assert again.results == [(kept_job, {"Key": "2"})]
    assert [r["outcome"] for r in again.attempts(kept_job)] == ["answered"]
    assert again.job(lost_job).last_outcome == "unknown"
    # asked on the day the attempt began and the next (a call over midnight, UTC)
    families = {a["Family"] for a in again.ami.named("DBGet") if a["Key"] == f"ob{a_lost}"}
    assert families == {f"hotline-rec/{day}", "hotline-rec/"
                        + (w.clock() + timedelta(days=1)).astimezone(UTC).strftime("%Y%m%d")}


def test_the_originate_says_the_customers_language(sessions: sessionmaker[Session]) -> None:
    """HOTLINE_LANG (zh or en) goes with every dial, so the survey is said in the customer's
    language (it was never set: everyone heard Mandarin)."""
    w = World(sessions)
    with sessions() as s:
        en = store.schedule(s, purpose="return_visit", number="13800138000", lang="en",
                            now=w.clock(), created_by="system", work_order_number="R1").job_id
        zh = store.schedule(s, purpose="return_visit", number="13900139000", lang="zh",
                            now=w.clock(), created_by="system", work_order_number="R2").job_id
        s.commit()
    w.tick()
    langs = {next(v for v in o["Variable"] if v.startswith("HOTLINE_JOB=")):
             [v for v in o["Variable"] if v.startswith("HOTLINE_LANG=")]
             for o in w.ami.named("Originate")}
    assert langs == {f"HOTLINE_JOB={en}": ["HOTLINE_LANG=en"],
                     f"HOTLINE_JOB={zh}": ["HOTLINE_LANG=zh"]}


def test_an_originate_never_answered_ends_after_its_ring_time(
        sessions: sessionmaker[Session]) -> None:
    w = World(sessions)
    job = w.schedule("13800138000", "R1")
    [a] = w.tick()
    w.clock.advance(timedelta(seconds=20 + 31))
    assert w.tick() == []
    assert w.job(job).state is State.SCHEDULED
    assert [r["outcome"] for r in w.attempts(job)] == ["unknown"] and a > 0


def test_the_event_stream_only_hands_over_our_events(sessions: sessionmaker[Session]) -> None:
    """The AMI stream also feeds the ACD: offer() never waits, and keeps only the events of
    our attempts (and the survey's result) for consume(), in order."""
    w = World(sessions)
    job = w.schedule("13800138000", "R1")
    [a] = w.tick()
    ours = [{"Event": "OriginateResponse", "Response": "Failure", "Reason": "5",
             "Uniqueid": w.chan(a)},
            {"Event": "UserEvent", "UserEvent": "HotlineOutboundResult", "Attempt": str(a)}]
    others = [{"Event": "Newchannel", "Uniqueid": "pbx1-1796535000.42"},
              {"Event": "Hangup", "Uniqueid": "pbx1-1796535000.43", "Cause": "16"}]

    async def run() -> None:
        for msg in (others[0], ours[0], others[1], ours[1]):
            w.service.offer(msg)
        consumer = asyncio.create_task(w.service.consume())
        try:
            async with asyncio.timeout(5):
                await w.service.drained()
        finally:
            consumer.cancel()
    asyncio.run(run())
    assert w.job(job).last_outcome == "busy"
