"""Calls: live and past calls, the screen-pop, and call control (hold, transfer, hang up)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool

from acd.model import CLICK_TO_CALL
from agent_desktop.api.auth import client_ip
from agent_desktop.audit import audit
from agent_desktop.auth import User, ctx_of, current_user
from agent_desktop.context import WebContext
from callcenter.call_control import CallControlError
from config.call_control import OutsideNumber, OutsideNumberRefused
from cti.db import web_queries
from cti.db.web_queries import AGENT_NOTE_MAX, CALL_DISPOSITIONS, CallRecord
from outbound.dnc import BadNumber

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/calls", tags=["calls"])

CallId = Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z._:@-]+$",
              examples=["1751333405.42"])
DENIED: dict[int | str, dict[str, Any]] = {
    401: {"description": "not logged in"},
    403: {"description": "not your call (supervisors see all)"},
    404: {"description": "no such call"}}
CONTROL: dict[int | str, dict[str, Any]] = {
    **DENIED,
    409: {"description": "the call is not connected, or the PBX/ACD is not running, or refused"}}


class CallOut(BaseModel):
    call_id: str
    caller_number: str | None
    language: str | None
    started_at: datetime | None
    ended_at: datetime | None
    outcome: str | None
    account_no: str | None
    skill: str | None
    priority: int | None
    queued_at: datetime | None
    answered_at: datetime | None
    agent_id: str | None
    seat: str | None
    live_state: str | None = Field(
        description="waiting / offered / connected / callback while in the ACD, else null")
    held: bool = False
    consult: dict[str, Any] | None = Field(
        default=None, description="a consult or conference on the call: the consulted agent "
        "(agent_id), who asked (first_agent), state consult/conference, answered, and the "
        "agents on the conference (parties)")
    disposition: str | None = Field(default=None, description="the wrap-up code, if coded")
    agent_note: str | None = None
    disposed_by: str | None = None
    disposed_at: datetime | None = None


class CallDetail(CallOut):
    ivr_path: list[dict[str, Any]]


class HoldIn(BaseModel):
    on: bool


class DtmfIn(BaseModel):
    # the keys of a telephone pad only: nothing else ever reaches AMI
    digits: str = Field(min_length=1, max_length=32, pattern=r"^[0-9*#A-D]+$",
                        examples=["1", "2#"])


class TransferIn(BaseModel):
    skill: str | None = Field(default=None, min_length=1, max_length=32,
                              pattern=r"^[A-Za-z0-9_-]+$", examples=["repair"])
    agent_id: str | None = Field(default=None, min_length=1, max_length=16,
                                 pattern=r"^[A-Za-z0-9_-]+$", examples=["A002"])

    @model_validator(mode="after")
    def one_target(self) -> TransferIn:
        if (self.skill is None) == (self.agent_id is None):
            raise ValueError("give either skill or agent_id")
        return self


class DispositionIn(BaseModel):
    """A wrap-up (话后处理): what the call was about, and a note."""
    code: str = Field(min_length=1, max_length=24, pattern=r"^[a-z_]+$",
                      examples=["fault_repair"], description="one of GET /api/calls/dispositions")
    note: str | None = Field(default=None, max_length=AGENT_NOTE_MAX,
                             examples=["客户反映电压不稳，已建报修单"])

    @model_validator(mode="after")
    def known(self) -> DispositionIn:
        if self.code not in CALL_DISPOSITIONS:
            raise ValueError(f"unknown wrap-up code {self.code!r}; one of "
                             + ", ".join(CALL_DISPOSITIONS))
        if self.note is not None:
            # control characters (other than new lines) never reach the record
            self.note = "".join(ch for ch in self.note
                                if ch in "\n\t" or ch.isprintable()).strip() or None
        return self


class ConsultIn(TransferIn):
    """Whom to consult: a ready agent, or a skill (the ACD picks its best ready agent now);
    the same target, and the same checks, as a transfer's; or an outside number (外线), one
    of GET /api/calls/outside-numbers or of the pattern [call_control] allows."""
    number: str | None = Field(default=None, min_length=3, max_length=24,
                               pattern=r"^\+?[0-9][0-9 -]*$", examples=["01065550101"],
                               description="an outside number: digits, spaces and '-', "
                               "optionally after '+' (+86 only)")

    @model_validator(mode="after")
    def one_target(self) -> ConsultIn:
        if [self.skill, self.agent_id, self.number].count(None) != 2:
            raise ValueError("give one of skill, agent_id and number")
        return self


class OutsideNumberOut(BaseModel):
    name: str
    number: str


class OutsideNumbersOut(BaseModel):
    numbers: list[OutsideNumberOut] = Field(description="the directory: named numbers")
    any_number: bool = Field(description="whether other national numbers (of the configured "
                             "pattern) may be dialled too")


class LeaveIn(BaseModel):
    agent_id: str | None = Field(default=None, min_length=1, max_length=16,
                                 pattern=r"^[A-Za-z0-9_-]+$", examples=["A002"],
                                 description="who leaves: oneself if not given (a supervisor "
                                 "names the agent)")


class ControlOut(BaseModel):
    call_id: str
    ok: bool
    held: bool | None = None
    consult: dict[str, Any] | None = None


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise HTTPException(400, f"{name}: give a time zone (e.g. 2026-07-01T08:00:00+08:00)")
    return value


def _live(ctx: WebContext) -> dict[str, Any]:
    return dict(ctx.acd.view.calls) if ctx.acd is not None else {}


def _held(ctx: WebContext, call_id: str) -> bool:
    return ctx.calls is not None and call_id in getattr(ctx.calls, "held", {})


def _consult(ctx: WebContext, call_id: str) -> dict[str, Any] | None:
    parties = getattr(ctx.calls, "parties", None) if ctx.calls is not None else None
    return parties(call_id) if parties is not None else None


def _out(ctx: WebContext, row: CallRecord | None, live: Any, call_id: str, detail: bool = False
         ) -> CallOut:
    doc: dict[str, Any] = {
        "call_id": call_id,
        "caller_number": row.caller_number if row else (live.caller if live else None),
        "language": row.language if row else None,
        "started_at": row.started_at if row else None,
        "ended_at": row.ended_at if row else None,
        "outcome": row.outcome if row else None,
        "account_no": row.account_no if row else (live.account if live else None),
        "skill": (live.skill or None) if live else (row.skill if row else None),
        "priority": row.priority if row else (live.priority if live else None),
        "queued_at": row.queued_at if row else None,
        "answered_at": row.answered_at if row else None,
        # a live call's agent is the ACD's: the one it is offered to or connected with, none
        # while it waits again (after a transfer or a ring-no-answer it showed the previous
        # agent, with listen, whisper and barge offered: issue 14 §6); an ended call's is the
        # record's
        "agent_id": (live.offered_to if live else (row.agent_id if row else None)),
        "seat": (row.seat if row and (live is None or (live.offered_to is not None
                                                       and live.offered_to == row.agent_id))
                 else None),
        "live_state": str(live.state) if live else None,
        "held": _held(ctx, call_id),
        "consult": _consult(ctx, call_id),
        "disposition": row.disposition if row else None,
        "agent_note": row.agent_note if row else None,
        "disposed_by": row.disposed_by if row else None,
        "disposed_at": row.disposed_at if row else None,
    }
    if detail:
        return CallDetail(**doc, ivr_path=list(row.ivr_path or []) if row else [])
    return CallOut(**doc)


def _mine(ctx: WebContext, user: User, call_id: str, row: CallRecord | None) -> bool:
    """The agent the call was offered to or answered by (also in its wrap-up)."""
    live = _live(ctx).get(call_id)
    if live is not None and live.offered_to == user.user_id:
        return True
    if ctx.acd is not None:
        me = ctx.acd.view.agents.get(user.user_id)
        if me is not None and me.call_id == call_id:
            return True
    return row is not None and row.agent_id == user.user_id


def _load(ctx: WebContext, user: User, call_id: str) -> CallRecord | None:
    row = web_queries.call_record(ctx.sessions, call_id)
    if row is None and call_id not in _live(ctx):
        raise HTTPException(404, f"no call {call_id}")
    if not user.is_supervisor and not _mine(ctx, user, call_id, row):
        raise HTTPException(403, "not your call")
    return row


@router.get("", response_model=list[CallOut],
            responses={401: {"description": "not logged in"},
                       400: {"description": "a time without a time zone"}})
def list_calls(
    request: Request,
    live: bool = Query(False, description="only the calls in the ACD now"),
    from_: Annotated[datetime | None,
                     Query(alias="from", description="started at or after")] = None,
    to: Annotated[datetime | None, Query(description="started before")] = None,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
    user: User = Depends(current_user),  # noqa: B008
) -> list[CallOut]:
    """Newest first. A supervisor sees every call; an agent the calls offered to them."""
    ctx = ctx_of(request)
    _aware(from_, "from")
    _aware(to, "to")
    calls = _live(ctx)
    if live:
        ids = [cid for cid, c in calls.items()
               if user.is_supervisor or c.offered_to == user.user_id]
        rows = web_queries.call_records_by_id(ctx.sessions, ids)
        out = [_out(ctx, rows.get(cid), calls[cid], cid) for cid in ids]
        out.sort(key=lambda c: (c.started_at or datetime.now(UTC)), reverse=True)
        return out[offset:offset + limit]
    rows_ = web_queries.call_records(
        ctx.sessions, agent_id=None if user.is_supervisor else user.user_id, start=from_,
        end=to, offset=offset, limit=limit)
    return [_out(ctx, r, calls.get(r.call_id), r.call_id) for r in rows_]


@router.get("/dispositions", responses={401: {"description": "not logged in"}})
def dispositions(_user: User = Depends(current_user)) -> list[str]:  # noqa: B008
    """The wrap-up codes (the 95598 business types), in the order the desktop offers them."""
    return list(CALL_DISPOSITIONS)


@router.put("/{call_id}/disposition", response_model=CallOut,
            responses={**DENIED, 409: {"description": "the call has no record yet"},
                       422: {"description": "an unknown code or a note too long"}})
def set_disposition(body: DispositionIn, request: Request, call_id: str = CallId,
                    user: User = Depends(current_user)) -> CallOut:  # noqa: B008
    """Code the call in wrap-up: for the agent who took it (or a supervisor, audited). Coding
    it again replaces the code and the note."""
    ctx = ctx_of(request)
    _load(ctx, user, call_id)
    row = web_queries.set_disposition(ctx.sessions, call_id, code=body.code, note=body.note,
                                      by=user.user_id, at=ctx.clock())
    if row is None:
        raise HTTPException(409, f"call {call_id} has no record yet; try again in a moment")
    if user.is_supervisor:
        audit(ctx.sessions, at=ctx.clock(), user=user, action="call.disposition",
              target=call_id, allowed=True, client_ip=client_ip(request), code=body.code)
    return _out(ctx, row, _live(ctx).get(call_id), call_id)


@router.get("/outside-numbers", response_model=OutsideNumbersOut,
            responses={401: {"description": "not logged in"}})
def outside_numbers(request: Request,
                    _user: User = Depends(current_user)) -> OutsideNumbersOut:  # noqa: B008
    """The outside numbers an agent may consult (the desktop's picker): [call_control]."""
    cfg = ctx_of(request).settings.call_control
    return OutsideNumbersOut(numbers=[OutsideNumberOut(name=n.name, number=n.number)
                                      for n in cfg.outside_numbers],
                             any_number=bool(cfg.outside_pattern))


@router.get("/{call_id}", response_model=CallDetail, responses=DENIED)
def get_call(request: Request, call_id: str = CallId,
             user: User = Depends(current_user)) -> CallOut:  # noqa: B008
    ctx = ctx_of(request)
    row = _load(ctx, user, call_id)
    return _out(ctx, row, _live(ctx).get(call_id), call_id, detail=True)


@router.get("/{call_id}/pop", responses=DENIED)
def get_pop(request: Request, call_id: str = CallId,
            user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """The screen-pop (docs/mqtt.md): the caller's accounts, arrears, bills, outages, open
    work orders and IVR path; for the agent it was offered to, or a supervisor."""
    ctx = ctx_of(request)
    row = _load(ctx, user, call_id)
    live = _live(ctx).get(call_id)
    if row is not None:
        caller = row.caller_number
    else:
        assert live is not None  # _load answered 404 otherwise
        caller = live.caller
    account = live.account if live is not None else None
    return web_queries.screen_pop(ctx.sessions, call_id=call_id, caller_number=caller,
                                  account_no=account, now=ctx.clock())


@router.get("/{call_id}/history", responses=DENIED)
def get_history(request: Request, call_id: str = CallId,
                user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """The caller's history beside the pop: their last calls (who took each, its wrap-up
    code and note) and last work orders, open or closed; for the call's agent or a
    supervisor."""
    ctx = ctx_of(request)
    row = _load(ctx, user, call_id)
    live = _live(ctx).get(call_id)
    if row is not None:
        caller = row.caller_number
    else:
        assert live is not None  # _load answered 404 otherwise
        caller = live.caller
    account = (live.account if live is not None else None) or (row.account_no if row else None)
    return web_queries.caller_history(ctx.sessions, call_id=call_id, caller_number=caller,
                                      account_no=account)


# ------------------------------------------------------------------------- call control


async def _control_target(request: Request, user: User, call_id: str, *,
                          ringing_placed: bool = False) -> tuple[WebContext, Any]:
    """The call control for a call the user may act on: the agent on it (or a supervisor).
    `ringing_placed`: also the agent whose own click-to-call still rings their seat (to
    cancel it); never a queued call ringing them (declining that is a ring-no-answer, on the
    phone)."""
    ctx = ctx_of(request)
    await run_in_threadpool(_load, ctx, user, call_id)
    if ctx.calls is None or ctx.acd is None:
        raise HTTPException(409, "call control needs the PBX and the ACD, which are not running")
    if not user.is_supervisor:
        me = ctx.acd.view.agents.get(user.user_id)
        state = str(me.state) if me is not None else None
        call = ctx.acd.view.calls.get(call_id)
        placed = (ringing_placed and state == "reserved" and call is not None
                  and CLICK_TO_CALL in call.flags and call.offered_to == user.user_id)
        if me is None or me.call_id != call_id or (state != "on_call" and not placed):
            raise HTTPException(403, "only the agent on this call (or a supervisor)")
    return ctx, ctx.calls


async def _audit_control(ctx: WebContext, request: Request, user: User, action: str,
                         call_id: str, allowed: bool, *, always: bool = False,
                         **detail: Any) -> None:
    if not user.is_supervisor and not always:
        return  # the agent's own call: the call record says who handled it

    def work() -> None:
        audit(ctx.sessions, at=ctx.clock(), user=user, action=action, target=call_id,
              allowed=allowed, client_ip=client_ip(request), **detail)
    await run_in_threadpool(work)


async def _run(ctx: WebContext, request: Request, user: User, action: str, call_id: str,
               coro: Any, *, always: bool = False, **detail: Any) -> Any:
    """Await a control; a refusal is a 409. Audited for a supervisor, and for anyone when
    `always` (a call to an outside number: the trunk's cost)."""
    try:
        result = await coro
    except CallControlError as exc:
        await _audit_control(ctx, request, user, action, call_id, False, error=str(exc),
                             always=always, **detail)
        raise HTTPException(409, str(exc)) from None
    except Exception as exc:  # AMI: timeout, disconnected, Response: Error
        log.warning("call %s: %s failed: %s", call_id, action, exc)
        await _audit_control(ctx, request, user, action, call_id, False, error=str(exc),
                             always=always, **detail)
        raise HTTPException(409, f"the PBX refused or did not answer: {exc}") from None
    await _audit_control(ctx, request, user, action, call_id, True, always=always, **detail)
    return result


def _outside_of(ctx: WebContext, call_id: str) -> dict[str, Any] | None:
    """The outside number of the call's consult or conference, for the audit; None if none."""
    doc = _consult(ctx, call_id)
    return None if doc is None else doc.get("outside")


@router.post("/{call_id}/hold", response_model=ControlOut, responses=CONTROL)
async def hold(body: HoldIn, request: Request, call_id: str = CallId,
               user: User = Depends(current_user)) -> ControlOut:  # noqa: B008
    """on=true: the caller hears music, the agent's leg waits; on=false: talk again."""
    ctx, cc = await _control_target(request, user, call_id)
    held = await _run(ctx, request, user, "call.hold", call_id, cc.hold(call_id, body.on),
                      on=body.on)
    return ControlOut(call_id=call_id, ok=True, held=held)


@router.post("/{call_id}/dtmf", response_model=ControlOut, responses=CONTROL)
async def dtmf(body: DtmfIn, request: Request, call_id: str = CallId,
               user: User = Depends(current_user)) -> ControlOut:  # noqa: B008
    """The agent's key pad: the keys go to the far end of the call (a party that is an IVR),
    in order. Only the agent on the call (or a supervisor, audited)."""
    ctx, cc = await _control_target(request, user, call_id)
    await _run(ctx, request, user, "call.dtmf", call_id, cc.dtmf(call_id, body.digits),
               digits=len(body.digits))
    return ControlOut(call_id=call_id, ok=True)


@router.post("/{call_id}/transfer", response_model=ControlOut, responses=CONTROL)
async def transfer(body: TransferIn, request: Request, call_id: str = CallId,
                   user: User = Depends(current_user)) -> ControlOut:  # noqa: B008
    """Blind transfer: to a skill (the caller waits in that queue, at the front) or to a
    ready agent (their seat rings at once). The transferring agent goes to wrap-up."""
    ctx, cc = await _control_target(request, user, call_id)
    await _run(ctx, request, user, "call.transfer", call_id,
               cc.transfer(call_id, actor=user.user_id, skill=body.skill,
                           agent_id=body.agent_id), skill=body.skill, agent_id=body.agent_id)
    return ControlOut(call_id=call_id, ok=True)


@router.post("/{call_id}/consult", response_model=ControlOut, responses=CONTROL)
async def consult(body: ConsultIn, request: Request, call_id: str = CallId,
                  user: User = Depends(current_user)) -> ControlOut:  # noqa: B008
    """Consult (咨询转接): the caller is held and the agent's phone rings a ready agent's seat
    (the one named, or the skill's best ready agent, chosen by the ACD; none ready: 409); that
    agent is taken out of routing meanwhile. Then complete, cancel or conference."""
    ctx, cc = await _control_target(request, user, call_id)
    if body.number is not None:
        outside = await _checked_outside(ctx, request, user, call_id, body.number)
        await _run(ctx, request, user, "call.consult_outside", call_id,
                   cc.consult(call_id, actor=user.user_id, outside=outside), always=True,
                   number=outside.number, name=outside.name)
    else:
        await _run(ctx, request, user, "call.consult", call_id,
                   cc.consult(call_id, body.agent_id, skill=body.skill, actor=user.user_id),
                   agent_id=body.agent_id, skill=body.skill)
    return ControlOut(call_id=call_id, ok=True, held=True, consult=_consult(ctx, call_id))


async def _checked_outside(ctx: WebContext, request: Request, user: User, call_id: str,
                           raw: str) -> OutsideNumber:
    """The number, as [call_control] allows it; 422 (not a number) or 403 (not one the hotline
    calls out to), audited either way: an agent trying numbers is worth a look."""
    try:
        return ctx.settings.call_control.outside(raw)
    except BadNumber:
        code, why = 422, "not a national telephone number"
    except OutsideNumberRefused:
        code, why = 403, "not a number the hotline may call out to"
    digits = "".join(ch for ch in raw if ch.isdigit())[:24]
    await _audit_control(ctx, request, user, "call.consult_outside", call_id, False,
                         always=True, number=digits, error=why)
    raise HTTPException(code, f"{digits}: {why}")


@router.post("/{call_id}/consult/complete", response_model=ControlOut, responses=CONTROL)
async def consult_complete(request: Request, call_id: str = CallId,
                           user: User = Depends(current_user)) -> ControlOut:  # noqa: B008
    """完成转接: the consulted agent (who answered) takes the caller; this agent's part ends
    (wrap-up) and the call record names the other."""
    ctx, cc = await _control_target(request, user, call_id)
    outside = _outside_of(ctx, call_id)
    await _run(ctx, request, user, "call.consult_complete", call_id,
               cc.complete_consult(call_id, actor=user.user_id), always=outside is not None,
               **({"number": outside["number"]} if outside else {}))
    return ControlOut(call_id=call_id, ok=True, held=False)


@router.post("/{call_id}/consult/cancel", response_model=ControlOut, responses=CONTROL)
async def consult_cancel(request: Request, call_id: str = CallId,
                         user: User = Depends(current_user)) -> ControlOut:  # noqa: B008
    """Back to the caller: the consulted seat's leg ends (ringing or talking), the agent talks
    to the caller again and the consulted agent is ready."""
    ctx, cc = await _control_target(request, user, call_id)
    outside = _outside_of(ctx, call_id)
    await _run(ctx, request, user, "call.consult_cancel", call_id,
               cc.cancel_consult(call_id, actor=user.user_id), always=outside is not None,
               **({"number": outside["number"]} if outside else {}))
    return ControlOut(call_id=call_id, ok=True, held=False)


@router.post("/{call_id}/conference", response_model=ControlOut, responses=CONTROL)
async def conference(request: Request, call_id: str = CallId,
                     user: User = Depends(current_user)) -> ControlOut:  # noqa: B008
    """三方通话: the caller, this agent and the consulted agent (who answered) together."""
    ctx, cc = await _control_target(request, user, call_id)
    outside = _outside_of(ctx, call_id)
    await _run(ctx, request, user, "call.conference", call_id,
               cc.conference(call_id, actor=user.user_id), always=outside is not None,
               **({"number": outside["number"]} if outside else {}))
    return ControlOut(call_id=call_id, ok=True, held=False, consult=_consult(ctx, call_id))


@router.post("/{call_id}/leave", response_model=ControlOut, responses=CONTROL)
async def leave(request: Request, body: LeaveIn | None = None, call_id: str = CallId,
                user: User = Depends(current_user)) -> ControlOut:  # noqa: B008
    """An agent leaves the conference (their phone's leg ends); the others talk on. The call's
    agent leaving hands it to the other; the last agent leaving ends the call. An agent takes
    only themselves out; a supervisor names the agent (audited)."""
    ctx = ctx_of(request)
    if ctx.calls is None or ctx.acd is None:
        raise HTTPException(409, "call control needs the PBX and the ACD, which are not running")
    who = body.agent_id if body is not None and body.agent_id else None
    if not user.is_supervisor:
        if who not in (None, user.user_id):
            raise HTTPException(403, "an agent can only leave the conference themselves")
        who = user.user_id
    elif who is None:
        raise HTTPException(422, "name the agent who leaves (agent_id)")
    doc = _consult(ctx, call_id)
    if doc is None:
        if call_id not in _live(ctx):
            raise HTTPException(404, f"no live call {call_id}")
        raise HTTPException(409, f"call {call_id} is not a conference")
    if not user.is_supervisor and who not in doc["parties"]:
        raise HTTPException(403, "not on this conference")
    outside = doc.get("outside")
    await _run(ctx, request, user, "call.leave", call_id,
               ctx.calls.leave(call_id, who, actor=user.user_id), agent_id=who,
               always=outside is not None,
               **({"number": outside["number"]} if outside else {}))
    return ControlOut(call_id=call_id, ok=True, consult=_consult(ctx, call_id))


@router.post("/{call_id}/hangup", response_model=ControlOut, responses=CONTROL)
async def hangup(request: Request, call_id: str = CallId,
                 user: User = Depends(current_user)) -> ControlOut:  # noqa: B008
    """End the call from the agent side; also cancels the agent's own click-to-call while
    it still rings their seat (the customer is not dialled then)."""
    ctx, cc = await _control_target(request, user, call_id, ringing_placed=True)
    await _run(ctx, request, user, "call.hangup", call_id, cc.hangup(call_id))
    return ControlOut(call_id=call_id, ok=True)



