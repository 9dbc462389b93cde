"""Call records: idempotent start and end, IVR path appends that persist."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.db.calls import record_call_end, record_call_start, record_ivr_step, record_pbx_cut
from cti.db.models import Call

S = timedelta(seconds=1)


def _start(session: Session, now: datetime, call_id: str = "1764210000.1",
           uniqueid: str = "1764210000.1") -> None:
    record_call_start(session, call_id=call_id, uniqueid=uniqueid, caller_number="13800000001",
                      dnis="95598", now=now)


def _call(factory: sessionmaker[Session], call_id: str = "1764210000.1") -> Call:
    with factory() as s:
        return s.scalars(select(Call).where(Call.call_id == call_id)).one()


def test_start_is_idempotent(session_factory: sessionmaker[Session], now: datetime) -> None:
    with session_factory() as s:
        _start(s, now)
        s.commit()
    with session_factory() as s:
        _start(s, now + 5 * S, uniqueid="1764210000.2")  # a duplicated event
        s.commit()
    with session_factory() as s:
        calls = s.scalars(select(Call)).all()
    assert len(calls) == 1
    c = calls[0]
    assert (c.uniqueid, c.caller_number, c.dnis, c.started_at, c.ended_at, c.ivr_path) == (
        "1764210000.1", "13800000001", "95598", now, None, [])


def test_concurrent_starts_of_one_call(session_factory: sessionmaker[Session],
                                       now: datetime) -> None:
    barrier = threading.Barrier(6)

    def work(_: int) -> None:
        barrier.wait()
        with session_factory() as s:
            _start(s, now)
            s.commit()

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(work, range(6)))
    with session_factory() as s:
        assert len(s.scalars(select(Call)).all()) == 1


def test_ivr_steps_append_and_persist(session_factory: sessionmaker[Session],
                                      now: datetime) -> None:
    with session_factory() as s:
        _start(s, now)
        record_ivr_step(s, "1764210000.1", {"node": "welcome", "lang": "zh"})
        s.commit()
    with session_factory() as s:
        # The row is already in the session: the append must reach the DB via change tracking.
        s.scalars(select(Call)).one()
        record_ivr_step(s, "1764210000.1", {"node": "menu", "digits": "2", "label": "停电查询"})
        s.commit()
    assert _call(session_factory).ivr_path == [
        {"node": "welcome", "lang": "zh"},
        {"node": "menu", "digits": "2", "label": "停电查询"},
    ]


def test_ivr_step_must_be_json(session: Session, now: datetime) -> None:
    _start(session, now)
    with pytest.raises(TypeError):
        record_ivr_step(session, "1764210000.1", {"at": now})


def test_end_is_idempotent_and_keeps_known_fields(session_factory: sessionmaker[Session],
                                                  now: datetime) -> None:
    with session_factory() as s:
        _start(s, now)
        record_call_end(s, "1764210000.1", outcome="transfer", now=now + 40 * S, language="zh",
                        account_no="3700000001", skill="billing", priority=5)
        s.commit()
    with session_factory() as s:
        record_call_end(s, "1764210000.1", outcome="hangup", now=now + 90 * S, skill="repair")
        s.commit()
    c = _call(session_factory)
    assert (c.ended_at, c.outcome, c.language, c.account_no, c.skill, c.priority) == (
        now + 40 * S, "transfer", "zh", "3700000001", "billing", 5)


def test_end_without_optional_fields(session_factory: sessionmaker[Session],
                                     now: datetime) -> None:
    with session_factory() as s:
        _start(s, now)
        record_call_end(s, "1764210000.1", outcome="abandoned", now=now + 3 * S)
        s.commit()
    c = _call(session_factory)
    assert (c.outcome, c.language, c.account_no, c.skill, c.priority) == (
        "abandoned", None, None, None, None)


def test_end_rejects_unknown_outcome(session: Session, now: datetime) -> None:
    _start(session, now)
    with pytest.raises(ValueError, match="outcome"):
        record_call_end(session, "1764210000.1", outcome="exploded", now=now)


def test_unknown_call_is_logged_not_raised(session: Session, now: datetime,
                                           caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cti.db.calls"):
        record_ivr_step(session, "no.such", {"node": "welcome"})
        record_call_end(session, "no.such", outcome="hangup", now=now)
    assert [r.getMessage().split(" call_id=")[1].split()[0] for r in caplog.records] == [
        "no.such", "no.such"]
    assert session.scalars(select(Call)).all() == []


def test_pbx_cut_closes_open_calls_and_marks_those_the_shutdown_ended(
        session_factory: sessionmaker[Session], now: datetime) -> None:
    """Asterisk began to go away at lost_at: calls still open end then (outcome kept, or
    hangup), calls the shutdown's own hangups ended just before get the reason too; a call that
    ended earlier, or started after, is left alone; a repeat changes nothing."""
    lost = now + 100 * S
    with session_factory() as s:
        for i in range(1, 6):
            _start(s, now + i * S, call_id=f"c{i}", uniqueid=f"c{i}")
        _start(s, lost + 2 * S, call_id="new", uniqueid="new")  # on the new Asterisk
        record_call_end(s, "c1", outcome="self_served", now=now + 50 * S)  # long before
        record_call_end(s, "c2", outcome="hangup", now=lost - 0.2 * S)  # the shutdown's hangup
        s.scalars(select(Call).where(Call.call_id == "c3")).one().outcome = "transfer"  # waits
        s.commit()
    with session_factory.begin() as s:
        assert sorted(record_pbx_cut(s, reason="pbx_restart", lost_at=lost)) == [
            "c2", "c3", "c4", "c5"]
    with session_factory.begin() as s:
        assert record_pbx_cut(s, reason="pbx_lost", lost_at=lost) == []
    got = {i: _call(session_factory, i) for i in ("c1", "c2", "c3", "c4", "new")}
    assert (got["c1"].outcome, got["c1"].end_reason) == ("self_served", None)
    assert (got["c2"].ended_at, got["c2"].end_reason) == (lost - 0.2 * S, "pbx_restart")
    assert (got["c3"].ended_at, got["c3"].outcome, got["c3"].end_reason) == (
        lost, "transfer", "pbx_restart")
    assert (got["c4"].outcome, got["c4"].end_reason) == ("hangup", "pbx_restart")
    assert (got["new"].ended_at, got["new"].end_reason) == (None, None)


def test_pbx_cut_reason_must_be_known(session: Session, now: datetime) -> None:
    with pytest.raises(ValueError, match="reason"):
        record_pbx_cut(session, reason="power cut", lost_at=now)
