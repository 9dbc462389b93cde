"""Agents and supervisors: accounts and logins, seat sessions, the state audit log, ACD snapshot."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cti.db.jsonready import json_ready
from cti.db.models import (
    AGENT_ROLES,
    AGENT_STATES,
    AcdSnapshot,
    Agent,
    AgentSession,
    AgentStateLog,
    Call,
)
from cti.db.upsert import insert_on_conflict

logger = logging.getLogger(__name__)

AGENT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,16}")
MAX_SEAT_LEN = 16
MAX_SKILL_LEN = 32
MAX_REASON_LEN = 64
MIN_PROFICIENCY, MAX_PROFICIENCY = 1, 5
# acd.agent_fsm enters not_ready with this reason on login, until the agent says ready.
LOGIN_REASON = "login"
# argon2-cffi's defaults are RFC 9106's low-memory profile (argon2id, t=3, m=64 MiB, p=4).
PASSWORD_HASHER = PasswordHasher()
SNAPSHOT_ROW_ID = 1


class AgentError(Exception):
    """A domain error of agent accounts and sessions; carries no HTTP or AMI detail."""


class AgentExists(AgentError):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"agent {agent_id} already exists")
        self.agent_id = agent_id


class UnknownAgent(AgentError):
    """No such agent, or the agent is deactivated."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"no active agent {agent_id}")
        self.agent_id = agent_id


class AlreadyLoggedIn(AgentError):
    def __init__(self, agent_id: str, seat: str) -> None:
        super().__init__(f"agent {agent_id} is already logged in at {seat}")
        self.agent_id = agent_id
        self.seat = seat


class SeatTaken(AgentError):
    def __init__(self, seat: str, agent_id: str | None) -> None:
        super().__init__(f"seat {seat} is taken by {agent_id or 'another agent'}")
        self.seat = seat
        self.agent_id = agent_id


class NotLoggedIn(AgentError):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"agent {agent_id} has no open session")
        self.agent_id = agent_id


@dataclass(frozen=True, slots=True)
class AgentInfo:
    agent_id: str
    name: str
    role: str
    skills: Mapping[str, int]  # read-only: skill -> proficiency 1..5
    active: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AgentSessionInfo:
    agent_id: str
    name: str
    role: str
    skills: Mapping[str, int]
    seat: str
    login_at: datetime
    logout_at: datetime | None
    state: str
    reason: str | None
    state_since: datetime
    call_id: str | None


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware datetime")


def check_skills(skills: Mapping[str, int]) -> dict[str, int]:
    checked: dict[str, int] = {}
    for skill, level in skills.items():
        if not isinstance(skill, str) or not 0 < len(skill) <= MAX_SKILL_LEN:
            raise ValueError(f"skill names are 1..{MAX_SKILL_LEN} characters, got {skill!r}")
        # bool is an int subclass; True is not a proficiency.
        if (isinstance(level, bool) or not isinstance(level, int)
                or not MIN_PROFICIENCY <= level <= MAX_PROFICIENCY):
            raise ValueError(f"proficiency of {skill!r} must be an int "
                             f"{MIN_PROFICIENCY}..{MAX_PROFICIENCY}, got {level!r}")
        checked[skill] = level
    return checked


def _check_seat(seat: str) -> None:
    if not 0 < len(seat) <= MAX_SEAT_LEN:
        raise ValueError(f"seat must be 1..{MAX_SEAT_LEN} characters, got {seat!r}")


def _reason(reason: str | None) -> str | None:
    # The ACD core says "" for no reason; the database says NULL.
    if reason and len(reason) > MAX_REASON_LEN:
        raise ValueError(f"reason longer than {MAX_REASON_LEN} characters: {reason!r}")
    return reason or None


def _skills_view(skills: Mapping[str, int] | None) -> Mapping[str, int]:
    return MappingProxyType(dict(skills or {}))


def _agent_info(agent: Agent) -> AgentInfo:
    return AgentInfo(agent_id=agent.agent_id, name=agent.name, role=agent.role,
                     skills=_skills_view(agent.skills), active=agent.active,
                     created_at=agent.created_at)


def _session_info(row: AgentSession, agent: Agent) -> AgentSessionInfo:
    return AgentSessionInfo(
        agent_id=row.agent_id, name=agent.name, role=agent.role,
        skills=_skills_view(agent.skills), seat=row.seat, login_at=row.login_at,
        logout_at=row.logout_at, state=row.state, reason=row.reason,
        state_since=row.state_since, call_id=row.call_id)


# ------------------------------------------------------------------------------ accounts


