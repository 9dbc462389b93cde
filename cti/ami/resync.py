"""After a (re)connect: what Asterisk holds right now (snapshot), and the CTI events it implies
(rebuild, pure). Asterisk keeps no events for a disconnected client, so this is how the CTI
learns which callers wait, which ring a seat and which talk."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cti.ami.protocol import AmiActionError
from cti.ami.translate import (
    CONNECT_CONTEXT,
    QUEUE_NAME,
    SEAT_RE,
    WAIT_CONTEXTS,
    AgentAnswered,
    CallbackRequested,
    CallEvent,
    CallFailedOver,
    CallOffered,
    CallQueued,
    CoreEvent,
    SeatReachable,
    header,
    is_local,
    parse_asterisk_id,
    phone_of_channel,
    seat_of_channel,
    to_int,
)

log = logging.getLogger(__name__)

HEARTBEAT = ("hotline", "heartbeat")  # AstDB family/key the CTI refreshes every second
# channel variables the dialplan sets before the wait (see extensions.conf.j2)
VARIABLES = ("HOTLINE_SKILL", "QUEUE_PRIO", "HOTLINE_ACCOUNT", "HOTLINE_CALLBACK_OF")
CALLBACK_CONTEXT = "hotline-callback"
# where the seat's leg of a callback or of an agent's click-to-call runs once answered
CALLBACK_CONTEXTS = frozenset({CALLBACK_CONTEXT, "hotline-click-to-call"})
# hotline-wait extensions that are the wait itself; any other (a digit) is the callback key
_WAIT_EXTENS = frozenset({"s", "i", "t", "busy"})
# app_queue member Status (a device state): 4 invalid and 5 unavailable cannot be rung;
# 0 (unknown) says nothing. Behind a registrar ([pbx] seat_reachability = "registrar") every
# seat is unavailable to Asterisk, and the feed (cti.ami.feed) drops what rebuild says of seats
_MEMBER_UNREACHABLE = frozenset({4, 5})


class ActionSender(Protocol):
    async def action(self, action: Mapping[str, str], *, timeout: float | None = None,
                     idempotent: bool) -> Any: ...


@dataclass(frozen=True)
class ChannelInfo:
    channel: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    application: str
    bridge_id: str
    caller_num: str
    caller_name: str
    variables: Mapping[str, str] = field(default_factory=dict)
    state: str = ""  # ChannelStateDesc: Ring, Ringing, Up, ...


@dataclass(frozen=True)
class QueueMemberInfo:
    name: str  # MemberName: seat07
    interface: str  # PJSIP/seat07
    status: int  # device state number (1 not in use, 2 in use, 5 unavailable, 6 ringing, ...)
    paused: bool
    in_call: bool


@dataclass(frozen=True)
class QueueEntryInfo:
    channel: str
    uniqueid: str
    caller_num: str
    position: int
    wait_s: int


@dataclass(frozen=True)
class AsteriskSnapshot:
    channels: tuple[ChannelInfo, ...]
    queue_members: tuple[QueueMemberInfo, ...]
    queue_entries: tuple[QueueEntryInfo, ...]
    heartbeat: float | None  # AstDB hotline/heartbeat (epoch s); None if never written


async def snapshot(client: ActionSender, *, queue: str = QUEUE_NAME,
                   timeout: float | None = None) -> AsteriskSnapshot:
    """Ask Asterisk (read-only actions, so idempotent) and parse the answers."""
    channels = await client.action({"Action": "CoreShowChannels"}, timeout=timeout,
                                   idempotent=True)
    status = await client.action({"Action": "Status", "Variables": ",".join(VARIABLES)},
                                 timeout=timeout, idempotent=True)
    queue_status = await client.action({"Action": "QueueStatus", "Queue": queue},
                                       timeout=timeout, idempotent=True)
    try:
        db = await client.action({"Action": "DBGet", "Family": HEARTBEAT[0],
                                  "Key": HEARTBEAT[1]}, timeout=timeout, idempotent=True)
    except AmiActionError:
        db = []  # Response: Error: the key does not exist (no CTI has run yet)
    return parse_snapshot(channels, status, queue_status, db)


# ----------------------------------------------------------------------------------- parsing


def _events(messages: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [m for m in messages if header(m, "Event") == name]


def _variables(msg: Mapping[str, Any]) -> dict[str, str]:
    raw = msg.get("Variable")
    # a repeated header comes joined by LF (cti.ami.protocol.parse_message); a list is accepted
    # from callers that build messages by hand
    items = raw if isinstance(raw, list) else str(raw).split("\n") if raw else []
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        out[key] = "" if value == "(null)" else value
    return out


def parse_snapshot(core_show_channels: Sequence[Mapping[str, Any]],
                   status: Sequence[Mapping[str, Any]],
                   queue_status: Sequence[Mapping[str, Any]],
                   dbget: Sequence[Mapping[str, Any]]) -> AsteriskSnapshot:
    """Pure: the list answers of CoreShowChannels, Status (with Variables), QueueStatus and
    DBGet (empty when the key is missing) as one snapshot. A channel Status no longer (or not
    yet) reports gets no variables: the two actions are not atomic."""
    variables = {header(m, "Uniqueid"): _variables(m) for m in _events(status, "Status")}
    channels = tuple(
        ChannelInfo(channel=header(m, "Channel"), uniqueid=header(m, "Uniqueid"),
                    linkedid=header(m, "Linkedid"), context=header(m, "Context"),
                    exten=header(m, "Exten"), application=header(m, "Application"),
                    bridge_id=header(m, "BridgeId"), caller_num=header(m, "CallerIDNum"),
                    caller_name=header(m, "CallerIDName"),
                    variables=variables.get(header(m, "Uniqueid"), {}),
                    state=header(m, "ChannelStateDesc"))
        for m in _events(core_show_channels, "CoreShowChannel"))
    members = tuple(
        QueueMemberInfo(name=header(m, "Name"), interface=header(m, "StateInterface")
                        or header(m, "Location"), status=to_int(header(m, "Status")),
                        paused=header(m, "Paused") == "1", in_call=header(m, "InCall") == "1")
        for m in _events(queue_status, "QueueMember"))
    entries = tuple(
        QueueEntryInfo(channel=header(m, "Channel"), uniqueid=header(m, "Uniqueid"),
                       caller_num=header(m, "CallerIDNum"), position=to_int(header(m, "Position")),
                       wait_s=to_int(header(m, "Wait")))
        for m in _events(queue_status, "QueueEntry"))
    heartbeat = None
    for m in _events(dbget, "DBGetResponse"):
        try:
            heartbeat = float(header(m, "Val"))
        except ValueError:
            heartbeat = None
    return AsteriskSnapshot(channels, members, entries, heartbeat)


# ----------------------------------------------------------------------------------- rebuild


def _order(ch: ChannelInfo) -> tuple[str, int, int, str]:
    # oldest first: by the id's epoch and counter, within each node (its systemname, if any)
    uid = parse_asterisk_id(ch.uniqueid)
    if uid is None:
        return ("", 0, 0, ch.uniqueid)
    return (uid.node, uid.epoch, uid.seq, ch.uniqueid)


def rebuild(snap: AsteriskSnapshot) -> list[CoreEvent]:
    """Pure: each seat's reachability (from the app_queue members), then each call in the
    agent side, oldest first, as the path of events leading to its present state:
    waiting (hotline-wait) -> [CallQueued]; ringing a seat (hotline-connect) -> [CallQueued,
    CallOffered]; talking (bridged with a PJSIP/seatNN channel, or that seat's leg of the call
    already Up but not bridged yet, as a recorded snapshot caught it) -> [..., AgentAnswered]; in
    the failover app_queue -> [CallQueued, CallFailedOver, (AgentAnswered)]. A caller leaving
    after the callback key -> [CallQueued, CallbackRequested]. Local channels, phones'
    own channels and calls still in the IVR are left out. CallTracker.resync applies it."""
    out: list[CoreEvent] = []
    for m in sorted(snap.queue_members, key=lambda m: m.name):
        if SEAT_RE.match(m.name) and m.status != 0:
            out.append(SeatReachable(m.name, m.status not in _MEMBER_UNREACHABLE))
    in_app_queue = {e.uniqueid for e in snap.queue_entries}
    for ch in sorted(snap.channels, key=_order):
        if (is_local(ch.channel) or phone_of_channel(ch.channel) is not None
                or ch.uniqueid != ch.linkedid):
            continue
        out += _call_path(ch, _agent_leg(ch, snap.channels), ch.uniqueid in in_app_queue)
    return out


def callbacks_in_progress(snap: AsteriskSnapshot) -> dict[str, tuple[str, bool]]:
    """Pure: queued callbacks being connected now, {waiting call's id: (seat, answered)}.

    A callback's legs are channels the CTI Originated (the agent's seat, then the customer),
    with a Linkedid of their own; the seat's channel carries HOTLINE_CALLBACK_OF. It is in
    the dialplan (hotline-callback) only once the agent answered."""
    out: dict[str, tuple[str, bool]] = {}
    for ch in snap.channels:
        call_id = ch.variables.get("HOTLINE_CALLBACK_OF", "")
        seat = seat_of_channel(ch.channel)
        if call_id and seat is not None and ch.context in CALLBACK_CONTEXTS:
            out[call_id] = (seat, ch.state == "Up")
    return out


def _agent_leg(caller: ChannelInfo, channels: Sequence[ChannelInfo]) -> tuple[str, str] | None:
    """(seat, channel) of the seat talking with this caller: bridged with it, or (in the
    moment between the answer and the bridge) a seat leg of the same call that is Up."""
    legs = [(seat, ch) for ch in channels if ch is not caller
            and (seat := seat_of_channel(ch.channel)) is not None]
    for seat, ch in legs:
        if caller.bridge_id and ch.bridge_id == caller.bridge_id:
            return seat, ch.channel
    for seat, ch in legs:
        if ch.linkedid == caller.linkedid and ch.state == "Up":
            return seat, ch.channel
    return None


def _call_path(ch: ChannelInfo, agent: tuple[str, str] | None, queued_in_app: bool
               ) -> list[CallEvent]:
    call_id = ch.linkedid
    v = ch.variables
    caller = "" if ch.caller_num == "<unknown>" else ch.caller_num
    queued = CallQueued(call_id=call_id, channel=ch.channel, caller=caller,
                        skill=v.get("HOTLINE_SKILL", ""), priority=to_int(v.get("QUEUE_PRIO", "0")),
                        account=v.get("HOTLINE_ACCOUNT") or None, channel_id=ch.uniqueid)
    answered = [AgentAnswered(call_id, agent[0], agent[1])] if agent else []
    failed_over = (queued_in_app or ch.application == "Queue"
                   or (ch.context in WAIT_CONTEXTS and ch.exten == "failover"))
    if ch.context == CONNECT_CONTEXT and SEAT_RE.match(ch.exten):
        return [queued, CallOffered(call_id, ch.exten), *answered]
    if failed_over:
        return [queued, CallFailedOver(call_id), *answered]
    if ch.context in WAIT_CONTEXTS:
        if ch.context == "hotline-wait" and ch.exten not in _WAIT_EXTENS:
            return [queued, CallbackRequested(call_id, caller)]
        return [queued]
    return []
