"""The recorder's CTI side: index finished recordings, reconcile the folder, purge by retention,
and play a recording to a supervisor's phone.

Asterisk records on its own (the dialplan's MixMonitor), so nothing here is needed for a
recording to exist; the CTI only indexes. The dialplan's HotlineRecordingDone event (from the
agent leg's hangup handler) names the file; the file is indexed once Asterisk has closed it.
What the CTI misses while it is down, the reconciler at its next start indexes.

It talks to ports (recorder.ports), not to cti/: the recording index and the AMI are passed in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from config.recorder import RecorderSettings
from recorder.audio import NotAWav, WavFacts, inspect, riff_complete, sha256_of
from recorder.disk import DiskState, LegFile, free_bytes, unrecorded
from recorder.naming import (
    IN_CHROOT_DIR,
    BadRecordingName,
    RecordingName,
    parse,
    relative_to_storage,
    resolve,
)
from recorder.ports import (
    UNAVAILABLE,
    AmiActions,
    RecordingFacts,
    RecordingIndex,
    UnrecordedLeg,
    UnrecordedLog,
    is_refusal,
)
from recorder.reconcile import DiskFile, Report, diff
from recorder.retention import FILE_RETRY_DAYS

log = logging.getLogger(__name__)
DONE_EVENT = "HotlineRecordingDone"
START_EVENT = "HotlineRecordingStart"
DISK_CHECK_S = 2.0  # how often the recordings disk's free space is looked at
# how long the CTI waits for Asterisk to close a file on a full disk: a file that cannot grow
# is not worth [recorder] index_wait_s per leg (legs are indexed one at a time)
FULL_DISK_WAIT_S = 1.0
# AstDB family where the dialplan keeps each leg's caller|queue|start epoch, key <call>_<leg>
META_FAMILY = "hotline-rec"
TMPFS = frozenset({"tmpfs", "ramfs"})


class RecorderError(Exception):
    """The recorder cannot work with these settings (for example a tmpfs folder)."""


class RecordingAlerts(Protocol):
    """Where supervisors are told of recording trouble (cti.notifier.Notifier in the CTI, which
    makes the message): the recorder hands over facts, never a topic or a payload."""

    def recording_disk(self, *, full: bool, free_bytes: int, min_free_bytes: int,
                       at: datetime) -> None:
        """The recordings disk became full, or has room again."""
        ...

    def unrecorded_leg(self, leg: UnrecordedLeg, *, at: datetime) -> None:
        """An answered leg has no whole recording (kept in the unrecorded log first)."""
        ...


Ami = AmiActions  # the name this module used before the ports


def filesystem_type(path: Path, mounts: str | None = None) -> str:
    """The file system type of the mount holding path (from /proc/mounts)."""
    if mounts is None:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8", errors="replace")
    p = path.resolve()
    best, fstype = "", "unknown"
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        if (str(p) == mnt or str(p).startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
            best, fstype = mnt, parts[2]
    return fstype


def check_storage(storage_dir: Path) -> None:
    """Recordings must survive a reboot: refuse a tmpfs folder with a clear message."""
    fstype = filesystem_type(storage_dir)
    if fstype in TMPFS:
        raise RecorderError(f"[recorder] storage_dir {storage_dir} is on {fstype}: recordings "
                            "would be lost at reboot; choose a folder on disk")
    storage_dir.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class LegMeta:
    """What Asterisk kept of a leg in AstDB: for a file whose end the CTI did not see."""

    caller: str | None
    queue: str | None
    started_at: datetime | None

    @classmethod
    def parse(cls, value: str) -> LegMeta:
        caller, _, rest = value.partition("|")
        queue, _, epoch = rest.partition("|")
        try:
            started = datetime.fromtimestamp(int(epoch), UTC) if epoch else None
        except ValueError:
            started = None
        return cls(caller or None, None if queue in ("", "ivr") else queue, started)


def _disk_files(storage_dir: Path, now_s: float) -> dict[str, DiskFile]:
    out: dict[str, DiskFile] = {}
    for p in sorted(storage_dir.rglob("*")):
        if not p.is_file():
            continue
        st = p.stat()
        rel = p.relative_to(storage_dir).as_posix()
        out[rel] = DiskFile(rel, st.st_size, sha256_of(p), riff_complete(p),
                            max(0.0, now_s - st.st_mtime))
    return out


def report_doc(r: Report, indexed: list[str]) -> dict[str, Any]:
    return {
        "clean": not (r.missing or r.corrupt or r.stray
                      or any(f.rel_path not in indexed for f in r.to_index)),
        "ok": r.ok,
        "indexed": indexed,
        # files with no index row: ours (named by a call; the CTI indexes them at start) or
        # foreign (a name the dialplan never writes)
        "stray": [{"file": f.rel_path, "ours": True} for f in r.to_index
                  if f.rel_path not in indexed] + [{"file": f.rel_path, "ours": False}
                                                   for f in r.stray],
        "missing": [{"id": m.recording_id, "file": m.rel_path} for m in r.missing],
        "corrupt": [{"id": row.recording_id, "file": row.rel_path, "indexed_sha256": row.sha256,
                     "file_sha256": f.sha256, "indexed_size": row.size, "file_size": f.size}
                    for row, f in r.corrupt],
        "still_open": [f.rel_path for f in r.still_open],
    }


def reconcile(storage_dir: Path, recordings: RecordingIndex, now: datetime,
              settle_s: float, *, index: bool = True,
              meta: Mapping[str, LegMeta] | None = None) -> dict[str, Any]:
    """Compare folder and index; with index=True, index our finished files that have no row
    (with what Asterisk kept of each in AstDB, `meta` by file, when the caller has it).

    Blocking (hashes every file): run it in a thread from async code.
    """
    disk = _disk_files(storage_dir, time.time()) if storage_dir.exists() else {}
    rows = recordings.rows()
    deleted = recordings.deleted_paths()
    pending = sorted(rel for rel in disk if rel in deleted)  # a purge's failed removal
    report = diff({k: v for k, v in disk.items() if k not in deleted}, rows, settle_s)
    indexed: list[str] = []
    if index:
        for f in report.to_index:
            path = storage_dir / f.rel_path
            try:
                facts = inspect(path)
            except NotAWav as exc:
                log.warning("reconcile: %s is not a readable wav: %s", f.rel_path, exc)
                continue
            m = (meta or {}).get(f.rel_path)
            started = (m.started_at if m is not None and m.started_at is not None else
                       datetime.fromtimestamp(path.stat().st_mtime - facts.duration_s, UTC))
            recordings.index(RecordingFacts(
                rel_path=f.rel_path, started_at=started, duration_s=facts.duration_s,
                size=facts.size, sha256=facts.sha256, indexed_by="reconcile",
                caller_number=m.caller if m is not None else None,
                queue=m.queue if m is not None else None), now)
            indexed.append(f.rel_path)
    doc = report_doc(report, indexed)
    doc["pending_removal"] = pending
    if report.missing or report.corrupt or report.stray:
        log.warning("reconcile: %d missing, %d corrupt, %d stray files", len(report.missing),
                    len(report.corrupt), len(report.stray))
    log.info("reconcile: %d ok, %d indexed now, %d still being recorded", report.ok,
             len(indexed), len(report.still_open))
    return doc


class RecorderService:
    """Runs in the CTI: indexes on the dialplan's events, reconciles at start, purges daily.

    `recordings` is the index (cti.db.recorder_store.DbRecordingIndex in the CTI); `ami` reads
    and forgets what Asterisk kept of each leg in AstDB, and may be set after construction
    (the composition root builds the AMI client later)."""

    def __init__(self, settings: RecorderSettings, recordings: RecordingIndex, *,
                 ami: AmiActions | None = None, timezone: str = "Asia/Shanghai",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 queue_size: int = 1000) -> None:
        self.settings = settings
        self.recordings = recordings
        self.clock = clock
        self.tz = ZoneInfo(timezone)
        self._done: asyncio.Queue[dict[str, str]] = asyncio.Queue(maxsize=queue_size)
        self.ami: AmiActions | None = ami
        self.indexed = 0
        self.last_reconcile: dict[str, Any] | None = None
        # set by the composition root: where unrecorded legs are kept, and who alerts
        # supervisors (the notifier); either may be absent in tests
        self.unrecorded_log: UnrecordedLog | None = None
        self.alerts: RecordingAlerts | None = None
        self.disk = DiskState(int(settings.min_free_mb * 1024 * 1024))
        self.unrecorded = 0

    @property
    def storage_dir(self) -> Path:
        return self.settings.storage_dir

    def observe(self, msg: dict[str, str]) -> None:
        """An AMI event on its way to the feed (hotline.wiring.observed): a copy of each
        recording-done one kept, the disk checked as a recording starts."""
        if msg.get("Event") != "UserEvent":
            return
        if msg.get("UserEvent") == DONE_EVENT:
            try:
                self._done.put_nowait(msg)
            except asyncio.QueueFull:
                # not lost: the file is on disk and the next reconcile indexes it
                log.error("recorder queue full: %s left to the reconciler", msg.get("File"))
        elif msg.get("UserEvent") == START_EVENT:
            self.check_disk()
            if self.disk.full:
                log.warning("recording started on a full disk call_id=%s seat=%s file=%s",
                            msg.get("CallId"), msg.get("Seat"), msg.get("File"))

    def check_disk(self) -> bool:
        """Look at the free space; alert supervisors when the disk becomes full or has room
        again. Returns whether it is full now."""
        try:
            free = free_bytes(self.storage_dir)
        except OSError as exc:
            log.error("recordings folder %s unreadable: %s", self.storage_dir, exc)
            return self.disk.full
        change = self.disk.update(free, time.time())
        if change == "full":
            log.error("recordings disk full: %d bytes free in %s (below %d): calls go on, "
                      "legs recorded now may have no file", free, self.storage_dir,
                      self.disk.min_free)
        elif change == "ok":
            log.warning("recordings disk has room again: %d bytes free in %s; recording "
                        "resumes", free, self.storage_dir)
        if change is not None:
            at, min_free = self.clock(), self.disk.min_free
            self._alert(f"disk {change}", lambda alerts: alerts.recording_disk(
                full=change == "full", free_bytes=free, min_free_bytes=min_free, at=at))
        return self.disk.full

    async def watch_disk(self) -> None:
        """Check the recordings disk every DISK_CHECK_S, for ever (a full disk is noticed,
        and its end, with no call to show it)."""
        while True:
            self.check_disk()
            await asyncio.sleep(DISK_CHECK_S)

    def _alert(self, what: str, send: Callable[[RecordingAlerts], None]) -> None:
        if self.alerts is None:
            return
        try:
            send(self.alerts)
        except Exception:  # an alert that cannot go out must not stop indexing
            log.exception("recording alert not sent: %s", what)

    async def _unrecorded(self, msg: Mapping[str, str], rel: str, found: LegFile) -> bool:
        """Log, keep and alert an answered leg without a whole recording; False when the
        file is whole."""
        try:
            free = free_bytes(self.storage_dir)
        except OSError:
            free = 0
        try:
            began = float(msg["StartEpoch"])
        except (KeyError, ValueError):
            began = time.time()
        why = unrecorded(found, free, self.disk.min_free, was_full=self.disk.full_since(began))
        if why is None:
            return False
        reason, detail = why
        name = parse(rel)
        leg = UnrecordedLeg(call_id=name.call_id, leg_id=name.leg_id,
                            seat=msg.get("Seat") or None, rel_path=rel, reason=reason,
                            detail=detail, free_bytes=free)
        log.error("leg not recorded call_id=%s leg=%s seat=%s reason=%s: %s", leg.call_id,
                  leg.leg_id, leg.seat, reason, detail)
        self.unrecorded += 1
        if self.unrecorded_log is not None:
            await asyncio.to_thread(self.unrecorded_log.unrecorded, leg, self.clock())
        # after the write: supervisors see what the database has
        at = self.clock()
        self._alert(f"unrecorded {rel}", lambda alerts: alerts.unrecorded_leg(leg, at=at))
        return True

    async def run(self) -> None:
        """Index each finished recording, one at a time, for ever."""
        while True:
            msg = await self._done.get()
            try:
                await self.index_event(msg)
            except Exception:
                log.exception("recording not indexed (the reconciler will): %r", msg)

    async def index_event(self, msg: dict[str, str]) -> None:
        try:
            rel = relative_to_storage(msg.get("File", ""))
        except BadRecordingName as exc:
            log.warning("recording event with a bad file name: %s", exc)
            return
        path = resolve(self.storage_dir, rel)
        try:
            leg_s: float | None = float(int(msg["EndEpoch"]) - int(msg["StartEpoch"]))
            began = float(msg["StartEpoch"])
        except (KeyError, ValueError):
            leg_s, began = None, time.time()
        if parse(rel).message:
            # the message ends at # or silence (trimmed), the leg later: not a truncation
            leg_s = None
        self.check_disk()
        wait = min(FULL_DISK_WAIT_S if self.disk.full_since(began) else
                   self.settings.index_wait_s, self.settings.index_wait_s)
        deadline = time.monotonic() + wait
        # the hangup handler runs as the MixMonitor detaches; Asterisk closes the file
        # (and fills in the wav header) a moment later
        while not (path.exists() and riff_complete(path)):
            if time.monotonic() > deadline:
                if not path.exists():
                    log.error("recording file missing call_id=%s file=%s", msg.get("CallId"),
                              rel)
                    await self._unrecorded(msg, rel, LegFile(False, False, 0.0, leg_s))
                    return
                log.warning("recording still open after %.0fs, indexing as is: %s",
                            wait, rel)
                break
            await asyncio.sleep(0.1)
        try:
            facts: WavFacts = await asyncio.to_thread(inspect, path)
        except NotAWav as exc:
            log.error("recording unreadable call_id=%s file=%s: %s", msg.get("CallId"), rel,
                      exc)
            await self._unrecorded(msg, rel, LegFile(True, False, 0.0, leg_s))
            return
        await self._unrecorded(msg, rel, LegFile(True, True, facts.duration_s, leg_s))
        try:
            started = datetime.fromtimestamp(int(msg["StartEpoch"]), UTC)
        except (KeyError, ValueError):
            started = self.clock() - timedelta(seconds=facts.duration_s)
        # the agent leg's own caller id is the seat; the caller is its connected line (the
        # IVR leg is the caller's own channel)
        ivr = parse(rel).kind == "ivr"
        caller = (msg.get("CallerIDNum") if ivr
                  else msg.get("Caller") or msg.get("ConnectedLineNum")) or None
        queue = None if ivr else msg.get("Queue") or None

        await asyncio.to_thread(self.recordings.index, RecordingFacts(
            rel_path=rel, started_at=started, duration_s=facts.duration_s, size=facts.size,
            sha256=facts.sha256, indexed_by="event", queue=queue,
            caller_number=caller if caller and caller != "<unknown>" else None), self.clock())
        self.indexed += 1

    async def _meta(self, name: RecordingName) -> LegMeta | None:
        """What the dialplan noted of a leg in AstDB: under hotline-rec/<day of the file>, or
        directly under hotline-rec (dialplans from before notes were kept by day). The notes are
        not deleted here: the dialplan drops each day's at once (hotline-rec-tidy)."""
        if self.ami is None:
            return None
        key = f"{name.call_id}_{name.leg_id}"
        for family in (f"{META_FAMILY}/{name.day:%Y%m%d}", META_FAMILY):
            try:
                res = await self.ami.action({"Action": "DBGet", "Family": family, "Key": key},
                                            idempotent=True, timeout=15)
            except Exception as exc:
                if is_refusal(exc):  # no such key here
                    continue
                if isinstance(exc, UNAVAILABLE):
                    log.warning("recording metadata unavailable call_id=%s: %s",
                                name.call_id, exc)
                    return None
                raise
            for m in res if isinstance(res, list) else [res]:
                if m.get("Event") == "DBGetResponse" and m.get("Val") is not None:
                    return LegMeta.parse(str(m["Val"]))
        return None

    async def reconcile(self, *, index: bool = True) -> dict[str, Any]:
        meta: dict[str, LegMeta] = {}
        if index and self.ami is not None:
            # first which of our files have no row, then what Asterisk kept of each
            first = await asyncio.to_thread(reconcile, self.storage_dir, self.recordings,
                                            self.clock(), self.settings.settle_s, index=False)
            for item in first["stray"]:
                if item["ours"]:
                    m = await self._meta(parse(item["file"]))
                    if m is not None:
                        meta[item["file"]] = m
        doc = await asyncio.to_thread(reconcile, self.storage_dir, self.recordings, self.clock(),
                                      self.settings.settle_s, index=index, meta=meta)
        self.last_reconcile = doc
        return doc

    async def at_start(self) -> None:
        """The reconciler at CTI start: index what was recorded while the CTI was down."""
        try:
            await self.reconcile(index=True)
        except Exception:
            log.exception("reconcile at start failed")

    def next_purge(self, now: datetime) -> datetime:
        local = now.astimezone(self.tz)
        at = local.replace(hour=self.settings.purge_hour, minute=0, second=0, microsecond=0)
        if at <= local:
            at += timedelta(days=1)
        return at.astimezone(UTC)

    async def purge(self, *, actor: str = "retention", dry_run: bool = False
                    ) -> list[dict[str, Any]]:
        def work() -> list[dict[str, Any]]:
            now = self.clock()
            done = self.recordings.purge(self.settings.retention, now, actor, dry_run=dry_run)
            if not dry_run:  # after the commit: never a deletion without its log line
                self.recordings.remove_deleted_files(
                    self.storage_dir, since=now - timedelta(days=FILE_RETRY_DAYS))
            return done
        return await asyncio.to_thread(work)

    async def daily_purge(self) -> None:
        """The retention purge, once a day at [recorder] purge_hour (the center's local time)."""
        while True:
            now = self.clock()
            await asyncio.sleep(max(1.0, (self.next_purge(now) - now).total_seconds()))
            try:
                done = await self.purge()
                log.info("daily retention purge: %d recordings deleted", len(done))
            except Exception:
                log.exception("daily retention purge failed")

    @staticmethod
    async def play_to_phone(ami: AmiActions, rel_path: str, endpoint: str) -> None:
        """Ring the supervisor's own phone and play the recording when it answers.

        Originate is never re-sent (idempotent=False): a retry could ring the phone twice.
        """
        name = parse(rel_path)
        in_chroot = f"{IN_CHROOT_DIR}/{os.path.splitext(name.rel_path)[0]}"
        await ami.action({"Action": "Originate", "Channel": f"PJSIP/{endpoint}",
                          "Application": "Playback", "Data": in_chroot, "Async": "true",
                          "Timeout": "30000", "CallerID": f'"录音回放" <{name.call_id}>'},
                         idempotent=False)
