"""`hotline calendars`: a skill's week, its after-hours route and its holidays from the shell
(each change audited, refusals with the reason and exit code 1, bad options exit code 2)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.calendar import decide
from cti.db import calendars as store
from cti.db.models_recordings import AuditLog
from hotline.cli import main
from tests.support.cli import cli_json

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def db(cli_db: sessionmaker[Session]) -> sessionmaker[Session]:
    """The CLI's own database (tests/contract/conftest.py)."""
    return cli_db



def test_hours_routes_and_holidays_from_the_shell_audited(runner: CliRunner,
                                                          db: sessionmaker[Session]) -> None:
    assert "every skill is open 7×24" in runner.invoke(main, ["calendars", "list"]).output
    res = runner.invoke(main, ["calendars", "set", "english", "--hours", "08:00-20:00",
                               "--day", "sun=closed", "--route-to", "general"])
    assert res.exit_code == 0 and "from the next call on" in res.output, res.output
    res = runner.invoke(main, ["calendars", "holiday", "english", "2026-10-01",
                               "--note", "国庆节"])
    assert res.exit_code == 0 and "is a holiday of english" in res.output, res.output
    res = runner.invoke(main, ["calendars", "holiday", "english", "2026-10-10",
                               "--hours", "09:00-12:00", "--note", "调休"])
    assert res.exit_code == 0 and "special day" in res.output, res.output

    [cal] = cli_json(runner, "calendars", "list")
    assert (cal["week"]["mon"], cal["week"]["sun"], cal["route_to"]) == (
        "08:00-20:00", "closed", "general")
    assert [(d["day"], d["kind"]) for d in cal["days"]] == [
        ("2026-10-01", "holiday"), ("2026-10-10", "special")]
    table = runner.invoke(main, ["calendars", "list"]).output
    assert "route → general" in table and "2026-10-01:holiday" in table
    d = decide(store.load(db), "english", datetime(2026, 10, 1, 10, tzinfo=SH), SH)
    assert (d.action, d.target) == ("route", "general")

    for args, code, text in [
        (["calendars", "set", "english", "--hours", "8-20"], 1, "not a time"),
        (["calendars", "set", "general", "--hours", "08:00-20:00"], 1, "7×24"),
        (["calendars", "set", "billing", "--hours", "08:00-20:00", "--route-to", "english"],
         0, "set"),
        (["calendars", "set", "english", "--hours", "08:00-20:00", "--route-to", "billing"],
         1, "loop"),
        (["calendars", "set", "english"], 2, "--hours"),
        (["calendars", "set", "english", "--day", "funday=08:00-09:00"], 2, "DAY=HOURS"),
        (["calendars", "set", "english", "--hours", "24h", "--route-to", "general",
          "--callback"], 2, "not both"),
        (["calendars", "holiday", "repair", "2026-10-01"], 1, "set its hours first"),
        (["calendars", "holiday", "english", "2026-13-01"], 2, "2026-13-01"),
    ]:
        res = runner.invoke(main, args)
        assert res.exit_code == code and text in res.output, (args, res.output)

    res = runner.invoke(main, ["calendars", "holiday", "english", "2026-10-10", "--remove"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["calendars", "set", "english", "--remove"])
    assert res.exit_code == 0 and "open 7×24" in res.output
    assert set(store.load(db)) == {"billing"}
    with db() as s:
        rows = s.execute(select(AuditLog.action, AuditLog.target, AuditLog.role)
                         .where(AuditLog.action.like("calendars.%"))
                         .order_by(AuditLog.id)).all()
    assert [tuple(r) for r in rows] == [
        ("calendars.set", "english", "admin"),
        ("calendars.set_day", "english/2026-10-01", "admin"),
        ("calendars.set_day", "english/2026-10-10", "admin"),
        ("calendars.set", "billing", "admin"),
        ("calendars.remove_day", "english/2026-10-10", "admin"),
        ("calendars.remove", "english", "admin")]
