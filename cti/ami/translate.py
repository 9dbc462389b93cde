"""AMI events -> the CTI's own call events (pure), and the CallTracker that makes them idempotent.

Identity follows Asterisk: a call is its Linkedid, a channel its Uniqueid (the `channel` fields
carry the channel's name, which actions such as Redirect need). Each PBX node sets its own
Asterisk systemname, which prefixes both ids ("pbx1-1700000000.12"), so a call id is already
unique across nodes and names its node (`parse_asterisk_id`). Local-channel legs are skipped
explicitly: they are dialplan plumbing, never a caller or a seat.

The dialplan contract (asterisk_conf/templates/extensions.conf.j2), UserEvents on the caller's
channel: HotlineTransfer (the IVR's outcome; the wait itself starts with HotlineQueued),
HotlineQueued, HotlineOffer, HotlineRona (then HotlineQueued again), HotlineFailover,
HotlineCallback, HotlineSurveyOffered (the agent hung up first and the caller stays on for the
post-call survey: the agent's part of the call ends there). Standard events back them up where
Asterisk is known to repeat or omit (DialBegin/DialEnd, AgentConnect, QueueCallerJoin), and
Hangup of the caller's channel ends the call. The survey's own facts (`survey_fact`: offered,
and the key or none) go to the survey service, not to the tracker. `translate` is stateless,
so it reports every fact each time it sees it; `CallTracker` keeps one small state per call
and lets each transition through once.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from config.settings import ASTERISK_ID_PATTERN, SKILL_PATTERN

log = logging.getLogger(__name__)

QUEUE_NAME = "hotline-agents"  # the native app_queue callers fail over to
WAIT_CONTEXTS = frozenset({"hotline-wait", "hotline-announce"})
CONNECT_CONTEXT = "hotline-connect"
SEAT_RE = re.compile(r"^seat[0-9]+$")
# a seat or supervisor phone's channel, e.g. PJSIP/seat07-0000001a
_PHONE_CHANNEL = re.compile(r"^PJSIP/((?:seat|sup)[0-9]+)-[0-9a-fA-F]+$")
_SEAT_DEVICE = re.compile(r"^PJSIP/(seat[0-9]+)$")
_ASTERISK_ID = re.compile(ASTERISK_ID_PATTERN)

# What a UserEvent's fields may hold. A UserEvent's text is the dialplan's, but the values in it
# (and the channel snapshot around them: CallerIDNum, CallerIDName, ConnectedLine*) can come
# from the caller; a CR/LF that got past the dialplan's FILTER would forge headers, or a whole
# event. So every field the CTI takes from one is checked, and an event with any field out of
# shape is dropped (and logged) whole: the caller then waits, and fails over to app_queue.
# None of these accept an LF, which is how a repeated header arrives (protocol.parse_message).
# The dialplan's own contexts (asterisk_conf/templates/extensions.conf.j2): a UserEvent that
# says where it ran must have run in one of them. The channel snapshot is read when AMI
# renders the event, so a HotlineRona may already show hotline-wait; any of ours is accepted.
DIALPLAN_CONTEXTS = frozenset({
    "hotline-sanitise", "hotline-no-service", "hotline-next", "hotline-wait",
    "hotline-announce", "hotline-connect", "hotline-callback", "hotline-click-to-call",
    "hotline-record",
    "hotline-record-done", "hotline-record-ivr", "hotline-rec-tidy", "hotline-hold",
    "hotline-spy", "hotline-return-visit", "hotline-outage-notice", "hotline-callback-due",
    "hotline-consult", "hotline-conf", "hotline-survey",
})
SURVEY_CONTEXT = "hotline-survey"
SKILL_RE = re.compile(SKILL_PATTERN)  # ivr/flows: general, repair, english, ...
MAX_PRIORITY = 100  # ivr/schema.py: priority 0..100
# the dialplan's CID_NUM_CHARS and CID_NUM_MAX ([globals]): what FILTER lets through
_CALLER_NUMBER = re.compile(r"[0-9A-Za-z+*#]{1,32}")
_ACCOUNT = re.compile(r"[0-9]{1,32}")
_SEAT = re.compile(r"seat[0-9]{1,6}")
_DIAL_STATUS = re.compile(r"[A-Z]{0,16}")  # ANSWER, NOANSWER, BUSY, CHANUNAVAIL, ...
_SURVEY_KEY = re.compile(r"[1-5]|none")  # the survey's key (hotline-survey), or none heard
# a real channel's name (Local/ legs never get here): tech/resource-sequence
_CHANNEL = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}/[A-Za-z0-9_.@:+=\-]{1,96}")

# A seat's reachability, from what Asterisk 22 sends for a PJSIP endpoint (recorded in
# tests/contract/ami_traces/offer_rona_answer.ami, failover_native_queue.ami and
# phones_unregister.ami). A REGISTER: DeviceStateChange NOT_INUSE, PeerStatus Reachable and
# ContactStatus Created/NonQualified (qualify_frequency = 0). A REGISTER with Expires: 0, or
# the contact expiring: DeviceStateChange UNAVAILABLE, PeerStatus Unreachable and ContactStatus
# Removed. DeviceStateChange and PeerStatus are about the endpoint, so they say whether any
# contact can be rung; a ContactStatus is about one contact. A contact that is added says the
# seat can be rung, but one that goes (Removed, Unreachable) does not say the seat cannot: a
# phone registering from a new address replaces its contact (max_contacts = 1,
# remove_existing), and the old one's Removed may come after the new one's Created. The
# endpoint's own events say when the last contact went.
# device states in which the seat's phone can be rung (or is already busy with a call)
_REACHABLE_STATES = frozenset({"NOT_INUSE", "INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"})
_UNREACHABLE_STATES = frozenset({"UNAVAILABLE", "INVALID"})
_REACHABLE_CONTACT = frozenset({"Created", "Reachable", "NonQualified", "Updated"})
_UNREACHABLE_CONTACT: frozenset[str] = frozenset()  # see above: the endpoint's events say it
_REACHABLE_PEER = frozenset({"Registered", "Reachable"})
_UNREACHABLE_PEER = frozenset({"Unregistered", "Unreachable", "Rejected"})


# ------------------------------------------------------------------------------ core events


@dataclass(frozen=True)
class CallQueued:
    """Asterisk holds the caller for the ACD (music on hold) with the IVR's outcome."""

    call_id: str
    channel: str  # the caller's channel name (for Redirect/Setvar)
    caller: str
    skill: str
    priority: int
    account: str | None
    channel_id: str = ""  # the caller's channel Uniqueid


