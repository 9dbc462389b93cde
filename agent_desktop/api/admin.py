"""The admin console's staff and skills (issue 15 §1): users of every role, their skills and
proficiency, disabling, password resets; the skills calls are routed by. Admins only; every
change is audited (cti.db.staff writes the line with the change). A skills change reaches the
live ACD at once (acd AgentSkills: from the agent's next offer); disabling or resetting ends
the user's sessions, and logs an agent out of the ACD unless they are on a call (refused: 409).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from acd import engine as acd
from acd.model import AgentState
from agent_desktop.api.auth import client_ip
from agent_desktop.auth import User, ctx_of, require_role
from agent_desktop.context import WebContext
from callcenter.call_control import CallControlError, ask_acd
from cti.db import staff, web_sessions

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/admin", tags=["admin"])
admin_only = Depends(require_role("admin"))

StaffId = Path(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_-]+$", examples=["A051"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not logged in"}, 403: {"description": "not an admin"},
    404: {"description": "no such member of staff"},
    400: {"description": "the change is refused; the message says why"}}
Role = Literal["agent", "supervisor", "admin", "department"]
Department = Literal["repair", "marketing", "metering"]
Skills = dict[str, int]


class StaffOut(BaseModel):
    agent_id: str
    name: str
    role: Role
    department: Department | None
    skills: Skills
    active: bool
    must_change_password: bool
    created_at: datetime
    state: str = Field(default="logged_out", description="the ACD's state of an agent")


class StaffIn(BaseModel):
    agent_id: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_-]+$",
                          examples=["A051"])
    name: str = Field(min_length=1, max_length=64, examples=["李娜"])
    role: Role
    department: Department | None = None
    skills: Skills = Field(default_factory=dict, examples=[{"general": 4, "english": 3}])


class SkillsIn(BaseModel):
    skills: Skills = Field(examples=[{"general": 4, "repair": 5}])


class ActiveIn(BaseModel):
    active: bool


class PasswordOut(BaseModel):
    agent_id: str
    temporary_password: str = Field(description="shown once; the user changes it at their "
                                                 "next login")


class SkillOut(BaseModel):
    name: str
    label_zh: str
    label_en: str
    active: bool
    agents: int
    created_at: datetime
    created_by: str


class SkillIn(BaseModel):
    name: str = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$",
                      examples=["meter"])
    label_zh: str = Field(min_length=1, max_length=32, examples=["计量"])
    label_en: str = Field(min_length=1, max_length=32, examples=["metering"])


def _actor(request: Request, user: User) -> staff.Actor:
    return staff.Actor(user.user_id, user.role, client_ip(request))


def _run(ctx: WebContext, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A cti.db.staff function in its own unit of work; its refusal is a 400 (404: unknown)."""
    try:
        return staff.in_unit(ctx.sessions, fn, *args, **kwargs)
    except staff.UnknownStaff as exc:
        raise HTTPException(404, str(exc)) from None
    except staff.StaffError as exc:
        raise HTTPException(400, str(exc)) from None


def _out(ctx: WebContext, doc: dict[str, Any]) -> StaffOut:
    live = ctx.acd.view.agents.get(doc["agent_id"]) if ctx.acd is not None else None
    return StaffOut(**doc, state=str(live.state) if live is not None else "logged_out")


async def _tell_acd(ctx: WebContext, inp: acd.Input, actor: str) -> None:
    if ctx.acd is None:
        return  # no ACD here: the next login brings the change
    try:
        doc = await ask_acd(ctx.acd, inp, actor)
    except CallControlError as exc:
        raise HTTPException(409, str(exc)) from None
    if not doc.get("ok"):
        raise HTTPException(409, f"refused by the ACD: {doc.get('error')}")


async def _sign_out(ctx: WebContext, agent_id: str, actor: str) -> None:
    """End an agent's ACD login (not on a call: 409) and every web session of the user."""
    live = ctx.acd.view.agents.get(agent_id) if ctx.acd is not None else None
    if live is not None and live.state is not AgentState.LOGGED_OUT:
        if live.call_id is not None:
            raise HTTPException(409, f"{agent_id} is on a call; try again after it")
        await _tell_acd(ctx, acd.SupervisorForce(agent_id=agent_id, state=AgentState.LOGGED_OUT,
                                                 reason="admin"), actor)
    await run_in_threadpool(web_sessions.end_sessions_of, ctx.sessions, agent_id, ctx.clock())


