"""Transcription in the database: the job queue (enqueue, the sweep at start, claim, finish,
fail), transcripts and their search, and the keyword alerts. Functions take an open Session and
`now`; the caller owns the unit of work. The rules are speech.jobs'.

Transcript search is a LIKE on the text (and on the text without its spaces, since vosk puts a
space between Chinese or Korean words that a searcher types together): no index serves a
substring search on both SQLite and PostgreSQL, so it scans the transcripts of the recordings
the other filters leave.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, literal, or_, select, update
from sqlalchemy.orm import Session

from cti.db.models import Call, UTCDateTime
from cti.db.models_recordings import Recording
from cti.db.models_transcripts import KeywordAlert, Transcript, TranscriptionJob
from cti.db.upsert import insert_on_conflict
from speech import jobs
from speech.jobs import JobState

log = logging.getLogger(__name__)
MAX_LIMIT = 500
MAX_QUERY = 200


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware datetime")
    return now.astimezone(UTC)


def _rowcount(session: Session, stmt: Any) -> int:
    """Run an INSERT or UPDATE; how many rows it touched, counted by RETURNING (an INSERT ... ON
    CONFLICT on PostgreSQL reports no row count to SQLAlchemy)."""
    return len(session.connection().execute(stmt.returning(literal(1))).all())


# ----------------------------------------------------------------------------------- the queue


def enqueue(session: Session, recording_id: int, now: datetime) -> None:
    """Queue the recording's transcription once; a recording that has a job keeps it."""
    session.execute(insert_on_conflict(session, TranscriptionJob).values(
        recording_id=recording_id, state=JobState.QUEUED.value, attempts=0,
        queued_at=_aware(now)).on_conflict_do_nothing(
            index_elements=[TranscriptionJob.recording_id]))


def sweep_at_start(session: Session, now: datetime, max_attempts: int) -> dict[str, int]:
    """At CTI start: jobs a dead process left running go back to the queue (or fail, with no
    attempts left; so do queued ones past a lowered limit), and every recording without a job
    (indexed while transcription was off) gets one. What it did, counted."""
    now = _aware(now)
    left = session.execute(select(TranscriptionJob.id, TranscriptionJob.attempts)
                           .where(TranscriptionJob.state == JobState.RUNNING.value)).all()
    requeued = failed = 0
    for job_id, attempts in left:
        state = jobs.at_start(JobState.RUNNING.value, attempts, max_attempts)
        session.execute(update(TranscriptionJob).where(TranscriptionJob.id == job_id).values(
            state=state.value, started_at=None,
            finished_at=now if state is JobState.FAILED else None,
            last_error="interrupted: the CTI stopped while it ran"))
        requeued += state is JobState.QUEUED
        failed += state is JobState.FAILED
    # queued with no attempt left (transcribe_attempts lowered since): never claimed, so fail
    failed += _rowcount(session, update(TranscriptionJob).where(
        TranscriptionJob.state == JobState.QUEUED.value,
        TranscriptionJob.attempts >= max_attempts).values(
            state=JobState.FAILED.value, finished_at=now,
            last_error="no attempts left ([speech] transcribe_attempts)"))
    missing = select(Recording.id, literal(JobState.QUEUED.value), literal(0),
                     literal(now, type_=UTCDateTime())) \
        .where(Recording.deleted_at.is_(None),
               ~exists().where(TranscriptionJob.recording_id == Recording.id))
    added = _rowcount(session, (
        insert_on_conflict(session, TranscriptionJob).from_select(
            ["recording_id", "state", "attempts", "queued_at"], missing)
        .on_conflict_do_nothing(index_elements=[TranscriptionJob.recording_id])))
    log.info("transcription sweep: %d requeued, %d failed (no attempts left), %d queued",
             requeued, failed, added)
    return {"requeued": requeued, "failed": failed, "queued": added}


