"""What the console's number lists share (the do-not-call list, agent_desktop/api/outbound.py;
the inbound caller lists, agent_desktop/api/callers.py): a number in any spelling taken to its
national form or refused with 400, the supervisor-or-admin check whose refusal is on record,
and the audit line of one change."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import HTTPException, Path, Request
from pydantic import BaseModel, Field

from agent_desktop.api.auth import client_ip
from agent_desktop.audit import audit, entry
from agent_desktop.auth import User, ctx_of
from cti.db.web_audit import AuditEntry
from outbound.dnc import BadNumber, national

# any spelling: digits, spaces, + - ( ) and dots; national() then decides whether it is a
# number (it drops everything but the digits, so letters are refused before it)
SPELLING = re.compile(r"[0-9+\-(). ]{1,40}")
Number = Annotated[str, Path(max_length=40, description="the number, in any spelling")]
# the lists' documented answers besides 200/201
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "not a telephone number"},
    401: {"description": "not logged in"},
    403: {"description": "supervisors and admins only"},
    404: {"description": "the number is not on the list"},
    409: {"description": "the number is on the list already"},
}


class NumberIn(BaseModel):
    number: str = Field(min_length=1, max_length=40, examples=["+86 138-0013-8000"])
    reason: str = Field(min_length=1, max_length=200, description="why (the customer asked, "
                        "a complaint, ...)")


def national_or_400(number: str) -> str:
    """The national form, or a 400 that says why."""
    try:
        if not SPELLING.fullmatch(number):
            raise BadNumber(f"{number!r} is not a telephone number: digits, spaces and "
                            "+ - ( ) only")
        return national(number)
    except BadNumber as exc:
        raise HTTPException(400, str(exc)) from None


def reason_or_400(reason: str) -> str:
    """A list entry's reason, stripped, or a 400: every number on a list says why."""
    reason = reason.strip()
    if not reason:
        raise HTTPException(400, "a reason is required")
    return reason


def require_audited(request: Request, user: User, role: str, action: str,
                    target: str | None) -> None:
    """`role` (or one that implies it) passes; anyone else gets 403, and the attempt is
    audited."""
    if user.may(role):
        return
    ctx = ctx_of(request)
    audit(ctx.sessions, at=ctx.clock(), user=user, action=action, target=target,
          allowed=False, client_ip=client_ip(request))
    raise HTTPException(403, f"requires role {role}" + (" or admin" if role != "admin" else ""))


def require_supervisor(request: Request, user: User, action: str, target: str | None) -> None:
    """Supervisors and admins pass; anyone else gets 403, and the attempt is audited."""
    require_audited(request, user, "supervisor", action, target)


def audit_line(request: Request, user: User, action: str,
               reason: str | None) -> Callable[[str], AuditEntry]:
    """The audit line of one allowed change, given its target (written in the change's own
    unit of work)."""
    ctx = ctx_of(request)
    ip = client_ip(request)

    def line(target: str) -> AuditEntry:
        return entry(at=ctx.clock(), user=user, action=action, target=target, allowed=True,
                     client_ip=ip, reason=reason)
    return line
