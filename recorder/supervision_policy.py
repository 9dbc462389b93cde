"""Supervision's pure core: who may listen to which call, ChanSpy options per mode, session states.

No I/O here (no AMI, DB or MQTT): `recorder.supervision.SupervisionService` runs the effects this
module returns. A supervisor's phone (sup01..sup05) is Originated into the `hotline-spy` context,
which runs `ChanSpy(${SPY_TARGET},${SPY_OPTS})` on the agent's seat channel, with ChanSpy's `d`
option: keys 4, 5 and 6 on the supervisor's channel switch it to listen, whisper and barge while
it runs. A mode change from the desktop is that key, received on the channel (AMI PlayDTMF with
Receive), so ChanSpy never restarts and its audiohooks stay attached (the Redirect that restarted
it raced ChanSpy's start, issue 14). Asterisk reports every key ChanSpy reads (DTMFEnd); a key the
CTI did not send is the supervisor's own phone keypad, and it changes the mode on record too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

SPY_CONTEXT = "hotline-spy"
# The supervisor's channel gets this Uniqueid (AMI Originate ChannelId), so its events and the
# actions on it (Setvar, PlayDTMF, Hangup) name it without waiting for Asterisk to report it.
CHANNEL_ID_PREFIX = "hotline-spy-"
SUPERVISE_ROLES = frozenset({"supervisor", "admin"})
_SESSION_ID = re.compile(r"^[0-9a-f]{32}$")
_SUPERVISOR_ENDPOINT = re.compile(r"^sup\d{2,3}$")
_SEAT = re.compile(r"^seat\d{2,3}$")


class Mode(StrEnum):
    LISTEN = "listen"    # 监听: hears both sides, says nothing
    WHISPER = "whisper"  # 耳语/密语: the agent hears the supervisor, the caller does not
    BARGE = "barge"      # 强插: both the agent and the caller hear the supervisor


# ChanSpy (Asterisk 22): q = no beep or channel name announced; E = exit when the spied-on
# channel hangs up; S = exit when there is nothing left to spy on (never wait for another call);
# w = whisper to the spied-on channel; B = barge, i.e. talk to both channels of its bridge;
# d = keys 4/5/6 switch to spy/whisper/barge while ChanSpy runs (the whisper audiohook is
# attached from the start, so a switch needs no restart).
_BASE_OPTIONS = "qESd"
CHANSPY_OPTIONS: Mapping[Mode, str] = {
    Mode.LISTEN: _BASE_OPTIONS,
    Mode.WHISPER: _BASE_OPTIONS + "w",
    Mode.BARGE: _BASE_OPTIONS + "B",
}


# the key ChanSpy's `d` option reads for each mode
MODE_KEYS: Mapping[Mode, str] = {Mode.LISTEN: "4", Mode.WHISPER: "5", Mode.BARGE: "6"}
_KEY_MODES = {k: m for m, k in MODE_KEYS.items()}


def parse_mode(value: object) -> Mode:
    """A Mode from a request value; ValueError with the allowed values otherwise."""
    try:
        return Mode(str(value))
    except ValueError:
        raise ValueError(f"mode must be one of {', '.join(m.value for m in Mode)}, "
                         f"not {value!r}") from None


def chanspy_options(mode: Mode) -> str:
    return CHANSPY_OPTIONS[mode]


def spy_target(seat: str) -> str:
    """ChanSpy's channel prefix for a seat: 'PJSIP/seat07-' (the dash keeps seat07 from also
    matching a seat070). A seat has one call at a time, so the prefix is exactly its channel."""
    if not _SEAT.match(seat):
        raise ValueError(f"not a seat: {seat!r}")
    return f"PJSIP/{seat}-"


def is_session_id(value: str) -> bool:
    return bool(_SESSION_ID.match(value))


def channel_id(session_id: str) -> str:
    return CHANNEL_ID_PREFIX + session_id


def session_of_channel_id(uniqueid: str) -> str | None:
    if uniqueid.startswith(CHANNEL_ID_PREFIX):
        sid = uniqueid[len(CHANNEL_ID_PREFIX):]
        return sid if is_session_id(sid) else None
    return None


def supervisor_endpoint(user_id: str, seat: str | None, endpoints: Iterable[str]) -> str | None:
    """The supervisor's own phone: the supervisor endpoint they logged in at, else the one
    numbered like their id (S01 -> sup01); None when there is none."""
    known = set(endpoints)
    if seat and _SUPERVISOR_ENDPOINT.match(seat) and seat in known:
        return seat
    m = re.fullmatch(r"[A-Za-z]+0*(\d{1,3})", user_id)
    if m is None:
        return None
    n = int(m.group(1))
    for width in (2, 3):
        name = f"sup{n:0{width}d}"
        if name in known:
            return name
    return None


# ------------------------------------------------------------------------------ decisions


@dataclass(frozen=True)
class Actor:
    user_id: str
    role: str  # agent | supervisor | admin
    seat: str | None = None


@dataclass(frozen=True)
class LiveCall:
    """A call as the ACD knows it: connected calls have an agent and a seat."""

    call_id: str
    state: str  # acd.model.CallState value: waiting | offered | connected | ...
    agent_id: str | None
    seat: str | None


class SessionState(StrEnum):
    DIALING = "dialing"  # the supervisor's phone rings
    ACTIVE = "active"    # the supervisor answered; ChanSpy runs (or restarts after a switch)
    ENDED = "ended"


@dataclass(frozen=True)
class SpySession:
    session_id: str
    supervisor_id: str
    endpoint: str
    call_id: str
    agent_id: str
    seat: str
    mode: Mode
    state: SessionState
    requested_at: float
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    spying: bool = False  # ChanSpy is running right now (between ChanSpyStart and Stop)
    # keys the CTI has sent to the supervisor's channel that Asterisk has not yet reported
    # read (DTMFEnd), oldest first: a reported key not among them came from the phone
    keys_sent: tuple[str, ...] = ()

    @property
    def channel(self) -> str:
        """How AMI names the supervisor's channel (its Uniqueid works wherever a name does)."""
        return channel_id(self.session_id)

    @property
    def target(self) -> str:
        return spy_target(self.seat)

    @property
    def options(self) -> str:
        return chanspy_options(self.mode)


