"""The recorder's ports: what recording and supervision need from the PBX and the database.

recorder/ talks to these, never to cti/; the composition root (hotline/wiring.py) passes the
adapters in: cti.ami.client.AmiClient fits `AmiActions` as it is; cti.db.recorder_store gives
`DbRecordingIndex` and `DbSupervisionAudit` over a sessionmaker. Tests pass fakes.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from recorder.reconcile import IndexRow
from recorder.retention import RetentionPolicy

# ------------------------------------------------------------------------------------- PBX


class AmiActions(Protocol):
    """Send one AMI action and get its answer (a list for list actions such as DBGet and
    CoreShowChannels). Every action has a deadline; Originate and Redirect go with
    idempotent=False and are never re-sent.

    How it fails: Asterisk's own refusal (Response: Error) raises an exception carrying that
    answer as `.response` (see `is_refusal`); no answer in time raises a TimeoutError and a lost
    or absent connection a ConnectionError (both in UNAVAILABLE)."""

    async def action(self, action: Mapping[str, Any], *, timeout: float | None = None,
                     idempotent: bool, as_list: bool | None = None) -> Any: ...


# the PBX could not be asked: no answer within the deadline, or no connection
UNAVAILABLE: tuple[type[BaseException], ...] = (TimeoutError, OSError)
_ANSWERED = frozenset({"Success", "Follows", "Goodbye"})


def is_refusal(exc: BaseException) -> bool:
    """True when Asterisk answered the action with an error (no such AstDB key, no such
    channel...): the exception carries the answer as `.response`, whose Response header is
    not a success. Decided by that header, never by the human-readable Message."""
    response = getattr(exc, "response", None)
    return (isinstance(response, Mapping) and "Response" in response
            and response["Response"] not in _ANSWERED)


# -------------------------------------------------------------------------------- recordings


@dataclass(frozen=True)
class RecordingFacts:
    """What the CTI knows of a finished file (from the dialplan's event or the file itself)."""

    rel_path: str
    started_at: datetime
    duration_s: float
    size: int
    sha256: str
    indexed_by: str              # event | reconcile
    queue: str | None = None
    caller_number: str | None = None


@dataclass(frozen=True)
class UnrecordedLeg:
    """An answered leg with no whole recording, and why (recorder.disk's reasons)."""

    call_id: str
    leg_id: str
    seat: str | None
    rel_path: str
    reason: str
    detail: str
    free_bytes: int


class UnrecordedLog(Protocol):
    """Where each unrecorded leg's reason is kept for supervisors (audit_log in the CTI)."""

    def unrecorded(self, leg: UnrecordedLeg, now: datetime) -> None: ...


class RecordingIndex(Protocol):
    """The recording index. Each call is its own unit of work; blocking (the recorder runs it
    in a worker thread)."""

    def rows(self) -> dict[str, IndexRow]:
        """The index as the reconciler sees it (rows whose file retention has not deleted)."""
        ...

    def deleted_paths(self) -> set[str]:
        """Files retention has deleted (a leftover on disk is pending removal, not stray)."""
        ...

    def index(self, facts: RecordingFacts, now: datetime) -> None:
        """Insert the file's row once; a repeat (event and reconciler both) keeps the first."""
        ...

    def purge(self, policy: RetentionPolicy, now: datetime, actor: str, *,
              dry_run: bool = False) -> list[dict[str, Any]]:
        """Mark the recordings past retention deleted, each with its log row (committed);
        what was (or, with dry_run, would be) deleted."""
        ...

    def remove_deleted_files(self, storage_dir: Path,
                             since: datetime | None = None) -> list[str]:
        """Remove the files of recordings marked deleted (since `since`, or all); the ones
        that could not be."""
        ...


# ------------------------------------------------------------------------------- supervision


class AuditTrail(Protocol):
    """Supervision's audit steps inside one unit of work (see SupervisionAudit.transaction)."""

    def record_refusal(self, *, session_id: str, supervisor_id: str, role: str,
                       call_id: object, agent_id: str | None, mode: object, reason: str,
                       via: str, at: datetime) -> None: ...

    def record_control_refusal(self, *, session_id: str, actor: str, role: str, action: str,
                               reason: str, at: datetime) -> None: ...

    def record_start(self, *, session_id: str, supervisor_id: str, role: str, endpoint: str,
                     call_id: str, agent_id: str, seat: str, mode: str, via: str,
                     at: datetime) -> None: ...

    def record_mode(self, *, session_id: str, mode: str, begin: bool, at: datetime,
                    answered: bool = False) -> None: ...

    def record_end(self, *, session_id: str, reason: str, at: datetime) -> None: ...

    def end_open_sessions(self, at: datetime) -> int:
        """Sessions a previous CTI left open end now; how many."""
        ...


class SupervisionAudit(Protocol):
    """Where supervision is put on record before anything is published or done in Asterisk.
    `transaction()` is one unit of work, committed when the block ends without an error;
    blocking (the service runs it in a worker thread)."""

    def transaction(self) -> AbstractContextManager[AuditTrail]: ...


__all__ = ["UNAVAILABLE", "AmiActions", "AuditTrail", "RecordingFacts", "RecordingIndex",
           "SupervisionAudit", "is_refusal"]
