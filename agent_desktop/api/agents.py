"""Agents: who is logged in where and in which state; ready / not ready; log out."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from acd import engine as acd
from acd.model import AgentState
from agent_desktop.api.auth import client_ip
from agent_desktop.audit import audit, entry
from agent_desktop.auth import User, ctx_of, current_user, outranks
from agent_desktop.auth import require_self_or_supervisor as self_or_supervisor
from agent_desktop.context import WebContext
from callcenter.call_control import CallControlError, ask_acd
from cti.db import web_queries, web_sessions

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/agents", tags=["agents"])

AgentId = Path(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_-]+$",
               examples=["A001"])
STATES = ("logged_out", "ready", "not_ready", "reserved", "on_call", "wrap_up")
# why the ACD refused (acd.agent_fsm / acd.engine reasons are English phrases) -> HTTP 409
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": "not logged in"},
    403: {"description": "another agent's data needs a supervisor"}}


class AgentOut(BaseModel):
    agent_id: str
    name: str
    role: Literal["agent", "supervisor", "admin"]
    skills: dict[str, int]
    active: bool
    seat: str | None
    state: Literal["logged_out", "ready", "not_ready", "reserved", "on_call", "wrap_up"]
    reason: str | None
    since: datetime | None
    call_id: str | None
    wrap_up_s: float | None = None  # the ACD's wrap-up time, for the desktop's countdown


class StateIn(BaseModel):
    state: Literal["ready", "not_ready", "wrap_up"]
    reason: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_\-]*$",
                               examples=["break", "lunch", "training"])


def _ts(value: float) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def agent_rows(ctx: WebContext, only: str | None = None) -> list[AgentOut]:
    """Every agent account (or one) with its live state: the ACD's when it runs, else the
    open DB session (the ACD writes it after every change)."""
    rows = web_queries.list_agents(ctx.sessions)
    view = ctx.acd.view if ctx.acd is not None else None  # the ACD's immutable view
    live = view.agents if view is not None else {}
    out = []
    for r in rows:
        if only is not None and r["agent_id"] != only:
            continue
        a = live.get(r["agent_id"])
        sess = r["session"]
        if a is not None:
            state = {"seat": a.seat or None, "state": str(a.state), "reason": a.reason or None,
                     "since": _ts(a.state_since), "call_id": a.call_id}
        elif sess is not None and ctx.acd is None:
            state = {"seat": sess["seat"], "state": sess["state"], "reason": sess["reason"],
                     "since": sess["state_since"], "call_id": sess["call_id"]}
        else:
            state = {"seat": None, "state": "logged_out", "reason": None, "since": None,
                     "call_id": None}
        out.append(AgentOut(agent_id=r["agent_id"], name=r["name"], role=r["role"],
                            skills=r["skills"], active=r["active"], **state,
                            wrap_up_s=view.wrap_up_s if view is not None else None))
    return out


def require_acd(ctx: WebContext) -> Any:
    if ctx.acd is None:
        raise HTTPException(409, "the ACD is not running")
    return ctx.acd


@router.get("", response_model=list[AgentOut], responses=UNAUTHORIZED)
def list_agents(request: Request, user: User = Depends(current_user)) -> list[AgentOut]:  # noqa: B008
    """A supervisor sees every agent; an agent only themself."""
    ctx = ctx_of(request)
    return agent_rows(ctx, None if user.is_supervisor else user.user_id)


class TransferTarget(BaseModel):
    agent_id: str
    name: str
    skills: dict[str, int]


@router.get("/transfer-targets", response_model=list[TransferTarget], responses=UNAUTHORIZED)
def transfer_targets(request: Request,
                     user: User = Depends(current_user)) -> list[TransferTarget]:  # noqa: B008
    """The agents a call may be transferred to now: ready ones, not the asker; names and
    skills only (an agent may see who is free, not others' calls or seats)."""
    ctx = ctx_of(request)
    return [TransferTarget(agent_id=a.agent_id, name=a.name, skills=a.skills)
            for a in agent_rows(ctx) if a.state == "ready" and a.agent_id != user.user_id
            and a.role == "agent"]


@router.get("/{agent_id}", response_model=AgentOut,
            responses={**UNAUTHORIZED, 404: {"description": "no such agent"}})
def get_agent(request: Request, agent_id: str = AgentId,
              user: User = Depends(current_user)) -> AgentOut:  # noqa: B008
    self_or_supervisor(user, agent_id)
    rows = agent_rows(ctx_of(request), agent_id)
    if not rows:
        raise HTTPException(404, f"no agent {agent_id}")
    return rows[0]


async def _audited(ctx: WebContext, request: Request, user: User, action: str, agent_id: str,
                   allowed: bool, **detail: Any) -> None:
    def work() -> None:
        audit(ctx.sessions, at=ctx.clock(), user=user, action=action, target=agent_id,
              allowed=allowed, client_ip=client_ip(request), **detail)
    await run_in_threadpool(work)


async def _apply(ctx: WebContext, inp: acd.Input, actor: str) -> None:
    try:
        doc = await ask_acd(require_acd(ctx), inp, actor)
    except CallControlError as exc:
        raise HTTPException(409, str(exc)) from None
    if not doc.get("ok"):
        raise HTTPException(409, f"refused by the ACD: {doc.get('error')}")


def _known(ctx: WebContext, agent_id: str) -> str:
    """agent_id's role; 404 if there is no such account."""
    info = web_queries.get_agent(ctx.sessions, agent_id)
    if info is None:
        raise HTTPException(404, f"no agent {agent_id}")
    return str(info.role)


async def _may_force(ctx: WebContext, request: Request, user: User, action: str,
                     agent_id: str, target_role: str) -> None:
    """403 (audited) unless user outranks the target: a supervisor never forces an admin."""
    if agent_id != user.user_id and not outranks(user, target_role):
        await _audited(ctx, request, user, action, agent_id, False, reason="rank",
                       target_role=target_role)
        raise HTTPException(403, f"a {user.role} may not act on a {target_role}")


def _check_reason(ctx: WebContext, user: User, agent_id: str, reason: str | None) -> None:
    """Reasons come from [acd] not_ready_reasons; a supervisor's force may also say
    "supervisor". The ACD's own reasons (rona, phone_offline, ...) are never a client's."""
    if reason is None:
        return
    allowed = set(ctx.settings.acd.not_ready_reasons)
    if agent_id != user.user_id:
        allowed.add("supervisor")
    if reason not in allowed:
        raise HTTPException(422, "reason: not one of the configured not-ready reasons ("
                                 + ", ".join(sorted(allowed)) + ")")


@router.post("/{agent_id}/state", response_model=AgentOut,
             responses={**UNAUTHORIZED, 404: {"description": "no such agent"},
                        409: {"description": "the ACD refused, or is not running"}})
async def set_state(body: StateIn, request: Request, agent_id: str = AgentId,
                    user: User = Depends(current_user)) -> AgentOut:  # noqa: B008
    """ready / not_ready (with a reason: break, lunch, training...) / wrap_up (after-call work,
    again: the wrap-up time starts anew). An agent sets their own;
    a supervisor may force another agent's (ready or not_ready), audited with the actor."""
    ctx = ctx_of(request)
    self_or_supervisor(user, agent_id)
    target_role = await run_in_threadpool(_known, ctx, agent_id)
    await _may_force(ctx, request, user, "agent.force_state", agent_id, target_role)
    _check_reason(ctx, user, agent_id, body.reason)
    if body.state == "wrap_up" and agent_id != user.user_id:
        raise HTTPException(409, "a supervisor forces ready, not_ready or a logout, not wrap-up")
    if agent_id == user.user_id:
        inp: acd.Input
        if body.state == "ready":
            inp = acd.AgentReady(agent_id=agent_id)
        elif body.state == "wrap_up":  # (more) after-call work; the timer starts again
            inp = acd.AgentWrapUp(agent_id=agent_id)
        else:
            inp = acd.AgentNotReady(agent_id=agent_id, reason=body.reason or "break")
        await _apply(ctx, inp, user.user_id)
    else:
        require_acd(ctx)
        try:
            await _apply(ctx, acd.SupervisorForce(agent_id=agent_id,
                                                  state=AgentState(body.state),
                                                  reason=body.reason or "supervisor"),
                         user.user_id)
        except HTTPException as exc:
            await _audited(ctx, request, user, "agent.force_state", agent_id, False,
                           state=body.state, reason=body.reason, error=exc.detail)
            raise
        await _audited(ctx, request, user, "agent.force_state", agent_id, True,
                       state=body.state, reason=body.reason)
    return agent_rows(ctx, agent_id)[0]


@router.post("/{agent_id}/logout", response_model=AgentOut,
             responses={**UNAUTHORIZED, 404: {"description": "no such agent"},
                        409: {"description": "the ACD refused (say, on a call), or is not "
                                             "running"}})
async def logout_agent(request: Request, agent_id: str = AgentId,
                       user: User = Depends(current_user)) -> AgentOut:  # noqa: B008
    """签出: the agent themself (not while on a call), or a supervisor (forced, audited)."""
    ctx = ctx_of(request)
    self_or_supervisor(user, agent_id)
    target_role = await run_in_threadpool(_known, ctx, agent_id)
    await _may_force(ctx, request, user, "agent.logout", agent_id, target_role)
    acd_service = require_acd(ctx)
    current = acd_service.view.agents.get(agent_id)
    forced = agent_id != user.user_id
    if current is not None and current.state != AgentState.LOGGED_OUT:
        inp: acd.Input = (acd.SupervisorForce(agent_id=agent_id, state=AgentState.LOGGED_OUT,
                                              reason="supervisor") if forced
                          else acd.AgentLogout(agent_id=agent_id))
        try:
            await _apply(ctx, inp, user.user_id)
        except HTTPException as exc:
            if forced:
                await _audited(ctx, request, user, "agent.logout", agent_id, False,
                               error=exc.detail)
            raise

    def end() -> None:
        # the web sessions end, and a forced logout is on record, in one unit of work
        now = ctx.clock()
        web_sessions.end_sessions_of(
            ctx.sessions, agent_id, now,
            audit=entry(at=now, user=user, action="agent.logout", target=agent_id,
                        allowed=True, client_ip=client_ip(request)) if forced else None)
    await run_in_threadpool(end)
    return agent_rows(ctx, agent_id)[0]
