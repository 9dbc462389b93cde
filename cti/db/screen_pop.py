"""The screen-pop: what the agent sees about a caller while the seat rings, in a few queries."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeAlias

from sqlalchemy import Row, func, or_, select
from sqlalchemy.orm import Session, aliased

from cti.db.ivr_queries import WORK_ORDER_TZ, accounts_for_phone, normalize_phone
from cti.db.jsonready import json_ready, yuan
from cti.db.models import Account, Area, Bill, Call, Customer, Feeder, Payment, WorkOrder
from cti.db.models_callers import CallerListEntry
from cti.db.outage_board import area_names, notices_for_places
from outages.scope import CAUSES, Notice, Place
from outbound.dnc import BadNumber, national

logger = logging.getLogger(__name__)

AnyRow: TypeAlias = "Row[*tuple[Any, ...]]"

# A landlord's or a company's phone can map to hundreds of accounts; the pop shows the first
# ones (the entered account always first) and says that more exist.
MAX_ACCOUNTS = 10
LAST_BILLS = 3
MAX_WORK_ORDERS = 10
# resolved (回单) and what follows it (回访, 归档) need no more work; anything else is open.
CLOSED_WORK_ORDER_STATUSES: tuple[str, ...] = ("resolved", "return_visit", "archived")


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware datetime")


def screen_pop(
    session: Session,
    *,
    call_id: str,
    caller_number: str,
    account_no: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The caller's accounts, arrears, bills, outages, open work orders and IVR path; JSON-ready.

    account_no is what the caller entered in the IVR (None: fall back to the call record's).
    The entered account comes first, then the accounts registered for the caller's phone.
    Queries: 7 (6 for a withheld number), plus 1 to 5 for the outage notices covering the
    shown accounts (the scope rows that could match, then those notices, their master orders
    and area names; the same notices the IVR's outage-first lookup hears), whatever the
    number of bills, payments, work orders or notices.
    """
    _require_aware(now)
    call = session.execute(
        select(Call.caller_number, Call.started_at, Call.language, Call.account_no, Call.skill,
               Call.priority, Call.ivr_path, Call.queued_at)
        .where(Call.call_id == call_id)
    ).one_or_none()
    entered = account_no if account_no is not None else (call.account_no if call else None)

    by_phone = accounts_for_phone(session, caller_number)
    wanted: list[str] = []
    for no in ([entered] if entered else []) + by_phone:
        if no not in wanted:
            wanted.append(no)
    shown = wanted[:MAX_ACCOUNTS]

    accounts = _accounts(session, shown)
    found = {a.account_no: a for a in accounts}
    ids = [a.id for a in accounts]
    bills, unpaid = _bills(session, ids)
    payments = _last_payments(session, ids)
    outages = _outages(session, accounts, now)
    today = now.astimezone(WORK_ORDER_TZ).date()

    account_rows: list[dict[str, Any]] = []
    for no in shown:
        a = found.get(no)
        if a is None:
            continue  # the entered number does not exist; said in entered_account below
        matched_by = [kind for kind, hit in (("ivr", no == entered), ("phone", no in by_phone))
                      if hit]
        account_rows.append(_account(a, matched_by, bills.get(a.id, []), unpaid.get(a.id, []),
                                     payments.get(a.id), outages.get(a.account_no, []),
                                     today))

    pop = {
        "call_id": call_id,
        "caller_number": caller_number,
        # on the VIP list (issue 15 §3): the agent sees it, with the supervisor's reason
        "vip": _vip(session, caller_number),
        "generated_at": now,
        "entered_account": None if not entered else {
            "account_no": entered, "found": entered in found},
        "accounts": account_rows,
        # Accounts that exist, shown or not (an entered number that does not exist is no account).
        "accounts_total": len(wanted) - (1 if entered and entered not in found else 0),
        "accounts_truncated": len(wanted) > len(shown),
        "work_orders": _open_work_orders(session, ids, caller_number, now),
        "ivr": None if call is None else {
            "started_at": call.started_at,
            "language": call.language,
            "account_no": call.account_no,
            "skill": call.skill,
            "priority": call.priority,
            "queued_at": call.queued_at,
            # What the caller keyed, in order (menu choices, the account number, ...).
            "entered": [{"node": step.get("node"), "input": step["input"]}
                        for step in call.ivr_path if "input" in step],
            "path": list(call.ivr_path),
        },
    }
    if call is None:
        logger.warning("screen-pop for a call without record call_id=%s", call_id)
    result: dict[str, Any] = json_ready(pop)
    return result


def _vip(session: Session, caller_number: str) -> dict[str, Any] | None:
    try:
        nat = national(caller_number)
    except BadNumber:  # withheld, anonymous: on no list
        return None
    row = session.execute(
        select(CallerListEntry.reason, CallerListEntry.added_at)
        .where(CallerListEntry.kind == "vip", CallerListEntry.number == nat)).one_or_none()
    return None if row is None else {"reason": row.reason, "since": row.added_at}


