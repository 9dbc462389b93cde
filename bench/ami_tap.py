"""The bench's AMI tap: the project's own AmiClient (cti/ami/client.py), every event recorded
with Asterisk's Timestamp and the moment it reached the bench, for the figures and the JSONL dump.

No AMI framing here: the client owns the protocol, the deadlines and the rule that an action
like Originate or Redirect is never re-sent after a reconnect. A reconnect during a run would
lose events (Asterisk keeps none for a client that is away), so the tap counts reconnects and
dropped events and the bench reports them next to its figures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cti.ami.client import NEVER_IDEMPOTENT, AmiClient, AmiError

log = logging.getLogger(__name__)

Event = dict[str, Any]
MAX_EVENTS = 2_000_000  # a bound, far above what a 10-minute bench produces
QUEUE_SIZE = 200_000  # the client's event queue: the bench would rather hold than drop

__all__ = ["AmiError", "AmiTap", "Event", "tap_login", "ts"]


def tap_login(ami: Any, etc: Path) -> tuple[str, str]:
    """Who the bench logs in as: the tools' observer user where the rendered manager.conf (in
    `etc`) has its section (the CTI's own user then allows a single session), else the CTI's."""
    try:
        from asterisk_conf.render import ami_observer  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return ami.username, ami.secret
    login = ami_observer(ami)
    try:
        conf = (etc / "manager.conf").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ami.username, ami.secret
    if f"[{login.username}]" not in conf:
        return ami.username, ami.secret
    return str(login.username), str(login.secret)


def _plain(msg: Mapping[str, Any]) -> Event:
    """A JSON-able dict of one AMI message; the first value of a repeated header is enough
    for the bench's figures."""
    return {str(k): (v[0] if isinstance(v, list) and v else v) for k, v in msg.items()}


class AmiTap:
    """Runs an AmiClient; keeps the events (bounded) and feeds them to listeners."""

    def __init__(self, host: str, port: int, username: str, secret: str) -> None:
        self.client = AmiClient(host, port, username, secret, on_connected=self._connected,
                                event_queue_size=QUEUE_SIZE)
        self.events: list[Event] = []
        self.received = 0  # events seen since start (events beyond MAX_EVENTS are not kept)
        self._listeners: list[Callable[[Event], None]] = []

    @property
    def reconnects(self) -> int:
        return max(0, self.client.connects - 1)

    @property
    def dropped(self) -> int:
        return self.client.dropped_events

    async def _connected(self, client: AmiClient) -> None:
        if client.connects > 1:
            log.warning("bench AMI tap reconnected: events in between are lost")

    def on_event(self, fn: Callable[[Event], None]) -> None:
        self._listeners.append(fn)

    def off_event(self, fn: Callable[[Event], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    async def run(self) -> None:
        """The client's session and the event pump, until cancelled (run it as a named task)."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.client.run(), name="bench-ami-client")
            tg.create_task(self._pump(), name="bench-ami-pump")

    async def _pump(self) -> None:
        async for msg in self.client.events():
            ev = _plain(msg)
            ev["_received"] = time.time()
            self.received += 1
            if len(self.events) < MAX_EVENTS:
                self.events.append(ev)
            for fn in self._listeners:
                fn(ev)

    async def wait_ready(self, timeout: float = 15) -> None:
        """Logged in and FullyBooted (run() must be running)."""
        try:
            async with asyncio.timeout(timeout):
                await self.client.ready.wait()
        except TimeoutError:
            raise AmiError(f"no AMI session with {self.client.host}:{self.client.port} "
                           f"within {timeout:g}s") from None

    async def action(self, action: dict[str, str], timeout: float = 5) -> list[Event]:
        """Send one action; the answers as a list (a list action's listed events follow its
        Response). Only actions safe to repeat may be re-sent after a reconnect."""
        idempotent = action.get("Action", "").lower() not in NEVER_IDEMPOTENT
        answer = await self.client.action(action, timeout=timeout, idempotent=idempotent)
        return [_plain(m) for m in (answer if isinstance(answer, list) else [answer])]

    async def channels(self) -> list[Event]:
        listed = await self.action({"Action": "CoreShowChannels"}, timeout=10)
        return [e for e in listed if e.get("Event") == "CoreShowChannel"]


def ts(ev: Event) -> float:
    """When Asterisk raised the event (timestampevents = yes), else when it arrived here."""
    try:
        return float(ev["Timestamp"])
    except (KeyError, ValueError):
        return float(ev["_received"])
