"""The CTI's AMI session: connect, log in, resync, reconnect; actions with timeouts; bounded events.

panoramisk does the protocol: its AMIProtocol writes actions and matches responses to them by
ActionID, its Action carries the future and its Message is what callers get back. The session
behaviour is ours, because panoramisk's Manager gets the parts a call center depends on wrong:

- its actions have no timeout, and an unanswered action (Originate, Redirect...) is re-sent after
  a reconnect; here every action has a deadline and none is ever re-sent unless the caller
  marked it idempotent (then at most once, after the resync);
- it decodes each TCP chunk on its own with errors='ignore'; here bytes go through one incremental
  UTF-8 decoder with errors='replace', so a Chinese name split across two reads stays whole and a
  truncated one becomes U+FFFD instead of vanishing (or breaking the framing);
- it decides whether an action answers with a list by reading the response's message text
  ("will follow", "added ... to queue"), which is how QueueAdd never resolved and Originate
  resolved only once answered; here the action's name decides, and only Response/EventList
  headers are read;
- it keeps no bound on its callbacks; here events go into a bounded queue and an overflow is
  counted and triggers a resync, because the CTI's picture may now be wrong.
"""

from __future__ import annotations

import asyncio
import codecs
import contextvars
import logging
import random
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from panoramisk import actions
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

log = logging.getLogger(__name__)

# An action whose effect is not safe to repeat: the client refuses idempotent=True for these.
NEVER_IDEMPOTENT = frozenset({"originate", "redirect", "atxfer", "blindtransfer", "bridge"})

# Actions that answer with "Response: Success / EventList: start", then events, then a
# "...Complete" event with "EventList: Complete". Every other action answers with one Response
# (QueueAdd included; Originate's OriginateResponse arrives later as an ordinary event).
LIST_ACTIONS = frozenset({
    "agents", "bridgeinfo", "bridgelist", "confbridgelist", "confbridgelistrooms",
    "coreshowchannelmap", "coreshowchannels", "dahdishowchannels", "dbget", "dbgettree",
    "devicestatelist", "extensionstatelist", "iaxpeerlist", "meetmelist", "parkedcalls",
    "parkinglots", "pjsipshowaors", "pjsipshowauths", "pjsipshowcontacts", "pjsipshowendpoint",
    "pjsipshowendpoints", "pjsipshowregistrationsinbound", "pjsipshowregistrationsoutbound",
    "pjsipshowresourcelists", "pjsipshowsubscriptionsinbound", "queuestatus", "queuesummary",
    "sippeers", "status", "voicemailuserstatus", "voicemailusers",
})

SUCCESS = frozenset({"Success", "Follows", "Goodbye"})
BANNER = "Asterisk Call Manager/"
_FRAME = re.compile(r"\r?\n\r?\n")
_LINE = re.compile(r"\r?\n")
_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
_ORPHANS_KEPT = 256

# Set (to the session's protocol) while on_connected runs: actions it sends go out before
# `ready`, and fail at once on a disconnect (the next session resyncs from scratch anyway).
_RESYNC: contextvars.ContextVar[AmiProtocol | None] = contextvars.ContextVar("ami_resync",
                                                                           default=None)


# ------------------------------------------------------------------------------------ errors


class AmiError(Exception):
    """Base of the AMI client's errors."""


class AmiTimeout(AmiError, TimeoutError):
    """No (complete) answer within the action's deadline."""


class AmiDisconnected(AmiError, ConnectionError):
    """The connection was lost while the action was pending, or there was none to send on."""


class AmiActionError(AmiError):
    """Asterisk answered Response: Error (or Fail). `response` is the answer, for its headers."""

    def __init__(self, action: str, response: Message) -> None:
        super().__init__(f"{action}: Response: {response.get('Response')}")
        self.action = action
        self.response = response


class AmiLoginError(AmiError):
    """Asterisk refused the login."""


# ------------------------------------------------------------------------------------ backoff


