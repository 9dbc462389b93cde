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


# ------------------------------------------------------------------------ per PBX node
# A call is on the node its id names ("pbx2-1700000000.3"); an id without a prefix, and a
# PbxLink that names no node, are the default node's. A node that is down stops only its own
# callers' offers: seats belong to no node (behind a SIP proxy any node rings any seat).


def two_node_desk() -> Desk:
    d = Desk()
    d.engine = AcdEngine(AcdConfig(wrap_up_s=5.0, ring_timeout_s=15.0, default_node="pbx1"))
    return d


def test_a_node_down_stops_only_its_own_callers_offers() -> None:
    d = two_node_desk()
    d(PbxLink(up=False, node="pbx2"))
    assert d.engine.pbx_down == {"pbx2"} and not d.engine.pbx_up
    # pbx2's caller waited longer, but its node cannot Redirect it: pbx1's caller is offered
    d(CallArrived("pbx2-1700000000.3", "13800000002", "general"), 1.0)
    d(CallArrived("pbx1-1700000000.7", "13800000001", "general"), 1.0)
    d(AgentLogin("a1", "seat01", {"general": 3}))
    assert [r.call_id for r in rings(d(AgentReady("a1"), 1.0))] == ["pbx1-1700000000.7"]
    d(AgentLogin("a2", "seat02", {"general": 3}))
    assert not rings(d(AgentReady("a2"), 1.0)), "offered a caller of a node that is down"
    assert d.engine.calls["pbx2-1700000000.3"].state.value == "waiting"
    # pbx2 is back (its resync said so): its caller is offered at once
    back = rings(d(PbxLink(up=True, node="pbx2"), 1.0))
    assert [(r.call_id, r.agent_id) for r in back] == [("pbx2-1700000000.3", "a2")]
    assert d.engine.pbx_up


def test_ids_without_a_prefix_and_links_without_a_node_are_the_default_nodes() -> None:
    d = two_node_desk()
    d(PbxLink(up=False))  # the default node: pbx1
    assert d.engine.pbx_down == {"pbx1"}
    assert d.engine.node_of("1700000000.12") == "pbx1"
    assert d.engine.node_of("pbx-east-2-1700000000.12") == "pbx-east-2"
    d(AgentLogin("a1", "seat01", {"general": 3}))
    d(AgentReady("a1"), 1.0)
    assert not rings(d(CallArrived("1700000000.12", "13800000001", "general"), 1.0))
    assert not rings(d(CallArrived("pbx1-1700000000.13", "13800000002", "general"), 1.0))
    assert [r.call_id for r in rings(d(CallArrived("pbx2-1700000000.1", "13800000003",
                                                   "general"), 1.0))] == ["pbx2-1700000000.1"]
    # another node going down and up leaves pbx1 down
    d(PbxLink(up=False, node="pbx2"))
    d(PbxLink(up=True, node="pbx2"))
    assert d.engine.pbx_down == {"pbx1"}
    back = rings(d(PbxLink(up=True, node="pbx1"), 1.0))
    assert back == [], "the agent is still reserved with pbx2's caller"
    assert {c.call_id for c in d.engine.queue("general")} == {"1700000000.12",
                                                              "pbx1-1700000000.13"}