@dataclass(frozen=True)
class CallOffered:
    """The caller's channel rings this seat (hotline-connect)."""

    call_id: str
    seat: str


@dataclass(frozen=True)
class AgentAnswered:
    call_id: str
    seat: str
    agent_channel: str  # the seat's channel name


@dataclass(frozen=True)
class SeatBusy:
    """The seat the ACD chose was in use when the caller got to it (HotlineSeatBusy: its
    device state, checked by the dialplan before the offer): something else has it, such as
    the native failover queue right after a CTI restart. It was never rung; the caller waits
    again in their place."""

    call_id: str
    seat: str


@dataclass(frozen=True)
class RingNoAnswer:
    """The offered seat did not answer; the caller waits again (no new CallQueued follows).
    dial_status is Asterisk's DIALSTATUS, or "" when the tracker inferred it."""

    call_id: str
    seat: str
    dial_status: str


@dataclass(frozen=True)
class CallEnded:
    """The caller's channel hung up after an agent answered (or after a callback request), or
    the agent hung up first and the caller went on to the post-call survey: the agent's part
    of the call is over either way."""

    call_id: str
    cause: int


@dataclass(frozen=True)
class CallerAbandoned:
    """The caller hung up while waiting (queued, ringing a seat, or in the failover queue)."""

    call_id: str


