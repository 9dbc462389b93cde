"""The recording index on SQLite and PostgreSQL: idempotent indexing with the leg's agent,
search by every filter, the retention purge with its deletion log, the audit log."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from argon2 import PasswordHasher
from sqlalchemy import Engine, MetaData, event, select
from sqlalchemy.orm import Session, sessionmaker

from cti.db.agents import close_session, create_agent, open_session
from cti.db.calls import record_call_start
from cti.db.models import Base, Call, WorkOrder
from cti.db.models_recordings import AuditLog, Recording, RecordingDeletion
from cti.db.recordings import (
    RecordingFacts,
    RecordingQuery,
    audit,
    index_recording,
    index_rows,
    purge,
    remove_deleted_files,
    search,
)
from recorder.retention import RetentionPolicy

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
MINE = ("recordings", "recording_deletions", "audit_log")


def test_migration_matches_the_recorder_models(engine: Engine) -> None:
    mine = MetaData(naming_convention=Base.metadata.naming_convention)
    for name in MINE:
        Base.metadata.tables[name].to_metadata(mine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                     "compare_server_default": True})
        diffs = [d for d in compare_metadata(ctx, mine)
                 if any(f"'{t}'" in repr(d) for t in MINE)]
    assert diffs == []


def _facts(rel: str, started: datetime, duration: float = 30.0, **kw: object) -> RecordingFacts:
    return RecordingFacts(rel_path=rel, started_at=started, duration_s=duration,
                          size=int(duration * 16000) + 44, sha256="ab" * 32,
                          indexed_by=str(kw.pop("indexed_by", "event")), **kw)  # type: ignore[arg-type]


def _order(s: Session, number: str, call_id: str, kind: str, now: datetime) -> None:
    s.add(WorkOrder(number=number, type=kind, status="accepted", caller_number="13900000001",
                    description="-", channel="agent", call_id=call_id, created_at=now))
    s.flush()


@pytest.fixture
def world(session_factory: sessionmaker[Session], now: datetime) -> sessionmaker[Session]:
    """Two agents (A1 at seat01 the whole time, A2 at seat02 from now - 1 h); two calls."""
    with session_factory.begin() as s:
        for a in ("A1", "A2"):
            create_agent(s, agent_id=a, name=a, role="agent", password="pw",
                         skills={"general": 3}, now=now - timedelta(days=2), hasher=FAST)
        open_session(s, agent_id="A1", seat="seat01", now=now - timedelta(days=1))
        # A2 sat at seat02 from 5 h to 4 h ago, and at seat03 from an hour ago
        open_session(s, agent_id="A2", seat="seat02", now=now - timedelta(hours=5))
        close_session(s, "A2", now - timedelta(hours=4), "A2")
        open_session(s, agent_id="A2", seat="seat03", now=now - timedelta(hours=1))
        for call_id, number in (("100.1", "13900000001"), ("200.1", "13900000002")):
            record_call_start(s, call_id=call_id, uniqueid=call_id, caller_number=number,
                              dnis="95598", now=now - timedelta(hours=6))
        s.scalars(select(Call).where(Call.call_id == "100.1")).one().account_no = "1000000001"
    return session_factory


def test_indexing_is_idempotent_and_finds_the_legs_agent(world: sessionmaker[Session],
                                                         now: datetime) -> None:
    rel = "20261127/100.1_100.2_seat01.wav"
    with world.begin() as s:
        rec = index_recording(s, _facts(rel, now - timedelta(minutes=30), queue="general"), now)
        assert (rec.call_id, rec.leg_id, rec.seat, rec.agent_id, rec.kind) == (
            "100.1", "100.2", "seat01", "A1", "agent")
        # the caller's number came from the call record
        assert rec.caller_number == "13900000001" and rec.queue == "general"
    with world.begin() as s:  # the reconciler finds it again: the first row stays
        again = index_recording(s, _facts(rel, now, 99.0, indexed_by="reconcile"), now)
        assert (again.id, again.indexed_by, again.duration_s) == (rec.id, "event", 30.0)
    with world.begin() as s:
        # a leg at seat02 four and a half hours ago: A2 was logged in there then
        old = index_recording(s, _facts("20261127/200.1_200.5_seat02.wav",
                                        now - timedelta(hours=4, minutes=30)), now)
        assert old.agent_id == "A2"
        nobody = index_recording(s, _facts("20261127/200.1_200.6_seat02.wav",
                                           now - timedelta(hours=3)), now)
        assert nobody.agent_id is None
        ivr = index_recording(s, _facts("20261127/200.1_200.1_ivr.wav", now), now)
        # the call's queue (skill) is the agent side's, not the IVR part's
        s.scalars(select(Call).where(Call.call_id == "200.1")).one().skill = "general"
        ivr = index_recording(s, _facts("20261127/200.1_200.9_ivr.wav", now), now)
        assert (ivr.kind, ivr.seat, ivr.agent_id, ivr.queue) == ("ivr", None, None, None)
        assert set(index_rows(s)) == {rel, "20261127/200.1_200.5_seat02.wav",
                                      "20261127/200.1_200.6_seat02.wav",
                                      "20261127/200.1_200.1_ivr.wav",
                                      "20261127/200.1_200.9_ivr.wav"}


def test_transferred_call_keeps_every_leg_on_one_call(world: sessionmaker[Session],
                                                      now: datetime) -> None:
    with world.begin() as s:
        index_recording(s, _facts("20261127/100.1_100.2_seat01.wav",
                                  now - timedelta(minutes=20), 40), now)
        index_recording(s, _facts("20261127/100.1_100.7_seat03.wav",
                                  now - timedelta(minutes=19), 60), now)
        rows = search(s, RecordingQuery(caller="13900000001"))
    assert [(r["call_id"], r["seat"], r["agent_id"]) for r in rows] == [
        ("100.1", "seat03", "A2"), ("100.1", "seat01", "A1")]


def test_search_by_every_filter(world: sessionmaker[Session], now: datetime) -> None:
    with world.begin() as s:
        a = index_recording(s, _facts("20261127/100.1_100.2_seat01.wav",
                                      now - timedelta(minutes=30), 30, queue="general"), now).id
        b = index_recording(s, _facts("20261127/200.1_200.2_seat03.wav",
                                      now - timedelta(minutes=10), 300, queue="repair"), now).id
        _order(s, "20261127001", "200.1", "complaint", now)

    def ids(**kw: object) -> list[int]:
        with world() as s:
            return [r["id"] for r in search(s, RecordingQuery(**kw))]  # type: ignore[arg-type]

    assert ids() == [b, a]
    assert ids(start=now - timedelta(minutes=20)) == [b]
    assert ids(end=now - timedelta(minutes=20)) == [a]
    assert ids(agent_id="A1") == [a]
    assert ids(caller="13900000002") == [b]
    assert ids(account="1000000001") == [a]
    assert ids(work_order="20261127001") == [b]
    assert ids(queue="repair") == [b]
    assert ids(min_duration=60) == [b]
    assert ids(max_duration=60) == [a]
    assert ids(limit=1, offset=1) == [a]
    with world() as s:
        [doc] = search(s, RecordingQuery(work_order="20261127001"))
    assert doc["work_orders"] == [{"number": "20261127001", "type": "complaint",
                                   "status": "accepted"}]


@pytest.mark.parametrize("kw, message", [
    ({"limit": 0}, "limit"), ({"offset": -1}, "offset"),
    ({"min_duration": -1.0}, "min_duration"), ({"min_duration": 9.0, "max_duration": 1.0},
                                               "above"),
    ({"start": datetime(2026, 1, 2)}, "time zone"),
])
def test_bad_queries_are_refused_clearly(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RecordingQuery(**kw)  # type: ignore[arg-type]


def test_purge_keeps_complaints_longer_than_consultations_and_logs_deletions(
        world: sessionmaker[Session], now: datetime, tmp_path: Path) -> None:
    policy = RetentionPolicy(180, {"complaint": 730, "consultation": 90})
    day100 = now - timedelta(days=100)
    files = {"consult": "20260819/100.1_100.2_seat01.wav",
             "complaint": "20260819/200.1_200.2_seat01.wav",
             "none": "20260819/300.1_300.2_seat01.wav"}
    for rel in files.values():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"RIFF")
    with world.begin() as s:
        for rel in files.values():
            index_recording(s, _facts(rel, day100), now)
        _order(s, "20260819001", "100.1", "consultation", day100)
        _order(s, "20260819002", "200.1", "complaint", day100)
    with world.begin() as s:
        dry = purge(s, policy, now, "cli", dry_run=True)
    assert [d["file"] for d in dry] == [files["consult"]]
    assert (tmp_path / files["consult"]).exists()
    with world.begin() as s:
        done = purge(s, policy, now, "retention")
    assert [(d["file"], d["category"], d["retention_days"]) for d in done] == [
        (files["consult"], "consultation", 90)]
    # the file goes after the commit; a removal that fails is retried next time
    def refuse(_p: Path) -> None:
        raise PermissionError("read-only")

    assert remove_deleted_files(world, tmp_path, unlink=refuse) == [files["consult"]]
    assert (tmp_path / files["consult"]).exists()
    assert remove_deleted_files(world, tmp_path) == []
    assert not (tmp_path / files["consult"]).exists()
    assert (tmp_path / files["complaint"]).exists() and (tmp_path / files["none"]).exists()
    with world() as s:
        [log] = s.scalars(select(RecordingDeletion)).all()
        assert (log.rel_path, log.category, log.retention_days, log.actor, log.deleted_at) == (
            files["consult"], "consultation", 90, "retention", now)
        gone = s.scalars(select(Recording).where(Recording.rel_path == files["consult"])).one()
        assert gone.deleted_at == now
        assert files["consult"] not in index_rows(s)
        assert {r["file"] for r in search(s, RecordingQuery())} == {files["none"],
                                                                     files["complaint"]}
    # 200 days on: the call with no order goes (default 180), the complaint stays
    with world.begin() as s:
        done = purge(s, policy, now + timedelta(days=100), "retention")
    assert [d["file"] for d in done] == [files["none"]]


def test_purge_reads_in_batches_only_what_could_have_run_out(
        world: sessionmaker[Session], now: datetime, tmp_path: Path) -> None:
    """The daily purge never holds every recording: it reads only those older than the
    shortest retention, a batch at a time; and the files of older deletions are not looked
    at again when the purge asks only for the recent ones."""
    policy = RetentionPolicy(180, {"consultation": 90})
    assert policy.shortest_days() == 90
    old = [f"20260519/{i}.1_{i}.2_seat01.wav" for i in range(1, 7)]
    young = "20261120/900.1_900.2_seat01.wav"  # 10 days old: cannot have run out
    with world.begin() as s:
        for rel in old:
            index_recording(s, _facts(rel, now - timedelta(days=200)), now)
        index_recording(s, _facts(young, now - timedelta(days=10)), now)
    reads: list[str] = []

    def seen(_conn: object, _cur: object, statement: str, *_a: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM recordings" in statement:
            reads.append(statement)

    engine = world.kw["bind"]
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with world.begin() as s:
            done = purge(s, policy, now, "retention", batch=4)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert sorted(d["file"] for d in done) == sorted(old)
    assert len(reads) == 2  # 4, then 2 (under the batch: the last); the young one never read
    with world() as s:
        assert s.scalars(select(Recording.rel_path)
                         .where(Recording.deleted_at.is_(None))).all() == [young]
    # a file whose removal failed long ago is left to `hotline recordings purge` (all)
    (tmp_path / old[0]).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / old[0]).write_bytes(b"RIFF")
    assert remove_deleted_files(world, tmp_path, since=now + timedelta(days=1)) == []
    assert (tmp_path / old[0]).exists()
    assert remove_deleted_files(world, tmp_path, since=now - timedelta(days=30)) == []
    assert not (tmp_path / old[0]).exists()


def test_audit_lines(session_factory: sessionmaker[Session], now: datetime) -> None:
    with session_factory.begin() as s:
        audit(s, now=now, actor="S01", role="supervisor", action="recording.audio",
              target="7", allowed=True, client_ip="127.0.0.1", detail={"range": "bytes=0-"})
        audit(s, now=now, actor="A001", role="agent", action="recording.audio", target="7",
              allowed=False, detail={"reason": "role"})
    with session_factory() as s:
        rows = s.scalars(select(AuditLog).order_by(AuditLog.id)).all()
    assert [(r.actor, r.allowed, r.at, r.detail) for r in rows] == [
        ("S01", True, now, {"range": "bytes=0-"}), ("A001", False, now, {"reason": "role"})]
    with pytest.raises(ValueError, match="naive"):
        with session_factory.begin() as s:
            audit(s, now=now.replace(tzinfo=None), actor="x", role=None, action="x",
                  target=None, allowed=True)
