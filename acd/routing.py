"""Routing rules: which agents may take a call, which call an agent takes next, and the EWT.

Skills and widening. A call needs a ready agent with the call's skill. The longer it waits, the
wider the net: `AcdConfig.widen_after_s[skill]` is an ordered list of steps `(seconds, extra)`.
Once the call has waited MORE than `seconds` since it was first queued (`enqueued_at`; a
ring-no-answer or a callback request does not reset it), ready agents having any skill in
`extra` qualify too; `extra == '*'` lets any ready agent take it, whatever its skills. Steps
accumulate. The default widens fault repair (故障报修, skill 'repair') only:

    waited > 60 s   -> 'repair' or 'general' agents
    waited > 120 s  -> any logged-in agent who is ready

Other skills never widen by default: on a storm day the repair agents must stay on repairs.
Widening is re-evaluated on every input (Tick included), so a waiting call reaches a widened
agent on the first Tick after its threshold.

Agent order for a call: longest idle first (`idle_since` ascending, the moment the agent last
became ready), then higher proficiency in the call's skill (a widened agent without it counts 0),
then agent_id. With similar handle times this spreads calls evenly: calls_handled of agents
who stay available differs by at most one.

Call order for an agent: effective priority, highest first (the IVR's priority plus
`AcdConfig.flag_priority` for each flag: important customer +10, VIP number +8, repeat fault
caller with an open repair order +5), then calls put back at the front after a ring-no-answer,
then longest waiting (`enqueued_at`), then call_id. A callback keeps its original
`enqueued_at`, so it keeps its place.

Estimated wait (EWT) for the caller at `position` (1 = next) in a skill queue: position x AHT /
capacity, where capacity is the number of agents logged in with the skill and not in not_ready
(ready, ringing, on a call or in wrap-up: they will take a call within about one AHT), and AHT
is the skill's moving average of talk time + wrap-up. No capacity: None (unknown, not zero).
"""

from __future__ import annotations

from collections.abc import Iterable

from acd.model import (
    ANY,
    QUEUED_CALL_STATES,
    AcdConfig,
    Agent,
    AgentState,
    Call,
    WidenTo,
)

CallOrder = tuple[int, int, float, str]


def effective_priority(call: Call, config: AcdConfig) -> int:
    return call.priority + sum(config.flag_priority.get(flag, 0) for flag in call.flags)


def call_order(call: Call, config: AcdConfig) -> CallOrder:
    """Sort key of a queued call: smaller is served first."""
    front = 0 if call.requeued_front else 1
    return (-effective_priority(call, config), front, call.enqueued_at, call.call_id)


def widened_skills(call: Call, now: float, config: AcdConfig) -> WidenTo:
    """The skills an agent may have to take this call now, or '*' for any."""
    waited = now - call.enqueued_at
    skills = {call.skill}
    for after_s, extra in config.widen_after_s.get(call.skill, ()):
        if not waited > after_s:
            break
        if isinstance(extra, str):
            return ANY
        skills |= extra
    return frozenset(skills)


def can_serve(agent: Agent, call: Call, now: float, config: AcdConfig) -> bool:
    """Whether the agent's skills qualify for the call now (its state is not considered)."""
    skills = widened_skills(call, now, config)
    return isinstance(skills, str) or not skills.isdisjoint(agent.skills)


def eligible_agents(
    call: Call, agents: Iterable[Agent], now: float, config: AcdConfig
) -> list[Agent]:
    """Ready agents who may take the call now, best first."""
    skills = widened_skills(call, now, config)
    ready = [
        a
        for a in agents
        if a.state is AgentState.READY
        and (isinstance(skills, str) or not skills.isdisjoint(a.skills))
    ]
    return sorted(ready, key=lambda a: (a.idle_since, -a.skills.get(call.skill, 0), a.agent_id))


def next_call_for(
    agent: Agent, calls: Iterable[Call], now: float, config: AcdConfig
) -> Call | None:
    """The queued call this agent should take now, or None (also None if it is not ready)."""
    if agent.state is not AgentState.READY:
        return None
    candidates = [
        c for c in calls if c.state in QUEUED_CALL_STATES and can_serve(agent, c, now, config)
    ]
    return min(candidates, key=lambda c: call_order(c, config), default=None)


def capacity(skill: str, agents: Iterable[Agent]) -> int:
    """Agents logged in with the skill and not in not_ready."""
    away = (AgentState.LOGGED_OUT, AgentState.NOT_READY)
    return sum(1 for a in agents if skill in a.skills and a.state not in away)


def estimated_wait(
    position: int, skill: str, agents: Iterable[Agent], aht_s: float
) -> float | None:
    """Expected seconds until the caller at `position` (1 = next) is offered; None: unknown."""
    if position < 1:
        raise ValueError(f"queue positions start at 1, got {position}")
    n = capacity(skill, agents)
    if n == 0:
        return None
    return position * aht_s / n
