"""Planned-outage notice calls in the database (issue 14 §4): the planned outages and the
important customers the scheduler (outages.notice_calls) reads, the notice jobs it already made,
its changes written, and the console's list of an outage's calls. Functions take an open
Session and `now`; the caller owns the unit of work.

A notice job is an outbound job (cti.db.models_outbound.OutboundJob) of purpose
`outage_notice` with its outage, account and lead days; the unique index on (outage, account,
number, lead) makes a second job for the same notice impossible, whoever schedules it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from cti.db.models import Account, AccountPhone, Call, Customer
from cti.db.models_outbound import OutboundAttempt, OutboundJob
from cti.db.outages import load_notices
from cti.db.upsert import insert_on_conflict
from outages.notice_calls import Changes, Existing, PlannedOutage
from outages.notice_calls import Customer as Important
from outages.scope import Place
from outbound.dnc import BadNumber, national

PURPOSE = "outage_notice"
LANGS = ("zh", "en")
MAX_CALLS_LISTED = 1000


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware datetime")
    return now.astimezone(UTC)


def planned_outages(s: Session, now: datetime) -> list[PlannedOutage]:
    """The open notices of a planned kind (planned work, temporary, load limiting) that have
    not begun; one still waiting for a supervisor's confirmation is not called about."""
    now = _aware(now)
    return [PlannedOutage(n.id, n.scope, n.start_at, callable=not n.awaiting_confirmation)
            for n in load_notices(s)
            if n.info.db_kind == "planned" and n.start_at > now]


def important_customers(s: Session) -> list[Important]:
    """Every phone of every account of an important customer, with where the account is and the
    language its number last chose on the IVR (Mandarin when never heard)."""
    rows = s.execute(
        select(Account.account_no, Account.area_id, Account.feeder_id, Account.transformer_area,
               AccountPhone.phone)
        .join(Customer, Customer.id == Account.customer_id)
        .join(AccountPhone, AccountPhone.account_id == Account.id)
        .where(Customer.important.is_(True))
        .order_by(Account.account_no, AccountPhone.phone)).all()
    phones = sorted({r.phone for r in rows})
    langs: dict[str, str] = {}
    if phones:
        last = (select(Call.caller_number, func.max(Call.started_at).label("at"))
                .where(Call.caller_number.in_(phones), Call.language.in_(LANGS))
                .group_by(Call.caller_number).subquery())
        langs = {num: lang for num, lang in s.execute(
            select(Call.caller_number, Call.language)
            .join(last, (last.c.caller_number == Call.caller_number)
                  & (last.c.at == Call.started_at))
            .where(Call.language.in_(LANGS))).all() if lang}
    out = []
    for r in rows:
        try:
            number = national(r.phone)
        except BadNumber:
            continue  # not a number we could dial
        out.append(Important(r.account_no, number, Place(r.area_id, r.feeder_id,
                                                         r.transformer_area),
                             langs.get(r.phone, "zh")))
    return out


def _existing(row: OutboundJob) -> Existing:
    return Existing(row.id, (int(row.outage_id or 0), row.account_no or "", row.number,
                             int(row.lead_days or 0)),
                    row.state, row.not_before, row.expires_at)


def notice_jobs(s: Session, outage_ids: Iterable[int]) -> list[Existing]:
    """The notice jobs of these outages, and every notice job still scheduled whatever its
    outage (one closed or begun must have its scheduled calls cancelled)."""
    ids = sorted(set(outage_ids))
    cond = OutboundJob.state == "scheduled"
    if ids:
        cond = or_(cond, OutboundJob.outage_id.in_(ids))
    rows = s.scalars(select(OutboundJob)
                     .where(OutboundJob.purpose == PURPOSE, OutboundJob.lead_days.is_not(None),
                            cond)
                     .order_by(OutboundJob.id)).all()
    return [_existing(r) for r in rows]


