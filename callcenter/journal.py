"""The durable journal of the CTI's database writes during an outage (issue 11, "database
unreachable"): fault-report work orders and call-record writes the database cannot take are
appended to a file, fsync'd, and replayed in order, each exactly once, when it is back.

Why a file and not a local SQLite outbox: it serves both deployments the same way (with SQLite
the main database *is* the local file, and a lock on it is exactly the outage), it needs no
schema, and an append plus fsync is all the durability an outbox needs. One JSON object a line:

    {"key": "<call id>:<kind>", "kind": ..., "t": <ns issued>, "n": <counter>, "data": {...}}
    {"done": "<key>"}                      (applied; "failed": why, when it never can be)

The pure part (entry format, replay order, dedupe) is the functions at the top; DurableWrites
below decides, per write, database or journal, and replays. Exactly once: an entry is applied
in its own transaction and marked done after the commit; a CTI that dies between the two
applies it again, so every applier is idempotent on the database (a call-record write is; a
fault report looks for the call's IVR order first).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

T = TypeVar("T")
JOURNAL_NAME = "db-journal.jsonl"
PROBE_S = 0.5  # while the database is away (or the journal not empty), asked this often
MAX_LINE = 1 << 20  # an entry bigger than this is refused, never half-written


# ------------------------------------------------------------------------- the pure part


@dataclass(frozen=True, order=True)
class Entry:
    """One write the database could not take. Ordered by when it was issued (t, n), not when
    it was journalled: a write that met the outage late (its attempt blocked) is replayed
    before the writes issued after it."""

    t: int  # time.time_ns() when the write was issued
    n: int  # a process-wide counter: ties on t
    key: str = field(compare=False)  # idempotency key: the call id and the kind
    kind: str = field(compare=False)
    data: dict[str, Any] = field(compare=False, default_factory=dict)


def encode(entry: Entry) -> bytes:
    line = json.dumps({"key": entry.key, "kind": entry.kind, "t": entry.t, "n": entry.n,
                       "data": entry.data}, ensure_ascii=False, separators=(",", ":"),
                      sort_keys=True, default=str).encode() + b"\n"
    if len(line) > MAX_LINE:
        raise ValueError(f"journal entry {entry.key} is {len(line)} bytes")
    return line


def encode_done(key: str, failed: str | None = None) -> bytes:
    doc: dict[str, str] = {"done": key}
    if failed:
        doc["failed"] = failed[:500]
    return json.dumps(doc, ensure_ascii=False, sort_keys=True).encode() + b"\n"


def decode(lines: Iterable[bytes]) -> tuple[list[Entry], set[str]]:
    """Entries and the keys marked done. A line that does not parse (the last one, torn by a
    crash in the middle of an append) is skipped: its write was never acknowledged."""
    entries: list[Entry] = []
    done: set[str] = set()
    for raw in lines:
        try:
            doc = json.loads(raw)
            if "done" in doc:
                done.add(str(doc["done"]))
                continue
            entries.append(Entry(int(doc["t"]), int(doc["n"]), str(doc["key"]),
                                 str(doc["kind"]), dict(doc["data"])))
        except (ValueError, KeyError, TypeError):
            log.warning("journal: skipping an unreadable line (%d bytes)", len(raw))
    return entries, done


def pending(entries: Iterable[Entry], done: set[str]) -> list[Entry]:
    """What replay applies, in issue order: each key once (the first issued wins: a repeat of a
    key is the same write again), none already done."""
    first: dict[str, Entry] = {}
    for e in sorted(entries):
        if e.key not in done and e.key not in first:
            first[e.key] = e
    return sorted(first.values())


_counter = itertools.count()


def new_entry(kind: str, key: str, data: Mapping[str, Any]) -> Entry:
    return Entry(time.time_ns(), next(_counter), key, kind, dict(data))


# ------------------------------------------------------------------------- the file


class FileJournal:
    """The append-only file: 0600, the CTI user's (it creates it in the state dir), never
    through a symbolic link. Every append and done mark is fsync'd before it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _append(self, data: bytes) -> None:
        with self._lock:
            created = not os.path.lexists(self.path)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
            try:
                os.fchmod(fd, 0o600)
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # after a torn line (a crash mid-append): a new one
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:  # the new name itself must survive a crash
                dfd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)

    def append(self, entry: Entry) -> None:
        self._append(encode(entry))

    def mark_done(self, key: str, failed: str | None = None) -> None:
        self._append(encode_done(key, failed))

    def read(self) -> tuple[list[Entry], set[str]]:
        with self._lock:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                return [], set()
            with os.fdopen(fd, "rb") as f:
                return decode(f.read().splitlines())

    def pending(self) -> list[Entry]:
        return pending(*self.read())

    def clear_if_done(self) -> bool:
        """Empty the file when nothing in it is pending (the one place it shrinks)."""
        with self._lock:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                return True
            try:
                with os.fdopen(os.dup(fd), "rb") as f:
                    left = pending(*decode(f.read().splitlines()))
                if left:
                    return False
                os.ftruncate(fd, 0)
                os.fsync(fd)
                return True
            finally:
                os.close(fd)


# ------------------------------------------------------------------------- database or journal


class DatabaseUnavailable(Exception):
    """The database is away (an outage seen by a write or the probe): answered at once."""


