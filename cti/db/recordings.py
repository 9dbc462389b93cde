"""The recording index: write (idempotent per file), search, retention purge, access audit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import Session, sessionmaker

from cti.db import transcripts
from cti.db.models import AgentSession, Call, WorkOrder
from cti.db.models_outbound import OutboundAttempt, OutboundJob
from cti.db.models_recordings import AuditLog, Recording, RecordingDeletion
from cti.db.upsert import insert_on_conflict
from recorder.naming import MESSAGE_SEAT, parse, resolve
from recorder.ports import RecordingFacts
from recorder.reconcile import IndexRow
from recorder.retention import RetentionPolicy

log = logging.getLogger(__name__)
MAX_LIMIT = 500


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware datetime")
    return now.astimezone(UTC)


def agent_at_seat(session: Session, seat: str, at: datetime) -> str | None:
    """Who was logged in at this seat at that moment (the agent of a leg)."""
    return session.scalars(
        select(AgentSession.agent_id).where(
            AgentSession.seat == seat, AgentSession.login_at <= at,
            or_(AgentSession.logout_at.is_(None), AgentSession.logout_at >= at))
        .order_by(AgentSession.login_at.desc()).limit(1)).first()


def index_recording(session: Session, facts: RecordingFacts, now: datetime) -> Recording:
    """Insert the file's row once; a repeat (event and reconciler both) keeps the first."""
    name = parse(facts.rel_path)
    now = _aware(now)
    started = _aware(facts.started_at)
    call = session.scalars(select(Call).where(Call.call_id == name.call_id)).one_or_none()
    agent = None
    if name.kind == "agent":
        agent = agent_at_seat(session, name.seat, started)
        if agent is None and call is not None and call.seat == name.seat:
            agent = call.agent_id
    caller = facts.caller_number or (call.caller_number if call is not None else None)
    # the IVR part was in no queue
    queue = facts.queue or (call.skill if call is not None and name.kind == "agent" else None)
    stmt = insert_on_conflict(session, Recording).values(
        call_id=name.call_id, leg_id=name.leg_id, rel_path=name.rel_path, kind=name.kind,
        # an IVR part has no seat; a return visit's message is marked by its own (msg)
        seat=name.seat if name.message or name.kind == "agent" else None, agent_id=agent,
        queue=queue,
        caller_number=caller, started_at=started, duration_s=facts.duration_s,
        size_bytes=facts.size, sha256=facts.sha256, indexed_at=now,
        indexed_by=facts.indexed_by,
    ).on_conflict_do_nothing(index_elements=[Recording.rel_path])
    session.execute(stmt)
    rec = session.scalars(select(Recording).where(Recording.rel_path == name.rel_path)
                          .execution_options(populate_existing=True)).one()
    log.info("recording indexed call_id=%s agent_id=%s file=%s by=%s", rec.call_id,
             rec.agent_id, rec.rel_path, rec.indexed_by)
    return rec


def index_rows(session: Session) -> dict[str, IndexRow]:
    """The index as the reconciler sees it (rows whose file retention has not deleted)."""
    rows = session.execute(select(Recording.id, Recording.rel_path, Recording.sha256,
                                  Recording.size_bytes)
                           .where(Recording.deleted_at.is_(None))).all()
    return {r.rel_path: IndexRow(r.id, r.rel_path, r.sha256, r.size_bytes) for r in rows}


def deleted_paths(session: Session) -> set[str]:
    """Files retention has deleted (a leftover on disk is pending removal, not stray)."""
    return set(session.scalars(select(Recording.rel_path)
                               .where(Recording.deleted_at.is_not(None))))


# -------------------------------------------------------------------------------------- search


