"""The `hotline` command's data and validation subcommands, against a throwaway SQLite state."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from hotline.cli import main
from tests.support.settings import REPO


def test_flows_validate_accepts_the_shipped_flows(runner: CliRunner) -> None:
    res = runner.invoke(main, ["flows", "validate", str(REPO / "ivr" / "flows")])
    assert res.exit_code == 0, res.output
    assert "ok: main" in res.output
    assert "prompt catalog" in res.output  # no built index here, so checked against the catalog


def test_flows_validate_names_file_and_line(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (REPO / "ivr" / "flows" / "main.yaml").read_text(encoding="utf-8")
    bad.write_text(text.replace("next: bill_lookup\n", "next: nowhere\n"), encoding="utf-8")
    res = runner.invoke(main, ["flows", "validate", str(bad)])
    assert res.exit_code == 1
    line = text[:text.index("next: bill_lookup\n")].count("\n") + 1
    assert f"{bad}:{line}: node 'bill_account': unknown node 'nowhere'" in res.output


def test_flows_validate_refuses_a_skill_that_is_not_configured(runner: CliRunner,
                                                              tmp_path: Path) -> None:
    """Issue 15 §5: `englsh` passed with rc 0. The skills are the skills table's."""
    bad = tmp_path / "main.yaml"
    text = (REPO / "ivr" / "flows" / "main.yaml").read_text(encoding="utf-8")
    assert "skill: english\n" in text
    bad.write_text(text.replace("skill: english\n", "skill: englsh\n"), encoding="utf-8")
    res = runner.invoke(main, ["flows", "validate", str(bad)])
    assert res.exit_code == 1, res.output
    line = text[:text.index("skill: english\n")].count("\n") + 1
    assert f"{bad}:{line}: " in res.output and "skill 'englsh' is not configured" in res.output
    assert "billing, english, general, repair" in res.output
    # once an admin adds it, it passes
    assert runner.invoke(main, ["skills", "add", "englsh", "--zh", "英语", "--en", "x"]
                         ).exit_code == 0
    res = runner.invoke(main, ["flows", "validate", str(bad)])
    assert res.exit_code == 0, res.output


def test_seed_demo_then_listings_as_json(runner: CliRunner) -> None:
    res = runner.invoke(main, ["seed-demo", "--accounts", "200"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["accounts"] == 200
    res = runner.invoke(main, ["demo", "accounts", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    purposes = {r["purpose"] for r in rows}
    assert {"bill_arrears", "outage_fault", "outage_planned", "unknown_account"} <= purposes
    for r in rows:
        assert len(r["account_no"]) == 10 and r["account_no"].isdigit()
        assert {"phone", "amount_due", "outages"} <= set(r)
    fault = next(r for r in rows if r["purpose"] == "outage_fault")
    assert any(o["kind"] == "fault" and o["expected_restore_at"] for o in fault["outages"])
    for cmd in (["calls", "list", "--json"], ["workorders", "list", "--json"],
                ["recordings", "list", "--text", "投诉", "--json"]):
        res = runner.invoke(main, cmd)
        assert res.exit_code == 0, res.output
        assert json.loads(res.output) == []


def test_listings_say_when_empty_and_refuse_bad_limits(runner: CliRunner) -> None:
    """Issue 15 §5: an empty result says so; a bad option is a usage error, not a traceback."""
    for cmd, says in ((["calls", "list"], "no calls recorded yet"),
                      (["workorders", "list"], "no work orders match"),
                      (["workorders", "return-visits"], "no order is waiting"),
                      (["workorders", "at-risk"], "no order's SLA clock"),
                      (["recordings", "list"], "no recordings match")):
        res = runner.invoke(main, cmd)
        assert res.exit_code == 0 and says in res.output, (cmd, res.output)
    for cmd in (["calls", "list", "--limit", "0"], ["workorders", "list", "--limit", "-1"],
                ["workorders", "list", "--offset", "-5"], ["recordings", "list", "--limit", "0"],
                ["workorders", "return-visits", "--limit", "100000"]):
        res = runner.invoke(main, cmd)
        assert res.exit_code == 2, (cmd, res.output)
        assert "Invalid value" in res.output and res.exception is not None \
            and isinstance(res.exception, SystemExit), (cmd, res.output)


def test_status_json_when_nothing_runs(runner: CliRunner) -> None:
    res = runner.invoke(main, ["status", "--json"])
    assert res.exit_code == 0, res.output
    st = json.loads(res.output)
    assert st["asterisk"]["running"] is False and st["cti"]["running"] is False
    assert st["asterisk"]["ami"] == "127.0.0.1:5038"
    assert st["asterisk"]["service_number"] == "95598"
    assert st["cti"]["web"] == "http://127.0.0.1:8098/"  # the desktop, served by the CTI
