"""Diagnostics an operator turns on for a soak, off by default: snapshots of the CTI's Python
allocations (tracemalloc) at a steady interval, to see what grows with the calls served.

`HOTLINE_TRACEMALLOC_EVERY_S=120` in the CTI's environment starts tracing (10 frames) when
the CTI starts and writes `<state dir>/tracemalloc/cti-NNN.snap` every 120 s. Tracing costs CPU
and memory of its own (bench figures taken with it on are not comparable). Compare two
snapshots with `python -m bench.tracemalloc_diff A B`.
"""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from collections.abc import Mapping
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
