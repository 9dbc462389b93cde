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
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent_desktop.context import WebContext
from cti.db.models_web import WebSession

log = logging.getLogger(__name__)

COOKIE = "hotline_session"
ROLES = ("agent", "supervisor", "admin")
# a role may do what the roles after it in its tuple may
IMPLIES: dict[str, tuple[str, ...]] = {
    "admin": ("admin", "supervisor", "agent"),
    "supervisor": ("supervisor", "agent"),
    "agent": ("agent",),
}
# who may force whom: a supervisor acts on agents, only an admin on a supervisor or an admin
RANK: dict[str, int] = {"agent": 0, "supervisor": 1, "admin": 2}
# last_seen is written at most this often: one write per request would serialize SQLite
TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class User:
    user_id: str
    role: str  # agent | supervisor | admin
    name: str
    seat: str | None
    lang: str = "zh"

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


def session_user(s: Session, ctx: WebContext, token: str | None, *,
                 touch: bool = True) -> User | None:
    """The user of a live session token; None if unknown, logged out, idle or past its end."""
    if not token or len(token) > 200:
        return None
    from cti.db.models import Agent

    row = s.execute(
        select(WebSession, Agent.name, Agent.active)
        .join(Agent, Agent.agent_id == WebSession.user_id)
        .where(WebSession.token_hash == token_hash(token))
    ).one_or_none()
    if row is None:
        return None
    ws, name, active = row
    now = ctx.clock()
    idle = timedelta(seconds=ctx.settings.web.session_idle_s)
    if ws.ended_at is not None or not active or now >= ws.expires_at \
            or now >= ws.last_seen + idle:
        return None
    if touch and now - ws.last_seen >= TOUCH_EVERY:
        ws.last_seen = now
    return User(user_id=ws.user_id, role=ws.role, name=name, seat=ws.seat, lang=ws.lang)


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
    with ctx.sessions.begin() as s:
        user = session_user(s, ctx, token)
    if user is None:
        raise HTTPException(401, "session expired or unknown; log in again")
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


def start_session(s: Session, ctx: WebContext, *, user_id: str, role: str,
                  seat: str | None, lang: str, now: datetime) -> tuple[str, datetime]:
    """Store a new session; returns the cookie token (never stored) and its absolute end."""
    token = new_token()
    expires = now + timedelta(seconds=ctx.settings.web.session_absolute_s)
    s.add(WebSession(token_hash=token_hash(token), user_id=user_id, role=role, seat=seat,
                     lang=lang, created_at=now, last_seen=now, expires_at=expires,
                     ended_at=None))
    s.flush()
    return token, expires


def end_session(s: Session, token: str, now: datetime) -> WebSession | None:
    ws = s.scalars(select(WebSession).where(WebSession.token_hash == token_hash(token),
                                            WebSession.ended_at.is_(None))).one_or_none()
    if ws is not None:
        ws.ended_at = now
        s.flush()
    return ws


def end_sessions_of(s: Session, user_id: str, now: datetime) -> int:
    """End every open session of user_id (the agent was logged out of the ACD)."""
    rows = s.scalars(select(WebSession).where(WebSession.user_id == user_id,
                                              WebSession.ended_at.is_(None))).all()
    for ws in rows:
        ws.ended_at = now
    s.flush()
    return len(rows)