@dataclass(frozen=True)
class Refused:
    reason: str  # forbidden | bad_mode | no_such_call | not_connected | no_phone | busy | self
    agent_id: str | None = None


@dataclass(frozen=True)
class Allowed:
    session: SpySession


def decide_start(actor: Actor, call: LiveCall | None, mode: object, endpoints: Iterable[str],
                 sessions: Iterable[SpySession], session_id: str, now: float
                 ) -> Allowed | Refused:
    """May `actor` start supervising `call` in `mode`? The role check comes first, so an agent
    learns nothing about calls by probing."""
    if actor.role not in SUPERVISE_ROLES:
        return Refused("forbidden", call.agent_id if call else None)
    try:
        m = parse_mode(mode)
    except ValueError:
        return Refused("bad_mode", call.agent_id if call else None)
    if call is None:
        return Refused("no_such_call")
    if call.state != "connected" or not call.agent_id or not call.seat:
        return Refused("not_connected", call.agent_id)
    if call.agent_id == actor.user_id:
        return Refused("self", call.agent_id)
    endpoint = supervisor_endpoint(actor.user_id, actor.seat, endpoints)
    if endpoint is None:
        return Refused("no_phone", call.agent_id)
    for s in sessions:
        if s.state != SessionState.ENDED and (s.supervisor_id == actor.user_id
                                              or s.endpoint == endpoint):
            return Refused("busy", call.agent_id)
    return Allowed(SpySession(session_id=session_id, supervisor_id=actor.user_id,
                              endpoint=endpoint, call_id=call.call_id, agent_id=call.agent_id,
                              seat=call.seat, mode=m, state=SessionState.DIALING,
                              requested_at=now))


