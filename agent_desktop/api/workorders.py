"""Work orders (工单) over HTTP: search, create, history, steps, urging, return visits, at-risk.

An agent sees the orders they accepted, those of calls they answered and those of the call they
are on (workorders.service.Visibility); supervisors and admins see all. An order an agent may not
see is a 404 to them; a call_id of another agent's call is a 403.

A thin layer over workorders.service; the lifecycle core decides which role may take which
step, so agents act on the steps their role allows and supervisors (and admins) on all. Errors
map to JSON {"detail": ...}: unknown order 404, bad input 400, a step the role may not take 403,
a step that cannot follow the current status 409.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from agent_desktop.auth import User, ctx_of, current_user, require_role
from agent_desktop.context import WebContext
from cti.db import recordings
from workorders import lifecycle as lc
from workorders.service import (
    MAX_PAGE,
    Actor,
    NewOrder,
    NoOutbound,
    SearchQuery,
    Visibility,
    WorkOrderNotFound,
    WorkOrderService,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/workorders", tags=["workorders"])

T = TypeVar("T")
MAX_OFFSET = 2**31 - 1  # beyond it the driver overflows (a 500); a 422 instead
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "invalid input"}, 401: {"description": "not logged in"},
    403: {"description": "the role may not do this"}, 404: {"description": "no such order"},
    409: {"description": "the step cannot follow the order's status"},
}


class CreateIn(BaseModel):
    type: str = Field(max_length=32, pattern=r"^[a-z_]+$",
                      description="fault_repair, complaint, report, consultation, "
                      "service_application, suggestion, praise")
    description: str = Field(max_length=4000)
    caller_number: str | None = Field(default=None, pattern=r"^(\+?[0-9]{1,20})?$",
                                      description="digits, an optional leading +; empty or "
                                      "left out: taken from the call when call_id is given",
                                      examples=["13800000001"])
    account_number: str | None = Field(default=None, max_length=32, pattern=r"^[0-9A-Za-z-]+$")
    call_id: str | None = Field(default=None, max_length=64, pattern=r"^[0-9A-Za-z._:@-]+$")
    department: str | None = Field(default=None, max_length=16, pattern=r"^[a-z_]+$",
                                   description="repair, marketing, metering")
    subtype: str | None = Field(default=None, max_length=32,
                                description="fault_repair: line, meter, other; "
                                "service_application: new_connection, capacity_change, change")


class TransitionIn(BaseModel):
    to: str = Field(max_length=32, description="dispatched, department_accepted, on_site, "
                    "resolved, return_visit, archived")
    department: str | None = Field(default=None, max_length=16, description="when dispatching")
    note: str | None = Field(default=None, max_length=2000)
    satisfied: bool | None = Field(default=None, description="the return visit's verdict")


class UrgeIn(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


class LinkIn(BaseModel):
    master: str = Field(description="the master order's number (主单)")


def _service(ctx: WebContext) -> WorkOrderService:
    """The host's one service (hotline.wiring builds it); none means work orders are not served."""
    if not isinstance(ctx.workorders, WorkOrderService):
        raise HTTPException(409, "work orders are not running")
    return ctx.workorders


def _actor(user: User) -> Actor:
    return Actor(user.user_id, lc.Role(user.role))


def _visible(ctx: WebContext, user: User) -> Visibility | None:
    """An agent's view (the service filters by it); None for supervisors and admins. The calls
    the agent is on come from the ACD's immutable view, never from the live engine."""
    if user.is_supervisor:
        return None
    calls: set[str] = set()
    callers: set[str] = set()
    others: set[str] = set()
    view = ctx.acd.view if ctx.acd is not None else None
    if view is not None:
        me = view.agents.get(user.user_id)
        for call_id, live in view.calls.items():
            if live.offered_to == user.user_id or (me is not None and me.call_id == call_id):
                calls.add(call_id)
                if live.caller:
                    callers.add(live.caller)
            else:
                others.add(call_id)
    return Visibility(user.user_id, frozenset(calls), frozenset(callers), frozenset(others))


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except WorkOrderNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except lc.RoleNotAllowed as exc:
        raise HTTPException(403, str(exc)) from None
    except (lc.TransitionNotAllowed, lc.UrgeNotAllowed, NoOutbound) as exc:
        raise HTTPException(409, str(exc)) from None
    except (lc.InvalidWorkOrder, ValueError) as exc:
        raise HTTPException(400, str(exc)) from None


def _mask(number: str | None) -> str | None:
    if not number:
        return number
    return number[:3] + "*" * max(len(number) - 7, 1) + number[-4:] if len(number) > 7 else "***"


def _for(user: User, doc: dict[str, Any]) -> dict[str, Any]:
    """A report (举报) is confidential: agents do not see who reported it."""
    if doc.get("type") == lc.OrderType.REPORT.value and not user.is_supervisor:
        doc = {**doc, "caller_number": _mask(doc.get("caller_number")),
               "account_no": _mask(doc.get("account_no"))}
    return doc


def _when(value: datetime | None, ctx: WebContext) -> datetime | None:
    # a time without a zone is the center's local time, as the desk shows it
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(ctx.settings.ivr.timezone))


