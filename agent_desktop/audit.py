"""One line in audit_log for each privileged web action (a supervisor acting on an agent or a
call), and for each refusal of one; written in the same unit of work as the action."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from agent_desktop.auth import User


def audit(s: Session, *, at: datetime, user: User, action: str, target: str | None,
          allowed: bool, client_ip: str | None = None, **detail: Any) -> None:
    from cti.db.models_recordings import AuditLog

    s.add(AuditLog(at=at, actor=user.user_id[:64], role=user.role[:16], action=action[:48],
                   target=None if target is None else target[:128], allowed=allowed,
                   client_ip=None if client_ip is None else client_ip[:64],
                   detail={k: v for k, v in detail.items() if v is not None}))
