"""Reports for supervisors: the post-call satisfaction survey (满意度评价, issue 14 §3), per agent
and per skill, over days of the center's calendar; the workload reports (工作量统计, issue 15
§4): call and work-order figures per period, as JSON, CSV and XLSX."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi import Path as Path_
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from agent_desktop.auth import User, ctx_of, require_role
from agent_desktop.context import WebContext
from cti.db import reports as workload
from cti.db import web_queries, workorder_reports
from cti.db.report_export import to_csv, to_xlsx
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
    ctx, tz, first, last = _days(request, from_, to)
    start, end = day_window(first, last, tz)
    report = await run_in_threadpool(web_queries.survey_report, ctx.sessions, start, end)
    return SurveyReportOut(
        from_=first, to=last, timezone=ctx.settings.ivr.timezone,
        total=SurveyFiguresOut(**_figures(report.total)),
        by_agent=[AgentSurveysOut(agent_id=f.key, name=f.name, **_figures(f))
                  for f in report.by_agent],
        by_skill=[SkillSurveysOut(skill=f.key, **_figures(f))
                  for f in report.by_skill])


# ------------------------------------------------------------------ workload (issue 15 §4)

Period = Literal["15", "30", "60", "day", "week", "month"]
By = Literal["center", "skill", "agent"]
DayPeriod = Literal["day", "week", "month"]
# the longest window of 15/30/60-minute rows (a day has 96 intervals per key)
MAX_INTERVAL_DAYS = 31
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "to before from, a window too long for the interval, or a day "
                         "before 2000 or after 2999"},
    401: {"description": "not logged in"},
    403: {"description": "supervisors and admins only"}}
CSV_XLSX: dict[int | str, dict[str, Any]] = {200: {"content": {
    "text/csv": {}, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}},
    "description": "the same rows as the JSON report, one per period and key"}}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FromDay = Annotated[date | None, Query(alias="from",
                                       description="first day, YYYY-MM-DD (default today)")]
ToDay = Annotated[date | None, Query(description="last day, included (default: from)")]


class WorkloadRowOut(BaseModel):
    period: str = Field(description="the period's start, ISO 8601 in the center's zone")
    key: str | None = Field(description="the skill or agent id; null: the center, or calls "
                                        "with none")
    figures: dict[str, float | int | None] = Field(
        description="every figure of REPORTS.md: counts, seconds, rates (0-1); null where "
                    "its denominator is zero")


class WorkloadOut(BaseModel):
    from_: date = Field(serialization_alias="from")
    to: date
    timezone: str
    interval: str
    by: str
    counted_until: str | None = Field(description="every interval before this is counted "
                                                  "(the aggregator's mark); null: never ran")
    rows: list[WorkloadRowOut]


class WorkOrderRowOut(BaseModel):
    period: str = Field(description="the period's first day")
    type: str | None = Field(description="the order type; null: all types")
    figures: dict[str, float | int | None]


class WorkOrdersOut(BaseModel):
    from_: date = Field(serialization_alias="from")
    to: date
    timezone: str
    interval: str
    rows: list[WorkOrderRowOut]


def _days(request: Request, from_: date | None, to: date | None,
          max_days: int = MAX_DAYS) -> tuple[WebContext, ZoneInfo, date, date]:
    ctx = ctx_of(request)
    tz = ZoneInfo(ctx.settings.ivr.timezone)
    first = from_ or ctx.clock().astimezone(tz).date()
    last = to or first
    if last < first:
        raise HTTPException(400, "to is before from")
    if (last - first).days >= max_days:
        raise HTTPException(400, f"at most {max_days} days at once")
    try:
        day_window(first, last, tz)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return ctx, tz, first, last


async def _workload(request: Request, from_: date | None, to: date | None, interval: str,
                    by: str) -> tuple[WebContext, date, date, list[dict[str, Any]]]:
    limit = MAX_INTERVAL_DAYS if interval in ("15", "30", "60") else MAX_DAYS
    ctx, tz, first, last = _days(request, from_, to, limit)
    rows = await run_in_threadpool(workload.workload_report_in, ctx.sessions, first, last,
                                   tz=tz, period=interval, by=by)
    return ctx, first, last, workload.table_rows(rows)


def _export(rows: list[dict[str, Any]], columns: list[str], name: str, fmt: str) -> Response:
    if fmt == "xlsx":
        body, media = to_xlsx(rows, title=name, columns=columns), XLSX
    else:
        body, media = to_csv(rows, columns=columns), "text/csv; charset=utf-8"
    return Response(body, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{name}.{fmt}"'})


@router.get("/workload", response_model=WorkloadOut, response_model_by_alias=True,
            responses=ERRORS)
async def workload_report(
    request: Request, from_: FromDay = None, to: ToDay = None,
    interval: Annotated[Period, Query(description="15/30/60 minutes (31 days at most), "
                                                  "day, week (from Monday) or month")] = "day",
    by: Annotated[By, Query(description="center-wide, per skill or per agent")] = "center",
    _user: User = Depends(require_role("supervisor")),  # noqa: B008
) -> WorkloadOut:
    """Call figures per period (工作量统计): offered, answered, abandoned (short abandons apart),
    service level, ASA, AHT, talk, hold, ACW, occupancy, utilisation, RONA, transfers,
    deflected calls, callbacks (requested, connected), post-call satisfaction. Read from the
    report tables only (REPORTS.md)."""
    ctx, first, last, rows = await _workload(request, from_, to, interval, by)
    mark = await run_in_threadpool(workload.mark_in, ctx.sessions)
    return WorkloadOut(
        from_=first, to=last, timezone=ctx.settings.ivr.timezone, interval=interval, by=by,
        counted_until=mark.isoformat() if mark else None,
        rows=[WorkloadRowOut(period=r["period"], key=r["key"],
                             figures={k: v for k, v in r.items() if k not in ("period", "key")})
              for r in rows])


@router.get("/workload.{fmt}", response_class=Response, responses={**ERRORS, **CSV_XLSX})
async def workload_export(
    request: Request, fmt: Annotated[Literal["csv", "xlsx"], Path_(description="csv or xlsx")],
    from_: FromDay = None, to: ToDay = None,
    interval: Annotated[Period, Query()] = "day",
    by: Annotated[By, Query()] = "center",
    _user: User = Depends(require_role("supervisor")),  # noqa: B008
) -> Response:
    """The workload report as a CSV (UTF-8 with BOM) or XLSX file."""
    _ctx, first, last, rows = await _workload(request, from_, to, interval, by)
    columns = ["period", "key", *workload.FIGURE_COLUMNS]
    return _export(rows, columns, f"workload_{first}_{last}_{interval}_{by}", fmt)


async def _workorders(request: Request, from_: date | None, to: date | None, interval: str,
                      by_type: bool) -> tuple[WebContext, date, date, list[str],
                                              list[dict[str, Any]]]:
    ctx, _tz, first, last = _days(request, from_, to)
    rows = await run_in_threadpool(workorder_reports.workorder_report_in, ctx.sessions,
                                   first, last, period=interval, by_type=by_type)
    header, flat = workorder_reports.table_rows(rows)
    return ctx, first, last, header, flat


@router.get("/workorders", response_model=WorkOrdersOut, response_model_by_alias=True,
            responses=ERRORS)
async def workorders_report(
    request: Request, from_: FromDay = None, to: ToDay = None,
    interval: Annotated[DayPeriod, Query(description="day, week or month")] = "day",
    by: Annotated[Literal["all", "type"], Query(description="all types, or per type")] = "all",
    _user: User = Depends(require_role("supervisor")),  # noqa: B008
) -> WorkOrdersOut:
    """Work-order figures per period: created, SLA compliance per clock kind (arrival 45/90/
    120 min, restore 8 h), overdue, urged, return-visit satisfaction, average time per
    lifecycle step (REPORTS.md)."""
    ctx, first, last, _header, rows = await _workorders(request, from_, to, interval,
                                                        by == "type")
    return WorkOrdersOut(
        from_=first, to=last, timezone=ctx.settings.ivr.timezone, interval=interval,
        rows=[WorkOrderRowOut(period=r["period"], type=r["type"],
                              figures={k: v for k, v in r.items()
                                       if k not in ("period", "type")}) for r in rows])


@router.get("/workorders.{fmt}", response_class=Response, responses={**ERRORS, **CSV_XLSX})
async def workorders_export(
    request: Request, fmt: Annotated[Literal["csv", "xlsx"], Path_(description="csv or xlsx")],
    from_: FromDay = None, to: ToDay = None,
    interval: Annotated[DayPeriod, Query()] = "day",
    by: Annotated[Literal["all", "type"], Query()] = "all",
    _user: User = Depends(require_role("supervisor")),  # noqa: B008
) -> Response:
    """The work-order report as a CSV (UTF-8 with BOM) or XLSX file."""
    _ctx, first, last, header, rows = await _workorders(request, from_, to, interval,
                                                        by == "type")
    return _export(rows, header or ["period", "type"],
                   f"workorders_{first}_{last}_{interval}_{by}", fmt)
