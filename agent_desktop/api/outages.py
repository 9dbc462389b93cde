"""Outage notices (停电通知) and storm mode (恶劣天气应急) over HTTP: list, publish, update,
confirm, close; the outage board's figures; the notices covering one account; the storm switch.

Supervisors and admins change notices and the storm switch; every change is one transaction
with its audit line (actor, role, client ip) and its MQTT message after the commit
(callcenter.outage_service). An agent's attempt to change one is refused with 403 and is on
record too (audit_log, allowed false). Agents read the active notices, the storm state, and the
notices covering an account of a call of theirs (call_id names the call; the account must be
the one keyed in the IVR or one registered to the caller's number).

Errors are JSON {"detail": ...}: a notice that cannot be published as given (no scope, an
unknown area, feeder or order, a restoration before the start, a planned cause without its
schedule) is a 400 with the reason; an unknown or closed notice a 404; a schema mismatch or bad
JSON a 422. A time without a zone is the center's local time, as the console shows it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from agent_desktop.api.auth import client_ip
from agent_desktop.audit import audit
from agent_desktop.auth import User, ctx_of, current_user
from agent_desktop.context import WebContext
from cti.db import outage_board
from cti.db.outages import MAX_AGENT_TEXT, MAX_SCOPE_ROWS, NoticeDraft, NoticeNotFound
from outages.scope import CAUSES, Cause, InvalidNotice

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["outages"])

T = TypeVar("T")
MAX_ID = 2**31 - 1  # beyond it the driver overflows (a 500); a 422 instead
OutageId = Annotated[int, Path(ge=1, le=MAX_ID, description="the notice's id")]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the notice cannot be published as given; the detail says why"},
    401: {"description": "not logged in"},
    403: {"description": "supervisors and admins only, or not your call"},
    404: {"description": "no such notice (or it is closed), account or call"},
    409: {"description": "outage notices are not running here"},
}


class TransformerAreaIn(BaseModel):
    area_id: int = Field(ge=1, le=MAX_ID, description="the area the 台区 is named in")
    name: str = Field(min_length=1, max_length=64, description="the 台区's name")


class NoticeIn(BaseModel):
    """A notice as published or (whole) updated: at least one of areas, feeders, 台区."""

    cause: str = Field(max_length=24, examples=["fault"],
                       description="fault, planned, storm_repair, temporary, upstream, "
                       "external_damage, load_limiting, reported")
    areas: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, max_length=MAX_SCOPE_ROWS)
    feeders: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, max_length=MAX_SCOPE_ROWS)
    transformer_areas: list[TransformerAreaIn] = Field(default_factory=list,
                                                       max_length=MAX_SCOPE_ROWS)
    start_at: datetime | None = Field(default=None, description="left out: now")
    expected_restore_at: datetime | None = None
    schedule_end_at: datetime | None = Field(
        default=None, description="required for planned, temporary and load_limiting")
    agent_text: str = Field(default="", max_length=MAX_AGENT_TEXT,
                            description="free text for agents; never spoken")
    master_order: str | None = Field(default=None, pattern=r"^[0-9]{11}$",
                                     description="the repair order (主单) covering it")


class StormIn(BaseModel):
    on: bool
    detail: str = Field(default="", max_length=255, description="why, for the audit trail")


def _service(ctx: WebContext) -> Any:
    if ctx.outages is None:
        raise HTTPException(409, "outage notices are not running")
    return ctx.outages


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except NoticeNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except (InvalidNotice, ValueError) as exc:
        raise HTTPException(400, str(exc) or "invalid notice") from None


def _who(request: Request, user: User) -> Any:
    from callcenter.outage_service import Who

    return Who(user.user_id, user.role, client_ip(request))


def _supervisor(request: Request, user: User, action: str, target: str) -> None:
    """403 for an agent, with the refusal on record (the console's buttons are hidden from
    agents; a request that gets here anyway is worth knowing about)."""
    if user.is_supervisor:
        return
    ctx = ctx_of(request)
    audit(ctx.sessions, at=ctx.clock(), user=user, action=action, target=target, allowed=False,
          client_ip=client_ip(request))
    raise HTTPException(403, "requires role supervisor or admin")


def _when(value: datetime | None, ctx: WebContext) -> datetime | None:
    # a time without a zone is the center's local time, as the console shows it
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(ctx.settings.ivr.timezone))


def _draft(body: NoticeIn, ctx: WebContext) -> NoticeDraft:
    try:
        cause = Cause(body.cause)
    except ValueError:
        raise HTTPException(400, f"unknown cause {body.cause!r}: one of "
                            f"{', '.join(c.value for c in CAUSES)}") from None
    start = _when(body.start_at, ctx) or ctx.clock()
    return NoticeDraft(
        cause=cause, start_at=start, areas=frozenset(body.areas),
        feeders=frozenset(body.feeders),
        transformer_areas=frozenset((t.area_id, t.name.strip()) for t in body.transformer_areas),
        expected_restore_at=_when(body.expected_restore_at, ctx),
        schedule_end_at=_when(body.schedule_end_at, ctx),
        agent_text=body.agent_text.strip(), master_order=body.master_order)


# ------------------------------------------------------------------------------- reading


@router.get("/outages", responses=ERRORS)
def list_outages(request: Request,
                 closed: Annotated[int, Query(ge=0, le=500, description="how many of the "
                                              "last closed notices")] = 50,
                 user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Supervisors: the active notices (heard by callers now), the suspected ones waiting for
    confirmation, the upcoming ones and the last closed ones. Agents: the active ones."""
    ctx = ctx_of(request)
    return outage_board.listing(ctx.sessions, ctx.clock(), closed=closed,
                                everything=user.is_supervisor)