@dataclass(frozen=True)
class RecordingQuery:
    start: datetime | None = None      # started_at >= start
    end: datetime | None = None        # started_at < end
    agent_id: str | None = None
    caller: str | None = None
    account: str | None = None
    work_order: str | None = None
    queue: str | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    text: str | None = None            # in the transcript (cti.db.transcripts.text_matches)
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1-{MAX_LIMIT}, got {self.limit}")
        if self.offset < 0:
            raise ValueError(f"offset must be >= 0, got {self.offset}")
        for name in ("start", "end"):
            v = getattr(self, name)
            if v is not None and (v.tzinfo is None or v.utcoffset() is None):
                raise ValueError(f"{name} must carry a time zone, got {v.isoformat()}")
        if self.start and self.end and self.start >= self.end:
            raise ValueError("the date range is empty: 'from' must be before 'to'")
        for name in ("min_duration", "max_duration"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        if (self.min_duration is not None and self.max_duration is not None
                and self.min_duration > self.max_duration):
            raise ValueError("min_duration is above max_duration")


def _orders_of(session: Session, call_ids: list[str]) -> dict[str, list[dict[str, str]]]:
    """Each call's work orders: those taken on it, and the one a return visit called about."""
    out: dict[str, list[dict[str, str]]] = {}
    if not call_ids:
        return out
    for wo in session.scalars(select(WorkOrder).where(WorkOrder.call_id.in_(call_ids))
                              .order_by(WorkOrder.id)):
        assert wo.call_id is not None
        out.setdefault(wo.call_id, []).append({"number": wo.number, "type": wo.type,
                                                "status": wo.status})
    for linkedid, wo in session.execute(
            select(OutboundAttempt.linkedid, WorkOrder)
            .join(OutboundJob, OutboundJob.id == OutboundAttempt.job_id)
            .join(WorkOrder, WorkOrder.number == OutboundJob.work_order_number)
            .where(OutboundAttempt.linkedid.in_(call_ids)).order_by(WorkOrder.id)).all():
        out.setdefault(str(linkedid), []).append({"number": wo.number, "type": wo.type,
                                                  "status": wo.status})
    return out


def _visit_calls_of(order: str) -> Any:
    """The call ids of an order's return-visit calls (one per outbound attempt)."""
    return (select(OutboundAttempt.linkedid)
            .join(OutboundJob, OutboundJob.id == OutboundAttempt.job_id)
            .where(OutboundJob.work_order_number == order,
                   OutboundAttempt.linkedid.is_not(None)))


def return_visit_messages(session: Session, orders: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The voice messages customers left on these orders' return-visit calls (回访留言), oldest
    first: recording id, call, when, how long. Found through the outbound attempts, so a
    message the reconciler indexed after a CTI outage is linked like one indexed live."""
    if not orders:
        return {}
    rows = session.execute(
        select(OutboundJob.work_order_number, Recording)
        .join(OutboundAttempt, OutboundAttempt.job_id == OutboundJob.id)
        .join(Recording, Recording.call_id == OutboundAttempt.linkedid)
        .where(OutboundJob.work_order_number.in_(orders), Recording.seat == MESSAGE_SEAT,
               Recording.deleted_at.is_(None))
        .order_by(Recording.started_at, Recording.id)).all()
    out: dict[str, list[dict[str, Any]]] = {}
    for number, rec in rows:
        out.setdefault(str(number), []).append({
            "recording_id": rec.id, "call_id": rec.call_id,
            "started_at": rec.started_at.isoformat(), "duration_s": rec.duration_s})
    return out


def recent_return_visit_messages(session: Session, limit: int = 30) -> list[dict[str, Any]]:
    """The latest voice messages left on return visits, newest first, each with its order
    (number, type, status, satisfaction) and recording, for the supervisor console."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1-{MAX_LIMIT}, got {limit}")
    rows = session.execute(
        select(WorkOrder, Recording)
        .join(OutboundJob, OutboundJob.work_order_number == WorkOrder.number)
        .join(OutboundAttempt, OutboundAttempt.job_id == OutboundJob.id)
        .join(Recording, Recording.call_id == OutboundAttempt.linkedid)
        .where(Recording.seat == MESSAGE_SEAT, Recording.deleted_at.is_(None))
        .order_by(Recording.started_at.desc(), Recording.id.desc()).limit(limit)).all()
    return [{"number": wo.number, "type": wo.type, "status": wo.status,
             "satisfaction": wo.satisfaction, "recording_id": rec.id, "call_id": rec.call_id,
             "caller_number": rec.caller_number or wo.caller_number,
             "started_at": rec.started_at.isoformat(), "duration_s": rec.duration_s}
            for wo, rec in rows]


def order_messages(sessions: sessionmaker[Session], number: str) -> list[dict[str, Any]]:
    """return_visit_messages of one order, in a unit of work of its own (the web API's)."""
    with sessions() as s:
        return return_visit_messages(s, [number]).get(number, [])


def latest_messages(sessions: sessionmaker[Session], limit: int = 30) -> list[dict[str, Any]]:
    """recent_return_visit_messages in a unit of work of its own (the web API's)."""
    with sessions() as s:
        return recent_return_visit_messages(s, limit)


def recording_doc(rec: Recording, call: Call | None, orders: list[dict[str, str]],
                  transcript: dict[str, Any] | None = None) -> dict[str, Any]:
    """transcript: cti.db.transcripts.status_of's entry (transcript_status, keywords)."""
    return {
        "id": rec.id, "call_id": rec.call_id, "leg_id": rec.leg_id, "kind": rec.kind,
        "seat": rec.seat, "agent_id": rec.agent_id, "queue": rec.queue,
        "caller_number": rec.caller_number,
        "account_no": call.account_no if call is not None else None,
        "started_at": rec.started_at.isoformat(), "duration_s": rec.duration_s,
        "size_bytes": rec.size_bytes, "sha256": rec.sha256, "file": rec.rel_path,
        "indexed_by": rec.indexed_by, "indexed_at": rec.indexed_at.isoformat(),
        "deleted_at": rec.deleted_at.isoformat() if rec.deleted_at else None,
        "work_orders": orders,
        # a voice message left on a return visit (回访留言), not a leg of a conversation
        "message": rec.seat == MESSAGE_SEAT,
        "transcript_status": (transcript or {}).get("transcript_status", "none"),
        "keywords": (transcript or {}).get("keywords", []),
    }


def search(session: Session, q: RecordingQuery) -> list[dict[str, Any]]:
    """Recordings matching every given filter, newest first, with their call and orders."""
    stmt = select(Recording, Call).outerjoin(Call, Call.call_id == Recording.call_id)
    conds: list[ColumnElement[bool]] = [Recording.deleted_at.is_(None)]
    if q.start is not None:
        conds.append(Recording.started_at >= q.start)
    if q.end is not None:
        conds.append(Recording.started_at < q.end)
    if q.agent_id:
        conds.append(Recording.agent_id == q.agent_id)
    if q.caller:
        conds.append(or_(Recording.caller_number == q.caller, Call.caller_number == q.caller))
    if q.account:
        conds.append(Call.account_no == q.account)
    if q.queue:
        conds.append(Recording.queue == q.queue)
    if q.min_duration is not None:
        conds.append(Recording.duration_s >= q.min_duration)
    if q.max_duration is not None:
        conds.append(Recording.duration_s <= q.max_duration)
    if q.work_order:
        # the calls the order was taken on, and its return-visit calls
        conds.append(or_(exists().where(and_(WorkOrder.call_id == Recording.call_id,
                                             WorkOrder.number == q.work_order)),
                         Recording.call_id.in_(_visit_calls_of(q.work_order))))
    if q.text and q.text.strip():
        conds.append(transcripts.text_matches(q.text))
    rows = session.execute(stmt.where(*conds)
                           .order_by(Recording.started_at.desc(), Recording.id.desc())
                           .limit(q.limit).offset(q.offset)).all()
    orders = _orders_of(session, sorted({r.call_id for r, _c in rows}))
    heard = transcripts.status_of(session, [r.id for r, _c in rows])
    return [recording_doc(r, c, orders.get(r.call_id, []), heard.get(r.id)) for r, c in rows]


def get_recording(session: Session, recording_id: int) -> Recording | None:
    return session.get(Recording, recording_id)


# ------------------------------------------------------------------------------------ retention


PURGE_BATCH = 500  # recordings read at a time by the purge


def purge(session: Session, policy: RetentionPolicy, now: datetime, actor: str, *,
          dry_run: bool = False, batch: int = PURGE_BATCH) -> list[dict[str, Any]]:
    """Mark the recordings whose retention has run out as deleted and log each deletion.

    Only recordings older than the shortest retention can have run out, and those are read
    `batch` at a time (by id), each batch flushed before the next is read: the daily purge of
    a center with millions of recordings never holds them all. (It used to read every live
    recording at once; the fifteenth soak, RELIABILITY.md, saw that as a 9 MB step in the CTI
    with 10,000 recordings.) The files go after the commit (remove_deleted_files): a deletion
    is never done without its log line; a file left behind by a failed removal is removed by a
    later run.
    """
    now = _aware(now)
    old_enough = now - timedelta(days=policy.shortest_days())
    done: list[dict[str, Any]] = []
    after = 0
    while True:
        live = session.scalars(select(Recording).where(
            Recording.deleted_at.is_(None), Recording.started_at <= old_enough,
            Recording.id > after).order_by(Recording.id).limit(batch)).all()
        if not live:
            return done
        after = live[-1].id
        cats: dict[str, set[str]] = {}
        for call_id, kind in session.execute(
                select(WorkOrder.call_id, WorkOrder.type)
                .where(WorkOrder.call_id.in_(sorted({r.call_id for r in live})))):
            if call_id is not None:
                cats.setdefault(call_id, set()).add(kind)
        for rec in live:
            categories = cats.get(rec.call_id, set())
            if not policy.expired(rec.started_at, categories, now):
                continue
            days, why = policy.keep_days(categories)
            done.append({"recording_id": rec.id, "call_id": rec.call_id, "file": rec.rel_path,
                         "category": why, "retention_days": days,
                         "started_at": rec.started_at.isoformat()})
            if dry_run:
                continue
            rec.deleted_at = now
            # what was said goes with the audio (the keyword alert, a supervisor's record,
            # stays)
            transcripts.forget_transcript(session, rec.id)
            session.add(RecordingDeletion(
                recording_id=rec.id, call_id=rec.call_id, rel_path=rec.rel_path,
                sha256=rec.sha256, category=why, retention_days=days,
                started_at=rec.started_at, deleted_at=now, actor=actor))
            log.info("recording deleted by retention call_id=%s file=%s category=%s days=%d",
                     rec.call_id, rec.rel_path, why, days)
        session.flush()  # the batch's changes go out; its clean rows can be let go
        if len(live) < batch:
            return done


def remove_deleted_files(sessions: sessionmaker[Session], storage_dir: Path,
                         unlink: Callable[[Path], None] = lambda p: p.unlink(missing_ok=True),
                         since: datetime | None = None) -> list[str]:
    """Remove the files of recordings marked deleted (after purge's commit), those deleted
    since `since` (all when None, as `hotline recordings purge` does; the daily purge passes
    recorder.retention.FILE_RETRY_DAYS back); the ones that could not be removed,
    to try again next time."""
    cond: ColumnElement[bool] = Recording.deleted_at.is_not(None)
    if since is not None:
        cond = Recording.deleted_at >= _aware(since)
    failed = []
    with sessions() as s:
        for rel in s.scalars(select(Recording.rel_path).where(cond)
                             .execution_options(yield_per=1000)):
            path = resolve(storage_dir, rel)
            if not path.exists():
                continue
            try:
                unlink(path)
            except OSError as exc:
                log.error("retention could not remove %s: %s", path, exc)
                failed.append(rel)
    return failed


# ---------------------------------------------------------------------------------------- audit


def audit(session: Session, *, now: datetime, actor: str, role: str | None, action: str,
          target: str | None, allowed: bool, client_ip: str | None = None,
          detail: Mapping[str, Any] | None = None) -> None:
    """One line of the audit trail; written in the caller's transaction."""
    session.add(AuditLog(at=_aware(now), actor=actor, role=role, action=action, target=target,
                         allowed=allowed, client_ip=client_ip, detail=dict(detail or {})))
    session.flush()


def search_one(session: Session, recording_id: int) -> dict[str, Any] | None:
    """One recording as search() shows it (deleted ones too)."""
    row = session.execute(select(Recording, Call)
                          .outerjoin(Call, Call.call_id == Recording.call_id)
                          .where(Recording.id == recording_id)).one_or_none()
    if row is None:
        return None
    rec, call = row
    return recording_doc(rec, call, _orders_of(session, [rec.call_id]).get(rec.call_id, []),
                         transcripts.status_of(session, [rec.id]).get(rec.id))
