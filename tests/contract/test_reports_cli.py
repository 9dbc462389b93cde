"""`hotline reports` (SQLite): `update` counts what is due, `workload` and `workorders` show the
counted figures (JSON and a table), `rebuild` recounts a range to the same figures, and bad
dates are a usage error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from cti.db.migrate import upgrade
from cti.db.models import Call, WorkOrder
from cti.db.session import make_engine, make_session_factory
from hotline.cli import main

TZ = ZoneInfo("Asia/Shanghai")  # hotline.toml's [ivr] timezone
S = timedelta(seconds=1)


def test_update_show_and_rebuild(tmp_path: Path, runner: CliRunner) -> None:
    (tmp_path / "var").mkdir()
    url = f"sqlite:///{tmp_path / 'var' / 'hotline.db'}"
    upgrade(url)
    engine = make_engine(url)
    day = datetime.now(TZ).date() - timedelta(days=2)
    at = datetime.combine(day, time(9, 0), TZ).astimezone(UTC)
    with make_session_factory(engine).begin() as s:
        for i, (wait, answered) in enumerate([(5, True), (30, True), (60, False), (3, False)]):
            q = at + i * 60 * S
            s.add(Call(call_id=f"c{i}", uniqueid=f"c{i}", caller_number="1", dnis="95598",
                       ivr_path=[], started_at=q, queued_at=q, skill="general",
                       answered_at=q + wait * S if answered else None,
                       agent_id="A001" if answered else None,
                       ended_at=q + (wait + 100 if answered else wait) * S,
                       outcome="transfer" if answered else "abandoned"))
        s.add(WorkOrder(number="26112700001", type="complaint", status="accepted",
                        caller_number="1", description="x", channel="agent", created_at=at))
    engine.dispose()

    res = runner.invoke(main, ["reports", "update"])
    assert res.exit_code == 0, res.output
    assert "calls counted up to" in res.output
    res = runner.invoke(main, ["reports", "workload", "--from", day.isoformat(), "--json"])
    assert res.exit_code == 0, res.output
    [row] = json.loads(res.output)["rows"]
    # offered 3 (the 3 s abandon is short: shown apart), SL 1 / (2 + 1)
    assert (row["offered"], row["answered"], row["abandoned"], row["abandoned_short"]) == (
        3, 2, 1, 1)
    assert row["service_level"] == 0.3333 and row["asa_s"] == 17.5
    res = runner.invoke(main, ["reports", "workorders", "--from", day.isoformat(), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["rows"][0]["created"] == 1
    res = runner.invoke(main, ["reports", "rebuild", "--from", day.isoformat()])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["reports", "workload", "--from", day.isoformat(), "--by",
                               "skill"])
    assert res.exit_code == 0, res.output
    assert "general" in res.output and "0.3333" in res.output
    res = runner.invoke(main, ["reports", "workload", "--from", "2026-13-01"])
    assert res.exit_code == 2 and "is not a date" in res.output
    res = runner.invoke(main, ["reports", "workorders", "--from", day.isoformat(), "--to",
                               (day - timedelta(days=1)).isoformat()])
    assert res.exit_code == 2 and "--to is before --from" in res.output
    res = runner.invoke(main, ["reports", "workload", "--from", "1999-01-01"])
    assert res.exit_code == 2