@dataclass(frozen=True)
class CallFailedOver:
    """The CTI's heartbeat went stale: the caller is in the native app_queue now."""

    call_id: str


@dataclass(frozen=True)
class CallbackRequested:
    call_id: str
    number: str


@dataclass(frozen=True)
class SeatReachable:
    seat: str
    reachable: bool


CallEvent = (CallQueued | CallOffered | AgentAnswered | RingNoAnswer | SeatBusy | CallEnded
             | CallerAbandoned | CallFailedOver | CallbackRequested)
CoreEvent = CallEvent | SeatReachable


# ------------------------------------------------------------------------------- translate


def header(event: Mapping[str, Any], key: str) -> str:
    """A header as text; the last value if repeated; '' if absent."""
    value = event.get(key)
    if isinstance(value, list):
        value = value[-1] if value else ""
    return "" if value is None else str(value)


def _number(value: str) -> str:
    return "" if value in ("<unknown>", "(null)") else value


def to_int(value: str, default: int = 0) -> int:
    """A header's number; `default` when it is empty or not a number."""
    try:
        return int(value.strip())
    except ValueError:
        return default


@dataclass(frozen=True, order=True)
class AsteriskId:
    """A Uniqueid or Linkedid taken apart: the node's systemname ("" when Asterisk has none),
    the epoch second the node's channel counter started from, and the counter. Orders as
    Asterisk made them, within one node."""

    node: str
    epoch: int
    seq: int


def parse_asterisk_id(value: str) -> AsteriskId | None:
    """"pbx1-1700000000.12" -> AsteriskId("pbx1", 1700000000, 12); "1700000000.12" (no
    systemname) -> node ""; anything else -> None."""
    if not _ASTERISK_ID.fullmatch(value):
        return None
    head, _, seq = value.rpartition(".")
    node, _, epoch = head.rpartition("-")
    return AsteriskId(node, int(epoch), int(seq))


def is_local(channel: str) -> bool:
    return channel.startswith("Local/")


def phone_of_channel(channel: str) -> str | None:
    """'seat07' for PJSIP/seat07-0000001a (supervisor phones too); None for anything else."""
    m = _PHONE_CHANNEL.fullmatch(channel)
    return m.group(1) if m else None


def seat_of_channel(channel: str) -> str | None:
    phone = phone_of_channel(channel)
    return phone if phone is not None and SEAT_RE.fullmatch(phone) else None


def is_caller_channel(event: Mapping[str, Any]) -> bool:
    """The channel a call is named after (its Uniqueid is the Linkedid), not a phone or Local."""
    channel = header(event, "Channel")
    uniqueid = header(event, "Uniqueid")
    return (bool(uniqueid) and uniqueid == header(event, "Linkedid") and not is_local(channel)
            and phone_of_channel(channel) is None)


def _linkedid(event: Mapping[str, Any]) -> str:
    """The event's Linkedid if it is one Asterisk could have made, else '' (not about a call).
    Found by the fuzzer: a repeated Linkedid (joined by LF) or a cut one named a call."""
    value = header(event, "Linkedid")
    return value if _ASTERISK_ID.fullmatch(value) else ""


def linkedid_of(event: Mapping[str, Any]) -> str:
    """The call an event is about (its Linkedid, checked as _linkedid does), or ''."""
    return _linkedid(event)


