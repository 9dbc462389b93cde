"""Supervision's audit tables on SQLite and PostgreSQL: schema = models, the trail, refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cti.db import supervision as db
from cti.db.models import Base
from cti.db.models_recordings import AuditLog
from cti.db.models_supervision import SupervisionSession
from tests.db.conftest import NOW

SID = "0123456789abcdef0123456789abcdef"


def test_migration_matches_models(engine: Engine) -> None:
    mine = MetaData(naming_convention=Base.metadata.naming_convention)
    for name in ("supervision_sessions", "supervision_modes"):
        Base.metadata.tables[name].to_metadata(mine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                     "compare_server_default": True})
        diffs = [d for d in compare_metadata(ctx, mine)
                 if not (d[0] == "remove_table" and d[1].name not in mine.tables)]
        diffs = [d for d in diffs if not (d[0] == "remove_index"
                                          and d[1].table.name not in mine.tables)]
    assert diffs == []


def test_session_trail(session_factory: sessionmaker[Session]) -> None:
    t = NOW
    with session_factory.begin() as s:
        db.record_start(s, session_id=SID, supervisor_id="S01", role="supervisor",
                        endpoint="sup01", call_id="1751333405.42", agent_id="A001",
                        seat="seat07", mode="listen", via="web", at=t)
        db.record_mode(s, session_id=SID, mode="listen", begin=True,
                       at=t + timedelta(seconds=3), answered=True)
        db.record_mode(s, session_id=SID, mode="listen", begin=False,
                       at=t + timedelta(seconds=10))
        db.record_mode(s, session_id=SID, mode="barge", begin=True,
                       at=t + timedelta(seconds=10))
        db.record_end(s, session_id=SID, reason="stopped", at=t + timedelta(seconds=20))
        db.record_end(s, session_id=SID, reason="hangup", at=t + timedelta(seconds=21))
    with session_factory() as s:
        doc = db.session_doc(s, SID)
        assert doc is not None
        assert (doc["supervisor_id"], doc["agent_id"], doc["call_id"], doc["mode"]) == (
            "S01", "A001", "1751333405.42", "listen")
        assert doc["answered_at"] == t + timedelta(seconds=3)
        assert doc["ended_at"] == t + timedelta(seconds=20) and doc["end_reason"] == "stopped"
        assert [(m["mode"], m["started_at"], m["ended_at"]) for m in doc["modes"]] == [
            ("listen", t + timedelta(seconds=3), t + timedelta(seconds=10)),
            # the open period closed with the session
            ("barge", t + timedelta(seconds=10), t + timedelta(seconds=20))]
        actions = s.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
        assert actions == ["supervision.start", "supervision.end"]


def test_refusal_on_record(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as s:
        db.record_refusal(s, session_id=SID, supervisor_id="A002", role="agent",
                          call_id="1751333405.42", agent_id=None, mode="listen",
                          reason="forbidden", via="mqtt", at=NOW)
    with session_factory() as s:
        row = s.scalars(select(SupervisionSession)).one()
        assert (row.outcome, row.refusal, row.supervisor_id, row.ended_at) == (
            "refused", "forbidden", "A002", NOW)
        log = s.scalars(select(AuditLog)).one()
        assert (log.action, log.allowed, log.actor, log.role) == (
            "supervision.refused", False, "A002", "agent")


def test_refused_row_needs_a_reason(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s:
        s.add(SupervisionSession(session_id=SID, supervisor_id="A002", supervisor_role="agent",
                                 outcome="refused", refusal=None, via="web", requested_at=NOW))
        with pytest.raises(IntegrityError):
            s.flush()


def test_end_open_sessions(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as s:
        db.record_start(s, session_id=SID, supervisor_id="S01", role="supervisor",
                        endpoint="sup01", call_id="1.2", agent_id="A001", seat="seat07",
                        mode="whisper", via="mqtt", at=NOW)
        assert db.end_open_sessions(s, NOW + timedelta(seconds=5)) == 1
        assert db.end_open_sessions(s, NOW + timedelta(seconds=6)) == 0
