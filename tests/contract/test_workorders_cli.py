"""`hotline workorders`: list with filters, show, advance, urge, return visits, at-risk (SQLite)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from cti.db.migrate import upgrade
from cti.db.session import make_engine, make_session_factory
from hotline.cli import main
from workorders.lifecycle import Role, SlaPolicy
from workorders.service import Actor, NewOrder, WorkOrderService


@pytest.fixture
def orders(tmp_path: Path, runner: CliRunner) -> list[str]:
    (tmp_path / "var").mkdir()
    url = f"sqlite:///{tmp_path / 'var' / 'hotline.db'}"
    upgrade(url)
    engine = make_engine(url)
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
    assert "clock arrival" in text and "department_accepted" in text
    risky = _json(runner, "at-risk")
    assert [r["number"] for r in risky] == [repair]  # type: ignore[union-attr]
    assert _json(runner, "return-visits") == []
    res = runner.invoke(main, ["workorders", "show", "12345"])
    assert res.exit_code == 1 and "11 digits" in res.output
    res = runner.invoke(main, ["workorders", "list", "--status", "open"])
    assert res.exit_code == 1 and "unknown work-order step 'open'" in res.output
