"""`hotline staff` and `hotline skills` (issue 15 §1) on a fresh SQLite state: the shipped
skills are there from the migration; users are added with a temporary password; changes are
audited as the operating system's user; bad input is a clear error."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner
from sqlalchemy import select

from config.settings import load_settings
from cti.db.models import Agent
from cti.db.models_recordings import AuditLog
from cti.db.session import make_engine, make_session_factory
from hotline.cli import main


def _ok(runner: CliRunner, *args: str) -> str:
    res = runner.invoke(main, list(args))
    assert res.exit_code == 0, (args, res.output)
    return res.output


def _refused(runner: CliRunner, *args: str) -> str:
    res = runner.invoke(main, list(args))
    assert res.exit_code != 0 and isinstance(res.exception, SystemExit), (args, res.output)
    return res.output


def test_staff_and_skills_from_the_shell(runner: CliRunner) -> None:
    assert "no staff yet" in _ok(runner, "staff", "list")
    skills = json.loads(_ok(runner, "skills", "list", "--json"))
    assert {s["name"] for s in skills} == {"general", "billing", "repair", "english"}
    assert "skill meter added" in _ok(runner, "skills", "add", "meter", "--zh", "计量",
                                      "--en", "metering")
    out = _ok(runner, "staff", "add", "boss", "--name", "管理员", "--role", "admin")
    assert re.search(r"temporary password, to change at the first login: \S{12}", out), out
    _ok(runner, "staff", "add", "A100", "--name", "李娜", "--role", "agent", "general=3",
        "meter=4")
    _ok(runner, "staff", "add", "R01", "--name", "抢修一班", "--role", "department",
        "--department", "repair")
    assert "A100: general=1 repair=5" in _ok(runner, "staff", "skills", "A100", "repair=5",
                                             "general=1")
    table = _ok(runner, "staff", "list")
    assert "must change password" in table and "general=1 repair=5" in table
    assert _ok(runner, "staff", "disable", "A100").strip() == "A100 disabled"
    assert _ok(runner, "staff", "enable", "A100").strip() == "A100 enabled"
    assert "temporary password" in _ok(runner, "staff", "reset-password", "R01")

    assert "no such skill: nope" in _refused(runner, "staff", "skills", "A100", "nope=3")
    assert "give SKILL=LEVEL" in _refused(runner, "staff", "skills", "A100", "general")
    assert "has a department" in _refused(runner, "staff", "add", "R02", "--name", "x",
                                          "--role", "department")
    assert "already exists" in _refused(runner, "staff", "add", "A100", "--name", "x",
                                        "--role", "agent")
    assert "no member of staff NOBODY" in _refused(runner, "staff", "disable", "NOBODY")
    assert "exists already" in _refused(runner, "skills", "add", "meter", "--zh", "计量",
                                        "--en", "metering")

    settings = load_settings()
    engine = make_engine(settings.db_url)
    with make_session_factory(engine)() as s:
        a100 = s.scalars(select(Agent).where(Agent.agent_id == "A100")).one()
        assert (a100.skills, a100.active, a100.must_change_password) == (
            {"general": 1, "repair": 5}, True, True)
        rows = s.execute(select(AuditLog.actor, AuditLog.action, AuditLog.target)
                         .order_by(AuditLog.id)).all()
    engine.dispose()
    assert [(a, t) for _, a, t in rows] == [
        ("skill.create", "meter"), ("staff.create", "boss"), ("staff.create", "A100"),
        ("staff.create", "R01"), ("staff.skills", "A100"), ("staff.disable", "A100"),
        ("staff.enable", "A100"), ("staff.reset_password", "R01")]
    assert all(actor.startswith("cli:") for actor, _, _ in rows)
