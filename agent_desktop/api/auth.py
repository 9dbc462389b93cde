"""Login, logout and who-am-I: argon2 passwords, rate-limited, sessions in an HttpOnly cookie."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from acd import engine as acd
from agent_desktop.auth import (
    COOKIE,
    User,
    ctx_of,
    current_user,
    end_session,
    open_session,
    request_token,
    session_user,
)
from agent_desktop.context import WebContext
from callcenter.acd_service import Command
from callcenter.agent_commands import Principal
from cti.db import login_limits, staff, web_sessions

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/auth", tags=["auth"])

SUP_PHONE = re.compile(r"^sup\d{2}$")
# why the ACD refused a seat login -> (HTTP status, message)
SEAT_ERRORS: dict[str, tuple[int, str]] = {
    "bad_seat": (400, "unknown seat"),
    "logged_in_elsewhere": (409, "already logged in at another seat"),
    "busy": (409, "the ACD is busy; try again"),
    "timeout": (409, "the ACD did not answer; try again"),
}


class LoginIn(BaseModel):
    user_id: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_-]+$",
                         examples=["A001"])
    password: str = Field(min_length=1, max_length=256)
    seat: str | None = Field(default=None, max_length=16, examples=["seat01"],
                             description="agents: seat01..seat50 (required); supervisors: "
                                         "their phone sup01..sup05 (optional)")
    lang: Literal["zh", "en"] = "zh"


class Me(BaseModel):
    user_id: str
    role: Literal["agent", "supervisor", "admin", "department"]
    name: str
    seat: str | None
    lang: str = "zh"
    expires_at: datetime | None = None
    department: str | None = Field(default=None, description="a department user's: repair, "
                                                             "marketing or metering")
    must_change_password: bool = Field(
        default=False, description="an admin reset the password: POST /api/auth/password "
                                   "before anything else (every other path answers 403)")


class PasswordIn(BaseModel):
    current: str = Field(min_length=1, max_length=256)
    new: str = Field(min_length=1, max_length=256)


def client_ip(request: Request) -> str:
    return (request.client.host if request.client else "unknown")[:64]


def login_policy(ctx: WebContext) -> login_limits.LoginPolicy:
    web = ctx.settings.web
    return login_limits.LoginPolicy(
        free_failures=web.login_max_failures, ip_free_failures=web.login_ip_max_failures,
        backoff_max_s=web.login_backoff_max_s, window_s=web.login_window_s)


def _verify(ctx: WebContext, body: LoginIn, ip: str) -> Principal | None | int:
    """The principal, None for bad credentials, or the seconds to wait (rate-limited)."""
    info = web_sessions.attempt_login(ctx.sessions, user_id=body.user_id,
                                      password=body.password, client_ip=ip, now=ctx.clock(),
                                      policy=login_policy(ctx))
    if info is None or isinstance(info, int):
        return info
    return Principal(info.agent_id, info.role, dict(info.skills))


def _set_cookie(response: Response, ctx: WebContext, token: str) -> None:
    response.set_cookie(COOKIE, token, max_age=ctx.settings.web.session_absolute_s,
                        httponly=True, samesite="strict",
                        secure=ctx.settings.web.cookie_secure or bool(ctx.settings.web.tls),
                        path="/")


@router.post("/login", response_model=Me,
             responses={401: {"description": "bad credentials"},
                        409: {"description": "seat taken or the agent is logged in elsewhere"},
                        429: {"description": "too many failed logins; wait"}})
async def login(body: LoginIn, request: Request, response: Response) -> Me:
    """Log in. An agent also logs in to the ACD at the seat (state not_ready, reason login)."""
    ctx = ctx_of(request)
    ip = client_ip(request)
    who = await run_in_threadpool(_verify, ctx, body, ip)
    if isinstance(who, int):
        log.warning("login rate-limited user_id=%s ip=%s wait=%ss", body.user_id, ip, who)
        raise HTTPException(429, "too many failed logins; try again later",
                            headers={"Retry-After": str(who)})
    if who is None:
        raise HTTPException(401, "wrong user id or password")
    if body.password == staff.DEMO_PASSWORD and not ctx.settings.demo:
        # the shared demo password on a real deployment: an admin resets it (`hotline staff
        # reset-password`), which gives a temporary one to change at the next login
        log.warning("login refused: the demo password, on a deployment not marked demo "
                    "user_id=%s ip=%s", body.user_id, ip)
        raise HTTPException(403, f"the demo password {staff.DEMO_PASSWORD} is refused here; "
                                 "ask an admin to reset your password")
    seat = body.seat
    if who.role == "department":
        if seat is not None:
            raise HTTPException(400, "a department user logs in without a seat")
    elif who.role == "agent":
        if not seat:
            raise HTTPException(400, "agents log in at a seat (seat01..seat50)")
        if ctx.agent_commands is not None:
            doc = await ctx.agent_commands.seat_login(who, seat)
            if not doc.get("ok"):
                status, msg = SEAT_ERRORS.get(str(doc.get("error")),
                                              (409, f"login refused: {doc.get('error')}"))
                if doc.get("seat"):
                    msg = f"{msg} ({doc['seat']})"
                raise HTTPException(status, msg)
        elif not re.fullmatch(r"seat\d{2,3}", seat):
            raise HTTPException(400, "unknown seat")
    elif seat is not None and not SUP_PHONE.match(seat):
        raise HTTPException(400, "a supervisor's seat is their phone, sup01..sup05")

    def store() -> tuple[str, datetime, str]:
        return open_session(ctx, user_id=who.user_id, role=who.role, seat=seat,
                            lang=body.lang, now=ctx.clock())

    token, expires, name = await run_in_threadpool(store)
    _set_cookie(response, ctx, token)
    log.info("web login user_id=%s role=%s seat=%s ip=%s", who.user_id, who.role, seat, ip)
    user = await run_in_threadpool(lambda: session_user(ctx, token, touch=False))
    return Me(user_id=who.user_id, role=who.role, name=name, seat=seat,  # type: ignore[arg-type]
              lang=body.lang, expires_at=expires,
              department=user.department if user else None,
              must_change_password=bool(user and user.must_change_password))


@router.post("/logout", status_code=204, response_class=Response,
             responses={401: {"description": "not logged in"}})
async def logout(request: Request, user: User = Depends(current_user)) -> Response:  # noqa: B008
    """End this session. An agent is logged out of the ACD too (签出)."""
    ctx = ctx_of(request)
    if user.role == "agent" and ctx.acd is not None:
        agent = ctx.acd.view.agents.get(user.user_id)
        if agent is not None and str(agent.state) != "logged_out":
            ctx.acd.submit(Command(acd.AgentLogout(agent_id=user.user_id), actor=user.user_id))
    token = request_token(request) or ""

    await run_in_threadpool(lambda: end_session(ctx, token, ctx.clock()))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/me", response_model=Me, responses={401: {"description": "not logged in"}})
def me(user: User = Depends(current_user)) -> Me:  # noqa: B008
    """Who is logged in with this session."""
    return Me(user_id=user.user_id, role=user.role, name=user.name,  # type: ignore[arg-type]
              seat=user.seat, lang=user.lang, department=user.department,
              must_change_password=user.must_change_password)


@router.post("/password", status_code=204, response_class=Response,
             responses={401: {"description": "not logged in"},
                        400: {"description": "the current password is wrong, or the new one "
                                             "is refused (too short, the demo's, unchanged)"}})
async def change_password(body: PasswordIn, request: Request,
                          user: User = Depends(current_user)) -> Response:  # noqa: B008
    """Change your own password (required after an admin's reset). Audited."""
    ctx = ctx_of(request)
    ip = client_ip(request)

    def change() -> str | None:
        try:
            staff.in_unit(ctx.sessions, staff.change_own_password, user.user_id, body.current,
                          body.new, demo=ctx.settings.demo, now=ctx.clock(), client_ip=ip)
        except staff.StaffError as exc:
            return str(exc)
        return None

    refused = await run_in_threadpool(change)
    if refused is not None:
        raise HTTPException(400, refused)
    log.info("password changed user_id=%s ip=%s", user.user_id, ip)
    return Response(status_code=204)


class MqttCredentialOut(BaseModel):
    username: str = Field(examples=["A001"])
    password: str
    host: str = Field(examples=["127.0.0.1"])
    port: int = Field(examples=[1884])
    tls_port: int | None = Field(default=None, examples=[8884],
                                 description="the broker's TLS listener; null when it has none")


@router.get("/mqtt", response_model=MqttCredentialOut,
            responses={401: {"description": "not logged in"},
                       403: {"description": "not a staff role"},
                       503: {"description": "the broker has no user for you yet (hotline up "
                                            "makes one per active staff member)"}})
async def mqtt_credential(request: Request, response: Response,
                          user: User = Depends(current_user)) -> MqttCredentialOut:  # noqa: B008
    """Your own credential for the hotline's MQTT broker (docs/mqtt.md): the broker's ACL lets
    it write only your command topic and read only your state, pops and replies (supervisors
    also the public state topics). Only ever your own; each hand-out is audited."""
    from agent_desktop.audit import audit
    from asterisk_conf.mosquitto import credential

    ctx = ctx_of(request)
    if user.role not in ("agent", "supervisor", "admin"):
        raise HTTPException(403, "no MQTT access for this role")
    settings = ctx.settings
    password = await run_in_threadpool(credential, settings.state_dir, user.user_id)

    def record() -> None:
        audit(ctx.sessions, at=ctx.clock(), user=user, action="mqtt.credential",
              target=user.user_id, allowed=password is not None, client_ip=client_ip(request))

    await run_in_threadpool(record)
    if password is None:
        raise HTTPException(503, "no MQTT credential for you yet: `hotline up` makes one per "
                                 "active staff member")
    response.headers["Cache-Control"] = "no-store"
    return MqttCredentialOut(username=user.user_id, password=password, host=settings.mqtt.host,
                             port=settings.mqtt.port, tls_port=settings.mqtt.tls_port or None)
