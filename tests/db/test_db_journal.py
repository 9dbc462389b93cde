"""The durable journal on a real database (SQLite and PostgreSQL): a call lived through an
outage (start, IVR fault report, end; a transferred one queued, answered, ended) is journalled,
and the replay writes a complete call record and exactly one work order, even when replayed
twice (a CTI that died between a commit and its done mark)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from callcenter.ivr_services import DbIvrServices
from callcenter.journal import DurableWrites, FileJournal
from cti.db.acd_store import DbAcdStore
from cti.db.models import Call, WorkOrder

S = timedelta(seconds=1)


class Outage:
    """The real session factory, or an unreachable database while `down`."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.down = False

    @contextmanager
    def begin(self) -> Iterator[Session]:
        if self.down:
            raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
        with self.sessions.begin() as s:
            yield s


def _stack(sf: sessionmaker[Session], path: Path) -> tuple[Outage, DurableWrites,
                                                           DbIvrServices, DbAcdStore]:
    db = Outage(sf)
    durable = DurableWrites(db, FileJournal(path))  # type: ignore[arg-type]
    return db, durable, DbIvrServices(sf, durable=durable), DbAcdStore(sf, durable=durable)


async def _a_fault_report(ivr: DbIvrServices, call_id: str, now: datetime) -> Any:
    await ivr.call_started(call_id=call_id, uniqueid=call_id, caller="13800000009",
                           dnis="95598", now=now)
    order = await ivr.query("create_workorder", {"caller": "13800000009", "account": None,
                                                 "call_id": call_id, "now": now + 20 * S})
    await ivr.ivr_finished(call_id=call_id, outcome="self_served",
                           path=[{"node": "fault_create", "workorder": order.number}],
                           lang="zh", account=None, skill=None, priority=None,
                           now=now + 30 * S)
    return order


async def _a_transfer(ivr: DbIvrServices, acd: DbAcdStore, call_id: str, now: datetime) -> None:
    await ivr.call_started(call_id=call_id, uniqueid=call_id, caller="13800000008",
                           dnis="95598", now=now)
    await ivr.ivr_finished(call_id=call_id, outcome="transfer", path=[{"node": "to_agent"}],
                           lang="zh", account=None, skill="general", priority=0,
                           now=now + 5 * S)
    t0 = (now + 6 * S).timestamp()
    await acd.call_queued(call_id, "general", t0, "13800000008")
    await acd.call_answered(call_id, "A001", "seat01", t0 + 10)
    await acd.call_ended(call_id, t0 + 40, abandoned=False)


def _orders(sf: sessionmaker[Session], call_id: str) -> list[WorkOrder]:
    with sf() as s:
        return list(s.scalars(select(WorkOrder).where(WorkOrder.call_id == call_id)))


def _call(sf: sessionmaker[Session], call_id: str) -> Call:
    with sf() as s:
        return s.scalars(select(Call).where(Call.call_id == call_id)).one()


def test_an_outage_is_journalled_and_replayed_into_complete_records(
        session_factory: sessionmaker[Session], now: datetime, tmp_path: Path) -> None:
    db, durable, ivr, acd = _stack(session_factory, tmp_path / "j.jsonl")

    async def scenario() -> Any:
        db.down = True
        order = await _a_fault_report(ivr, "1764000000.1", now)
        await _a_transfer(ivr, acd, "1764000000.2", now)
        return order
    order = asyncio.run(scenario())
    assert order.number == "" and order.status == "journalled"  # the flow says: later
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Call)) == 0
    assert len(durable.journal.pending()) == 8
    db.down = False
    assert durable.replay_once()
    assert durable.journal.pending() == [] and (tmp_path / "j.jsonl").stat().st_size == 0
    orders = _orders(session_factory, "1764000000.1")
    assert len(orders) == 1 and orders[0].channel == "ivr" and orders[0].number
    assert orders[0].created_at == now + 20 * S  # when it was reported, not replayed
    fault = _call(session_factory, "1764000000.1")
    assert fault.outcome == "self_served" and fault.ended_at == now + 30 * S
    assert fault.ivr_path == [{"node": "fault_create", "workorder": ""}]
    talk = _call(session_factory, "1764000000.2")
    assert (talk.outcome, talk.agent_id, talk.skill) == ("transfer", "A001", "general")
    assert talk.queued_at and talk.answered_at and talk.ended_at
    durable.close()


def test_a_replay_repeated_after_a_crash_writes_each_once(
        session_factory: sessionmaker[Session], now: datetime, tmp_path: Path) -> None:
    db, durable, ivr, acd = _stack(session_factory, tmp_path / "j.jsonl")
    db.down = True
    asyncio.run(_a_fault_report(ivr, "1764000000.3", now))
    db.down = False
    entries = durable.journal.pending()
    assert durable.replay_once()
    # the CTI died after the commits and before the done marks: the next one replays it all
    for e in entries:
        durable.journal.append(e)
    _db2, durable2, _ivr2, _acd2 = _stack(session_factory, tmp_path / "j.jsonl")
    assert durable2.replay_once()
    assert len(_orders(session_factory, "1764000000.3")) == 1
    assert _call(session_factory, "1764000000.3").outcome == "self_served"
    durable.close()
    durable2.close()


def test_a_direct_fault_report_is_not_doubled_by_a_late_journal_copy(
        session_factory: sessionmaker[Session], now: datetime, tmp_path: Path) -> None:
    """A write that met the outage late may commit after all while its copy is journalled:
    the replay finds the call's order and makes none."""
    db, durable, ivr, _acd = _stack(session_factory, tmp_path / "j.jsonl")
    order = asyncio.run(_a_fault_report(ivr, "1764000000.4", now))
    assert order.number
    db.down = True
    asyncio.run(ivr.query("create_workorder", {"caller": "13800000009", "account": None,
                                               "call_id": "1764000000.4", "now": now}))
    db.down = False
    assert durable.replay_once()
    assert [o.number for o in _orders(session_factory, "1764000000.4")] == [order.number]
    durable.close()
