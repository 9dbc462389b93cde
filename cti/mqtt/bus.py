"""The CTI's MQTT connection: a supervisor around aiomqtt with a bounded outbox and inbox.

aiomqtt gives one connection and nothing more: no reconnect, no resubscribe, and unbounded
queues. MqttBus.run() keeps a connection up, resubscribes on every connect, and owns the
queues, so publish() is a non-blocking call the ACD can make whatever the broker is doing.

Outbox policy (docs/mqtt.md): retained messages are state, so only the newest per topic is
kept while waiting; everything else is a FIFO that drops its oldest entry when full. Messages
leave in the order they were published (a coalesced topic takes the place of its newest value).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiomqtt

from cti.mqtt.topics import (
    CTI_OFFLINE,
    CTI_ONLINE,
    CTI_STATUS_TOPIC,
    check_publish_topic,
    check_topic_filter,
    encode_payload,
    topic_matches,
)

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], Awaitable[None]]
Payload = Mapping[str, Any] | str | bytes

# What a lost or broken connection raises; anything else is a bug and ends run().
_CONNECTION_ERRORS = (aiomqtt.MqttError, TimeoutError, OSError)
_DROP_WARNING_EVERY_S = 1.0
_SHUTDOWN_STATUS_TIMEOUT_S = 1.0


@dataclass(slots=True)
class _Outgoing:
    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class _Subscription:
    topic_filter: str
    handler: Handler
    qos: int


class _DropWarning:
    """Logs drops at most once per second, with how many were dropped in between."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._last = -math.inf
        self._unreported = 0

    def note(self, total: int) -> None:
        self._unreported += 1
        now = time.monotonic()
        if now - self._last >= _DROP_WARNING_EVERY_S:
            log.warning("MQTT %s full: dropped %d oldest message(s) since the last warning "
                        "(%d in all)", self._what, self._unreported, total)
            self._unreported = 0
            self._last = now


