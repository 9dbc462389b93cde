"""The screen-pop on the seeded 5,000-account demo city: what the agent sees while the seat rings.

Every test here shares one seeded city per backend (the demo_city fixture) and rolls back."""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session

from cti.db.agents import record_call_queued
from cti.db.calls import record_call_start, record_ivr_step
from cti.db.ivr_queries import accounts_for_phone, bill_info
from cti.db.models import Account, Area, Bill, Call, Customer, Feeder, WorkOrder
from cti.db.screen_pop import screen_pop
from cti.db.session import make_session_factory
from tests.support.orders import fault_report
from workorders.lifecycle import Role
from workorders.service import Actor

logger = logging.getLogger(__name__)
Demo = dict[str, dict[str, Any]]
CALL_ID = "1764210600.31"


@contextmanager
def _session(engine: Engine) -> Iterator[Session]:
    with make_session_factory(engine)() as s:
        try:
            yield s
        finally:
            s.rollback()


def _ivr_call(s: Session, caller: str, account_no: str, now: datetime) -> None:
    """A call that went through the IVR main flow: fault report, account keyed, to repair."""
    record_call_start(s, call_id=CALL_ID, uniqueid=CALL_ID, caller_number=caller, dnis="95598",
                      now=now - timedelta(seconds=50))
    for step in (
        {"event": "start", "flow": "main", "caller": caller},
        {"node": "menu", "input": "1"},
        {"node": "repair_account", "input": account_no},
        {"node": "repair_outage", "query": "outages", "found": True},
        {"node": "said_outage", "said": "outage.expected_restore_at", "value": "10:30"},
        {"node": "repair_menu", "input": "0"},
        {"node": "to_repair", "transfer": "repair", "priority": 5, "reason": "fault"},
    ):
        record_ivr_step(s, CALL_ID, step)
    call = s.scalars(select(Call).where(Call.call_id == CALL_ID)).one()
    call.language, call.account_no, call.skill, call.priority = "zh", account_no, "repair", 5
    record_call_queued(s, CALL_ID, now=now - timedelta(seconds=20))


def test_pop_for_the_outage_fault_account(engine: Engine, demo_city: Demo,
                                          now: datetime) -> None:
    demo = demo_city["outage_fault"]
    acct, phone = demo["account_no"], demo["phone"]
    with _session(engine) as s:
        _ivr_call(s, phone, acct, now)
        pop = screen_pop(s, call_id=CALL_ID, caller_number=phone, account_no=acct, now=now)
        assert json.loads(json.dumps(pop, ensure_ascii=False)) == pop
        logger.info("screen-pop example: %s", json.dumps(pop, ensure_ascii=False, indent=1))

        assert (pop["call_id"], pop["caller_number"], pop["generated_at"]) == (
            CALL_ID, phone, now.isoformat())
        assert pop["entered_account"] == {"account_no": acct, "found": True}
        assert (pop["accounts_total"], pop["accounts_truncated"]) == (1, False)
        [a] = pop["accounts"]
        assert a["account_no"] == acct and a["matched_by"] == ["ivr", "phone"]

        row = s.execute(
            select(Customer.name, Customer.important, Account.service_address,
                   Account.transformer_area, Area.code, Area.name, Area.kind, Feeder.code,
                   Feeder.name)
            .join(Account, Account.customer_id == Customer.id)
            .join(Area, Area.id == Account.area_id).join(Feeder, Feeder.id == Account.feeder_id)
            .where(Account.account_no == acct)).one()
        assert (a["customer_name"], a["important"], a["important_kind"], a["service_address"],
                a["transformer_area"]) == (row[0], False, None, row[2], row[3])
        assert a["area"] == {"code": row[4], "name": row[5], "kind": row[6]}
        assert a["feeder"] == {"code": row[7], "name": row[8]}

        assert [(o["kind"], o["cause"]) for o in a["outages"]] == [("fault", "10kV线路故障")]
        assert a["outages"][0]["expected_restore_at"] == demo["outages"][0]["expected_restore_at"]

        info = bill_info(s, acct)
        assert info is not None
        assert a["arrears"]["amount_due"] == f"{info.amount_due:.2f}" == demo["amount_due"]
        periods = s.scalars(select(Bill.period).join(Account).where(Account.account_no == acct)
                            .order_by(Bill.period.desc())).all()
        assert [b["period"] for b in a["bills"]] == periods[:3]
        assert all(isinstance(b["amount"], str) and b["amount"].count(".") == 1
                   and len(b["amount"].split(".")[1]) == 2 for b in a["bills"])
        assert a["last_payment"] is not None
        assert (a["last_payment"]["amount"], a["last_payment"]["paid_at"]) == (
            f"{info.last_payment_amount:.2f}",
            info.last_payment_at.isoformat() if info.last_payment_at else None)

        ivr = pop["ivr"]
        assert ivr["entered"] == [{"node": "menu", "input": "1"},
                                  {"node": "repair_account", "input": acct},
                                  {"node": "repair_menu", "input": "0"}]
        assert len(ivr["path"]) == 7 and ivr["path"][0]["event"] == "start"
        assert (ivr["skill"], ivr["priority"], ivr["language"], ivr["account_no"]) == (
            "repair", 5, "zh", acct)
        assert ivr["queued_at"] == (now - timedelta(seconds=20)).isoformat()
        assert pop["work_orders"] == []