@dataclass(frozen=True)
class Claimed:
    """A job a worker took, with what it needs of its recording and call."""

    job_id: int
    recording_id: int
    attempts: int           # this try counted
    rel_path: str
    call_id: str
    seat: str | None
    agent_id: str | None
    caller_number: str | None
    call_lang: str | None   # calls.language, None when the call has no record
    deleted: bool           # retention deleted the file


def claim_next(session: Session, now: datetime, max_attempts: int) -> Claimed | None:
    """Take the oldest queued job (running, this attempt counted). Two workers never take one
    job: the update is conditional on the job still being queued."""
    now = _aware(now)
    while True:
        row = session.execute(
            select(TranscriptionJob.id, TranscriptionJob.attempts)
            .where(TranscriptionJob.state == JobState.QUEUED.value,
                   TranscriptionJob.attempts < max_attempts)
            .order_by(TranscriptionJob.queued_at, TranscriptionJob.id).limit(1)).first()
        if row is None:
            return None
        taken = _rowcount(session, (
            update(TranscriptionJob)
            .where(TranscriptionJob.id == row.id,
                   TranscriptionJob.state == JobState.QUEUED.value)
            .values(state=JobState.RUNNING.value, attempts=TranscriptionJob.attempts + 1,
                    started_at=now, finished_at=None)))
        if taken != 1:
            continue  # another worker took it first
        rec, call_lang = session.execute(
            select(Recording, Call.language)
            .join(TranscriptionJob, TranscriptionJob.recording_id == Recording.id)
            .outerjoin(Call, Call.call_id == Recording.call_id)
            .where(TranscriptionJob.id == row.id)).one()
        return Claimed(job_id=row.id, recording_id=rec.id, attempts=row.attempts + 1,
                       rel_path=rec.rel_path, call_id=rec.call_id, seat=rec.seat,
                       agent_id=rec.agent_id, caller_number=rec.caller_number,
                       call_lang=call_lang, deleted=rec.deleted_at is not None)


def _running(session: Session, job_id: int) -> TranscriptionJob:
    job = session.get(TranscriptionJob, job_id, with_for_update=True)
    if job is None:
        raise LookupError(f"no transcription job {job_id}")
    return job


@dataclass(frozen=True)
class NewAlert:
    """What a keyword alert says (the notifier makes the MQTT message of it)."""

    alert_id: int
    recording_id: int
    call_id: str
    seat: str | None
    agent_id: str | None
    caller_number: str | None
    keywords: list[dict[str, Any]]
    excerpt: str
    at: datetime


def finish(session: Session, job: Claimed, *, lang: str, model: str, text: str,
           words: Sequence[Mapping[str, Any]], hits: Sequence[Mapping[str, Any]], excerpt: str,
           now: datetime, on_alert: Callable[[Session, NewAlert], None] | None = None
           ) -> NewAlert | None:
    """Store the transcript, mark the job done and, with keyword hits, raise the alert (one per
    recording) and hand it to `on_alert` in this unit of work (the notifier's outbox sends it
    after the commit)."""
    now = _aware(now)
    row = _running(session, job.job_id)
    row.state = jobs.after_success(row.state).value
    row.finished_at, row.lang, row.last_error = now, lang, None
    values = {"lang": lang, "text": text, "words": list(words), "model": model[:255],
              "created_at": now}
    session.execute(insert_on_conflict(session, Transcript).values(
        recording_id=job.recording_id, **values).on_conflict_do_update(
            index_elements=[Transcript.recording_id], set_=values))
    if not hits:
        return None
    added = _rowcount(session, (insert_on_conflict(session, KeywordAlert).values(
        recording_id=job.recording_id, call_id=job.call_id, seat=job.seat,
        agent_id=job.agent_id, caller_number=job.caller_number, keywords=list(hits),
        excerpt=excerpt, raised_at=now, status="open").on_conflict_do_nothing(
            index_elements=[KeywordAlert.recording_id])))
    if added != 1:
        return None  # raised by an earlier run of this job: alerted once
    alert_id = session.scalars(select(KeywordAlert.id).where(
        KeywordAlert.recording_id == job.recording_id)).one()
    alert = NewAlert(alert_id=alert_id, recording_id=job.recording_id, call_id=job.call_id,
                     seat=job.seat, agent_id=job.agent_id, caller_number=job.caller_number,
                     keywords=[dict(h) for h in hits], excerpt=excerpt, at=now)
    log.warning("keyword alert %d call_id=%s agent_id=%s recording=%d keywords=%s", alert_id,
                job.call_id, job.agent_id, job.recording_id,
                ",".join(str(h.get("word")) for h in hits))
    if on_alert is not None:
        on_alert(session, alert)
    return alert


