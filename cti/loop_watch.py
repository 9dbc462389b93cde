"""A watchdog for the CTI's event loop: one loop runs the ACD, AMI, FastAGI, MQTT and the web
API, so a call that blocks it (a database lock, a slow disk) stalls every caller at once. A
daemon thread notices a loop that has not ticked for `stall_s` and logs, once per stall, how
long and what every thread was doing, so the blocking call can be named instead of guessed.

A stall that holds the GIL (a C call that never releases it) stops the watching thread too; for
that, faulthandler's own C thread, re-armed at every tick, writes every thread's stack to stderr
(the CTI's log) once the loop has missed `stall_s`."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import sys
import threading
import time
import traceback

logger = logging.getLogger(__name__)


def thread_stacks() -> str:
    """Every thread's current stack, innermost call last."""
    names = {t.ident: t.name for t in threading.enumerate()}
    parts = []
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue
        parts.append(f"thread {names.get(ident, ident)}:\n"
                     + "".join(traceback.format_stack(frame)))
    return "\n".join(parts)


class LoopWatch:
    """Ticks on the loop every `tick_s`; the thread reports a stall of `stall_s` or more."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, stall_s: float = 5.0,
                 tick_s: float = 0.5) -> None:
        self.loop, self.stall_s, self.tick_s = loop, stall_s, tick_s
        self.last = time.monotonic()
        self.stalls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="loop-watch", daemon=True)

    def start(self) -> LoopWatch:
        self.loop.call_soon_threadsafe(self._tick)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        faulthandler.cancel_dump_traceback_later()

    def _tick(self) -> None:
        self.last = time.monotonic()
        if not self._stop.is_set():
            faulthandler.dump_traceback_later(self.stall_s, file=sys.stderr)
            self.loop.call_later(self.tick_s, self._tick)

    def _watch(self) -> None:
        reported = False
        while not self._stop.wait(self.tick_s):
            behind = time.monotonic() - self.last
            if behind < self.stall_s:
                if reported:
                    logger.warning("event loop running again")
                reported = False
                continue
            if not reported and not self.loop.is_closed():
                self.stalls += 1
                logger.warning("event loop stalled for %.1f s; every thread's stack:\n%s",
                               behind, thread_stacks())
                reported = True
