"""WebSocket push at /ws: the CTI's events, filtered per user on the server.

Each message is `{"type": ..., "data": {...}}` with type one of agent_state, pop, queue_stats,
call_event, wallboard, sla_alert, outages, storm (docs/api.md). The ACD's own messages (agent
states, pops, queue figures, call events) come straight from the notifier in this process
(cti/notifier.py), so a screen-pop reaches the browser as the seat rings, not after a trip
through the broker; the
rest (work-order alerts, and everything when no ACD runs here) is relayed from the MQTT bus,
which also brings what other processes publish. The hub keeps the last agent states and queue
figures, which a desktop gets at once when it connects, and the retained hotline/outages (the
notices' revision: a desktop re-reads /api/outages when it moves) and hotline/storm (the storm
banner) from the bus, kept the same way. An agent gets only their own state and pops, plus
queue figures, the outages' revision and the storm switch; supervisors and admins get
everything. Each connection has a
bounded queue; a desktop that cannot keep up is disconnected (it reconnects and gets the
current states again) rather than slowing everyone down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from agent_desktop.auth import COOKIE, User, session_user
from agent_desktop.context import WebContext
from config.topics import OUTAGES_TOPIC, STORM_TOPIC
from cti.notifier import KINDS, LOCAL_FILTERS, Message, Notifier
from cti.notifier import classify as classify_cti

log = logging.getLogger(__name__)
router = APIRouter(tags=["push"])

CLIENT_QUEUE = 256
RECHECK_SESSION_S = 30.0  # an expired or logged-out session is closed within this time
CLOSE_UNAUTHORIZED = 4401
CLOSE_SLOW = 4408
# topic filter -> message type: the CTI's kinds, and the storm day's retained state
FILTERS: dict[str, str] = {**KINDS, OUTAGES_TOPIC: "outages", STORM_TOPIC: "storm"}
# the latest of these is kept and sent to a desktop when it connects
STATEFUL = frozenset({"agent_state", "queue_stats", "outages", "storm"})
# what every agent may read besides their own state and pops (config.topics'
# AGENT_SHARED_FILTERS grants the same on the broker)
SHARED = frozenset({"queue_stats", "outages", "storm"})


def classify(topic: str) -> tuple[str, str | None] | None:
    """(message type, subject) of a relayed topic, else None."""
    if topic == OUTAGES_TOPIC:
        return "outages", None
    if topic == STORM_TOPIC:
        return "storm", None
    return classify_cti(topic)


def allowed(user: User, kind: str, subject: str | None) -> bool:
    """The server-side filter: what this user may receive."""
    if user.is_supervisor:
        return True
    if kind in ("agent_state", "pop"):
        return subject == user.user_id
    return kind in SHARED


@dataclass(eq=False)  # identity: each connection is its own
class _Client:
    user: User
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    overflowed: bool = False


class PushHub:
    """Fan-out of relayed events to the connected desktops; runs on the CTI's loop."""

    def __init__(self) -> None:
        self.clients: set[_Client] = set()
        self.last: dict[str, tuple[str, str | None, dict[str, Any]]] = {}
        self.relayed = 0
        self.dropped_clients = 0

    def attach(self, bus: Any, notifier: Notifier | None = None) -> None:
        """The notifier's messages in-process; from `bus`, only what the notifier does not
        deliver (a message must not arrive twice)."""
        local: frozenset[str] = frozenset()
        if notifier is not None:
            notifier.listen(self.on_local)
            local = LOCAL_FILTERS
        if bus is not None:
            for topic_filter in FILTERS:
                if topic_filter not in local:
                    bus.subscribe(topic_filter, self.on_mqtt)

    def on_local(self, msg: Message) -> None:
        """A message of this process's notifier, as it is sent (on the event loop)."""
        self.publish(msg.kind, msg.subject, dict(msg.data), msg.topic)

    async def on_mqtt(self, topic: str, payload: bytes) -> None:
        found = classify(topic)
        if found is None:
            return
        try:
            data = json.loads(payload.decode("utf-8", errors="replace"))
        except ValueError:
            log.warning("push: not JSON on %s", topic)
            return
        if not isinstance(data, dict):
            data = {"value": data}
        self.publish(found[0], found[1], data, topic)

    def publish(self, kind: str, subject: str | None, data: dict[str, Any],
                key: str | None = None) -> None:
        if kind in STATEFUL and key is not None:
            self.last[key] = (kind, subject, data)
        msg = {"type": kind, "data": data}
        self.relayed += 1
        for client in list(self.clients):
            if allowed(client.user, kind, subject):
                self._put(client, msg)

    def _put(self, client: _Client, msg: dict[str, Any]) -> None:
        try:
            client.queue.put_nowait(msg)
        except asyncio.QueueFull:
            client.overflowed = True
            self.clients.discard(client)
            self.dropped_clients += 1
            log.warning("push: %s cannot keep up; disconnecting it", client.user.user_id)

    def connect(self, user: User) -> _Client:
        client = _Client(user)
        for kind, subject, data in list(self.last.values()):
            if allowed(user, kind, subject):
                self._put(client, {"type": kind, "data": data})
        self.clients.add(client)
        return client

    def disconnect(self, client: _Client) -> None:
        self.clients.discard(client)

    @property
    def supervisors_connected(self) -> bool:
        return any(c.user.is_supervisor for c in self.clients)

    async def wallboard_loop(self, build: Callable[[], Any], every_s: float = 5.0) -> None:
        """While a supervisor is connected, push the wallboard figures every few seconds."""
        while True:
            await asyncio.sleep(every_s)
            if not self.supervisors_connected:
                continue
            try:
                board = await run_in_threadpool(build)
            except Exception:
                log.exception("push: wallboard figures failed")
                continue
            self.publish("wallboard", None, board)