class _DropOldestQueue(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's incoming queue, bounded like ours: when full, the oldest message goes.

    (aiomqtt's own bounded queue drops the newest one, and a burst read from the socket
    fills it faster than any consumer task can run.)"""

    on_drop: Callable[[], None] = staticmethod(lambda: None)

    def put_nowait(self, item: aiomqtt.Message) -> None:
        if self.maxsize > 0 and self.full():
            self.get_nowait()
            type(self).on_drop()
        super().put_nowait(item)


class MqttBus:
    """One supervised MQTT connection for the CTI; see the module docstring.

    publish() and subscribe() may be called before run() starts; publish() may also be called
    from worker threads (sessions commit in asyncio.to_thread). Everything else belongs to the
    event loop that runs run().
    """

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        max_queue: int = 1000,
        reconnect_min_s: float = 0.2,
        reconnect_max_s: float = 10.0,
        publish_timeout_s: float = 5.0,
        keepalive_s: int = 10,
        status_topic: str = CTI_STATUS_TOPIC,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        if not client_id:
            raise ValueError("client_id must not be empty")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if not 0 < reconnect_min_s <= reconnect_max_s:
            raise ValueError("need 0 < reconnect_min_s <= reconnect_max_s, got "
                             f"{reconnect_min_s} and {reconnect_max_s}")
        if not publish_timeout_s > 0:
            raise ValueError(f"publish_timeout_s must be > 0, got {publish_timeout_s}")
        if keepalive_s < 1:
            raise ValueError(f"keepalive_s must be >= 1, got {keepalive_s}")
        self.host = host
        self.port = port
        self.client_id = client_id
        self.status_topic = check_publish_topic(status_topic)
        self._max_queue = max_queue
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._publish_timeout_s = publish_timeout_s
        self._keepalive_s = keepalive_s
        # the broker's credential (asterisk_conf/mosquitto.py: hotline-cti); never logged
        self._username = username
        self._password = password

        #: set while a connection is up, subscribed and has announced "online"
        self.connected = asyncio.Event()

        # The outbox is shared with worker threads, so it has a (never awaited-under) lock.
        self._lock = threading.Lock()
        self._seq = 0
        self._fifo: deque[_Outgoing] = deque()
        self._retained: OrderedDict[str, _Outgoing] = OrderedDict()
        self._inflight: _Outgoing | None = None
        self._published = 0
        self._dropped = 0
        self._coalesced = 0
        self._out_drops = _DropWarning("outbox")

        # Loop-only state below.
        self._inbox: deque[tuple[str, bytes]] = deque()
        self._in_dropped = 0
        self._in_drops = _DropWarning("inbox")
        self._handler_errors = 0
        self._subs: tuple[_Subscription, ...] = ()
        self._active_filters: set[str] = set()
        self._connections = 0
        self._reconnects = 0

        self._incoming_queue = type("_BusIncoming", (_DropOldestQueue,),
                                    {"on_drop": staticmethod(self._inbound_dropped)})
        self._outbox_ready = asyncio.Event()
        self._inbox_ready = asyncio.Event()
        self._subs_changed = asyncio.Event()
        self._progress = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._running = False

    # ------------------------------------------------------------------------------ public API

    def publish(self, topic: str, payload: Payload, *, qos: int = 1,
                retain: bool = False) -> None:
        """Queue a message; returns at once. Never blocks and never raises for the broker's
        state. Raises ValueError/TypeError for a bad topic, QoS or payload (a bug at the
        caller). Mappings become JSON (see topics.to_json)."""
        check_publish_topic(topic)
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        data = encode_payload(payload)
        with self._lock:
            self._seq += 1
            msg = _Outgoing(self._seq, topic, data, qos, bool(retain))
            dropped = False
            if msg.retain:
                if self._retained.pop(topic, None) is not None:
                    self._coalesced += 1
                elif len(self._retained) >= self._max_queue:
                    self._retained.popitem(last=False)
                    dropped = True
                self._retained[topic] = msg
            else:
                if len(self._fifo) >= self._max_queue:
                    self._fifo.popleft()
                    dropped = True
                self._fifo.append(msg)
            if dropped:
                self._dropped += 1
                self._out_drops.note(self._dropped)
        self._wake(outbox=True)

    def subscribe(self, topic_filter: str, handler: Handler, *, qos: int = 1) -> None:
        """Register a handler; it survives reconnects. Handlers run one at a time, off the
        network loop, from a bounded inbox: keep them short (hand work to a queue)."""
        check_topic_filter(topic_filter)
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        with self._lock:
            self._subs = (*self._subs, _Subscription(topic_filter, handler, qos))
        self._wake(subs=True)

    def stats(self) -> dict[str, Any]:
        """Counters since construction: published (acknowledged at their QoS), dropped (outbox
        full), coalesced (retained values replaced while waiting), reconnects (connections
        after the first), subscriptions (distinct filters), queued (waiting or in flight),
        inbound_dropped (inbox full), handler_errors, and whether it is connected now."""
        with self._lock:
            queued = len(self._fifo) + len(self._retained) + (self._inflight is not None)
            return {
                "published": self._published,
                "dropped": self._dropped,
                "coalesced": self._coalesced,
                "reconnects": self._reconnects,
                "subscriptions": len({s.topic_filter for s in self._subs}),
                "queued": queued,
                "inbound_dropped": self._in_dropped,
                "handler_errors": self._handler_errors,
                "connected": self.connected.is_set(),
            }

    async def wait_published(self, timeout: float) -> bool:
        """Wait until every message queued before this call has left the outbox (sent and
        acknowledged at its QoS, dropped, or superseded by a newer retained value). False on
        timeout. For shutdown (drain, then cancel run()) and for tests."""
        with self._lock:
            target = self._seq
        try:
            async with asyncio.timeout(timeout):
                while self._oldest_pending_seq() <= target:
                    await self._progress.wait()
        except TimeoutError:
            return False
        return True

    async def wait_subscribed(self, timeout: float) -> bool:
        """Wait until connected with every registered filter subscribed. False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                while not (self.connected.is_set() and self._all_subscribed()):
                    await self._progress.wait()
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Keep the connection up until cancelled. Its tasks are named, in one TaskGroup."""
        if self._running:
            raise RuntimeError("MqttBus.run() is already running")
        self._running = True
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._outbox_ready.set()  # anything published before run()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._supervise(), name="mqtt-supervisor")
                tg.create_task(self._dispatch(), name="mqtt-dispatcher")
        finally:
            self.connected.clear()
            self._running = False
            self._loop = None
            self._loop_thread = None

    # ------------------------------------------------------------------------------ signalling

    def _wake(self, *, outbox: bool = False, subs: bool = False) -> None:
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            self._wake_here(outbox, subs)
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(self._wake_here, outbox, subs)

    def _wake_here(self, outbox: bool, subs: bool) -> None:
        if outbox:
            self._outbox_ready.set()
        if subs:
            self._subs_changed.set()
        self._notify_progress()

    def _notify_progress(self) -> None:
        # waiters re-check their condition; a fresh Event so each wait sees only new progress
        event, self._progress = self._progress, asyncio.Event()
        event.set()

    def _oldest_pending_seq(self) -> float:
        with self._lock:
            heads = [m.seq for m in (self._inflight,
                                     self._fifo[0] if self._fifo else None,
                                     next(iter(self._retained.values()), None))
                     if m is not None]
        return min(heads, default=math.inf)

    def _all_subscribed(self) -> bool:
        return all(s.topic_filter in self._active_filters for s in self._subs)

    # -------------------------------------------------------------------------------- outbox

    def _take(self) -> _Outgoing | None:
        with self._lock:
            head = self._fifo[0] if self._fifo else None
            state = next(iter(self._retained.values()), None)
            if head is None and state is None:
                return None
            if state is None or (head is not None and head.seq < state.seq):
                msg = self._fifo.popleft()
            else:
                msg = self._retained.popitem(last=False)[1]
            self._inflight = msg
            return msg

    def _sent(self, msg: _Outgoing) -> None:
        with self._lock:
            self._inflight = None
            self._published += 1
        self._notify_progress()

    def _requeue(self, msg: _Outgoing) -> None:
        """Put a message whose publish failed back at the head (it was the oldest)."""
        with self._lock:
            self._inflight = None
            if msg.retain:
                if msg.topic in self._retained:
                    self._coalesced += 1  # a newer value is already waiting
                elif len(self._retained) >= self._max_queue:
                    self._dropped += 1
                    self._out_drops.note(self._dropped)
                else:
                    self._retained[msg.topic] = msg
                    self._retained.move_to_end(msg.topic, last=False)
            elif len(self._fifo) >= self._max_queue:
                self._dropped += 1
                self._out_drops.note(self._dropped)
            else:
                self._fifo.appendleft(msg)
        self._notify_progress()

    async def _publisher(self, client: aiomqtt.Client) -> None:
        while True:
            msg = self._take()
            if msg is None:
                self._outbox_ready.clear()
                msg = self._take()  # a publish may have landed just before the clear
                if msg is None:
                    await self._outbox_ready.wait()
                    continue
            try:
                # aiomqtt waits for a PUBACK forever if the socket dies silently: our deadline
                # turns that into a reconnect, and the message goes back to the head.
                async with asyncio.timeout(self._publish_timeout_s):
                    await client.publish(msg.topic, msg.payload, msg.qos, msg.retain,
                                         timeout=math.inf)
            except BaseException:
                self._requeue(msg)
                raise
            self._sent(msg)

    # ------------------------------------------------------------------------------ inbox

    async def _receiver(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if isinstance(payload, bytes):
                data = payload
            elif payload is None:
                data = b""
            else:
                data = str(payload).encode("utf-8")
            if len(self._inbox) >= self._max_queue:
                self._inbox.popleft()
                self._inbound_dropped()
            self._inbox.append((message.topic.value, data))
            self._inbox_ready.set()
        raise aiomqtt.MqttError("the message stream ended")

    def _inbound_dropped(self) -> None:
        self._in_dropped += 1
        self._in_drops.note(self._in_dropped)

    async def _dispatch(self) -> None:
        while True:
            if not self._inbox:
                self._inbox_ready.clear()
                await self._inbox_ready.wait()
                continue
            topic, payload = self._inbox.popleft()
            for sub in self._subs:
                if not topic_matches(sub.topic_filter, topic):
                    continue
                try:
                    await sub.handler(topic, payload)
                except Exception:
                    self._handler_errors += 1
                    log.exception("MQTT handler for %s failed on %s", sub.topic_filter, topic)

    # ----------------------------------------------------------------------- subscriptions

    async def _subscribe_missing(self, client: aiomqtt.Client) -> None:
        wanted: dict[str, int] = {}
        for s in self._subs:
            wanted[s.topic_filter] = max(s.qos, wanted.get(s.topic_filter, 0))
        missing = [(f, q) for f, q in wanted.items() if f not in self._active_filters]
        if not missing:
            return
        async with asyncio.timeout(self._publish_timeout_s):
            codes = await client.subscribe(missing, timeout=math.inf)
        for (topic_filter, _), code in zip(missing, codes, strict=False):
            value = code if isinstance(code, int) else int(getattr(code, "value", 0x80))
            if value >= 0x80:
                # a refusal (ACL) does not heal by reconnecting; retried on the next connect
                log.error("MQTT broker refused the subscription to %s (code %#x)",
                          topic_filter, value)
            else:
                self._active_filters.add(topic_filter)
        self._notify_progress()

    async def _subscriber(self, client: aiomqtt.Client) -> None:
        while True:
            self._subs_changed.clear()
            await self._subscribe_missing(client)
            await self._subs_changed.wait()

    # ------------------------------------------------------------------------------ supervisor

    def _client(self) -> aiomqtt.Client:
        # A fresh client per connection: paho's in-flight state from a dead session is not
        # carried over; our own outbox is what gets retried.
        return aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            username=self._username,
            password=self._password,
            will=aiomqtt.Will(self.status_topic, CTI_OFFLINE, qos=1, retain=True),
            clean_session=True,
            keepalive=self._keepalive_s,
            timeout=self._publish_timeout_s,
            queue_type=self._incoming_queue,
            max_queued_incoming_messages=self._max_queue,
        )

    def _backoff(self, failures: int) -> float:
        cap = min(self._reconnect_max_s, self._reconnect_min_s * 2 ** min(failures - 1, 30))
        return random.uniform(cap / 2, cap)

    async def _supervise(self) -> None:
        failures = 0
        while True:
            was_up = False
            client = self._client()
            try:
                async with client:
                    was_up = True
                    await self._session(client)
            except* _CONNECTION_ERRORS as group:
                reason = "; ".join(str(e) or type(e).__name__ for e in group.exceptions)
                if was_up:
                    log.warning("MQTT connection to %s:%d lost: %s", self.host, self.port,
                                reason)
                elif failures == 0:
                    log.warning("MQTT broker %s:%d unreachable: %s; retrying with backoff",
                                self.host, self.port, reason)
                else:
                    log.debug("MQTT connect to %s:%d failed again: %s", self.host, self.port,
                              reason)
            finally:
                self.connected.clear()
                self._active_filters.clear()
                if not was_up:
                    _abandon(client)
            failures = 1 if was_up else failures + 1
            await asyncio.sleep(self._backoff(failures))

    async def _session(self, client: aiomqtt.Client) -> None:
        # Subscriptions first: a handler must not miss what follows our "online".
        self._active_filters.clear()
        await self._subscribe_missing(client)
        async with asyncio.timeout(self._publish_timeout_s):
            await client.publish(self.status_topic, CTI_ONLINE, 1, True, timeout=math.inf)
        self._connections += 1
        if self._connections > 1:
            self._reconnects += 1
        self.connected.set()
        self._notify_progress()
        log.info("MQTT connected to %s:%d as %s (reconnects: %d)", self.host, self.port,
                 self.client_id, self._reconnects)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._publisher(client), name="mqtt-publisher")
                tg.create_task(self._receiver(client), name="mqtt-receiver")
                tg.create_task(self._subscriber(client), name="mqtt-subscriber")
        except asyncio.CancelledError:
            # A clean disconnect does not fire the will, so say "offline" ourselves.
            self.connected.clear()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_SHUTDOWN_STATUS_TIMEOUT_S):
                    await client.publish(self.status_topic, CTI_OFFLINE, 1, True,
                                         timeout=math.inf)
            raise


def _abandon(client: aiomqtt.Client) -> None:
    """Close the socket of a connect attempt that failed after TCP connected (no CONNACK in
    time). aiomqtt leaves it open; a broker that wakes up later would then take the stale
    CONNECT for our session. DISCONNECT first, so the broker does not fire our will for it."""
    with contextlib.suppress(Exception):
        client._client.disconnect()
