"""The recorder's database adapters: recorder.ports' RecordingIndex and SupervisionAudit over a
sessionmaker, on cti.db.recordings and cti.db.supervision."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from cti.db import recordings as rec
from cti.db import supervision as sup
from cti.db.models_recordings import AuditLog
from recorder.ports import RecordingFacts, UnrecordedLeg
from recorder.reconcile import IndexRow
from recorder.retention import RetentionPolicy

# audit_log's action for an answered leg left without a whole recording (recorder.disk)
UNRECORDED_ACTION = "recording.unrecorded"


class TranscriptionQueue(Protocol):
    """Where an indexed recording is queued for transcription (callcenter.transcription)."""

    def enqueue_in(self, session: Session, recording_id: int) -> None: ...

    def wake(self) -> None: ...


class DbRecordingIndex:
    """recorder.ports.RecordingIndex: each call one transaction. With `transcription`, each
    recording indexed is queued for transcription in the same transaction (never indexed
    without its job), and the workers are woken after the commit."""

    def __init__(self, sessions: sessionmaker[Session], *,
                 transcription: TranscriptionQueue | None = None) -> None:
        self.sessions = sessions
        self.transcription = transcription

    def rows(self) -> dict[str, IndexRow]:
        with self.sessions() as s:
            return rec.index_rows(s)

    def deleted_paths(self) -> set[str]:
        with self.sessions() as s:
            return rec.deleted_paths(s)

    def index(self, facts: RecordingFacts, now: datetime) -> None:
        with self.sessions.begin() as s:
            row = rec.index_recording(s, rec.RecordingFacts(**asdict(facts)), now)
            if self.transcription is not None and row.deleted_at is None:
                self.transcription.enqueue_in(s, row.id)
        if self.transcription is not None:
            self.transcription.wake()

    def purge(self, policy: RetentionPolicy, now: datetime, actor: str, *,
              dry_run: bool = False) -> list[dict[str, Any]]:
        with self.sessions.begin() as s:
            return rec.purge(s, policy, now, actor, dry_run=dry_run)

    def remove_deleted_files(self, storage_dir: Path,
                             since: datetime | None = None) -> list[str]:
        return rec.remove_deleted_files(self.sessions, storage_dir, since=since)

    def unrecorded(self, leg: UnrecordedLeg, now: datetime) -> None:
        """recorder.ports.UnrecordedLog: an answered leg with no whole recording, in audit_log
        (action recording.unrecorded, target the call id) with its reason."""
        with self.sessions.begin() as s:
            s.add(AuditLog(at=now, actor="recorder", role=None, action=UNRECORDED_ACTION,
                           target=leg.call_id, allowed=True, client_ip=None,
                           detail={"leg": leg.leg_id, "seat": leg.seat, "file": leg.rel_path,
                                   "reason": leg.reason, "detail": leg.detail,
                                   "free_bytes": leg.free_bytes}))


class _Trail:
    """recorder.ports.AuditTrail on one open Session."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def record_refusal(self, *, session_id: str, supervisor_id: str, role: str,
                       call_id: object, agent_id: str | None, mode: object, reason: str,
                       via: str, at: datetime) -> None:
        sup.record_refusal(self.s, session_id=session_id, supervisor_id=supervisor_id,
                           role=role, call_id=call_id, agent_id=agent_id, mode=mode,
                           reason=reason, via=via, at=at)

    def record_control_refusal(self, *, session_id: str, actor: str, role: str, action: str,
                               reason: str, at: datetime) -> None:
        sup.record_control_refusal(self.s, session_id=session_id, actor=actor, role=role,
                                   action=action, reason=reason, at=at)

    def record_start(self, *, session_id: str, supervisor_id: str, role: str, endpoint: str,
                     call_id: str, agent_id: str, seat: str, mode: str, via: str,
                     at: datetime) -> None:
        sup.record_start(self.s, session_id=session_id, supervisor_id=supervisor_id, role=role,
                         endpoint=endpoint, call_id=call_id, agent_id=agent_id, seat=seat,
                         mode=mode, via=via, at=at)

    def record_mode(self, *, session_id: str, mode: str, begin: bool, at: datetime,
                    answered: bool = False) -> None:
        sup.record_mode(self.s, session_id=session_id, mode=mode, begin=begin, at=at,
                        answered=answered)

    def record_end(self, *, session_id: str, reason: str, at: datetime) -> None:
        sup.record_end(self.s, session_id=session_id, reason=reason, at=at)

    def end_open_sessions(self, at: datetime) -> int:
        return sup.end_open_sessions(self.s, at)


class DbSupervisionAudit:
    """recorder.ports.SupervisionAudit: transaction() is one Session, committed at the end."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    @contextmanager
    def transaction(self) -> Iterator[_Trail]:
        with self.sessions.begin() as s:
            yield _Trail(s)


__all__ = ["DbRecordingIndex", "DbSupervisionAudit"]
