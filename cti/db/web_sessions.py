"""The desktop's logins in the database: web sessions (only the token's hash is stored), the
login attempts (the login audit trail) with their limits, and their housekeeping.

The web layer holds a session factory and calls these; each function taking `sessions` is one
unit of work of its own. Token making and hashing stay in the web layer (agent_desktop.auth).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from cti.db import agents as db_agents
from cti.db import login_limits
from cti.db.models import Agent
from cti.db.models_web import WebLoginAttempt, WebSession
from cti.db.web_audit import AuditEntry
from cti.db.web_audit import add as add_audit

# what the web layer holds and passes down, without naming the ORM itself
Sessions: TypeAlias = sessionmaker[Session]
UnitOfWork: TypeAlias = Session

SESSIONS_KEPT = timedelta(days=7)  # past their absolute end
ATTEMPTS_KEPT = timedelta(days=90)


@dataclass(frozen=True)
class SessionUser:
    """Who a live web session belongs to."""

    user_id: str
    role: str
    name: str
    seat: str | None
    lang: str
    department: str | None = None  # a department user's (repair, marketing, metering)
    must_change_password: bool = False  # after an admin's reset: nothing else until changed


def add_session(s: Session, *, token_hash: str, user_id: str, role: str, seat: str | None,
                lang: str, now: datetime, expires_at: datetime) -> None:
    """Store a new session in the caller's unit of work (the caller commits)."""
    s.add(WebSession(token_hash=token_hash, user_id=user_id, role=role, seat=seat, lang=lang,
                     created_at=now, last_seen=now, expires_at=expires_at, ended_at=None))
    s.flush()


def open_session(sessions: Sessions, *, token_hash: str, user_id: str, role: str,
                 seat: str | None, lang: str, now: datetime, expires_at: datetime) -> str:
    """Store a new session; returns the user's name (their id if the account has none)."""
    with sessions.begin() as s:
        add_session(s, token_hash=token_hash, user_id=user_id, role=role, seat=seat, lang=lang,
                    now=now, expires_at=expires_at)
        info = db_agents.get_agent(s, user_id)
        return info.name if info else user_id


def session_user(sessions: Sessions, token_hash: str, clock: Callable[[], datetime], *,
                 idle: timedelta, touch_every: timedelta | None) -> SessionUser | None:
    """The user of a live session; None if unknown, logged out, idle, past its end or the
    account is deactivated. last_seen moves on when it is touch_every old (None: never)."""
    with sessions.begin() as s:
        row = s.execute(
            select(WebSession, Agent.name, Agent.active, Agent.department,
                   Agent.must_change_password)
            .join(Agent, Agent.agent_id == WebSession.user_id)
            .where(WebSession.token_hash == token_hash)
        ).one_or_none()
        if row is None:
            return None
        ws, name, active, department, must_change = row
        now = clock()
        if ws.ended_at is not None or not active or now >= ws.expires_at \
                or now >= ws.last_seen + idle:
            return None
        if touch_every is not None and now - ws.last_seen >= touch_every:
            ws.last_seen = now
        return SessionUser(user_id=ws.user_id, role=ws.role, name=name, seat=ws.seat,
                           lang=ws.lang, department=department,
                           must_change_password=bool(must_change))


def end_session(sessions: Sessions, token_hash: str, now: datetime) -> bool:
    """End the session with this token hash; False if there was no open one."""
    with sessions.begin() as s:
        ws = s.scalars(select(WebSession).where(WebSession.token_hash == token_hash,
                                                WebSession.ended_at.is_(None))).one_or_none()
        if ws is not None:
            ws.ended_at = now
            s.flush()
        return ws is not None


def end_sessions_of(sessions: Sessions, user_id: str, now: datetime,
                    audit: AuditEntry | None = None) -> int:
    """End every open session of user_id (logged out of the ACD), with audit's line (if any)
    in the same unit of work; returns how many ended."""
    with sessions.begin() as s:
        rows = s.scalars(select(WebSession).where(WebSession.user_id == user_id,
                                                  WebSession.ended_at.is_(None))).all()
        for ws in rows:
            ws.ended_at = now
        s.flush()
        if audit is not None:
            add_audit(s, audit)
        return len(rows)


def _housekeeping(s: Session, now: datetime, counters_idle: timedelta) -> None:
    """Old sessions, attempts and counters go; the attempts are the login audit trail."""
    s.execute(delete(WebSession).where(WebSession.expires_at < now - SESSIONS_KEPT))
    s.execute(delete(WebLoginAttempt).where(WebLoginAttempt.at < now - ATTEMPTS_KEPT))
    login_limits.purge(s, now - counters_idle)


def attempt_login(sessions: Sessions, *, user_id: str, password: str, client_ip: str,
                  now: datetime, policy: login_limits.LoginPolicy
                  ) -> db_agents.AgentInfo | None | int:
    """The account, None for bad credentials, or the seconds to wait (rate-limited). Every
    attempt is on record (web_login_attempts); docs/api.md "Login limits"."""
    # counted first, in one transaction
    with sessions.begin() as s:
        key = login_limits.key_for(s, user_id, client_ip)
        wait = login_limits.take_attempt(s, key, now, policy)
        if wait:
            s.add(WebLoginAttempt(user_id=user_id, client_ip=client_ip, at=now, ok=False))
            return wait
    # the argon2 check (~50 ms of CPU on purpose) in a transaction of its own; it may replace
    # a hash made with older parameters
    with sessions.begin() as s:
        info = db_agents.verify_login(s, user_id, password)
    with sessions.begin() as s:
        s.add(WebLoginAttempt(user_id=user_id, client_ip=client_ip, at=now,
                              ok=info is not None))
        if info is not None:
            login_limits.forgive(s, key)
        _housekeeping(s, now, timedelta(seconds=policy.window_s))
    return info
