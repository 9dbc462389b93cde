"""Who is asking: web sessions (hashed cookie tokens, idle and absolute expiry) and role checks.

Routers use the FastAPI dependencies:

    user: User = Depends(current_user)
    user: User = Depends(require_role("supervisor"))   # admin may do what a supervisor may

Roles are checked here, on the server; the browser only hides what it may not use.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Depends, HTTPException, Request

from agent_desktop.context import WebContext
from cti.db import web_sessions
from cti.db.web_sessions import UnitOfWork

log = logging.getLogger(__name__)

COOKIE = "hotline_session"
ROLES = ("agent", "supervisor", "admin", "department")
# a role may do what the roles after it in its tuple may
IMPLIES: dict[str, tuple[str, ...]] = {
    "admin": ("admin", "supervisor", "agent"),
    "supervisor": ("supervisor", "agent"),
    "agent": ("agent",),
    # a repair crew's, marketing's or metering's user: their department's orders, nothing else
    "department": ("department",),
}
# who may force whom: a supervisor acts on agents, only an admin on a supervisor or an admin
RANK: dict[str, int] = {"agent": 0, "department": 0, "supervisor": 1, "admin": 2}
# what a department user may reach (issue 15 §1), and a user who must change their password
# first (after an admin's reset): every other /api path answers 403 for them, whatever the
# route itself checks, so no endpoint written for agents can leak to them by omission
DEPARTMENT_PATHS = ("/api/auth/", "/api/department/")
PASSWORD_CHANGE_PATHS = ("/api/auth/",)
# last_seen is written at most this often: one write per request would serialize SQLite
TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class User:
    user_id: str
    role: str  # agent | supervisor | admin | department
    name: str
    seat: str | None
    lang: str = "zh"
    department: str | None = None  # a department user's
    must_change_password: bool = False

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("supervisor", "admin")

    def may(self, role: str) -> bool:
        return role in IMPLIES.get(self.role, ())


def outranks(user: User, target_role: str) -> bool:
    """May user force (state, logout) someone whose role is target_role: a higher rank, or an
    admin (who may act on anyone)."""
    mine = RANK.get(user.role, -1)
    return mine == RANK["admin"] or mine > RANK.get(target_role, RANK["admin"])


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def ctx_of(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.ctx
    return ctx


def session_user(ctx: WebContext, token: str | None, *, touch: bool = True) -> User | None:
    """The user of a live session token; None if unknown, logged out, idle or past its end."""
    if not token or len(token) > 200:
        return None
    found = web_sessions.session_user(
        ctx.sessions, token_hash(token), ctx.clock,
        idle=timedelta(seconds=ctx.settings.web.session_idle_s),
        touch_every=TOUCH_EVERY if touch else None)
    if found is None:
        return None
    return User(user_id=found.user_id, role=found.role, name=found.name, seat=found.seat,
                lang=found.lang, department=found.department,
                must_change_password=found.must_change_password)


def request_token(request: Request) -> str | None:
    """The session cookie; an API client may send `Authorization: Bearer <token>` instead."""
    token = request.cookies.get(COOKIE)
    if token:
        return token
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def current_user(request: Request) -> User:
    """FastAPI dependency: the logged-in user, or 401."""
    ctx = ctx_of(request)
    token = request_token(request)
    if not token:
        raise HTTPException(401, "not logged in")
    user = session_user(ctx, token)
    if user is None:
        raise HTTPException(401, "session expired or unknown; log in again")
    path = request.url.path
    if user.must_change_password and not path.startswith(PASSWORD_CHANGE_PATHS):
        raise HTTPException(403, "change your password first (an admin reset it)")
    if user.role == "department" and not path.startswith(DEPARTMENT_PATHS):
        raise HTTPException(403, "a department user works their department's orders only")
    request.state.user = user
    return user


def require_role(*roles: str) -> Callable[..., User]:
    """FastAPI dependency factory: the user if their role implies one of roles, else 403."""
    for r in roles:
        if r not in ROLES:
            raise ValueError(f"unknown role {r!r}; roles are {ROLES}")

    def dependency(user: User = Depends(current_user)) -> User:  # noqa: B008 - FastAPI style
        if not any(user.may(r) for r in roles):
            log.info("refused: %s (%s) needs role %s", user.user_id, user.role, "/".join(roles))
            raise HTTPException(403, f"requires role {' or '.join(roles)}")
        return user

    return dependency


def require_self_or_supervisor(user: User, agent_id: str) -> None:
    """403 unless the user is agent_id or a supervisor/admin (another agent's data)."""
    if user.user_id != agent_id and not user.is_supervisor:
        raise HTTPException(403, "an agent may only see and change their own data")


def start_session(s: UnitOfWork, ctx: WebContext, *, user_id: str, role: str,
                  seat: str | None, lang: str, now: datetime) -> tuple[str, datetime]:
    """Store a new session in the caller's unit of work s (tests seed sessions so); returns
    the cookie token (never stored) and its absolute end."""
    token = new_token()
    expires = now + timedelta(seconds=ctx.settings.web.session_absolute_s)
    web_sessions.add_session(s, token_hash=token_hash(token), user_id=user_id, role=role,
                             seat=seat, lang=lang, now=now, expires_at=expires)
    return token, expires


def open_session(ctx: WebContext, *, user_id: str, role: str, seat: str | None, lang: str,
                 now: datetime) -> tuple[str, datetime, str]:
    """Store a new session; returns the cookie token (never stored), its absolute end and the
    user's name."""
    token = new_token()
    expires = now + timedelta(seconds=ctx.settings.web.session_absolute_s)
    name = web_sessions.open_session(ctx.sessions, token_hash=token_hash(token),
                                     user_id=user_id, role=role, seat=seat, lang=lang, now=now,
                                     expires_at=expires)
    return token, expires, name


def end_session(ctx: WebContext, token: str, now: datetime) -> bool:
    """End the session of this token; False if it was not open."""
    return web_sessions.end_session(ctx.sessions, token_hash(token), now)