def fail(session: Session, job: Claimed, error: BaseException | str, now: datetime,
         max_attempts: int, *, final: bool = False) -> JobState:
    """The try failed: queued again while attempts are left (unless `final`: nothing to retry,
    such as a deleted file), else failed. The new state."""
    row = _running(session, job.job_id)
    state = JobState.FAILED if final else jobs.after_failure(row.state, row.attempts,
                                                             max_attempts)
    row.state, row.last_error = state.value, jobs.clip_error(error)
    row.finished_at = _aware(now) if state is JobState.FAILED else None
    row.started_at = None if state is JobState.QUEUED else row.started_at
    log.warning("transcription of recording %d failed (try %d, now %s) call_id=%s: %s",
                job.recording_id, row.attempts, state.value, job.call_id, row.last_error)
    return state


def counts(session: Session) -> dict[str, int]:
    """Jobs per state, and keyword alerts (all, open) for the status file."""
    out = {s: 0 for s in jobs.STATES}
    for state, n in session.execute(select(TranscriptionJob.state, func.count())
                                    .group_by(TranscriptionJob.state)):
        out[state] = int(n)
    for status, n in session.execute(select(KeywordAlert.status, func.count())
                                     .group_by(KeywordAlert.status)):
        out["alerts"] = out.get("alerts", 0) + int(n)
        if status == "open":
            out["alerts_open"] = int(n)
    out.setdefault("alerts", 0)
    out.setdefault("alerts_open", 0)
    return out


# ------------------------------------------------------------------------------- transcripts


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def text_matches(q: str) -> ColumnElement[bool]:
    """Recordings whose transcript holds `q` (case-insensitively for Latin letters; spaces in
    either are ignored, so 我要投诉 finds vosk's "我 要 投诉")."""
    # PostgreSQL text cannot hold NUL: it is no character anyone searches for
    q = " ".join(q.replace("\x00", " ").split())[:MAX_QUERY]
    squeezed = q.replace(" ", "")
    return exists().where(and_(
        Transcript.recording_id == Recording.id,
        or_(func.lower(Transcript.text).like(_like(q.lower()), escape="\\"),
            func.lower(func.replace(Transcript.text, " ", "")).like(
                _like(squeezed.lower()), escape="\\"))))


