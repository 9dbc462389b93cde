"""Agent FSM: every row of the transition table, the rejected transitions and the guards."""

from __future__ import annotations

import pytest

from acd.agent_fsm import (
    FORCE_TARGETS,
    TABLE,
    Answered,
    CallEnded,
    Dial,
    Event,
    Force,
    Login,
    Logout,
    NotReady,
    Offer,
    OfferCancelled,
    Ready,
    RingNoAnswer,
    WrapUp,
    WrapUpDone,
    decide,
    describe,
)
from acd.model import (
    Agent,
    AgentState,
    AgentStateChanged,
    CancelTimer,
    Rejected,
    StartTimer,
    wrap_up_timer,
)

S = AgentState
CALL = "1700000000.1"
NOW = 1000.0

EXAMPLES: dict[str, Event] = {
    "Login": Login("seat07", {"repair": 4, "general": 2}),
    "Logout": Logout(),
    "Ready": Ready(),
    "NotReady": NotReady("lunch"),
    "Offer": Offer(CALL),
    "Dial": Dial(CALL),
    "Answered": Answered(CALL),
    "RingNoAnswer": RingNoAnswer(CALL),
    "OfferCancelled": OfferCancelled(CALL),
    "CallEnded": CallEnded(CALL, 15.0),
    "WrapUpDone": WrapUpDone(),
    "WrapUp": WrapUp(15.0),
    "Force": Force(S.NOT_READY, "meeting"),
}
# rows whose generic example does not fit
ROW_EXAMPLES: dict[tuple[AgentState, str], Event] = {
    (S.LOGGED_OUT, "Force"): Force(S.LOGGED_OUT),
}


def agent_in(state: AgentState) -> Agent:
    with_call = state in (S.RESERVED, S.ON_CALL, S.WRAP_UP)
    return Agent(
        agent_id="a07",
        seat="" if state is S.LOGGED_OUT else "seat07",
        skills={"general": 3},
        state=state,
        reason="break" if state is S.NOT_READY else "",
        state_since=500.0,
        call_id=CALL if with_call else None,
        idle_since=400.0,
        calls_handled=3,
    )


def test_every_event_has_an_example() -> None:
    assert {event for _, event in TABLE} == set(EXAMPLES)


@pytest.mark.parametrize(("state", "event_name"), list(TABLE), ids=lambda v: str(v))
def test_table_row(state: AgentState, event_name: str) -> None:
    rule = TABLE[(state, event_name)]
    event = ROW_EXAMPLES.get((state, event_name), EXAMPLES[event_name])
    before = agent_in(state)
    after, effects = decide(before, event, NOW)

    target = event.state if isinstance(event, Force) else rule.target
    assert after.state is target
    assert not any(isinstance(e, Rejected) for e in effects)
    if after == before:  # an idempotent repeat
        assert effects == []
    else:
        assert effects[0] == AgentStateChanged(after)
        assert after.state_since == NOW
    if after.state in (S.LOGGED_OUT, S.READY, S.NOT_READY):
        assert after.call_id is None
    if after.state is S.LOGGED_OUT:
        assert after.seat == ""


@pytest.mark.parametrize(
    ("state", "event_name"),
    [(s, e) for s in AgentState for e in EXAMPLES if (s, e) not in TABLE],
    ids=lambda v: str(v),
)
def test_transitions_not_in_the_table_are_rejected(state: AgentState, event_name: str) -> None:
    before = agent_in(state)
    after, effects = decide(before, EXAMPLES[event_name], NOW)
    assert after is before
    assert len(effects) == 1 and isinstance(effects[0], Rejected)
    assert effects[0].agent_id == "a07"
    assert event_name in effects[0].reason


def test_repeats_are_no_ops() -> None:
    # NotReady with a new reason and WrapUp (the time starts again) change the agent
    repeats = [(s, e) for (s, e), r in TABLE.items()
               if r.target is s and e not in ("NotReady", "WrapUp")]
    assert (S.READY, "Ready") in repeats and (S.ON_CALL, "Answered") in repeats
    for state, name in repeats:
        agent = agent_in(state)
        assert decide(agent, EXAMPLES[name], NOW) == (agent, [])
    not_ready = agent_in(S.NOT_READY)
    assert decide(not_ready, NotReady("break"), NOW) == (not_ready, [])


def test_login_lands_in_not_ready_with_seat_and_skills() -> None:
    agent, _ = decide(Agent("a07"), Login("seat07", {"repair": 5}), NOW)
    assert (agent.state, agent.reason, agent.seat) == (S.NOT_READY, "login", "seat07")
    assert agent.skills == {"repair": 5}


def test_ready_sets_idle_since_but_a_repeat_keeps_it() -> None:
    agent, _ = decide(agent_in(S.NOT_READY), Ready(), NOW)
    assert agent.idle_since == NOW
    again, effects = decide(agent, Ready(), NOW + 50)
    assert again.idle_since == NOW and effects == []


def test_offer_reserves_with_the_call() -> None:
    agent, _ = decide(agent_in(S.READY), Offer("L9"), NOW)
    assert (agent.state, agent.call_id) == (S.RESERVED, "L9")