def _same_origin(ws: WebSocket) -> bool:
    """Browsers send Origin on a WebSocket handshake; another site's page must not ride on the
    desktop's cookie (SameSite=Strict already keeps it off cross-site requests)."""
    origin = ws.headers.get("origin")
    if not origin:
        return True  # not a browser
    return urlsplit(origin).netloc == ws.headers.get("host", "")


def _user(ctx: WebContext, token: str | None) -> User | None:
    return session_user(ctx, token, touch=False)


@router.websocket("/ws")
async def push(ws: WebSocket) -> None:
    """Cookie-authenticated push of the desktop's live events."""
    ctx: WebContext = ws.app.state.ctx
    hub: PushHub = ws.app.state.push
    token = ws.cookies.get(COOKIE)
    user = await run_in_threadpool(_user, ctx, token) if token else None
    if user is None or not _same_origin(ws):
        await ws.close(code=CLOSE_UNAUTHORIZED, reason="log in first")
        return
    if user.role == "department" or user.must_change_password:
        # the push is the center's (calls, pops, agents): not a department's; and nothing
        # before a reset password is changed (as on every /api path: auth.current_user)
        await ws.close(code=CLOSE_UNAUTHORIZED, reason="no live events for this session")
        return
    await ws.accept()
    client = hub.connect(user)
    log.info("push: %s connected (%d desktops)", user.user_id, len(hub.clients))

    async def send() -> None:
        loop = asyncio.get_running_loop()
        checked = loop.time()
        while True:
            try:
                async with asyncio.timeout(RECHECK_SESSION_S):
                    msg: dict[str, Any] | None = await client.queue.get()
            except TimeoutError:
                msg = None
            if client.overflowed:
                await ws.close(code=CLOSE_SLOW, reason="too slow; reconnect")
                return
            if loop.time() - checked >= RECHECK_SESSION_S or msg is None:
                checked = loop.time()
                if await run_in_threadpool(_user, ctx, token) is None:
                    await ws.close(code=CLOSE_UNAUTHORIZED, reason="session ended")
                    return
            if msg is not None:
                await ws.send_text(json.dumps(msg, ensure_ascii=False, default=str))

    async def receive() -> None:
        while True:
            text = await ws.receive_text()
            if text == "ping":
                await ws.send_text(json.dumps({"type": "pong", "data": {}}))

    # two tasks: one ends (the client left, the session ended, a send failed) and both stop
    tasks = [asyncio.create_task(send(), name=f"ws-send-{user.user_id}"),
             asyncio.create_task(receive(), name=f"ws-recv-{user.user_id}")]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks)
        for t in tasks:
            exc = None if t.cancelled() else t.exception()
            if exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError):
                log.error("push: %s: %r", user.user_id, exc)
        hub.disconnect(client)
        with contextlib.suppress(Exception):
            await ws.close()
        log.info("push: %s disconnected", user.user_id)
