"""The recorder's CTI adapter with fakes at its ports (AMI) on a real SQLite index: the AMI tap,
indexing a finished leg only once Asterisk has closed its file, the reconciler with AstDB
metadata, and the daily purge's schedule."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.recorder import RecorderSettings
from cti.db.migrate import upgrade
from cti.db.models_recordings import Recording
from cti.db.recorder_store import DbRecordingIndex
from cti.db.session import make_engine, make_session_factory
from hotline.wiring import observed
from recorder.service import RecorderService
from tests.support.fakes import FakeAmi
from tests.support.wav import leave_open, write_tone_wav

T0 = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
REL = "20261127/1764210600.7_1764210612.9_seat07.wav"
IN_CHROOT = "/var/lib/hotline/recordings/" + REL


def _wav(path: Path, seconds: float, closed: bool = True) -> None:
    write_tone_wav(path, seconds)
    if not closed:  # as Asterisk leaves it while it still writes
        leave_open(path)


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'rec.db'}"
    upgrade(url)
    return make_session_factory(make_engine(url))


def _service(tmp_path: Path, sessions: sessionmaker[Session], **kw: Any) -> RecorderService:
    settings = RecorderSettings(storage_dir=tmp_path / "recordings", **kw)
    return RecorderService(settings, DbRecordingIndex(sessions), clock=lambda: T0)


def _rows(sessions: sessionmaker[Session]) -> list[Recording]:
    with sessions() as s:
        return list(s.scalars(select(Recording)))


async def test_the_tap_passes_every_event_on_and_keeps_the_recording_ones(
        tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    svc = _service(tmp_path, sessions)
    events = [{"Event": "Newchannel"},
              {"Event": "UserEvent", "UserEvent": "HotlineRecordingDone", "File": IN_CHROOT},
              {"Event": "UserEvent", "UserEvent": "HotlineOffer"}]

    async def source() -> AsyncIterator[dict[str, str]]:
        for e in events:
            yield e

    assert [e async for e in observed(source(), svc.observe)] == events
    assert svc._done.qsize() == 1


async def test_a_leg_is_indexed_once_asterisk_has_closed_its_file(
        tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    svc = _service(tmp_path, sessions)
    ami = FakeAmi(astdb={"hotline-rec/20261127/1764210600.7_1764210612.9":
                         "13900001111|general|1"})
    svc.ami = ami
    path = svc.storage_dir / REL
    _wav(path, 4.0, closed=False)
    msg = {"Event": "UserEvent", "UserEvent": "HotlineRecordingDone", "File": IN_CHROOT,
           "Queue": "general", "Caller": "13900001111", "CallerIDNum": "8007",
           "StartEpoch": str(int(T0.timestamp()))}
    task = asyncio.create_task(svc.index_event(msg))
    done, _ = await asyncio.wait({task}, timeout=0.3)
    assert not done and _rows(sessions) == []  # still open: not indexed yet
    _wav(path, 4.0, closed=True)                        # Asterisk closes it
    await asyncio.wait_for(task, 5)
    [rec] = _rows(sessions)
    assert (rec.call_id, rec.seat, rec.queue, rec.caller_number, rec.indexed_by) == (
        "1764210600.7", "seat07", "general", "13900001111", "event")
    assert rec.duration_s == pytest.approx(4.0) and rec.started_at == T0
    # the event said it all: no AstDB round trip, and no DBDel (the CTI's AMI user may not;
    # the dialplan drops each day's notes, hotline-rec-tidy)
    assert ami.sent == []


async def test_a_message_shorter_than_its_leg_is_no_unrecorded_leg(
        tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    """A return visit's voice message (回访留言) ends at # or silence, the call later (the
    goodbye): the file is as long as the customer spoke, not a truncated leg."""
    svc = _service(tmp_path, sessions)
    unrecorded: list[Any] = []
    svc.unrecorded_log = type("Log", (), {"unrecorded": lambda _s, leg, _at:
                                          unrecorded.append(leg)})()
    call = "pbx1-1764210600.900000007"
    rel = f"20261127/{call}_{call}_msg.wav"
    _wav(svc.storage_dir / rel, 3.0)
    start = int(T0.timestamp())
    await svc.index_event({"Event": "UserEvent", "UserEvent": "HotlineRecordingDone",
                           "File": "/var/lib/hotline/recordings/" + rel, "Queue": "ivr",
                           "CallerIDNum": "13800138000", "StartEpoch": str(start),
                           "EndEpoch": str(start + 12)})
    [rec] = _rows(sessions)
    assert (rec.call_id, rec.kind, rec.seat, rec.queue, rec.caller_number) == (
        call, "ivr", "msg", None, "13800138000")
    assert unrecorded == [] and svc.unrecorded == 0


async def test_a_bad_file_name_in_an_event_is_ignored(tmp_path: Path,
                                                     sessions: sessionmaker[Session]) -> None:
    svc = _service(tmp_path, sessions)
    await svc.index_event({"File": "/etc/passwd"})
    await svc.index_event({"File": "/var/lib/hotline/recordings/../../../etc/x.wav"})
    assert _rows(sessions) == []


async def test_the_reconciler_indexes_with_what_asterisk_kept(
        tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    svc = _service(tmp_path, sessions)
    started = int((T0 - timedelta(minutes=5)).timestamp())
    legacy = "20261126/1764110000.1_1764110000.2_seat03.wav"
    svc.ami = ami = FakeAmi(astdb={
        "hotline-rec/20261127/1764210600.7_1764210612.9": f"13900002222|hotline-agents|{started}",
        # a note from a dialplan that did not keep them by day
        "hotline-rec/1764110000.1_1764110000.2": f"13900003333|general|{started}"})
    _wav(svc.storage_dir / REL, 2.0)
    _wav(svc.storage_dir / "20261127/1764210700.1_1764210700.5_seat02.wav", 1.0)
    _wav(svc.storage_dir / legacy, 1.0)
    (svc.storage_dir / "notes.txt").write_text("not ours")
    doc = await svc.reconcile()
    assert sorted(doc["indexed"]) == [legacy, REL,
                                      "20261127/1764210700.1_1764210700.5_seat02.wav"]
    assert doc["stray"] == [{"file": "notes.txt", "ours": False}] and not doc["clean"]
    recs = {r.rel_path: r for r in _rows(sessions)}
    assert (recs[REL].caller_number, recs[REL].queue, recs[REL].indexed_by) == (
        "13900002222", "hotline-agents", "reconcile")
    assert recs[REL].started_at == datetime.fromtimestamp(started, UTC)
    # no metadata for the other one: indexed all the same, by the file's own times
    other = recs["20261127/1764210700.1_1764210700.5_seat02.wav"]
    assert (other.caller_number, other.queue) == (None, None)
    assert (recs[legacy].caller_number, recs[legacy].queue) == ("13900003333", "general")
    assert ami.named("DBDel") == [] and len(ami.astdb) == 2  # the dialplan drops them by day
    again = await svc.reconcile()
    assert again["ok"] == 3 and again["indexed"] == []
    # retention deleted one but its file is still there: pending removal, not stray
    with sessions.begin() as s:
        s.scalars(select(Recording).where(Recording.rel_path == REL)).one().deleted_at = T0
    third = await svc.reconcile()
    assert third["pending_removal"] == [REL] and third["ok"] == 2
    assert REL not in {x["file"] for x in third["stray"]} and third["indexed"] == []


async def test_a_message_left_while_the_cti_was_down_is_indexed_at_its_start(
        tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    """Nobody heard the message's HotlineRecordingDone: the reconciler indexes the file with
    the call's AstDB note (the customer's number), marked as a message."""
    svc = _service(tmp_path, sessions)
    call = "pbx1-1764210600.900000007"
    rel = f"20261127/{call}_{call}_msg.wav"
    started = int((T0 - timedelta(minutes=2)).timestamp())
    svc.ami = FakeAmi(astdb={f"hotline-rec/20261127/{call}_{call}": f"13800138000|ivr|{started}"})
    _wav(svc.storage_dir / rel, 6.0)
    doc = await svc.reconcile()
    assert doc["indexed"] == [rel]
    [rec] = _rows(sessions)
    assert (rec.call_id, rec.kind, rec.seat, rec.caller_number, rec.indexed_by) == (
        call, "ivr", "msg", "13800138000", "reconcile")


def test_the_daily_purge_runs_at_the_local_hour(tmp_path: Path,
                                                sessions: sessionmaker[Session]) -> None:
    svc = _service(tmp_path, sessions, purge_hour=3)
    # 02:30 UTC is 10:30 in Beijing: next 03:00 Beijing is tomorrow 19:00 UTC
    assert svc.next_purge(T0) == datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
    assert svc.next_purge(datetime(2026, 11, 26, 18, 59, tzinfo=UTC)) == datetime(
        2026, 11, 26, 19, 0, tzinfo=UTC)
