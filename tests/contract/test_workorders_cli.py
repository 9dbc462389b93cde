"""`hotline workorders`: list with filters, show, advance, urge, return visits, at-risk (SQLite)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner

from cti.db.agents import create_agent
from cti.db.migrate import upgrade
from cti.db.session import make_engine, make_session_factory
from hotline.cli import main
from workorders.lifecycle import Role, SlaPolicy
from workorders.service import Actor, NewOrder, WorkOrderService

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # argon2id, cheap


@pytest.fixture
def orders(tmp_path: Path, runner: CliRunner) -> list[str]:
    (tmp_path / "var").mkdir()
    url = f"sqlite:///{tmp_path / 'var' / 'hotline.db'}"
    upgrade(url)
    engine = make_engine(url)
    with make_session_factory(engine).begin() as s:  # the staff the CLI's actors must be
        for agent_id, role, dept in (("A001", "agent", None), ("A002", "agent", None),
                                     ("S01", "supervisor", None), ("admin", "admin", None),
                                     ("crew-1", "department", "repair")):
            create_agent(s, agent_id=agent_id, name=agent_id, role=role, password="pw",
                         skills={}, hasher=FAST_HASHER, department=dept)
    # an hour ago: the urban repair's 45-minute arrival clock is past 100%
    svc = WorkOrderService(make_session_factory(engine), SlaPolicy(),
                           lambda: datetime.now(UTC) - timedelta(hours=1))
    agent = Actor("A001", Role.AGENT)
    numbers = [
        svc.create(NewOrder(type="fault_repair", description="整栋楼停电",
                            caller_number="13800000001"), agent)["number"],
        svc.create(NewOrder(type="complaint", description="抄表员态度差",
                            caller_number="13800000002"), agent)["number"],
    ]
    engine.dispose()
    return numbers


def _json(runner: CliRunner, *args: str) -> object:
    res = runner.invoke(main, ["workorders", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_list_filters_show_advance_urge(runner: CliRunner, orders: list[str]) -> None:
    repair, complaint = orders
    rows = _json(runner, "list")
    assert [r["number"] for r in rows] == [complaint, repair]  # type: ignore[index]
    assert rows[0]["events"][0]["step"] == "accepted"  # type: ignore[index]
    assert [r["number"] for r in _json(runner, "list", "--type", "complaint")] == [  # type: ignore[union-attr]
        complaint]
    assert [r["number"] for r in _json(runner, "list", "-q", "停电")] == [repair]  # type: ignore[union-attr]

    doc = _json(runner, "advance", repair, "dispatched", "--actor", "A001", "--role", "agent",
                "--note", "派抢修一班")
    assert doc["status"] == "dispatched" and doc["department"] == "repair"  # type: ignore[index]
    res = runner.invoke(main, ["workorders", "advance", repair, "on_site", "--actor", "A001",
                               "--role", "agent"])
    assert res.exit_code == 1 and "dispatched -> on_site is not a step" in res.output
    res = runner.invoke(main, ["workorders", "advance", repair, "department_accepted",
                               "--actor", "A001", "--role", "agent"])
    assert res.exit_code == 1 and "agent may not take" in res.output
    doc = _json(runner, "advance", repair, "department_accepted", "--actor", "crew-1",
                "--role", "department", "--actor-department", "repair")
    assert doc["status"] == "department_accepted"  # type: ignore[index]

    doc = _json(runner, "urge", complaint, "--actor", "A002", "--role", "agent", "--note", "催")
    assert doc["urge_count"] == 1  # type: ignore[index]
    shown = _json(runner, "show", repair)
    assert [(e["step"], e["actor"]) for e in shown["events"]] == [  # type: ignore[index]
        ("accepted", "A001"), ("dispatched", "A001"), ("department_accepted", "crew-1")]
    text = runner.invoke(main, ["workorders", "show", repair]).output
    # tables with headers, times in the center's zone, named in the header (issue 15 §5)
    assert "at (Asia/Shanghai)" in text and "SLA clock" in text
    assert any(line.split()[:1] == ["arrival"] for line in text.splitlines()), text
    assert any("department_accepted" in line and "crew-1" in line for line in text.splitlines())
    risky = _json(runner, "at-risk")
    assert [r["number"] for r in risky] == [repair]  # type: ignore[union-attr]
    assert _json(runner, "return-visits") == []
    res = runner.invoke(main, ["workorders", "show", "12345"])
    assert res.exit_code == 1 and "11 digits" in res.output
    res = runner.invoke(main, ["workorders", "list", "--status", "open"])
    assert res.exit_code == 1 and "unknown work-order step 'open'" in res.output


def test_steps_check_their_actor_refuse_repeats_and_reopen(runner: CliRunner,
                                                         orders: list[str]) -> None:
    """Issue 15 §5: actors are checked, a repeated step is refused, an unsatisfied return
    visit is reopened (the `reopen` verb), never archived."""
    repair, _complaint = orders

    def run(*args: str) -> tuple[int, str]:
        res = runner.invoke(main, ["workorders", *args])
        assert res.exception is None or isinstance(res.exception, SystemExit), res.output
        return res.exit_code, res.output

    for args, says in (
            (("--actor", "ZZZ", "--role", "agent"), "no active member of staff 'ZZZ'"),
            (("--actor", "S01", "--role", "agent"), "S01 is supervisor, not agent"),
            (("--actor", "A001", "--role", "supervisor"), "A001 is agent, not supervisor"),
            (("--actor", "crew-1", "--role", "department"), "needs their department"),
            (("--actor", "crew-1", "--role", "department", "--actor-department", "metering"),
             "crew-1 is in repair, not metering"),
            (("--actor", "crew-9", "--role", "department", "--actor-department", "repair"),
             "no active member of staff 'crew-9'")):
        rc, out = run("advance", repair, "dispatched", *args)
        assert rc == 1 and says in out, (args, out)
    assert _json(runner, "show", repair)["status"] == "accepted"  # type: ignore[index]
    assert _json(runner, "advance", repair, "dispatched", "--actor", "A001", "--role",
                 "agent")["department"] == "repair"  # type: ignore[index]
    rc, out = run("advance", repair, "dispatched", "--actor", "A001", "--role", "agent")
    assert rc == 1 and "already dispatched to repair" in out, out
    rc, out = run("reopen", repair, "--actor", "S01")
    assert rc == 1 and "only an order at its return visit is reopened" in out, out
    crew = ("--actor", "crew-1", "--role", "department", "--actor-department", "repair")
    for step in ("department_accepted", "on_site", "resolved"):
        _json(runner, "advance", repair, step, *crew)
    _json(runner, "advance", repair, "return_visit", "--actor", "A002", "--role", "agent",
          "--unsatisfied", "--note", "还是停电")
    rc, out = run("advance", repair, "archived", "--actor", "S01")
    assert rc == 1 and "not satisfied" in out, out
    doc = _json(runner, "reopen", repair, "--actor", "admin", "--note", "重新派发")
    assert doc["status"] == "dispatched" and doc["department"] == "repair"  # type: ignore[index]
    steps = [(e["step"], e["actor"]) for e in doc["events"]]  # type: ignore[index]
    assert steps.count(("dispatched", "A001")) == 1 and steps[-1] == ("dispatched", "admin")