def translate(event: Mapping[str, Any]) -> list[CoreEvent]:
    """The CTI events one AMI event stands for; [] for everything the CTI does not need."""
    name = header(event, "Event")
    if is_local(header(event, "Channel")):
        return []  # Local/...;1 and ;2 legs: plumbing around a real channel, never a call
    if name == "UserEvent":
        return _user_event(event)
    if name in ("DialBegin", "DialEnd", "AgentConnect"):
        return _answer_or_offer(name, event)
    if name == "Hangup":
        if is_caller_channel(event) and _linkedid(event):
            return [CallEnded(_linkedid(event), to_int(header(event, "Cause")))]
        return []  # a seat's leg: the caller's own Hangup ends the call
    if name == "QueueCallerJoin":
        if header(event, "Queue") == QUEUE_NAME and _linkedid(event):
            return [CallFailedOver(_linkedid(event))]
        return []
    if name in ("DeviceStateChange", "ContactStatus", "PeerStatus"):
        return _seat_reachability(name, event)
    # Newchannel, BridgeEnter/BridgeLeave, QueueCallerLeave/Abandon, DialState, MusicOnHold*:
    # the UserEvents, DialEnd/AgentConnect and Hangup above already say what the CTI needs.
    # (A seat's BridgeEnter would name the call, but not whether its peer is a Local leg.)
    return []


# the headers each UserEvent always carries (extensions.conf.j2), besides the channel's own
_SENT = {
    "HotlineQueued": ("Channel", "Skill", "CallPriority", "Account"),
    "HotlineOffer": ("Seat",),
    "HotlineRona": ("Seat", "DialStatus"),
    "HotlineSeatBusy": ("Seat",),
    "HotlineFailover": (),
    "HotlineCallback": (),
    "HotlineSurveyOffered": ("Seat", "Skill"),
}
# the agent hung up first and the caller is in the survey: a normal clearing of the agent's part
SURVEY_CAUSE = 16


class _Untrusted(ValueError):
    """A UserEvent field out of shape; args[0] names the field, never its value."""


def _field(event: Mapping[str, Any], key: str, pattern: re.Pattern[str], *,
           optional: bool = False) -> str:
    value = header(event, key)
    if (optional and value == "") or pattern.fullmatch(value):
        return value
    raise _Untrusted(key)


def _caller_number(event: Mapping[str, Any], key: str) -> str:
    value = _number(header(event, key))
    if value == "" or _CALLER_NUMBER.fullmatch(value):
        return value
    raise _Untrusted(key)


def _priority(event: Mapping[str, Any]) -> int:
    value = header(event, "CallPriority")
    if value == "":
        return 0  # the dialplan sends 0 for an empty HOTLINE_PRIORITY (QUEUE_PRIO)
    if value.isascii() and value.isdigit() and len(value) <= 3 and int(value) <= MAX_PRIORITY:
        return int(value)
    raise _Untrusted("CallPriority")


def _user_event(event: Mapping[str, Any]) -> list[CoreEvent]:
    kind = header(event, "UserEvent")
    if kind not in _SENT:
        # HotlineTransfer (IVR outcome; HotlineQueued follows), HotlineFallback, the recorder's
        # and supervision's events, other apps' events
        return []
    try:
        return _trusted_user_event(kind, event)
    except _Untrusted as bad:
        log.warning("AMI UserEvent %s dropped: its %s is not what the dialplan sends",
                    kind, bad.args[0])
        return []


def _trusted_user_event(kind: str, event: Mapping[str, Any]) -> list[CoreEvent]:
    if "Context" in event and header(event, "Context") not in DIALPLAN_CONTEXTS:
        raise _Untrusted("Context")
    if not header(event, "Linkedid"):
        return []  # not about a call (as before: not worth a warning)
    call_id = _field(event, "Linkedid", _ASTERISK_ID)
    # every field the dialplan sends must be there: a message cut short (CRLF CRLF inside an
    # earlier value) must not pass with a default priority or no account
    for key in _SENT[kind]:
        if key not in event:
            raise _Untrusted(key)
    if kind == "HotlineQueued":
        return [CallQueued(call_id=call_id, channel=_field(event, "Channel", _CHANNEL),
                           caller=_caller_number(event, "CallerIDNum"),
                           skill=_field(event, "Skill", SKILL_RE),
                           priority=_priority(event),
                           account=_field(event, "Account", _ACCOUNT, optional=True) or None,
                           channel_id=_field(event, "Uniqueid", _ASTERISK_ID, optional=True))]
    if kind == "HotlineOffer":
        return [CallOffered(call_id, _field(event, "Seat", _SEAT))]
    if kind == "HotlineRona":
        return [RingNoAnswer(call_id, _field(event, "Seat", _SEAT),
                             _field(event, "DialStatus", _DIAL_STATUS))]
    if kind == "HotlineSeatBusy":
        return [SeatBusy(call_id, _field(event, "Seat", _SEAT))]
    if kind == "HotlineFailover":
        return [CallFailedOver(call_id)]
    if kind == "HotlineSurveyOffered":
        _field(event, "Seat", _SEAT)
        _field(event, "Skill", SKILL_RE)
        return [CallEnded(call_id, SURVEY_CAUSE)]
    number = _caller_number(event, "Number") or _caller_number(event, "CallerIDNum")
    return [CallbackRequested(call_id, number)]