def may_control(actor: Actor, session: SpySession) -> str | None:
    """None when `actor` may change or stop `session`; else the refusal reason. The supervisor
    who started it may, and so may an admin."""
    if actor.role not in SUPERVISE_ROLES:
        return "forbidden"
    if actor.user_id != session.supervisor_id and actor.role != "admin":
        return "forbidden"
    if session.state == SessionState.ENDED:
        return "ended"
    return None


# ------------------------------------------------------------------------- transitions


@dataclass(frozen=True)
class Originate:
    session: SpySession


@dataclass(frozen=True)
class SwitchMode:
    """Setvar SPY_OPTS/SPY_MODE on the supervisor's channel (a ChanSpy the dialplan restarts
    starts in the session's mode), then, when `key` is set, that key received on the channel
    (AMI PlayDTMF, Receive): the running ChanSpy switches."""

    session: SpySession
    key: str | None = None


@dataclass(frozen=True)
class HangupSpy:
    session: SpySession


@dataclass(frozen=True)
class AuditMode:
    """A mode period begins (`begin`) or ends for the session, at `at`."""

    session: SpySession
    mode: Mode
    begin: bool
    at: float


@dataclass(frozen=True)
class AuditEnd:
    session: SpySession


@dataclass(frozen=True)
class Announce:
    """Tell supervisors' desktops (MQTT): `event` is started | mode | ended."""

    session: SpySession
    event: str


Effect = Originate | SwitchMode | HangupSpy | AuditMode | AuditEnd | Announce


@dataclass(frozen=True)
class Answered:
    """The supervisor's channel entered the spy context (UserEvent HotlineSpy)."""

    session_id: str


@dataclass(frozen=True)
class SpyStarted:
    session_id: str


@dataclass(frozen=True)
class SpyStopped:
    session_id: str


@dataclass(frozen=True)
class ChannelGone:
    """The supervisor's channel hung up (or the Originate never produced one)."""

    session_id: str
    reason: str  # hangup | no_answer | failed | call_ended


@dataclass(frozen=True)
class ModeRequested:
    session_id: str
    mode: Mode


@dataclass(frozen=True)
class KeyRead:
    """Asterisk read a key on the supervisor's channel (DTMFEnd, received): one the CTI sent,
    or the supervisor's own keypad."""

    session_id: str
    key: str


@dataclass(frozen=True)
class StopRequested:
    session_id: str


@dataclass(frozen=True)
class CallGone:
    """The supervised call ended (the caller hung up, or the agent)."""

    call_id: str


Event = (Answered | SpyStarted | SpyStopped | ChannelGone | ModeRequested | KeyRead
         | StopRequested | CallGone)


