"""Repair work orders: numbering (also under concurrency), SLA by area kind, the accepted event."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cti.db.ivr_queries import WorkOrderNumbersExhausted, allocate_work_order_number
from cti.db.models import WorkOrder, WorkOrderCounter, WorkOrderEvent
from tests.support.orders import fault_report
from workorders.lifecycle import Role, SlaPolicy
from workorders.service import Actor

if TYPE_CHECKING:
    from conftest import World

MIN = timedelta(minutes=1)


def _order(session: Session, now: datetime, account_no: str | None = None,
           policy: SlaPolicy | None = None) -> WorkOrder:
    """The IVR's fault report: the production path (workorders.service.create)."""
    return fault_report(session, now, account_no, call_id="1764210000.42", policy=policy,
                        link=False)


def test_number_is_local_date_and_daily_sequence(session: Session, now: datetime) -> None:
    first = _order(session, now)
    second = _order(session, now + MIN)
    assert re.fullmatch(r"[0-9]{11}", first.number)
    # NOW is 2026-11-27 10:30 in Beijing.
    assert (first.number, second.number) == ("26112700001", "26112700002")
    # 00:30 Beijing on the 28th is still the 27th in UTC: the local day decides.
    next_day = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)
    assert _order(session, next_day).number == "26112800001"
    assert _order(session, now + 2 * MIN).number == "26112700003"
    session.commit()


def test_rolled_back_order_returns_its_number(session_factory: sessionmaker[Session],
                                              now: datetime) -> None:
    with session_factory() as s:
        assert _order(s, now).number == "26112700001"
        s.rollback()
    with session_factory() as s:
        assert _order(s, now).number == "26112700001"
        s.commit()


def test_day_sequence_is_exhausted_loudly(session: Session, now: datetime) -> None:
    allocate_work_order_number(session, now)
    session.execute(update(WorkOrderCounter).values(last_seq=99_999))
    with pytest.raises(WorkOrderNumbersExhausted):
        allocate_work_order_number(session, now)


@pytest.mark.parametrize(("kind", "minutes"), [("urban", 45), ("rural", 90), ("remote", 120)])
def test_sla_follows_area_kind(world: World, session: Session, now: datetime, kind: str,
                               minutes: int) -> None:
    area = world.area(kind)
    acct = world.account(area, world.feeder(area))
    info = _order(session, now, acct.account_no)
    assert info.sla_due_at == now + minutes * MIN
    order = session.scalars(select(WorkOrder)).one()
    assert (order.account_id, order.area_id) == (acct.id, area.id)


def test_sla_without_known_account_is_urban(session: Session, now: datetime) -> None:
    assert _order(session, now, None).sla_due_at == now + 45 * MIN
    assert _order(session, now, "3799999999").sla_due_at == now + 45 * MIN
    orders = session.scalars(select(WorkOrder).order_by(WorkOrder.id)).all()
    assert [o.account_id for o in orders] == [None, None]
    assert "3799999999" in orders[1].description


def test_sla_minutes_are_configurable(world: World, session: Session, now: datetime) -> None:
    acct = world.account(world.area("rural"))
    policy = SlaPolicy(arrival_minutes={"urban": 30, "rural": 60})
    info = _order(session, now, acct.account_no, policy)
    assert info.sla_due_at == now + 60 * MIN
    # a kind the settings leave out is held to the strictest (urban) commitment
    remote = world.account(world.area("remote")).account_no
    assert _order(session, now, remote, policy).sla_due_at == now + 30 * MIN


def test_order_is_accepted_with_timestamped_event(world: World, session: Session,
                                                  now: datetime) -> None:
    acct = world.account(world.area())
    info = fault_report(session, now, acct.account_no, caller="13900000009",
                        call_id="1764210000.7", actor=Actor("A007", Role.AGENT),
                        description="家中无电，邻居有电")
    session.commit()
    session.expunge_all()
    assert (info.type, info.status) == ("fault_repair", "accepted")
    order = session.scalars(select(WorkOrder)).one()
    assert (order.number, order.type, order.status, order.channel, order.call_id,
            order.caller_number, order.description, order.created_at) == (
        info.number, "fault_repair", "accepted", "agent", "1764210000.7", "13900000009",
        "家中无电，邻居有电", now)
    events = session.scalars(select(WorkOrderEvent)).all()
    assert [(e.work_order_id, e.step, e.at, e.actor) for e in events] == [
        (order.id, "accepted", now, "A007")]


def test_ivr_defaults(session: Session, now: datetime) -> None:
    _order(session, now)
    order = session.scalars(select(WorkOrder)).one()
    assert (order.channel, order.description, order.events[0].actor) == (
        "ivr", "客户通过自助语音报修（IVR）", "ivr")


def _create_concurrently(factory: sessionmaker[Session], now: datetime, threads: int,
                         per_thread: int) -> list[str]:
    barrier = threading.Barrier(threads)

    def work(i: int) -> list[str]:
        barrier.wait()
        numbers = []
        for j in range(per_thread):
            with factory() as s:
                numbers.append(fault_report(s, now, caller=f"1380000{i:02d}{j:02d}",
                                            call_id=f"{i}.{j}").number)
                s.commit()
        return numbers

    with ThreadPoolExecutor(threads) as pool:
        return [n for chunk in pool.map(work, range(threads)) for n in chunk]


def test_numbers_unique_under_concurrency(session_factory: sessionmaker[Session],
                                          now: datetime) -> None:
    # Every thread races for the first number of a fresh day, then keeps going.
    numbers = _create_concurrently(session_factory, now, threads=8, per_thread=5)
    assert sorted(numbers) == [f"261127{seq:05d}" for seq in range(1, 41)]
    with session_factory() as s:
        stored = s.scalars(select(WorkOrder.number)).all()
        assert sorted(stored) == sorted(numbers)
        assert s.scalars(select(WorkOrderCounter.last_seq)).one() == 40
