"""The outbound engine's tables on SQLite and PostgreSQL: scheduling the same thing twice makes
one job, one of two ticks (or CTIs) that pick a job wins it, an attempt ends exactly once, a
restart finds the attempts still open and settles them without dialling again, and the
do-not-call list compares numbers in their national form."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cti.db import outbound as store
from cti.db.models_outbound import JOB_STATES, OUTCOMES
from outbound.dnc import DoNotCall
from outbound.jobs import Purpose, State, finish, recover, screen
from outbound.outcome import Outcome
from outbound.retry import RetryPolicy
from outbound.window import CallWindow
from workorders.service import WorkOrderService

VISIT = Purpose("return_visit", "hotline-return-visit", hand_over=True)
POLICY = RetryPolicy(max_attempts=2, backoff_s=(600,))
ALWAYS = CallWindow(opens=datetime.min.time(), closes=datetime.max.time())


def test_the_tables_know_every_state_and_outcome_of_the_core() -> None:
    assert set(JOB_STATES) == {s.value for s in State}
    assert set(OUTCOMES) == {o.value for o in Outcome}


def test_scheduling_twice_makes_one_job(session: Session, now: datetime) -> None:
    a = store.schedule(session, purpose="return_visit", number="+86 138 0013 8000",
                       lang="zh", now=now, created_by="system", work_order_number="R1")
    b = store.schedule(session, purpose="return_visit", number="13800138000", lang="zh",
                       now=now, created_by="system", work_order_number="R1")
    assert a.created and not b.created and a.job_id == b.job_id
    job = store.get(session, a.job_id)
    assert job is not None and job.number == "13800138000" and job.state is State.SCHEDULED
    # a notice for one outage and number is one job too; another number is another job
    n1 = store.schedule(session, purpose="outage_notice", number="01065123456", lang="zh",
                        now=now, created_by="system", outage_id=7)
    n2 = store.schedule(session, purpose="outage_notice", number="010-6512-3456", lang="zh",
                        now=now, created_by="system", outage_id=7)
    n3 = store.schedule(session, purpose="outage_notice", number="13900139000", lang="zh",
                        now=now, created_by="system", outage_id=7)
    assert n1.job_id == n2.job_id != n3.job_id


def test_one_of_two_pickers_wins_the_attempt(session_factory: sessionmaker[Session],
                                             now: datetime) -> None:
    with session_factory() as s:
        job_id = store.schedule(s, purpose="return_visit", number="13800138000", lang="zh",
                                now=now, created_by="system", work_order_number="R2").job_id
        s.commit()
    with session_factory() as s:
        assert [j.id for j in store.due(s, now)] == [job_id]
        first = store.begin_attempt(s, job_id, now)
        s.commit()
    with session_factory() as s:
        assert store.begin_attempt(s, job_id, now) is None   # the second tick finds it taken
        assert store.due(s, now) == []
        job = store.get(s, job_id)
    assert first is not None and job is not None
    assert job.state is State.DIALING and job.attempts == 1


def test_an_attempt_ends_once_and_the_job_is_rescheduled(session: Session,
                                                         now: datetime) -> None:
    job_id = store.schedule(session, purpose="return_visit", number="13800138000", lang="zh",
                            now=now, created_by="system", work_order_number="R3").job_id
    attempt = store.begin_attempt(session, job_id, now)
    assert attempt is not None
    end = now + timedelta(seconds=30)
    assert store.finish_attempt(session, attempt, outcome=Outcome.NO_ANSWER, ended_at=end,
                                reason=3, cause=19, sip_cause=480)
    assert not store.finish_attempt(session, attempt, outcome=Outcome.ANSWERED, ended_at=end)
    job = store.get(session, job_id)
    assert job is not None
    after = finish(job, Outcome.NO_ANSWER, end, policy=POLICY, window=ALWAYS, purpose=VISIT)
    store.store(session, after, end)
    [row] = store.attempts_of(session, job_id)
    assert (row["outcome"], row["reason"], row["cause"], row["sip_cause"],
            row["duration_s"]) == ("no_answer", 3, 19, 480, 30.0)
    assert store.due(session, end) == []
    [again] = store.due(session, end + timedelta(seconds=600))
    assert again.id == job_id and again.attempts == 1 and again.last_outcome is Outcome.NO_ANSWER


def test_a_restart_settles_open_attempts_without_dialling_again(session: Session,
                                                                now: datetime) -> None:
    live_id = store.schedule(session, purpose="return_visit", number="13800138000",
                             lang="zh", now=now, created_by="system",
                             work_order_number="R4").job_id
    lost_id = store.schedule(session, purpose="return_visit", number="13900139000",
                             lang="zh", now=now, created_by="system",
                             work_order_number="R5").job_id
    live_attempt = store.begin_attempt(session, live_id, now)
    lost_attempt = store.begin_attempt(session, lost_id, now)
    # the restart: what is open, and which of it is on a live channel
    opened = store.open_attempts(session)
    assert [o.attempt_id for o in opened] == [live_attempt, lost_attempt]
    later = now + timedelta(seconds=5)
    for o in opened:
        live = o.attempt_id == live_attempt
        job = recover(o.job, live=live, now=later, policy=POLICY, window=ALWAYS, purpose=VISIT)
        if not live:
            assert lost_attempt is not None
            store.finish_attempt(session, lost_attempt, outcome=Outcome.UNKNOWN,
                                 ended_at=later)
        store.store(session, job, later)
    assert [o.attempt_id for o in store.open_attempts(session)] == [live_attempt]
    lost = store.get(session, lost_id)
    assert lost is not None and lost.state is State.SCHEDULED and lost.attempts == 1
    assert store.due(session, later) == []   # nobody is dialled again at once


def test_do_not_call_in_national_form(session: Session, now: datetime) -> None:
    assert store.dnc_add(session, "+86 138-0013-8000", reason="asked", by="S01",
                         now=now) == "13800138000"
    with pytest.raises(store.AlreadyListed):   # the first entry is kept
        store.dnc_add(session, "13800138000", reason="again", by="S02", now=now)
    assert store.dnc_numbers(session) == ["13800138000"]
    dnc = DoNotCall(store.dnc_numbers(session))
    job_id = store.schedule(session, purpose="return_visit", number="0086 13800138000",
                            lang="zh", now=now, created_by="system",
                            work_order_number="R6").job_id
    job = store.get(session, job_id)
    assert job is not None and screen(job, now, dnc).state is State.BLOCKED
    assert store.dnc_remove(session, "138 0013 8000") == "13800138000"
    with pytest.raises(store.NotListed):
        store.dnc_remove(session, "13800138000")
    assert store.dnc_numbers(session) == []
    assert store.cancel_open(session, [job_id], now) == 1
    cancelled = store.get(session, job_id)
    assert cancelled is not None and cancelled.state is State.CANCELLED


# ------------------------------------------------------------------------------ return visits

def _resolved_repair(svc: WorkOrderService, now: datetime, caller: str) -> str:
    from workorders.lifecycle import Department, Role
    from workorders.service import Actor, NewOrder

    agent, crew = Actor("A007", Role.AGENT), Actor("crew", Role.DEPARTMENT, Department.REPAIR)
    order = svc.create(NewOrder(type="fault_repair", description="家中无电",
                                caller_number=caller), agent, now=now)
    number = str(order["number"])
    for i, (to, who) in enumerate((("dispatched", agent), ("department_accepted", crew),
                                   ("on_site", crew), ("resolved", crew))):
        svc.transition(number, to, who, now=now + timedelta(minutes=i + 1))
    return number


def test_a_resolved_repair_gets_its_return_visit_and_the_key_is_its_score(
        session_factory: sessionmaker[Session], now: datetime) -> None:
    import asyncio

    from callcenter.return_visits import ReturnVisits
    from workorders.lifecycle import SlaPolicy

    visits = ReturnVisits(delay=timedelta(minutes=30))
    svc = WorkOrderService(session_factory, SlaPolicy(), return_visits=visits)
    visits.workorders = svc
    happy = _resolved_repair(svc, now, "13800000001")
    unhappy = _resolved_repair(svc, now, "13800000002")
    with session_factory() as s:
        assert store.due(s, now + timedelta(minutes=10)) == []   # not before the delay
        jobs = {store.work_order_of(s, j.id): j for j in
                store.due(s, now + timedelta(minutes=40))}
    assert set(jobs) == {happy, unhappy}
    assert jobs[happy].number == "13800000001" and jobs[happy].purpose == "return_visit"
    # resolving again while the visit is open schedules nothing more
    with session_factory() as s:
        again = store.schedule(s, purpose="return_visit", number="13800000001", lang="zh",
                               now=now, created_by="system", work_order_number=happy)
    assert not again.created
    at = now + timedelta(hours=1)
    asyncio.run(visits.on_result(jobs[happy], {"Key": "1"}, at))
    asyncio.run(visits.on_result(jobs[unhappy], {"Key": "2"}, at))
    asyncio.run(visits.on_result(jobs[unhappy], {"Key": "none"}, at))   # changes nothing
    h, u = svc.get(happy, now=at), svc.get(unhappy, now=at)
    assert (h["status"], h["satisfaction"]) == ("return_visit", "satisfied")
    # not satisfied: recorded, then the order goes back to the department that resolved it
    assert (u["status"], u["satisfaction"], u["department"]) == (
        "dispatched", "unsatisfied", "repair")
    assert [e["step"] for e in u["events"]][-2:] == ["return_visit", "dispatched"]
    visit = [e for e in h["events"] if e["step"] == "return_visit"][-1]
    assert visit["actor"] == "system"


def test_no_trunk_no_return_visit_calls(session_factory: sessionmaker[Session],
                                        now: datetime) -> None:
    import pytest

    from workorders.lifecycle import Role, SlaPolicy
    from workorders.service import Actor, NoOutbound

    svc = WorkOrderService(session_factory, SlaPolicy())   # no return-visit port: no trunk
    number = _resolved_repair(svc, now, "13800000003")
    with session_factory() as s:
        assert store.jobs_of_order(s, number) == []         # nothing scheduled either
    with pytest.raises(NoOutbound, match="no outbound trunk"):
        svc.call_return_visit(number, Actor("A007", Role.AGENT), now=now)
