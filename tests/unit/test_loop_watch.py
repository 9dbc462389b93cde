"""cti/loop_watch.py: a blocked event loop is reported once, with the blocking call's stack."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from cti.loop_watch import LoopWatch


def _blocks_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # the stall under test: a synchronous call on the event loop


class _Watch(LoopWatch):
    """The watch, with an event the test awaits for its next tick."""

    def __init__(self, loop: asyncio.AbstractEventLoop, **kw: float) -> None:
        super().__init__(loop, **kw)
        self.ticked = asyncio.Event()

    def _tick(self) -> None:
        super()._tick()
        self.ticked.set()


class _Said(logging.Handler):
    """Sets `event` when a record containing `text` is logged (from any thread)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.event = text, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


def test_a_stalled_loop_is_reported_once_with_the_blocking_call(
        caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    watch = _Watch(loop, stall_s=0.5, tick_s=0.1)
    again = _Said("running again")
    logging.getLogger("cti.loop_watch").addHandler(again)

    async def main() -> None:
        watch.start()
        await asyncio.wait_for(watch.ticked.wait(), 5)  # the first tick
        watch.ticked.clear()
        await asyncio.wait_for(watch.ticked.wait(), 5)  # ticking: nothing to report
        assert watch.stalls == 0
        _blocks_the_loop(1.5)
        # the loop runs on while a worker thread waits for the watch's "running again"
        assert await asyncio.to_thread(again.event.wait, 5), "no 'running again' within 5 s"

    try:
        with caplog.at_level(logging.WARNING, logger="cti.loop_watch"):
            loop.run_until_complete(main())
    finally:
        logging.getLogger("cti.loop_watch").removeHandler(again)
        watch.stop()
        loop.close()
    assert watch.stalls == 1
    stalled = [r.getMessage() for r in caplog.records if "stalled" in r.getMessage()]
    assert len(stalled) == 1
    assert "_blocks_the_loop" in stalled[0]
    assert any("running again" in r.getMessage() for r in caplog.records)
