"""The ACD engine: apply(input, now) -> effects; owns agents, calls, skill queues and day counters.

One writer (the CTI's single consumer task) calls `apply` for every input, in order, with the
time of the input. The engine never reads a clock and does no I/O; everything it wants done
comes back as effect data (acd.model). Every input is handled idempotently: a repeat or a
stale event yields no effect or a `Rejected`, never an exception.

Calls. `CallArrived` queues the call under its skill unless that queue already holds
`max_queue(skill)` calls (the config's limit, or the storm handling's cap when lower), in which
case the new call gets `Overflow(reason='queue_full')`, with the wait it would have had, and the
ACD forgets it (a call put back after a ring-no-answer is never overflowed). After every
input the engine offers queued calls, best first (acd.routing), to the best eligible ready
agent: the agent becomes reserved and the effect is `RingAgent` (or `CallbackDial` for a
callback) plus `StartTimer('ring:<call_id>')`. `AgentAnswered` connects; `CallEnded` sends the
agent to wrap-up (`StartTimer('wrapup:<agent_id>')`), which ends on `Tick` after `wrap_up_s` or
earlier when the agent says ready. A ring-no-answer (`RingTimeout`, or a `Tick` past
`ring_timeout_s`) sets the agent not_ready('rona') and puts the call back at the front of its
queue with its original enqueue time.

Callbacks. `CallbackRequested` turns a waiting call into a callback: the caller hangs up but the
call keeps its place. From then on the caller's own leg hanging up (`CallAbandoned`/`CallEnded`
before the callback is connected) is ignored. When its turn comes an agent is reserved and the
effect is `CallbackDial`: ring the agent's seat first, and once the agent answers
(`AgentAnswered`) dial the customer. The CTI reports the callback legs under the same call_id;
`CallEnded` ends it like any call.

Click-to-call (拨打客户). `ClickToCall` is an agent placing a call from the desktop: an agent
logged in, not on a call or a ring (ready, not_ready or in wrap-up) and whose phone is online
is reserved at once (agent_fsm Dial) with a new call of its own id, flagged CLICK_TO_CALL, and
the effect is `CallbackDial(click_to_call=True)`: the seat rings first, the customer is dialled
once the agent answers. It is never queued, never offered to anyone else and counts in no
skill's figures. The agent is out of routing from the click to the wrap-up after it. If the
seat never answers (or the ring cannot be sent, or a supervisor forces the agent), the call is
dropped, not requeued, and the agent is ready again (OfferCancelled: no ring-no-answer).

Handling (storm mode). `HandlingChanged` sets, for decisions from then on, the queue cap, the
expected wait from which announcements offer a callback (`Announce.callback`), and the EWT
deflection threshold: a waiting caller whose expected wait passes it gets `Deflect` (told the
wait, offered a callback and self-service) instead of that tick's announcement, once per call.
Switching back restores the previous values; nothing already decided is undone.

Service level (服务水平), per skill, over the day so far (`ResetDailyStats` starts a new day):

    SL = answered within service_level_s
         / (answered + abandoned after service_level_s + callbacks requested after it)

The wait is measured from `enqueued_at` (the first time the call was queued; ring-no-answer
does not restart it) to the answer, the abandon or the callback request. Calls abandoned within
service_level_s are left out (short abandons: the caller changed their mind). A callback request
counts like an abandon at that moment: the caller gave up waiting; the later callback connection
is counted separately (callbacks_connected), not as answered. Overflowed calls are left out
(their new target measures them) and counted in `overflowed`. SL is None before any call counts.

Seats. `SeatReachability(seat, reachable)` says whether the seat's phone can be rung (the CTI
reads it from Asterisk's registrations). A seat is reachable until the engine hears otherwise;
the engine keeps the unreachable ones (in the Snapshot too) and never offers a call there: the
agent at such a seat is never ready (acd.agent_fsm, "The phone", has the rules, a login at a
dead seat among them).

AHT per skill: a moving average (weight `aht_smoothing`) of talk time + configured wrap-up,
starting at `aht_initial_s`; it is in the Snapshot, so the EWT does not restart from scratch
after a restart.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from acd import agent_fsm as fsm
from acd.model import (
    CLICK_TO_CALL,
    LIVE_CALL_STATES,
    QUEUED_CALL_STATES,
    AcdConfig,
    Agent,
    AgentState,
    AgentStateChanged,
    Announce,
    Call,
    CallbackDial,
    CallState,
    CancelRing,
    CancelTimer,
    Deflect,
    Effect,
    Overflow,
    QueueStats,
    Rejected,
    RingAgent,
    StartTimer,
    call_node,
    ring_timer,
)
from acd.routing import call_order, eligible_agents, estimated_wait

# ------------------------------------------------------------------------------------- inputs


def _clicked(call: Call) -> bool:
    """The call is an agent's click-to-call."""
    return CLICK_TO_CALL in call.flags


@dataclass(frozen=True)
class AgentLogin:
    agent_id: str
    seat: str
    skills: Mapping[str, int]  # skill -> proficiency 1..5


@dataclass(frozen=True)
class AgentLogout:
    agent_id: str


@dataclass(frozen=True)
class AgentReady:
    agent_id: str


@dataclass(frozen=True)
class AgentNotReady:
    agent_id: str
    reason: str


@dataclass(frozen=True)
class AgentWrapUp:
    """The agent asks for (more) after-call work: wrap-up for wrap_up_s from now."""

    agent_id: str


@dataclass(frozen=True)
class AgentSkills:
    """An admin changed the agent's skills (issue 15 §1): from the next offer on, the agent is
    offered calls by these. A call ringing or connected keeps going; unknown or logged-out
    agents are left alone (their login brings the new skills)."""

    agent_id: str
    skills: Mapping[str, int]  # skill -> proficiency 1..5


@dataclass(frozen=True)
class SupervisorForce:
    """Set an agent to logged_out, ready or not_ready, whatever it is doing. A ringing call goes
    back to the front of its queue; a connected call is forgotten by the ACD (this is how a
    supervisor clears an agent stuck on a call whose hangup event was lost)."""

    agent_id: str
    state: AgentState
    reason: str = "supervisor"


@dataclass(frozen=True)
class CallArrived:
    call_id: str  # Asterisk Linkedid
    caller: str
    skill: str
    priority: int = 0
    account: str | None = None
    flags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CallAbandoned:
    call_id: str


