"""Click-to-call (拨打客户) over HTTP: the agent's seat rings first, then the customer.

From a work order (POST /api/workorders/{number}/call: the order's number, an event `called`
with the call's id on its history) or from a call (POST /api/calls/{call_id}/call-back: the
caller of a call the agent took, e.g. the pop's caller after they hung up). Only an agent or a
supervisor logged in on a seat, who is not on a call or a ring; the order must be one they may
see, the call one of theirs. The number is put in national form (outbound.dnc.national), must
be digits only, and is refused when it is on the do-not-call list (409, with its reason). A
report's (举报) reporter is confidential to agents: not called from the order by them.
Supervisors' calls are audited (call.click_to_call), refusals too.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from agent_desktop.api.auth import client_ip
from agent_desktop.api.calls import CallId, _load
from agent_desktop.api.workorders import _actor, _call, _service, _visible
from agent_desktop.audit import audit
from agent_desktop.auth import User, ctx_of, require_role
from agent_desktop.context import WebContext
from callcenter.call_control import C2C_NUMBER, CallControlError
from cti.db import web_queries
from outbound.dnc import BadNumber, national
from workorders import lifecycle as lc

log = logging.getLogger(__name__)
router = APIRouter(tags=["calls"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "not a number that can be dialled"},
    401: {"description": "not logged in"},
    403: {"description": "not an agent or supervisor, or not your order/call"},
    404: {"description": "no such order or call"},
    409: {"description": "not on a seat, on a call already, the number is on the do-not-call "
          "list, no outbound trunk, or the PBX/ACD is not running"},
}


class PlacedOut(BaseModel):
    call_id: str
    number: str
    work_order: str | None = None


def _ready_to_dial(ctx: WebContext, user: User) -> None:
    if ctx.calls is None or ctx.acd is None:
        raise HTTPException(409, "click-to-call needs the PBX and the ACD, which are not "
                            "running")
    if not ctx.settings.pbx.outbound_trunk:
        raise HTTPException(409, "no outbound trunk ([pbx] outbound_trunk): calls cannot be "
                            "placed here")
    me = ctx.acd.view.agents.get(user.user_id)
    if me is None or str(me.state) == "logged_out" or not me.seat:
        raise HTTPException(409, "log in on a seat first: your seat's phone rings first")
    if str(me.state) in ("reserved", "on_call"):
        raise HTTPException(409, "you are on a call (or your phone is ringing): finish it first")


def _dialable(ctx: WebContext, raw: str | None) -> str:
    if not raw:
        raise HTTPException(400, "there is no number to call")
    try:
        number = national(raw)
    except BadNumber:
        raise HTTPException(400, f"{raw!r} is not a telephone number") from None
    if not C2C_NUMBER.fullmatch(number):
        raise HTTPException(400, f"{raw!r} is not a number that can be dialled")
    reason = web_queries.do_not_call_reason(ctx.sessions, number)
    if reason is not None:
        why = f" ({reason})" if reason else ""
        raise HTTPException(409, f"{number} is on the do-not-call list{why}: not called")
    return number


async def _audit(ctx: WebContext, request: Request, user: User, target: str, allowed: bool,
                 **detail: Any) -> None:
    if not user.is_supervisor:
        return  # an agent's own call: the call record says who placed it

    def work() -> None:
        audit(ctx.sessions, at=ctx.clock(), user=user, action="call.click_to_call",
              target=target, allowed=allowed, client_ip=client_ip(request), **detail)
    await run_in_threadpool(work)


async def _place(ctx: WebContext, request: Request, user: User, raw: str | None,
                 account: str | None, target: str) -> str:
    try:
        _ready_to_dial(ctx, user)
        number = await run_in_threadpool(_dialable, ctx, raw)
        try:
            call_id: str = await ctx.calls.click_to_call(
                user.user_id, number, systemname=ctx.settings.pbx.systemname, account=account,
                actor=user.user_id)
        except CallControlError as exc:
            raise HTTPException(409, str(exc)) from None
    except HTTPException as exc:
        await _audit(ctx, request, user, target, False, error=str(exc.detail))
        raise
    await _audit(ctx, request, user, target, True, call_id=call_id)
    return call_id


@router.post("/api/workorders/{number}/call", status_code=202, response_model=PlacedOut,
             responses=ERRORS)
async def call_order_customer(
        number: str, request: Request,
        user: User = Depends(require_role("agent", "supervisor"))) -> PlacedOut:  # noqa: B008
    """拨打客户 from a work order: the agent's seat rings, and once answered the order's
    customer (its caller number) is dialled on the carrier trunk; the call is recorded and an
    event `called` (note call_id=...) goes on the order's history."""
    ctx = ctx_of(request)
    service = _service(ctx)
    visible = _visible(ctx, user)
    doc = await run_in_threadpool(_call, lambda: service.get(number, visible=visible))
    if doc.get("type") == lc.OrderType.REPORT.value and not user.is_supervisor:
        raise HTTPException(403, "a report's (举报) reporter is confidential: a supervisor "
                            "calls them")
    call_id = await _place(ctx, request, user, doc.get("caller_number"), doc.get("account_no"),
                           number)
    try:
        await run_in_threadpool(_call, lambda: service.record_call(
            number, _actor(user), call_id, visible=visible))
    except HTTPException:
        # the call is placed; the order's history lacks it (logged), the call is not undone
        log.exception("click-to-call %s: not noted on order %s", call_id, number)
    return PlacedOut(call_id=call_id, number=doc.get("caller_number") or "", work_order=number)


@router.post("/api/calls/{call_id}/call-back", status_code=202, response_model=PlacedOut,
             responses=ERRORS)
async def call_back_caller(
        request: Request, call_id: str = CallId,
        user: User = Depends(require_role("agent", "supervisor"))) -> PlacedOut:  # noqa: B008
    """拨打客户 from a call (the pop's caller, the current or last call): the caller of a
    call this agent took (a supervisor: any call) is called back from the agent's seat."""
    ctx = ctx_of(request)
    row = await run_in_threadpool(_load, ctx, user, call_id)
    live = dict(ctx.acd.view.calls).get(call_id) if ctx.acd is not None else None
    raw = row.caller_number if row is not None else (live.caller if live else None)
    account = (row.account_no if row is not None else None) or (live.account if live else None)
    new_id = await _place(ctx, request, user, raw, account, call_id)
    return PlacedOut(call_id=new_id, number=raw or "")
