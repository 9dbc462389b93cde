"""The screen-pop on small hand-built data: exact arrears, bounds, work-order status, edge cases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event, update
from sqlalchemy.orm import Session

from cti.db import callers
from cti.db.calls import record_call_start
from cti.db.models import Call, WorkOrder
from cti.db.screen_pop import MAX_ACCOUNTS, screen_pop
from tests.support.orders import fault_report

if TYPE_CHECKING:
    from conftest import World

H = timedelta(hours=1)


@contextmanager
def _selects(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_arrears_bills_and_payment_are_exact(world: World, session: Session,
                                             now: datetime) -> None:
    area = world.area("rural", name="测试农村")
    acct = world.account(area, world.feeder(area), phones=["13800000001"])
    world.bill(acct, "2026-06", "10.10", paid=True)
    world.bill(acct, "2026-07", "20.20", paid=True)
    world.bill(acct, "2026-08", "30.30", paid=False, paid_amount="15.15", due=date(2026, 9, 25))
    world.bill(acct, "2026-09", "40.40", paid=False, due=date(2026, 10, 25))
    world.bill(acct, "2026-10", "0.10", paid=False, due=date(2026, 12, 25))
    world.payment(acct, "15.15", now - 50 * 24 * H, channel="alipay")
    world.payment(acct, "20.20", now - 90 * 24 * H)
    pop = screen_pop(session, call_id="c1", caller_number="13800000001",
                     account_no=acct.account_no, now=now)
    [a] = pop["accounts"]
    # 15.15 + 40.40 + 0.10, oldest unpaid due date first; float arithmetic would miss a fen.
    assert a["arrears"] == {"amount_due": "55.65", "unpaid_bills": 3, "due_date": "2026-09-25",
                            "overdue": True}
    assert a["bills"] == [
        {"period": "2026-10", "usage_kwh": 150, "amount": "0.10", "paid": False,
         "paid_amount": "0.00", "due_date": "2026-12-25"},
        {"period": "2026-09", "usage_kwh": 150, "amount": "40.40", "paid": False,
         "paid_amount": "0.00", "due_date": "2026-10-25"},
        {"period": "2026-08", "usage_kwh": 150, "amount": "30.30", "paid": False,
         "paid_amount": "15.15", "due_date": "2026-09-25"},
    ]
    assert a["last_payment"] == {"amount": "15.15",
                                 "paid_at": (now - 50 * 24 * H).isoformat(),
                                 "channel": "alipay"}
    assert a["area"]["kind"] == "rural" and a["outages"] == []


def test_account_without_bills_feeder_or_payments(world: World, session: Session,
                                                  now: datetime) -> None:
    area = world.area()
    acct = world.account(area, None, important_kind="life_support", name="赵桂兰")
    world.outage("fault", start=now - H, expected=now + H, where=[(area, None)])
    pop = screen_pop(session, call_id="c1", caller_number="", account_no=acct.account_no,
                     now=now)
    [a] = pop["accounts"]
    assert (a["feeder"], a["bills"], a["last_payment"]) == (None, [], None)
    assert a["arrears"] == {"amount_due": "0.00", "unpaid_bills": 0, "due_date": None,
                            "overdue": False}
    assert (a["important"], a["important_kind"], a["matched_by"]) == (
        True, "life_support", ["ivr"])
    assert [o["kind"] for o in a["outages"]] == ["fault"]
    assert pop["work_orders"] == []


def test_many_accounts_on_one_phone_are_cut(world: World, session: Session,
                                            now: datetime) -> None:
    area = world.area()
    feeder = world.feeder(area)
    accounts = [world.account(area, feeder, phones=["053188880000"])
                for _ in range(MAX_ACCOUNTS + 3)]
    entered = world.account(area, feeder)
    pop = screen_pop(session, call_id="c1", caller_number="+86 531 8888 0000",
                     account_no=entered.account_no, now=now)
    shown = [a["account_no"] for a in pop["accounts"]]
    assert shown[0] == entered.account_no and len(shown) == MAX_ACCOUNTS
    assert shown[1:] == sorted(a.account_no for a in accounts)[:MAX_ACCOUNTS - 1]
    assert (pop["accounts_total"], pop["accounts_truncated"]) == (MAX_ACCOUNTS + 4, True)


def test_query_count_does_not_grow_with_the_data(world: World, session: Session,
                                                 engine: Engine, now: datetime) -> None:
    area = world.area()
    feeders = [world.feeder(area), world.feeder(area)]
    accounts = [world.account(area, feeders[n % 2], phones=["13800000009"]) for n in range(6)]
    counts: list[int] = []
    for months in (1, 12):
        for acct in accounts:
            for m in range(months):
                world.bill(acct, f"{2020 + len(counts)}-{m + 1:02d}", "50.00", paid=m % 2 == 0)
                world.payment(acct, "50.00", now - (m + 1) * 24 * H)
            fault_report(session, now, acct.account_no, caller="13800000009")
        with _selects(engine) as seen:
            screen_pop(session, call_id="c1", caller_number="13800000009", account_no=None,
                       now=now)
        counts.append(len(seen))
    # call, phone, VIP list, accounts, bills, payments, work orders, and the notices' scope
    # rows (no notice could match here, so no more): the same whatever the data
    assert counts == [7 + 1, 7 + 1]


def test_closed_work_orders_are_left_out(world: World, session: Session,
                                         now: datetime) -> None:
    acct = world.account(world.area(), phones=["13800000001"])
    numbers = {}
    for k, status in enumerate(("accepted", "dispatched", "on_site", "resolved",
                                "return_visit", "archived")):
        info = fault_report(session, now - (10 - k) * H, acct.account_no,
                            caller="13800000002")
        session.execute(update(WorkOrder).where(WorkOrder.number == info.number)
                        .values(status=status))
        numbers[status] = info.number
    pop = screen_pop(session, call_id="c1", caller_number="13800000001", account_no=None,
                     now=now)
    orders = pop["work_orders"]
    assert [o["number"] for o in orders] == [
        numbers["on_site"], numbers["dispatched"], numbers["accepted"]]
    # The urban 45-minute arrival promise is long past for all of them.
    assert all(o["overdue"] for o in orders)


def test_account_falls_back_to_the_call_record(world: World, session: Session,
                                               now: datetime) -> None:
    acct = world.account(world.area())
    record_call_start(session, call_id="c9", uniqueid="c9", caller_number="13700000000",
                      dnis="95598", now=now)
    session.execute(update(Call).values(account_no=acct.account_no,
                                        ivr_path=[{"node": "acct", "input": acct.account_no}]))
    pop = screen_pop(session, call_id="c9", caller_number="13700000000", account_no=None,
                     now=now)
    assert pop["entered_account"] == {"account_no": acct.account_no, "found": True}
    assert pop["ivr"]["entered"] == [{"node": "acct", "input": acct.account_no}]
    assert json.loads(json.dumps(pop)) == pop


def test_anonymous_caller_without_account(session: Session, now: datetime) -> None:
    # Another withheld caller's order is not this one's.
    fault_report(session, now - H, caller="anonymous")
    pop = screen_pop(session, call_id="c0", caller_number="anonymous", account_no=None, now=now)
    assert (pop["accounts"], pop["work_orders"], pop["entered_account"], pop["ivr"]) == (
        [], [], None, None)


def test_a_vip_caller_is_marked_with_the_reason(session: Session, now: datetime) -> None:
    """Issue 15 §3: the agent sees that the number is on the VIP list, and why; the list keeps
    national numbers, so the +86 form of it is the same caller."""
    callers.add(session, "vip", "13800000077", reason="人大代表", by="S01", now=now)
    pop = screen_pop(session, call_id="c7", caller_number="+8613800000077", account_no=None,
                     now=now)
    assert pop["vip"] is not None and pop["vip"]["reason"] == "人大代表"
    assert json.loads(json.dumps(pop)) == pop
    other = screen_pop(session, call_id="c8", caller_number="13800000078", account_no=None,
                       now=now)
    withheld = screen_pop(session, call_id="c9", caller_number="anonymous", account_no=None,
                          now=now)
    assert other["vip"] is None and withheld["vip"] is None
