"""cti.db.staff on both databases (issue 15 §1): the agents table's CHECKs for department users,
skills checked against the skills table, the forced password change, skills_of for the staff
watch, and an audit line with every change."""

from __future__ import annotations

from datetime import datetime

import pytest
from argon2 import PasswordHasher
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cti.db import staff
from cti.db.models import Agent
from cti.db.models_recordings import AuditLog

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
ADMIN = staff.Actor("admin", "admin", "127.0.0.1")


def _row(agent_id: str, role: str, department: str | None, now: datetime) -> dict[str, object]:
    return {"agent_id": agent_id, "name": agent_id, "role": role, "password_hash": "x",
            "skills": {}, "active": True, "created_at": now, "department": department}


@pytest.mark.parametrize(("role", "department"), [("department", None), ("agent", "repair"),
                                                  ("department", "finance")])
def test_the_database_refuses_a_department_that_does_not_fit_the_role(
        session: Session, now: datetime, role: str, department: str | None) -> None:
    with pytest.raises(IntegrityError):
        with session.begin_nested():
            session.execute(insert(Agent), [_row("X1", role, department, now)])


def test_staff_skills_passwords_and_the_audit(session_factory: sessionmaker[Session],
                                              now: datetime) -> None:
    with session_factory.begin() as s:
        staff.ensure_shipped_skills(s, now)
        staff.create_skill(s, name="meter", label_zh="计量", label_en="metering", now=now,
                           actor=ADMIN)
        staff.create_staff(s, agent_id="A100", name="李娜", role="agent", password="first-pass",
                           skills={"general": 3, "meter": 5}, department=None, demo=False,
                           now=now, actor=ADMIN, hasher=FAST)
        staff.create_staff(s, agent_id="R01", name="抢修", role="department",
                           password="first-pass", skills={}, department="repair", demo=False,
                           now=now, actor=ADMIN, hasher=FAST)
        with pytest.raises(staff.StaffError, match="no such skill: vip"):
            staff.set_skills(s, "A100", {"vip": 2}, now=now, actor=ADMIN)
        with pytest.raises(staff.StaffError, match="only agents and supervisors"):
            staff.set_skills(s, "R01", {"general": 2}, now=now, actor=ADMIN)
        with pytest.raises(staff.StaffError, match="not marked demo"):
            staff.check_password(staff.DEMO_PASSWORD, demo=False)
        assert staff.check_password(staff.DEMO_PASSWORD, demo=True) == staff.DEMO_PASSWORD
    assert staff.skills_of(session_factory, ["A100", "R01", "nobody"]) == {
        "A100": {"general": 3, "meter": 5}, "R01": {}}  # no account: absent
    with session_factory.begin() as s:
        temporary = staff.reset_password(s, "A100", now=now, actor=ADMIN, hasher=FAST)
        assert staff.must_change_password(s, "A100")
        with pytest.raises(staff.StaffError, match="current password is wrong"):
            staff.change_own_password(s, "A100", "first-pass", "second-pass", demo=False,
                                      now=now, hasher=FAST)
        staff.change_own_password(s, "A100", temporary, "second-pass", demo=False, now=now,
                                  hasher=FAST)
        assert not staff.must_change_password(s, "A100")
        staff.set_active(s, "A100", False, now=now, actor=ADMIN)
    assert staff.skills_of(session_factory, ["A100"]) == {"A100": None}  # disabled: signed out
    with session_factory() as s:
        rows = s.execute(select(AuditLog.actor, AuditLog.action, AuditLog.target)
                         .order_by(AuditLog.id)).all()
        holders = {k["name"]: k["agents"] for k in staff.list_skills(s)}
    assert [tuple(r) for r in rows] == [
        ("admin", "skill.create", "meter"), ("admin", "staff.create", "A100"),
        ("admin", "staff.create", "R01"), ("admin", "staff.reset_password", "A100"),
        ("A100", "staff.password", "A100"), ("admin", "staff.disable", "A100")]
    assert holders["meter"] == 0 and holders["general"] == 0  # A100 is disabled now
