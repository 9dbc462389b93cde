"""A raw AMI session for the bench: records every event (with Asterisk's Timestamp) and sends
the few actions the bench needs, each under a timeout.

Raw on purpose, like the stack's readiness probe: the bench must leave nothing behind and must
never have an action re-sent after a reconnect (panoramisk does that).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Event = dict[str, Any]
MAX_EVENTS = 2_000_000  # a bound, far above what a 10-minute bench produces


class AmiError(Exception):
    """The AMI session failed or an action was refused."""


class AmiTap:
    def __init__(self, host: str, port: int, username: str, secret: str) -> None:
        self.host, self.port, self.username, self.secret = host, port, username, secret
        self.events: list[Event] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, tuple[asyncio.Future[list[Event]], list[Event]]] = {}
        self._listeners: list[Callable[[Event], None]] = []

    def on_event(self, fn: Callable[[Event], None]) -> None:
        self._listeners.append(fn)

    def off_event(self, fn: Callable[[Event], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    async def connect(self, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            await self._reader.readline()  # banner
            self._writer.write((f"Action: Login\r\nActionID: login\r\nUsername: {self.username}"
                                f"\r\nSecret: {self.secret}\r\nEvents: on\r\n\r\n").encode())
            await self._writer.drain()
            block = await self._read_block()
            if block.get("Response") != "Success":
                raise AmiError(f"AMI login refused: {block.get('Message')}")

    async def _read_block(self) -> Event:
        assert self._reader is not None
        raw = await self._reader.readuntil(b"\r\n\r\n")
        ev: Event = {}
        for line in raw.decode("utf-8", errors="replace").split("\r\n"):
            key, sep, value = line.partition(": ")
            if sep:
                ev.setdefault(key, value)  # the first of a repeated key is enough here
        ev["_received"] = time.time()
        return ev

    async def run(self) -> None:
        """Read events until cancelled (run it as a named task of the caller's TaskGroup)."""
        while True:
            ev = await self._read_block()
            aid = ev.get("ActionID")
            if aid is not None and aid in self._pending:
                fut, items = self._pending[aid]
                if "Response" in ev:
                    if ev["Response"] != "Success":
                        fut.set_exception(AmiError(f"{ev.get('Response')}: {ev.get('Message')}"))
                    elif ev.get("EventList") != "start":
                        fut.set_result([ev])
                    continue
                if ev.get("EventList") == "Complete":
                    if not fut.done():
                        fut.set_result(items)
                    continue
                items.append(ev)
                continue
            if "Event" not in ev:
                continue
            if len(self.events) < MAX_EVENTS:
                self.events.append(ev)
            for fn in self._listeners:
                fn(ev)

    async def action(self, action: dict[str, str], timeout: float = 5) -> list[Event]:
        """Send one action; the response (or, for list actions, the listed events)."""
        assert self._writer is not None
        aid = f"bench-{next(self._ids)}"
        fut: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        self._pending[aid] = (fut, [])
        text = "".join(f"{k}: {v}\r\n" for k, v in {**action, "ActionID": aid}.items())
        try:
            self._writer.write((text + "\r\n").encode())
            await self._writer.drain()
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self._pending.pop(aid, None)

    async def channels(self) -> list[Event]:
        return await self.action({"Action": "CoreShowChannels"}, timeout=10)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def ts(ev: Event) -> float:
    """When Asterisk raised the event (timestampevents = yes), else when it arrived here."""
    try:
        return float(ev["Timestamp"])
    except (KeyError, ValueError):
        return float(ev["_received"])