def _accounts(session: Session, account_nos: Sequence[str]) -> Sequence[AnyRow]:
    if not account_nos:
        return []
    return session.execute(
        select(Account.id, Account.account_no, Account.service_address,
               Account.transformer_area, Account.area_id, Account.feeder_id,
               Customer.name.label("customer_name"), Customer.important,
               Customer.important_kind, Area.code.label("area_code"),
               Area.name.label("area_name"), Area.kind.label("area_kind"),
               Feeder.code.label("feeder_code"), Feeder.name.label("feeder_name"))
        .join(Customer, Customer.id == Account.customer_id)
        .join(Area, Area.id == Account.area_id)
        .outerjoin(Feeder, Feeder.id == Account.feeder_id)
        .where(Account.account_no.in_(account_nos))
    ).all()


def _bills(session: Session, account_ids: Sequence[int],
           ) -> tuple[dict[int, list[AnyRow]], dict[int, list[AnyRow]]]:
    """(last bills newest first, unpaid bills oldest first) per account, in one query."""
    if not account_ids:
        return {}, {}
    rank = func.row_number().over(
        partition_by=Bill.account_id, order_by=Bill.period.desc()).label("rank")
    ranked = (
        select(Bill.account_id, Bill.period, Bill.usage_kwh, Bill.amount, Bill.paid,
               Bill.paid_amount, Bill.due_date, rank)
        .where(Bill.account_id.in_(account_ids))
        .subquery()
    )
    rows = session.execute(
        select(ranked)
        .where(or_(ranked.c.rank <= LAST_BILLS, ranked.c.paid.is_(False)))
        .order_by(ranked.c.account_id, ranked.c.period.desc())
    ).all()
    last: dict[int, list[AnyRow]] = {}
    unpaid: dict[int, list[AnyRow]] = {}
    for r in rows:
        if r.rank <= LAST_BILLS:
            last.setdefault(r.account_id, []).append(r)
        if not r.paid:
            unpaid.setdefault(r.account_id, []).insert(0, r)
    return last, unpaid


def _last_payments(session: Session, account_ids: Sequence[int]) -> dict[int, AnyRow]:
    if not account_ids:
        return {}
    rank = func.row_number().over(
        partition_by=Payment.account_id,
        order_by=(Payment.paid_at.desc(), Payment.id.desc())).label("rank")
    ranked = (
        select(Payment.account_id, Payment.amount, Payment.paid_at, Payment.channel, rank)
        .where(Payment.account_id.in_(account_ids))
        .subquery()
    )
    return {r.account_id: r for r in session.execute(select(ranked).where(ranked.c.rank == 1))}


def _outages(session: Session, accounts: Sequence[AnyRow], now: datetime,
             ) -> dict[str, list[dict[str, Any]]]:
    """The active outage notices covering each account (area, feeder or 台区), by account."""
    places = {a.account_no: Place(a.area_id, a.feeder_id, a.transformer_area) for a in accounts}
    covering = notices_for_places(session, places, now)
    found = {n.id: n for ns in covering.values() for n in ns}
    names = area_names(session, found.values()) if found else {}
    area_of = {a.account_no: a.area_name for a in accounts}
    return {no: [_notice(n, names, area_of.get(no)) for n in ns] for no, ns in covering.items()}


def _notice(n: Notice, names: dict[int, str], account_area: str | None) -> dict[str, Any]:
    """One notice in the pop: `kind` and `cause` (the free text for agents) as before the
    categories, plus the category and its labels, the 台区 in scope and the master order."""
    info = CAUSES[n.cause]
    return {
        "outage_id": n.id, "kind": info.db_kind, "cause": n.agent_text,
        "category": n.cause.value, "category_zh": info.label_zh, "category_en": info.label_en,
        "agent_text": n.agent_text, "start_at": n.start_at,
        "expected_restore_at": n.restore_at, "schedule_end_at": n.schedule_end_at,
        "master_order": n.master_order, "area_name": account_area,
        "areas": [names.get(a, str(a)) for a in sorted(n.scope.areas)],
        "transformer_areas": [t for _a, t in sorted(n.scope.transformer_areas)],
        "feeder_ids": sorted(n.scope.feeders),
    }


def _account(a: AnyRow, matched_by: list[str], bills: list[AnyRow],
             unpaid: list[AnyRow], payment: AnyRow | None,
             outages: list[dict[str, Any]], today: date) -> dict[str, Any]:
    # Summed in Python: SQLite sums NUMERIC as floats, and fen must come out exact.
    amount_due = sum((b.amount - b.paid_amount for b in unpaid), Decimal(0))
    return {
        "account_no": a.account_no,
        "matched_by": matched_by,
        "customer_name": a.customer_name,
        "service_address": a.service_address,
        "area": {"code": a.area_code, "name": a.area_name, "kind": a.area_kind},
        "feeder": None if a.feeder_code is None else {"code": a.feeder_code,
                                                      "name": a.feeder_name},
        "transformer_area": a.transformer_area,
        "important": a.important,
        "important_kind": a.important_kind,
        "arrears": {
            "amount_due": yuan(amount_due),
            "unpaid_bills": len(unpaid),
            "due_date": unpaid[0].due_date if unpaid else None,
            "overdue": any(b.due_date < today for b in unpaid),
        },
        "bills": [{
            "period": b.period, "usage_kwh": b.usage_kwh, "amount": yuan(b.amount),
            "paid": b.paid, "paid_amount": yuan(b.paid_amount), "due_date": b.due_date,
        } for b in bills],
        "last_payment": None if payment is None else {
            "amount": yuan(payment.amount), "paid_at": payment.paid_at,
            "channel": payment.channel},
        "outages": outages,
    }


