"""The outbound engine's do-not-call list (免打扰名单, issue 14 §1) over HTTP: list, add, remove.

Supervisors and admins only. Each change is one unit of work with its audit line (the CLI's
actions, `outbound.dnc_add` / `outbound.dnc_remove`, with the client's address), through the
functions the CLI uses (cti.db.outbound); an agent's attempt is refused with 403 and is on
record too (allowed false). Numbers are taken in any spelling and kept in national form
(outbound.dnc.national): "+86 138-0013-8000" is 13800138000. The engine reads the list at
every tick, so a number added here is not dialled from the next tick on.

Errors are JSON {"detail": ...}: not a telephone number 400, on the list already 409, not on
the list 404, a schema mismatch 422.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from agent_desktop.api.number_lists import (
    ERRORS,
    Number,
    NumberIn,
    audit_line,
    national_or_400,
    reason_or_400,
    require_supervisor,
)
from agent_desktop.auth import User, ctx_of, current_user
from cti.db import outbound as store
from cti.db.jsonready import json_ready

router = APIRouter(prefix="/api/outbound", tags=["outbound"])


@router.get("/dnc", responses=ERRORS)
async def dnc_list(request: Request,
                   user: User = Depends(current_user)) -> list[dict[str, Any]]:  # noqa: B008
    """The numbers never called, newest first, each with its reason, who added it and when."""
    require_supervisor(request, user, "outbound.dnc_list", None)
    return json_ready(await run_in_threadpool(store.dnc_entries, ctx_of(request).sessions))


@router.post("/dnc", status_code=201, responses=ERRORS)
async def dnc_add(body: NumberIn, request: Request,
                  user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Put a number on the list (kept in national form, which the answer gives back)."""
    require_supervisor(request, user, "outbound.dnc_add", body.number)
    ctx = ctx_of(request)
    reason = reason_or_400(body.reason)
    try:
        nat = await run_in_threadpool(
            store.dnc_add_audited, ctx.sessions, national_or_400(body.number), reason=reason,
            audit=audit_line(request, user, "outbound.dnc_add", reason), now=ctx.clock())
    except store.AlreadyListed as exc:
        raise HTTPException(409, str(exc)) from None
    return {"number": nat, "reason": reason, "added_by": user.user_id}


@router.delete("/dnc/{number}", responses=ERRORS)
async def dnc_remove(number: Number, request: Request,
                     user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Take a number off the list: it may be called again."""
    require_supervisor(request, user, "outbound.dnc_remove", number)
    ctx = ctx_of(request)
    try:
        nat = await run_in_threadpool(
            store.dnc_remove_audited, ctx.sessions, national_or_400(number),
            audit=audit_line(request, user, "outbound.dnc_remove", None))
    except store.NotListed as exc:
        raise HTTPException(404, str(exc)) from None
    return {"number": nat, "removed": True}
