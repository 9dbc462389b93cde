"""The CTI daemon: build everything through hotline.wiring, then run its tasks in one TaskGroup."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent_desktop.server import WebBindError
from callcenter.leadership import (
    LeaderLock,
    LeadershipLost,
    Sleep,
    hold_leadership,
    wait_for_leadership,
)
from config.settings import Settings, load_settings
from cti.loop_watch import LoopWatch
from hotline.wiring import (
    WiringError,
    build_daemon,
    leader_lock,
    standby_path,
    warm_imports,
)
from ivr.schema import FlowValidationError
from recorder.service import RecorderError

log = logging.getLogger(__name__)

# The worker threads behind asyncio.to_thread (every database unit of work, the recorder's file
# checks): as many as Python's default for this machine, but all started with the daemon, each
# with a database connection open at once, so the pool of threads and of connections is full
# from the start. Left to grow on demand, the pools grew at the first burst under load, hours
# in, and the CTI's memory with them (RELIABILITY.md, soak: one step of 16 MB, with one more
# thread and one more connection).
CTI_WORKERS = min(32, (os.cpu_count() or 1) + 4)
WARM_WAIT_S = 5.0


def install_workers(workers: int = CTI_WORKERS) -> None:
    """The daemon's fixed pool of worker threads as the loop's default executor: before
    anything runs in a thread."""
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cti-worker"))


async def start_workers(db_engine: Any | None, workers: int = CTI_WORKERS,
                        executor: Executor | None = None) -> list[str]:
    """Start every worker of `executor` (default: the loop's, install_workers) now; with
    `db_engine`, each opens a connection (held until all have one, so the engine's pool keeps
    them). A database that is away is no reason not to start: that worker's failure is logged
    and returned."""
    loop = asyncio.get_running_loop()
    all_in = threading.Barrier(workers)

    def warm() -> str | None:
        problem = None
        conn = None
        try:
            if db_engine is not None:
                # a connection, no statement: on SQLite the first statement would BEGIN
                # IMMEDIATE (cti.db.session), and the workers would queue on the write lock
                # while each holds it waiting for the others here
                conn = db_engine.connect()
        except Exception as exc:  # the DB outage paths handle the rest
            problem = f"{type(exc).__name__}: {exc}"
        try:  # every thread is up (the executor starts a new one while none is idle)
            all_in.wait(WARM_WAIT_S)
        except threading.BrokenBarrierError:
            problem = problem or "not every worker started in time"
        finally:
            if conn is not None:
                conn.close()
        return problem

    results = await asyncio.gather(*(loop.run_in_executor(executor, warm)
                                     for _ in range(workers)))
    problems = [r for r in results if r]
    for p in sorted(set(problems)):
        log.warning("worker warm-up: %s", p)
    return problems

def _say_standby(path: Path, what: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "lock": what,
                               "since": datetime.now(UTC).isoformat(timespec="seconds")}),
                   encoding="utf-8")
    tmp.replace(path)


def _no_longer_standby(path: Path) -> None:
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


async def run(settings: Settings, *, lock: LeaderLock | None = None,
              sleep: Sleep = asyncio.sleep) -> None:
    """Wait for the leadership lock (a standby binds no port and opens no AMI session before it
    holds it), then start everything, fail fast on bad config, and serve until cancelled or
    until the lock can no longer be proved held (LeadershipLost: the CTI stops)."""
    install_workers()
    lock = lock if lock is not None else leader_lock(settings)
    marker = standby_path(settings)

    def standing_by() -> None:
        warm_imports()  # the takeover then starts at once, not with a second of imports
        _say_standby(marker, lock.what)

    try:
        await wait_for_leadership(lock, on_standby=standing_by, sleep=sleep)
        _no_longer_standby(marker)
        daemon = await build_daemon(settings)
        await start_workers(daemon.db_engine)
        # the durable writes' own pool (callcenter/journal.py) likewise: it grew a thread and a
        # connection at a burst 45 and 85 minutes into a soak, and the CTI's memory a step each
        durable = getattr(daemon, "parts", {}).get("durable")
        if durable is not None:
            await start_workers(durable.db_engine, durable.workers, durable.executor)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(hold_leadership(lock, sleep=sleep), name="leadership")
                for name, start in daemon.tasks.items():
                    tg.create_task(start(), name=name)
        except* LeadershipLost as lost:
            raise lost.exceptions[0] from None
        finally:
            daemon.close()
    finally:
        _no_longer_standby(marker)
        await lock.release()


def main() -> None:
    logging.basicConfig(level=os.environ.get("HOTLINE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    loop = asyncio.new_event_loop()
    task = loop.create_task(run(settings), name="cti")
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    watch = LoopWatch(loop).start()
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        log.info("CTI stopped")
    except (FlowValidationError, RecorderError, WebBindError, WiringError) as exc:
        what = "invalid IVR flows, not starting:\n" if isinstance(exc, FlowValidationError) else ""
        print(f"hotline: {what}{exc}", file=sys.stderr)
        sys.exit(2)
    except LeadershipLost as exc:  # another CTI may hold the lock now: never run beside it
        print(f"hotline: CTI stopping, leadership lost: {exc}", file=sys.stderr)
        sys.exit(3)
    finally:
        watch.stop()
        loop.close()


if __name__ == "__main__":
    main()