def apply(s: Session, changes: Changes, now: datetime, *, by: str = "system") -> int:
    """Write the scheduler's changes; how many jobs were created (a job another CTI made
    meanwhile is not made again: the unique index and ON CONFLICT DO NOTHING)."""
    now = _aware(now)
    made = 0
    for c in changes.create:
        res = s.execute(insert_on_conflict(s, OutboundJob).values(
            purpose=PURPOSE, number=c.number, state="scheduled", attempts=0,
            not_before=_aware(c.not_before), expires_at=_aware(c.expires_at), priority=0,
            lang=c.lang, outage_id=c.outage_id, account_no=c.account_no,
            lead_days=c.lead_days, created_at=now, created_by=by, updated_at=now)
            .on_conflict_do_nothing(
                index_elements=["outage_id", "account_no", "number", "lead_days"])
            .returning(OutboundJob.id))
        made += res.scalar() is not None
    for job_id, c in changes.move:
        s.execute(update(OutboundJob)
                  .where(OutboundJob.id == job_id,
                         OutboundJob.state.in_(("scheduled", "cancelled")))
                  .values(state="scheduled", not_before=_aware(c.not_before),
                          expires_at=_aware(c.expires_at), lang=c.lang, updated_at=now))
    if changes.cancel:
        s.execute(update(OutboundJob)
                  .where(OutboundJob.id.in_(list(changes.cancel)),
                         OutboundJob.state == "scheduled")
                  .values(state="cancelled", updated_at=now))
    return made


def notice_of_job(s: Session, job_id: int) -> tuple[int, str, str] | None:
    """(outage id, account, language) of a notice job; None for any other job."""
    row = s.execute(select(OutboundJob.outage_id, OutboundJob.account_no, OutboundJob.lang)
                    .where(OutboundJob.id == job_id, OutboundJob.purpose == PURPOSE)
                    ).one_or_none()
    if row is None or row.outage_id is None or row.account_no is None:
        return None
    return int(row.outage_id), str(row.account_no), str(row.lang)


def calls_of_outage(s: Session, outage_id: int) -> list[dict[str, Any]]:
    """An outage's notice calls for the console: each customer's job (lead, state, tries, the
    last outcome, the result: heard to the end, repeats, hung up early) and its last attempt."""
    rows = s.execute(
        select(OutboundJob, Customer.name, Customer.important_kind)
        .outerjoin(Account, Account.account_no == OutboundJob.account_no)
        .outerjoin(Customer, Customer.id == Account.customer_id)
        .where(OutboundJob.purpose == PURPOSE, OutboundJob.outage_id == outage_id)
        .order_by(OutboundJob.lead_days.desc(), OutboundJob.account_no, OutboundJob.number)
        .limit(MAX_CALLS_LISTED)).all()
    ids = [job.id for job, _, _ in rows]
    last: dict[int, OutboundAttempt] = {}
    if ids:
        for att in s.scalars(select(OutboundAttempt).where(OutboundAttempt.job_id.in_(ids))
                           .order_by(OutboundAttempt.job_id, OutboundAttempt.n)):
            last[att.job_id] = att
    out = []
    for job, name, kind in rows:
        a: OutboundAttempt | None = last.get(job.id)
        result = job.result if isinstance(job.result, dict) else {}
        out.append({
            "job_id": job.id, "account_no": job.account_no, "customer_name": name,
            "important_kind": kind, "number": job.number, "lead_days": job.lead_days,
            "lang": job.lang, "state": job.state, "attempts": job.attempts,
            "last_outcome": job.last_outcome, "not_before": job.not_before,
            "expires_at": job.expires_at, "heard": _heard(result),
            "repeats": _int(result.get("Repeats")),
            "called_at": a.started_at if a else None,
            "duration_s": a.duration_s if a else None})
    return out


def _heard(result: dict[str, Any]) -> bool | None:
    """True: heard to the end; False: hung up before the end; None: not known (not answered)."""
    value = result.get("Heard")
    return None if value is None else str(value) == "1"


def _int(value: Any) -> int | None:
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None
