"""Reports for supervisors: the post-call satisfaction survey (满意度评价, issue 14 §3), per agent
and per skill, over days of the center's calendar."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from agent_desktop.auth import User, ctx_of, require_role
from cti.db import web_queries
from cti.db.surveys import SurveyFigures, day_window

router = APIRouter(prefix="/api/reports", tags=["reports"])

MAX_DAYS = 366  # the longest window one report reads


class SurveyFiguresOut(BaseModel):
    offered: int = Field(description="callers put to the survey (the agent hung up first)")
    answered: int = Field(description="of them, those who keyed a score")
    average: float | None = Field(description="the average score, 1-5; null without one")
    scores: dict[str, int] = Field(description='how many of each score, "1" to "5"')


class AgentSurveysOut(SurveyFiguresOut):
    agent_id: str | None = Field(description="the agent who hung up; null if none was known")
    name: str | None


class SkillSurveysOut(SurveyFiguresOut):
    skill: str | None


class SurveyReportOut(BaseModel):
    from_: date = Field(serialization_alias="from", description="the first day (local)")
    to: date = Field(description="the last day (local), included")
    timezone: str
    total: SurveyFiguresOut
    by_agent: list[AgentSurveysOut]
    by_skill: list[SkillSurveysOut]


def _figures(f: SurveyFigures) -> dict[str, Any]:
    return {"offered": f.offered, "answered": f.answered, "average": f.average,
            "scores": {str(k): v for k, v in f.scores.items()}}


@router.get("/surveys", response_model=SurveyReportOut, response_model_by_alias=True,
            responses={400: {"description": "to before from, more than 366 days, or a day "
                                            "before 2000 or after 2999"},
                       401: {"description": "not logged in"},
                       403: {"description": "supervisors only"}})
async def surveys(
    request: Request,
    from_: Annotated[date | None, Query(alias="from",
                                        description="first day, YYYY-MM-DD (default today)")]
    = None,
    to: Annotated[date | None, Query(description="last day, included (default: from)")] = None,
    _user: User = Depends(require_role("supervisor")),  # noqa: B008
) -> SurveyReportOut:
    """The post-call surveys offered on those days (the center's local calendar): per agent
    (the one who hung up), per skill and in all, how many callers were asked, how many keyed a
    score, the average and each score's count."""
    ctx = ctx_of(request)
    tz = ZoneInfo(ctx.settings.ivr.timezone)
    first = from_ or ctx.clock().astimezone(tz).date()
    last = to or first
    if last < first:
        raise HTTPException(400, "to is before from")
    if (last - first).days >= MAX_DAYS:
        raise HTTPException(400, f"at most {MAX_DAYS} days at once")
    try:
        start, end = day_window(first, last, tz)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    report = await run_in_threadpool(web_queries.survey_report, ctx.sessions, start, end)
    return SurveyReportOut(
        from_=first, to=last, timezone=ctx.settings.ivr.timezone,
        total=SurveyFiguresOut(**_figures(report.total)),
        by_agent=[AgentSurveysOut(agent_id=f.key, name=f.name, **_figures(f))
                  for f in report.by_agent],
        by_skill=[SkillSurveysOut(skill=f.key, **_figures(f))
                  for f in report.by_skill])
