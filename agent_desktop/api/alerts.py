"""Keyword alerts over the web API (post-call transcription, issue 13): the list (the
wallboard's REST fallback for the pushed alerts), the prefilled complaint form, turning an alert
into a complaint work order linked to its call, and dismissing it; supervisors and admins only.

As with recordings, the role is checked here so that a refusal is on the audit trail too: every
access and every refusal writes one audit_log line (action keyword_alert.*).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from agent_desktop.api.auth import client_ip
from agent_desktop.audit import audit, entry
from agent_desktop.auth import User, ctx_of, current_user
from agent_desktop.context import WebContext
from callcenter.keyword_alerts import AlertHandled, AlertNotFound, KeywordAlertService
from workorders import lifecycle as lc
from workorders.service import Actor

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/alerts/keywords", tags=["alerts"])
FORBIDDEN = "only supervisors and admins may see and handle keyword alerts"
MAX_INT = 2**31 - 1
AlertId = Annotated[int, Path(ge=1, le=MAX_INT)]
Status = Literal["open", "order_created", "dismissed", "all"]


class ComplaintIn(BaseModel):
    description: str | None = Field(default=None, max_length=4000,
                                    description="the order's description; left out or empty: "
                                    "the prefilled one (keywords and excerpt)")


def _service(ctx: WebContext) -> KeywordAlertService:
    if not isinstance(ctx.keyword_alerts, KeywordAlertService):
        raise HTTPException(409, "keyword alerts are not running")
    return ctx.keyword_alerts


def _check(ctx: WebContext, request: Request, user: User, action: str,
           target: str | None) -> None:
    if not user.is_supervisor:
        audit(ctx.sessions, at=ctx.clock(), user=user, action=action, target=target,
              allowed=False, client_ip=client_ip(request), reason="role")
        log.info("keyword alert access refused: %s (%s) %s %s", user.user_id, user.role,
                 action, target)
        raise HTTPException(403, FORBIDDEN)


def _line(ctx: WebContext, request: Request, user: User, action: str,
          target: str | None, **detail: Any) -> Any:
    return entry(at=ctx.clock(), user=user, action=action, target=target, allowed=True,
                 client_ip=client_ip(request), **detail)


def _refused(ctx: WebContext, request: Request, user: User, action: str, target: str,
             status: int, reason: str, message: str) -> HTTPException:
    audit(ctx.sessions, at=ctx.clock(), user=user, action=action, target=target,
          allowed=False, client_ip=client_ip(request), reason=reason)
    return HTTPException(status, message)


@router.get("")
def list_alerts(request: Request,
                status: Annotated[Status, Query(description="open (default), order_created, "
                                                "dismissed or all")] = "open",
                limit: Annotated[int, Query(ge=1, le=500)] = 100,
                offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
                user: User = Depends(current_user)) -> list[dict[str, Any]]:  # noqa: B008
    """Keyword alerts, newest first."""
    ctx = ctx_of(request)
    action = "keyword_alert.list"
    _check(ctx, request, user, action, None)
    return _service(ctx).list(None if status == "all" else status, limit, offset,
                              _line(ctx, request, user, action, None, status=status))


@router.get("/{alert_id}/prefill")
def prefill(alert_id: AlertId, request: Request,
            user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """The complaint form's fields: type, caller_number, account_number, call_id, description
    (keywords and excerpt), with the alert's keywords, excerpt and status."""
    ctx = ctx_of(request)
    action = "keyword_alert.prefill"
    _check(ctx, request, user, action, str(alert_id))
    try:
        return _service(ctx).prefill(alert_id, _line(ctx, request, user, action, str(alert_id)))
    except AlertNotFound as exc:
        raise _refused(ctx, request, user, action, str(alert_id), 404, "not_found",
                       str(exc)) from None


@router.post("/{alert_id}/complaint", status_code=201)
def complaint(alert_id: AlertId, request: Request,
              body: Annotated[ComplaintIn | None, Body()] = None,
              user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Create the complaint work order (投诉) for the alert's call (caller, account and call id
    from the call) and mark the alert order_created with its number; the order. 409 when the
    alert was handled already."""
    ctx = ctx_of(request)
    action = "keyword_alert.complaint"
    target = str(alert_id)
    _check(ctx, request, user, action, target)
    service = _service(ctx)
    try:
        return service.complaint(alert_id, Actor(user.user_id, lc.Role(user.role)),
                                 body.description if body is not None else None,
                                 _line(ctx, request, user, action, target))
    except AlertNotFound as exc:
        raise _refused(ctx, request, user, action, target, 404, "not_found", str(exc)) from None
    except AlertHandled as exc:
        raise _refused(ctx, request, user, action, target, 409, "handled", str(exc)) from None
    except lc.RoleNotAllowed as exc:
        raise _refused(ctx, request, user, action, target, 403, "role", str(exc)) from None
    except (lc.WorkOrderError, ValueError) as exc:
        raise _refused(ctx, request, user, action, target, 400, "invalid", str(exc)) from None


@router.post("/{alert_id}/dismiss")
def dismiss(alert_id: AlertId, request: Request,
            user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """Close the alert without an order; the alert (status dismissed). 409 when handled."""
    ctx = ctx_of(request)
    action = "keyword_alert.dismiss"
    target = str(alert_id)
    _check(ctx, request, user, action, target)
    try:
        return _service(ctx).dismiss(alert_id, user.user_id,
                                     _line(ctx, request, user, action, target))
    except AlertNotFound as exc:
        raise _refused(ctx, request, user, action, target, 404, "not_found", str(exc)) from None
    except AlertHandled as exc:
        raise _refused(ctx, request, user, action, target, 409, "handled", str(exc)) from None
