"""Records every AMI event of a test session (panoramisk client in a background thread)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from panoramisk import Manager

from tests.support.inbox import Inbox

Event = dict[str, Any]


class AmiTimeout(AssertionError):
    """The awaited AMI event did not arrive in time."""


class AmiRecorder:
    """Collects AMI events so tests can wait on them (never on sleeps) and inspect a call."""

    def __init__(self, host: str, port: int, username: str, secret: str) -> None:
        self.config = dict(host=host, port=port, username=username, secret=secret)
        self._events: Inbox[Event] = Inbox("AMI event", AmiTimeout)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ami-recorder",
                                        daemon=True)
        self._manager: Manager | None = None
        self._logged_in = threading.Event()

    def start(self, timeout: float = 15) -> AmiRecorder:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._connect(), self._loop).result(timeout)
        if not self._logged_in.wait(timeout):
            raise AmiTimeout("AMI login did not complete")
        return self

    async def _connect(self) -> None:
        m = Manager(loop=self._loop, ping_delay=3600, reconnect_timeout=1,
                    on_login=lambda _m: self._logged_in.set(), **self.config)
        # panoramisk reconnects by itself (connection lost, or Asterisk's Shutdown event) every
        # reconnect_timeout s, which it takes as whole seconds: 0.2 s instead, so that after an
        # Asterisk restart the recorder is logged in before FullyBooted and sees it as it is sent
        m.reconnect_timeout = 0.2
        m.register_event("*", self._on_event)
        self._manager = m
        m.connect()

    def _on_event(self, _manager: Manager, event: Any) -> None:
        ev: Event = {k: v for k, v in dict(event).items()}
        ev.setdefault("_received", time.time())
        self._events.add(ev)

    def stop(self) -> None:
        if self._manager is not None:
            m = self._manager
            self._manager = None
            # stop panoramisk from reconnecting, then close
            m.connect = lambda *a, **k: None  # type: ignore[method-assign]
            self._loop.call_soon_threadsafe(m.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def events(self) -> list[Event]:
        return self._events.items()

    def wait_for(self, pred: Callable[[Event], bool], timeout: float, what: str = "",
                 since: int = 0) -> Event:
        """The first event (from index `since`) matching `pred`, waiting up to `timeout` s."""
        return self._events.wait_for(pred, timeout, what, since)

    def mark(self) -> int:
        return self._events.mark()


def send_action(recorder: AmiRecorder, action: dict[str, str], timeout: float = 10,
                as_list: bool = False) -> Any:
    """Send one AMI action through the recorder's connection and return the response (with
    as_list, every message of an event-list action: the response, its events, the Complete)."""
    m = recorder._manager
    if m is None:
        raise AmiTimeout("AMI recorder is not connected")

    async def go() -> Any:
        async with asyncio.timeout(timeout):
            return await m.send_action(dict(action), as_list=as_list)

    return asyncio.run_coroutine_threadsafe(go(), recorder._loop).result(timeout + 1)