@dataclass
class Backoff:
    """Jittered exponential reconnect delays: attempt n waits base_n * U(0.5, 1) where
    base_n = floor * 2**n, never below the floor nor above the cap. Attempt n+1's lowest delay
    is attempt n's highest, so delays never shrink on the way up; at the cap they stay between
    half of it and all of it, so a crowd of clients never reconnects in lockstep."""

    floor_s: float = 0.2
    cap_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        base = min(self.cap_s, self.floor_s * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return min(self.cap_s, max(self.floor_s, base * self.rng.uniform(0.5, 1.0)))

    def reset(self) -> None:
        self.attempt = 0


# ------------------------------------------------------------------------------- the protocol


def parse_message(block: str) -> Message | None:
    """One AMI message ("Key: value" lines) as panoramisk's Message; repeated keys give lists.
    Lines that are not headers (old-style command output) become the message's content."""
    headers: dict[str, Any] = {}
    content: list[str] = []
    for line in _LINE.split(block):
        key, sep, value = line.partition(":")
        if not sep or not _KEY.match(key):
            if line.strip():
                content.append(line)
            continue
        value = value[1:] if value.startswith(" ") else value
        if key in headers:
            old = headers[key]
            headers[key] = [*old, value] if isinstance(old, list) else [old, value]
        else:
            headers[key] = value
    msg = Message(headers, "\n".join(content))
    if "Event" in msg or "Response" in msg:
        return msg
    return None


class _Action(actions.Action):  # type: ignore[misc]
    """panoramisk's Action (ActionID, future, wire format) with completion decided by headers:
    a single-answer action completes on its Response; a list action on an error Response, on a
    Success without "EventList: start", or on the event carrying "EventList: Complete"."""

    def add_message(self, message: Message) -> bool:
        if self.future.done():
            return True
        if not self.responses and "Response" not in message:
            return False  # an event with our ActionID ahead of the response: not ours to end
        self.responses.append(message)
        first = self.responses[0]
        if not self.as_list:
            self.future.set_result(first)
            return True
        listing = (first.get("Response") in SUCCESS
                   and str(first.get("EventList", "")).lower() == "start")
        if not listing or (len(self.responses) > 1 and _ends_list(message)):
            self.future.set_result(list(self.responses))
            return True
        return False


def _ends_list(message: Message) -> bool:
    marker = str(message.get("EventList", "")).lower()
    return marker in ("complete", "cancelled") or str(message.get("Event", "")).endswith(
        "Complete")


class AmiProtocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's AMIProtocol (send, response matching, Shutdown handling) with our bytes
    handling and no re-send list. Framing is CRLF CRLF here, independent of panoramisk's
    module-global utils.EOL (which panoramisk.testing rewrites to '\\n' for everyone)."""

    def __init__(self, on_event: Callable[[Message], None],
                 on_lost: Callable[[AmiProtocol, BaseException | None], None]) -> None:
        super().__init__()
        self.closed = False
        self.transport: Any = None
        self._on_event = on_event
        self._on_lost = on_lost
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._banner_pending = True
        self._lost_reported = False
        self.booted = asyncio.Event()
        self.orphans: deque[str] = deque(maxlen=_ORPHANS_KEPT)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.factory = self  # panoramisk's handle_message dispatches events to factory.dispatch
        self.encoding = "utf-8"
        self.log = log

    def data_received(self, data: bytes) -> None:
        self._buffer += self._decoder.decode(data)
        if self._banner_pending and not self._take_banner():
            return
        *blocks, self._buffer = _FRAME.split(self._buffer)
        for block in blocks:
            message = parse_message(block)
            if message is not None:
                self.handle_message(message)

    def _take_banner(self) -> bool:
        """Asterisk opens with one line, "Asterisk Call Manager/<version>", ending in one CRLF.
        True once past it (or once it is clear that this peer sends none)."""
        buf = self._buffer
        n = min(len(buf), len(BANNER))
        if buf[:n] != BANNER[:n]:
            self._banner_pending = False
            return True
        if n < len(BANNER) or "\n" not in buf:
            return False  # need more bytes to tell
        line, _, self._buffer = buf.partition("\n")
        self.version = line.strip()[len(BANNER):]
        self._banner_pending = False
        return True

    def dispatch(self, message: Message) -> None:
        """Events (and late list items of actions that timed out, which are dropped)."""
        if message.get("ActionID") in self.orphans:
            return
        if str(message.get("Event", "")) == "FullyBooted":
            self.booted.set()
        self._on_event(message)

    def request(self, payload: Mapping[str, Any], as_list: bool) -> _Action:
        """Write one action; its `future` gets the answer (a list for a list action)."""
        act = _Action(dict(payload), as_list=as_list)
        self.send(act, as_list=as_list)
        return act

    def forget(self, action: _Action) -> None:
        """Stop matching answers to an action that is over (answered, timed out, cancelled)."""
        self.responses.pop(action.id, None)
        unfinished = not action.future.done() or action.future.cancelled()
        if action.as_list and unfinished:
            self.orphans.append(action.id)

    def close(self) -> None:
        # panoramisk's close() queues unanswered actions for a re-send: never here
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        """Drop the connection now (dead peer): no flushing, pending actions fail."""
        if not self.closed and self.transport is not None:
            self.transport.abort()
        self.connection_lost(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._lost_reported:
            return
        self._lost_reported = True
        self.close()
        self.booted.set()  # wake a session waiting for FullyBooted; it checks `closed`
        self._on_lost(self, exc if isinstance(exc, BaseException) else None)


# ------------------------------------------------------------------------------------ client


OnConnected = Callable[["AmiClient"], Awaitable[None]]


class AmiClient:
    """One AMI session at a time, reconnected for ever; see the module docstring.

    `ready` is set once logged in, FullyBooted and `on_connected` (the CTI's full resync) has
    returned; it is cleared the moment the connection is lost. Actions other than those sent
    by `on_connected` need `ready`: a non-idempotent one fails at once with AmiDisconnected
    when it is not set, an idempotent one waits for it within its deadline.
    """

    def __init__(self, host: str, port: int, username: str, secret: str, *,
                 on_connected: OnConnected, event_queue_size: int = 10000,
                 action_timeout_s: float = 5.0, boot_timeout_s: float = 30.0,
                 ping_interval_s: float | None = 10.0, backoff: Backoff | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if event_queue_size < 1:
            raise ValueError("event_queue_size must be >= 1")
        if action_timeout_s <= 0:
            raise ValueError("action_timeout_s must be > 0")
        self.host = host
        self.port = port
        self._username = username
        self._secret = secret
        self._on_connected = on_connected
        self.action_timeout_s = action_timeout_s
        self.boot_timeout_s = boot_timeout_s
        self.ping_interval_s = ping_interval_s
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self.ready = asyncio.Event()
        self._events: asyncio.Queue[Message] = asyncio.Queue(maxsize=event_queue_size)
        self._proto: AmiProtocol | None = None  # the logged-in session, if any
        self._resync_needed = asyncio.Event()
        self._resync_lock = asyncio.Lock()
        self.dropped_events = 0  # events lost to a full queue, since start
        self.resyncs = 0  # on_connected calls that returned
        self.connects = 0  # logins

    # ------------------------------------------------------------------------ public API

    @property
    def connected(self) -> bool:
        return self._proto is not None and not self._proto.closed

    async def run(self) -> None:
        """Connect, resync, keep the session alive and reconnect; runs until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._connect_loop(), name="ami-connect")
            tg.create_task(self._resync_loop(), name="ami-resync")
            tg.create_task(self._keepalive_loop(), name="ami-keepalive")

    async def events(self) -> AsyncIterator[Message]:
        """AMI events in arrival order (from the bounded queue); for one consumer."""
        while True:
            yield await self._events.get()

    async def action(self, action: Mapping[str, str | Sequence[str]], *,
                     timeout: float | None = None, idempotent: bool,
                     as_list: bool | None = None) -> Message | list[Message]:
        """Send one action; its answer, or a list (first Response ... Complete event) for the
        list actions (LIST_ACTIONS, or as_list=True). Raises AmiTimeout past the deadline
        (the client's action_timeout_s unless given; it covers waiting for `ready` and the one
        re-send), AmiDisconnected, AmiActionError on Response: Error. Only an idempotent action
        is ever re-sent after a reconnect, at most once; Originate and Redirect never are."""
        name = _action_name(action)
        lname = name.lower()
        if idempotent and lname in NEVER_IDEMPOTENT:
            raise ValueError(f"{name} is never idempotent: a re-send could ring or move a "
                             "call twice; pass idempotent=False")
        payload = _payload(action)
        listing = lname in LIST_ACTIONS if as_list is None else as_list
        budget = self.action_timeout_s if timeout is None else timeout
        try:
            async with asyncio.timeout(budget):
                result = await self._attempts(name, payload, idempotent, listing)
        except AmiTimeout:
            raise
        except TimeoutError as exc:
            raise AmiTimeout(f"{name}: no answer within {budget:g}s") from exc
        first = result[0] if isinstance(result, list) else result
        if "Response" in first and first.get("Response") not in SUCCESS:
            raise AmiActionError(name, first)
        return result

    # ---------------------------------------------------------------------------- actions

    async def _attempts(self, name: str, payload: dict[str, Any], idempotent: bool,
                        listing: bool) -> Message | list[Message]:
        resync_proto = _RESYNC.get()
        sent = 0
        while True:
            if resync_proto is not None:
                proto = resync_proto
                if proto.closed:
                    raise AmiDisconnected(f"{name}: connection lost during the resync")
            elif self.ready.is_set() and self._proto is not None:
                proto = self._proto
            elif idempotent:
                await self.ready.wait()
                continue
            else:
                raise AmiDisconnected(f"{name} not sent: AMI is not connected and resynced")
            sent += 1
            try:
                return await self._send(proto, payload, listing)
            except AmiDisconnected:
                if not idempotent or resync_proto is not None or sent >= 2:
                    raise
                log.info("AMI connection lost with %s pending; re-sending it once after the "
                         "resync (idempotent)", name)

    async def _send(self, proto: AmiProtocol, payload: dict[str, Any],
                    listing: bool) -> Message | list[Message]:
        act = proto.request(payload, listing)
        try:
            result: Message | list[Message] = await act.future
            return result
        finally:
            proto.forget(act)

    # ---------------------------------------------------------------------------- session

    async def _connect_loop(self) -> None:
        while True:
            try:
                await self._session()
            except (OSError, AmiError, TimeoutError) as exc:
                log.warning("AMI session with %s:%s ended: %s", self.host, self.port,
                            exc or type(exc).__name__)
            except Exception:
                log.exception("AMI session with %s:%s failed", self.host, self.port)
            delay = self._backoff.next_delay()
            log.info("AMI: reconnecting in %.2fs", delay)
            await self._sleep(delay)

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[None] = loop.create_future()

        def on_lost(proto: AmiProtocol, exc: BaseException | None) -> None:
            self._lost(proto, exc)
            if not lost.done():
                lost.set_result(None)

        proto = AmiProtocol(self._dispatch, on_lost)
        async with asyncio.timeout(self.action_timeout_s):
            await loop.create_connection(lambda: proto, self.host, self.port)
        try:
            await self._login(proto)
            async with asyncio.timeout(self.boot_timeout_s):
                await proto.booted.wait()
            if proto.closed:
                raise AmiDisconnected("connection lost before FullyBooted")
            self._proto = proto
            self.connects += 1
            log.info("AMI logged in to %s:%s (AMI %s); resyncing", self.host, self.port,
                     proto.version)
            await self._resync(proto)
            if proto.closed:
                raise AmiDisconnected("connection lost during the resync")
            self.ready.set()
            self._backoff.reset()
            await lost
            log.warning("AMI connection to %s:%s lost", self.host, self.port)
        finally:
            proto.abort()

    async def _login(self, proto: AmiProtocol) -> None:
        act = proto.request({"Action": "Login", "Username": self._username,
                             "Secret": self._secret, "Events": "on"}, as_list=False)
        try:
            async with asyncio.timeout(self.action_timeout_s):
                response = await act.future
        finally:
            proto.forget(act)
        if response.get("Response") != "Success":
            raise AmiLoginError(f"AMI login as {self._username!r} refused")

    async def _resync(self, proto: AmiProtocol) -> None:
        async with self._resync_lock:
            self._resync_needed.clear()  # this resync covers every overflow before it
            token = _RESYNC.set(proto)
            try:
                await self._on_connected(self)
            finally:
                _RESYNC.reset(token)
            self.resyncs += 1

    def _lost(self, proto: AmiProtocol, exc: BaseException | None) -> None:
        if self._proto is proto:
            self._proto = None
            self.ready.clear()
        pending = {id(a): a for a in proto.responses.values()}
        proto.responses.clear()
        for act in pending.values():
            if not act.future.done():
                act.future.set_exception(AmiDisconnected(
                    f"{act.get('Action')}: connection lost before the answer"))

    def _dispatch(self, message: Message) -> None:
        try:
            self._events.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped_events += 1
            if not self._resync_needed.is_set():
                log.error("AMI event queue full (%d): dropping events and resyncing",
                          self._events.maxsize)
            self._resync_needed.set()

    async def _resync_loop(self) -> None:
        """A resync after an event-queue overflow, on the live session."""
        while True:
            await self._resync_needed.wait()
            await self.ready.wait()
            proto = self._proto
            if proto is None or not self._resync_needed.is_set():
                continue
            try:
                await self._resync(proto)
            except Exception:
                # a half-applied resync is worse than none: start a clean session
                log.exception("AMI resync after an event overflow failed; reconnecting")
                proto.abort()

    async def _keepalive_loop(self) -> None:
        """Ping the live session; a ping without answer means a dead peer: drop and reconnect."""
        if not self.ping_interval_s:
            return
        while True:
            await self.ready.wait()
            await asyncio.sleep(self.ping_interval_s)
            proto = self._proto
            if proto is None:
                continue
            try:
                await self.action({"Action": "Ping"}, idempotent=False)
            except AmiTimeout:
                log.error("AMI ping unanswered for %.1fs: dropping the connection",
                          self.action_timeout_s)
                proto.abort()
            except AmiError:
                pass


def _action_name(action: Mapping[str, Any]) -> str:
    for key, value in action.items():
        if key.lower() == "action" and isinstance(value, str) and value:
            return value
    raise ValueError(f"not an AMI action (no Action header): {sorted(action)!r}")


def _payload(action: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in action.items():
        values = [value] if isinstance(value, str) else list(value)
        for v in values:
            if not isinstance(v, str):
                raise TypeError(f"AMI header {key} must be a string, not {type(v).__name__}")
            if "\r" in v or "\n" in v or "\r" in key or "\n" in key or ":" in key:
                raise ValueError(f"AMI header {key!r} would break the framing")
        out[key] = value if isinstance(value, str) else values
    return out
