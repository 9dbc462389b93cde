"""What the IVR reads and writes: bills, outages, repair work orders and phone-to-account lookup."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from types import MappingProxyType

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from cti.db.models import (
    Account,
    AccountPhone,
    Area,
    Bill,
    Customer,
    Outage,
    OutageArea,
    Payment,
    WorkOrderCounter,
)
from cti.db.upsert import insert_on_conflict

logger = logging.getLogger(__name__)

# Repair arrival commitments (DOMAIN.md): urban 45 min, rural 90, remote 120.
DEFAULT_SLA_MINUTES: Mapping[str, int] = MappingProxyType(
    {"urban": 45, "rural": 90, "remote": 120})
# Planned outages are announced 7 days ahead, so the IVR tells callers about them that early.
PLANNED_NOTICE_WINDOW = timedelta(days=7)
# Work-order numbers carry the center's local date. China has no DST, so a fixed offset is exact
# and needs no tz database.
WORK_ORDER_TZ = timezone(timedelta(hours=8), "CST")
WORK_ORDER_MAX_SEQ = 99_999
CENT = Decimal("0.01")


class WorkOrderNumbersExhausted(RuntimeError):
    """All 99 999 work-order numbers of a local day are used."""


@dataclass(frozen=True, slots=True)
class BillInfo:
    account_no: str
    customer_name: str
    amount_due: Decimal
    due_date: date | None
    last_payment_amount: Decimal | None
    last_payment_at: datetime | None


@dataclass(frozen=True, slots=True)
class OutageInfo:
    outage_id: int
    kind: str
    cause: str
    start_at: datetime
    expected_restore_at: datetime | None
    area_name: str


@dataclass(frozen=True, slots=True)
class WorkOrderInfo:
    number: str
    sla_due_at: datetime | None
    type: str
    status: str
    # a fault report from inside a known outage (issue 12): the outage it was linked into, as
    # a child of the outage's master order; `in_outage` when callers may hear that outage now
    # (not closed, not awaiting confirmation), and when power is expected back (None: unknown)
    outage_id: int | None = None
    in_outage: bool = False
    restore_at: datetime | None = None


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware datetime")


def normalize_phone(raw: str) -> str:
    """Digits only, without +86/0086 and without a trunk 0 before a mobile number.

    Carriers deliver the same mobile as 13812345678, +8613812345678 or 013812345678; the
    account_phones table stores the first form, so lookups must reduce callers to it.
    """
    digits = "".join(ch for ch in raw if ch in "0123456789")
    if digits.startswith("00"):
        digits = digits[2:]
    if digits.startswith("86") and len(digits) >= 12:
        rest = digits[2:]
        # A mobile stays as is; a landline gets its domestic trunk 0 back (+86 531 → 0531).
        digits = rest if len(rest) == 11 and rest.startswith("1") else "0" + rest
    elif len(digits) == 12 and digits.startswith("01"):
        digits = digits[1:]
    return digits


def bill_info(session: Session, account_no: str) -> BillInfo | None:
    """The amount due and last payment of an account; None when the account does not exist."""
    account = session.execute(
        select(Account.id, Customer.name)
        .join(Customer, Customer.id == Account.customer_id)
        .where(Account.account_no == account_no)
    ).one_or_none()
    if account is None:
        return None
    account_id, customer_name = account
    unpaid = session.execute(
        select(Bill.amount, Bill.paid_amount, Bill.due_date)
        .where(Bill.account_id == account_id, Bill.paid.is_(False))
        .order_by(Bill.period)
    ).all()
    # Summed in Python: SQLite sums NUMERIC as floats, and fen must come out exact.
    amount_due = sum((amount - paid for amount, paid, _ in unpaid), Decimal(0)).quantize(CENT)
    last_payment = session.execute(
        select(Payment.amount, Payment.paid_at)
        .where(Payment.account_id == account_id)
        .order_by(Payment.paid_at.desc(), Payment.id.desc())
        .limit(1)
    ).one_or_none()
    return BillInfo(
        account_no=account_no,
        customer_name=customer_name,
        amount_due=amount_due,
        due_date=unpaid[0].due_date if unpaid else None,
        last_payment_amount=last_payment.amount.quantize(CENT) if last_payment else None,
        last_payment_at=last_payment.paid_at if last_payment else None,
    )


def outages_for_account(
    session: Session, account_no: str, now: datetime,
) -> list[OutageInfo] | None:
    """Current and upcoming outages at the account; None when the account does not exist.

    Included: outages not restored (restored_at null or later than now) that cover the account's
    whole area or its feeder, and that have started or are planned to start within 7 days. A
    planned outage whose window is over is left out; a fault past its expected restoration is
    kept, because the caller is still without power and that is when they call.
    Sorted faults first, then by start time.
    """
    _require_aware(now)
    account = session.execute(
        select(Account.area_id, Account.feeder_id).where(Account.account_no == account_no)
    ).one_or_none()
    if account is None:
        return None
    area_id, feeder_id = account
    feeder_match: ColumnElement[bool] = OutageArea.feeder_id.is_(None)
    if feeder_id is not None:
        feeder_match = or_(feeder_match, OutageArea.feeder_id == feeder_id)
    rows = session.execute(
        select(Outage.id, Outage.kind, Outage.cause, Outage.start_at, Outage.expected_restore_at,
               Area.name)
        .join(OutageArea, OutageArea.outage_id == Outage.id)
        .join(Area, Area.id == OutageArea.area_id)
        .where(
            OutageArea.area_id == area_id,
            feeder_match,
            or_(Outage.restored_at.is_(None), Outage.restored_at > now),
            Outage.start_at <= now + PLANNED_NOTICE_WINDOW,
            or_(Outage.kind == "fault", Outage.expected_restore_at > now),
        )
    ).all()
    # An outage listed both for the whole area and for the feeder must be told once.
    found: dict[int, OutageInfo] = {}
    for outage_id, kind, cause, start_at, expected, area_name in rows:
        found.setdefault(outage_id, OutageInfo(
            outage_id=outage_id, kind=kind, cause=cause, start_at=start_at,
            expected_restore_at=expected, area_name=area_name))
    return sorted(found.values(),
                  key=lambda o: (o.kind != "fault", o.start_at, o.outage_id))


def allocate_work_order_number(session: Session, now: datetime) -> str:
    """The next work-order number of now's local day: yymmdd + 5-digit sequence.

    One upsert does it (INSERT … ON CONFLICT DO UPDATE … RETURNING), so the first order of a
    day cannot race another into a duplicate, on either database. The counter row stays locked
    until the caller's transaction ends, so concurrent creators queue instead of colliding, and a
    rolled-back order gives its number back.
    """
    _require_aware(now)
    day = now.astimezone(WORK_ORDER_TZ).date()
    stmt = insert_on_conflict(session, WorkOrderCounter).values(day=day, last_seq=1)
    upsert = stmt.on_conflict_do_update(
        index_elements=[WorkOrderCounter.day],
        set_={"last_seq": WorkOrderCounter.last_seq + 1},
    ).returning(WorkOrderCounter.last_seq)
    seq = session.execute(upsert).scalar_one()
    if seq > WORK_ORDER_MAX_SEQ:
        raise WorkOrderNumbersExhausted(f"no work-order number left for {day.isoformat()}")
    return f"{day:%y%m%d}{seq:05d}"


def accounts_for_phone(session: Session, phone: str) -> list[str]:
    """Account numbers registered for a caller's phone, sorted; empty when none."""
    normalized = normalize_phone(phone)
    if not normalized:
        return []
    return list(session.scalars(
        select(Account.account_no)
        .join(AccountPhone, AccountPhone.account_id == Account.id)
        .where(AccountPhone.phone == normalized)
        .order_by(Account.account_no)
        .distinct()
    ))
