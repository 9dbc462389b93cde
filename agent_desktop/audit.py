"""One line in audit_log for each privileged web action (a supervisor acting on an agent or a
call), and for each refusal of one. The SQL is cti.db.web_audit's; an action that writes
something else too passes entry(...) to the cti.db function that writes both in one unit of
work."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent_desktop.auth import User
from cti.db import web_audit
from cti.db.web_audit import AuditEntry
from cti.db.web_sessions import Sessions


def entry(*, at: datetime, user: User, action: str, target: str | None, allowed: bool,
          client_ip: str | None = None, **detail: Any) -> AuditEntry:
    """The line for user's action (None values in detail are left out when written)."""
    return AuditEntry(at=at, actor=user.user_id, role=user.role, action=action, target=target,
                      allowed=allowed, client_ip=client_ip, detail=detail)


def audit(sessions: Sessions, *, at: datetime, user: User, action: str, target: str | None,
          allowed: bool, client_ip: str | None = None, **detail: Any) -> None:
    """Write the line in a unit of work of its own."""
    web_audit.record(sessions, entry(at=at, user=user, action=action, target=target,
                                     allowed=allowed, client_ip=client_ip, **detail))