def test_pop_for_a_caller_known_only_by_phone(engine: Engine, demo_city: Demo,
                                              now: datetime) -> None:
    phone = demo_city["phone_multiple_accounts"]["phone"]
    other = demo_city["no_outage"]
    with _session(engine) as s:
        linked = accounts_for_phone(s, phone)
        assert len(linked) >= 2
        pop = screen_pop(s, call_id=CALL_ID, caller_number=phone, account_no=None, now=now)
        assert pop["entered_account"] is None and pop["ivr"] is None
        assert [a["account_no"] for a in pop["accounts"]] == linked
        assert {tuple(a["matched_by"]) for a in pop["accounts"]} == {("phone",)}
        names = {a["customer_name"] for a in pop["accounts"]}
        assert len(names) == 1  # a second home: same customer
        assert pop["work_orders"] == []

        # The caller reported a fault by phone earlier (IVR, no account keyed), and someone
        # else reported one at the caller's second account; both are open.
        first = fault_report(s, now - timedelta(minutes=30), caller=phone, call_id="c-1")
        second = fault_report(s, now - timedelta(minutes=10), linked[1],
                              caller="13999999999", call_id="c-2",
                              actor=Actor("A007", Role.AGENT), description="楼道无电")
        done = fault_report(s, now - timedelta(minutes=20), linked[0], caller=phone,
                            call_id="c-3")
        s.execute(update(WorkOrder).where(WorkOrder.number == done.number)
                  .values(status="resolved"))
        # Not this caller's: another number, another account.
        fault_report(s, now - timedelta(minutes=5), other["account_no"],
                     caller="13999999999", call_id="c-4")

        pop = screen_pop(s, call_id=CALL_ID, caller_number=phone, account_no=None, now=now)
        assert json.loads(json.dumps(pop)) == pop
        orders = pop["work_orders"]
        assert [o["number"] for o in orders] == [second.number, first.number]
        assert orders[0] == {
            "number": second.number, "type": "fault_repair", "status": "accepted",
            "caller_number": "13999999999", "account_no": linked[1], "channel": "agent",
            "description": "楼道无电", "created_at": (now - timedelta(minutes=10)).isoformat(),
            "sla_due_at": second.sla_due_at.isoformat() if second.sla_due_at else None,
            "overdue": False, "outage_id": None, "master_number": None,
        }
        assert (orders[1]["account_no"], orders[1]["caller_number"]) == (None, phone)
        # Carriers deliver the same mobile as +86…; the pop finds the same accounts and orders.
        intl = screen_pop(s, call_id=CALL_ID, caller_number="+86" + phone, account_no=None,
                          now=now)
        assert intl["accounts"] == pop["accounts"] and intl["work_orders"] == orders


def test_pop_for_the_important_customer(engine: Engine, demo_city: Demo,
                                        now: datetime) -> None:
    demo = demo_city["important_customer"]
    with _session(engine) as s:
        pop = screen_pop(s, call_id=CALL_ID, caller_number=demo["phone"],
                         account_no=demo["account_no"], now=now)
    [a] = pop["accounts"]
    assert (a["important"], a["important_kind"]) == (True, "hospital")
    assert a["customer_name"].endswith("医院")


def test_pop_for_an_unknown_entered_account(engine: Engine, demo_city: Demo,
                                            now: datetime) -> None:
    unknown = demo_city["unknown_account"]
    fault = demo_city["outage_fault"]
    with _session(engine) as s:
        pop = screen_pop(s, call_id=CALL_ID, caller_number=fault["phone"],
                         account_no=unknown["account_no"], now=now)
    assert pop["entered_account"] == {"account_no": unknown["account_no"], "found": False}
    assert [(a["account_no"], a["matched_by"]) for a in pop["accounts"]] == [
        (fault["account_no"], ["phone"])]
    assert pop["accounts_total"] == 1


def test_pop_queries_are_bounded_and_fast(engine: Engine, demo_city: Demo,
                                          now: datetime) -> None:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append(statement)

    cases = [(d["phone"], d["account_no"] if d["purpose"] != "phone_multiple_accounts" else None)
             for d in demo_city.values()]
    timings: list[float] = []
    with _session(engine) as s:
        s.execute(select(1))  # begin outside the measurements
        for phone, account_no in cases:
            statements.clear()
            event.listen(engine, "before_cursor_execute", count)
            try:
                screen_pop(s, call_id=CALL_ID, caller_number=phone, account_no=account_no,
                           now=now)
            finally:
                event.remove(engine, "before_cursor_execute", count)
            # call, phone lookup, accounts, bills, payments, work orders, and for the outage
            # notices at most 5 (scope rows, notices, their scope, master orders, area names)
            # however many accounts, feeders or notices
            assert len(statements) <= 6 + 5, (phone, statements)
        for _ in range(5):
            for phone, account_no in cases:
                started = time.perf_counter()
                screen_pop(s, call_id=CALL_ID, caller_number=phone, account_no=account_no,
                           now=now)
                timings.append((time.perf_counter() - started) * 1000)
    median, worst = statistics.median(timings), max(timings)
    logger.warning("screen_pop on %s, 5,000 accounts: median %.1f ms, max %.1f ms over %d pops",
                   engine.dialect.name, median, worst, len(timings))
    # Generous: the pop must be on screen while the seat rings (a few seconds).
    assert median < 250
