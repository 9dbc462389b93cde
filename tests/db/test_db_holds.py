"""Holds and callback requests on the call record (SQLite and PostgreSQL): each write is
idempotent (a journal replay adds nothing), and the hold service keeps a hold that ends
during a database outage (journalled, replayed)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.holds import HoldService
from callcenter.journal import DurableWrites, FileJournal
from cti.db.calls import record_call_start, record_callback_requested, record_hold
from cti.db.models import Call, CallHold
from tests.db.test_db_journal import Outage

S = timedelta(seconds=1)


def _holds(sf: sessionmaker[Session], call_id: str) -> list[tuple[datetime, datetime]]:
    with sf() as s:
        return [(h.started_at, h.ended_at) for h in s.scalars(
            select(CallHold).where(CallHold.call_id == call_id).order_by(CallHold.started_at))]


def test_a_hold_is_written_once_and_a_callback_request_keeps_its_first_time(
        session_factory: sessionmaker[Session], now: datetime) -> None:
    cid = "pbx1-1764210300.1"
    with session_factory.begin() as s:
        record_call_start(s, call_id=cid, uniqueid=cid, caller_number="13800000001",
                          dnis="95598", now=now)
    for _ in range(2):  # the second: a journal replay
        with session_factory.begin() as s:
            record_hold(s, cid, started_at=now + 10 * S, ended_at=now + 25 * S)
    with session_factory.begin() as s:
        assert record_hold(s, cid, started_at=now + 40 * S, ended_at=now + 41 * S)
        assert not record_hold(s, cid, started_at=now + 40 * S, ended_at=now + 41 * S)
    assert _holds(session_factory, cid) == [(now + 10 * S, now + 25 * S),
                                            (now + 40 * S, now + 41 * S)]
    with session_factory.begin() as s, pytest.raises(ValueError, match="before it starts"):
        record_hold(s, cid, started_at=now + 50 * S, ended_at=now + 49 * S)
    with session_factory.begin() as s:
        assert record_callback_requested(s, cid, now=now + 5 * S)
        assert not record_callback_requested(s, cid, now=now + 9 * S)
        assert not record_callback_requested(s, "pbx1-no-such.1", now=now)
    with session_factory() as s:
        rec = s.scalars(select(Call).where(Call.call_id == cid)).one()
        assert rec.callback_requested_at == now + 5 * S and rec.ended_at is None


def test_the_service_keeps_a_hold_that_ends_during_a_database_outage(
        session_factory: sessionmaker[Session], now: datetime, tmp_path: Path) -> None:
    cid = "pbx1-1764210400.1"
    db = Outage(session_factory)
    durable = DurableWrites(db, FileJournal(tmp_path / "j.jsonl"))  # type: ignore[arg-type]
    svc = HoldService(session_factory, durable=durable, clock=lambda: 0.0)
    t0 = now.timestamp()

    def moh(name: str, t: float) -> dict[str, str]:
        return {"Event": name, "Channel": "PJSIP/carrier-00000031", "Uniqueid": cid,
                "Linkedid": cid, "Context": "hotline-hold", "Exten": "caller",
                "Timestamp": f"{t0 + t:.6f}"}

    async def scenario() -> None:
        task = asyncio.create_task(svc.consume())
        svc.offer(moh("MusicOnHoldStart", 10))
        svc.offer(moh("MusicOnHoldStop", 20))
        await svc.drained()
        db.down = True
        svc.offer(moh("MusicOnHoldStart", 30))
        svc.offer(moh("Hangup", 45))
        await svc.drained()
        task.cancel()
    asyncio.run(scenario())
    assert _holds(session_factory, cid) == [(now + 10 * S, now + 20 * S)]
    assert len(durable.journal.pending()) == 1
    db.down = False
    assert durable.replay_once()
    assert _holds(session_factory, cid) == [(now + 10 * S, now + 20 * S),
                                            (now + 30 * S, now + 45 * S)]
    assert svc.counts == {"holds": 2, "dropped": 0}
    durable.close()
