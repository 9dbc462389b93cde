"""Consults of a connected call (the desktop's 咨询转接 and 三方通话): the consulted agent is
taken out of routing while the consult lasts, and takes the call over when it completes."""

from __future__ import annotations

from acd.engine import (
    CONSULT,
    AgentAnswered,
    AgentReady,
    CallArrived,
    CallEnded,
    CallTransferred,
    ConsultCompleted,
    ConsultEnded,
    ConsultStarted,
    SupervisorForce,
    Tick,
)
from acd.model import AgentState, AgentStateChanged, CallState, Rejected
from tests.unit.acd.test_engine_transfer import Desk, connected, rings

S = AgentState


def consulting(desk: Desk) -> None:
    connected(desk)  # a1 on L1 since 12.0
    desk.ready("b1", {"billing": 3})
    effects = desk(ConsultStarted("L1", "b1"), at=20.0)
    assert [e.agent.state for e in effects if isinstance(e, AgentStateChanged)] == [S.NOT_READY]


def test_a_consulted_agent_is_offered_no_call_and_cannot_go_ready_meanwhile() -> None:
    desk = Desk()
    consulting(desk)
    b1 = desk.engine.agents["b1"]
    assert (b1.state, b1.reason, b1.call_id) == (S.NOT_READY, CONSULT, None)
    assert desk.engine.consults == {"L1": "b1"}
    assert rings(desk(CallArrived("L2", "13800000002", "billing"), at=21.0)) == []
    refused = desk(AgentReady("b1"), at=22.0)
    assert [e.reason for e in refused if isinstance(e, Rejected)] == ["the agent is on a consult"]
    assert desk.engine.agents["b1"].state is S.NOT_READY
    # the first agent keeps the call all along
    assert (desk.engine.agents["a1"].state, desk.engine.calls["L1"].offered_to) == \
        (S.ON_CALL, "a1")


def test_ending_the_consult_makes_the_agent_ready_and_routable_again() -> None:
    desk = Desk()
    consulting(desk)
    desk(CallArrived("L2", "13800000002", "billing"), at=21.0)
    effects = desk(ConsultEnded("L1"), at=25.0)
    assert desk.engine.consults == {}
    # ready again, and at once offered the billing caller who waited meanwhile
    assert rings(effects) == [("b1", "L2")]
    assert desk(ConsultEnded("L1"), at=26.0) == []  # a repeat changes nothing


def test_completing_hands_the_call_over_and_wraps_up_the_first_agent() -> None:
    desk = Desk()
    consulting(desk)
    effects = desk(ConsultCompleted("L1"), at=30.0)
    a1, b1 = desk.engine.agents["a1"], desk.engine.agents["b1"]
    assert (a1.state, a1.call_id) == (S.WRAP_UP, None)
    assert (b1.state, b1.call_id, b1.calls_handled) == (S.ON_CALL, "L1", 1)
    call = desk.engine.calls["L1"]
    assert (call.state, call.offered_to, call.answered_at) == (CallState.CONNECTED, "b1", 30.0)
    assert {e.agent.agent_id for e in effects if isinstance(e, AgentStateChanged)} == \
        {"a1", "b1"}
    assert desk.engine.consults == {}
    # the call's end is the new agent's
    desk(CallEnded("L1"), at=40.0)
    assert desk.engine.agents["b1"].state is S.WRAP_UP
    desk(Tick(), at=40.0 + desk.engine.config.wrap_up_s)
    assert desk.engine.agents["a1"].state is S.READY


def test_the_call_ending_or_leaving_ends_the_consult() -> None:
    for ends in (CallEnded("L1"), CallTransferred("L1", skill="general"),
                 SupervisorForce("a1", S.NOT_READY)):
        desk = Desk()
        consulting(desk)
        desk(ends, at=30.0)
        assert desk.engine.consults == {}, ends
        assert desk.engine.agents["b1"].state is S.READY, ends


def test_refusals() -> None:
    desk = Desk()
    connected(desk)
    desk.ready("b1", {"billing": 3})
    desk.ready("c1", {"billing": 3})

    def refused(event: object) -> list[str]:
        return [e.reason for e in desk(event, at=20.0) if isinstance(e, Rejected)]  # type: ignore[arg-type]

    assert refused(ConsultStarted("L9", "b1")) == ["no such connected call"]
    assert refused(ConsultStarted("L1", "a1")) == ["the agent is not ready"]  # oneself
    assert refused(ConsultStarted("L1", "zz")) == ["the agent is not ready"]
    assert refused(ConsultCompleted("L1")) == ["no consult on a connected call"]
    assert refused(ConsultStarted("L1", "b1")) == []
    assert refused(ConsultStarted("L1", "b1")) == []  # a repeat
    assert refused(ConsultStarted("L1", "c1")) == ["the call already has a consult"]
    # a supervisor moved the consulted agent: the consult is over, nothing to complete
    desk(SupervisorForce("b1", S.NOT_READY, "training"), at=21.0)
    assert desk.engine.consults == {}
    assert desk.engine.agents["b1"].reason == "training"
    assert refused(ConsultCompleted("L1")) == ["no consult on a connected call"]
    # a ringing call cannot be consulted on
    desk(CallArrived("L2", "13800000002", "billing"), at=22.0)
    assert desk.engine.calls["L2"].offered_to == "c1"
    assert refused(ConsultStarted("L2", "b1")) == ["no such connected call"]
    desk(AgentAnswered("c1", "L2"), at=23.0)


def test_a_skill_consult_takes_that_skills_longest_idle_ready_agent() -> None:
    desk = Desk()
    connected(desk)  # a1 (general) on L1
    desk.ready("b1", {"billing": 2})
    desk.ready("g1", {"general": 5})
    effects = desk(ConsultStarted("L1", skill="billing"), at=20.0)
    assert desk.engine.consults == {"L1": "b1"}
    assert [e.agent.agent_id for e in effects if isinstance(e, AgentStateChanged)] == ["b1"]
    assert desk.engine.agents["g1"].state is S.READY
    desk(ConsultEnded("L1"), at=21.0)
    # nobody of that skill ready: refused, nobody taken; one of agent or skill, not both
    assert [e.reason for e in desk(ConsultStarted("L1", skill="english"), at=22.0)
            if isinstance(e, Rejected)] == ["no agent of skill english is ready"]
    assert [e.reason for e in desk(ConsultStarted("L1", "b1", skill="billing"), at=22.0)
            if isinstance(e, Rejected)] == ["consult one agent or one skill"]
    assert desk.engine.consults == {}
    # the call's own agent is never chosen, whatever their skills
    desk2 = Desk()
    connected(desk2)
    assert [e.reason for e in desk2(ConsultStarted("L1", skill="general"), at=20.0)
            if isinstance(e, Rejected)] == ["no agent of skill general is ready"]
