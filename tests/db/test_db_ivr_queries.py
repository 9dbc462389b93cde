"""IVR look-ups: bills, outages at an account, phone to accounts."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.orm import Session

from cti.db.ivr_queries import (
    BillInfo,
    accounts_for_phone,
    bill_info,
    normalize_phone,
    outages_for_account,
)

if TYPE_CHECKING:
    from conftest import World

H = timedelta(hours=1)


# --- bill_info ---------------------------------------------------------------------------

def test_bill_info_unknown_account(session: Session) -> None:
    assert bill_info(session, "3799999999") is None


def test_bill_info_in_arrears(world: World, session: Session, now: datetime) -> None:
    acct = world.account(world.area(), name="李秀英")
    world.bill(acct, "2026-08", "100.10", paid=True)
    # Oldest unpaid is partly paid: 80.05 of 120.05 is still owed.
    world.bill(acct, "2026-09", "120.05", paid=False, paid_amount="40.00",
               due=date(2026, 10, 25))
    world.bill(acct, "2026-10", "0.20", paid=False)
    world.payment(acct, "100.10", now - 60 * 24 * H, channel="alipay")
    world.payment(acct, "40.00", now - 30 * 24 * H)
    info = bill_info(session, acct.account_no)
    assert info == BillInfo(
        account_no=acct.account_no, customer_name="李秀英", amount_due=Decimal("80.25"),
        due_date=date(2026, 10, 25), last_payment_amount=Decimal("40.00"),
        last_payment_at=now - 30 * 24 * H)
    assert str(info.amount_due) == "80.25"


def test_bill_info_paid_up(world: World, session: Session, now: datetime) -> None:
    acct = world.account(world.area())
    world.bill(acct, "2026-10", "66.66", paid=True)
    world.payment(acct, "66.66", now - 2 * H)
    info = bill_info(session, acct.account_no)
    assert info is not None
    assert info.amount_due == Decimal("0.00") and str(info.amount_due) == "0.00"
    assert info.due_date is None
    assert (info.last_payment_amount, info.last_payment_at) == (Decimal("66.66"), now - 2 * H)


def test_bill_info_without_any_history(world: World, session: Session) -> None:
    acct = world.account(world.area())
    info = bill_info(session, acct.account_no)
    assert info is not None
    assert (info.amount_due, info.due_date, info.last_payment_amount, info.last_payment_at) == (
        Decimal("0.00"), None, None, None)


def test_bill_info_sums_exactly(world: World, session: Session) -> None:
    # 0.1 + 0.2 is the classic float trap; SQLite stores NUMERIC as REAL.
    acct = world.account(world.area())
    for month, amount in zip(range(1, 7), ["0.10", "0.20", "1234567.89", "0.01", "0.02",
                                           "0.03"], strict=True):
        world.bill(acct, f"2026-{month:02d}", amount, paid=False)
    info = bill_info(session, acct.account_no)
    assert info is not None and info.amount_due == Decimal("1234568.25")


def test_bill_info_is_frozen(world: World, session: Session) -> None:
    info = bill_info(session, world.account(world.area()).account_no)
    with pytest.raises(AttributeError):
        info.amount_due = Decimal(1)  # type: ignore[misc, union-attr]


# --- outages_for_account -----------------------------------------------------------------

def test_outages_unknown_account(session: Session, now: datetime) -> None:
    assert outages_for_account(session, "3799999999", now) is None


def test_outage_matching_by_area_and_feeder(world: World, session: Session,
                                            now: datetime) -> None:
    area, other_area = world.area(name="历下城区"), world.area()
    f1, f2 = world.feeder(area), world.feeder(area)
    on_f1 = world.account(area, f1)
    on_f2 = world.account(area, f2)
    no_feeder = world.account(area)
    elsewhere = world.account(other_area, world.feeder(other_area))
    whole = world.outage("fault", start=now - H, expected=now + H, where=[(area, None)],
                         cause="大风导致树障")
    feeder_only = world.outage("fault", start=now - 2 * H, expected=now + 3 * H,
                               where=[(area, f1)])

    def ids(account_no: str) -> list[int]:
        found = outages_for_account(session, account_no, now)
        assert found is not None
        return [o.outage_id for o in found]

    assert ids(on_f1.account_no) == [feeder_only.id, whole.id]  # faults, by start
    assert ids(on_f2.account_no) == [whole.id]
    assert ids(no_feeder.account_no) == [whole.id]
    assert ids(elsewhere.account_no) == []
    info = outages_for_account(session, on_f2.account_no, now)
    assert info is not None
    assert (info[0].kind, info[0].cause, info[0].area_name) == ("fault", "大风导致树障", "历下城区")
    assert (info[0].start_at, info[0].expected_restore_at) == (now - H, now + H)


def test_restored_and_finished_outages_are_excluded(world: World, session: Session,
                                                    now: datetime) -> None:
    area = world.area()
    acct = world.account(area, world.feeder(area))
    world.outage("fault", start=now - 5 * H, expected=now - 2 * H, restored=now - 3 * H,
                 where=[(area, None)])
    world.outage("planned", start=now - 9 * H, expected=now - H, where=[(area, None)])
    overdue = world.outage("fault", start=now - 6 * H, expected=now - H, where=[(area, None)])
    # An overdue fault is still an outage: the caller is still in the dark.
    found = outages_for_account(session, acct.account_no, now)
    assert found is not None and [o.outage_id for o in found] == [overdue.id]


def test_planned_outages_within_seven_days(world: World, session: Session,
                                           now: datetime) -> None:
    area = world.area()
    acct = world.account(area, world.feeder(area))
    day = timedelta(days=1)
    ongoing = world.outage("planned", start=now - H, expected=now + 5 * H, where=[(area, None)],
                           cause="10kV线路计划检修")
    in_3_days = world.outage("planned", start=now + 3 * day, expected=now + 3 * day + 8 * H,
                             where=[(area, None)])
    edge = world.outage("planned", start=now + 7 * day, expected=now + 7 * day + H,
                        where=[(area, None)])
    world.outage("planned", start=now + 7 * day + H, expected=now + 8 * day,
                 where=[(area, None)])
    fault = world.outage("fault", start=now - 10 * H, expected=now + H, where=[(area, None)])
    found = outages_for_account(session, acct.account_no, now)
    assert found is not None
    assert [o.outage_id for o in found] == [fault.id, ongoing.id, in_3_days.id, edge.id]
    assert [o.kind for o in found] == ["fault", "planned", "planned", "planned"]


def test_outage_listed_twice_is_told_once(world: World, session: Session,
                                          now: datetime) -> None:
    area = world.area()
    feeder = world.feeder(area)
    acct = world.account(area, feeder)
    outage = world.outage("fault", start=now - H, expected=now + H,
                          where=[(area, None), (area, feeder)])
    found = outages_for_account(session, acct.account_no, now)
    assert found is not None and [o.outage_id for o in found] == [outage.id]


def test_outages_require_aware_now(world: World, session: Session) -> None:
    acct = world.account(world.area())
    with pytest.raises(ValueError, match="naive"):
        outages_for_account(session, acct.account_no, datetime(2026, 1, 1))


# --- accounts_for_phone ------------------------------------------------------------------

def test_accounts_for_phone_is_many_to_many(world: World, session: Session) -> None:
    area = world.area()
    a = world.account(area, account_no="3700000020", phones=["13800000001", "13800000002"])
    b = world.account(area, account_no="3700000010", phones=["13800000001"])
    assert accounts_for_phone(session, "13800000001") == [b.account_no, a.account_no]
    assert accounts_for_phone(session, "13800000002") == [a.account_no]
    assert accounts_for_phone(session, "13900000000") == []
    assert accounts_for_phone(session, "") == []


@pytest.mark.parametrize("raw", ["13800000001", "+8613800000001", "008613800000001",
                                 "013800000001", "138-0000-0001", "86 138 0000 0001"])
def test_accounts_for_phone_normalizes_caller_id(world: World, session: Session,
                                                 raw: str) -> None:
    acct = world.account(world.area(), phones=["13800000001"])
    assert accounts_for_phone(session, raw) == [acct.account_no]


@pytest.mark.parametrize(("raw", "expected"), [
    ("13812345678", "13812345678"),
    ("+86 138 1234 5678", "13812345678"),
    ("013812345678", "13812345678"),
    ("+86 531 8888 6666", "053188886666"),
    ("0531-88886666", "053188886666"),
    ("95598", "95598"),
    ("anonymous", ""),
])
def test_normalize_phone(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected
