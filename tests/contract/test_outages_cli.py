"""`hotline outages` and `hotline storm` (SQLite): publish by feeder code and 台区, list, update,
confirm, close, the storm switch with who and when, the audit trail as `cli:<user>`, and clear
errors with exit codes (1 refused, 2 a bad option)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from callcenter.outage_service import OutageService, Who
from cti.db.migrate import upgrade
from cti.db.models import Area, Feeder
from cti.db.models_recordings import AuditLog
from cti.db.outages import NoticeDraft
from cti.db.session import make_engine, make_session_factory
from hotline.cli import main
from outages.scope import Cause

H = timedelta(hours=1)


@pytest.fixture
def db(tmp_path: Path, runner: CliRunner) -> Any:
    """The CLI's own database (tmp_path/var/hotline.db) with one area and two feeders."""
    (tmp_path / "var").mkdir()
    url = f"sqlite:///{tmp_path / 'var' / 'hotline.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        area = Area(code="QY01", name="历下城区", kind="urban")
        s.add(area)
        s.flush()
        s.add_all([Feeder(code="QY01-F1", name="10kV泉城线", area_id=area.id),
                   Feeder(code="QY01-F2", name="10kV英雄山线", area_id=area.id)])
    yield sessions
    engine.dispose()


def _json(runner: CliRunner, *args: str) -> Any:
    res = runner.invoke(main, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_publish_list_update_confirm_close(runner: CliRunner, db: Any) -> None:
    start = (datetime.now(UTC) - H).isoformat()
    doc = _json(runner, "outages", "publish", "--cause", "fault", "--feeder", "QY01-F1",
                "--ta", "QY01:泉城路1号台区", "--start", start, "--text", "10kV泉城线跳闸")
    oid = doc["id"]
    with db() as s:
        f1 = s.scalar(select(Feeder.id).where(Feeder.code == "QY01-F1"))
        area = s.scalar(select(Area.id))
    assert (doc["state"], doc["feeders"], doc["transformer_areas"], doc["agent_text"]) == (
        "active", [f1], [[area, "泉城路1号台区"]], "10kV泉城线跳闸")
    listed = _json(runner, "outages", "list")
    assert [n["id"] for n in listed["active"]] == [oid]
    text = runner.invoke(main, ["outages", "list"]).output
    assert "故障停电" in text and "1 active, 0 suspected" in text
    assert "start (Asia/Shanghai)" in text and "10kV泉城线跳闸" in text  # a table, times local

    restore = (datetime.now(UTC) + 3 * H).isoformat()
    doc = _json(runner, "outages", "update", str(oid), "--restore", restore,
                "--feeder", "QY01-F2")
    assert len(doc["feeders"]) == 2 and doc["expected_restore_at"] is not None
    assert doc["agent_text"] == "10kV泉城线跳闸"  # kept
    doc = _json(runner, "outages", "update", str(oid), "--replace-scope", "--area", "QY01")
    assert (doc["areas"], doc["feeders"], doc["transformer_areas"]) == ([area], [], [])

    # a suspected outage from incident detection, confirmed from the CLI
    sid = OutageService(db).publish(NoticeDraft(Cause.REPORTED, datetime.now(UTC) - H,
                                                feeders=frozenset({f1}),
                                                awaiting_confirmation=True),
                                    Who("system", "system"), datetime.now(UTC))
    assert [n["id"] for n in _json(runner, "outages", "list")["suspected"]] == [sid]
    assert _json(runner, "outages", "confirm", str(sid))["state"] == "active"
    assert _json(runner, "outages", "close", str(oid))["state"] == "closed"
    assert [n["id"] for n in _json(runner, "outages", "list", "--closed", "5")["closed"]] == [oid]

    with db() as s:
        lines = [(a.action, a.actor.startswith("cli:"), a.role) for a in s.scalars(
            select(AuditLog).where(AuditLog.target == f"outage:{oid}").order_by(AuditLog.id))]
    assert lines == [("outage.publish", True, "admin"), ("outage.update", True, "admin"),
                     ("outage.update", True, "admin"), ("outage.close", True, "admin")]


def test_errors_are_clear_with_exit_codes(runner: CliRunner, db: Any) -> None:
    for args, code, text in [
        (["outages", "publish", "--cause", "fault"], 1, "needs a scope"),
        (["outages", "publish", "--cause", "fault", "--feeder", "999"], 1,
         "no such feeder: 999"),
        (["outages", "publish", "--cause", "fault", "--feeder", "QY99-F9"], 2,
         "no feeder with code 'QY99-F9'"),
        (["outages", "publish", "--cause", "planned", "--area", "QY01"], 1,
         "needs a schedule ending after start"),
        (["outages", "publish", "--cause", "typhoon", "--area", "QY01"], 2, "typhoon"),
        (["outages", "publish", "--cause", "fault", "--area", "QY01", "--start", "noon"], 2,
         "'noon' is not an ISO date-time"),
        (["outages", "publish", "--cause", "fault", "--ta", "泉城路1号台区"], 2, "AREA:NAME"),
        (["outages", "publish", "--cause", "fault", "--area", "QY01", "--master",
          "26112799999"], 1, "no such work order"),
        (["outages", "close", "4242"], 1, "no open outage notice 4242"),
        (["outages", "update", "4242", "--text", "x"], 1, "no outage notice 4242"),
        (["outages", "confirm", "0"], 2, "0"),
    ]:
        res = runner.invoke(main, args)
        assert res.exit_code == code, (args, res.output)
        assert text in res.output, (args, res.output)
    assert _json(runner, "outages", "list")["active"] == []


def test_storm_on_off_status(runner: CliRunner, db: Any) -> None:
    assert runner.invoke(main, ["storm", "status"]).output.strip() == \
        "storm mode off (never switched)"
    doc = _json(runner, "storm", "on", "--detail", "台风登陆")
    assert (doc["on"], doc["trigger"], doc["changed"], doc["detail"]) == (
        True, "manual", True, "台风登陆")
    assert doc["by"].startswith("cli:")
    again = runner.invoke(main, ["storm", "on"])
    assert again.exit_code == 0 and "already so" in again.output
    status = runner.invoke(main, ["storm", "status"]).output
    assert "storm mode ON since" in status and "cli:" in status
    assert _json(runner, "storm", "off")["on"] is False
    assert _json(runner, "storm", "status")["on"] is False
    with db() as s:
        actions = list(s.scalars(select(AuditLog.action).where(AuditLog.target == "storm")
                                 .order_by(AuditLog.id)))
    assert actions == ["storm.on", "storm.off"]
