"""Which CTI routes: the leadership lock the active CTI holds for its whole life, the standby's
wait for it, and the active's proof that it still holds it (issue 11, "A standby CTI").

Two CTI processes may run against the same Asterisk and database; only the holder of the lock
binds ports, opens the AMI session and routes. The lock is one the operating system or the
database server releases by itself when its holder dies (an flock on one host, a PostgreSQL
advisory lock on the holder's own connection), so a kill -9 frees it at once and a standby
never has to guess whether the active is only slow. The adapters are in cti/leader_lock.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import NoReturn, Protocol

log = logging.getLogger(__name__)

POLL_S = 0.5   # a standby asks for the lock this often (jittered by +-20%)
CHECK_S = 1.0  # the active proves it still holds the lock this often
DOWN_CHECK_S = 0.2  # while the lock's server is down: asked often, to take the lock first


class LeadershipLost(Exception):
    """The active CTI can no longer prove that it alone holds the lock (its database connection
    is gone or stopped answering): it must stop rather than route next to another one."""


class LockServerDown(Exception):
    """The lock's database server is down (it refused the connection: nothing listens there),
    so no CTI can hold the lock: the active one rides the outage out and takes the lock again
    when the server is back, or stops if another CTI took it first (LeadershipLost then)."""


class LockUnavailable(Exception):
    """The lock could not be asked for this time (its database unreachable): not held, try
    again."""


class LeaderLock(Protocol):
    """The leadership port: one holder at a time, released by the system when the holder dies."""

    @property
    def what(self) -> str:
        """Where the lock is, for logs and `hotline status` (no secrets)."""
        ...

    async def try_acquire(self) -> bool:
        """Take the lock if it is free: True when held now (until release or loss), False when
        another process holds it; LockUnavailable when it could not be asked."""
        ...

    async def check(self) -> None:
        """Prove it is still held (raises LeadershipLost when that cannot be proved)."""
        ...

    async def release(self) -> None:
        ...


Sleep = Callable[[float], Awaitable[None]]


async def wait_for_leadership(lock: LeaderLock, *, poll_s: float = POLL_S,
                              sleep: Sleep = asyncio.sleep,
                              jitter: Callable[[], float] = random.random,
                              on_standby: Callable[[], None] | None = None) -> int:
    """Ask for the lock until it is held; returns how many times it asked. `on_standby` runs
    once, the first time the lock is found taken (or cannot be asked), before waiting. The
    interval is jittered so that two standbys do not ask in step."""
    asked = 0
    complained = False
    while True:
        asked += 1
        try:
            if await lock.try_acquire():
                log.info("leadership: holding %s after %d attempt(s)", lock.what, asked)
                return asked
        except LockUnavailable as exc:
            if not complained:  # once: a standby waits on a database outage for as long as it is
                log.warning("leadership: cannot ask for %s (%s); retrying", lock.what, exc)
                complained = True
        if asked == 1:
            log.info("leadership: %s is held by another CTI; standing by", lock.what)
            if on_standby is not None:
                on_standby()
        await sleep(poll_s * (0.8 + 0.4 * jitter()))


async def hold_leadership(lock: LeaderLock, *, check_s: float = CHECK_S,
                          sleep: Sleep = asyncio.sleep) -> NoReturn:
    """The active CTI's task: prove the lock every `check_s`; raises LeadershipLost (which ends
    the daemon's TaskGroup, so the CTI stops) the first time it cannot."""
    down = False
    while True:
        await sleep(DOWN_CHECK_S if down else check_s)
        try:
            await lock.check()
        except LockServerDown as exc:
            if not down:
                log.error("leadership: %s: its server is down (%s); routing on, taking the "
                          "lock again when it is back", lock.what, exc)
            down = True
            continue
        if down:
            log.info("leadership: holding %s again", lock.what)
        down = False