@router.get("/staff", response_model=list[StaffOut], responses=ERRORS)
def list_staff(request: Request, user: User = admin_only) -> list[StaffOut]:
    """Every member of staff, with their skills and whether they are active."""
    ctx = ctx_of(request)
    return [_out(ctx, d) for d in staff.in_unit(ctx.sessions, staff.list_staff)]


@router.post("/staff", response_model=PasswordOut, status_code=201, responses=ERRORS)
async def create_staff(body: StaffIn, request: Request, user: User = admin_only) -> PasswordOut:
    """Add a user: an agent (with skills), a supervisor, an admin or a department's user. Their
    first password is a temporary one, shown here once, which they change at their first
    login."""
    ctx = ctx_of(request)
    password = staff.temporary_password()
    await run_in_threadpool(
        _run, ctx, staff.create_staff, agent_id=body.agent_id, name=body.name, role=body.role,
        password=password, skills=body.skills, department=body.department,
        demo=ctx.settings.demo, now=ctx.clock(), actor=_actor(request, user))
    log.info("staff %s (%s) created by %s", body.agent_id, body.role, user.user_id)
    return PasswordOut(agent_id=body.agent_id, temporary_password=password)


@router.put("/staff/{staff_id}/skills", response_model=StaffOut, responses=ERRORS)
async def set_skills(body: SkillsIn, request: Request, staff_id: str = StaffId,
                     user: User = admin_only) -> StaffOut:
    """Set an agent's (or supervisor's) skills and proficiency (1-5). A logged-in agent is
    offered calls by them from their next offer."""
    ctx = ctx_of(request)
    checked = await run_in_threadpool(_run, ctx, staff.set_skills, staff_id, body.skills,
                                      now=ctx.clock(), actor=_actor(request, user))
    await _tell_acd(ctx, acd.AgentSkills(agent_id=staff_id, skills=checked), user.user_id)
    return _out(ctx, await run_in_threadpool(_run, ctx, staff.get_staff, staff_id))


@router.put("/staff/{staff_id}/active", response_model=StaffOut, responses=ERRORS)
async def set_active(body: ActiveIn, request: Request, staff_id: str = StaffId,
                     user: User = admin_only) -> StaffOut:
    """Disable a user (signed out at once: the ACD and every session; not while on a call) or
    enable them again."""
    ctx = ctx_of(request)
    if not body.active:
        if staff_id == user.user_id:
            raise HTTPException(400, "an admin does not disable their own account")
        await run_in_threadpool(_run, ctx, staff.get_staff, staff_id)  # 404 first
        await _sign_out(ctx, staff_id, user.user_id)
    doc = await run_in_threadpool(_run, ctx, staff.set_active, staff_id, body.active,
                                  now=ctx.clock(), actor=_actor(request, user))
    return _out(ctx, doc)


@router.post("/staff/{staff_id}/password-reset", response_model=PasswordOut, responses=ERRORS)
async def reset_password(request: Request, response: Response, staff_id: str = StaffId,
                         user: User = admin_only) -> PasswordOut:
    """A temporary password, shown once; the user is signed out and must choose a new one at
    their next login."""
    ctx = ctx_of(request)
    await run_in_threadpool(_run, ctx, staff.get_staff, staff_id)  # 404 first
    if staff_id != user.user_id:
        await _sign_out(ctx, staff_id, user.user_id)
    password = await run_in_threadpool(_run, ctx, staff.reset_password, staff_id,
                                       now=ctx.clock(), actor=_actor(request, user))
    response.headers["Cache-Control"] = "no-store"
    return PasswordOut(agent_id=staff_id, temporary_password=password)


@router.get("/skills", response_model=list[SkillOut], responses=ERRORS)
def list_skills(request: Request, user: User = admin_only) -> list[SkillOut]:
    """Every skill, with how many active agents hold it."""
    ctx = ctx_of(request)
    return [SkillOut(**d) for d in staff.in_unit(ctx.sessions, staff.list_skills)]


@router.post("/skills", response_model=list[SkillOut], status_code=201, responses=ERRORS)
async def create_skill(body: SkillIn, request: Request, user: User = admin_only) -> list[SkillOut]:
    """Add a skill (then give it to agents, and transfer to it in a flow)."""
    ctx = ctx_of(request)
    await run_in_threadpool(_run, ctx, staff.create_skill, name=body.name,
                            label_zh=body.label_zh, label_en=body.label_en, now=ctx.clock(),
                            actor=_actor(request, user))
    return [SkillOut(**d) for d in staff.in_unit(ctx.sessions, staff.list_skills)]
