"""Give back to the kernel the pages glibc keeps after a burst (issue 11, the soak's memory).

The fourteenth soak (RELIABILITY.md) showed that neither the CTI nor Asterisk holds more memory
as the calls go by once their bounded caches are full, yet both RSS curves still climbed: glibc
keeps what a burst of calls in flight made it touch (each heap's high-water mark, and free
chunks inside a heap whose pages stay resident). `malloc_trim(0)` gives every whole free page
back, from the middle of each arena too (`madvise(MADV_DONTNEED)`). Asterisk has it as a CLI
command of its own, `malloc trim`, and its project ships a systemd timer that runs it
(contrib/systemd, "if you are experiencing memory issues").

Every `[memory] trim_every_s` (300 s; 0 turns it off):
- the CTI trims itself (`SelfTrims`, the `malloc-trim` task in hotline/wiring.py; its last
  trim is in its status, `memory.trim_*`);
- the watchdog trims Asterisk (`hotline.stack.trim_asterisk`): it runs `malloc trim` through
  Asterisk's control socket as root, as it starts Asterisk. The CTI's AMI user has no
  `command` class, by design, and is not given it for this. `hotline bench soak`, which runs
  no watchdog, calls the same function on the same period.

A trim walks each arena's free chunks under that arena's lock, so a thread that allocates
meanwhile waits: the CTI's took 0.3 to 4 ms here, Asterisk's 24 to 52 ms with the CLI call
around it (RELIABILITY.md, fifteenth soak).
Each trim is logged with what it gave back and how long it took.

`Every` is the pure core (tests/unit/test_trim.py).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

CLI_COMMAND = "malloc trim"


@dataclass
class Every:
    """Due once per period: not at the start, then every `every_s` (a missed period is not
    made up); never when `every_s` is 0."""

    every_s: float
    _next: float | None = None

    def due(self, now: float) -> bool:
        if self.every_s <= 0:
            return False
        if self._next is None:
            self._next = now + self.every_s
            return False
        if now < self._next:
            return False
        self._next = now + self.every_s
        return True


@dataclass(frozen=True)
class Trim:
    """One trim: RSS before and after (KiB, None where it could not be read) and its time."""

    rss_before_kib: int | None
    rss_after_kib: int | None
    ms: float

    @property
    def freed_kib(self) -> int | None:
        if self.rss_before_kib is None or self.rss_after_kib is None:
            return None
        return self.rss_before_kib - self.rss_after_kib

    def as_status(self) -> dict[str, Any]:
        return {"trim_freed_kib": self.freed_kib, "trim_ms": round(self.ms, 1),
                "trim_rss_after_kib": self.rss_after_kib}


def rss_kib(pid: int | str = "self") -> int | None:
    """VmRSS of a process, KiB; None when it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _libc_malloc_trim() -> Callable[[int], int] | None:
    try:
        fn = ctypes.CDLL(None).malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_size_t]
    return fn  # type: ignore[no-any-return]


_MALLOC_TRIM = _libc_malloc_trim()


def timed(run: Callable[[], object], pid: int | str,
          clock: Callable[[], float] = time.perf_counter) -> Trim:
    before = rss_kib(pid)
    t0 = clock()
    run()
    ms = (clock() - t0) * 1000
    return Trim(before, rss_kib(pid), ms)


def available() -> bool:
    return _MALLOC_TRIM is not None


def trim_self() -> Trim | None:
    """malloc_trim(0) in this process (blocking: run it in a thread); None without glibc."""
    fn = _MALLOC_TRIM
    if fn is None:
        return None
    return timed(lambda: fn(0), "self")


def describe(who: str, t: Trim) -> str:
    freed = "?" if t.freed_kib is None else f"{t.freed_kib}"
    return (f"{who}: malloc trim gave back {freed} KiB in {t.ms:.0f} ms "
            f"(RSS {t.rss_before_kib} -> {t.rss_after_kib} KiB)")


@dataclass
class SelfTrims:
    """The CTI's trims of itself: its task (`run`, every `every_s`, in a thread so that the
    loop goes on) and what its status says of them (`status()`). Wiring starts the task only
    when `every_s` > 0 and the C library is glibc (`available()`)."""

    every_s: float
    count: int = 0
    last: Trim | None = None

    def status(self) -> dict[str, Any]:
        return {"trims": self.count, **(self.last.as_status() if self.last else {})}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                t = await asyncio.to_thread(trim_self)
            except Exception:  # never end the CTI over a trim: the next period tries again
                log.exception("malloc trim failed")
                continue
            if t is not None:
                self.count, self.last = self.count + 1, t
                log.info("%s", describe(f"CTI (pid {os.getpid()})", t))
