"""The desktop's audit trail in the database: one audit_log line per privileged web action
(a supervisor acting on an agent or a call, recording access) and per refusal of one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from cti.db.models_recordings import AuditLog


@dataclass(frozen=True)
class AuditEntry:
    """One line to write; None values in detail are left out."""

    at: datetime
    actor: str
    role: str
    action: str
    target: str | None
    allowed: bool
    client_ip: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def add(s: Session, entry: AuditEntry) -> None:
    """Write entry in the caller's unit of work (the caller commits), clipped to the columns."""
    s.add(AuditLog(at=entry.at, actor=entry.actor[:64], role=entry.role[:16],
                   action=entry.action[:48],
                   target=None if entry.target is None else entry.target[:128],
                   allowed=entry.allowed,
                   client_ip=None if entry.client_ip is None else entry.client_ip[:64],
                   detail={k: v for k, v in entry.detail.items() if v is not None}))


def record(sessions: sessionmaker[Session], entry: AuditEntry) -> None:
    """Write entry in a unit of work of its own."""
    with sessions.begin() as s:
        add(s, entry)
