"""The durable journal (callcenter/journal.py) without a database: entry format, replay order,
dedupe, a torn last line, the file's mode, and DurableWrites against a fake session factory
that can be made unavailable."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from callcenter.journal import (
    DatabaseUnavailable,
    DurableWrites,
    Entry,
    FileJournal,
    decode,
    encode,
    encode_done,
    pending,
)


def test_an_entry_round_trips_and_keeps_unicode() -> None:
    e = Entry(10, 1, "c1:workorder", "workorder", {"caller": "13800000001", "note": "停电"})
    entries, done = decode([encode(e).rstrip(b"\n")])
    assert entries == [e] and entries[0].data == e.data and entries[0].key == e.key
    assert done == set()
    assert "停电".encode() in encode(e)


def test_replay_order_is_issue_order_not_journal_order() -> None:
    # the call's start met the outage late (its attempt blocked), its outcome was journalled
    # first: the start still replays first
    late_start = Entry(100, 1, "c1:start", "call_start")
    outcome = Entry(200, 2, "c1:ivr", "ivr_outcome")
    tie = Entry(100, 0, "c2:start", "call_start")
    assert pending([outcome, late_start, tie], set()) == [tie, late_start, outcome]


def test_a_key_replays_once_and_never_after_done() -> None:
    first = Entry(1, 0, "c1:end", "call_end", {"abandoned": False})
    again = Entry(2, 1, "c1:end", "call_end", {"abandoned": True})
    other = Entry(3, 2, "c2:end", "call_end")
    assert pending([again, first, other], set()) == [first, other]
    assert pending([first, again, other], {"c1:end"}) == [other]


def test_a_torn_last_line_is_skipped_and_done_marks_are_read() -> None:
    lines = [encode(Entry(1, 0, "a", "call_start")).rstrip(b"\n"),
             encode_done("a").rstrip(b"\n"),
             encode(Entry(2, 1, "b", "call_start"))[:17]]  # a crash in mid-append
    entries, done = decode(lines)
    assert [e.key for e in entries] == ["a"] and done == {"a"}


def test_the_file_is_0600_appends_survive_reopen_and_clears_only_when_done(
        tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    j = FileJournal(path)
    j.append(Entry(1, 0, "a", "call_start", {"x": 1}))
    j.append(Entry(2, 1, "b", "call_end"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [e.key for e in FileJournal(path).pending()] == ["a", "b"]
    j.mark_done("a")
    assert not j.clear_if_done()
    assert [e.key for e in j.pending()] == ["b"]
    j.mark_done("b", failed="refused")
    assert j.clear_if_done() and path.stat().st_size == 0


def test_a_link_in_the_journals_place_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    (tmp_path / "j.jsonl").symlink_to(target)
    with pytest.raises(OSError):
        FileJournal(tmp_path / "j.jsonl").append(Entry(1, 0, "a", "call_start"))
    assert target.read_text() == ""


class FakeDb:
    """A session factory whose sessions fail like an unreachable database while `down`."""

    def __init__(self) -> None:
        self.down = False
        self.rows: list[tuple[str, dict[str, Any]]] = []

    @contextmanager
    def begin(self) -> Iterator[FakeDb]:
        if self.down:
            raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
        yield self

    def execute(self, *_a: Any) -> None:
        return None


def _writer(tmp_path: Path) -> tuple[DurableWrites, FakeDb]:
    db = FakeDb()
    w = DurableWrites(db, FileJournal(tmp_path / "j.jsonl"))  # type: ignore[arg-type]

    def add(kind: str) -> Any:
        def apply(s: FakeDb, d: dict[str, Any]) -> str:
            s.rows.append((kind, d))
            return f"{kind}-{d['id']}"
        return apply
    for kind in ("call_start", "workorder", "call_end"):
        w.register(kind, add(kind))
    return w, db


def test_an_outage_journals_then_replays_in_order_once(tmp_path: Path) -> None:
    w, db = _writer(tmp_path)
    assert w.write("call_start", "c1:start", {"id": 1}) == (True, "call_start-1")
    db.down = True
    assert w.write("call_start", "c2:start", {"id": 2}) == (False, None)
    assert w.down
    with pytest.raises(DatabaseUnavailable):
        w.read(lambda s: 1)  # a lookup fails at once while the database is away
    db.down = False
    # up again but the journal is not empty: writes still queue behind it, in order
    assert w.write("workorder", "c2:workorder", {"id": 3}) == (False, None)
    assert w.write("call_start", "c2:start", {"id": 2}) == (False, None)  # a repeat
    assert w.replay_once()
    assert db.rows == [("call_start", {"id": 1}), ("call_start", {"id": 2}),
                       ("workorder", {"id": 3})]
    assert w.journal.pending() == [] and (tmp_path / "j.jsonl").stat().st_size == 0
    assert w.write("call_end", "c2:end", {"id": 4}) == (True, "call_end-4")  # direct again
    w.close()


def test_a_replay_cut_short_resumes_where_it_stopped(tmp_path: Path) -> None:
    w, db = _writer(tmp_path)
    db.down = True
    for i in range(3):
        w.write("call_start", f"c{i}:start", {"id": i})
    db.down = False
    w.journal.mark_done("c0:start")  # the CTI died after c0's commit and its mark
    w2, db2 = _writer(tmp_path)  # the next CTI: a journal left over means journalling
    assert w2.write("call_end", "c9:end", {"id": 9}) == (False, None)
    assert w2.replay_once()
    assert [d["id"] for _k, d in db2.rows] == [1, 2, 9]
    w.close()
    w2.close()


def test_a_write_the_database_refuses_is_not_journalled(tmp_path: Path) -> None:
    w, _db = _writer(tmp_path)

    def bad(_s: Any, _d: dict[str, Any]) -> None:
        raise IntegrityError("INSERT", {}, Exception("unique"))
    w.register("call_end", bad)
    with pytest.raises(IntegrityError):
        w.write("call_end", "c1:end", {"id": 1})
    assert not w.down and not os.path.exists(tmp_path / "j.jsonl")
    w.close()


def test_an_append_after_a_torn_line_starts_a_line_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(encode(Entry(1, 0, "a", "call_start"))[:20])
    os.chmod(path, 0o600)
    FileJournal(path).append(Entry(2, 1, "b", "call_start"))
    assert [e.key for e in FileJournal(path).pending()] == ["b"]
