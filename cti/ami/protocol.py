"""AMI framing: bytes in, messages out, and actions matched to their answers; no sockets.

This is the half of the AMI client that recorded traces are replayed into (panoramisk keeps
the same split: ami_protocol.py apart from manager.py). The session (connect, log in, deadlines,
reconnect, resync) is cti.ami.client's.

- `AmiFramer` is pure: it takes whatever bytes a read returned and gives back whole messages.
  Bytes go through one incremental UTF-8 decoder with errors='replace', so a Chinese name split
  across two reads stays whole and a truncated one becomes U+FFFD instead of vanishing (which
  is what panoramisk's per-chunk errors='ignore' does) or breaking the framing.
- `AmiProtocol` is panoramisk's AMIProtocol (send, ActionID matching, Shutdown handling) over a
  transport it is given, with the framer, no re-send list, and completion decided by headers:
  the action's kind says whether it answers with a list, and only Response/EventList headers
  are read, never the human-readable Message text (that is how panoramisk's QueueAdd never
  resolved and its Originate resolved only once answered).
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import re
from collections import deque
from collections.abc import Callable, Mapping
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
# An unterminated message longer than this is dropped whole (up to the next blank line): a
# peer that never ends a message must not grow the buffer, or each read's rescan, forever.
# Asterisk's longest real messages (a CoreShowChannels item with every variable) are ~4 KiB.
MAX_MESSAGE_CHARS = 256 * 1024


# ------------------------------------------------------------------------------------ errors


class AmiError(Exception):
    """Base of the AMI client's errors."""


class AmiTimeout(AmiError, TimeoutError):
    """No (complete) answer within the action's deadline."""


class AmiDisconnected(AmiError, ConnectionError):
    """The connection was lost while the action was pending, or there was none to send on."""


class AmiNotConnected(AmiDisconnected):
    """There was no connected and resynced session to send on: the action was not sent."""


class AmiActionError(AmiError):
    """Asterisk answered Response: Error (or Fail). `response` is the answer, for its headers."""

    def __init__(self, action: str, response: Message) -> None:
        super().__init__(f"{action}: Response: {response.get('Response')}")
        self.action = action
        self.response = response


class AmiLoginError(AmiError):
    """Asterisk refused the login."""


# ---------------------------------------------------------------------------------- incoming


def parse_message(block: str) -> Message | None:
    """One AMI message ("Key: value" lines) as panoramisk's Message, every value a str. Lines
    that are not headers (old-style command output, a line with no colon) become the message's
    content.

    A repeated key (compared as Message compares them, ignoring case) keeps every value, in
    order, joined by LF: "Variable: a=1" twice is "a=1\\nb=2" (cti.ami.resync splits it). No
    single value can hold an LF (lines are split on it), so a repeated header never passes for
    a well-formed one: neither "first wins" (a header injected early, through a caller-shaped
    value such as CallerIDNum, would win) nor "last wins" (one injected late would) can be
    forged into a trusted value, and every check in cti.ami.translate refuses the LF. This is
    also what panoramisk got wrong: it made a list, and code that expected a str crashed on
    it ("'list' object has no attribute 'lower'")."""
    headers: dict[str, tuple[str, str]] = {}  # lower-case key -> (key as first seen, value)
    content: list[str] = []
    for line in _LINE.split(block):
        key, sep, value = line.partition(":")
        if not sep or not _KEY.match(key):
            if line.strip():
                content.append(line)
            continue
        value = value[1:] if value.startswith(" ") else value
        folded = key.lower()
        if folded in headers:
            first, old = headers[folded]
            headers[folded] = (first, f"{old}\n{value}")
        else:
            headers[folded] = (key, value)
    if "event" not in headers and "response" not in headers:
        return None
    msg = Message({}, "\n".join(content))
    for key, value in headers.values():
        msg[key] = value  # after the content: a header named "content" must not be clobbered
    return msg