def test_answer_counts_the_call() -> None:
    agent, _ = decide(agent_in(S.RESERVED), Answered(CALL), NOW)
    assert (agent.state, agent.calls_handled) == (S.ON_CALL, 4)


def test_ring_no_answer_is_not_ready_rona() -> None:
    agent, _ = decide(agent_in(S.RESERVED), RingNoAnswer(CALL), NOW)
    assert (agent.state, agent.reason, agent.call_id) == (S.NOT_READY, "rona", None)


def test_offer_cancelled_keeps_the_longest_idle_position() -> None:
    agent, _ = decide(agent_in(S.RESERVED), OfferCancelled(CALL), NOW)
    assert (agent.state, agent.idle_since, agent.call_id) == (S.READY, 400.0, None)


def test_call_end_starts_wrap_up_timer_and_keeps_the_call() -> None:
    agent, effects = decide(agent_in(S.ON_CALL), CallEnded(CALL, 15.0), NOW)
    assert (agent.state, agent.call_id) == (S.WRAP_UP, CALL)
    assert StartTimer(wrap_up_timer("a07"), NOW + 15.0) in effects


def test_wrap_up_done_needs_no_cancel_but_leaving_early_does() -> None:
    done, effects = decide(agent_in(S.WRAP_UP), WrapUpDone(), NOW)
    assert done.state is S.READY and done.idle_since == NOW
    assert not any(isinstance(e, CancelTimer) for e in effects)
    for event in (Ready(), NotReady("break"), Logout(), Force(S.READY)):
        _, effects = decide(agent_in(S.WRAP_UP), event, NOW)
        assert CancelTimer(wrap_up_timer("a07")) in effects, event


@pytest.mark.parametrize("source", [s for s in AgentState if s is not S.LOGGED_OUT])
@pytest.mark.parametrize("target", sorted(FORCE_TARGETS))
def test_force_from_anywhere_logged_in(source: AgentState, target: AgentState) -> None:
    agent, effects = decide(agent_in(source), Force(target, "supervisor"), NOW)
    assert agent.state is target
    assert agent.call_id is None
    assert not any(isinstance(e, Rejected) for e in effects)


@pytest.mark.parametrize("target", [S.RESERVED, S.ON_CALL, S.WRAP_UP])
def test_force_into_a_call_state_is_rejected(target: AgentState) -> None:
    before = agent_in(S.READY)
    after, effects = decide(before, Force(target), NOW)
    assert after is before and isinstance(effects[0], Rejected)


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.LOGGED_OUT, Login("", {"general": 3})),
        (S.LOGGED_OUT, Login("seat01", {"general": 0})),
        (S.LOGGED_OUT, Login("seat01", {"general": 6})),
        (S.LOGGED_OUT, Login("seat01", {"general": True})),  # a bool is not a proficiency
        (S.LOGGED_OUT, Login("seat01", {"": 3})),
        (S.READY, NotReady("")),
        (S.READY, Offer("")),
        (S.RESERVED, Answered("other")),
        (S.RESERVED, RingNoAnswer("other")),
        (S.RESERVED, OfferCancelled("other")),
        (S.ON_CALL, CallEnded("other", 15.0)),
        (S.ON_CALL, CallEnded(CALL, -1.0)),
        (S.READY, Force(S.NOT_READY, "")),
        (S.LOGGED_OUT, Force(S.READY)),  # no seat to ring
        (S.LOGGED_OUT, Force(S.NOT_READY, "break")),
    ],
)
def test_guards_reject_bad_data(state: AgentState, event: Event) -> None:
    before = agent_in(state)
    after, effects = decide(before, event, NOW)
    assert after is before
    assert len(effects) == 1 and isinstance(effects[0], Rejected)


def test_describe_prints_every_row() -> None:
    text = describe()
    assert len(text.splitlines()) == len(TABLE) + 2
    assert "| reserved | RingNoAnswer | not_ready |" in text


def test_wrap_up_on_request_and_again_restarts_the_timer() -> None:
    ready = agent_in(S.READY)
    agent, effects = decide(ready, WrapUp(15.0), NOW)
    assert (agent.state, agent.state_since, agent.call_id) == (S.WRAP_UP, NOW, None)
    assert effects == [AgentStateChanged(agent), StartTimer(wrap_up_timer("a07"), NOW + 15.0)]
    # more after-call work: the same state, the time starts again, the call stays named
    after_call = agent_in(S.WRAP_UP)
    again, effects = decide(after_call, WrapUp(15.0), NOW + 5)
    assert (again.state, again.state_since, again.call_id) == (S.WRAP_UP, NOW + 5, CALL)
    assert effects[-1] == StartTimer(wrap_up_timer("a07"), NOW + 20.0)
    assert isinstance(decide(ready, WrapUp(0.0), NOW)[1][0], Rejected)  # no wrap-up configured
    assert isinstance(decide(agent_in(S.ON_CALL), WrapUp(15.0), NOW)[1][0], Rejected)
