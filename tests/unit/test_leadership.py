"""The standby CTI's leadership (issue 11): the wait, the hold, the file lock, and the daemon
taking the lock before it builds anything. Fakes at the lock port, an injected sleep: no waiting."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from callcenter.leadership import (
    LeadershipLost,
    LockUnavailable,
    hold_leadership,
    wait_for_leadership,
)
from config.settings import Settings, load_settings
from cti.leader_lock import FileLeaderLock
from hotline import app, stack, wiring
from tests.support.settings import write_test_settings


class FakeLock:
    """The leadership port: `answers` are what try_acquire says in turn (an exception instance
    is raised); check fails once `lost` is set."""

    what = "the fake lock"

    def __init__(self, answers: list[bool | Exception]) -> None:
        self.answers = list(answers)
        self.held = False
        self.asked = 0
        self.checks = 0
        self.released = False
        self.lost: str | None = None

    async def try_acquire(self) -> bool:
        self.asked += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        self.held = answer
        return answer

    async def check(self) -> None:
        self.checks += 1
        if self.lost:
            self.held = False
            raise LeadershipLost(self.lost)

    async def release(self) -> None:
        self.held = False
        self.released = True


class Sleeps:
    """An injected sleep: records each delay and yields to the loop without waiting."""

    def __init__(self, then: Any = None) -> None:
        self.delays: list[float] = []
        self.then = then  # called after each sleep: the test moves the world

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.then is not None:
            self.then(len(self.delays))
        await asyncio.sleep(0)


def test_a_free_lock_is_held_at_once_without_standing_by() -> None:
    lock, sleeps, standby = FakeLock([True]), Sleeps(), []
    asked = asyncio.run(wait_for_leadership(lock, sleep=sleeps,
                                            on_standby=lambda: standby.append(1)))
    assert (asked, lock.held, sleeps.delays, standby) == (1, True, [], [])


def test_the_standby_polls_with_jitter_until_the_lock_is_free() -> None:
    lock, sleeps, standby = FakeLock([False, False, False, True]), Sleeps(), []
    jitters = iter([0.0, 0.5, 1.0])
    asked = asyncio.run(wait_for_leadership(lock, poll_s=0.5, sleep=sleeps,
                                            jitter=lambda: next(jitters),
                                            on_standby=lambda: standby.append(1)))
    assert asked == 4 and lock.held
    assert sleeps.delays == pytest.approx([0.4, 0.5, 0.6])  # 0.5 s +-20%
    assert standby == [1]  # said once, not at every poll


def test_an_unreachable_lock_is_waited_for_not_fatal() -> None:
    lock = FakeLock([LockUnavailable("connection refused"), LockUnavailable("refused"), True])
    standby: list[int] = []
    assert asyncio.run(wait_for_leadership(lock, sleep=Sleeps(), jitter=lambda: 0.5,
                                           on_standby=lambda: standby.append(1))) == 3
    assert lock.held and standby == [1]


def test_the_active_stops_the_first_time_it_cannot_prove_the_lock() -> None:
    lock = FakeLock([True])
    lock.held = True

    def world(n: int) -> None:
        if n == 3:
            lock.lost = "the connection holding it failed"

    sleeps = Sleeps(world)
    with pytest.raises(LeadershipLost, match="connection holding it failed"):
        asyncio.run(hold_leadership(lock, check_s=1.0, sleep=sleeps))
    assert lock.checks == 3 and sleeps.delays == [1.0, 1.0, 1.0]


# ------------------------------------------------------------------------- the file lock


def test_the_file_lock_has_one_holder_and_frees_on_release(tmp_path: Path) -> None:
    path = tmp_path / "cti.lock"
    a, b = FileLeaderLock(path), FileLeaderLock(path)

    async def go() -> None:
        assert await a.try_acquire()
        assert not await b.try_acquire()  # another open file description: refused
        await a.check()
        assert path.read_text() == f"{os.getpid()}\n"
        await a.release()
        with pytest.raises(LeadershipLost):
            await a.check()
        assert await b.try_acquire()
        await b.release()

    asyncio.run(go())
    assert (path.stat().st_mode & 0o777) == 0o600


def test_the_file_lock_is_freed_by_the_kernel_when_its_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "cti.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import asyncio, sys; from pathlib import Path; from cti.leader_lock import "
         "FileLeaderLock; l = FileLeaderLock(Path(sys.argv[1])); "
         "assert asyncio.run(l.try_acquire()); print('held', flush=True); sys.stdin.read()",
         str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2])
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        ours = FileLeaderLock(path)
        assert not asyncio.run(ours.try_acquire())
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        assert asyncio.run(ours.try_acquire())
        asyncio.run(ours.release())
    finally:
        holder.kill()
        holder.wait(10)


def test_the_file_lock_never_follows_a_planted_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "cti.lock").symlink_to(target)
    with pytest.raises(LockUnavailable):
        asyncio.run(FileLeaderLock(tmp_path / "cti.lock").try_acquire())
    assert target.read_text() == "keep"


# ---------------------------------------------------------------------- the daemon's start


def settings_file(settings: Settings) -> str:
    return str(settings.root / "hotline.toml")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    state = tmp_path / "var"
    path = write_test_settings(tmp_path / "hotline.toml", {"paths": {"state_dir": str(state)}})
    return load_settings(path, {})


def test_the_lock_is_chosen_by_the_database(settings: Settings) -> None:
    from dataclasses import replace

    from cti.leader_lock import PgLeaderLock

    lock = wiring.leader_lock(settings)
    assert isinstance(lock, FileLeaderLock) and lock.path == settings.state_dir / "run/cti.lock"
    pg = wiring.leader_lock(replace(settings, db_url="postgresql+psycopg://u:secret@db:5433/h"))
    assert isinstance(pg, PgLeaderLock) and "secret" not in pg.what and "db:5433/h" in pg.what
    with pytest.raises(wiring.WiringError):
        wiring.leader_lock(replace(settings, db_url="mysql://db/h"))


def test_the_standby_setting_defaults_on_and_can_be_turned_off(tmp_path: Path,
                                                              settings: Settings) -> None:
    assert settings.cti.standby is True
    off = write_test_settings(tmp_path / "off.toml", {"cti": {"standby": False}})
    assert load_settings(off, {}).cti.standby is False


class FakeDaemon:
    def __init__(self, lock: FakeLock, seen: list[str]) -> None:
        self.lock, self.seen, self.closed = lock, seen, False
        self.db_engine = None  # no database: the worker threads start without connections

        async def serve() -> None:
            seen.append(f"task started, lock held={lock.held}")
            await asyncio.Event().wait()  # until the TaskGroup cancels it

        self.tasks = {"serve": serve}

    def close(self) -> None:
        self.closed = True


def test_the_daemon_builds_nothing_until_it_holds_the_lock_and_stops_when_it_is_lost(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = FakeLock([False, False, True])
    seen: list[str] = []
    daemons: list[FakeDaemon] = []
    marker = wiring.standby_path(settings)
    settings.state_dir.mkdir(parents=True)

    async def build_daemon(_settings: Settings) -> FakeDaemon:
        seen.append(f"build, lock held={lock.held}, standby marker={marker.exists()}")
        daemons.append(FakeDaemon(lock, seen))
        return daemons[-1]

    def world(n: int) -> None:
        if n == 1:  # standing by: it said so, and has built nothing
            assert json.loads(marker.read_text())["pid"] == os.getpid()
            assert seen == ["warmed"]
        if n == 5:
            lock.lost = "the database did not answer within 1.5 s"

    monkeypatch.setattr(app, "build_daemon", build_daemon)
    monkeypatch.setattr(app, "warm_imports", lambda: seen.append("warmed"))
    seen_before = len(seen)
    with pytest.raises(LeadershipLost, match="did not answer"):
        asyncio.run(app.run(settings, lock=lock, sleep=Sleeps(world)))
    assert seen[seen_before:] == ["warmed", "build, lock held=True, standby marker=False",
                                  "task started, lock held=True"]
    assert lock.asked == 3 and lock.checks >= 1
    assert daemons[0].closed and lock.released and not marker.exists()


def test_stack_makes_the_lock_file_for_the_cti_and_tells_the_roles_apart(
        settings: Settings) -> None:
    stack.secure_cti_files(settings, None)
    p = stack.paths(settings)
    assert p.cti_lock.exists() and (p.cti_lock.stat().st_mode & 0o777) == 0o600
    assert stack.cti_processes(settings) == {}
    # after a takeover: the standby's process writes the status, the old active is restarted
    # and waits
    sleeper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                               stdin=subprocess.PIPE)
    try:
        p.cti_pid.write_text(str(sleeper.pid))
        p.cti_standby_pid.write_text(str(os.getpid()))
        (settings.state_dir / "cti.status.json").write_text(json.dumps({"pid": os.getpid()}))
        assert stack.cti_processes(settings) == {
            "cti": {"pid": sleeper.pid, "role": "starting"},
            "cti-standby": {"pid": os.getpid(), "role": "active"}}
        wiring.standby_path(settings).write_text(json.dumps({"pid": sleeper.pid}))
        st = stack.status(settings)["cti"]
        assert st["running"] and st["pid"] == os.getpid()
        assert st["processes"]["cti"]["role"] == "standby"
        # what `hotline status` prints
        from click.testing import CliRunner

        from hotline.cli import main

        env = {"HOTLINE_SETTINGS": settings_file(settings), "HOTLINE_STATE_DIR": None,
               "HOTLINE_DB_URL": None}
        out = CliRunner().invoke(main, ["status"], env=env).output
        assert f"cti          pid {sleeper.pid:<7} standby" in out, out
        assert f"cti-standby  pid {os.getpid():<7} active" in out, out
    finally:
        sleeper.kill()
        sleeper.wait(10)


def test_the_leader_lock_never_shares_a_key_with_the_work_order_area_locks() -> None:
    """The work-order service takes pg_advisory_xact_lock(95598, area_id) to link fault
    reports of one area; the leader's session lock must live in another namespace, or the
    active CTI would block every fault report in the area whose id is the leader's role (a
    clean-clone run showed it: the IVR's create_workorder timed out on PostgreSQL)."""
    from cti import leader_lock
    from workorders import service

    assert leader_lock.PG_LOCK_KEY[0] == leader_lock.PG_LOCK_NS
    assert leader_lock.PG_LOCK_NS != service._LINK_LOCK_NS
