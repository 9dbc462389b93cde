"""An admin's skills change reaches the live ACD (issue 15 §1): acd AgentSkills, and the staff
watch that feeds it from the database (callcenter.staff_watch.changed)."""

from __future__ import annotations

from acd.engine import AgentSkills, CallArrived, CallEnded, SupervisorForce
from acd.model import AgentState, RingAgent
from callcenter.acd_service import AcdView
from callcenter.staff_watch import DISABLED, changed
from tests.unit.acd.test_engine import Desk, only, rung


def test_new_skills_apply_from_the_next_offer_and_a_ringing_call_goes_on() -> None:
    desk = Desk()
    desk.ready("a1", {"general": 3})
    # a call of a skill a1 does not hold waits
    assert rung(desk(CallArrived("L1", "13800000001", "english"), at=1.0)) == []
    effects = desk(AgentSkills("a1", {"general": 3, "english": 4}), at=2.0)
    assert rung(effects) == [("a1", "L1")]  # offered at once: the next offer is now
    assert dict(desk.engine.agents["a1"].skills) == {"general": 3, "english": 4}
    # taken away while it rings: the ring goes on, the next offer routes without it
    effects = desk(AgentSkills("a1", {"general": 3}), at=3.0)
    assert not only(effects, RingAgent) and desk.state("a1") is AgentState.RESERVED
    assert desk.engine.calls["L1"].offered_to == "a1"
    desk(CallEnded("L1"), at=4.0)


def test_a_logged_out_or_unknown_agent_is_left_alone() -> None:
    desk = Desk()
    assert desk(AgentSkills("nobody", {"general": 1}), at=1.0) == []
    assert "nobody" not in desk.engine.agents


def test_the_watch_brings_logged_in_agents_to_what_is_stored() -> None:
    desk = Desk()
    desk.ready("a1", {"general": 3})
    desk.ready("a2", {"general": 3})
    desk.ready("a3", {"repair": 5})
    desk(CallArrived("L1", "13800000001", "repair"), at=1.0)  # a3 is offered it
    view = AcdView.of(desk.engine, {}, desk.now, 1)
    stored: dict[str, dict[str, int] | None] = {
        "a1": {"general": 3}, "a2": {"general": 3, "english": 2}, "a3": None}  # a3: disabled
    assert changed(view, stored) == [AgentSkills("a2", {"general": 3, "english": 2})]
    # an agent who logged in after the query is not in it: left alone, never taken for
    # disabled (this once signed agents out right after their login)
    desk.ready("a4", {"general": 1})
    assert changed(AcdView.of(desk.engine, {}, desk.now, 2), stored) == [
        AgentSkills("a2", {"general": 3, "english": 2})]
    # a3 is on a call: signed out only once the call is over
    desk(CallEnded("L1"), at=2.0)
    assert changed(AcdView.of(desk.engine, {}, desk.now, 3), stored) == [
        AgentSkills("a2", {"general": 3, "english": 2}),
        SupervisorForce("a3", AgentState.LOGGED_OUT, reason=DISABLED)]