@router.get("/outages/places", responses=ERRORS)
def places(request: Request, user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """What a scope can name: areas, feeders and the 台区 of the accounts."""
    _supervisor(request, user, "outage.places", "outages")
    return outage_board.scope_places(ctx_of(request).sessions)


@router.get("/outages/board", responses=ERRORS)
def board(request: Request, user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """The outage board (大屏): per active notice the customers affected, the calls about it in
    the last 15 minutes, how many heard it and were deflected, the master order's SLA clock;
    the suspected outages waiting for confirmation; the storm switch."""
    _supervisor(request, user, "outage.board", "outages")
    ctx = ctx_of(request)
    return outage_board.board_doc(ctx.sessions, ctx.clock())


@router.get("/outages/account/{account_no}", responses=ERRORS)
def for_account(request: Request,
                account_no: Annotated[str, Path(max_length=32, pattern=r"^[0-9A-Za-z-]+$")],
                call_id: Annotated[str | None, Query(max_length=64,
                                                     pattern=r"^[0-9A-Za-z._:@-]+$")] = None,
                user: User = Depends(current_user)) -> list[dict[str, Any]]:  # noqa: B008
    """The notices covering the account now. An agent names the call (call_id) the account
    belongs to: the one keyed in the IVR or one registered to the caller's number."""
    ctx = ctx_of(request)
    if not user.is_supervisor:
        if call_id is None:
            raise HTTPException(403, "an agent asks for the account of a call of theirs "
                                "(call_id)")
        from agent_desktop.api.calls import _live, _load

        row = _load(ctx, user, call_id)  # 404 no such call, 403 not theirs
        live = _live(ctx).get(call_id)
        keyed = {getattr(live, "account", None), row.account_no if row else None}
        caller = row.caller_number if row is not None else getattr(live, "caller", "")
        if account_no not in keyed and account_no not in outage_board.caller_accounts(
                ctx.sessions, caller or ""):
            raise HTTPException(403, "that account is not this call's")
    found = outage_board.account_notices(ctx.sessions, account_no, ctx.clock())
    if found is None:
        raise HTTPException(404, f"no account {account_no}")
    return found


@router.get("/outages/{outage_id}", responses=ERRORS)
def get_outage(request: Request, outage_id: OutageId,
               user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """One notice, closed ones too."""
    _supervisor(request, user, "outage.read", f"outage:{outage_id}")
    ctx = ctx_of(request)
    return _call(lambda: outage_board.notice_by_id(ctx.sessions, outage_id, ctx.clock()))


# ------------------------------------------------------------------------------- changing


def _change(request: Request, user: User, action: str, target: int | str,
            work: Callable[[Any, Any, datetime], Any]) -> dict[str, Any]:
    """One change to a notice: a supervisor's (a refusal audited), made through the service
    (which audits it), answered with the notice as it now is. `target` is the notice's id, or
    'outages' for a new one (`work` then returns its id)."""
    _supervisor(request, user, action,
                f"outage:{target}" if isinstance(target, int) else target)
    ctx = ctx_of(request)
    svc = _service(ctx)
    now = ctx.clock()
    done = _call(lambda: work(svc, _who(request, user), now))
    outage_id = target if isinstance(target, int) else done
    return _call(lambda: outage_board.notice_by_id(ctx.sessions, outage_id, now))


@router.post("/outages", status_code=201, responses=ERRORS)
def publish(body: NoticeIn, request: Request,
            user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Publish a notice: callers in its scope hear it from the next call (once it has started,
    and for planned work while its schedule runs)."""
    ctx = ctx_of(request)
    return _change(request, user, "outage.publish", "outages",
                   lambda svc, who, now: svc.publish(_draft(body, ctx), who, now))


@router.put("/outages/{outage_id}", responses=ERRORS)
def update(body: NoticeIn, request: Request, outage_id: OutageId,
           user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Replace an open notice's cause, scope, times, text and master order."""
    ctx = ctx_of(request)
    return _change(request, user, "outage.update", outage_id,
                   lambda svc, who, now: svc.update(outage_id, _draft(body, ctx), who, now))


@router.post("/outages/{outage_id}/confirm", responses=ERRORS)
def confirm(request: Request, outage_id: OutageId,
            user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Confirm a suspected outage: callers in its scope hear it from the next call."""
    return _change(request, user, "outage.confirm", outage_id,
                   lambda svc, who, now: svc.confirm(outage_id, who, now))


@router.post("/outages/{outage_id}/close", responses=ERRORS)
def close(request: Request, outage_id: OutageId,
          user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Power is back (or the notice was wrong): nobody hears it from the next call."""
    return _change(request, user, "outage.close", outage_id,
                   lambda svc, who, now: svc.close(outage_id, who, now))


# ------------------------------------------------------------------------------- storm mode


@router.get("/storm", responses=ERRORS)
def storm(request: Request, _user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Storm mode: on or off, since when, who or what switched it (trigger manual or auto)."""
    return outage_board.storm_state(ctx_of(request).sessions)


@router.post("/storm", responses=ERRORS)
def set_storm(body: StormIn, request: Request,
              user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Switch storm mode on or off; `changed` false when it already was so (nothing is then
    written or sent)."""
    _supervisor(request, user, "storm.on" if body.on else "storm.off", "storm")
    ctx = ctx_of(request)
    svc = _service(ctx)
    changed = _call(lambda: svc.set_storm(body.on, _who(request, user), ctx.clock(),
                                          detail=body.detail.strip()))
    return {**outage_board.storm_state(ctx.sessions), "changed": changed}


@router.get("/storm/history", responses=ERRORS)
def storm_history(request: Request,
                  user: User = Depends(current_user)) -> list[dict[str, Any]]:  # noqa: B008
    """Who switched storm mode and when, newest first (the audit trail)."""
    _supervisor(request, user, "storm.read", "storm")
    return outage_board.audit_history(ctx_of(request).sessions, "storm")


@router.get("/outages/{outage_id}/notice-calls", responses=ERRORS)
def notice_calls(request: Request, outage_id: OutageId,
                 user: User = Depends(current_user)) -> list[dict[str, Any]]:  # noqa: B008
    """A planned outage's calls to its affected important customers (issue 14 §4): per
    customer's phone and lead (7, 1 days), the job's state, tries, last outcome, and how the
    call went (heard: true to the end, false hung up early, null not answered; repeats)."""
    from callcenter.outage_notices import notice_calls as calls_of

    _supervisor(request, user, "outage.read", f"outage:{outage_id}")
    ctx = ctx_of(request)
    return _call(lambda: calls_of(ctx.sessions, outage_id))


@router.get("/outages/{outage_id}/history", responses=ERRORS)
def history(request: Request, outage_id: OutageId,
            user: User = Depends(current_user)) -> list[dict[str, Any]]:  # noqa: B008
    """Who published, updated, confirmed or closed the notice and when, newest first."""
    _supervisor(request, user, "outage.read", f"outage:{outage_id}")
    return outage_board.audit_history(ctx_of(request).sessions, f"outage:{outage_id}")