def _open_work_orders(session: Session, account_ids: Sequence[int], caller_number: str,
                      now: datetime) -> list[dict[str, Any]]:
    """Open orders of the shown accounts or from this number, newest first."""
    normalized = normalize_phone(caller_number)
    # Withheld numbers ('anonymous', '') are nobody's: their orders are not this caller's.
    numbers = {caller_number, normalized} if normalized else set()
    matches = []
    if account_ids:
        matches.append(WorkOrder.account_id.in_(account_ids))
    if numbers:
        matches.append(WorkOrder.caller_number.in_(sorted(numbers)))
    if not matches:
        return []
    master = aliased(WorkOrder)
    rows = session.execute(
        select(WorkOrder.number, WorkOrder.type, WorkOrder.status, WorkOrder.caller_number,
               Account.account_no, WorkOrder.channel, WorkOrder.description,
               WorkOrder.created_at, WorkOrder.sla_due_at, WorkOrder.outage_id,
               master.number.label("master_number"))
        .outerjoin(Account, Account.id == WorkOrder.account_id)
        .outerjoin(master, master.id == WorkOrder.master_id)
        .where(or_(*matches), WorkOrder.status.not_in(CLOSED_WORK_ORDER_STATUSES))
        .order_by(WorkOrder.created_at.desc(), WorkOrder.id.desc())
        .limit(MAX_WORK_ORDERS)
    ).all()
    return [{
        "number": r.number, "type": r.type, "status": r.status,
        "caller_number": r.caller_number, "account_no": r.account_no, "channel": r.channel,
        "description": r.description, "created_at": r.created_at, "sla_due_at": r.sla_due_at,
        "overdue": r.sla_due_at is not None and r.sla_due_at < now,
        # a fault report linked into a known outage: the notice and its master order (主单)
        "outage_id": r.outage_id, "master_number": r.master_number,
    } for r in rows]


# ------------------------------------------------------------------------ caller history

HISTORY_CALLS = 10
HISTORY_WORK_ORDERS = 10


def caller_history(session: Session, *, call_id: str, caller_number: str,
                   account_no: str | None) -> dict[str, Any]:
    """The caller's interaction history beside the pop (issue 14 §6): their last calls (not
    this one), with who took each and how it was coded in wrap-up, and their last work
    orders whatever their status (the pop lists the open ones). By the caller's number and
    the accounts registered for it or entered in the IVR; a withheld number has none.
    Queries: 3, whatever the data."""
    normalized = normalize_phone(caller_number)
    numbers = sorted({caller_number, normalized}) if normalized else []
    if not numbers:
        return {"calls": [], "work_orders": []}
    calls = session.execute(
        select(Call.call_id, Call.started_at, Call.ended_at, Call.answered_at, Call.outcome,
               Call.skill, Call.agent_id, Call.disposition, Call.agent_note)
        .where(Call.caller_number.in_(numbers), Call.call_id != call_id)
        .order_by(Call.started_at.desc(), Call.id.desc()).limit(HISTORY_CALLS)).all()
    account_nos = accounts_for_phone(session, caller_number)
    if account_no:
        account_nos = [account_no, *account_nos]
    matches = [WorkOrder.caller_number.in_(numbers)]
    if account_nos:
        matches.append(Account.account_no.in_(sorted(set(account_nos))))
    orders = session.execute(
        select(WorkOrder.number, WorkOrder.type, WorkOrder.status, WorkOrder.created_at,
               WorkOrder.resolved_at, WorkOrder.description, Account.account_no)
        .outerjoin(Account, Account.id == WorkOrder.account_id)
        .where(or_(*matches))
        .order_by(WorkOrder.created_at.desc(), WorkOrder.id.desc())
        .limit(HISTORY_WORK_ORDERS)).all()
    return json_ready({
        "calls": [{"call_id": c.call_id, "started_at": c.started_at, "ended_at": c.ended_at,
                   "answered": c.answered_at is not None, "outcome": c.outcome,
                   "skill": c.skill, "agent_id": c.agent_id, "disposition": c.disposition,
                   "agent_note": c.agent_note} for c in calls],
        "work_orders": [{"number": o.number, "type": o.type, "status": o.status,
                         "created_at": o.created_at, "resolved_at": o.resolved_at,
                         "description": o.description, "account_no": o.account_no}
                        for o in orders],
    })
