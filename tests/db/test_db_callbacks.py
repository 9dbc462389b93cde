"""After-hours callbacks in the database, on SQLite and PostgreSQL: the job keeps its skill
(migration 0019), and the answered callback's call record is written once, whether it comes
before the ACD's queue write or after it (the ACD made the record from its queue event)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.db import outbound as store
from cti.db.agents import record_call_queued
from cti.db.calls import CALLBACK_DNIS, record_callback_answered
from cti.db.models import Call

CALL = "pbx1-1796535000.900000007"


def _answered(session: Session, now: datetime) -> None:
    record_callback_answered(session, call_id=CALL, number="13800138000", skill="billing",
                             priority=10, language="en", job_id=7, now=now)


def _call(factory: sessionmaker[Session]) -> Call:
    with factory() as s:
        return s.scalars(select(Call).where(Call.call_id == CALL)).one()


def test_a_callback_job_keeps_its_skill(session: Session, now: datetime) -> None:
    done = store.schedule(session, purpose="callback", number="+86 138 0013 8000", lang="zh",
                          now=now, created_by="ivr:billing", not_before=now + timedelta(hours=9),
                          expires_at=now + timedelta(hours=13), priority=1, skill="billing")
    job = store.get(session, done.job_id)
    assert job is not None and (job.skill, job.number) == ("billing", "13800138000")
    [due] = store.due(session, now + timedelta(hours=9))
    assert due.skill == "billing"
    # other purposes have none
    visit = store.schedule(session, purpose="return_visit", number="13900139000", lang="zh",
                           now=now, created_by="system", work_order_number="R9")
    assert store.get(session, visit.job_id).skill is None  # type: ignore[union-attr]


def test_the_answered_callback_is_recorded_once(session_factory: sessionmaker[Session],
                                                now: datetime) -> None:
    with session_factory.begin() as s:
        _answered(s, now)
    with session_factory.begin() as s:
        _answered(s, now + timedelta(seconds=5))   # a repeated event: nothing changes
        record_call_queued(s, CALL, now=now + timedelta(seconds=8), skill="billing",
                           caller="13800138000")
    call = _call(session_factory)
    assert (call.dnis, call.caller_number, call.skill, call.outcome, call.language) == (
        CALLBACK_DNIS, "13800138000", "billing", "transfer", "en")
    assert call.started_at == now and call.queued_at == now + timedelta(seconds=8)


def test_the_acd_first_leaves_the_callback_to_fill_its_record(
        session_factory: sessionmaker[Session], now: datetime) -> None:
    with session_factory.begin() as s:
        record_call_queued(s, CALL, now=now, skill="billing", caller="13800138000")
    with session_factory.begin() as s:
        _answered(s, now)
    call = _call(session_factory)
    assert (call.dnis, call.outcome, call.priority, call.language) == (
        CALLBACK_DNIS, "transfer", 10, "en")
    assert call.ivr_path == [{"node": "callback", "job": 7, "skill": "billing"}]
