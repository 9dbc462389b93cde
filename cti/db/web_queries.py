"""What the desktop's routes read and write besides logins: call records, today's queue
figures, the post-call surveys' report, agents, the screen-pop, recordings (with their audit
line in the same unit of work) and supervision refusals when no CTI runs.

Each function is one unit of work of its own on the `sessions` factory it is given. Rows go
back as plain values (frozen dataclasses, dicts), never as ORM objects.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.db import agents as db_agents
from cti.db import supervision as db_supervision
from cti.db import surveys, transcripts

# the wrap-up codes and the note's bound, for the desktop's API (which imports no model)
from cti.db.models import AGENT_NOTE_MAX as AGENT_NOTE_MAX
from cti.db.models import CALL_DISPOSITIONS as CALL_DISPOSITIONS
from cti.db.models import Call
from cti.db.models_outbound import DoNotCall
from cti.db.models_recordings import Recording
from cti.db.recordings import RecordingQuery, search, search_one
from cti.db.screen_pop import caller_history as _caller_history
from cti.db.screen_pop import screen_pop as _screen_pop
from cti.db.web_audit import AuditEntry
from cti.db.web_audit import add as add_audit

# ---------------------------------------------------------------------------------- calls


@dataclass(frozen=True)
class CallRecord:
    """A call's record as the desktop shows it."""

    call_id: str
    caller_number: str
    language: str | None
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    account_no: str | None
    skill: str | None
    priority: int | None
    ivr_path: list[dict[str, Any]]
    queued_at: datetime | None
    answered_at: datetime | None
    agent_id: str | None
    seat: str | None
    disposition: str | None = None  # wrap-up code (cti.db.models.CALL_DISPOSITIONS)
    agent_note: str | None = None
    disposed_by: str | None = None
    disposed_at: datetime | None = None


def _record(c: Call) -> CallRecord:
    return CallRecord(call_id=c.call_id, caller_number=c.caller_number, language=c.language,
                      started_at=c.started_at, ended_at=c.ended_at, outcome=c.outcome,
                      account_no=c.account_no, skill=c.skill, priority=c.priority,
                      ivr_path=list(c.ivr_path or []), queued_at=c.queued_at,
                      answered_at=c.answered_at, agent_id=c.agent_id, seat=c.seat,
                      disposition=c.disposition, agent_note=c.agent_note,
                      disposed_by=c.disposed_by, disposed_at=c.disposed_at)


def call_record(sessions: sessionmaker[Session], call_id: str) -> CallRecord | None:
    with sessions.begin() as s:
        row = s.scalars(select(Call).where(Call.call_id == call_id)).one_or_none()
        return _record(row) if row is not None else None


def set_disposition(sessions: sessionmaker[Session], call_id: str, *, code: str,
                    note: str | None, by: str, at: datetime) -> CallRecord | None:
    """Code a call in wrap-up (话后处理): its business type and the agent's note; coding it
    again replaces both. None when the call has no record."""
    with sessions.begin() as s:
        row = s.scalars(select(Call).where(Call.call_id == call_id)
                        .with_for_update()).one_or_none()
        if row is None:
            return None
        row.disposition, row.agent_note = code, note
        row.disposed_by, row.disposed_at = by, at
        return _record(row)


def do_not_call_reason(sessions: sessionmaker[Session], number: str) -> str | None:
    """Why `number` (national form) is on the do-not-call list ("" when no reason was given),
    or None when it is not on it."""
    with sessions.begin() as s:
        row = s.execute(select(DoNotCall.reason).where(DoNotCall.number == number)
                        ).one_or_none()
    return None if row is None else (row.reason or "")


def call_records_by_id(sessions: sessionmaker[Session], call_ids: list[str]
                       ) -> dict[str, CallRecord]:
    """The records of those calls that have one, by call_id."""
    with sessions.begin() as s:
        return {r.call_id: _record(r)
                for r in s.scalars(select(Call).where(Call.call_id.in_(call_ids)))}


def call_records(sessions: sessionmaker[Session], *, agent_id: str | None,
                 start: datetime | None, end: datetime | None, offset: int, limit: int
                 ) -> list[CallRecord]:
    """Newest first: every call (agent_id None) or those agent_id handled, started in
    [start, end) where given."""
    q = select(Call)
    if agent_id is not None:
        q = q.where(Call.agent_id == agent_id)
    if start is not None:
        q = q.where(Call.started_at >= start)
    if end is not None:
        q = q.where(Call.started_at < end)
    q = q.order_by(Call.started_at.desc(), Call.id.desc()).offset(offset).limit(limit)
    with sessions.begin() as s:
        return [_record(r) for r in s.scalars(q)]


