"""Diagnostics an operator turns on for a soak, off by default: snapshots of the CTI's Python
allocations (tracemalloc) at a steady interval, to see what grows with the calls served.

`heap_figures()`, always on, is in the CTI's status (memory): what the C allocator and SQLite
hold, read in microseconds.

`HOTLINE_TRACEMALLOC_EVERY_S=120` in the CTI's environment starts tracing (10 frames) when
the CTI starts and writes `<state dir>/tracemalloc/cti-NNN.snap` every 120 s. Tracing costs CPU
and memory of its own (bench figures taken with it on are not comparable). Compare two
snapshots with `python -m bench.tracemalloc_diff A B`.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "HOTLINE_TRACEMALLOC_EVERY_S"
FRAMES = 10


def snapshot_every(env: Mapping[str, str]) -> float | None:
    """The interval asked for in the environment, or None (off, or not a positive number)."""
    raw = env.get(ENV, "")
    try:
        every = float(raw)
    except ValueError:
        return None
    return every if every > 0 else None


def _dump(path: Path) -> None:
    tracemalloc.take_snapshot().dump(str(path))


async def tracemalloc_snapshots(folder: Path, every_s: float) -> None:
    """The CTI's task while asked for: trace, and dump a snapshot every `every_s`."""
    if not tracemalloc.is_tracing():
        tracemalloc.start(FRAMES)
    await asyncio.to_thread(folder.mkdir, mode=0o750, exist_ok=True)
    n = 0
    while True:
        await asyncio.sleep(every_s)
        path = folder / f"cti-{n:03d}.snap"
        await asyncio.to_thread(_dump, path)
        log.info("tracemalloc snapshot %s (traced now %d bytes)", path,
                 tracemalloc.get_traced_memory()[0])
        n += 1


# --------------------------------------------------------------- the C heap, in the status

class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _libc_mallinfo2() -> Callable[[], _Mallinfo2] | None:
    try:
        fn = ctypes.CDLL(None).mallinfo2  # glibc 2.33 and later
    except (OSError, AttributeError):
        return None
    fn.restype, fn.argtypes = _Mallinfo2, []
    return fn  # type: ignore[no-any-return]


def _sqlite_memory_used() -> Callable[[], int] | None:
    """SQLite's sqlite3_memory_used from the library Python's sqlite3 module loaded."""
    try:
        import _sqlite3

        fn = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
    except (ImportError, OSError, AttributeError):
        return None
    fn.restype, fn.argtypes = ctypes.c_int64, []
    return fn  # type: ignore[no-any-return]


_MALLINFO2 = _libc_mallinfo2()
_SQLITE_USED = _sqlite_memory_used()


def heap_figures() -> dict[str, int]:
    """What the C allocator holds for the process (KiB): in use, free in its bins, mapped
    for its heaps and mmapped chunk by chunk; and SQLite's share of what is in use (its page
    caches first). RSS counts pages touched; these say what is held, so that a soak can tell
    a leak from a cache filling up to its cap or the allocator touching pages it already
    mapped. Empty where the C library has no mallinfo2."""
    out: dict[str, int] = {}
    if _MALLINFO2 is not None:
        mi = _MALLINFO2()
        out.update(heap_in_use_kib=(mi.uordblks + mi.hblkhd) >> 10,
                   heap_free_kib=mi.fordblks >> 10,
                   heap_mapped_kib=(mi.arena + mi.hblkhd) >> 10)
    if _SQLITE_USED is not None:
        out["sqlite_kib"] = int(_SQLITE_USED()) >> 10
    return out
