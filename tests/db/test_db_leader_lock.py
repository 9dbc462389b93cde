"""The PostgreSQL leadership lock (cti/leader_lock.py) on a real server: one holder, freed when
the holder's session ends, and a holder whose session is killed stops instead of going on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from callcenter.leadership import LeadershipLost, LockUnavailable
from config.settings import Settings, load_settings
from cti.leader_lock import PgLeaderLock


def _terminate(url: str) -> int:
    """End the leader lock's session from another connection, as a server restart or a cut
    network would; returns how many sessions were ended."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE application_name = 'hotline-cti-leader' "
                           "AND datname = current_database()").fetchone()
    return int(row[0]) if row else 0


def test_one_holder_and_the_next_one_gets_it_when_the_session_ends(
        pg_database_url: str) -> None:
    async def go() -> None:
        a, b = PgLeaderLock(pg_database_url), PgLeaderLock(pg_database_url)
        assert await a.try_acquire()
        assert not await b.try_acquire()
        await a.check()  # the server lists it as a's
        await a.release()  # the session ends, as a killed process's socket closing does
        assert await b.try_acquire()
        await b.check()
        await b.release()

    asyncio.run(go())


def test_a_holder_whose_session_is_gone_stops_and_a_standby_takes_over(
        pg_database_url: str) -> None:
    async def go() -> None:
        active, standby = PgLeaderLock(pg_database_url), PgLeaderLock(pg_database_url)
        assert await active.try_acquire()
        assert not await standby.try_acquire()
        assert await asyncio.to_thread(_terminate, pg_database_url) == 2
        with pytest.raises(LeadershipLost):
            await active.check()
        # the standby's own session was ended too: a poll finds it gone (LockUnavailable) and
        # the next one connects again and gets the lock
        answers: list[bool | None] = []
        for _ in range(2):
            try:
                answers.append(await standby.try_acquire())
            except LockUnavailable:
                answers.append(None)
            if answers[-1]:
                break
        assert answers[-1] is True, answers
        await standby.check()
        await standby.release()
        await active.release()

    asyncio.run(go())


def test_an_unreachable_database_is_not_held_and_not_fatal_to_a_standby() -> None:
    lock = PgLeaderLock("postgresql+psycopg://nobody:x@127.0.0.1:9/none", connect_timeout_s=1)
    with pytest.raises(LockUnavailable):
        asyncio.run(lock.try_acquire())
    assert "nobody:x" not in lock.what


def test_the_cti_stops_when_its_lock_connection_is_lost(pg_database_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """hotline.app.run with the real lock: once the daemon runs, its lock session is ended (a
    server restart, a cut network); run() raises LeadershipLost, so the CTI exits instead of
    routing next to a standby that now holds the lock."""
    from hotline import app
    from tests.support.settings import write_test_settings

    settings = load_settings(write_test_settings(tmp_path / "hotline.toml", {
        "paths": {"state_dir": str(tmp_path / "var")}, "db": {"url": pg_database_url}}), {})
    running = asyncio.Event()
    closed: list[bool] = []

    class Daemon:
        async def serve(self) -> None:
            running.set()
            await asyncio.Event().wait()

        def __init__(self) -> None:
            self.tasks = {"serve": self.serve}
            self.db_engine = None  # the worker threads start without connections

        def close(self) -> None:
            closed.append(True)

    async def build_daemon(_settings: Settings) -> Daemon:
        return Daemon()

    async def quick(_s: float) -> None:  # the hold's 1 s between checks, shortened
        await asyncio.sleep(0.01)

    monkeypatch.setattr(app, "build_daemon", build_daemon)
    standby = PgLeaderLock(pg_database_url)

    async def go() -> None:
        cti = asyncio.create_task(app.run(settings, sleep=quick))
        async with asyncio.timeout(10):
            await running.wait()
            assert not await standby.try_acquire()  # the CTI holds it
            await asyncio.to_thread(_terminate_one, pg_database_url, standby)
            with pytest.raises(LeadershipLost):
                await cti
        assert await standby.try_acquire()  # the standby's poll gets it now
        await standby.release()

    asyncio.run(go())
    assert closed == [True]


def _terminate_one(url: str, spare: PgLeaderLock) -> None:
    """End every leader-lock session but the spare's."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    spare_pid = spare._conn.info.backend_pid
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE application_name = 'hotline-cti-leader' "
                     "AND datname = current_database() AND pid <> %s", (spare_pid,))