@router.get("", responses=ERRORS)
def search(request: Request,
           status: Annotated[str | None, Query(max_length=32)] = None,
           type: Annotated[str | None, Query(max_length=32)] = None,  # noqa: A002 - the API's name
           q: Annotated[str | None, Query(max_length=200)] = None,
           account: Annotated[str | None, Query(max_length=32)] = None,
           caller: Annotated[str | None, Query(max_length=32)] = None,
           date_from: Annotated[datetime | None, Query(alias="from")] = None,
           date_to: Annotated[datetime | None, Query(alias="to")] = None,
           limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
           offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
           user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Orders matching every filter, newest first: {total, limit, offset, items}."""
    ctx = ctx_of(request)
    page = _call(lambda: _service(ctx).search(SearchQuery(
        status=status or None, type=type or None, text=q, account=account, caller=caller,
        date_from=_when(date_from, ctx), date_to=_when(date_to, ctx), limit=limit,
        offset=offset, visible=_visible(ctx, user))))
    page["items"] = [_for(user, i) for i in page["items"]]
    return page


@router.post("", status_code=201, responses=ERRORS)
def create(body: CreateIn, request: Request,
           user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Accept (受理) an order; status "accepted", with its SLA clocks. A fault report of an
    area with an open master order within the duplicate window is linked to it (子单)."""
    ctx = ctx_of(request)
    new = NewOrder(type=body.type, description=body.description,
                   caller_number=body.caller_number, account_no=body.account_number,
                   call_id=body.call_id, subtype=body.subtype, department=body.department,
                   channel="agent")
    return _for(user, _call(lambda: _service(ctx).create(new, _actor(user),
                                                         visible=_visible(ctx, user))))


@router.get("/return-visits", responses=ERRORS)
def return_visits(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  user: User = Depends(current_user)) -> list[dict[str, Any]]:  # noqa: B008
    """Resolved orders waiting for their return visit (回访), longest waiting first."""
    ctx = ctx_of(request)
    return [_for(user, r) for r in _call(
        lambda: _service(ctx).return_visit_list(limit, _visible(ctx, user)))]


@router.get("/return-visit-messages", responses=ERRORS)
async def return_visit_messages(request: Request,
                                limit: Annotated[int, Query(ge=1, le=100)] = 30,
                                _user: User = Depends(require_role("supervisor"))  # noqa: B008
                                ) -> list[dict[str, Any]]:
    """The latest voice messages customers left on return visits (回访留言), newest first:
    the order (number, type, status, satisfaction) and the recording to play
    (/api/recordings/{recording_id}/audio)."""
    return await run_in_threadpool(recordings.latest_messages, ctx_of(request).sessions, limit)


@router.get("/at-risk", responses=ERRORS)
def at_risk(request: Request,
            _user: User = Depends(require_role("supervisor"))  # noqa: B008
            ) -> list[dict[str, Any]]:
    """Orders whose SLA clock has used 80% or more of its time, the most used first."""
    ctx = ctx_of(request)
    return _call(lambda: _service(ctx).at_risk())


@router.get("/{number}", responses=ERRORS)
def get(number: str, request: Request,
        user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """One order with its full history (step, at, actor, note), SLA clocks, master/children,
    the next steps each role may take, and the voice messages left on its return-visit calls
    (return_visit_messages: recording id, call, when, seconds; supervisors play them)."""
    ctx = ctx_of(request)
    doc = _for(user, _call(lambda: _service(ctx).get(number, visible=_visible(ctx, user))))
    doc["return_visit_messages"] = recordings.order_messages(ctx.sessions, number)
    return doc


@router.post("/{number}/transitions", responses=ERRORS)
def transition(number: str, body: TransitionIn, request: Request,
               user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Take one step, recorded with the time and the user."""
    ctx = ctx_of(request)
    return _for(user, _call(lambda: _service(ctx).transition(
        number, body.to, _actor(user), department=body.department, note=body.note,
        satisfied=body.satisfied, visible=_visible(ctx, user))))


@router.post("/{number}/return-visit-call", status_code=202, responses=ERRORS)
def return_visit_call(number: str, request: Request,
                      user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Dial this resolved order's return visit (回访) now, through the outbound engine; 409
    where there is no outbound trunk or the order is not resolved."""
    ctx = ctx_of(request)
    return _call(lambda: _service(ctx).call_return_visit(number, _actor(user),
                                                         visible=_visible(ctx, user)))


@router.post("/{number}/urge", responses=ERRORS)
def urge(number: str, request: Request, body: UrgeIn | None = None,
         user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Record a caller's urge (催办); it alerts the supervisors (hotline/supervisors/alerts)."""
    ctx = ctx_of(request)
    note = body.note if body is not None else None
    return _for(user, _call(lambda: _service(ctx).urge(number, _actor(user), note,
                                                       visible=_visible(ctx, user))))


@router.post("/{number}/link", responses=ERRORS)
def link(number: str, body: LinkIn, request: Request,
         user: User = Depends(require_role("supervisor"))) -> dict[str, Any]:  # noqa: B008
    """Link a duplicate by hand: this order becomes a child (子单) of `master`."""
    ctx = ctx_of(request)
    return _call(lambda: _service(ctx).link(number, body.master, _actor(user)))
