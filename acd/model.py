"""ACD data: agent and call states, the Agent and Call records, the config and the effects."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

# --------------------------------------------------------------------------------------- states


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"  # 签出
    READY = "ready"  # 就绪
    NOT_READY = "not_ready"  # 小休 and friends; Agent.reason says which
    RESERVED = "reserved"  # 振铃: the seat is ringing with one offered call
    ON_CALL = "on_call"  # 通话中
    WRAP_UP = "wrap_up"  # 话后处理


class CallState(StrEnum):
    WAITING = "waiting"  # in its skill queue, caller on hold in Asterisk
    OFFERED = "offered"  # an agent's seat is ringing (or a callback's agent is being reserved)
    CONNECTED = "connected"
    # final states: the engine drops the call from its live set when it reaches one
    ENDED = "ended"
    ABANDONED = "abandoned"
    # the caller hung up after asking to be called back; the call keeps its place in the queue
    CALLBACK = "callback"


QUEUED_CALL_STATES = frozenset({CallState.WAITING, CallState.CALLBACK})
LIVE_CALL_STATES = QUEUED_CALL_STATES | {CallState.OFFERED, CallState.CONNECTED}

# Flags the IVR or the CRM lookup sets on a call.
IMPORTANT = "important"  # 重要客户: hospital, life support, government
REPEAT_FAULT = "repeat_fault"  # the caller has an open repair order (催办 of a fault)
VIP = "vip"  # the caller's number is on the VIP list (cti.db.callers), account or not

MIN_PROFICIENCY, MAX_PROFICIENCY = 1, 5

# -------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Agent:
    """One agent (坐席) as the ACD sees it. `skills` maps skill -> proficiency 1..5 (read-only)."""

    agent_id: str
    seat: str = ""  # e.g. 'seat07'; empty while logged out
    skills: Mapping[str, int] = field(default_factory=dict)
    state: AgentState = AgentState.LOGGED_OUT
    reason: str = ""  # not_ready reason code: break, lunch, training, login, rona, ...
    state_since: float = 0.0
    call_id: str | None = None  # the offered/connected call; kept through wrap-up
    idle_since: float = 0.0  # when it last became ready: longest-idle ordering
    calls_handled: int = 0  # calls answered since the engine first saw this agent
    # the seat's phone is not registered (SeatReachability): never ready, so never offered a
    # call; see acd.agent_fsm for what happens on the way out and back
    phone_offline: bool = False
    # while not_ready 'phone_offline': True if the phone, not the agent, kept them from ready
    # (they were ready, in wrap-up or on a call), so they are ready again when it is back;
    # False after a login at a dead seat: back to not_ready 'login', as after any login
    ready_on_phone: bool = False


# Call.flags: the call is an agent's click-to-call (拨打客户), placed from the desktop
CLICK_TO_CALL = "click_to_call"


@dataclass(frozen=True)
class Call:
    """One inbound call (or the callback that replaces it). call_id is the Asterisk Linkedid."""

    call_id: str
    caller: str
    skill: str
    enqueued_at: float
    priority: int = 0  # from the IVR; higher first; flags add config.flag_priority
    account: str | None = None  # 户号
    flags: frozenset[str] = frozenset()
    state: CallState = CallState.WAITING
    offered_to: str | None = None  # agent_id while offered or connected
    attempts: int = 0  # how many times it has been offered
    callback_number: str | None = None
    requeued_front: bool = False  # put back at the front after a ring-no-answer
    offered_at: float | None = None
    answered_at: float | None = None
    last_announced_at: float | None = None
    # told once that the expected wait passed the deflection threshold (Deflect): never again,
    # whatever happens to the call after (ring-no-answer, transfer, storm mode off and on)
    deflected: bool = False


# ---------------------------------------------------------------------------------------- nodes

# A call id is its PBX node's Asterisk Linkedid, which that node's systemname prefixes:
# "pbx2-1700000000.12" is on node pbx2. The same shape as config.settings.ASTERISK_ID_PATTERN
# (the pure core imports nothing; tests/unit/test_pbx_nodes.py checks the two agree).
_NODE_PREFIXED_ID = re.compile(r"([a-z][a-z0-9-]{0,31})-[0-9]+\.[0-9]+")


def call_node(call_id: str, default: str) -> str:
    """The PBX node a call is on: the systemname its id starts with; `default` for an id
    without one (an Asterisk with no systemname, or data from before; also any id that is not
    an Asterisk id at all)."""
    m = _NODE_PREFIXED_ID.fullmatch(call_id)
    return m.group(1) if m else default


# --------------------------------------------------------------------------------------- config

ANY: Literal["*"] = "*"
WidenTo = frozenset[str] | Literal["*"]
WidenStep = tuple[float, WidenTo]


def _default_widening() -> dict[str, tuple[WidenStep, ...]]:
    # A fault-repair caller may be in the dark: after a minute general agents can take the
    # report (they can open a repair order too), after two minutes anyone logged in can.
    return {"repair": ((60.0, frozenset({"general"})), (120.0, ANY))}


def _default_flag_priority() -> dict[str, int]:
    return {IMPORTANT: 10, VIP: 8, REPEAT_FAULT: 5}


@dataclass(frozen=True)
class AcdConfig:
    """ACD settings; built once at startup. Invalid values raise ValueError there."""

    wrap_up_s: float = 15.0
    ring_timeout_s: float = 15.0  # about 4 rings
    max_queue_per_skill: int = 30  # a new call beyond this overflows
    # per-skill limits that override max_queue_per_skill (say, a small English queue)
    max_queue_by_skill: Mapping[str, int] = field(default_factory=dict)
    overflow_target: str = "overflow"
    # per skill, ordered (seconds waited, extra skills or '*' for any agent); see acd.routing
    widen_after_s: Mapping[str, tuple[WidenStep, ...]] = field(default_factory=_default_widening)
    # added to the IVR priority when the call carries the flag
    flag_priority: Mapping[str, int] = field(default_factory=_default_flag_priority)
    callback_enabled: bool = True
    service_level_s: float = 20.0
    aht_initial_s: float = 180.0
    aht_smoothing: float = 0.1  # weight of the newest handle time in the moving average
    announce_every_s: float = 30.0  # position/EWT announcement to each waiting caller
    stats_every_s: float = 10.0  # QueueStats cadence on Tick
    # the PBX node of call ids without a node prefix (call_node), and of a PbxLink that names
    # none; with one node, that node ("" in tests that never name one)
    default_node: str = ""

    def max_queue(self, skill: str) -> int:
        """How many calls may wait for this skill before a new one overflows."""
        return self.max_queue_by_skill.get(skill, self.max_queue_per_skill)

    def __post_init__(self) -> None:
        positive = {
            "ring_timeout_s": self.ring_timeout_s,
            "aht_initial_s": self.aht_initial_s,
            "announce_every_s": self.announce_every_s,
            "stats_every_s": self.stats_every_s,
            "service_level_s": self.service_level_s,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"acd: {name} must be > 0, got {value!r}")
        if self.wrap_up_s < 0:
            raise ValueError(f"acd: wrap_up_s must be >= 0, got {self.wrap_up_s!r}")
        if self.max_queue_per_skill < 1:
            raise ValueError(
                f"acd: max_queue_per_skill must be >= 1, got {self.max_queue_per_skill}"
            )
        for skill, limit in self.max_queue_by_skill.items():
            if limit < 1:
                raise ValueError(
                    f"acd: max_queue_by_skill[{skill!r}] must be >= 1, got {limit}"
                )
        if not 0 < self.aht_smoothing <= 1:
            raise ValueError(f"acd: aht_smoothing must be in (0, 1], got {self.aht_smoothing!r}")
        if not self.overflow_target:
            raise ValueError("acd: overflow_target must not be empty")
        for skill, steps in self.widen_after_s.items():
            previous = -1.0
            for after_s, to in steps:
                if not after_s > previous or after_s < 0:
                    raise ValueError(
                        f"acd: widen_after_s[{skill!r}]: waits must be >= 0 and ascending, "
                        f"got {[s for s, _ in steps]}"
                    )
                if to != ANY and (not isinstance(to, frozenset) or not to):
                    raise ValueError(
                        f"acd: widen_after_s[{skill!r}]: each step widens to a non-empty "
                        f"frozenset of skills or '*', got {to!r}"
                    )
                previous = after_s


# -------------------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class RingAgent:
    """Ring the seat with this call and send the screen-pop (caller, account, skill, flags)."""

    agent_id: str
    seat: str
    call_id: str
    caller: str
    account: str | None
    skill: str
    flags: frozenset[str]
    attempt: int  # 1 on the first offer, 2 after one ring-no-answer, ...


@dataclass(frozen=True)
class CancelRing:
    """Stop ringing the seat (caller gone, ring-no-answer, supervisor); the call is not bridged."""

    agent_id: str
    seat: str
    call_id: str


@dataclass(frozen=True)
class CallbackDial:
    """A callback's turn: the agent is reserved; ring the seat, then dial the customer."""

    call_id: str
    agent_id: str
    seat: str
    number: str
    account: str | None
    attempt: int
    # an agent's click-to-call (acd.engine ClickToCall), not a caller's queued callback: the
    # seat is rung into the recorded click-to-call dialplan under the call's own id
    click_to_call: bool = False