# ----------------------------------------------------------------------- the survey's facts


@dataclass(frozen=True)
class SurveyOffered:
    """The agent at `seat` hung up first and the caller went on to the post-call survey of
    `skill` (HotlineSurveyOffered)."""

    call_id: str
    seat: str
    skill: str


@dataclass(frozen=True)
class SurveyAnswered:
    """The survey's end (HotlineSurvey): the caller's score 1-5, or None when no valid key
    came after three asks."""

    call_id: str
    seat: str
    skill: str
    score: int | None


SurveyFact = SurveyOffered | SurveyAnswered


def survey_fact(event: Mapping[str, Any]) -> SurveyFact | None:
    """What a post-call survey UserEvent says (the dialplan's hotline-survey), or None for any
    other event. Every field is checked as for the ACD's UserEvents; one out of shape drops the
    event (logged). The CTI checks the key again: only 1-5 is a score."""
    if header(event, "Event") != "UserEvent":
        return None
    kind = header(event, "UserEvent")
    if kind not in ("HotlineSurveyOffered", "HotlineSurvey") or is_local(header(event, "Channel")):
        return None
    try:
        if "Context" in event and header(event, "Context") != SURVEY_CONTEXT:
            raise _Untrusted("Context")
        call_id = _field(event, "Linkedid", _ASTERISK_ID)
        seat = _field(event, "Seat", _SEAT)
        skill = _field(event, "Skill", SKILL_RE)
        if kind == "HotlineSurveyOffered":
            return SurveyOffered(call_id, seat, skill)
        key = _field(event, "Key", _SURVEY_KEY)
    except _Untrusted as bad:
        log.warning("AMI UserEvent %s dropped: its %s is not what the dialplan sends",
                    kind, bad.args[0])
        return None
    return SurveyAnswered(call_id, seat, skill, None if key == "none" else int(key))


def _answer_or_offer(name: str, event: Mapping[str, Any]) -> list[CoreEvent]:
    call_id = _linkedid(event)
    if not call_id:
        return []
    dest = header(event, "DestChannel")
    if is_local(dest) or not header(event, "Channel") or not _CHANNEL.fullmatch(dest):
        return []
    seat = seat_of_channel(dest)
    if name == "AgentConnect" and seat is None:
        m = _SEAT_DEVICE.fullmatch(header(event, "Interface"))
        seat = m.group(1) if m else None
    if seat is None:
        return []
    if name == "DialBegin":
        if header(event, "Context") == CONNECT_CONTEXT:
            return [CallOffered(call_id, seat)]
        return []  # app_queue ringing members after a failover: not the CTI's offer
    if name == "DialEnd" and header(event, "DialStatus") != "ANSWER":
        return []  # no answer: HotlineRona says so, with the caller back in hotline-wait
    return [AgentAnswered(call_id, seat, dest)]