def status_of(session: Session, recording_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """For each recording: transcript_status (none, queued, running, done, failed) and the
    keywords its transcript hit (each once)."""
    from speech.keywords import distinct_words

    ids = sorted(set(recording_ids))
    out: dict[int, dict[str, Any]] = {
        i: {"transcript_status": jobs.NO_JOB, "keywords": []} for i in ids}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        for rid, state in session.execute(
                select(TranscriptionJob.recording_id, TranscriptionJob.state)
                .where(TranscriptionJob.recording_id.in_(chunk))):
            out[rid]["transcript_status"] = state
        for rid, kws in session.execute(
                select(KeywordAlert.recording_id, KeywordAlert.keywords)
                .where(KeywordAlert.recording_id.in_(chunk))):
            out[rid]["keywords"] = distinct_words(kws or [])
    return out


def transcript_doc(session: Session, recording_id: int) -> dict[str, Any]:
    """GET /api/recordings/{id}/transcript: {recording_id, status, lang, text, words,
    keywords}; status "none" and no words when the recording has no job."""
    job = session.scalars(select(TranscriptionJob)
                          .where(TranscriptionJob.recording_id == recording_id)).one_or_none()
    tr = session.scalars(select(Transcript)
                         .where(Transcript.recording_id == recording_id)).one_or_none()
    alert = session.scalars(select(KeywordAlert.keywords)
                            .where(KeywordAlert.recording_id == recording_id)).one_or_none()
    return {
        "recording_id": recording_id,
        "status": job.state if job is not None else jobs.NO_JOB,
        "lang": tr.lang if tr is not None else (job.lang if job is not None else None),
        "text": tr.text if tr is not None else "",
        "words": list(tr.words) if tr is not None else [],
        "keywords": list(alert or []),
        "error": job.last_error if job is not None and job.state == "failed" else None,
    }


def forget_transcript(session: Session, recording_id: int) -> None:
    """Retention deleted the recording: its transcript goes too (the caller's words are as
    personal as their voice); the job stays, done, so the sweep does not queue it again."""
    session.execute(delete(Transcript).where(Transcript.recording_id == recording_id))


# ---------------------------------------------------------------------------- keyword alerts


class AlertNotFound(LookupError):
    """No keyword alert with that id."""


class AlertHandled(ValueError):
    """The alert was already turned into an order or dismissed."""


def alert_doc(a: KeywordAlert) -> dict[str, Any]:
    return {
        "id": a.id, "alert_id": a.id, "recording_id": a.recording_id, "call_id": a.call_id,
        "seat": a.seat, "agent_id": a.agent_id, "caller_number": a.caller_number,
        "keywords": list(a.keywords or []), "excerpt": a.excerpt,
        "raised_at": a.raised_at.isoformat(), "status": a.status,
        "work_order_number": a.work_order_number, "handled_by": a.handled_by,
        "handled_at": a.handled_at.isoformat() if a.handled_at else None,
    }


def list_alerts(session: Session, status: str | None, limit: int = 100,
                offset: int = 0) -> list[dict[str, Any]]:
    """Keyword alerts, newest first; status None: all."""
    if status is not None and status not in jobs.ALERT_STATUSES:
        raise ValueError(f"status must be one of {', '.join(jobs.ALERT_STATUSES)}, "
                         f"not {status!r}")
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise ValueError(f"limit must be 1-{MAX_LIMIT} and offset >= 0")
    stmt = select(KeywordAlert)
    if status is not None:
        stmt = stmt.where(KeywordAlert.status == status)
    rows = session.scalars(stmt.order_by(KeywordAlert.raised_at.desc(), KeywordAlert.id.desc())
                           .limit(limit).offset(offset))
    return [alert_doc(a) for a in rows]


def get_alert(session: Session, alert_id: int, *, lock: bool = False) -> KeywordAlert:
    a = session.get(KeywordAlert, alert_id, with_for_update=lock)
    if a is None:
        raise AlertNotFound(f"no keyword alert {alert_id}")
    return a


def call_account(session: Session, call_id: str) -> str | None:
    """The account number the caller keyed on this call, if any."""
    return session.scalars(select(Call.account_no).where(Call.call_id == call_id)).first()


def handle(session: Session, alert: KeywordAlert, status: str, actor: str, now: datetime,
           work_order_number: str | None = None) -> None:
    """Mark an open alert order_created (with its order) or dismissed."""
    if alert.status != "open":
        raise AlertHandled(f"keyword alert {alert.id} is {alert.status} already"
                           + (f" (order {alert.work_order_number})"
                              if alert.work_order_number else ""))
    alert.status, alert.handled_by, alert.handled_at = status, actor[:64], _aware(now)
    alert.work_order_number = work_order_number
    session.flush()