@dataclass(frozen=True)
class AgentAnswered:
    agent_id: str
    call_id: str


@dataclass(frozen=True)
class RingTimeout:
    agent_id: str
    call_id: str


@dataclass(frozen=True)
class CallEnded:
    call_id: str


@dataclass(frozen=True)
class CallTransferred:
    """The agent on a connected call (or a supervisor) transfers it: to a skill (the caller
    waits in that skill's queue, at the front) or straight to a ready agent (whose seat rings
    at once). The transferring agent goes to wrap-up. Exactly one of skill and agent_id."""

    call_id: str
    skill: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True)
class ConsultStarted:
    """The agent on a connected call consults another, ready agent (咨询转接): the caller is on
    hold and the agent's phone rings the other's. The ACD takes the other agent out of routing
    (not_ready, reason 'consult') until the consult ends, completes or the call ends. With
    `skill` instead of `agent_id` the ACD chooses the agent as it would for a call of that
    skill (acd.routing: longest idle, then proficiency), among those ready now: a consult does
    not wait in a queue. `consults` then names who was chosen."""

    call_id: str
    agent_id: str | None = None
    skill: str | None = None


@dataclass(frozen=True)
class ConsultEnded:
    """The consulted agent left (cancelled, no answer, hung up, left the conference): ready
    again."""

    call_id: str


@dataclass(frozen=True)
class ConsultCompleted:
    """The consulted agent takes the call over (the transfer completed, or the first agent left
    the conference): the first agent goes to wrap-up as after a transfer, the consulted agent
    is on the call."""

    call_id: str


@dataclass(frozen=True)
class CallbackRequested:
    call_id: str
    number: str


@dataclass(frozen=True)
class ClickToCall:
    """An agent calls a customer from the desktop (click-to-call): `call_id` is the id the CTI
    gives the seat's leg (its Asterisk Uniqueid and Linkedid), `number` the customer's,
    checked by the caller (national form, digits only)."""

    call_id: str
    agent_id: str
    number: str
    account: str | None = None


@dataclass(frozen=True)
class SeatReachability:
    """The seat's phone registered (reachable) or is gone (unregistered, expired, unreachable).
    Repeats are harmless: only a change does anything."""

    seat: str
    reachable: bool


@dataclass(frozen=True)
class PbxLink:
    """The CTI's link to one PBX node is up (connected and resynced) or down. While it is down
    the ACD offers none of that node's calls: a ring could not be sent, and each failed one would
    cost an agent a ring-no-answer they did not earn (seen under an Asterisk kill -9: every agent
    who came free in the dark went not_ready 'rona'). Those calls keep their places and routing
    of them resumes when it is up; calls on the other nodes are offered meanwhile.

    A call's node is the one its id names (acd.model.call_node); `node` "" is
    config.default_node. Seats belong to no node: a seat is rung by Redirecting the caller's
    channel on the caller's node (behind a SIP proxy any node reaches any seat)."""

    up: bool
    node: str = ""


@dataclass(frozen=True)
class RingNotSent:
    """The ring was never sent (the PBX could not be reached): the call goes back to the front
    of its queue and the agent back to where an offer withdrawn through no fault of theirs
    leaves them (ready), not to a ring-no-answer."""

    agent_id: str
    call_id: str


@dataclass(frozen=True)
class Tick:
    """Time passed: wrap-up and ring deadlines, widening, announcements, QueueStats."""


@dataclass(frozen=True)
class ResetDailyStats:
    """A new day for the service-level counters (the CTI sends it at local midnight)."""


@dataclass(frozen=True)
class HandlingChanged:
    """How calls are handled from now on (storm mode switched: outages.storm.Handling, as the
    CTI's storm watch feeds it). Applies to new decisions only: callers already waiting keep
    their places under a tighter cap, and a caller already told of the wait is not told again.

    queue_cap: waiting calls per skill at most, on top of the config's (the lower wins); None:
    the config's alone. callback_offer_wait_s: announcements offer callback-keeps-place from
    this expected wait on (callbacks enabled). ewt_deflect_s: a waiting caller whose expected
    wait passes this is told it once, with a callback and self-service offered (Deflect);
    None: never."""

    queue_cap: int | None = None
    callback_offer_wait_s: float = 0.0
    ewt_deflect_s: float | None = None


Input = (
    AgentLogin
    | AgentLogout
    | AgentReady
    | AgentNotReady
    | AgentWrapUp
    | SupervisorForce
    | AgentSkills
    | CallArrived
    | CallAbandoned
    | AgentAnswered
    | RingTimeout
    | CallEnded
    | CallbackRequested
    | ClickToCall
    | CallTransferred
    | ConsultStarted
    | ConsultEnded
    | ConsultCompleted
    | SeatReachability
    | PbxLink
    | RingNotSent
    | Tick
    | ResetDailyStats
    | HandlingChanged
)

# ------------------------------------------------------------------------------ day counters


@dataclass(frozen=True)
class DayCounters:
    """One skill's counts since the start of the day."""

    arrived: int = 0  # calls offered to the queue (queued or overflowed): the inflow
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    abandoned_after_sl: int = 0
    callbacks_requested: int = 0
    callbacks_after_sl: int = 0
    callbacks_connected: int = 0
    overflowed: int = 0

    @property
    def service_level(self) -> float | None:
        counted = self.answered + self.abandoned_after_sl + self.callbacks_after_sl
        return self.answered_in_sl / counted if counted else None


# ---------------------------------------------------------------------------------- snapshot