class AmiFramer:
    """Bytes as they arrive (any chunking) -> whole AMI messages, in order.

    Asterisk opens with one line, "Asterisk Call Manager/<version>"; `version` is what follows
    the slash (None for a peer that sends no banner). Messages end with CRLF CRLF (a bare LF
    framing is accepted too). Never raises on what a peer sends: undecodable bytes become
    U+FFFD, lines that are not headers become content, a block with neither Event nor
    Response is dropped, and so is a message longer than MAX_MESSAGE_CHARS.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._banner_pending = True
        self._skipping = False  # inside a message too long to keep, until its end
        self.version: str | None = None

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += self._decoder.decode(data)
        if self._banner_pending and not self._take_banner():
            return []
        if self._skipping:
            end = _FRAME.search(self._buffer)
            if end is None:
                self._buffer = self._buffer[-3:]  # keep what may start a CRLF CRLF
                return []
            self._buffer = self._buffer[end.end():]
            self._skipping = False
        *blocks, self._buffer = _FRAME.split(self._buffer)
        if len(self._buffer) > MAX_MESSAGE_CHARS:
            log.warning("AMI message over %d characters without an end: dropped",
                        MAX_MESSAGE_CHARS)
            self._buffer = self._buffer[-3:]
            self._skipping = True
        return [m for m in map(parse_message, blocks) if m is not None]

    def _take_banner(self) -> bool:
        """True once past the banner (or once it is clear that this peer sends none)."""
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


# ---------------------------------------------------------------------------------- outgoing


def action_name(action: Mapping[str, Any]) -> str:
    """The Action header's value (any case of the key); ValueError if there is none."""
    for key, value in action.items():
        if key.lower() == "action" and isinstance(value, str) and value:
            return value
    raise ValueError(f"not an AMI action (no Action header): {sorted(action)!r}")


def checked_payload(action: Mapping[str, Any]) -> dict[str, Any]:
    """The action's headers, refusing anything that would break the framing (a CR or LF in a
    key or value, a colon in a key) or is not a string (a list repeats the header)."""
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


def answers_with_list(name: str) -> bool:
    return name.lower() in LIST_ACTIONS


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


# ------------------------------------------------------------------------------ the protocol


class AmiProtocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's AMIProtocol (send, response matching, Shutdown handling) with the framer
    and no re-send list. Framing is CRLF CRLF here, independent of panoramisk's module-global
    utils.EOL (which panoramisk.testing rewrites to '\\n' for everyone).

    `on_event` gets every event (and no answer to a pending action); `on_lost` is called once,
    after every pending action has failed with AmiDisconnected; `on_bytes`, if given, sees the
    raw bytes before they are parsed (the trace recorder keeps them).
    """

    def __init__(self, on_event: Callable[[Message], None],
                 on_lost: Callable[[AmiProtocol, BaseException | None], None], *,
                 on_bytes: Callable[[bytes], None] | None = None) -> None:
        super().__init__()
        self.closed = False
        self.transport: Any = None
        self.version: str | None = None
        self._on_event = on_event
        self._on_lost = on_lost
        self._on_bytes = on_bytes
        self._framer = AmiFramer()
        self._lost_reported = False
        self.booted = asyncio.Event()
        self.orphans: deque[str] = deque(maxlen=_ORPHANS_KEPT)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.factory = self  # panoramisk's handle_message dispatches events to factory.dispatch
        self.encoding = "utf-8"
        self.log = log

    def data_received(self, data: bytes) -> None:
        if self._on_bytes is not None:
            self._on_bytes(data)
        messages = self._framer.feed(data)
        self.version = self._framer.version
        for message in messages:
            self.handle_message(message)

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
        pending = {id(a): a for a in self.responses.values()}
        self.responses.clear()
        for act in pending.values():
            if not act.future.done():
                act.future.set_exception(AmiDisconnected(
                    f"{act.get('Action')}: connection lost before the answer"))
        self._on_lost(self, exc if isinstance(exc, BaseException) else None)


__all__ = ["BANNER", "LIST_ACTIONS", "NEVER_IDEMPOTENT", "SUCCESS", "AmiActionError",
           "AmiDisconnected", "AmiError", "AmiFramer", "AmiLoginError", "AmiProtocol",
           "AmiTimeout", "MAX_MESSAGE_CHARS", "action_name", "answers_with_list", "checked_payload",
           "parse_message"]
