"""An agent's click-to-call (拨打客户): the seat rings first, the agent is out of routing from
the click to the wrap-up after it, and a ring nobody answers drops the call (no requeue, no
ring-no-answer)."""

from __future__ import annotations

from acd.engine import (
    AgentAnswered,
    AgentNotReady,
    CallArrived,
    CallEnded,
    ClickToCall,
    ConsultStarted,
    RingTimeout,
    SeatReachability,
    SupervisorForce,
    Tick,
)
from acd.model import (
    CLICK_TO_CALL,
    AgentState,
    CallbackDial,
    CallState,
    QueueStats,
    Rejected,
    RingAgent,
    StartTimer,
    ring_timer,
    wrap_up_timer,
)
from tests.unit.acd.test_engine import Desk, only

S = AgentState
CALL = "pbx1-1765000000.812345678"


def reasons(effects: list) -> list[str]:  # type: ignore[type-arg]
    return [e.reason for e in only(effects, Rejected)]


def test_the_seat_rings_then_talks_then_wraps_up_and_no_inbound_call_is_offered_meanwhile(
) -> None:
    desk = Desk()
    desk.ready("a1", {"general": 3}, seat="seat07")
    effects = desk(ClickToCall(CALL, "a1", "13800138000", account="0101"), at=5.0)
    assert only(effects, CallbackDial) == [
        CallbackDial(CALL, "a1", "seat07", "13800138000", "0101", 1, click_to_call=True)]
    assert StartTimer(ring_timer(CALL), 20.0) in effects
    assert desk.state("a1") is S.RESERVED
    call = desk.engine.calls[CALL]
    assert CLICK_TO_CALL in call.flags and call.state is CallState.OFFERED
    # an inbound call now waits: the agent is the ACD's only one and is busy
    assert not only(desk(CallArrived("L1", "13800000001", "general"), at=6.0), RingAgent)
    desk(AgentAnswered("a1", CALL), at=8.0)
    assert desk.state("a1") is S.ON_CALL
    assert not only(desk(Tick(), at=9.0), RingAgent)
    effects = desk(CallEnded(CALL), at=60.0)
    assert StartTimer(wrap_up_timer("a1"), 75.0) in effects
    assert desk.state("a1") is S.WRAP_UP and CALL not in desk.engine.calls
    # ready after the wrap-up: now the waiting caller is offered
    assert [r.call_id for r in only(desk(Tick(), at=75.0), RingAgent)] == ["L1"]


def test_a_click_to_call_is_in_no_skills_figures() -> None:
    desk = Desk()
    desk.ready("a1", {"general": 3})
    desk(ClickToCall(CALL, "a1", "13800138000"), at=1.0)
    desk(AgentAnswered("a1", CALL), at=2.0)
    desk(CallEnded(CALL), at=30.0)
    stats = {s.skill: s for s in desk.engine.queue_stats(31.0) if isinstance(s, QueueStats)}
    assert all(s.answered == 0 and s.callbacks_connected == 0 for s in stats.values())
    assert "" not in stats


def test_from_not_ready_and_from_wrap_up_too_but_never_on_a_call_or_a_ring() -> None:
    desk = Desk()
    desk.ready("a1", {"general": 3})
    desk(AgentNotReady("a1", "break"), at=1.0)
    assert only(desk(ClickToCall(CALL, "a1", "13800138000"), at=2.0), CallbackDial)
    refused = desk(ClickToCall("pbx1-1765000000.812345679", "a1", "13800138001"), at=3.0)
    assert reasons(refused) == ["the agent is reserved"]
    desk(AgentAnswered("a1", CALL), at=4.0)
    refused = desk(ClickToCall("pbx1-1765000000.812345679", "a1", "13800138001"), at=5.0)
    assert reasons(refused) == ["the agent is on_call"]
    desk(CallEnded(CALL), at=6.0)
    assert desk.state("a1") is S.WRAP_UP
    assert only(desk(ClickToCall("pbx1-1765000000.812345679", "a1", "13800138001"), at=7.0),
                CallbackDial)


def test_a_repeat_is_harmless_and_an_unknown_or_offline_agent_is_refused() -> None:
    desk = Desk()
    desk.ready("a1", {"general": 3}, seat="seat07")
    desk(ClickToCall(CALL, "a1", "13800138000"), at=1.0)
    assert desk(ClickToCall(CALL, "a1", "13800138000"), at=1.5) == []
    assert reasons(desk(ClickToCall("x.1", "nobody", "13800138000"), at=2.0)) == [
        "the agent is not logged in"]
    desk.ready("b1", {"general": 3}, seat="seat08")
    desk(SeatReachability("seat08", reachable=False), at=3.0)
    assert reasons(desk(ClickToCall("x.2", "b1", "13800138000"), at=4.0)) == [
        "the seat's phone is offline"]
    desk.ready("c1", {"general": 3}, seat="seat09")
    assert reasons(desk(ClickToCall("x.3", "c1", ""), at=5.0)) == [
        "a click-to-call needs a call_id and a number"]


def test_an_agent_on_a_consult_cannot_dial() -> None:
    desk = Desk()
    desk.ready("a1", {"general": 3})
    desk.ready("b1", {"general": 3})
    desk(CallArrived("L1", "13800000001", "general"), at=1.0)
    talking = "a1" if desk.state("a1") is S.RESERVED else "b1"
    other = "b1" if talking == "a1" else "a1"
    desk(AgentAnswered(talking, "L1"), at=2.0)
    desk(ConsultStarted("L1", other), at=3.0)
    assert reasons(desk(ClickToCall(CALL, other, "13800138000"), at=4.0)) == [
        "the agent is on a consult"]


def test_a_ring_nobody_answers_drops_the_call_and_the_agent_is_ready_not_rona() -> None:
    desk = Desk()
    desk.ready("a1", {"general": 3})
    desk(ClickToCall(CALL, "a1", "13800138000"), at=1.0)
    desk(RingTimeout("a1", CALL), at=20.0)
    assert CALL not in desk.engine.calls
    a1 = desk.engine.agents["a1"]
    assert (a1.state, a1.reason, a1.call_id) == (S.READY, "", None)
    # the ACD's own ring timer past its deadline does the same
    desk(ClickToCall("pbx1-1765000000.812345679", "a1", "13800138000"), at=21.0)
    desk(Tick(), at=50.0)
    assert desk.engine.calls == {} and desk.state("a1") is S.READY
    # the seat's leg ending before it was answered (the agent rejected it)
    desk(ClickToCall("pbx1-1765000000.812345680", "a1", "13800138000"), at=51.0)
    desk(CallEnded("pbx1-1765000000.812345680"), at=52.0)
    assert desk.engine.calls == {} and desk.state("a1") is S.READY


def test_a_supervisor_forcing_the_agent_drops_the_ring() -> None:
    desk = Desk()
    desk.ready("a1", {"general": 3})
    desk(ClickToCall(CALL, "a1", "13800138000"), at=1.0)
    desk(SupervisorForce("a1", S.NOT_READY, "meeting"), at=2.0)
    assert CALL not in desk.engine.calls and desk.state("a1") is S.NOT_READY
