"""The skills' service hours over HTTP (服务时间, issue 15 §3): weekly hours and the after-hours
action per skill, holidays and special days.

- `GET /api/calendars`: supervisors and admins (supervisors read only).
- `PUT /api/calendars/{skill}` {week, after_hours, route_to}, `DELETE /api/calendars/{skill}`
  (the skill is open 7×24 again), `PUT /api/calendars/{skill}/days/{day}` {kind, hours, note},
  `DELETE /api/calendars/{skill}/days/{day}`: admins. Each change is one unit of work with its
  audit line (`calendars.set`, `calendars.remove`, `calendars.set_day`, `calendars.remove_day`);
  a refused attempt (a supervisor's or an agent's) is 403 and on record too.

The IVR reads the calendars at every transfer: a change is heard from the next call on.
Errors are JSON {"detail": ...}: a bad change 400 with the reason (bad hours, an unknown
skill, a loop of routes, a calendar on the 7×24 skill), no such calendar or day 404.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from acd.calendar import CalendarError, format_hours
from agent_desktop.api.auth import client_ip
from agent_desktop.api.number_lists import require_audited
from agent_desktop.audit import entry
from agent_desktop.auth import User, ctx_of, current_user
from cti.db import calendars as store
from cti.db.jsonready import json_ready
from cti.db.web_audit import AuditEntry

router = APIRouter(prefix="/api/calendars", tags=["calendars"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the change is refused; the message says why"},
    401: {"description": "not logged in"},
    403: {"description": "admins only (supervisors may read)"},
    404: {"description": "no such calendar or day"},
}
Skill = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]{0,31}$",
                            examples=["english"])]
Day = Annotated[date, Path(description="the date, YYYY-MM-DD", examples=["2026-10-01"])]
Hours = Annotated[str, Field(max_length=120, examples=["08:00-20:00"],
                             description="HH:MM-HH:MM[,...]; past midnight allowed "
                                         "(22:00-06:00); '24h'; '' or 'closed'")]


class Week(BaseModel):
    mon: Hours = "closed"
    tue: Hours = "closed"
    wed: Hours = "closed"
    thu: Hours = "closed"
    fri: Hours = "closed"
    sat: Hours = "closed"
    sun: Hours = "closed"


class CalendarIn(BaseModel):
    week: Week
    after_hours: Literal["route", "callback"] = Field(
        description="route: to route_to when it is open; callback: offer one (declined: the "
                    "7×24 skill)")
    route_to: str | None = Field(default=None, max_length=32, examples=["general"])


class DayIn(BaseModel):
    kind: Literal["holiday", "special"]
    hours: Hours = Field(default="", description="a special day's hours (a holiday has none)")
    note: str = Field(default="", max_length=64, examples=["国庆节"])


def _line(request: Request, user: User, action: str, target: str,
          **detail: Any) -> AuditEntry:
    ctx = ctx_of(request)
    return entry(at=ctx.clock(), user=user, action=action, target=target, allowed=True,
                 client_ip=client_ip(request), **detail)


async def _change(request: Request, fn: Any, *args: Any, line: AuditEntry, **kw: Any) -> Any:
    try:
        return await run_in_threadpool(store.audited, ctx_of(request).sessions, line, fn,
                                       *args, **kw)
    except CalendarError as exc:
        raise HTTPException(400, str(exc)) from None
    except store.NoCalendar as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("", responses=ERRORS)
async def calendars_list(request: Request,
                         user: User = Depends(current_user)) -> list[dict[str, Any]]:  # noqa: B008
    """Every calendar by skill: its week, after-hours action, who changed it last and when,
    and its holidays and special days. A skill not listed is open 7×24."""
    require_audited(request, user, "supervisor", "calendars.list", None)
    return json_ready(await run_in_threadpool(store.listing, ctx_of(request).sessions))


@router.put("/{skill}", responses=ERRORS)
async def calendar_set(skill: Skill, body: CalendarIn, request: Request,
                       user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Create or replace a skill's weekly hours and after-hours action (its days are kept)."""
    require_audited(request, user, "admin", "calendars.set", skill)
    ctx = ctx_of(request)
    week = body.week.model_dump()
    await _change(request, store.set_calendar, skill, week, after_hours=body.after_hours,
                  route_to=body.route_to or None, by=user.user_id, now=ctx.clock(),
                  always_open=ctx.settings.calendars.always_open,
                  line=_line(request, user, "calendars.set", skill, after_hours=body.after_hours,
                             route_to=body.route_to, week=week))
    return {"skill": skill, "after_hours": body.after_hours, "route_to": body.route_to or None,
            "updated_by": user.user_id}


@router.delete("/{skill}", responses=ERRORS)
async def calendar_remove(skill: Skill, request: Request,
                          user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Drop a skill's calendar and its days: it is open 7×24 again."""
    require_audited(request, user, "admin", "calendars.remove", skill)
    await _change(request, store.remove_calendar, skill,
                  line=_line(request, user, "calendars.remove", skill))
    return {"skill": skill, "removed": True}


@router.put("/{skill}/days/{day}", responses=ERRORS)
async def calendar_day_set(skill: Skill, day: Day, body: DayIn, request: Request,
                           user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Make a date a holiday (closed all day) or a special day with its own hours."""
    target = f"{skill}/{day.isoformat()}"
    require_audited(request, user, "admin", "calendars.set_day", target)
    if not 2000 <= day.year <= 2999:
        raise HTTPException(400, "the year must be 2000 to 2999")
    ctx = ctx_of(request)
    special = await _change(
        request, store.set_day, skill, day, kind=body.kind, hours=body.hours,
        note=body.note.strip(), by=user.user_id, now=ctx.clock(),
        line=_line(request, user, "calendars.set_day", target, kind=body.kind,
                   hours=body.hours, note=body.note))
    return {"skill": skill, "day": day.isoformat(), "kind": special.kind,
            "hours": format_hours(special.hours), "note": special.note}


@router.delete("/{skill}/days/{day}", responses=ERRORS)
async def calendar_day_remove(skill: Skill, day: Day, request: Request,
                              user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """The date follows its weekday's hours again."""
    target = f"{skill}/{day.isoformat()}"
    require_audited(request, user, "admin", "calendars.remove_day", target)
    await _change(request, store.remove_day, skill, day,
                  line=_line(request, user, "calendars.remove_day", target))
    return {"skill": skill, "day": day.isoformat(), "removed": True}
