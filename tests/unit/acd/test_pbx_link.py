"""The link to the PBX in the pure ACD core (PbxLink, RingNotSent): while it is down nothing is
offered, and a ring that could not be sent puts the call back at the front of its queue and
the agent back to ready, never a ring-no-answer. The fault harness found this: under an
Asterisk kill -9 every agent who came free while the PBX was away went not_ready 'rona'."""

from __future__ import annotations

from acd.engine import AcdEngine, AgentLogin, AgentReady, CallArrived, PbxLink, RingNotSent
from acd.model import AcdConfig, AgentState, Effect, RingAgent


class Desk:
    def __init__(self) -> None:
        self.engine = AcdEngine(AcdConfig(wrap_up_s=5.0, ring_timeout_s=15.0))
        self.now = 0.0

    def __call__(self, event: object, dt: float = 0.0) -> list[Effect]:
        self.now += dt
        effects = self.engine.apply(event, self.now)  # type: ignore[arg-type]
        self.engine.assert_invariants()
        return effects


def rings(effects: list[Effect]) -> list[RingAgent]:
    return [e for e in effects if isinstance(e, RingAgent)]


def test_a_ring_not_sent_is_not_a_ring_no_answer_and_routing_waits_for_the_pbx() -> None:
    d = Desk()
    d(AgentLogin("a1", "seat01", {"general": 3}))
    d(AgentReady("a1"), 1.0)
    first = rings(d(CallArrived("c1", "13800000001", "general"), 1.0))
    assert [r.agent_id for r in first] == ["a1"]
    # the AMI session is lost, then the Redirect for that offer fails as not sent
    assert d(PbxLink(up=False), 0.1) == []
    again = d(RingNotSent(agent_id="a1", call_id="c1"), 0.1)
    assert d.engine.agents["a1"].state is AgentState.READY  # not not_ready 'rona'
    assert not d.engine.agents["a1"].reason
    assert not rings(again), "offered again while the PBX is away"
    assert d.engine.calls["c1"].state.value == "waiting"
    # more callers and more free agents in the dark: nobody is offered
    d(AgentLogin("a2", "seat02", {"general": 3}))
    assert not rings(d(AgentReady("a2"), 1.0))
    assert not rings(d(CallArrived("c2", "13800000002", "general"), 1.0))
    # the PBX is back (the resync said so): the first caller first, at the front
    back = rings(d(PbxLink(up=True), 5.0))
    assert [(r.call_id, r.agent_id) for r in back][0][0] == "c1"
    assert {r.call_id for r in back} == {"c1", "c2"}


def test_a_late_ring_not_sent_for_a_gone_offer_is_rejected_harmlessly() -> None:
    d = Desk()
    d(AgentLogin("a1", "seat01", {"general": 3}))
    d(AgentReady("a1"), 1.0)
    d(CallArrived("c1", "13800000001", "general"), 1.0)
    effects = d(RingNotSent(agent_id="a2", call_id="c1"))
    assert any(type(e).__name__ == "Rejected" for e in effects)
    assert d.engine.agents["a1"].state is AgentState.RESERVED