def unavailable(exc: BaseException) -> bool:
    """A database that cannot be reached or is locked, as opposed to a write that is wrong."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout | DatabaseUnavailable):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


Applier = Callable[[Session, dict[str, Any]], Any]


class DurableWrites:
    """Each write goes to the database, or to the journal while the database is away or the
    journal still holds writes (so one call's writes are never applied out of order).

    `sessions` should give up quickly (SQLite: a short busy timeout, cti.db.session): a
    write that waits longer than its caller will is journalled in its thread, whatever the
    caller does meanwhile.
    """

    def __init__(self, sessions: sessionmaker[Session], journal: FileJournal, *,
                 workers: int = 4) -> None:
        self.sessions = sessions
        self.journal = journal
        self.appliers: dict[str, Applier] = {}
        self._lock = threading.Lock()
        self._down = False
        self._journalling = bool(journal.pending())  # a previous CTI's writes are first
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="db-durable")
        self.workers = workers
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.replayed = 0
        self._outage_seen = self._journalling
        # run (in order, on the replay task) once the journal is empty after an outage: what
        # else the outage cost, such as the recordings whose index rows it refused
        self.on_recovered: list[Callable[[], Awaitable[None]]] = []

    @property
    def executor(self) -> ThreadPoolExecutor:
        """Its pool of threads, for the daemon to start whole (hotline.app.start_workers)."""
        return self._executor

    @property
    def db_engine(self) -> Any:
        """The engine its sessions are bound to (None when they are bound to none)."""
        return self.sessions.kw.get("bind")

    def register(self, kind: str, applier: Applier) -> None:
        self.appliers[kind] = applier

    @property
    def down(self) -> bool:
        return self._down

    def _mark_down(self, exc: BaseException) -> None:
        with self._lock:
            if not self._down:
                log.error("database unavailable (%s): writes go to the journal %s",
                          str(exc).strip().splitlines()[0] if str(exc).strip() else
                          type(exc).__name__, self.journal.path)
            self._down = self._journalling = self._outage_seen = True
        self._poke()

    def _poke(self) -> None:
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -------------------------------------------------------------- in a worker thread

    def write(self, kind: str, key: str, data: Mapping[str, Any]) -> tuple[bool, Any]:
        """(True, what the applier returned) when the database took it; (False, None) when it
        is in the journal. Blocking: call it in a thread (run, below)."""
        entry = new_entry(kind, key, data)
        with self._lock:
            if self._journalling:
                self.journal.append(entry)
                return False, None
        try:
            with self.sessions.begin() as s:
                return True, self.appliers[kind](s, entry.data)
        except Exception as exc:
            if not unavailable(exc):
                raise
            with self._lock:
                self.journal.append(entry)
            self._mark_down(exc)
            log.warning("journalled %s (%s): the database is unavailable", key, kind)
            return False, None

    def read(self, fn: Callable[[Session], T]) -> T:
        """A lookup: DatabaseUnavailable at once while the database is known to be away."""
        if self._down:
            raise DatabaseUnavailable("the database is unavailable")
        try:
            with self.sessions.begin() as s:
                return fn(s)
        except Exception as exc:
            if unavailable(exc):
                self._mark_down(exc)
            raise

    def replay_once(self) -> bool:
        """Probe the database, apply what the journal holds in order; True once it is empty
        and writes go to the database again."""
        try:
            with self.sessions.begin() as s:
                s.execute(text("SELECT 1"))
        except Exception as exc:
            if unavailable(exc):
                return False
            raise
        if self._down:
            log.info("database reachable again; replaying the journal %s", self.journal.path)
        self._down = False
        while True:
            todo = self.journal.pending()
            for entry in todo:
                applier = self.appliers.get(entry.kind)
                if applier is None:
                    log.error("journal: no applier for %s (%s); left in the journal",
                              entry.kind, entry.key)
                    return False
                try:
                    with self.sessions.begin() as s:
                        applier(s, entry.data)
                except Exception as exc:
                    if unavailable(exc):
                        self._down = True
                        return False
                    # a write the database refuses for good: kept in the file, never retried
                    log.exception("journal: %s (%s) refused; marked failed", entry.key,
                                  entry.kind)
                    self.journal.mark_done(entry.key, failed=repr(exc))
                    continue
                self.journal.mark_done(entry.key)
                self.replayed += 1
                log.info("journal: replayed %s (%s)", entry.key, entry.kind)
            with self._lock:  # no write is journalled between the last look and the switch
                if self.journal.clear_if_done():
                    self._journalling = False
                    log.info("journal empty: writes go to the database again")
                    return True

    # -------------------------------------------------------------- on the event loop

    async def run_write(self, kind: str, key: str, data: Mapping[str, Any]) -> tuple[bool, Any]:
        """write() in this writer's own threads. Shielded: a caller that stops waiting (the
        IVR's deadline) does not cancel the write, which ends in the database or the journal."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, self.write, kind, key, dict(data))
        return await asyncio.shield(fut)

    async def run_read(self, fn: Callable[[Session], T]) -> T:
        if self._down:  # at once, not after a thread hop
            raise DatabaseUnavailable("the database is unavailable")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.read, fn)

    async def replay(self, probe_s: float = PROBE_S) -> None:
        """The daemon's task: while the database is away or the journal holds writes, probe
        and replay every probe_s; otherwise sleep until a write meets an outage."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            if not self._journalling:
                self._wake.clear()
                if not self._journalling:
                    await self._wake.wait()
            try:
                done = await self._loop.run_in_executor(self._executor, self.replay_once)
            except Exception:
                log.exception("journal: replay failed; trying again")
                done = False
            if not done:
                await asyncio.sleep(probe_s)
            elif self._outage_seen:
                self._outage_seen = False
                for hook in self.on_recovered:
                    try:
                        await hook()
                    except Exception:
                        log.exception("journal: after the outage, %r failed", hook)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
