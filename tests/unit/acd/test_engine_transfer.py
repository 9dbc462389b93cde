"""Transfers of a connected call (the desktop's 'transfer to skill / to agent')."""

from __future__ import annotations

from acd.engine import (
    AcdEngine,
    AgentAnswered,
    AgentLogin,
    AgentReady,
    CallArrived,
    CallEnded,
    CallTransferred,
    Input,
    Snapshot,
    Tick,
)
from acd.model import (
    AcdConfig,
    AgentState,
    AgentStateChanged,
    CallState,
    Effect,
    Rejected,
    RingAgent,
)

S = AgentState


class Desk:
    def __init__(self) -> None:
        self.engine = AcdEngine(AcdConfig())
        self.now = 0.0

    def __call__(self, event: Input, at: float | None = None) -> list[Effect]:
        self.now = self.now if at is None else at
        effects = self.engine.apply(event, self.now)
        self.engine.assert_invariants()
        return effects

    def ready(self, agent_id: str, skills: dict[str, int]) -> None:
        self(AgentLogin(agent_id, f"seat-{agent_id}", skills))
        self(AgentReady(agent_id))


def rings(effects: list[Effect]) -> list[tuple[str, str]]:
    return [(e.agent_id, e.call_id) for e in effects if isinstance(e, RingAgent)]


def connected(desk: Desk) -> None:
    desk.ready("a1", {"general": 3})
    assert rings(desk(CallArrived("L1", "13800000001", "general"), at=10.0)) == [("a1", "L1")]
    desk(AgentAnswered("a1", "L1"), at=12.0)


def test_transfer_to_a_skill_requeues_at_the_front_and_wraps_up_the_agent() -> None:
    desk = Desk()
    connected(desk)
    desk(CallArrived("L2", "13800000002", "repair"), at=20.0)  # someone already waiting
    effects = desk(CallTransferred("L1", skill="repair"), at=30.0)
    assert desk.engine.agents["a1"].state is S.WRAP_UP
    assert desk.engine.agents["a1"].call_id is None  # the call lives on without them
    changed = [e.agent for e in effects if isinstance(e, AgentStateChanged)]
    assert changed and changed[-1].call_id is None
    call = desk.engine.calls["L1"]
    assert (call.state, call.skill, call.offered_to) == (CallState.WAITING, "repair", None)
    assert desk.engine.queue("repair")[0].call_id == "L1"  # ahead of L2
    desk.ready("r1", {"repair": 4})
    assert desk.engine.calls["L1"].offered_to == "r1"
    desk(AgentAnswered("r1", "L1"), at=40.0)
    desk(CallEnded("L1"), at=90.0)
    assert desk.engine.agents["r1"].state is S.WRAP_UP
    desk(Tick(), at=200.0)
    assert desk.engine.agents["a1"].state is S.READY


def test_transfer_to_a_ready_agent_rings_that_agent_at_once() -> None:
    desk = Desk()
    connected(desk)
    desk.ready("a2", {"billing": 2})  # not even the call's skill
    effects = desk(CallTransferred("L1", agent_id="a2"), at=30.0)
    assert rings(effects) == [("a2", "L1")]
    assert desk.engine.agents["a2"].state is S.RESERVED
    assert desk.engine.agents["a1"].state is S.WRAP_UP
    desk(AgentAnswered("a2", "L1"), at=33.0)
    assert desk.engine.calls["L1"].state is CallState.CONNECTED
    # survives a snapshot round trip
    again = AcdEngine(AcdConfig())
    again.restore(Snapshot.from_dict(desk.engine.snapshot().to_dict()))
    again.assert_invariants()


def test_transfers_that_do_not_apply_change_nothing() -> None:
    desk = Desk()
    connected(desk)
    desk(AgentLogin("a3", "seat-a3", {"general": 1}))  # logged in, not ready
    before = desk.engine.snapshot().to_dict()
    for bad in (CallTransferred("L1", agent_id="a3"), CallTransferred("L1", agent_id="a1"),
                CallTransferred("L1", agent_id="nobody"), CallTransferred("L1"),
                CallTransferred("L1", skill="repair", agent_id="a3"),
                CallTransferred("L9", skill="repair")):
        effects = desk(bad, at=30.0)
        assert any(isinstance(e, Rejected) for e in effects), bad
    assert desk.engine.snapshot().to_dict() == before
