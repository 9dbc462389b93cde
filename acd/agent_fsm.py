"""Agent state machine: a hand-written transition table and decide(agent, event, now); and
what the seat's phone going offline or coming back does to the agent (phone(agent, online, now)).

The phone. A seat whose phone is not registered cannot be rung, so its agent is never ready
(`Agent.phone_offline`). Wherever the table would make such an agent ready (Ready, the end of a
wrap-up, a ring the caller cancelled, a supervisor's force) or start a wrap-up after a call, the
agent is not_ready 'phone_offline' instead; a ring that went unanswered at a dead phone is
'phone_offline' too, not 'rona' (the agent could not answer). An agent who is ready or in
wrap-up when the phone goes is set not_ready 'phone_offline' at once; a ringing or connected
agent stays as they are (that call's own answer, ring-out or hangup decides, then the rule
above). When the phone is back, an agent still not_ready 'phone_offline' goes back to ready:
they did not choose not-ready, the phone did. Any other reason is the agent's (or a
supervisor's) and stays. A login at a dead seat is allowed and lands in not_ready
'phone_offline', so the desktop says why at once; when the phone is back that agent is
not_ready 'login', as after any login, since they have not said ready yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from acd.model import (
    MAX_PROFICIENCY,
    MIN_PROFICIENCY,
    Agent,
    AgentState,
    AgentStateChanged,
    CancelTimer,
    Effect,
    Rejected,
    StartTimer,
    wrap_up_timer,
)

S = AgentState

# ------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Login:
    seat: str
    skills: Mapping[str, int]
    phone_online: bool = True  # the seat's phone, as the engine last heard of it


@dataclass(frozen=True)
class Logout:
    pass


@dataclass(frozen=True)
class Ready:
    pass


@dataclass(frozen=True)
class NotReady:
    reason: str


@dataclass(frozen=True)
class Offer:
    call_id: str


@dataclass(frozen=True)
class Dial:
    """The agent places a call from the desktop (click-to-call): their seat rings first."""

    call_id: str


@dataclass(frozen=True)
class Answered:
    call_id: str


@dataclass(frozen=True)
class RingNoAnswer:
    call_id: str


@dataclass(frozen=True)
class OfferCancelled:
    """The offer went away through no fault of the agent (caller hung up, supervisor)."""

    call_id: str


@dataclass(frozen=True)
class CallEnded:
    call_id: str
    wrap_up_s: float


@dataclass(frozen=True)
class WrapUpDone:
    pass


@dataclass(frozen=True)
class WrapUp:
    """The agent asks for (more) after-call work: 话后处理 for wrap_up_s from now."""

    wrap_up_s: float


@dataclass(frozen=True)
class Force:
    """A supervisor (值长/班长) sets the state, whatever it was; the engine settles the call."""

    state: AgentState
    reason: str = "supervisor"


Event = (
    Login
    | Logout
    | Ready
    | NotReady
    | Offer
    | Dial
    | Answered
    | RingNoAnswer
    | OfferCancelled
    | CallEnded
    | WrapUpDone
    | WrapUp
    | Force
)

RONA = "rona"
LOGIN_REASON = "login"
PHONE_OFFLINE = "phone_offline"
FORCE_TARGETS = frozenset({S.LOGGED_OUT, S.READY, S.NOT_READY})

# -------------------------------------------------------------------------------------- table


@dataclass(frozen=True)
class Rule:
    target: AgentState | None  # None: the state named by the event (Force)
    why: str


FORCE = "supervisor: to logged_out, ready or not_ready"

# Anything not in this table is rejected with the agent unchanged. Rows whose target equals the
# source are idempotent repeats (Asterisk and desktops duplicate events): no change, no effects.
TABLE: dict[tuple[AgentState, str], Rule] = {
    (S.LOGGED_OUT, "Login"): Rule(S.NOT_READY, "签入; reason 'login' until the agent says ready"),
    (S.LOGGED_OUT, "Logout"): Rule(S.LOGGED_OUT, "repeat: no change"),
    (S.LOGGED_OUT, "Force"): Rule(None, "only to logged_out (no change): there is no seat"),
    (S.NOT_READY, "Ready"): Rule(S.READY, "就绪; idle_since = now"),
    (S.NOT_READY, "NotReady"): Rule(S.NOT_READY, "new reason code (same reason: no change)"),
    (S.NOT_READY, "Logout"): Rule(S.LOGGED_OUT, "签出"),
    (S.NOT_READY, "WrapUp"): Rule(S.WRAP_UP, "话后处理 on request, back to ready after it"),
    (S.NOT_READY, "Force"): Rule(None, FORCE),
    (S.NOT_READY, "Dial"): Rule(S.RESERVED, "拨打客户: the agent's own seat rings first"),
    (S.READY, "Ready"): Rule(S.READY, "repeat: no change, keeps its idle position"),
    (S.READY, "NotReady"): Rule(S.NOT_READY, "小休 with a reason code"),
    (S.READY, "Logout"): Rule(S.LOGGED_OUT, "签出"),
    (S.READY, "Offer"): Rule(S.RESERVED, "振铃: the seat rings with one call"),
    (S.READY, "WrapUp"): Rule(S.WRAP_UP, "话后处理 on request (notes after an earlier call)"),
    (S.READY, "Force"): Rule(None, FORCE),
    (S.READY, "Dial"): Rule(S.RESERVED, "拨打客户: out of routing while the seat rings"),
    (S.RESERVED, "Answered"): Rule(S.ON_CALL, "通话中; calls_handled + 1"),
    (S.RESERVED, "RingNoAnswer"): Rule(S.NOT_READY, "reason 'rona'; the call goes back in front"),
    (S.RESERVED, "OfferCancelled"): Rule(S.READY, "caller gone: ready, keeps its idle position"),
    (S.RESERVED, "Force"): Rule(None, FORCE + "; the engine requeues the call in front"),
    (S.ON_CALL, "Answered"): Rule(S.ON_CALL, "repeat: no change"),
    (S.ON_CALL, "CallEnded"): Rule(S.WRAP_UP, "话后处理; StartTimer(wrapup) at now + wrap_up_s"),
    (S.ON_CALL, "Force"): Rule(None, FORCE + "; the engine forgets the call (lost hangup)"),
    (S.WRAP_UP, "CallEnded"): Rule(S.WRAP_UP, "repeat: no change"),
    (S.WRAP_UP, "WrapUpDone"): Rule(S.READY, "wrap-up time over; idle_since = now"),
    (S.WRAP_UP, "WrapUp"): Rule(S.WRAP_UP, "more after-call work: the wrap-up time starts again"),
    (S.WRAP_UP, "Ready"): Rule(S.READY, "wrap-up finished early; CancelTimer(wrapup)"),
    (S.WRAP_UP, "NotReady"): Rule(S.NOT_READY, "break after the call; CancelTimer(wrapup)"),
    (S.WRAP_UP, "Logout"): Rule(S.LOGGED_OUT, "签出 after the call; CancelTimer(wrapup)"),
    (S.WRAP_UP, "Force"): Rule(None, FORCE + "; CancelTimer(wrapup)"),
    (S.WRAP_UP, "Dial"): Rule(S.RESERVED, "拨打客户 after a call; CancelTimer(wrapup)"),
}


def describe() -> str:
    """The table as a Markdown table, for documentation."""
    lines = ["| from | event | to | why |", "|---|---|---|---|"]
    for (state, event), rule in TABLE.items():
        target = rule.target.value if rule.target is not None else "(event.state)"
        lines.append(f"| {state.value} | {event} | {target} | {rule.why} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- decide


def decide(agent: Agent, event: Event, now: float) -> tuple[Agent, list[Effect]]:
    """The agent after `event` and the effects; an event the table does not allow (or whose
    call_id is not the agent's call) leaves the agent unchanged with one Rejected effect."""
    name = type(event).__name__
    rule = TABLE.get((agent.state, name))
    if rule is None:
        return agent, [_rejected(agent, event, f"{name} not allowed while {agent.state.value}")]
    problem = _guard(agent, event)
    if problem is not None:
        return agent, [_rejected(agent, event, problem)]
    new = _held_by_phone(agent, _next(agent, event, now), event, now)
    if new.ready_on_phone and new.reason != PHONE_OFFLINE:
        new = replace(new, ready_on_phone=False)  # meaningful only while phone_offline
    effects: list[Effect] = []
    if new == agent:
        return agent, effects
    effects.append(AgentStateChanged(new))
    left_wrap_up = agent.state is S.WRAP_UP and new.state is not S.WRAP_UP
    if left_wrap_up and not isinstance(event, WrapUpDone):
        effects.append(CancelTimer(wrap_up_timer(agent.agent_id)))
    if new.state is S.WRAP_UP and agent.state is not S.WRAP_UP and isinstance(event, CallEnded):
        effects.append(StartTimer(wrap_up_timer(agent.agent_id), now + event.wrap_up_s))
    if isinstance(event, WrapUp):  # on request, or again: the timer (re)starts now
        effects.append(StartTimer(wrap_up_timer(agent.agent_id), now + event.wrap_up_s))
    return new, effects


def phone(agent: Agent, online: bool, now: float) -> tuple[Agent, list[Effect]]:
    """The agent after the seat's phone went offline (online=False) or came back, and the
    effects; a repeat changes nothing. See the module docstring for the rules."""
    if agent.state is S.LOGGED_OUT:
        return agent, [Rejected("a logged-out agent has no seat", agent_id=agent.agent_id)]
    if agent.phone_offline == (not online):
        return agent, []  # a repeat
    if not online:
        new = replace(agent, phone_offline=True)
        if agent.state in (S.READY, S.WRAP_UP):
            new = replace(_enter(new, S.NOT_READY, now, PHONE_OFFLINE), ready_on_phone=True)
        # reserved: the ring under way decides (answered: on call; not: phone_offline);
        # on a call: its hangup decides; not_ready: the agent's own reason stays
    else:
        new = replace(agent, phone_offline=False)
        if agent.state is S.NOT_READY and agent.reason == PHONE_OFFLINE:
            # the agent did not choose not-ready, the phone did: give back what it took
            new = (_enter(new, S.READY, now) if agent.ready_on_phone
                   else _enter(new, S.NOT_READY, now, LOGIN_REASON))
    effects: list[Effect] = [AgentStateChanged(new)]
    if agent.state is S.WRAP_UP and new.state is not S.WRAP_UP:
        effects.append(CancelTimer(wrap_up_timer(agent.agent_id)))
    return new, effects


def _held_by_phone(before: Agent, new: Agent, event: Event, now: float) -> Agent:
    """`new` as the table made it, unless the seat's phone is offline and that would make the
    agent ready (or start a wrap-up after a call, or blame them for a ring-out): then not_ready
    'phone_offline', ready again when the phone is back."""
    if not new.phone_offline:
        return new
    after_call = new.state is S.WRAP_UP and isinstance(event, CallEnded) \
        and before.state is S.ON_CALL
    rang_out = isinstance(event, RingNoAnswer) and new.state is S.NOT_READY
    if new.state is not S.READY and not after_call and not rang_out:
        return new
    if before.state is S.NOT_READY and before.reason == PHONE_OFFLINE:
        return replace(before, ready_on_phone=True)  # asked for ready: it comes with the phone
    return replace(_enter(new, S.NOT_READY, now, PHONE_OFFLINE), ready_on_phone=True)


def _rejected(agent: Agent, event: Event, reason: str) -> Rejected:
    call_id = getattr(event, "call_id", None) or agent.call_id
    return Rejected(reason, agent_id=agent.agent_id, call_id=call_id)


def _guard(agent: Agent, event: Event) -> str | None:
    match event:
        case Login(seat=seat, skills=skills):
            if not seat:
                return "login needs a seat"
            for skill, level in skills.items():
                if not skill:
                    return "empty skill name"
                if type(level) is not int or not MIN_PROFICIENCY <= level <= MAX_PROFICIENCY:
                    return f"proficiency of {skill!r} must be {MIN_PROFICIENCY}..{MAX_PROFICIENCY}"
        case NotReady(reason=reason):
            if not reason:
                return "not-ready needs a reason code"
        case Offer(call_id=call_id) | Dial(call_id=call_id):
            if not call_id:
                return "offer needs a call_id"
        case Answered(call_id=c) | RingNoAnswer(call_id=c) | OfferCancelled(call_id=c):
            if c != agent.call_id:
                return f"call {c} is not the agent's call ({agent.call_id})"
        case CallEnded(call_id=c, wrap_up_s=wrap_up_s):
            if c != agent.call_id:
                return f"call {c} is not the agent's call ({agent.call_id})"
            if wrap_up_s < 0:
                return "negative wrap-up time"
        case WrapUp(wrap_up_s=wrap_up_s):
            if wrap_up_s <= 0:
                return "no wrap-up time is configured"
        case Force(state=target, reason=reason):
            if target not in FORCE_TARGETS:
                return f"a supervisor can only force {sorted(FORCE_TARGETS)}, not {target.value}"
            if target is S.NOT_READY and not reason:
                return "not-ready needs a reason code"
            if agent.state is S.LOGGED_OUT and target is not S.LOGGED_OUT:
                return "a logged-out agent has no seat: the agent logs in"
    return None


def _enter(agent: Agent, state: AgentState, now: float, reason: str = "") -> Agent:
    """The agent in a state without a call (logged_out, ready, not_ready) since now."""
    return replace(
        agent,
        state=state,
        reason=reason,
        state_since=now,
        call_id=None,
        seat="" if state is S.LOGGED_OUT else agent.seat,
        idle_since=now if state is S.READY else agent.idle_since,
        phone_offline=agent.phone_offline and state is not S.LOGGED_OUT,
        ready_on_phone=False,
    )


def _next(agent: Agent, event: Event, now: float) -> Agent:
    match event:
        case Login(seat=seat, skills=skills, phone_online=online):
            # a dead phone at login: allowed, and the reason says why the agent cannot be
            # ready (the module docstring)
            entered = _enter(agent, S.NOT_READY, now, LOGIN_REASON if online else PHONE_OFFLINE)
            return replace(entered, seat=seat, skills=dict(skills), phone_offline=not online)
        case Logout():
            return agent if agent.state is S.LOGGED_OUT else _enter(agent, S.LOGGED_OUT, now)
        case Ready() | WrapUpDone():
            return agent if agent.state is S.READY else _enter(agent, S.READY, now)
        case NotReady(reason=reason):
            if agent.state is S.NOT_READY and agent.reason == reason:
                return agent
            return _enter(agent, S.NOT_READY, now, reason)
        case Offer(call_id=call_id) | Dial(call_id=call_id):
            return replace(agent, state=S.RESERVED, reason="", state_since=now, call_id=call_id)
        case Answered():
            if agent.state is S.ON_CALL:
                return agent
            return replace(
                agent, state=S.ON_CALL, state_since=now, calls_handled=agent.calls_handled + 1
            )
        case WrapUp():
            # the call (if any) stays named through wrap-up; the time in state starts now
            return replace(agent, state=S.WRAP_UP, reason="", state_since=now,
                           call_id=agent.call_id if agent.state is S.WRAP_UP else None)
        case RingNoAnswer():
            return _enter(agent, S.NOT_READY, now, RONA)
        case OfferCancelled():
            # not the agent's doing: back to ready in the same longest-idle position
            return replace(agent, state=S.READY, reason="", state_since=now, call_id=None)
        case CallEnded():
            if agent.state is S.WRAP_UP:
                return agent
            # call_id stays through wrap-up: the wrap-up (and its work order) is about that call
            return replace(agent, state=S.WRAP_UP, state_since=now)
        case Force(state=target, reason=reason):
            if target is S.NOT_READY:
                if agent.state is S.NOT_READY and agent.reason == reason:
                    return agent
                return _enter(agent, S.NOT_READY, now, reason)
            if target is agent.state:
                return agent
            return _enter(agent, target, now)
    raise TypeError(f"not an agent event: {event!r}")  # pragma: no cover
