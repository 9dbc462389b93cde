"""Routing functions: eligibility and widening, agent order, call order, estimated wait."""

from __future__ import annotations

import pytest

from acd.model import (
    ANY,
    IMPORTANT,
    REPEAT_FAULT,
    AcdConfig,
    Agent,
    AgentState,
    Call,
    CallState,
    WidenStep,
)
from acd.routing import (
    capacity,
    effective_priority,
    eligible_agents,
    estimated_wait,
    next_call_for,
    widened_skills,
)

S = AgentState
CONFIG = AcdConfig()


def agent(
    agent_id: str,
    skills: dict[str, int],
    state: AgentState = S.READY,
    idle_since: float = 0.0,
) -> Agent:
    return Agent(agent_id, f"seat-{agent_id}", skills, state, idle_since=idle_since)


def call(
    call_id: str,
    skill: str = "general",
    enqueued_at: float = 0.0,
    priority: int = 0,
    flags: frozenset[str] = frozenset(),
    state: CallState = CallState.WAITING,
    front: bool = False,
) -> Call:
    return Call(
        call_id,
        "13800000000",
        skill,
        enqueued_at,
        priority=priority,
        flags=flags,
        state=state,
        requeued_front=front,
    )


def ids(agents: list[Agent]) -> list[str]:
    return [a.agent_id for a in agents]


def test_only_ready_agents_with_the_skill() -> None:
    agents = [
        agent("a1", {"billing": 3}),
        agent("a2", {"general": 3}, S.NOT_READY),
        agent("a3", {"general": 1}, S.ON_CALL),
        agent("a4", {"general": 1, "billing": 2}),
        agent("a5", {"general": 2}, S.WRAP_UP),
    ]
    assert ids(eligible_agents(call("c"), agents, 0.0, CONFIG)) == ["a4"]


def test_longest_idle_first_then_proficiency_then_id() -> None:
    agents = [
        agent("a1", {"general": 1}, idle_since=50.0),
        agent("a2", {"general": 2}, idle_since=10.0),
        agent("a3", {"general": 5}, idle_since=50.0),
        agent("a0", {"general": 5}, idle_since=50.0),
        agent("a4", {"general": 5}, idle_since=90.0),
    ]
    assert ids(eligible_agents(call("c"), agents, 100.0, CONFIG)) == ["a2", "a0", "a3", "a1", "a4"]


@pytest.mark.parametrize(
    ("waited", "expected"),
    [
        (0.0, frozenset({"repair"})),
        (60.0, frozenset({"repair"})),  # "more than 60 s"
        (60.5, frozenset({"repair", "general"})),
        (120.0, frozenset({"repair", "general"})),
        (120.5, ANY),
        (3600.0, ANY),
    ],
)
def test_default_widening_of_repair(waited: float, expected: object) -> None:
    assert (
        widened_skills(call("c", "repair", enqueued_at=100.0), 100.0 + waited, CONFIG) == expected
    )


def test_other_skills_do_not_widen_by_default() -> None:
    assert widened_skills(call("c", "general"), 10_000.0, CONFIG) == frozenset({"general"})


def test_widened_agents_join_in_longest_idle_order() -> None:
    repair_call = call("c", "repair")
    agents = [
        agent("general", {"general": 4}, idle_since=5.0),
        agent("billing", {"billing": 4}, idle_since=1.0),
        agent("repair", {"repair": 1}, idle_since=9.0),
    ]
    assert ids(eligible_agents(repair_call, agents, 30.0, CONFIG)) == ["repair"]
    assert ids(eligible_agents(repair_call, agents, 61.0, CONFIG)) == ["general", "repair"]
    everyone = eligible_agents(repair_call, agents, 121.0, CONFIG)
    assert ids(everyone) == ["billing", "general", "repair"]


def test_custom_widening_steps_accumulate() -> None:
    config = AcdConfig(
        widen_after_s={"complaint": ((10.0, frozenset({"general"})), (20.0, frozenset({"vip"})))}
    )
    c = call("c", "complaint")
    assert widened_skills(c, 25.0, config) == frozenset({"complaint", "general", "vip"})


@pytest.mark.parametrize(
    "steps",
    [
        ((60.0, frozenset({"general"})), (30.0, ANY)),
        ((-1.0, ANY),),
        ((10.0, frozenset()),),
    ],
)
def test_bad_widening_fails_at_startup(steps: tuple[WidenStep, ...]) -> None:
    with pytest.raises(ValueError, match="widen_after_s"):
        AcdConfig(widen_after_s={"repair": steps})


def test_important_and_repeat_fault_go_before_consultations() -> None:
    consult = call("consult", "general", enqueued_at=0.0)
    important = call("important", "general", enqueued_at=50.0, flags=frozenset({IMPORTANT}))
    repeat = call("repeat", "general", enqueued_at=40.0, flags=frozenset({REPEAT_FAULT}))
    a = agent("a1", {"general": 3})
    calls = [consult, repeat, important]
    assert effective_priority(important, CONFIG) == 10
    assert effective_priority(repeat, CONFIG) == 5
    picked = []
    while calls:
        nxt = next_call_for(a, calls, 60.0, CONFIG)
        assert nxt is not None
        picked.append(nxt.call_id)
        calls.remove(nxt)
    assert picked == ["important", "repeat", "consult"]


def test_front_requeued_before_longer_waiting_same_priority() -> None:
    a = agent("a1", {"general": 3, "repair": 3})
    older = call("older", "repair", enqueued_at=0.0)
    back = call("back", "general", enqueued_at=30.0, front=True)
    higher = call("higher", "general", enqueued_at=40.0, priority=1)
    assert next_call_for(a, [older, back], 45.0, CONFIG) == back
    assert next_call_for(a, [older, back, higher], 45.0, CONFIG) == higher


def test_next_call_skips_calls_not_queued_or_not_eligible() -> None:
    a = agent("a1", {"general": 3})
    calls = [
        call("offered", state=CallState.OFFERED),
        call("connected", state=CallState.CONNECTED),
        call("billing", "billing"),
        call("repair-young", "repair", enqueued_at=50.0),
    ]
    assert next_call_for(a, calls, 100.0, CONFIG) is None
    cb = call("cb", state=CallState.CALLBACK, enqueued_at=90.0)
    assert next_call_for(a, [*calls, cb], 100.0, CONFIG) == cb
    # the repair call widened to general after 60 s and is older than the callback
    assert next_call_for(a, [*calls, cb], 111.0, CONFIG) == calls[3]


def test_next_call_for_an_agent_who_is_not_ready_is_none() -> None:
    busy = agent("a1", {"general": 3}, S.WRAP_UP)
    assert next_call_for(busy, [call("c")], 0.0, CONFIG) is None


def test_estimated_wait_from_capacity_and_aht() -> None:
    agents = [
        agent("a1", {"general": 3}),
        agent("a2", {"general": 3}, S.ON_CALL),
        agent("a3", {"general": 3}, S.WRAP_UP),
        agent("a4", {"general": 3}, S.RESERVED),
        agent("a5", {"general": 3}, S.NOT_READY),  # on a break: no capacity
        agent("a6", {"general": 3}, S.LOGGED_OUT),
        agent("a7", {"billing": 3}),
    ]
    assert capacity("general", agents) == 4
    assert estimated_wait(1, "general", agents, 180.0) == 45.0
    assert estimated_wait(6, "general", agents, 180.0) == 270.0
    assert estimated_wait(1, "repair", agents, 180.0) is None
    with pytest.raises(ValueError):
        estimated_wait(0, "general", agents, 180.0)