def _shallow(obj: Any) -> dict[str, Any]:
    """A flat dataclass's fields as a dict, values as they are (no deep copy)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


@dataclass(frozen=True)
class Snapshot:
    """Everything needed to rebuild the engine after a restart; to_dict() is JSON-ready."""

    agents: tuple[Agent, ...]
    calls: tuple[Call, ...]  # live calls: waiting, callback, offered, connected
    aht_s: Mapping[str, float]
    counters: Mapping[str, DayCounters] = field(default_factory=dict)
    last_stats_at: float | None = None
    finished: tuple[str, ...] = ()  # recently ended call ids, oldest first: late duplicates
    unreachable_seats: tuple[str, ...] = ()  # seats whose phone is gone, sorted

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            # flat dataclasses: a shallow copy of their fields, not asdict's deep walk (the
            # snapshot is saved after every change; asdict was most of its cost)
            "agents": [{**_shallow(a), "state": a.state.value, "skills": dict(a.skills)}
                       for a in self.agents],
            "calls": [
                {**_shallow(c), "state": c.state.value, "flags": sorted(c.flags)}
                for c in self.calls
            ],
            "aht_s": dict(self.aht_s),
            "counters": {skill: asdict(c) for skill, c in self.counters.items()},
            "last_stats_at": self.last_stats_at,
            "finished": list(self.finished),
            "unreachable_seats": list(self.unreachable_seats),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        agents = tuple(
            Agent(**{**a, "state": AgentState(a["state"]), "skills": dict(a["skills"])})
            for a in data["agents"]
        )
        calls = tuple(
            Call(**{**c, "state": CallState(c["state"]), "flags": frozenset(c["flags"])})
            for c in data["calls"]
        )
        return cls(
            agents=agents,
            calls=calls,
            aht_s={k: float(v) for k, v in data["aht_s"].items()},
            counters={k: DayCounters(**v) for k, v in data.get("counters", {}).items()},
            last_stats_at=data.get("last_stats_at"),
            finished=tuple(data.get("finished", ())),
            unreachable_seats=tuple(data.get("unreachable_seats", ())),
        )


# ------------------------------------------------------------------------------------ engine

FINISHED_MEMORY = 4096  # ended call ids remembered, so a late duplicate event is recognised
CONSULT = "consult"  # the not_ready reason of an agent taken by a consult (ConsultStarted)


class AcdEngine:
    """In-memory ACD state. Not thread-safe by design: one writer calls apply()."""

    def __init__(self, config: AcdConfig | None = None) -> None:
        self.config = config if config is not None else AcdConfig()
        self._agents: dict[str, Agent] = {}
        self._calls: dict[str, Call] = {}  # live calls only
        self._queues: dict[str, list[str]] = {}  # skill -> queued call_ids, best first
        self._aht: dict[str, float] = {}
        self._counters: dict[str, DayCounters] = {}
        self._last_stats_at: float | None = None
        self._finished: dict[str, None] = {}  # insertion-ordered, bounded
        # PbxLink: the PBX nodes whose link is down; none of their calls is offered meanwhile
        self._pbx_down: set[str] = set()
        self._unreachable: set[str] = set()  # seats whose phone cannot be rung
        # HandlingChanged: not in the snapshot; the CTI's storm watch feeds it again at start
        self._handling = HandlingChanged()
        # call_id -> the consulted agent (ConsultStarted); not in the snapshot: after a restart
        # the agent is not_ready 'consult' until they say ready
        self._consults: dict[str, str] = {}

    # ------------------------------------------------------------------------------- reading

    @property
    def agents(self) -> Mapping[str, Agent]:
        return MappingProxyType(self._agents)

    @property
    def calls(self) -> Mapping[str, Call]:
        """Live calls (waiting, callback, offered, connected)."""
        return MappingProxyType(self._calls)

    def queue(self, skill: str) -> tuple[Call, ...]:
        """The skill's queued calls, next first."""
        return tuple(self._calls[c] for c in self._queues.get(skill, ()))

    def position(self, call_id: str) -> int | None:
        call = self._calls.get(call_id)
        if call is None or call.state not in QUEUED_CALL_STATES:
            return None
        return self._queues[call.skill].index(call_id) + 1

    @property
    def consults(self) -> Mapping[str, str]:
        """call_id -> the agent consulted on it (taken out of routing meanwhile)."""
        return MappingProxyType(self._consults)

    @property
    def unreachable_seats(self) -> frozenset[str]:
        return frozenset(self._unreachable)

    @property
    def handling(self) -> HandlingChanged:
        """The handling in force (HandlingChanged; the default one before any)."""
        return self._handling

    def max_queue(self, skill: str) -> int:
        """How many calls may wait for this skill before a new one overflows: the config's
        limit, or the handling's cap when that is lower."""
        limit = self.config.max_queue(skill)
        cap = self._handling.queue_cap
        return limit if cap is None else min(limit, cap)

    def aht(self, skill: str) -> float:
        return self._aht.get(skill, self.config.aht_initial_s)

    def ewt(self, call_id: str) -> float | None:
        """Estimated seconds until this queued call is offered; None if unknown or not queued."""
        call = self._calls.get(call_id)
        pos = self.position(call_id)
        if call is None or pos is None:
            return None
        return estimated_wait(pos, call.skill, self._agents.values(), self.aht(call.skill))

    def counters(self, skill: str) -> DayCounters:
        return self._counters.get(skill, DayCounters())

    def queue_stats(self, now: float) -> list[QueueStats]:
        skills = set(self._queues) | set(self._counters)
        for agent in self._agents.values():
            skills |= set(agent.skills)
        stats = []
        for skill in sorted(skills):
            queued = self.queue(skill)
            by_state = {s.value: 0 for s in AgentState}
            for agent in self._agents.values():
                if skill in agent.skills:
                    by_state[agent.state.value] += 1
            c = self.counters(skill)
            stats.append(
                QueueStats(
                    skill=skill,
                    waiting=len(queued),
                    callbacks_waiting=sum(1 for q in queued if q.state is CallState.CALLBACK),
                    longest_wait_s=max((now - q.enqueued_at for q in queued), default=0.0),
                    agents=by_state,
                    service_level=c.service_level,
                    answered=c.answered,
                    answered_in_sl=c.answered_in_sl,
                    abandoned=c.abandoned,
                    abandoned_after_sl=c.abandoned_after_sl,
                    callbacks_requested=c.callbacks_requested,
                    callbacks_after_sl=c.callbacks_after_sl,
                    callbacks_connected=c.callbacks_connected,
                    overflowed=c.overflowed,
                    aht_s=self.aht(skill),
                )
            )
        return stats

    # ------------------------------------------------------------------------------- writing

    def apply(self, event: Input, now: float) -> list[Effect]:
        """Handle one input at time `now` (seconds); the effects, in the order to carry out."""
        match event:
            case AgentLogin():
                effects = self._login(event, now)
            case AgentLogout(agent_id=agent_id):
                effects = self._agent_event(agent_id, fsm.Logout(), now)
            case AgentReady(agent_id=agent_id) if agent_id in self._consults.values():
                effects = [Rejected("the agent is on a consult", agent_id=agent_id)]
            case AgentReady(agent_id=agent_id):
                effects = self._agent_event(agent_id, fsm.Ready(), now)
            case AgentNotReady(agent_id=agent_id, reason=reason):
                effects = self._agent_event(agent_id, fsm.NotReady(reason), now)
            case AgentWrapUp(agent_id=agent_id):
                effects = self._agent_event(agent_id, fsm.WrapUp(self.config.wrap_up_s), now)
            case SupervisorForce():
                effects = self._force(event, now)
            case AgentSkills(agent_id=agent_id, skills=skills):
                agent = self._agents.get(agent_id)
                if agent is not None and agent.state is not AgentState.LOGGED_OUT:
                    self._agents[agent_id] = replace(agent, skills=dict(skills))
                effects = []
            case CallArrived():
                effects = self._arrived(event, now)
            case CallAbandoned(call_id=call_id):
                effects = self._caller_left(call_id, now)
            case AgentAnswered():
                effects = self._answered(event, now)
            case RingTimeout():
                effects = self._ring_timeout(event, now)
            case CallEnded(call_id=call_id):
                effects = self._ended(call_id, now)
            case CallbackRequested():
                effects = self._callback_requested(event, now)
            case ClickToCall():
                effects = self._click_to_call(event, now)
            case CallTransferred():
                effects = self._transferred(event, now)
            case ConsultStarted():
                effects = self._consult_started(event, now)
            case ConsultEnded(call_id=call_id):
                effects = self._consult_ended(call_id, now)
            case ConsultCompleted():
                effects = self._consult_completed(event, now)
            case SeatReachability():
                effects = self._seat_reachability(event, now)
            case PbxLink(up=up, node=node):
                node = node or self.config.default_node
                if up:
                    self._pbx_down.discard(node)
                else:
                    self._pbx_down.add(node)
                effects = []
            case RingNotSent():
                effects = self._ring_not_sent(event, now)
            case Tick():
                effects = self._tick(now)
            case ResetDailyStats():
                self._counters.clear()
                effects = []
            case HandlingChanged():
                effects = self._handling_changed(event)
            case _:
                raise TypeError(f"not an ACD input: {event!r}")
        if self._consults:
            effects += self._settle_consults(now)
        effects += self._dispatch(now)
        return effects

    # agents

    def _agent_event(self, agent_id: str, event: fsm.Event, now: float) -> list[Effect]:
        agent = self._agents.get(agent_id)
        if agent is None:
            return [Rejected("unknown agent", agent_id=agent_id)]
        new, effects = fsm.decide(agent, event, now)
        self._agents[agent_id] = new
        return effects

    def _login(self, event: AgentLogin, now: float) -> list[Effect]:
        for other in self._agents.values():
            taken = other.state is not AgentState.LOGGED_OUT and other.seat == event.seat
            if taken and other.agent_id != event.agent_id:
                return [Rejected(f"seat {event.seat} taken by {other.agent_id}", event.agent_id)]
        agent = self._agents.get(event.agent_id, Agent(event.agent_id))
        online = event.seat not in self._unreachable
        new, effects = fsm.decide(agent, fsm.Login(event.seat, event.skills, online), now)
        if new is not agent:
            self._agents[event.agent_id] = new
        return effects

    def _seat_reachability(self, event: SeatReachability, now: float) -> list[Effect]:
        if not event.seat:
            return [Rejected("seat reachability needs a seat")]
        if event.reachable:
            self._unreachable.discard(event.seat)
        else:
            self._unreachable.add(event.seat)
        for agent in list(self._agents.values()):
            if agent.seat == event.seat and agent.state is not AgentState.LOGGED_OUT:
                new, effects = fsm.phone(agent, event.reachable, now)
                self._agents[agent.agent_id] = new
                return effects
        return []

    def _force(self, event: SupervisorForce, now: float) -> list[Effect]:
        agent = self._agents.get(event.agent_id)
        if agent is None:
            return [Rejected("unknown agent", agent_id=event.agent_id)]
        new, agent_effects = fsm.decide(agent, fsm.Force(event.state, event.reason), now)
        if any(isinstance(e, Rejected) for e in agent_effects):
            return agent_effects
        effects: list[Effect] = []
        call = self._calls.get(agent.call_id) if agent.call_id else None
        if call is not None and agent.state is AgentState.RESERVED and _clicked(call):
            effects += self._release_ring(call, agent)
            self._finish(call)
        elif call is not None and agent.state is AgentState.RESERVED:
            effects += self._take_back(call, agent)
        elif call is not None and agent.state is AgentState.ON_CALL:
            self._finish(call)
        self._agents[agent.agent_id] = new
        return effects + agent_effects

    # calls

    def _arrived(self, event: CallArrived, now: float) -> list[Effect]:
        cid = event.call_id
        wrapping_up = any(a.call_id == cid for a in self._agents.values())
        if cid in self._calls or cid in self._finished or wrapping_up:
            return [Rejected("duplicate call", call_id=cid)]
        if not cid or not event.skill:
            return [Rejected("a call needs a call_id and a skill", call_id=cid)]
        waiting = len(self._queues.get(event.skill, ()))
        self._count(event.skill, arrived=1)
        if waiting >= self.max_queue(event.skill):
            self._count(event.skill, overflowed=1)
            self._remember(cid)
            ewt = estimated_wait(waiting + 1, event.skill, self._agents.values(),
                                 self.aht(event.skill))
            return [Overflow(cid, self.config.overflow_target, "queue_full", ewt)]
        call = Call(
            call_id=cid,
            caller=event.caller,
            skill=event.skill,
            enqueued_at=now,
            priority=event.priority,
            account=event.account,
            flags=frozenset(event.flags),
        )
        self._enqueue(call)
        effects = self._dispatch(now)
        if self._calls[cid].state is CallState.WAITING:
            # told at once: the wait if it is too long (storm), else position and wait
            effects.append(self._deflect(cid, now) or self._announce(cid, now))
        return effects

    def _caller_left(self, call_id: str, now: float) -> list[Effect]:
        call = self._calls.get(call_id)
        if call is None:
            return [] if call_id in self._finished else [Rejected("unknown call", call_id=call_id)]
        if call.state is CallState.CONNECTED:
            return self._ended(call_id, now)
        if _clicked(call):
            return self._drop_click(call, now)  # the seat's leg ended before it was answered
        if call.callback_number is not None:
            return []  # the caller's own leg after asking for a callback: expected, ignored
        effects: list[Effect] = []
        if call.state is CallState.OFFERED and call.offered_to is not None:
            agent = self._agents[call.offered_to]
            effects += self._release_ring(call, agent)
            new, agent_effects = fsm.decide(agent, fsm.OfferCancelled(call_id), now)
            self._agents[agent.agent_id] = new
            effects += agent_effects
        late = now - call.enqueued_at > self.config.service_level_s
        self._count(call.skill, abandoned=1, abandoned_after_sl=int(late))
        self._finish(call)
        return effects

    def _answered(self, event: AgentAnswered, now: float) -> list[Effect]:
        call = self._calls.get(event.call_id)
        agent = self._agents.get(event.agent_id)
        if call is None or agent is None:
            return [Rejected("unknown call or agent", event.agent_id, event.call_id)]
        if call.offered_to != event.agent_id:
            return [Rejected("call not offered to this agent", event.agent_id, event.call_id)]
        if call.state is CallState.CONNECTED:
            return []  # repeat
        new, effects = fsm.decide(agent, fsm.Answered(call.call_id), now)
        self._agents[agent.agent_id] = new
        self._calls[call.call_id] = replace(call, state=CallState.CONNECTED, answered_at=now)
        if _clicked(call):
            pass  # placed by the agent: in no skill's figures
        elif call.callback_number is not None:
            self._count(call.skill, callbacks_connected=1)
        else:
            in_sl = now - call.enqueued_at <= self.config.service_level_s
            self._count(call.skill, answered=1, answered_in_sl=int(in_sl))
        return [*effects, CancelTimer(ring_timer(call.call_id))]

    def _ring_timeout(self, event: RingTimeout, now: float) -> list[Effect]:
        call = self._calls.get(event.call_id)
        ringing = (
            call is not None
            and call.state is CallState.OFFERED
            and call.offered_to == event.agent_id
        )
        if call is None or not ringing:
            return [Rejected("no such ringing offer", event.agent_id, event.call_id)]
        return self._ring_no_answer(call, now)

    def _ring_not_sent(self, event: RingNotSent, now: float) -> list[Effect]:
        call = self._calls.get(event.call_id)
        if call is None or call.state is not CallState.OFFERED \
                or call.offered_to != event.agent_id:
            return [Rejected("no such ringing offer", event.agent_id, event.call_id)]
        if _clicked(call):
            return self._drop_click(call, now)
        agent = self._agents[event.agent_id]
        effects = self._take_back(call, agent)
        new, agent_effects = fsm.decide(agent, fsm.OfferCancelled(call.call_id), now)
        self._agents[agent.agent_id] = new
        return effects + agent_effects

    @property
    def pbx_up(self) -> bool:
        """The link to every PBX node is up."""
        return not self._pbx_down

    @property
    def pbx_down(self) -> frozenset[str]:
        """The PBX nodes whose link is down (PbxLink)."""
        return frozenset(self._pbx_down)

    def node_of(self, call_id: str) -> str:
        """The PBX node the call is on (acd.model.call_node)."""
        return call_node(call_id, self.config.default_node)

    def _ring_no_answer(self, call: Call, now: float) -> list[Effect]:
        assert call.offered_to is not None
        if _clicked(call):
            return self._drop_click(call, now)
        agent = self._agents[call.offered_to]
        effects = self._take_back(call, agent)
        new, agent_effects = fsm.decide(agent, fsm.RingNoAnswer(call.call_id), now)
        self._agents[agent.agent_id] = new
        return effects + agent_effects

    def _ended(self, call_id: str, now: float) -> list[Effect]:
        call = self._calls.get(call_id)
        if call is None:
            return [] if call_id in self._finished else [Rejected("unknown call", call_id=call_id)]
        if call.state is not CallState.CONNECTED:
            return self._caller_left(call_id, now)
        assert call.offered_to is not None and call.answered_at is not None
        agent = self._agents[call.offered_to]
        wrap_up_s = self.config.wrap_up_s
        new, effects = fsm.decide(agent, fsm.CallEnded(call_id, wrap_up_s), now)
        self._agents[agent.agent_id] = new
        if not _clicked(call):
            self._learn_aht(call.skill, now - call.answered_at + wrap_up_s)
        self._finish(call)
        return effects

    def _transferred(self, event: CallTransferred, now: float) -> list[Effect]:
        call = self._calls.get(event.call_id)
        if call is None or call.state is not CallState.CONNECTED or call.offered_to is None:
            return [Rejected("no such connected call", call_id=event.call_id)]
        if call.callback_number is not None:
            # the customer is on an outbound leg the CTI does not hold as the call's channel
            return [Rejected("a callback cannot be transferred", call_id=event.call_id)]
        if (event.skill is None) == (event.agent_id is None) or event.skill == "":
            return [Rejected("transfer to one skill or one agent", call_id=event.call_id)]
        target = self._agents.get(event.agent_id) if event.agent_id is not None else None
        if event.agent_id is not None and (
                target is None or target.state is not AgentState.READY
                or target.agent_id == call.offered_to):
            return [Rejected("the agent is not ready", event.agent_id, event.call_id)]
        agent = self._agents[call.offered_to]
        new, effects = fsm.decide(agent, fsm.CallEnded(call.call_id, self.config.wrap_up_s), now)
        # the call lives on with someone else: the wrap-up is of this agent's part only
        new = replace(new, call_id=None)
        self._agents[agent.agent_id] = new
        effects = [AgentStateChanged(new) if isinstance(e, AgentStateChanged) else e
                   for e in effects]
        assert call.answered_at is not None
        self._learn_aht(call.skill, now - call.answered_at + self.config.wrap_up_s)
        moved = replace(call, skill=event.skill or call.skill, state=CallState.WAITING,
                        offered_to=None, offered_at=None, answered_at=None, enqueued_at=now,
                        requeued_front=True, last_announced_at=None)
        if target is not None:
            self._calls[call.call_id] = moved
            return effects + self._offer(moved, target, now)
        self._enqueue(moved)
        return effects

    # consults (咨询转接 and 三方通话)

    def _consult_started(self, event: ConsultStarted, now: float) -> list[Effect]:
        call = self._calls.get(event.call_id)
        if call is None or call.state is not CallState.CONNECTED or call.offered_to is None:
            return [Rejected("no such connected call", call_id=event.call_id)]
        if call.callback_number is not None:
            return [Rejected("a callback cannot be consulted on", call_id=event.call_id)]
        if (event.agent_id is None) == (event.skill is None) or event.skill == "":
            return [Rejected("consult one agent or one skill", call_id=event.call_id)]
        if event.call_id in self._consults:
            if self._consults[event.call_id] == event.agent_id:
                return []  # repeat
            return [Rejected("the call already has a consult", call_id=event.call_id)]
        if event.skill is not None:
            ready = [a for a in self._agents.values() if a.state is AgentState.READY
                     and a.agent_id != call.offered_to]
            # as a fresh call of that skill: no widening to other skills
            chosen = eligible_agents(replace(call, skill=event.skill, enqueued_at=now), ready,
                                     now, self.config)
            if not chosen:
                return [Rejected(f"no agent of skill {event.skill} is ready",
                                 call_id=event.call_id)]
            event = ConsultStarted(event.call_id, agent_id=chosen[0].agent_id)
        assert event.agent_id is not None
        target = self._agents.get(event.agent_id)
        if target is None or target.state is not AgentState.READY \
                or target.agent_id == call.offered_to:
            return [Rejected("the agent is not ready", event.agent_id, event.call_id)]
        effects = self._agent_event(target.agent_id, fsm.NotReady(CONSULT), now)
        if not any(isinstance(e, Rejected) for e in effects):
            self._consults[event.call_id] = target.agent_id
        return effects

    def _consult_ended(self, call_id: str, now: float) -> list[Effect]:
        agent_id = self._consults.pop(call_id, None)
        if agent_id is None:
            return []  # ended already (a repeat, or the call ended first)
        return self._release_consulted(agent_id, now)

    def _release_consulted(self, agent_id: str, now: float) -> list[Effect]:
        agent = self._agents.get(agent_id)
        if agent is None or agent.state is not AgentState.NOT_READY or agent.reason != CONSULT:
            return []  # a supervisor or a logout moved them meanwhile: theirs stands
        return self._agent_event(agent_id, fsm.Ready(), now)

    def _consult_completed(self, event: ConsultCompleted, now: float) -> list[Effect]:
        call = self._calls.get(event.call_id)
        agent_id = self._consults.get(event.call_id)
        if call is None or call.state is not CallState.CONNECTED or call.offered_to is None \
                or agent_id is None:
            return [Rejected("no consult on a connected call", call_id=event.call_id)]
        taker = self._agents.get(agent_id)
        if taker is None or taker.state is not AgentState.NOT_READY or taker.reason != CONSULT:
            return [Rejected("the consulted agent is no longer on the consult", agent_id,
                             event.call_id)]
        del self._consults[event.call_id]
        first = self._agents[call.offered_to]
        new, effects = fsm.decide(first, fsm.CallEnded(call.call_id, self.config.wrap_up_s), now)
        # the call lives on with the other agent: the wrap-up is of this agent's part only
        new = replace(new, call_id=None)
        self._agents[first.agent_id] = new
        effects = [AgentStateChanged(new) if isinstance(e, AgentStateChanged) else e
                   for e in effects]
        assert call.answered_at is not None
        self._learn_aht(call.skill, now - call.answered_at + self.config.wrap_up_s)
        taken = replace(taker, state=AgentState.ON_CALL, reason="", state_since=now,
                        call_id=call.call_id, calls_handled=taker.calls_handled + 1)
        self._agents[taker.agent_id] = taken
        self._calls[call.call_id] = replace(call, offered_to=taker.agent_id, answered_at=now)
        return [*effects, AgentStateChanged(taken)]

    def _settle_consults(self, now: float) -> list[Effect]:
        """Consults whose call ended, or is no longer connected with its agent, or whose
        consulted agent was moved by someone else: over; the agent ready again."""
        effects: list[Effect] = []
        for call_id, agent_id in list(self._consults.items()):
            call = self._calls.get(call_id)
            agent = self._agents.get(agent_id)
            alive = call is not None and call.state is CallState.CONNECTED \
                and agent is not None and agent.state is AgentState.NOT_READY \
                and agent.reason == CONSULT
            if not alive:
                del self._consults[call_id]
                effects += self._release_consulted(agent_id, now)
        return effects

    def _callback_requested(self, event: CallbackRequested, now: float) -> list[Effect]:
        call = self._calls.get(event.call_id)
        if not self.config.callback_enabled:
            return [Rejected("callbacks are disabled", call_id=event.call_id)]
        if call is None:
            return [Rejected("unknown call", call_id=event.call_id)]
        if not event.number:
            return [Rejected("a callback needs a number", call_id=event.call_id)]
        if call.callback_number is not None:
            if call.callback_number == event.number:
                return []  # repeat
            return [Rejected("callback already requested", call_id=event.call_id)]
        if call.state is not CallState.WAITING:
            return [Rejected(f"call is {call.state.value}", call_id=event.call_id)]
        # same enqueued_at, priority and flags: the same place in the queue
        self._calls[call.call_id] = replace(
            call, state=CallState.CALLBACK, callback_number=event.number
        )
        late = now - call.enqueued_at > self.config.service_level_s
        self._count(call.skill, callbacks_requested=1, callbacks_after_sl=int(late))
        return []

    def _click_to_call(self, event: ClickToCall, now: float) -> list[Effect]:
        cid, agent = event.call_id, self._agents.get(event.agent_id)
        if agent is None or agent.state is AgentState.LOGGED_OUT:
            return [Rejected("the agent is not logged in", event.agent_id, cid)]
        if not cid or not event.number:
            return [Rejected("a click-to-call needs a call_id and a number", event.agent_id, cid)]
        if cid in self._calls or cid in self._finished:
            if agent.call_id == cid:
                return []  # repeat
            return [Rejected("duplicate call", event.agent_id, cid)]
        if agent.state not in (AgentState.READY, AgentState.NOT_READY, AgentState.WRAP_UP):
            return [Rejected(f"the agent is {agent.state.value}", event.agent_id, cid)]
        if agent.agent_id in self._consults.values():
            return [Rejected("the agent is on a consult", event.agent_id, cid)]
        if agent.phone_offline or agent.seat in self._unreachable:
            return [Rejected("the seat's phone is offline", event.agent_id, cid)]
        new, effects = fsm.decide(agent, fsm.Dial(cid), now)
        if any(isinstance(e, Rejected) for e in effects):
            return effects
        self._agents[agent.agent_id] = new
        # skill "": the call is no skill's (_answered and _ended leave the figures alone)
        self._calls[cid] = Call(call_id=cid, caller=event.number, skill="", enqueued_at=now,
                                account=event.account, flags=frozenset({CLICK_TO_CALL}),
                                state=CallState.OFFERED, offered_to=agent.agent_id,
                                offered_at=now, attempts=1, callback_number=event.number)
        return [*effects,
                CallbackDial(cid, agent.agent_id, agent.seat, event.number, event.account, 1,
                             click_to_call=True),
                StartTimer(ring_timer(cid), now + self.config.ring_timeout_s)]

    def _drop_click(self, call: Call, now: float) -> list[Effect]:
        """A click-to-call whose seat never answered: gone, and its agent ready again."""
        effects: list[Effect] = []
        agent = self._agents.get(call.offered_to) if call.offered_to else None
        if agent is not None and agent.call_id == call.call_id \
                and agent.state is AgentState.RESERVED:
            effects += self._release_ring(call, agent)
            new, agent_effects = fsm.decide(agent, fsm.OfferCancelled(call.call_id), now)
            self._agents[agent.agent_id] = new
            effects += agent_effects
        else:
            effects.append(CancelTimer(ring_timer(call.call_id)))
        self._finish(call)
        return effects

    def _tick(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        for agent in list(self._agents.values()):
            due = agent.state is AgentState.WRAP_UP
            if due and now >= agent.state_since + self.config.wrap_up_s:
                effects += self._agent_event(agent.agent_id, fsm.WrapUpDone(), now)
        for call in list(self._calls.values()):
            if call.state is not CallState.OFFERED or call.offered_at is None:
                continue
            if now >= call.offered_at + self.config.ring_timeout_s:
                effects += self._ring_no_answer(call, now)
        effects += self._dispatch(now)
        for call in list(self._calls.values()):
            if call.state is not CallState.WAITING:
                continue  # callbacks: nobody on the line to hear it
            deflect = self._deflect(call.call_id, now)
            if deflect is not None:
                effects.append(deflect)  # instead of this tick's announcement, if one was due
                continue
            last = (
                call.last_announced_at if call.last_announced_at is not None else call.enqueued_at
            )
            if now - last >= self.config.announce_every_s:
                effects.append(self._announce(call.call_id, now))
        if self._last_stats_at is None or now - self._last_stats_at >= self.config.stats_every_s:
            self._last_stats_at = now
            effects += self.queue_stats(now)
        return effects

    # routing

    def _dispatch(self, now: float) -> list[Effect]:
        """Offer queued calls, best first, to the best eligible ready agent each (none of the
        calls on a PBX node whose link is down)."""
        ready = [a for a in self._agents.values() if a.state is AgentState.READY]
        if not ready:
            return []
        queued = [self._calls[cid] for q in self._queues.values() for cid in q
                  if not self._pbx_down or self.node_of(cid) not in self._pbx_down]
        queued.sort(key=lambda c: call_order(c, self.config))
        effects: list[Effect] = []
        for call in queued:
            candidates = eligible_agents(call, ready, now, self.config)
            if not candidates:
                continue
            agent = candidates[0]
            ready.remove(agent)
            effects += self._offer(call, agent, now)
            if not ready:
                break
        return effects

    def _offer(self, call: Call, agent: Agent, now: float) -> list[Effect]:
        new, effects = fsm.decide(agent, fsm.Offer(call.call_id), now)
        self._agents[agent.agent_id] = new
        self._dequeue(call)
        call = replace(
            call,
            state=CallState.OFFERED,
            offered_to=agent.agent_id,
            offered_at=now,
            attempts=call.attempts + 1,
        )
        self._calls[call.call_id] = call
        ring: Effect
        if call.callback_number is not None:
            ring = CallbackDial(
                call.call_id,
                agent.agent_id,
                agent.seat,
                call.callback_number,
                call.account,
                call.attempts,
            )
        else:
            ring = RingAgent(
                agent.agent_id,
                agent.seat,
                call.call_id,
                call.caller,
                call.account,
                call.skill,
                call.flags,
                call.attempts,
            )
        return [
            *effects,
            ring,
            StartTimer(ring_timer(call.call_id), now + self.config.ring_timeout_s),
        ]

    def _take_back(self, call: Call, agent: Agent) -> list[Effect]:
        """Stop the ring and put the call back at the front of its queue (agent untouched)."""
        effects = self._release_ring(call, agent)
        queued = CallState.CALLBACK if call.callback_number is not None else CallState.WAITING
        self._enqueue(
            replace(call, state=queued, offered_to=None, offered_at=None, requeued_front=True)
        )
        return effects

    def _release_ring(self, call: Call, agent: Agent) -> list[Effect]:
        return [
            CancelRing(agent.agent_id, agent.seat, call.call_id),
            CancelTimer(ring_timer(call.call_id)),
        ]

    def _announce(self, call_id: str, now: float) -> Announce:
        self._calls[call_id] = replace(self._calls[call_id], last_announced_at=now)
        position = self.position(call_id)
        assert position is not None
        ewt = self.ewt(call_id)
        callback = (self.config.callback_enabled and ewt is not None
                    and ewt >= self._handling.callback_offer_wait_s)
        return Announce(call_id, position, ewt, callback)

    def _deflect(self, call_id: str, now: float) -> Deflect | None:
        """Deflect a waiting caller whose expected wait passed the threshold, once per call
        (the announcement clock restarts: the regular one follows announce_every_s later)."""
        threshold = self._handling.ewt_deflect_s
        call = self._calls[call_id]
        if threshold is None or call.deflected or call.state is not CallState.WAITING:
            return None
        ewt = self.ewt(call_id)
        if ewt is None or ewt <= threshold:
            return None  # an unknown wait (no agent with the skill) is not named
        self._calls[call_id] = replace(call, deflected=True, last_announced_at=now)
        return Deflect(call_id, ewt, self.config.callback_enabled)

    def _handling_changed(self, event: HandlingChanged) -> list[Effect]:
        cap, offer, deflect = event.queue_cap, event.callback_offer_wait_s, event.ewt_deflect_s
        if (cap is not None and cap < 1) or not offer >= 0 \
                or (deflect is not None and not deflect > 0):
            return [Rejected(f"invalid handling {event!r}")]
        self._handling = event
        return []

    # bookkeeping

    def _enqueue(self, call: Call) -> None:
        self._calls[call.call_id] = call
        queue = self._queues.setdefault(call.skill, [])
        insort(queue, call.call_id, key=lambda cid: call_order(self._calls[cid], self.config))

    def _dequeue(self, call: Call) -> None:
        queue = self._queues.get(call.skill)
        if queue is not None and call.call_id in queue:
            queue.remove(call.call_id)
            if not queue:
                del self._queues[call.skill]

    def _finish(self, call: Call) -> None:
        """The call ended (or was abandoned/forgotten): drop it, remember its id."""
        self._dequeue(call)
        del self._calls[call.call_id]
        self._remember(call.call_id)

    def _remember(self, call_id: str) -> None:
        self._finished[call_id] = None
        while len(self._finished) > FINISHED_MEMORY:
            del self._finished[next(iter(self._finished))]

    def _count(self, skill: str, **increments: int) -> None:
        current = self.counters(skill)
        self._counters[skill] = replace(
            current, **{k: getattr(current, k) + v for k, v in increments.items()}
        )

    def _learn_aht(self, skill: str, handle_s: float) -> None:
        old = self.aht(skill)
        self._aht[skill] = old + self.config.aht_smoothing * (handle_s - old)

    # -------------------------------------------------------------------------- persistence

    def snapshot(self) -> Snapshot:
        return Snapshot(
            agents=tuple(self._agents.values()),
            calls=tuple(self._calls.values()),
            aht_s=dict(self._aht),
            counters=dict(self._counters),
            last_stats_at=self._last_stats_at,
            finished=tuple(self._finished),
            unreachable_seats=tuple(sorted(self._unreachable)),
        )

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole state with the snapshot's; ValueError if it is inconsistent."""
        self._agents = {a.agent_id: a for a in snapshot.agents}
        self._calls = {}
        self._queues = {}
        for call in snapshot.calls:
            if call.state in QUEUED_CALL_STATES:
                self._enqueue(call)
            else:
                self._calls[call.call_id] = call
        self._aht = dict(snapshot.aht_s)
        self._counters = dict(snapshot.counters)
        self._last_stats_at = snapshot.last_stats_at
        self._finished = dict.fromkeys(snapshot.finished[-FINISHED_MEMORY:])
        self._unreachable = set(snapshot.unreachable_seats)
        try:
            self.assert_invariants()
        except AssertionError as e:
            raise ValueError(f"inconsistent ACD snapshot: {e}") from None

    # ---------------------------------------------------------------------------- invariants

    def assert_invariants(self) -> None:
        """Raise AssertionError naming the first broken invariant (for tests and restore)."""
        problems = list(self._invariant_problems())
        if problems:
            raise AssertionError("; ".join(problems))

    def _invariant_problems(self) -> list[str]:
        problems: list[str] = []
        holders: dict[str, str] = {}  # call_id -> agent_id holding it (reserved/on_call)
        for agent in self._agents.values():
            if agent.state is not AgentState.LOGGED_OUT \
                    and agent.phone_offline != (agent.seat in self._unreachable):
                problems.append(f"{agent.agent_id} phone_offline={agent.phone_offline} but "
                                f"{agent.seat} is {'un' * (agent.seat in self._unreachable)}"
                                "reachable")
            if agent.state is AgentState.READY and agent.phone_offline:
                problems.append(f"{agent.agent_id} ready at {agent.seat}, whose phone is gone")
            busy = agent.state in (AgentState.RESERVED, AgentState.ON_CALL)
            if not busy:
                if agent.state is not AgentState.WRAP_UP and agent.call_id is not None:
                    problems.append(f"{agent.agent_id} is {agent.state} with call {agent.call_id}")
                if agent.state is AgentState.WRAP_UP and agent.call_id in self._calls:
                    problems.append(f"{agent.agent_id} in wrap-up of live call {agent.call_id}")
                continue
            if agent.call_id is None:
                problems.append(f"{agent.agent_id} is {agent.state} without a call")
                continue
            if agent.call_id in holders:
                problems.append(f"{agent.call_id} held by {holders[agent.call_id]} and {agent}")
            holders[agent.call_id] = agent.agent_id
            call = self._calls.get(agent.call_id)
            want = CallState.OFFERED if agent.state is AgentState.RESERVED else CallState.CONNECTED
            if call is None or call.state is not want or call.offered_to != agent.agent_id:
                problems.append(f"{agent.agent_id} {agent.state} but its call is {call}")
        offered_to: dict[str, str] = {}
        for call in self._calls.values():
            if call.state not in LIVE_CALL_STATES:
                problems.append(f"{call.call_id} is {call.state} but still live")
            if call.state in QUEUED_CALL_STATES:
                if call.offered_to is not None:
                    problems.append(f"queued {call.call_id} is offered to {call.offered_to}")
                homes = [s for s, q in self._queues.items() for cid in q if cid == call.call_id]
                if homes != [call.skill]:
                    problems.append(f"queued {call.call_id} ({call.skill}) is in queues {homes}")
                if (call.state is CallState.CALLBACK) != (call.callback_number is not None):
                    problems.append(f"{call.call_id} callback state/number disagree")
                continue
            if call.offered_to is None:
                problems.append(f"{call.call_id} is {call.state} without an agent")
                continue
            if call.offered_to in offered_to:
                problems.append(f"{call.offered_to} has {offered_to[call.offered_to]} and {call}")
            offered_to[call.offered_to] = call.call_id
            holder = self._agents.get(call.offered_to)
            if holder is None or holder.call_id != call.call_id:
                problems.append(f"{call.call_id} with {call.offered_to} who has {holder}")
        for skill, queue in self._queues.items():
            for cid in queue:
                call = self._calls.get(cid)
                if call is None or call.state not in QUEUED_CALL_STATES or call.skill != skill:
                    problems.append(f"queue {skill} holds {cid}: {call}")
            if len(set(queue)) != len(queue):
                problems.append(f"queue {skill} has duplicates")
            keys = [call_order(self._calls[c], self.config) for c in queue if c in self._calls]
            if keys != sorted(keys):
                problems.append(f"queue {skill} out of order")
            if not queue:
                problems.append(f"empty queue {skill} kept")
        return problems
