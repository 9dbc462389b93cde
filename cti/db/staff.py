"""Staff and skills as an admin runs them (issue 15 §1): users of every role, their skills and
proficiency, disabling, password resets with a forced change, and the skills table. Every change
writes its audit_log line in the same unit of work (the web console's and `hotline staff`'s).

Passwords: at least MIN_PASSWORD characters; the demo password is refused unless the deployment
is a demo ([hotline] demo). A reset sets a random temporary password, shown once to the admin,
and the next login must change it before anything else (agents.must_change_password).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.db import agents as db_agents
from cti.db.models import AGENT_ROLES, SKILL_NAME_RE, STAFF_DEPARTMENTS, Agent, Skill
from cti.db.web_audit import AuditEntry
from cti.db.web_audit import add as add_audit

log = logging.getLogger(__name__)

DEMO_PASSWORD = "95598"  # hotline.demo_seed's (not imported: it pulls in the seed)
MIN_PASSWORD = 8
MAX_PASSWORD = 128
MAX_LABEL = 32
# who takes calls, and so holds skills (supervisors take calls on a storm day)
SKILLED_ROLES = ("agent", "supervisor")
# the skills the shipped flows and the demo route by, with their labels (migration 0014 and
# the demo seed create them)
SHIPPED_SKILLS: dict[str, tuple[str, str]] = {
    "general": ("综合", "general"), "billing": ("电费", "billing"),
    "repair": ("故障报修", "repair"), "english": ("英语", "English")}


P = ParamSpec("P")
R = TypeVar("R")


def in_unit(sessions: sessionmaker[Session], fn: Callable[Concatenate[Session, P], R],
            *args: P.args, **kwargs: P.kwargs) -> R:
    """Run one of the functions below in a unit of work of its own (the desktop's and the
    CLI's way in: they open no session themselves)."""
    with sessions.begin() as s:
        return fn(s, *args, **kwargs)


class StaffError(ValueError):
    """A change an admin asked for that cannot be made; the message says why."""


class UnknownStaff(StaffError):
    pass


@dataclass(frozen=True)
class Actor:
    """Who makes the change, for the audit line: an admin on the web, or the CLI's operator."""

    user_id: str
    role: str
    client_ip: str | None = None

    def entry(self, at: datetime, action: str, target: str, **detail: Any) -> AuditEntry:
        return AuditEntry(at=at, actor=self.user_id, role=self.role, action=action,
                          target=target, allowed=True, client_ip=self.client_ip, detail=detail)


def check_password(password: str, *, demo: bool) -> str:
    """The password, if it may be set: long enough, and not the demo's outside a demo (in a
    demo, the demo's own short password is allowed)."""
    if password == DEMO_PASSWORD:
        if not demo:
            raise StaffError(f"the demo password {DEMO_PASSWORD} is refused on a deployment "
                             "not marked demo ([hotline] demo)")
        return password
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise StaffError(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def temporary_password() -> str:
    """A random password for a reset, typed once by the user before they choose their own."""
    return secrets.token_urlsafe(9)  # 12 characters, 72 bits


# ---------------------------------------------------------------------------------- skills


def skill_names(s: Session, *, active_only: bool = True) -> set[str]:
    q = select(Skill.name)
    if active_only:
        q = q.where(Skill.active.is_(True))
    return set(s.scalars(q))


def ensure_shipped_skills(s: Session, now: datetime) -> None:
    """The shipped skills, where missing (the demo seed, on a database emptied by tests)."""
    have = skill_names(s, active_only=False)
    for name, (zh, en) in SHIPPED_SKILLS.items():
        if name not in have:
            s.add(Skill(name=name, label_zh=zh, label_en=en, active=True, created_at=now,
                        created_by="seed"))
    s.flush()


def list_skills(s: Session) -> list[dict[str, Any]]:
    """Every skill, with how many active agents hold it."""
    holders: dict[str, int] = {}
    for skills in s.scalars(select(Agent.skills).where(Agent.active.is_(True))):
        for name in skills or {}:
            holders[name] = holders.get(name, 0) + 1
    return [{"name": k.name, "label_zh": k.label_zh, "label_en": k.label_en,
             "active": k.active, "agents": holders.get(k.name, 0),
             "created_at": k.created_at, "created_by": k.created_by}
            for k in s.scalars(select(Skill).order_by(Skill.name))]


def _label(value: str, what: str) -> str:
    value = (value or "").strip()
    if not 1 <= len(value) <= MAX_LABEL:
        raise StaffError(f"{what} is 1 to {MAX_LABEL} characters")
    return value


def create_skill(s: Session, *, name: str, label_zh: str, label_en: str, now: datetime,
                 actor: Actor) -> None:
    if not SKILL_NAME_RE.fullmatch(name or ""):
        raise StaffError(f"a skill's name is lower-case letters, digits and _, starting with a "
                         f"letter, at most 32 (got {name!r})")
    if s.scalar(select(Skill.id).where(Skill.name == name)) is not None:
        raise StaffError(f"skill {name} exists already")
    s.add(Skill(name=name, label_zh=_label(label_zh, "the Chinese label"),
                label_en=_label(label_en, "the English label"), active=True, created_at=now,
                created_by=actor.user_id[:16]))
    add_audit(s, actor.entry(now, "skill.create", name, label_zh=label_zh, label_en=label_en))
    s.flush()


def _check_skills(s: Session, skills: Mapping[str, int]) -> dict[str, int]:
    try:
        checked = db_agents.check_skills(skills)
    except ValueError as exc:
        raise StaffError(str(exc)) from None
    unknown = sorted(set(checked) - skill_names(s))
    if unknown:
        raise StaffError(f"no such skill: {', '.join(unknown)} (create it first)")
    return checked


# ----------------------------------------------------------------------------------- staff


def _agent(s: Session, agent_id: str) -> Agent:
    agent = s.scalars(select(Agent).where(Agent.agent_id == agent_id)).one_or_none()
    if agent is None:
        raise UnknownStaff(f"no member of staff {agent_id}")
    return agent


def staff_doc(a: Agent) -> dict[str, Any]:
    return {"agent_id": a.agent_id, "name": a.name, "role": a.role,
            "department": a.department, "skills": dict(a.skills or {}), "active": a.active,
            "must_change_password": a.must_change_password, "created_at": a.created_at}


def list_staff(s: Session) -> list[dict[str, Any]]:
    return [staff_doc(a) for a in s.scalars(select(Agent).order_by(Agent.agent_id))]


def get_staff(s: Session, agent_id: str) -> dict[str, Any]:
    return staff_doc(_agent(s, agent_id))


def create_staff(s: Session, *, agent_id: str, name: str, role: str, password: str,
                 skills: Mapping[str, int], department: str | None, demo: bool,
                 now: datetime, actor: Actor, hasher: PasswordHasher | None = None,
                 must_change: bool = True) -> None:
    """A new active member of staff. Unless `must_change` is False (the CLI's bootstrap of a
    deployment's first admin), they choose their own password at their first login."""
    if role not in AGENT_ROLES:
        raise StaffError(f"role is one of {', '.join(AGENT_ROLES)}")
    if (role == "department") != (department is not None):
        raise StaffError("a department user has a department (repair, marketing, metering); "
                         "no other role has one")
    if department is not None and department not in STAFF_DEPARTMENTS:
        raise StaffError(f"department is one of {', '.join(STAFF_DEPARTMENTS)}")
    if skills and role not in SKILLED_ROLES:
        raise StaffError("only agents and supervisors hold skills")
    checked = _check_skills(s, skills)
    check_password(password, demo=demo)
    try:
        db_agents.create_agent(s, agent_id=agent_id, name=name, role=role, password=password,
                               skills=checked, now=now, department=department,
                               hasher=hasher or db_agents.PASSWORD_HASHER)
    except db_agents.AgentExists as exc:
        raise StaffError(str(exc)) from None
    except ValueError as exc:  # the id's or the name's form
        raise StaffError(str(exc)) from None
    agent = _agent(s, agent_id)
    agent.must_change_password = must_change
    add_audit(s, actor.entry(now, "staff.create", agent_id, role=role, department=department,
                             skills=checked or None))
    s.flush()


def set_skills(s: Session, agent_id: str, skills: Mapping[str, int], *, now: datetime,
               actor: Actor) -> dict[str, int]:
    agent = _agent(s, agent_id)
    if agent.role not in SKILLED_ROLES:
        raise StaffError(f"{agent_id} is {agent.role}: only agents and supervisors hold skills")
    checked = _check_skills(s, skills)
    before = dict(agent.skills or {})
    agent.skills = checked
    add_audit(s, actor.entry(now, "staff.skills", agent_id, before=before, after=checked))
    s.flush()
    return checked


def set_active(s: Session, agent_id: str, active: bool, *, now: datetime,
               actor: Actor) -> dict[str, Any]:
    agent = _agent(s, agent_id)
    if not active and agent_id == actor.user_id:
        raise StaffError("an admin does not disable their own account")
    agent.active = active
    add_audit(s, actor.entry(now, "staff.enable" if active else "staff.disable", agent_id))
    s.flush()
    return staff_doc(agent)


def reset_password(s: Session, agent_id: str, *, now: datetime, actor: Actor,
                   hasher: PasswordHasher | None = None) -> str:
    """A temporary password (returned, shown once), to be changed at the next login."""
    agent = _agent(s, agent_id)
    password = temporary_password()
    agent.password_hash = (hasher or db_agents.PASSWORD_HASHER).hash(password)
    agent.must_change_password = True
    add_audit(s, actor.entry(now, "staff.reset_password", agent_id))
    s.flush()
    return password


def change_own_password(s: Session, agent_id: str, old: str, new: str, *, demo: bool,
                        now: datetime, client_ip: str | None = None,
                        hasher: PasswordHasher | None = None) -> None:
    """The user's own change (forced after a reset): the old password proves it is them."""
    hasher = hasher or db_agents.PASSWORD_HASHER
    agent = _agent(s, agent_id)
    try:
        hasher.verify(agent.password_hash, old)
    except (VerificationError, InvalidHashError):
        raise StaffError("the current password is wrong") from None
    if new == old:
        raise StaffError("the new password is the current one")
    check_password(new, demo=demo)
    agent.password_hash = hasher.hash(new)
    agent.must_change_password = False
    add_audit(s, AuditEntry(at=now, actor=agent_id, role=agent.role, action="staff.password",
                            target=agent_id, allowed=True, client_ip=client_ip))
    s.flush()


def skills_of(sessions: sessionmaker[Session],
              agent_ids: Iterable[str]) -> dict[str, dict[str, int] | None]:
    """The stored skills of these agents, None for a disabled one; an id with no account is
    left out (the staff watch's one query)."""
    ids = sorted(set(agent_ids))
    if not ids:
        return {}
    with sessions.begin() as s:
        rows = s.execute(select(Agent.agent_id, Agent.skills, Agent.active).where(
            Agent.agent_id.in_(ids)))
        return {agent_id: dict(skills or {}) if active else None
                for agent_id, skills, active in rows}


def must_change_password(s: Session, agent_id: str) -> bool:
    return bool(s.scalar(select(Agent.must_change_password).where(Agent.agent_id == agent_id)))