def screen_pop(sessions: sessionmaker[Session], *, call_id: str, caller_number: str,
               account_no: str | None, now: datetime) -> dict[str, Any]:
    """cti.db.screen_pop.screen_pop in a unit of work of its own."""
    with sessions.begin() as s:
        return _screen_pop(s, call_id=call_id, caller_number=caller_number,
                           account_no=account_no, now=now)


def caller_history(sessions: sessionmaker[Session], *, call_id: str, caller_number: str,
                   account_no: str | None) -> dict[str, Any]:
    """cti.db.screen_pop.caller_history in a unit of work of its own."""
    with sessions.begin() as s:
        return _caller_history(s, call_id=call_id, caller_number=caller_number,
                               account_no=account_no)


# ------------------------------------------------------------------- post-call surveys


def survey_report(sessions: sessionmaker[Session], start: datetime, end: datetime
                  ) -> surveys.SurveyReport:
    """cti.db.surveys.survey_report in a unit of work of its own."""
    with sessions.begin() as s:
        return surveys.survey_report(s, start, end)


# --------------------------------------------------------------------------------- agents


def list_agents(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    """cti.db.agents.list_agents in a unit of work of its own."""
    with sessions.begin() as s:
        return db_agents.list_agents(s)


def get_agent(sessions: sessionmaker[Session], agent_id: str) -> db_agents.AgentInfo | None:
    with sessions.begin() as s:
        return db_agents.get_agent(s, agent_id)


# ----------------------------------------------------------------------------- recordings


@dataclass(frozen=True)
class RecordingRef:
    """What the routes need of a recording's index entry."""

    id: int
    call_id: str
    kind: str
    seat: str | None
    rel_path: str
    deleted_at: datetime | None


def recording_ref(sessions: sessionmaker[Session], recording_id: int) -> RecordingRef | None:
    """The recording's index entry, deleted ones too (deleted_at says so)."""
    with sessions() as s:
        rec = s.get(Recording, recording_id)
        if rec is None:
            return None
        return RecordingRef(id=rec.id, call_id=rec.call_id, kind=rec.kind, seat=rec.seat,
                            rel_path=rec.rel_path, deleted_at=rec.deleted_at)


def search_recordings(sessions: sessionmaker[Session], q: RecordingQuery,
                      audit: AuditEntry) -> list[dict[str, Any]]:
    """cti.db.recordings.search, and audit's line with `results` (how many) in its detail,
    in one unit of work."""
    with sessions.begin() as s:
        rows = search(s, q)
        add_audit(s, dataclasses.replace(audit, detail={**audit.detail, "results": len(rows)}))
    return rows


def recording_doc(sessions: sessionmaker[Session], recording_id: int,
                  audit: AuditEntry) -> dict[str, Any] | None:
    """cti.db.recordings.search_one, and audit's line, in one unit of work; None (and no
    line) if there is no such recording."""
    with sessions.begin() as s:
        doc = search_one(s, recording_id)
        if doc is not None:
            add_audit(s, audit)
    return doc


def transcript_doc(sessions: sessionmaker[Session], recording_id: int,
                   audit: AuditEntry) -> dict[str, Any]:
    """cti.db.transcripts.transcript_doc, and audit's line, in one unit of work."""
    with sessions.begin() as s:
        doc = transcripts.transcript_doc(s, recording_id)
        add_audit(s, dataclasses.replace(audit, detail={**audit.detail,
                                                        "status": doc["status"]}))
    return doc


# ---------------------------------------------------------------------------- supervision


def record_supervision_refusal(sessions: sessionmaker[Session], *, session_id: str,
                               supervisor_id: str, role: str, call_id: object,
                               agent_id: str | None, mode: object, reason: str, via: str,
                               at: datetime) -> None:
    """cti.db.supervision.record_refusal in a unit of work of its own."""
    with sessions.begin() as s:
        db_supervision.record_refusal(s, session_id=session_id, supervisor_id=supervisor_id,
                                      role=role, call_id=call_id, agent_id=agent_id, mode=mode,
                                      reason=reason, via=via, at=at)
