"""The inbound caller lists (issue 15 §3) over HTTP: the nuisance list (骚扰来电名单) and the VIP
list, and an agent's report that a call was abusive.

- `GET /api/callers/{kind}`, `POST /api/callers/{kind}` {number, reason}, `DELETE
  /api/callers/{kind}/{number}`: supervisors and admins; kind is `nuisance` or `vip`. Each
  change is one unit of work with its audit line (`callers.add` / `callers.remove`); an agent's
  attempt is refused with 403 and is on record too.
- `POST /api/calls/{call_id}/nuisance`: the agent who took the call (or a supervisor) reports it
  as abusive, once per call (`callers.report`). With `[callers] nuisance_after` reports of the
  number within `nuisance_window_days` the number joins the nuisance list by itself.

The IVR and the ACD read the lists at every call: a change is heard from the next call on.
Errors are JSON {"detail": ...}: not a telephone number 400, on the list already or the call
reported already 409, not on the list or no such call 404, a bad kind 422.
"""

from __future__ import annotations

from typing import Any, Literal

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
from cti.db import callers as store
from cti.db import web_queries
from cti.db.jsonready import json_ready

router = APIRouter(prefix="/api", tags=["callers"])

Kind = Literal["nuisance", "vip"]


@router.get("/callers/{kind}", responses=ERRORS)
async def caller_list(kind: Kind, request: Request,
                      user: User = Depends(current_user)) -> list[dict[str, Any]]:  # noqa: B008
    """A list, newest first, with each number's reason, who added it, when, and (nuisance)
    how many reports it has."""
    require_supervisor(request, user, "callers.list", kind)
    return json_ready(await run_in_threadpool(store.entries, ctx_of(request).sessions, kind))


@router.post("/callers/{kind}", status_code=201, responses=ERRORS)
async def caller_add(kind: Kind, body: NumberIn, request: Request,
                     user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Put a number on a list (kept in national form, which the answer gives back)."""
    require_supervisor(request, user, "callers.add", body.number)
    ctx = ctx_of(request)
    reason = reason_or_400(body.reason)
    try:
        nat = await run_in_threadpool(
            store.add_audited, ctx.sessions, kind, national_or_400(body.number), reason=reason,
            audit=audit_line(request, user, f"callers.add_{kind}", reason), now=ctx.clock())
    except store.AlreadyListed as exc:
        raise HTTPException(409, str(exc)) from None
    return {"kind": kind, "number": nat, "reason": reason, "added_by": user.user_id}


@router.delete("/callers/{kind}/{number}", responses=ERRORS)
async def caller_remove(kind: Kind, number: Number, request: Request,
                        user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Take a number off a list."""
    require_supervisor(request, user, "callers.remove", number)
    ctx = ctx_of(request)
    try:
        nat = await run_in_threadpool(
            store.remove_audited, ctx.sessions, kind, national_or_400(number),
            audit=audit_line(request, user, f"callers.remove_{kind}", None))
    except store.NotListed as exc:
        raise HTTPException(404, str(exc)) from None
    return {"kind": kind, "number": nat, "removed": True}


@router.post("/calls/{call_id}/nuisance",
             responses={401: {"description": "not logged in"},
                        403: {"description": "not your call"},
                        404: {"description": "no such call"},
                        409: {"description": "reported already"}})
async def report_nuisance(call_id: str, request: Request,
                          user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Report the call as abusive (骚扰来电): the agent who took it, or a supervisor."""
    ctx = ctx_of(request)
    record = await run_in_threadpool(web_queries.call_record, ctx.sessions, call_id[:64])
    if record is None:
        raise HTTPException(404, f"no call {call_id[:64]}")
    if not user.is_supervisor and record.agent_id != user.user_id:
        require_supervisor(request, user, "callers.report", call_id[:64])
    settings = ctx.settings.callers
    try:
        number, listed = await run_in_threadpool(
            store.report_nuisance_audited, ctx.sessions, record.call_id,
            audit=audit_line(request, user, "callers.report", None), now=ctx.clock(),
            after=settings.nuisance_after, window=settings.nuisance_window)
    except store.UnknownCall as exc:
        raise HTTPException(404, str(exc)) from None
    except store.AlreadyReported as exc:
        raise HTTPException(409, str(exc)) from None
    return {"call_id": record.call_id, "number": number, "listed": listed}
