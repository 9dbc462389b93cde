"""The AMI session: connect, log in, resync, reconnect; actions with deadlines; bounded events.

The framing (bytes -> messages, actions matched to answers by ActionID) is cti.ami.protocol's;
this module is the session around it, because panoramisk's Manager gets the parts a call center
depends on wrong:

- its actions have no timeout, and an unanswered action (Originate, Redirect...) is re-sent after
  a reconnect; here every action has a deadline and none is ever re-sent unless the caller
  marked it idempotent (then at most once, after the resync);
- it keeps no bound on its callbacks; here events go into a bounded queue and an overflow is
  counted and triggers a resync, because the CTI's picture may now be wrong.

`AmiClient` is the CTI's long-lived session (reconnected for ever); `AmiConnection` is one
connection that is never reconnected, for the readiness probe and tools (the trace recorder)
that must leave nothing behind.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from panoramisk.message import Message

from cti.ami.protocol import (
    LIST_ACTIONS,
    NEVER_IDEMPOTENT,
    SUCCESS,
    AmiActionError,
    AmiDisconnected,
    AmiError,
    AmiLoginError,
    AmiNotConnected,
    AmiProtocol,
    AmiTimeout,
    action_name,
    checked_payload,
    parse_message,
)

log = logging.getLogger(__name__)

# Set (to the session's protocol) while on_connected runs: actions it sends go out before
# `ready`, and fail at once on a disconnect (the next session resyncs from scratch anyway).
_RESYNC: contextvars.ContextVar[AmiProtocol | None] = contextvars.ContextVar("ami_resync",
                                                                           default=None)

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


@dataclass(frozen=True)
class PbxRestart:
    """What a new session found: Asterisk started again since the last one (it boots after
    the old session was lost). `reason` is pbx_restart when Asterisk said it was restarting
    (a Shutdown event with Restart: True), pbx_lost when it just went away (crash, kill -9);
    `lost_at` is when the CTI lost it (the Shutdown, or the connection's end)."""

    reason: str
    lost_at: float
    started_at: float  # Asterisk's start (from FullyBooted's Uptime), epoch s


# SoftHangupRequest's Cause for a channel hung up because Asterisk shuts down or restarts
# (AST_SOFTHANGUP_SHUTDOWN, 1 << 2, in Asterisk's channel.h)
SOFTHANGUP_SHUTDOWN = "4"


def _event_time(message: Mapping[str, Any]) -> float:
    """When Asterisk sent the event (its Timestamp header, timestampevents = yes), or now."""
    try:
        return float(str(message.get("Timestamp")))
    except ValueError:
        return time.time()


def _uptime_s(message: Mapping[str, Any] | None) -> float | None:
    try:
        return float(str(message.get("Uptime"))) if message is not None else None
    except ValueError:
        return None


# ------------------------------------------------------------------- one connection's steps


async def _open(host: str, port: int, proto: AmiProtocol, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout_s):
        await loop.create_connection(lambda: proto, host, port)


async def _login(proto: AmiProtocol, username: str, secret: str, events: str,
                 timeout_s: float, action_id: str | None = None) -> None:
    """Log in on a fresh connection; AmiLoginError if refused (decided by the Response header,
    never by the Message text)."""
    login = {"Action": "Login", "Username": username, "Secret": secret, "Events": events}
    if action_id is not None:
        login["ActionID"] = action_id
    act = proto.request(login, as_list=False)
    try:
        async with asyncio.timeout(timeout_s):
            response = await act.future
    except TimeoutError as exc:
        raise AmiTimeout(f"Login: no answer within {timeout_s:g}s") from exc
    finally:
        proto.forget(act)
    if response.get("Response") != "Success":
        raise AmiLoginError(f"AMI login as {username!r} refused")


async def _await_answer(proto: AmiProtocol, payload: dict[str, Any],
                        listing: bool) -> Message | list[Message]:
    act = proto.request(payload, listing)
    try:
        result: Message | list[Message] = await act.future
        return result
    finally:
        proto.forget(act)


def _checked(name: str, result: Message | list[Message]) -> Message | list[Message]:
    first = result[0] if isinstance(result, list) else result
    if "Response" in first and first.get("Response") not in SUCCESS:
        raise AmiActionError(name, first)
    return result


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
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 on_lost: Callable[[], object] | None = None) -> None:
        if event_queue_size < 1:
            raise ValueError("event_queue_size must be >= 1")
        if action_timeout_s <= 0:
            raise ValueError("action_timeout_s must be > 0")
        self.host = host
        self.port = port
        self._username = username
        self._secret = secret
        self._on_connected = on_connected
        self._on_lost = on_lost  # told when the connected session is lost (not a failed login)
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
        # Asterisk restarts: `pbx_restart` is set for the on_connected of the first session
        # after one (None otherwise), so the resync can say why the calls it finds gone ended
        self.pbx_restart: PbxRestart | None = None
        self._pbx_started: float | None = None  # the Asterisk of the last session started then
        self._lost_at: float | None = None  # the last session ended (or said Shutdown) then
        self._shutdown_restart = False  # ... and Asterisk said it was restarting
        self._booted_msg: Message | None = None  # this session's FullyBooted

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
        name = action_name(action)
        lname = name.lower()
        if idempotent and lname in NEVER_IDEMPOTENT:
            raise ValueError(f"{name} is never idempotent: a re-send could ring or move a "
                             "call twice; pass idempotent=False")
        payload = checked_payload(action)
        listing = lname in LIST_ACTIONS if as_list is None else as_list
        budget = self.action_timeout_s if timeout is None else timeout
        try:
            async with asyncio.timeout(budget):
                result = await self._attempts(name, payload, idempotent, listing)
        except AmiTimeout:
            raise
        except TimeoutError as exc:
            raise AmiTimeout(f"{name}: no answer within {budget:g}s") from exc
        return _checked(name, result)

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
                raise AmiNotConnected(f"{name} not sent: AMI is not connected and resynced")
            sent += 1
            try:
                return await _await_answer(proto, payload, listing)
            except AmiDisconnected:
                if not idempotent or resync_proto is not None or sent >= 2:
                    raise
                log.info("AMI connection lost with %s pending; re-sending it once after the "
                         "resync (idempotent)", name)

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
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_lost(proto: AmiProtocol, exc: BaseException | None) -> None:
            self._lost(proto, exc)
            if not lost.done():
                lost.set_result(None)

        proto = AmiProtocol(self._dispatch, on_lost)
        self._booted_msg = None
        await _open(self.host, self.port, proto, self.action_timeout_s)
        try:
            await _login(proto, self._username, self._secret, "on", self.action_timeout_s)
            async with asyncio.timeout(self.boot_timeout_s):
                await proto.booted.wait()
            if proto.closed:
                raise AmiDisconnected("connection lost before FullyBooted")
            self._proto = proto
            self.connects += 1
            self.pbx_restart = self._restarted()
            log.info("AMI logged in to %s:%s (AMI %s); resyncing%s", self.host, self.port,
                     proto.version, f" after an Asterisk restart ({self.pbx_restart.reason})"
                     if self.pbx_restart else "")
            await self._resync(proto)
            if proto.closed:
                raise AmiDisconnected("connection lost during the resync")
            self.ready.set()
            self._backoff.reset()
            await lost
            log.warning("AMI connection to %s:%s lost", self.host, self.port)
        finally:
            proto.abort()

    def _restarted(self) -> PbxRestart | None:
        """Did Asterisk start again since the last session? Its start time (now - Uptime at
        FullyBooted, to the second) is after the moment the last session was lost: then every
        call of that session died with it. An Asterisk without Uptime says nothing (None)."""
        uptime = _uptime_s(self._booted_msg)
        lost_at, restarting = self._lost_at, self._shutdown_restart
        self._lost_at, self._shutdown_restart = None, False
        if uptime is None:
            return None
        started, before = time.time() - uptime, self._pbx_started
        self._pbx_started = started
        if before is None or lost_at is None or started < lost_at - 1.0:
            # the first session, or the same Asterisk (only the connection was lost); the
            # second of slack: Uptime counts whole seconds
            return None
        return PbxRestart("pbx_restart" if restarting else "pbx_lost", lost_at, started)

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
        # the protocol has already failed its pending actions with AmiDisconnected
        if self._proto is proto:
            self._proto = None
            self.ready.clear()
            self.pbx_restart = None
            if self._lost_at is None:  # a Shutdown event may have said so first
                self._lost_at = time.time()
            if self._on_lost is not None:
                self._on_lost()

    def _dispatch(self, message: Message) -> None:
        name = message.get("Event")
        if name == "FullyBooted":
            self._booted_msg = message
        elif name == "SoftHangupRequest" and message.get("Cause") == SOFTHANGUP_SHUTDOWN:
            # Asterisk began to go away: it hangs every channel up first (`core restart now`
            # did so 1.2 s before its Shutdown event), and those calls die with it
            self._lost_at = self._lost_at or _event_time(message)
        elif name == "Newchannel" and self._proto is not None:
            self._lost_at = None  # it takes calls: not going away (a shutdown refuses them)
        elif name == "Shutdown":
            # Asterisk going away says why (panoramisk's protocol has already dropped the
            # connection on it): restart or stop, cleanly or not
            self._shutdown_restart = str(message.get("Restart", "")).lower() in ("true", "1")
            self._lost_at = self._lost_at or _event_time(message)
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



