"""The active CTI rides out its lock server's outage (issue 11, "database unreachable"): a
PostgreSQL that stopped took the advisory lock with it for every CTI, so the active one routes
on and takes the lock again when the server is back, and stops only if another CTI took it
first or the server goes silent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from callcenter.leadership import DOWN_CHECK_S, LeadershipLost, LockServerDown, hold_leadership


class Sleeps:
    def __init__(self, world: Callable[[int], None]) -> None:
        self.delays: list[float] = []
        self.world = world

    async def __call__(self, s: float) -> None:
        self.delays.append(s)
        self.world(len(self.delays))


class ScriptedLock:
    """check() answers from a script: None (held), or an exception to raise."""

    what = "the scripted lock"

    def __init__(self) -> None:
        self.next: BaseException | None = None
        self.checks = 0

    async def try_acquire(self) -> bool:
        return True

    async def check(self) -> None:
        self.checks += 1
        if self.next is not None:
            raise self.next

    async def release(self) -> None:
        return None


def test_a_server_outage_is_ridden_out_then_the_lock_is_held_again() -> None:
    lock = ScriptedLock()

    def world(n: int) -> None:
        lock.next = LockServerDown("refused") if 2 <= n <= 5 else None
        if n == 8:
            lock.next = LeadershipLost("another CTI took it")

    sleeps = Sleeps(world)
    with pytest.raises(LeadershipLost, match="another CTI"):
        asyncio.run(hold_leadership(lock, check_s=1.0, sleep=sleeps))
    # checked often while the server was down (to take the lock back first), then as usual
    assert sleeps.delays == [1.0, 1.0, *[DOWN_CHECK_S] * 4, 1.0, 1.0]
    assert lock.checks == 8