def _seat_reachability(name: str, event: Mapping[str, Any]) -> list[CoreEvent]:
    if name == "DeviceStateChange":
        m = _SEAT_DEVICE.fullmatch(header(event, "Device"))
        state, yes, no = header(event, "State"), _REACHABLE_STATES, _UNREACHABLE_STATES
    elif name == "ContactStatus":
        aor = header(event, "AOR") or header(event, "EndpointName")
        m = _SEAT_DEVICE.fullmatch(f"PJSIP/{aor}")
        state, yes, no = header(event, "ContactStatus"), _REACHABLE_CONTACT, _UNREACHABLE_CONTACT
    else:
        m = _SEAT_DEVICE.fullmatch(header(event, "Peer"))
        state, yes, no = header(event, "PeerStatus"), _REACHABLE_PEER, _UNREACHABLE_PEER
    if m is None or state not in yes | no:
        return []  # not a seat, or a state that says nothing (UNKNOWN)
    return [SeatReachable(m.group(1), state in yes)]


# ----------------------------------------------------------------------------- the tracker


class Phase(StrEnum):
    WAITING = "waiting"  # in hotline-wait, for the ACD
    RINGING = "ringing"  # in hotline-connect, a seat ringing
    TALKING = "talking"
    FAILED_OVER = "failed_over"  # in app_queue
    CALLBACK = "callback"  # asked to be called back, leaving


@dataclass(frozen=True)
class CallState:
    phase: Phase
    seat: str | None = None


_WAITING_LIKE = frozenset({Phase.WAITING, Phase.RINGING, Phase.FAILED_OVER})


def _implies(ev: CallEvent) -> CallState | None:
    """The state a call is in right after this event."""
    match ev:
        case CallQueued() | RingNoAnswer():
            return CallState(Phase.WAITING)
        case CallOffered(seat=seat):
            return CallState(Phase.RINGING, seat)
        case AgentAnswered(seat=seat):
            return CallState(Phase.TALKING, seat)
        case CallFailedOver():
            return CallState(Phase.FAILED_OVER)
        case CallbackRequested():
            return CallState(Phase.CALLBACK)
    return None


