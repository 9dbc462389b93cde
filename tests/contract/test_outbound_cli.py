"""`hotline outbound`: the do-not-call list (any spelling in, national form kept, each change
audited, clear errors with exit codes) and the jobs with their attempts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.db import outbound as store
from cti.db.models_recordings import AuditLog
from hotline.cli import main
from outbound.outcome import Outcome
from tests.support.cli import cli_json


@pytest.fixture
def db(cli_db: sessionmaker[Session]) -> sessionmaker[Session]:
    """The CLI's own database (tests/contract/conftest.py)."""
    return cli_db



def test_do_not_call_list_add_remove_audited(runner: CliRunner,
                                            db: sessionmaker[Session]) -> None:
    res = runner.invoke(main, ["outbound", "dnc", "add", "+86 138-0013-8000",
                               "--reason", "客户要求不再来电"])
    assert res.exit_code == 0 and "13800138000 will not be called" in res.output, res.output
    assert cli_json(runner, "outbound", "dnc", "list") == ["13800138000"]
    table = runner.invoke(main, ["outbound", "dnc", "list"]).output
    assert "added (Asia/Shanghai)" in table and "客户要求不再来电" in table  # who, why and when
    assert "no outbound jobs" in runner.invoke(main, ["outbound", "jobs"]).output
    res = runner.invoke(main, ["outbound", "dnc", "add", "13800138000", "--reason", "again"])
    assert res.exit_code == 1 and "already" in res.output, res.output
    res = runner.invoke(main, ["outbound", "dnc", "remove", "0086 13800138000"])
    assert res.exit_code == 0, res.output
    assert cli_json(runner, "outbound", "dnc", "list") == []
    assert "the do-not-call list is empty" in runner.invoke(main, ["outbound", "dnc", "list"]
                                                            ).output
    # refused, with the reason and exit 1; a missing --reason is a usage error (2)
    for args, code, text in [
        (["outbound", "dnc", "remove", "13800138000"], 1, "is not on the do-not-call list"),
        (["outbound", "dnc", "add", "call me", "--reason", "x"], 1, "not a telephone number"),
        (["outbound", "dnc", "add", "13800138000"], 2, "--reason"),
    ]:
        res = runner.invoke(main, args)
        assert res.exit_code == code and text in res.output, (args, res.output)
    with db() as s:
        rows = s.execute(select(AuditLog.action, AuditLog.target, AuditLog.role)
                         .where(AuditLog.action.like("outbound.%"))
                         .order_by(AuditLog.id)).all()
    assert [tuple(r) for r in rows] == [("outbound.dnc_add", "13800138000", "admin"),
                                        ("outbound.dnc_remove", "13800138000", "admin")]


def test_jobs_with_their_attempts(runner: CliRunner, db: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    with db.begin() as s:
        job = store.schedule(s, purpose="return_visit", number="13800138000", lang="zh",
                             now=now, created_by="system", work_order_number="26120600001")
        attempt = store.begin_attempt(s, job.job_id, now)
        assert attempt is not None
        store.finish_attempt(s, attempt, outcome=Outcome.BUSY, ended_at=now, reason=5,
                             cause=17)
    [doc] = cli_json(runner, "outbound", "jobs", "--order", "26120600001")
    assert (doc["purpose"], doc["number"], doc["state"], doc["attempts"]) == (
        "return_visit", "13800138000", "dialing", 1)
    assert [(t["outcome"], t["reason"], t["cause"]) for t in doc["tries"]] == [
        ("busy", 5, 17)]
    res = runner.invoke(main, ["outbound", "jobs"])
    assert res.exit_code == 0 and "SIP cause" in res.output and "busy" in res.output, res.output