def create_agent(
    session: Session,
    *,
    agent_id: str,
    name: str,
    role: str,
    password: str,
    skills: Mapping[str, int],
    now: datetime | None = None,
    hasher: PasswordHasher = PASSWORD_HASHER,
    department: str | None = None,
) -> None:
    """Add an active agent with an argon2id password hash; AgentExists if the id is taken.
    `department`: a department user's (role department), else None.

    now defaults to the current time (created_at is informational, nothing depends on it).
    """
    if not AGENT_ID_RE.fullmatch(agent_id):
        raise ValueError(f"agent_id must match {AGENT_ID_RE.pattern}, got {agent_id!r}")
    if not 0 < len(name) <= 64:
        raise ValueError(f"name must be 1..64 characters, got {name!r}")
    if role not in AGENT_ROLES:
        raise ValueError(f"role must be one of {AGENT_ROLES}, got {role!r}")
    if not password:
        raise ValueError("password must not be empty")
    checked = check_skills(skills)
    created_at = datetime.now(UTC) if now is None else now
    _require_aware(created_at)
    if session.scalar(select(Agent.id).where(Agent.agent_id == agent_id)) is not None:
        raise AgentExists(agent_id)
    agent = Agent(agent_id=agent_id, name=name, role=role, password_hash=hasher.hash(password),
                  skills=checked, active=True, created_at=created_at, department=department)
    try:
        with session.begin_nested():
            session.add(agent)
            session.flush()
    except IntegrityError:
        # A concurrent create of the same id committed between our check and insert.
        raise AgentExists(agent_id) from None
    logger.info("agent created agent_id=%s role=%s", agent_id, role)


@functools.lru_cache(maxsize=4)
def _dummy_hash(params: tuple[int, int, int, int, int, Any]) -> str:
    time_cost, memory_cost, parallelism, hash_len, salt_len, type_ = params
    return PasswordHasher(time_cost, memory_cost, parallelism, hash_len, salt_len,
                          type=type_).hash("no such agent")


def _params(hasher: PasswordHasher) -> tuple[int, int, int, int, int, Any]:
    return (hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.hash_len,
            hasher.salt_len, hasher.type)


def verify_login(
    session: Session, agent_id: str, password: str, *,
    hasher: PasswordHasher = PASSWORD_HASHER,
) -> AgentInfo | None:
    """The agent if agent_id exists, is active and password matches; None otherwise.

    An unknown agent still costs one argon2 verification, so response time does not tell which
    agent ids exist. A hash made with older parameters is replaced (the caller commits).
    """
    agent = session.scalars(select(Agent).where(Agent.agent_id == agent_id)).one_or_none()
    if agent is None:
        try:
            hasher.verify(_dummy_hash(_params(hasher)), password)
        except VerificationError:
            pass
        logger.info("login refused: unknown agent agent_id=%s", agent_id)
        return None
    try:
        hasher.verify(agent.password_hash, password)
    except VerificationError:
        logger.info("login refused: wrong password agent_id=%s", agent_id)
        return None
    except InvalidHashError:
        logger.error("login refused: stored password hash is unreadable agent_id=%s", agent_id)
        return None
    if not agent.active:
        logger.info("login refused: agent deactivated agent_id=%s", agent_id)
        return None
    if hasher.check_needs_rehash(agent.password_hash):
        agent.password_hash = hasher.hash(password)
        session.flush()
        logger.info("password rehashed with current parameters agent_id=%s", agent_id)
    return _agent_info(agent)


def get_agent(session: Session, agent_id: str) -> AgentInfo | None:
    agent = session.scalars(select(Agent).where(Agent.agent_id == agent_id)).one_or_none()
    return _agent_info(agent) if agent is not None else None


def list_agents(session: Session) -> list[dict[str, Any]]:
    """Every agent, supervisor and admin by id (not the departments' users, who take no calls),
    with the open session if logged in; JSON-ready, no password hashes."""
    rows = session.execute(
        select(Agent, AgentSession)
        .outerjoin(AgentSession, (AgentSession.agent_id == Agent.agent_id)
                   & AgentSession.logout_at.is_(None))
        .where(Agent.role != "department")
        .order_by(Agent.agent_id)
    ).all()
    return [
        json_ready({
            "agent_id": agent.agent_id,
            "name": agent.name,
            "role": agent.role,
            "skills": dict(agent.skills or {}),
            "active": agent.active,
            "created_at": agent.created_at,
            "session": None if row is None else {
                "seat": row.seat,
                "login_at": row.login_at,
                "state": row.state,
                "reason": row.reason,
                "state_since": row.state_since,
                "call_id": row.call_id,
            },
        })
        for agent, row in rows
    ]


# ------------------------------------------------------------------------------ sessions


