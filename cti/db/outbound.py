"""The outbound engine in the database: jobs (schedule, the due ones, a job's state as
outbound.jobs decided it), attempts (begun before the Originate, finished exactly once) and the
do-not-call list. Functions take an open Session and `now`; the caller owns the unit of work.

Exactly-once dialling rests on two statements here:
- begin_attempt moves a job from `scheduled` to `dialing` with a conditional UPDATE and writes
  the attempt in the same unit of work: of two CTIs (or two ticks) that pick one job, one wins,
  and the attempt exists before any Originate is sent;
- finish_attempt writes an attempt's end only while it has none: a repeated or late event
  changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from cti.db import web_audit
from cti.db.models_outbound import DoNotCall, OutboundAttempt, OutboundJob
from cti.db.upsert import insert_on_conflict
from cti.db.web_audit import AuditEntry
from outbound.dnc import national
from outbound.jobs import OPEN, Job, State
from outbound.outcome import Outcome

MAX_LIMIT = 500


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware datetime")
    return now.astimezone(UTC)


def to_job(row: OutboundJob) -> Job:
    return Job(id=row.id, purpose=row.purpose, number=row.number, state=State(row.state),
               attempts=row.attempts, not_before=row.not_before, expires_at=row.expires_at,
               last_outcome=Outcome(row.last_outcome) if row.last_outcome else None,
               priority=row.priority, lang=row.lang, skill=row.skill)


@dataclass(frozen=True)
class Scheduled:
    job_id: int
    created: bool   # False: an open job for the same thing was there already


def schedule(session: Session, *, purpose: str, number: str, lang: str, now: datetime,
             created_by: str, not_before: datetime | None = None,
             expires_at: datetime | None = None, priority: int = 0,
             work_order_number: str | None = None, outage_id: int | None = None,
             account_no: str | None = None, skill: str | None = None) -> Scheduled:
    """A job to call `number` for `purpose`. Scheduling the same thing twice (the same purpose
    for the same work order, or for the same outage and number) while a job for it is still
    open returns that job: a repeated event never makes a second call."""
    now = _aware(now)
    nat = national(number)
    same = select(OutboundJob.id).where(OutboundJob.purpose == purpose,
                                        OutboundJob.state.in_([s.value for s in OPEN]))
    if work_order_number is not None:
        same = same.where(OutboundJob.work_order_number == work_order_number)
    else:
        same = same.where(OutboundJob.number == nat, OutboundJob.outage_id == outage_id)
    found = session.scalars(same.limit(1)).first()
    if found is not None:
        return Scheduled(found, False)
    row = OutboundJob(purpose=purpose, number=nat, state=State.SCHEDULED.value, attempts=0,
                      not_before=_aware(not_before) if not_before else None,
                      expires_at=_aware(expires_at) if expires_at else None,
                      priority=priority, lang=lang, work_order_number=work_order_number,
                      outage_id=outage_id, account_no=account_no, skill=skill, created_at=now,
                      created_by=created_by, updated_at=now)
    session.add(row)
    session.flush()
    return Scheduled(row.id, True)


def bring_forward(session: Session, job_id: int, now: datetime, *, priority: int) -> bool:
    """A scheduled job is due now, ahead of others; False when it is not scheduled (it is
    being dialled, or done)."""
    res = session.execute(update(OutboundJob)
                          .where(OutboundJob.id == job_id,
                                 OutboundJob.state == State.SCHEDULED.value)
                          .values(not_before=_aware(now), priority=priority,
                                  updated_at=_aware(now)))
    return bool(res.rowcount)  # type: ignore[attr-defined]


def due(session: Session, now: datetime, limit: int = 100) -> list[Job]:
    """Scheduled jobs whose time has come (the window and the order are outbound.jobs.pick's)."""
    now = _aware(now)
    rows = session.scalars(
        select(OutboundJob)
        .where(OutboundJob.state == State.SCHEDULED.value,
               (OutboundJob.not_before.is_(None)) | (OutboundJob.not_before <= now))
        .order_by(OutboundJob.priority.desc(), OutboundJob.not_before, OutboundJob.id)
        .limit(min(limit, MAX_LIMIT))).all()
    return [to_job(r) for r in rows]


def get(session: Session, job_id: int) -> Job | None:
    row = session.get(OutboundJob, job_id)
    return to_job(row) if row is not None else None


def store(session: Session, job: Job, now: datetime, *,
          result: dict[str, Any] | None = None) -> None:
    """Write the state outbound.jobs decided (screen, finish, recover, cancel)."""
    values: dict[str, Any] = {
        "state": job.state.value, "attempts": job.attempts, "not_before": job.not_before,
        "last_outcome": job.last_outcome.value if job.last_outcome else None,
        "updated_at": _aware(now)}
    if result is not None:
        values["result"] = result
    session.execute(update(OutboundJob).where(OutboundJob.id == job.id).values(**values))


def begin_attempt(session: Session, job_id: int, now: datetime,
                  channel_of: Callable[[int], str] | None = None) -> int | None:
    """The job goes `dialing` and its attempt is written, with the channel id it will be
    dialled on (`channel_of(attempt id)`, kept as the call's linkedid); the attempt's id, or
    None when the job was not scheduled any more (another tick or CTI took it, or it was
    cancelled)."""
    now = _aware(now)
    moved = session.execute(
        update(OutboundJob)
        .where(OutboundJob.id == job_id, OutboundJob.state == State.SCHEDULED.value)
        .values(state=State.DIALING.value, attempts=OutboundJob.attempts + 1, updated_at=now)
        .execution_options(synchronize_session=False))
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return None
    n = session.scalar(select(OutboundJob.attempts).where(OutboundJob.id == job_id))
    attempt = OutboundAttempt(job_id=job_id, n=int(n or 1), started_at=now)
    session.add(attempt)
    session.flush()
    if channel_of is not None:
        attempt.linkedid = channel_of(attempt.id)
        session.flush()
    return attempt.id


def answered(session: Session, attempt_id: int, at: datetime) -> None:
    session.execute(update(OutboundAttempt)
                    .where(OutboundAttempt.id == attempt_id,
                           OutboundAttempt.answered_at.is_(None))
                    .values(answered_at=_aware(at)))


def finish_attempt(session: Session, attempt_id: int, *, outcome: Outcome, ended_at: datetime,
                   reason: int | None = None, cause: int | None = None,
                   sip_cause: int | None = None) -> bool:
    """The attempt's end, once: False when it had one already (a repeated event)."""
    ended_at = _aware(ended_at)
    row = session.get(OutboundAttempt, attempt_id)
    if row is None or row.ended_at is not None:
        return False
    start = row.answered_at or row.started_at
    row.ended_at, row.outcome = ended_at, outcome.value
    row.reason, row.cause, row.sip_cause = reason, cause, sip_cause
    row.duration_s = round(max((ended_at - _aware(start)).total_seconds(), 0.0), 3)
    session.flush()
    return True


@dataclass(frozen=True)
class OpenAttempt:
    attempt_id: int
    job: Job
    started_at: datetime | None = None
    channel_id: str | None = None  # the ChannelId it was dialled with (outbound_attempts.linkedid)


def open_attempts(session: Session) -> list[OpenAttempt]:
    """Attempts with no end yet, with their job: what a restart must settle before dialling."""
    rows = session.execute(
        select(OutboundAttempt.id, OutboundJob, OutboundAttempt.started_at,
               OutboundAttempt.linkedid)
        .join(OutboundJob, OutboundJob.id == OutboundAttempt.job_id)
        .where(OutboundAttempt.ended_at.is_(None))
        .order_by(OutboundAttempt.id)).all()
    return [OpenAttempt(aid, to_job(job), _aware(started) if started else None, linkedid)
            for aid, job, started, linkedid in rows]


def jobs_of_order(session: Session, work_order_number: str) -> list[int]:
    """The jobs made for a work order (its return visits), oldest first."""
    return list(session.scalars(select(OutboundJob.id)
                                .where(OutboundJob.work_order_number == work_order_number)
                                .order_by(OutboundJob.id)))


def latest_jobs_of_orders(session: Session, numbers: list[str]) -> dict[str, dict[str, Any]]:
    """Each order's latest job (state, priority, attempts, last outcome, when next due)."""
    if not numbers:
        return {}
    rows = session.scalars(select(OutboundJob).where(OutboundJob.work_order_number.in_(numbers))
                           .order_by(OutboundJob.id)).all()
    return {r.work_order_number: {"job_id": r.id, "state": r.state, "priority": r.priority,
                                  "attempts": r.attempts, "last_outcome": r.last_outcome,
                                  "not_before": r.not_before}
            for r in rows if r.work_order_number is not None}


def work_order_of(session: Session, job_id: int) -> str | None:
    return session.scalar(select(OutboundJob.work_order_number).where(OutboundJob.id == job_id))


def attempts_of(session: Session, job_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(OutboundAttempt).where(OutboundAttempt.job_id == job_id)
                           .order_by(OutboundAttempt.n)).all()
    return [{"id": r.id, "n": r.n, "started_at": r.started_at, "answered_at": r.answered_at,
             "ended_at": r.ended_at, "outcome": r.outcome, "reason": r.reason,
             "cause": r.cause, "sip_cause": r.sip_cause, "duration_s": r.duration_s,
             "linkedid": r.linkedid}
            for r in rows]


# ------------------------------------------------------------------------------ do-not-call
# The engine reads the list at every tick (callcenter.outbound_service): a number added here,
# from the CLI or the console, is never dialled from the next tick on.

class AlreadyListed(ValueError):
    """The number is on the do-not-call list already (its first entry is kept)."""


class NotListed(LookupError):
    """The number is not on the do-not-call list."""


def dnc_add(session: Session, number: str, *, reason: str, by: str, now: datetime) -> str:
    """Add a number (any spelling; stored in national form); adding it again keeps the first
    entry and raises AlreadyListed. The national form, which callers show back."""
    nat = national(number)
    added = session.scalar(insert_on_conflict(session, DoNotCall).values(
        number=nat, reason=reason[:200], added_by=by[:64], added_at=_aware(now))
        .on_conflict_do_nothing(index_elements=["number"]).returning(DoNotCall.number))
    if added is None:
        raise AlreadyListed(f"{nat} is on the do-not-call list already")
    return nat


def dnc_remove(session: Session, number: str) -> str:
    """Take a number off the list (its national form); NotListed when it is not on it."""
    nat = national(number)
    res = session.execute(delete(DoNotCall).where(DoNotCall.number == nat))
    if not res.rowcount:  # type: ignore[attr-defined]
        raise NotListed(f"{nat} is not on the do-not-call list")
    return nat


def dnc_numbers(session: Session) -> list[str]:
    return list(session.scalars(select(DoNotCall.number).order_by(DoNotCall.number)))


def dnc_entries(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    """The list with each number's reason, who added it and when, newest first."""
    with sessions() as s:
        rows = s.scalars(select(DoNotCall).order_by(DoNotCall.added_at.desc(),
                                                    DoNotCall.number)).all()
        return [{"number": r.number, "reason": r.reason, "added_by": r.added_by,
                 "added_at": r.added_at} for r in rows]


def dnc_add_audited(sessions: sessionmaker[Session], number: str, *, reason: str,
                    audit: Callable[[str], AuditEntry], now: datetime) -> str:
    """dnc_add and its audit line (`audit(national form)`, actor and action in it) in one unit
    of work: both or neither. The CLI and the console both add through here."""
    with sessions.begin() as s:
        entry = audit(national(number))
        nat = dnc_add(s, number, reason=reason, by=entry.actor, now=now)
        web_audit.add(s, entry)
    return nat


def dnc_remove_audited(sessions: sessionmaker[Session], number: str, *,
                       audit: Callable[[str], AuditEntry]) -> str:
    """dnc_remove and its audit line in one unit of work."""
    with sessions.begin() as s:
        nat = dnc_remove(s, number)
        web_audit.add(s, audit(nat))
    return nat


def cancel_open(session: Session, job_ids: Iterable[int], now: datetime) -> int:
    """Cancel jobs still scheduled (a job already dialing is left to end)."""
    res = session.execute(update(OutboundJob)
                          .where(OutboundJob.id.in_(list(job_ids)),
                                 OutboundJob.state == State.SCHEDULED.value)
                          .values(state=State.CANCELLED.value, updated_at=_aware(now)))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]
