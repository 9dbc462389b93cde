"""Queues and the supervisors' wallboard (大屏): live ACD figures and today's from call records."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from agent_desktop.api.agents import AgentOut, agent_rows
from agent_desktop.auth import User, ctx_of, current_user, require_role
from agent_desktop.context import WebContext
from config.wallboard import wallboard_levels
from cti.db import reports
from cti.db.reports import WorkloadRow

router = APIRouter(prefix="/api", tags=["queues"])

SERVICE_LEVEL_S = 20.0  # 80/20: the share answered within 20 s


class QueueOut(BaseModel):
    skill: str
    waiting: int
    longest_wait_s: float
    agents_by_state: dict[str, int]
    service_level_20s: float | None  # the ACD's own, since the CTI started (MQTT's figure)
    answered: int
    abandoned: int
    aht_s: float


class Figures(BaseModel):
    """Today's figures of the center or of one skill, as the workload reports count them
    (REPORTS.md): calls count once they have ended; short abandons (hung up within the
    service-level threshold) are apart, in neither offered nor abandoned."""

    offered: int
    answered: int
    abandoned: int
    abandoned_short: int
    answered_in_20s: int
    service_level: float | None  # answered in 20 s / (answered + abandoned)
    answer_rate: float | None  # answered / offered
    abandon_rate: float | None  # abandoned / offered
    asa_s: float | None  # average wait of the answered calls
    aht_s: float | None  # (talk + after-call work) / answered
    deflected: int = 0  # hung up after an outage notice, before the menu (never offered)


class Today(Figures):
    day: str  # the center's local date


class SkillToday(Figures):
    skill: str
    waiting: int = 0  # live, from the ACD
    longest_wait_s: float = 0.0
    agents_by_state: dict[str, int] = {}


class TrendPoint(BaseModel):
    at: datetime  # the 15-minute interval's start, in the center's zone
    offered: int
    answered: int
    abandoned: int
    service_level: float | None


class Wallboard(BaseModel):
    at: datetime
    queues: list[QueueOut]
    today: Today
    skills: list[SkillToday]  # today's figures per skill with the live queue beside them
    trend: list[TrendPoint]  # today's intervals so far, the center's
    thresholds: dict[str, float]  # [wallboard] (config/wallboard.py)
    levels: dict[str, Literal["ok", "amber", "red"] | None]  # each watched figure's colour
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


def _figures(row: WorkloadRow) -> dict[str, Any]:
    f = row.figures()
    return {"offered": f["offered"], "answered": f["answered"], "abandoned": f["abandoned"],
            "abandoned_short": f["abandoned_short"], "answered_in_20s": f["answered_in_sl"],
            "service_level": f["service_level"], "answer_rate": f["answer_rate"],
            "abandon_rate": f["abandon_rate"], "asa_s": f["asa_s"], "aht_s": f["aht_s"],
            "deflected": f["deflected"]}


def build_wallboard(ctx: WebContext) -> Wallboard:
    now = ctx.clock()
    # today's figures from the report tables and the call records, as the workload reports
    # count them, so they survive a CTI restart and agree with every report
    live = reports.today_live_in(ctx.sessions, now, tz=ZoneInfo(ctx.settings.ivr.timezone),
                                 service_level_s=SERVICE_LEVEL_S)
    today = Today(day=live.day.isoformat(), **_figures(live.center))
    queues = queue_rows(ctx)
    by_skill = {q.skill: q for q in queues}
    skills = []
    for name in sorted({r.key for r in live.skills if r.key} | set(by_skill)):
        row = next((r for r in live.skills if r.key == name), None)
        q = by_skill.get(name)
        figures = _figures(row if row is not None else WorkloadRow.empty(now, name))
        skills.append(SkillToday(skill=name, waiting=q.waiting if q else 0,
                                 longest_wait_s=q.longest_wait_s if q else 0.0,
                                 agents_by_state=q.agents_by_state if q else {}, **figures))
    trend = []
    for r in live.intervals:
        f = r.figures()
        trend.append(TrendPoint(at=r.period, offered=f["offered"], answered=f["answered"],
                                abandoned=f["abandoned"], service_level=f["service_level"]))
    agents = [a for a in agent_rows(ctx) if a.role == "agent" or a.state != "logged_out"]
    w = ctx.settings.wallboard
    levels = wallboard_levels(
        w, longest_wait_s=max((q.longest_wait_s for q in queues), default=0.0),
        service_level=today.service_level, abandon_rate=today.abandon_rate,
        agents_ready=sum(1 for a in agents if a.state == "ready"))
    return Wallboard(at=now, queues=queues, today=today, skills=skills, trend=trend,
                     thresholds={k: float(v) for k, v in dataclasses.asdict(w).items()},
                     levels=levels, agents=agents, at_risk_work_orders=at_risk_orders(ctx))


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