def _log(session: Session, *, agent_id: str, seat: str, state: str, reason: str | None,
         call_id: str | None, now: datetime, actor: str) -> None:
    session.add(AgentStateLog(agent_id=agent_id, seat=seat, state=state, reason=reason, at=now,
                              call_id=call_id, actor=actor))


def _raise_if_taken(session: Session, agent_id: str, seat: str) -> None:
    rows = session.execute(
        select(AgentSession.agent_id, AgentSession.seat)
        .where(AgentSession.logout_at.is_(None),
               (AgentSession.agent_id == agent_id) | (AgentSession.seat == seat))
    ).all()
    for holder, held_seat in rows:
        if holder == agent_id:
            raise AlreadyLoggedIn(agent_id, held_seat)
    for holder, _ in rows:
        raise SeatTaken(seat, holder)


def _open_row(session: Session, agent_id: str) -> tuple[AgentSession, Agent] | None:
    # FOR UPDATE (PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes): a state change and a
    # supervisor's forced logout of the same agent must not both start from the old row.
    row = session.execute(
        select(AgentSession, Agent)
        .join(Agent, Agent.agent_id == AgentSession.agent_id)
        .where(AgentSession.agent_id == agent_id, AgentSession.logout_at.is_(None))
        .with_for_update(of=AgentSession)
        .execution_options(populate_existing=True)
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def open_session(session: Session, *, agent_id: str, seat: str, now: datetime,
                 ) -> AgentSessionInfo:
    """Log the agent in (签入) at seat: not_ready with reason 'login', as the ACD core starts.

    Raises UnknownAgent, AlreadyLoggedIn (the agent has an open session anywhere) or SeatTaken
    (another agent is at seat). The partial unique indexes decide a race between two logins;
    the loser gets the same domain error as if it had come second.
    """
    _require_aware(now)
    _check_seat(seat)
    agent = session.scalars(select(Agent).where(Agent.agent_id == agent_id)).one_or_none()
    if agent is None or not agent.active:
        raise UnknownAgent(agent_id)
    _raise_if_taken(session, agent_id, seat)
    row = AgentSession(agent_id=agent_id, seat=seat, login_at=now, logout_at=None,
                       state="not_ready", reason=LOGIN_REASON, state_since=now, call_id=None)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        # The other login committed after our check. Now it is visible; say which one it was.
        logger.info("login lost a race agent_id=%s seat=%s", agent_id, seat)
        _raise_if_taken(session, agent_id, seat)
        raise
    _log(session, agent_id=agent_id, seat=seat, state=row.state, reason=row.reason,
         call_id=None, now=now, actor=agent_id)
    session.flush()
    logger.info("agent logged in agent_id=%s seat=%s", agent_id, seat)
    return _session_info(row, agent)


def close_session(session: Session, agent_id: str, now: datetime, actor: str, *,
                  reason: str | None = None) -> AgentSessionInfo | None:
    """Log the agent out (签出), logged with actor; None if it had no open session (a repeat)."""
    _require_aware(now)
    found = _open_row(session, agent_id)
    if found is None:
        logger.debug("logout without open session agent_id=%s actor=%s", agent_id, actor)
        return None
    row, agent = found
    if now < row.login_at:
        raise ValueError(f"logout at {now.isoformat()} before login at {row.login_at.isoformat()}")
    row.logout_at = now.astimezone(UTC)
    _log(session, agent_id=agent_id, seat=row.seat, state="logged_out", reason=_reason(reason),
         call_id=row.call_id, now=now, actor=actor)
    session.flush()
    logger.info("agent logged out agent_id=%s seat=%s actor=%s", agent_id, row.seat, actor)
    return _session_info(row, agent)


def record_state(
    session: Session,
    *,
    agent_id: str,
    state: str,
    reason: str | None,
    call_id: str | None,
    now: datetime,
    actor: str,
) -> AgentSessionInfo:
    """Set the open session's state and append it to agent_state_log with its actor.

    actor is the agent itself, 'acd', or the supervisor's agent_id for a forced change. A
    repeat of the current (state, reason, call_id) changes and logs nothing. Raises NotLoggedIn
    without an open session; log out with close_session, not with a 'logged_out' state.
    """
    _require_aware(now)
    if state not in AGENT_STATES:
        raise ValueError(f"state must be one of {AGENT_STATES}, got {state!r}")
    reason = _reason(reason)
    found = _open_row(session, agent_id)
    if found is None:
        raise NotLoggedIn(agent_id)
    row, agent = found
    if (row.state, row.reason, row.call_id) == (state, reason, call_id):
        logger.debug("agent state repeated agent_id=%s state=%s", agent_id, state)
        return _session_info(row, agent)
    row.state, row.reason, row.call_id = state, reason, call_id
    row.state_since = now.astimezone(UTC)
    _log(session, agent_id=agent_id, seat=row.seat, state=state, reason=reason,
         call_id=call_id, now=now, actor=actor)
    session.flush()
    logger.info("agent state agent_id=%s seat=%s state=%s reason=%s call_id=%s actor=%s",
                agent_id, row.seat, state, reason, call_id, actor)
    return _session_info(row, agent)


def open_sessions(session: Session) -> list[AgentSessionInfo]:
    """Every logged-in agent by seat: what the CTI reloads after a restart."""
    rows = session.execute(
        select(AgentSession, Agent)
        .join(Agent, Agent.agent_id == AgentSession.agent_id)
        .where(AgentSession.logout_at.is_(None))
        .order_by(AgentSession.seat)
    ).all()
    return [_session_info(row, agent) for row, agent in rows]


# --------------------------------------------------------------------------- ACD snapshot


def save_acd_snapshot(session: Session, data: Mapping[str, Any], now: datetime) -> bool:
    """Store the ACD's state as the one snapshot row; latest wins.

    False (and nothing written) when the stored snapshot is newer than now: a slow writer from
    before a restart must not replace the state the new CTI saved.
    """
    _require_aware(now)
    # Fail here with the ACD's data in the message, not at flush with a driver error; NaN is not
    # JSON and PostgreSQL would refuse it.
    json.dumps(data, allow_nan=False)
    stmt = insert_on_conflict(session, AcdSnapshot).values(
        id=SNAPSHOT_ROW_ID, data=dict(data), saved_at=now)
    upsert = stmt.on_conflict_do_update(
        index_elements=[AcdSnapshot.id],
        set_={"data": stmt.excluded.data, "saved_at": stmt.excluded.saved_at},
        where=AcdSnapshot.saved_at <= stmt.excluded.saved_at,
    ).returning(AcdSnapshot.id)
    saved = session.execute(upsert).scalar_one_or_none() is not None
    if not saved:
        logger.warning("ACD snapshot of %s not saved: a newer one is stored", now.isoformat())
    return saved


def load_acd_snapshot(session: Session) -> dict[str, Any] | None:
    """The last saved ACD state, or None if none was ever saved."""
    data = session.scalar(select(AcdSnapshot.data).where(AcdSnapshot.id == SNAPSHOT_ROW_ID))
    return dict(data) if data is not None else None


# ---------------------------------------------------------------------------- call record


def _locked_call(session: Session, call_id: str) -> Call | None:
    return session.scalars(
        select(Call).where(Call.call_id == call_id).with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def record_call_queued(session: Session, call_id: str, *, now: datetime,
                       skill: str | None = None, caller: str | None = None) -> None:
    """Note when the call joined the ACD queue; the first time wins (a restored ACD re-queues).

    skill fills the record only where the IVR left none (e.g. a failsafe transfer).
    A call with no record yet (the IVR never started, or its start write was lost under load)
    gets one here when the caller's number is known, so every call that reached the agent side
    ends with exactly one record: its start is the time it was queued, its dnis unknown ('').
    """
    _require_aware(now)
    call = _locked_call(session, call_id)
    if call is None and caller is not None:
        logger.warning("queued: no start record for call_id=%s; created from the queue event",
                       call_id)
        session.execute(insert_on_conflict(session, Call).values(
            call_id=call_id, uniqueid=call_id, caller_number=caller[:32], dnis="",
            started_at=now.astimezone(UTC), ivr_path=[],
        ).on_conflict_do_nothing(index_elements=[Call.call_id]))
        call = _locked_call(session, call_id)
    if call is None:
        logger.warning("queued: unknown call call_id=%s", call_id)
        return
    if call.queued_at is None:
        call.queued_at = now.astimezone(UTC)
    if call.skill is None and skill is not None:
        call.skill = skill
    session.flush()


def record_call_answered(session: Session, call_id: str, *, agent_id: str, seat: str,
                         now: datetime) -> None:
    """Note who answered the call, where and when; the first answer wins (duplicate events)."""
    _require_aware(now)
    call = _locked_call(session, call_id)
    if call is None:
        logger.warning("answered: unknown call call_id=%s agent_id=%s", call_id, agent_id)
        return
    if call.answered_at is not None:
        logger.debug("answered repeated call_id=%s agent_id=%s", call_id, agent_id)
        return
    call.answered_at = now.astimezone(UTC)
    call.agent_id, call.seat = agent_id, seat
    session.flush()
    logger.info("call answered call_id=%s agent_id=%s seat=%s", call_id, agent_id, seat)
