"""`hotline callers`: the nuisance and VIP lists from the shell (any spelling in, national form
kept, each change audited, clear errors with exit codes)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.db import callers as store
from cti.db.models_recordings import AuditLog
from hotline.cli import main
from tests.support.cli import cli_json


@pytest.fixture
def db(cli_db: sessionmaker[Session]) -> sessionmaker[Session]:
    """The CLI's own database (tests/contract/conftest.py)."""
    return cli_db



@pytest.mark.parametrize("kind", ["nuisance", "vip"])
def test_a_list_from_the_shell_audited(runner: CliRunner, db: sessionmaker[Session],
                                       kind: str) -> None:
    assert f"the {kind} list is empty" in runner.invoke(main, ["callers", "list", kind]).output
    res = runner.invoke(main, ["callers", "add", kind, "+86 139-0000-0008", "--reason", "核实"])
    assert res.exit_code == 0 and f"13900000008 is on the {kind} list" in res.output, res.output
    assert store.kinds_in(db, "13900000008") == {kind}
    assert [e["number"] for e in cli_json(runner, "callers", "list", kind)] == ["13900000008"]
    table = runner.invoke(main, ["callers", "list", kind]).output
    assert "added (Asia/Shanghai)" in table and "核实" in table
    for args, code, text in [
        (["callers", "add", kind, "13900000008", "--reason", "again"], 1, "already"),
        (["callers", "add", kind, "call me", "--reason", "x"], 1, "not a telephone number"),
        (["callers", "add", kind, "13900000008"], 2, "--reason"),
        (["callers", "add", "friends", "13900000008", "--reason", "x"], 2, "friends"),
    ]:
        res = runner.invoke(main, args)
        assert res.exit_code == code and text in res.output, (args, res.output)
    res = runner.invoke(main, ["callers", "remove", kind, "0086 13900000008"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["callers", "remove", kind, "13900000008"])
    assert res.exit_code == 1 and "is not on the" in res.output
    with db() as s:
        rows = s.execute(select(AuditLog.action, AuditLog.target, AuditLog.role)
                         .where(AuditLog.action.like("callers.%"))
                         .order_by(AuditLog.id)).all()
    assert [tuple(r) for r in rows] == [(f"callers.add_{kind}", "13900000008", "admin"),
                                        (f"callers.remove_{kind}", "13900000008", "admin")]