class Rejected(Exception):
    """A request that does not fit the session's state; `reason` is a short code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def start(session: SpySession) -> list[Effect]:
    """The effects of an allowed start: ring the supervisor, say so."""
    return [Originate(session), Announce(session, "requested")]


def step(session: SpySession, event: Event, now: float) -> tuple[SpySession, list[Effect]]:
    """One event for one session: its next state and the effects. Idempotent for repeated
    events (Asterisk may repeat or omit some); raises Rejected for a request that cannot be
    carried out now."""
    if session.state == SessionState.ENDED:
        if isinstance(event, ModeRequested | StopRequested):
            raise Rejected("ended")
        return session, []
    match event:
        case Answered():
            if session.state == SessionState.DIALING:
                s = replace(session, state=SessionState.ACTIVE, answered_at=now)
                return s, [AuditMode(s, s.mode, True, now), Announce(s, "started")]
            return session, []
        case SpyStarted():
            # ChanSpy started with the options the channel had when the dialplan reached it;
            # a switch asked since then may have set them too late, or its key may have gone
            # to the ChanSpy that ended: the session's mode key, once more, settles it
            key = MODE_KEYS[session.mode]
            s = replace(session, spying=True, keys_sent=_sent(session, key))
            if session.state == SessionState.DIALING:
                s = replace(s, state=SessionState.ACTIVE, answered_at=now)
                return s, [AuditMode(s, s.mode, True, now), Announce(s, "started"),
                           SwitchMode(s, key)]
            return s, [SwitchMode(s, key)]
        case SpyStopped():
            return replace(session, spying=False), []
        case ModeRequested(mode=mode):
            if session.state != SessionState.ACTIVE:
                raise Rejected("not_answered")
            if mode == session.mode:
                return session, []
            # no ChanSpy running (it has not started yet, or is between a stop and the
            # dialplan's restart): the options alone, and its start sends the key
            send = MODE_KEYS[mode] if session.spying else None
            s = replace(session, mode=mode,
                        keys_sent=_sent(session, send) if send else session.keys_sent)
            return s, [AuditMode(session, session.mode, False, now), SwitchMode(s, send),
                       AuditMode(s, mode, True, now), Announce(s, "mode")]
        case KeyRead(key=read):
            if read in session.keys_sent:  # ours (and any sent before it that went unseen)
                i = session.keys_sent.index(read)
                return replace(session, keys_sent=session.keys_sent[i + 1:]), []
            keyed = _KEY_MODES.get(read)
            if keyed is None or session.state != SessionState.ACTIVE or keyed == session.mode:
                return session, []
            # the supervisor keyed a switch on their phone: ChanSpy made it; put it on record
            s = replace(session, mode=keyed)
            return s, [AuditMode(session, session.mode, False, now), SwitchMode(s),
                       AuditMode(s, keyed, True, now), Announce(s, "mode")]
        case StopRequested():
            return _end(session, "stopped", now, hang_up=True)
        case CallGone():
            return _end(session, "call_ended", now, hang_up=True)
        case ChannelGone(reason=reason):
            return _end(session, reason, now, hang_up=False)
    raise TypeError(f"not a supervision event: {event!r}")


KEYS_REMEMBERED = 8  # keys awaiting Asterisk's report; older ones were lost, not pending


def _sent(session: SpySession, key: str) -> tuple[str, ...]:
    return (session.keys_sent + (key,))[-KEYS_REMEMBERED:]


def _end(session: SpySession, reason: str, now: float, *, hang_up: bool
         ) -> tuple[SpySession, list[Effect]]:
    s = replace(session, state=SessionState.ENDED, ended_at=now, end_reason=reason,
                spying=False)
    out: list[Effect] = []
    if hang_up:
        out.append(HangupSpy(s))
    if session.state == SessionState.ACTIVE:
        out.append(AuditMode(s, session.mode, False, now))
    out += [AuditEnd(s), Announce(s, "ended")]
    return s, out


# ------------------------------------------------------------------------- AMI -> events


def _h(event: Mapping[str, Any], key: str) -> str:
    value = event.get(key)
    if isinstance(value, list):
        value = value[-1] if value else ""
    return "" if value is None else str(value)


def translate(event: Mapping[str, Any]) -> Event | None:
    """The supervision event one AMI event stands for, if it is about a supervisor's channel."""
    name = _h(event, "Event")
    if name in ("ChanSpyStart", "ChanSpyStop"):
        sid = session_of_channel_id(_h(event, "SpyerUniqueid"))
        if sid is None:
            return None
        return SpyStarted(sid) if name == "ChanSpyStart" else SpyStopped(sid)
    if name == "DTMFEnd" and _h(event, "Direction") == "Received":
        sid = session_of_channel_id(_h(event, "Uniqueid"))
        key = _h(event, "Digit")
        return KeyRead(sid, key) if sid and key in _KEY_MODES else None
    if name == "UserEvent" and _h(event, "UserEvent") == "HotlineSpy":
        sid = session_of_channel_id(_h(event, "Uniqueid"))
        return Answered(sid) if sid else None
    if name == "Hangup":
        sid = session_of_channel_id(_h(event, "Uniqueid"))
        return ChannelGone(sid, "hangup") if sid else None
    if name == "OriginateResponse" and _h(event, "Response") != "Success":
        sid = session_of_channel_id(_h(event, "Uniqueid"))
        if sid is None:
            return None
        # Reason is Asterisk's AST_CONTROL cause: 3 no answer, 5 busy, 8 congestion, 0 failed
        reason = {"3": "no_answer", "5": "busy"}.get(_h(event, "Reason"), "failed")
        return ChannelGone(sid, reason)
    return None
