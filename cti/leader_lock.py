"""The leadership lock's adapters (callcenter/leadership.py): an flock on one host (SQLite), a
PostgreSQL advisory lock on a connection of its own (one or several hosts)."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from callcenter.leadership import LeadershipLost, LockServerDown, LockUnavailable

log = logging.getLogger(__name__)

# pg_try_advisory_lock(int, int): a namespace of its own (first int) and the CTI's role. The
# work-order service locks (95598, area_id) while it links fault reports of one area
# (workorders/service.py _LINK_LOCK_NS): a leader key of (95598, 1) blocked every fault report
# in area 1 for as long as the active CTI lived (found by a clean-clone run: the IVR's
# create_workorder timed out on PostgreSQL). tests/unit/test_leadership.py keeps them apart.
PG_LOCK_NS = 955980
PG_LOCK_KEY = (PG_LOCK_NS, 1)


class FileLeaderLock:
    """An exclusive flock on `path` (var/run/cti.lock): the kernel releases it when the holding
    process dies, however it dies. flock, not a POSIX record lock (fcntl/lockf): a process loses
    every record lock it holds on a file when it closes any descriptor of that file (the trap of
    commit c6cf261), while an flock belongs to this one open file description. One host only:
    flock means nothing across NFS."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._held = False

    @property
    def what(self) -> str:
        return f"the lock file {self.path}"

    async def try_acquire(self) -> bool:
        if self._held:
            return True
        if self._fd is None:
            try:  # O_NOFOLLOW: a link planted in its place is refused, never followed
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                                   | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise LockUnavailable(f"{self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._held = True
        # who holds it, for a person looking (the lock is the flock, not this text)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)
        return True

    async def check(self) -> None:
        if not self._held:
            raise LeadershipLost(f"{self.what} is not held")
        # nothing to ask: only this process's death releases an flock it holds

    async def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops the flock
        self._fd = None
        self._held = False


class PgLeaderLock:
    """pg_try_advisory_lock on a connection used for nothing else, held for the active CTI's
    life: the server releases it when that connection ends, which a killed process's closed
    socket does at once. TCP keepalives on both ends make a silent peer (a host gone, a cut
    network) end the session too: the client gives up on a check after `check_timeout_s`, well
    before the server drops the session (KEEPALIVE_IDLE_S + count x interval), so the old active
    has stopped before a standby can get the lock. Needs a session-level connection: not through
    a transaction-pooling pgbouncer."""

    KEEPALIVE_IDLE_S = 4
    KEEPALIVE_INTERVAL_S = 1
    KEEPALIVE_COUNT = 2

    def __init__(self, url: str, *, key: tuple[int, int] = PG_LOCK_KEY,
                 connect_timeout_s: int = 3, check_timeout_s: float = 1.5) -> None:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        self._conninfo = u.set(drivername="postgresql").render_as_string(hide_password=False)
        self._where = f"{u.host}:{u.port or 5432}/{u.database}"
        self.key = key
        self.connect_timeout_s = connect_timeout_s
        self.check_timeout_s = check_timeout_s
        self._conn: Any = None  # psycopg.AsyncConnection
        self._held = False
        self._down = False  # the server refused us: nobody holds the lock until it is back
        self._url = url

    @property
    def what(self) -> str:
        return f"the PostgreSQL advisory lock {self.key} on {self._where}"

    async def _connect(self) -> Any:
        import psycopg

        idle, interval, count = (self.KEEPALIVE_IDLE_S, self.KEEPALIVE_INTERVAL_S,
                                 self.KEEPALIVE_COUNT)
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=self.connect_timeout_s,
            application_name="hotline-cti-leader",
            keepalives=1, keepalives_idle=idle, keepalives_interval=interval,
            keepalives_count=count, tcp_user_timeout=int(self.check_timeout_s * 1000))
        # the server's side of the same: it ends a silent holder's session, freeing the lock
        for name, value in (("idle", idle), ("interval", interval), ("count", count)):
            await conn.execute("SELECT set_config(%s, %s, false)",
                               (f"tcp_keepalives_{name}", str(value)))
        return conn

    async def try_acquire(self) -> bool:
        import psycopg

        if self._held:
            return True
        try:
            async with asyncio.timeout(self.connect_timeout_s + self.check_timeout_s):
                if self._conn is None or self._conn.closed:
                    self._conn = await self._connect()
                cur = await self._conn.execute("SELECT pg_try_advisory_lock(%s, %s)", self.key)
                row = await cur.fetchone()
        except (psycopg.Error, OSError, TimeoutError) as exc:
            await self._drop()
            raise LockUnavailable(str(exc).strip() or type(exc).__name__) from exc
        self._held = bool(row and row[0])
        return self._held

    async def _still_held(self) -> bool:
        cur = await self._conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid() AND classid = %s AND objid = %s AND objsubid = 2",
            self.key)
        row = await cur.fetchone()
        return bool(row and row[0])

    async def check(self) -> None:
        import psycopg

        if self._down:
            await self._retake()
            return
        if not self._held or self._conn is None:
            raise LeadershipLost(f"{self.what} is not held")
        # a task of its own, waited for with a deadline: a query on a dead network may not
        # return even when cancelled, and the answer must come in time or not at all
        probe = asyncio.ensure_future(self._still_held())
        done, _ = await asyncio.wait({probe}, timeout=self.check_timeout_s)
        if not done:
            probe.cancel()
            self._held = False
            raise LeadershipLost(f"{self.what}: the database did not answer within "
                                 f"{self.check_timeout_s} s")
        try:
            held = probe.result()
        except (psycopg.Error, OSError) as exc:
            self._held = False
            await self._drop()
            if await self._server_refuses():
                # the server is down (it stopped, or restarts): the lock went with it, for
                # every CTI. Ride on and take it again when it is back (_retake)
                self._down = True
                raise LockServerDown(f"the connection holding it failed: {exc}") from exc
            # the server is up and ended our session: a standby may hold the lock now
            raise LeadershipLost(f"{self.what}: the connection holding it failed: {exc}") \
                from exc
        if not held:
            self._held = False
            raise LeadershipLost(f"{self.what}: the server no longer lists it as ours")

    async def _server_refuses(self) -> bool:
        """True when the server's address refuses a connection (nothing listens: the server
        is down, so nobody holds the lock). A silence (a timeout) proves nothing: False."""
        from sqlalchemy.engine import make_url

        u = make_url(self._url)
        host, port = u.host or "/var/run/postgresql", u.port or 5432
        try:
            opening = (asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
                       if host.startswith("/") else asyncio.open_connection(host, port))
            _r, w = await asyncio.wait_for(opening, self.check_timeout_s)
        except (ConnectionRefusedError, FileNotFoundError):
            return True
        except (OSError, TimeoutError):
            return False
        w.close()
        return False

    async def _retake(self) -> None:
        """The server was down: take the lock again when it is back; LockServerDown while it
        still refuses (or is still starting up), LeadershipLost if another CTI got it first
        or the server stopped answering at all."""
        if await self._server_refuses():
            raise LockServerDown("the server still refuses connections")
        try:
            held = await self.try_acquire()
        except LockUnavailable as exc:
            if isinstance(exc.__cause__, TimeoutError):
                self._down = False
                raise LeadershipLost(f"{self.what}: the server does not answer") from exc
            raise LockServerDown(f"the server is not ready: {exc}") from exc
        self._down = False
        if not held:
            raise LeadershipLost(f"{self.what}: another CTI took it while its server was down")
        log.info("leadership: %s taken again after its server's outage", self.what)

    async def release(self) -> None:
        conn, held = self._conn, self._held
        self._held = False
        self._down = False
        if conn is not None and held:
            # unlock first: closing ends the session, but the server frees the lock only once
            # it has processed that, and a standby polling at once could still find it held
            try:
                async with asyncio.timeout(self.check_timeout_s):
                    await conn.execute("SELECT pg_advisory_unlock(%s, %s)", self.key)
            except Exception as exc:  # broken or slow: the close below frees it anyway
                log.debug("leader lock unlock: %s", exc)
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()  # the session ends: the server frees the lock
            except Exception as exc:  # already broken: nothing is held on it any more
                log.debug("leader lock connection close: %s", exc)
