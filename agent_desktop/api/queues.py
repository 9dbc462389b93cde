"""Queues and the supervisors' wallboard (大屏): live ACD figures and today's from call records."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from agent_desktop.api.agents import AgentOut, agent_rows
from agent_desktop.auth import User, ctx_of, current_user, require_role
from agent_desktop.context import WebContext
from cti.db import web_queries

router = APIRouter(prefix="/api", tags=["queues"])

SERVICE_LEVEL_S = 20.0  # 80/20: the share answered within 20 s


class QueueOut(BaseModel):
    skill: str
    waiting: int
    longest_wait_s: float
    agents_by_state: dict[str, int]
    service_level_20s: float | None  # today, 0..1; None until a call counts
    answered: int
    abandoned: int
    aht_s: float


class Today(BaseModel):
    day: str  # the center's local date
    offered: int  # calls that reached the agent queues
    answered: int
    abandoned: int
    answered_in_20s: int
    service_level: float | None  # answered in 20 s / (answered + abandoned after 20 s)
    answer_rate: float | None  # answered / offered
    deflected: int = 0  # hung up after an outage notice, before the menu (not offered)


class Wallboard(BaseModel):
    at: datetime
    queues: list[QueueOut]
    today: Today
    agents: list[AgentOut]
    at_risk_work_orders: list[dict[str, Any]]


def queue_rows(ctx: WebContext) -> list[QueueOut]:
    if ctx.acd is None:
        return []
    # the ACD's immutable view: safe on a worker thread while its writer goes on
    view = ctx.acd.view
    return [QueueOut(skill=q.skill, waiting=q.waiting, longest_wait_s=round(q.longest_wait_s, 1),
                     agents_by_state=dict(q.agents), service_level_20s=q.service_level,
                     answered=q.answered, abandoned=q.abandoned, aht_s=round(q.aht_s, 1))
            for q in view.queue_stats(ctx.acd.clock())]


def at_risk_orders(ctx: WebContext) -> list[dict[str, Any]]:
    """Work orders near or past their SLA, from the work-order service when it runs."""
    finder = getattr(ctx.workorders, "at_risk", None)
    if finder is None:
        return []
    return list(finder())


def wallboard_doc(ctx: WebContext) -> dict[str, Any]:
    """The wallboard as pushed over /ws (type "wallboard"); same shape as GET /api/wallboard."""
    return build_wallboard(ctx).model_dump(mode="json")


def build_wallboard(ctx: WebContext) -> Wallboard:
    now = ctx.clock()
    # today's figures from the call records, so they survive a CTI restart
    figures = web_queries.today_figures(ctx.sessions, now, ZoneInfo(ctx.settings.ivr.timezone),
                                        SERVICE_LEVEL_S)
    today = Today(**dataclasses.asdict(figures))
    agents = [a for a in agent_rows(ctx) if a.role == "agent" or a.state != "logged_out"]
    return Wallboard(at=now, queues=queue_rows(ctx), today=today, agents=agents,
                     at_risk_work_orders=at_risk_orders(ctx))


@router.get("/queues", response_model=list[QueueOut],
            responses={401: {"description": "not logged in"}})
def queues(request: Request, _user: User = Depends(current_user)) -> list[QueueOut]:  # noqa: B008
    """Every skill queue's live figures (empty when the ACD is not running)."""
    return queue_rows(ctx_of(request))


@router.get("/wallboard", response_model=Wallboard,
            responses={401: {"description": "not logged in"},
                       403: {"description": "supervisors only"}})
def wallboard(request: Request,
              _user: User = Depends(require_role("supervisor"))) -> Wallboard:  # noqa: B008
    """The supervisors' big screen: queues, today's figures, every agent, at-risk orders."""
    return build_wallboard(ctx_of(request))