# ------------------------------------------------------------------------- one connection


class AmiConnection:
    """One logged-in AMI connection that is never reconnected and never re-sends anything:
    for the readiness probe and for tools (the trace recorder). Use it as an async context
    manager from `AmiConnection.open(...)`; events go to `on_event` as they arrive, raw bytes
    to `on_bytes`. Every action has a deadline (`action_timeout_s` unless given)."""

    def __init__(self, proto: AmiProtocol, action_timeout_s: float) -> None:
        self._proto = proto
        self.action_timeout_s = action_timeout_s

    @classmethod
    async def open(cls, host: str, port: int, username: str, secret: str, *,
                   events: str = "on", action_timeout_s: float = 5.0,
                   on_event: Callable[[Message], None] | None = None,
                   on_bytes: Callable[[bytes], None] | None = None,
                   login_action_id: str | None = None) -> AmiConnection:
        """Connect and log in (AmiLoginError if refused, OSError/AmiTimeout if unreachable).
        `login_action_id` fixes the Login's ActionID (recorded traces name it)."""
        proto = AmiProtocol(on_event or (lambda _m: None), lambda _p, _e: None,
                            on_bytes=on_bytes)
        await _open(host, port, proto, action_timeout_s)
        try:
            await _login(proto, username, secret, events, action_timeout_s, login_action_id)
        except BaseException:
            proto.abort()
            raise
        return cls(proto, action_timeout_s)

    @property
    def version(self) -> str | None:
        return self._proto.version

    @property
    def closed(self) -> bool:
        return bool(self._proto.closed)

    async def fully_booted(self, timeout: float | None = None) -> None:
        """Wait for Asterisk's FullyBooted event (sent right after login to a booted Asterisk,
        with Events: system or on); AmiTimeout past the deadline, AmiDisconnected if lost."""
        budget = self.action_timeout_s if timeout is None else timeout
        try:
            async with asyncio.timeout(budget):
                await self._proto.booted.wait()
        except TimeoutError as exc:
            raise AmiTimeout(f"no FullyBooted within {budget:g}s") from exc
        if self._proto.closed:
            raise AmiDisconnected("connection lost before FullyBooted")

    async def action(self, action: Mapping[str, str | Sequence[str]], *,
                     timeout: float | None = None,
                     as_list: bool | None = None) -> Message | list[Message]:
        """Send one action, once; its answer (a list for list actions), as AmiClient.action.
        Nothing here is ever re-sent, so there is no idempotent flag."""
        name = action_name(action)
        payload = checked_payload(action)
        listing = name.lower() in LIST_ACTIONS if as_list is None else as_list
        if self._proto.closed:
            raise AmiDisconnected(f"{name} not sent: the connection is closed")
        budget = self.action_timeout_s if timeout is None else timeout
        try:
            async with asyncio.timeout(budget):
                result = await _await_answer(self._proto, payload, listing)
        except TimeoutError as exc:
            raise AmiTimeout(f"{name}: no answer within {budget:g}s") from exc
        return _checked(name, result)

    async def close(self) -> None:
        """Log off politely (briefly) and close."""
        if not self._proto.closed:
            try:
                await self.action({"Action": "Logoff"}, timeout=1.0)
            except AmiError:
                pass
        self._proto.abort()

    async def __aenter__(self) -> AmiConnection:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()


__all__ = ["LIST_ACTIONS", "NEVER_IDEMPOTENT", "SUCCESS", "AmiActionError", "AmiClient",
           "AmiConnection", "AmiDisconnected", "AmiError", "AmiLoginError", "AmiProtocol",
           "AmiTimeout", "Backoff", "OnConnected", "parse_message"]
