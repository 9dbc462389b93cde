"""The CTI's worker threads (hotline/app.py): a fixed pool, every thread started with the
daemon, each with a database connection open at the same time, so neither pool grows later
under load (the soak saw the CTI's memory step up when both did, an hour in)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from hotline.app import WARM_WAIT_S, install_workers, start_workers


class FakeEngine:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.lock = threading.Lock()
        self.open = 0
        self.most_open = 0
        self.threads: set[str] = set()

    def connect(self) -> Any:
        if self.fail:
            raise ConnectionRefusedError("the database is away")
        engine = self

        class Conn:
            def close(self) -> None:
                with engine.lock:
                    engine.open -= 1

        with self.lock:
            self.open += 1
            self.most_open = max(self.most_open, self.open)
            self.threads.add(threading.current_thread().name)
        return Conn()


def test_every_worker_starts_at_once_with_its_own_connection() -> None:
    engine = FakeEngine()

    async def main() -> tuple[list[str], set[str]]:
        install_workers(4)
        problems = await start_workers(engine, 4)
        # later work runs on those same threads: no new one is started
        names = set(await asyncio.gather(*(asyncio.to_thread(
            lambda: threading.current_thread().name) for _ in range(20))))
        return problems, names

    problems, later = asyncio.run(main())
    assert problems == []
    assert len(engine.threads) == 4 and engine.most_open == 4 and engine.open == 0
    assert all(n.startswith("cti-worker") for n in engine.threads)
    assert later <= engine.threads


def test_a_database_that_is_away_does_not_stop_the_start() -> None:
    async def main() -> list[str]:
        install_workers(3)
        return await asyncio.wait_for(start_workers(FakeEngine(fail=True), 3), 10)

    assert asyncio.run(main()) == ["ConnectionRefusedError: the database is away"] * 3


def test_without_a_database_the_threads_still_start() -> None:
    async def main() -> tuple[list[str], int]:
        install_workers(2)
        problems = await start_workers(None, 2)
        return problems, sum(t.name.startswith("cti-worker") for t in threading.enumerate())

    problems, running = asyncio.run(main())
    assert problems == [] and running >= 2


def test_on_a_real_sqlite_engine_every_worker_holds_a_connection_at_once(tmp_path: Path) -> None:
    """With cti.db.session's engine (its first statement is BEGIN IMMEDIATE): the workers open
    their connections together, none waits on another's write lock, and the pool keeps them."""
    from cti.db.session import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        async def main() -> tuple[list[str], float]:
            install_workers(4)
            t0 = time.monotonic()
            problems = await start_workers(engine, 4)
            return problems, time.monotonic() - t0

        problems, took = asyncio.run(main())
        assert problems == []
        assert took < WARM_WAIT_S  # not a broken barrier after the wait
        assert engine.pool.checkedin() == 4  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_the_durable_writes_pool_starts_whole_with_its_connections() -> None:
    """The durable writes' own executor (callcenter/journal.py) is started whole like the
    loop's: every thread up and every connection open before the first call."""
    from concurrent.futures import ThreadPoolExecutor

    engine = FakeEngine()
    pool = ThreadPoolExecutor(3, thread_name_prefix="db-durable-test")

    async def main() -> list[str]:
        return await start_workers(engine, 3, pool)

    try:
        assert asyncio.run(main()) == []
        assert len(pool._threads) == 3
        # each worker held its connection until all had one: three open at once, on three threads
        assert (engine.most_open, len(engine.threads)) == (3, 3)
    finally:
        pool.shutdown()
