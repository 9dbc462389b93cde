"""`hotline outbound`: the do-not-call list (any spelling in, national form kept, each change
audited, clear errors with exit codes) and the jobs with their attempts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.db import outbound as store
from cti.db.migrate import upgrade
from cti.db.models_recordings import AuditLog
from cti.db.session import make_engine, make_session_factory
from hotline.cli import main
from outbound.outcome import Outcome


@pytest.fixture
def db(tmp_path: Path, runner: CliRunner) -> Iterator[sessionmaker[Session]]:
    """The CLI's own database (tmp_path/var/hotline.db)."""
    (tmp_path / "var").mkdir()
    url = f"sqlite:///{tmp_path / 'var' / 'hotline.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def _json(runner: CliRunner, *args: str) -> Any:
    res = runner.invoke(main, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_do_not_call_list_add_remove_audited(runner: CliRunner,
                                            db: sessionmaker[Session]) -> None:
    res = runner.invoke(main, ["outbound", "dnc", "add", "+86 138-0013-8000",
                               "--reason", "客户要求不再来电"])
    assert res.exit_code == 0 and "13800138000 will not be called" in res.output, res.output
    assert _json(runner, "outbound", "dnc", "list") == ["13800138000"]
    res = runner.invoke(main, ["outbound", "dnc", "remove", "0086 13800138000"])
    assert res.exit_code == 0, res.output
    assert _json(runner, "outbound", "dnc", "list") == []
    # refused, with the reason and exit 1; a missing --reason is a usage error (2)
    for args, code, text in [
        (["outbound", "dnc", "remove", "13800138000"], 1, "is not on the list"),
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
    [doc] = _json(runner, "outbound", "jobs", "--order", "26120600001")
    assert (doc["purpose"], doc["number"], doc["state"], doc["attempts"]) == (
        "return_visit", "13800138000", "dialing", 1)
    assert [(t["outcome"], t["reason"], t["cause"]) for t in doc["tries"]] == [
        ("busy", 5, 17)]
    res = runner.invoke(main, ["outbound", "jobs"])
    assert res.exit_code == 0 and "#1" in res.output and "busy" in res.output, res.output