class CallTracker:
    """Per-call state that turns repeated, late or missing events into at most one transition
    each. Only calls that reached the agent side are tracked (from CallQueued, CallOffered,
    CallFailedOver or CallbackRequested on); IVR-only, internal and Local calls pass through
    as nothing. Ended calls are remembered (bounded) so that late events about them are
    dropped. Not thread-safe: one writer."""

    # Late events about an ended call come within seconds (a hangup's stragglers) or with a
    # resync after an AMI reconnect. 2,000 ended calls is about ten minutes at the 50-seat
    # peak (3.5 calls/s): ample for both, and the memory fills in those ten minutes rather
    # than the 48 that 10,000 took, so a soak sees it level off.
    def __init__(self, remember_ended: int = 2_000) -> None:
        self._calls: dict[str, CallState] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._remember_ended = remember_ended
        self._seats: dict[str, bool] = {}

    # ----------------------------------------------------------------------------- reading

    def calls(self) -> Mapping[str, CallState]:
        return dict(self._calls)

    def state(self, call_id: str) -> CallState | None:
        return self._calls.get(call_id)

    def seats(self) -> Mapping[str, bool]:
        return dict(self._seats)

    # ----------------------------------------------------------------------------- writing

    def feed(self, event: Mapping[str, Any]) -> list[CoreEvent]:
        """translate() then apply(): the transitions one AMI event causes."""
        return [out for ev in translate(event) for out in self.apply(ev)]

    def apply(self, ev: CoreEvent) -> list[CoreEvent]:
        if isinstance(ev, SeatReachable):
            if self._seats.get(ev.seat) is ev.reachable:
                return []
            self._seats[ev.seat] = ev.reachable
            return [ev]
        call_id = ev.call_id
        if call_id in self._ended:
            return []
        cur = self._calls.get(call_id)
        phase = cur.phase if cur is not None else None
        match ev:
            case CallQueued():
                if phase is None:
                    return self._to(call_id, CallState(Phase.WAITING), ev)
                if cur is not None and phase is Phase.RINGING:
                    # back in the wait without a HotlineRona: the offer rang out unseen
                    assert cur.seat is not None
                    return self._to(call_id, CallState(Phase.WAITING),
                                    RingNoAnswer(call_id, cur.seat, ""))
                return []
            case CallOffered(seat=seat):
                if phase in (None, Phase.WAITING, Phase.FAILED_OVER):
                    return self._to(call_id, CallState(Phase.RINGING, seat), ev)
                if cur is not None and phase is Phase.RINGING and cur.seat != seat:
                    assert cur.seat is not None
                    return self._to(call_id, CallState(Phase.RINGING, seat),
                                    RingNoAnswer(call_id, cur.seat, ""), ev)
                return []
            case SeatBusy():
                # never rung (no HotlineOffer): the call stays as it was, waiting
                return [ev] if phase in (Phase.WAITING, Phase.RINGING) else []
            case RingNoAnswer(seat=seat):
                if cur is not None and phase is Phase.RINGING and cur.seat == seat:
                    return self._to(call_id, CallState(Phase.WAITING), ev)
                return []
            case AgentAnswered(seat=seat):
                if phase in _WAITING_LIKE:
                    return self._to(call_id, CallState(Phase.TALKING, seat), ev)
                return []
            case CallFailedOver():
                if phase in (None, Phase.WAITING, Phase.RINGING):
                    return self._to(call_id, CallState(Phase.FAILED_OVER), ev)
                return []
            case CallbackRequested():
                if phase in (None, Phase.WAITING, Phase.FAILED_OVER):
                    return self._to(call_id, CallState(Phase.CALLBACK), ev)
                return []
            case CallEnded() | CallerAbandoned():
                self._end(call_id)
                if phase in _WAITING_LIKE:
                    return [CallerAbandoned(call_id)]
                if phase in (Phase.TALKING, Phase.CALLBACK):
                    return [CallEnded(call_id, ev.cause if isinstance(ev, CallEnded) else 0)]
                return []  # never reached the agent side
        raise TypeError(f"not a CoreEvent: {ev!r}")

    def transferred(self, call_id: str) -> bool:
        """The CTI itself moves a talking caller back to the agent side's start (a transfer
        from the desktop): its next queue, offer and answer events count again. False if the
        call is not talking."""
        cur = self._calls.get(call_id)
        if cur is None or cur.phase is not Phase.TALKING:
            return False
        self._calls[call_id] = CallState(Phase.WAITING)
        return True

    def resync(self, rebuilt: Iterable[CoreEvent]) -> list[CoreEvent]:
        """Bring the tracker to a rebuilt picture of Asterisk (resync.rebuild's output, where
        each call comes as the path of events that led to its present state): the transitions
        the CTI missed while it was not listening. Of a known call's path only the part after
        the tracker's own state is applied; calls the tracker knows that Asterisk no longer
        has ended meanwhile."""
        paths: dict[str, list[CallEvent]] = {}
        out: list[CoreEvent] = []
        for ev in rebuilt:
            if isinstance(ev, SeatReachable):
                out += self.apply(ev)
            else:
                paths.setdefault(ev.call_id, []).append(ev)
        for call_id in [c for c in self._calls if c not in paths]:
            out += self.apply(CallerAbandoned(call_id))
        for call_id, path in paths.items():
            cur = self._calls.get(call_id)
            seen = [i for i, ev in enumerate(path) if cur is not None and _implies(ev) == cur]
            for ev in path[seen[-1] + 1:] if seen else path:
                out += self.apply(ev)
        return out

    def _to(self, call_id: str, state: CallState, *events: CoreEvent) -> list[CoreEvent]:
        self._calls[call_id] = state
        return list(events)

    def _end(self, call_id: str) -> None:
        self._calls.pop(call_id, None)
        self._ended[call_id] = None
        while len(self._ended) > self._remember_ended:
            self._ended.popitem(last=False)
