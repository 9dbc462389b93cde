"""The caller's history beside the pop (issue 14 §6): earlier calls with their wrap-up codes,
work orders open or closed, bounded, and in three queries whatever the data."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import update
from sqlalchemy.orm import Session

from cti.db.calls import record_call_start
from cti.db.models import Call, WorkOrder
from cti.db.screen_pop import HISTORY_CALLS, HISTORY_WORK_ORDERS, caller_history
from tests.db.test_db_screen_pop import _selects
from tests.support.orders import fault_report

if TYPE_CHECKING:
    from conftest import World
    from sqlalchemy import Engine

H = timedelta(hours=1)


def _calls(session: Session, caller: str, now: datetime, n: int, prefix: str) -> list[str]:
    ids = []
    for k in range(n):
        cid = f"{prefix}.{k}"
        record_call_start(session, call_id=cid, uniqueid=cid, caller_number=caller,
                          dnis="95598", now=now - (n - k) * H)
        ids.append(cid)
    return ids


def test_earlier_calls_and_every_order_of_the_caller_newest_first(
        world: World, session: Session, now: datetime) -> None:
    acct = world.account(world.area(), phones=["13800000041"])
    ids = _calls(session, "13800000041", now, 3, "h1")
    _calls(session, "13800000042", now, 2, "other")  # someone else's
    session.execute(update(Call).where(Call.call_id == ids[0])
                    .values(agent_id="A001", answered_at=now - 3 * H, disposition="complaint",
                            agent_note="态度问题"))
    # an order by the account (another number called it in) and one by this number, closed
    by_account = fault_report(session, now - 5 * H, acct.account_no, caller="13900000000")
    by_number = fault_report(session, now - 4 * H, None, caller="13800000041", link=False)
    session.execute(update(WorkOrder).where(WorkOrder.number == by_number.number)
                    .values(status="archived"))
    fault_report(session, now - 4 * H, None, caller="13900000001", link=False)  # not theirs
    doc = caller_history(session, call_id=ids[-1], caller_number="13800000041",
                         account_no=None)
    # this call is not its own history; the others newest first
    assert [c["call_id"] for c in doc["calls"]] == [ids[1], ids[0]]
    assert doc["calls"][1] | {"started_at": None} == {
        "call_id": ids[0], "started_at": None, "ended_at": None, "answered": True,
        "outcome": None, "skill": None, "agent_id": "A001", "disposition": "complaint",
        "agent_note": "态度问题"}
    assert [(o["number"], o["status"]) for o in doc["work_orders"]] == [
        (by_number.number, "archived"), (by_account.number, "accepted")]


def test_a_withheld_number_has_no_history(world: World, session: Session,
                                          now: datetime) -> None:
    _calls(session, "anonymous", now, 2, "anon")
    fault_report(session, now, None, caller="anonymous", link=False)
    assert caller_history(session, call_id="x", caller_number="anonymous",
                          account_no=None) == {"calls": [], "work_orders": []}


def test_bounded_and_three_queries_whatever_the_data(world: World, session: Session,
                                                     engine: Engine, now: datetime) -> None:
    acct = world.account(world.area(), phones=["13800000043"])
    counts = []
    for n in (1, 15):
        _calls(session, "13800000043", now, n, f"b{n}")
        for k in range(n):
            fault_report(session, now - k * H, acct.account_no, caller="13800000043",
                         link=False)
        with _selects(engine) as seen:
            doc = caller_history(session, call_id="none", caller_number="13800000043",
                                 account_no=acct.account_no)
        counts.append(len(seen))
    assert counts == [3, 3]
    assert len(doc["calls"]) == HISTORY_CALLS and len(doc["work_orders"]) == HISTORY_WORK_ORDERS
