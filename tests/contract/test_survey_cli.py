"""`hotline surveys`: the post-call survey's figures per agent and per skill, over local days
(SQLite)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from cti.db.calls import record_call_start, record_survey
from cti.db.migrate import upgrade
from cti.db.session import make_engine, make_session_factory
from hotline.cli import main

TZ = ZoneInfo("Asia/Shanghai")  # hotline.toml's [ivr] timezone


def test_the_figures_of_today_and_of_a_range(tmp_path: Path, runner: CliRunner) -> None:
    (tmp_path / "var").mkdir()
    url = f"sqlite:///{tmp_path / 'var' / 'hotline.db'}"
    upgrade(url)
    engine = make_engine(url)
    today = datetime.now(TZ).date()
    at = datetime.combine(today, time(9, 0), TZ).astimezone(UTC)
    with make_session_factory(engine).begin() as s:
        for cid, when, agent, skill, score in [
                ("pbx1-1764400000.1", at, "A001", "general", 5),
                ("pbx1-1764400000.2", at, "A001", "general", 2),
                ("pbx1-1764400000.3", at - timedelta(days=1), "A002", "repair", 4)]:
            record_call_start(s, call_id=cid, uniqueid=cid, caller_number="13800000001",
                              dnis="95598", now=when)
            record_survey(s, cid, at=when, agent_id=agent, skill=skill, score=score)
    engine.dispose()

    res = runner.invoke(main, ["surveys", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert (doc["from"], doc["to"]) == (today.isoformat(), today.isoformat())
    assert doc["total"] == {"offered": 2, "answered": 2, "average": 3.5,
                            "scores": {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}}
    assert [(a["agent_id"], a["average"]) for a in doc["by_agent"]] == [("A001", 3.5)]

    yesterday = (today - timedelta(days=1)).isoformat()
    res = runner.invoke(main, ["surveys", "--from", yesterday, "--to", today.isoformat()])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[2].split()[:4] == ["all", "3", "3", "3.67"]
    assert [ln.split()[:2] for ln in lines[3:]] == [["agent", "A001"], ["agent", "A002"],
                                                    ["skill", "general"], ["skill", "repair"]]
    res = runner.invoke(main, ["surveys", "--from", today.isoformat(), "--to", yesterday])
    assert res.exit_code == 2 and "--to is before --from" in res.output
    res = runner.invoke(main, ["surveys", "--from", "27/11/2026"])
    assert res.exit_code == 2 and "is not a date" in res.output
