"""Supervision over the web API: listen, whisper, barge, switch and stop; supervisors only.

The role is checked by the SupervisionService (recorder/supervision.py), not by a router
dependency, so that an agent's attempt is refused *and* on record (supervision_sessions and
audit_log) like every other attempt. Starting rings the supervisor's own phone: the one they
logged in at (sup01..sup05), else the one numbered like their id (S01 -> sup01).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from agent_desktop.auth import User, ctx_of, current_user
from agent_desktop.context import WebContext

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/supervision", tags=["supervision"])

MESSAGES: dict[str, str] = {
    "forbidden": "only supervisors and admins may listen to, whisper to or barge into calls",
    "bad_mode": "mode must be listen, whisper or barge",
    "no_such_call": "no live call with that id",
    "no_such_session": "no such supervision session (it may have ended)",
    "not_connected": "the call is not connected to an agent",
    "no_phone": "you have no supervisor phone (log in with seat sup01..sup05)",
    "busy": "you are already supervising a call; stop that first",
    "self": "you cannot supervise your own call",
    "not_answered": "your phone has not answered yet",
    "ended": "the session has ended",
    "pbx_unavailable": "the PBX is not reachable; nothing was rung",
}


class StartIn(BaseModel):
    call_id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z._:@-]+$",
                         examples=["1751333405.42"], description="the call's Linkedid")
    # a plain string, not an enum: a bad mode is refused by the service, so it is audited
    mode: str = Field(max_length=16, examples=["listen"],
                      description="listen (监听) | whisper (耳语) | barge (强插)")


class ModeIn(BaseModel):
    mode: str = Field(max_length=16, examples=["whisper"])


class SessionOut(BaseModel):
    session_id: str
    supervisor_id: str
    endpoint: str
    call_id: str
    agent_id: str
    seat: str
    mode: str
    state: str  # dialing | active | ended
    requested_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None


def _actor(user: User) -> Any:
    from recorder.supervision_policy import Actor

    return Actor(user.user_id, user.role, user.seat)


def _error(exc: Exception) -> HTTPException:
    from recorder.supervision import REASON_STATUS

    reason = getattr(exc, "reason", "error")
    return HTTPException(REASON_STATUS.get(reason, 409), MESSAGES.get(reason, reason))


async def _audit_refusal_offline(ctx: WebContext, user: User, body: StartIn) -> None:
    """No CTI in this process (tests, a web-only instance): a refusal is still on record."""
    import uuid

    from cti.db import web_queries

    def work() -> None:
        web_queries.record_supervision_refusal(
            ctx.sessions, session_id=uuid.uuid4().hex, supervisor_id=user.user_id,
            role=user.role, call_id=body.call_id, agent_id=None, mode=body.mode,
            reason="forbidden", via="web", at=ctx.clock())
    await run_in_threadpool(work)


def _service(ctx: WebContext) -> Any:
    if ctx.supervision is None:
        raise HTTPException(409, "supervision is not running (no CTI in this process)")
    return ctx.supervision


@router.post("", status_code=201, response_model=SessionOut,
             responses={403: {"description": "not a supervisor (the refusal is audited)"},
                        404: {"description": "no such live call"},
                        409: {"description": "not connected, busy, no phone, no PBX"}})
async def start(body: StartIn, request: Request,
                user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Ring the supervisor's own phone, then listen to / whisper to / barge into the call."""
    ctx = ctx_of(request)
    if ctx.supervision is None and not user.is_supervisor:
        await _audit_refusal_offline(ctx, user, body)
        raise HTTPException(403, MESSAGES["forbidden"])
    from recorder.supervision import SupervisionError

    try:
        view: dict[str, Any] = await _service(ctx).start(_actor(user), body.call_id,
                                                          body.mode, via="web")
    except SupervisionError as exc:
        raise _error(exc) from None
    return view


@router.get("", response_model=list[SessionOut])
async def live_sessions(request: Request,
                        user: User = Depends(current_user)) -> list[dict[str, Any]]:  # noqa: B008
    """Supervision sessions going on now (supervisors only)."""
    if not user.is_supervisor:
        raise HTTPException(403, MESSAGES["forbidden"])
    from recorder.supervision import session_view

    service = _service(ctx_of(request))
    return [session_view(s) for s in list(service.live.values())]


@router.post("/{session_id}/mode", response_model=SessionOut)
async def set_mode(session_id: str, body: ModeIn, request: Request,
                   user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Switch listen / whisper / barge; the supervisor's phone is not rung again."""
    from recorder.supervision import SupervisionError

    try:
        view: dict[str, Any] = await _service(ctx_of(request)).set_mode(
            _actor(user), session_id, body.mode)
    except SupervisionError as exc:
        raise _error(exc) from None
    return view


@router.delete("/{session_id}", response_model=SessionOut)
async def stop(session_id: str, request: Request,
               user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Stop: the supervisor's phone is hung up; the session's end goes on record."""
    from recorder.supervision import SupervisionError

    try:
        view: dict[str, Any] = await _service(ctx_of(request)).stop(_actor(user), session_id)
    except SupervisionError as exc:
        raise _error(exc) from None
    return view