@dataclass(frozen=True)
class Overflow:
    """Send the call elsewhere (the overflow queue/center); the ACD forgets it."""

    call_id: str
    target: str
    reason: str  # queue_full
    # what the caller would have waited at the back of the queue (the all-busy message names
    # it); None: unknown (no agent with the skill)
    ewt_s: float | None = None


@dataclass(frozen=True)
class Announce:
    """Tell a waiting caller their position (1 = next) and estimated wait; None: unknown."""

    call_id: str
    position: int
    ewt_s: float | None
    # offer callback-keeps-place: callbacks are enabled and the wait is at least the
    # handling's callback_offer_wait_s
    callback: bool = False


@dataclass(frozen=True)
class Deflect:
    """The caller's expected wait passed the handling's ewt_deflect_s (storm mode): tell them
    the wait and offer a callback (`callback`: callbacks are enabled) and self-service. Once
    per call; the caller keeps their place if they stay."""

    call_id: str
    ewt_s: float
    callback: bool


@dataclass(frozen=True)
class AgentStateChanged:
    """Publish the agent's new state (desktop, big screen 大屏, call record)."""

    agent: Agent


@dataclass(frozen=True)
class QueueStats:
    """Per-skill live figures and the day's counters; see acd.engine for service_level."""

    skill: str
    waiting: int  # queued calls, callbacks included
    callbacks_waiting: int
    longest_wait_s: float
    agents: Mapping[str, int]  # agents having the skill, by AgentState value
    service_level: float | None  # None until a call counts
    answered: int
    answered_in_sl: int
    abandoned: int
    abandoned_after_sl: int
    callbacks_requested: int
    callbacks_after_sl: int
    callbacks_connected: int
    overflowed: int
    aht_s: float


@dataclass(frozen=True)
class StartTimer:
    """Deliver a Tick at or after `at`. Deadlines are re-derived from state on every Tick, so a
    lost, late or duplicate timer is harmless; the timer only makes the Tick prompt."""

    name: str
    at: float


@dataclass(frozen=True)
class CancelTimer:
    name: str


@dataclass(frozen=True)
class Rejected:
    """An input that does not apply to the current state; nothing changed. For the log."""

    reason: str
    agent_id: str | None = None
    call_id: str | None = None


Effect = (
    RingAgent
    | CancelRing
    | CallbackDial
    | Overflow
    | Announce
    | Deflect
    | AgentStateChanged
    | QueueStats
    | StartTimer
    | CancelTimer
    | Rejected
)


def wrap_up_timer(agent_id: str) -> str:
    return f"wrapup:{agent_id}"


def ring_timer(call_id: str) -> str:
    return f"ring:{call_id}"
