"""Seat reachability in the pure ACD core: no call is offered at a dead phone; its agent is
not_ready 'phone_offline' (at once when ready or in wrap-up, when the call ends when on one) and
ready again when the phone is back; another reason stays; a login at a dead seat; the snapshot."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from acd.agent_fsm import PHONE_OFFLINE
from acd.engine import (
    AcdEngine,
    AgentAnswered,
    AgentLogin,
    AgentLogout,
    AgentNotReady,
    AgentReady,
    CallArrived,
    CallEnded,
    Input,
    RingTimeout,
    SeatReachability,
    Snapshot,
    SupervisorForce,
    Tick,
)
from acd.model import (
    AcdConfig,
    Agent,
    AgentState,
    AgentStateChanged,
    CallbackDial,
    CancelTimer,
    Effect,
    RingAgent,
    StartTimer,
    wrap_up_timer,
)
from tests.unit.acd.test_engine_stateful import AcdMachine

S = AgentState
WRAP_UP_S = 15.0


class Desk:
    """An engine with a clock the test moves; every apply checks the invariants."""

    def __init__(self) -> None:
        self.engine = AcdEngine(AcdConfig(wrap_up_s=WRAP_UP_S, ring_timeout_s=15.0))
        self.now = 0.0

    def __call__(self, event: Input, dt: float = 0.0) -> list[Effect]:
        self.now += dt
        effects = self.engine.apply(event, self.now)
        self.engine.assert_invariants()
        return effects

    def agent(self, agent_id: str = "a1") -> Agent:
        return self.engine.agents[agent_id]

    def login_ready(self, agent_id: str = "a1", seat: str = "seat01") -> None:
        self(AgentLogin(agent_id, seat, {"general": 3}))
        self(AgentReady(agent_id), 1.0)  # one by one: the longest idle is the first in

    def talking(self, call_id: str = "c1", agent_id: str = "a1") -> None:
        """A call arrives, rings the agent's seat and is answered."""
        self(CallArrived(call_id, "13800000001", "general"))
        assert self.agent(agent_id).state is S.RESERVED
        self(AgentAnswered(agent_id, call_id))
        assert self.agent(agent_id).state is S.ON_CALL


def rings(effects: list[Effect]) -> list[RingAgent | CallbackDial]:
    return [e for e in effects if isinstance(e, RingAgent | CallbackDial)]


def state(agent: Agent) -> tuple[str, str]:
    return agent.state.value, agent.reason


def test_a_ready_agent_goes_not_ready_phone_offline_and_no_call_rings_there() -> None:
    d = Desk()
    d.login_ready()
    effects = d(SeatReachability("seat01", False), 1.0)
    assert state(d.agent()) == ("not_ready", PHONE_OFFLINE)
    assert effects == [AgentStateChanged(d.agent())]
    assert rings(d(CallArrived("c1", "13800000001", "general"), 1.0)) == []
    assert rings(d(Tick(), 60.0)) == []
    assert d.engine.calls["c1"].state.value == "waiting"


def test_the_phone_back_makes_the_agent_ready_and_the_waiting_call_rings() -> None:
    d = Desk()
    d.login_ready()
    d(SeatReachability("seat01", False), 1.0)
    d(CallArrived("c1", "13800000001", "general"), 1.0)
    effects = d(SeatReachability("seat01", True), 1.0)
    # the agent did not choose not-ready, the phone did: ready, and offered the call at once
    assert [r.seat for r in rings(effects)] == ["seat01"]
    assert d.agent().state is S.RESERVED
    assert any(isinstance(e, AgentStateChanged) and e.agent.state is S.READY for e in effects)


def test_repeats_change_nothing() -> None:
    d = Desk()
    d.login_ready()
    assert d(SeatReachability("seat01", True)) == []  # reachable is what it assumed
    d(SeatReachability("seat01", False), 1.0)
    before = d.agent()
    assert d(SeatReachability("seat01", False), 1.0) == []
    assert d.agent() == before


def test_wrap_up_is_cut_short_and_its_timer_cancelled() -> None:
    d = Desk()
    d.login_ready()
    d.talking()
    d(CallEnded("c1"), 5.0)
    assert d.agent().state is S.WRAP_UP
    effects = d(SeatReachability("seat01", False), 1.0)
    assert state(d.agent()) == ("not_ready", PHONE_OFFLINE)
    assert CancelTimer(wrap_up_timer("a1")) in effects
    d(Tick(), WRAP_UP_S)  # the wrap-up's end makes nobody ready
    assert state(d.agent()) == ("not_ready", PHONE_OFFLINE)
    d(SeatReachability("seat01", True), 1.0)
    assert d.agent().state is S.READY


def test_an_agent_on_a_call_stays_on_it_and_goes_phone_offline_when_it_ends() -> None:
    d = Desk()
    d.login_ready()
    d.talking()
    effects = d(SeatReachability("seat01", False), 1.0)
    assert d.agent().state is S.ON_CALL and d.agent().call_id == "c1"
    assert d.agent().phone_offline
    assert not any(isinstance(e, StartTimer | CancelTimer) for e in effects)
    effects = d(CallEnded("c1"), 10.0)
    # no wrap-up that would end in ready at a dead phone
    assert state(d.agent()) == ("not_ready", PHONE_OFFLINE)
    assert not any(isinstance(e, StartTimer) for e in effects)
    assert "c1" not in d.engine.calls  # the call itself ended as any call does
    d(SeatReachability("seat01", True), 1.0)
    assert d.agent().state is S.READY


def test_a_ringing_seat_whose_phone_goes_keeps_its_ring_which_decides() -> None:
    d = Desk()
    d.login_ready()
    d(CallArrived("c1", "13800000001", "general"))
    d(SeatReachability("seat01", False), 0.5)
    assert d.agent().state is S.RESERVED  # the ring under way: answered or not, Dial says
    d(RingTimeout("a1", "c1"), 1.0)
    # the ring failed because the phone is gone, not the agent: phone_offline, not rona
    assert state(d.agent()) == ("not_ready", PHONE_OFFLINE)
    assert d.engine.calls["c1"].state.value == "waiting"
    d(SeatReachability("seat01", True), 1.0)
    assert d.agent().state is S.RESERVED and d.agent().call_id == "c1"


def test_a_ringing_seat_answered_as_its_phone_went_is_a_normal_call() -> None:
    d = Desk()
    d.login_ready()
    d(CallArrived("c1", "13800000001", "general"))
    d(SeatReachability("seat01", False), 0.5)
    d(AgentAnswered("a1", "c1"), 0.5)
    assert d.agent().state is S.ON_CALL


def test_another_reason_stays_when_the_phone_goes_and_comes_back() -> None:
    d = Desk()
    d.login_ready()
    d(AgentNotReady("a1", "lunch"), 1.0)
    d(SeatReachability("seat01", False), 1.0)
    assert state(d.agent()) == ("not_ready", "lunch")
    d(SeatReachability("seat01", True), 1.0)
    assert state(d.agent()) == ("not_ready", "lunch")


def test_ready_at_a_dead_phone_waits_for_the_phone() -> None:
    d = Desk()
    d.login_ready()
    d(AgentNotReady("a1", "lunch"), 1.0)
    d(SeatReachability("seat01", False), 1.0)
    d(AgentReady("a1"), 1.0)  # the agent asks; the phone is what keeps them from it
    assert state(d.agent()) == ("not_ready", PHONE_OFFLINE)
    d(SeatReachability("seat01", True), 1.0)
    assert d.agent().state is S.READY


def test_a_supervisor_forcing_ready_at_a_dead_phone_gets_phone_offline() -> None:
    d = Desk()
    d.login_ready()
    d(AgentNotReady("a1", "lunch"), 1.0)
    d(SeatReachability("seat01", False), 1.0)
    d(SupervisorForce("a1", S.READY), 1.0)
    assert state(d.agent()) == ("not_ready", PHONE_OFFLINE)


def test_a_reason_chosen_while_the_phone_is_gone_stays_when_it_is_back() -> None:
    d = Desk()
    d.login_ready()
    d(SeatReachability("seat01", False), 1.0)
    d(AgentNotReady("a1", "training"), 1.0)
    d(SeatReachability("seat01", True), 1.0)
    assert state(d.agent()) == ("not_ready", "training")


def test_login_at_a_dead_seat_says_why_then_login_when_the_phone_is_back() -> None:
    d = Desk()
    d(SeatReachability("seat01", False))  # before anyone sits there
    d(AgentLogin("a1", "seat01", {"general": 3}), 1.0)
    assert state(d.agent()) == ("not_ready", PHONE_OFFLINE)
    # the agent has not said ready since the login: back to where a login leaves them
    d(SeatReachability("seat01", True), 1.0)
    assert state(d.agent()) == ("not_ready", "login")


def test_login_at_a_dead_seat_then_ready_comes_with_the_phone() -> None:
    d = Desk()
    d(SeatReachability("seat01", False))
    d(AgentLogin("a1", "seat01", {"general": 3}), 1.0)
    d(AgentReady("a1"), 1.0)
    assert state(d.agent()) == ("not_ready", PHONE_OFFLINE)
    d(CallArrived("c1", "13800000001", "general"), 1.0)
    assert [r.seat for r in rings(d(SeatReachability("seat01", True), 1.0))] == ["seat01"]


def test_the_seat_is_the_phone_not_the_agent() -> None:
    d = Desk()
    d.login_ready("a1", "seat01")
    d(SeatReachability("seat01", False), 1.0)
    d(AgentLogout("a1"), 1.0)
    assert not d.agent().phone_offline
    d.login_ready("a2", "seat02")
    d(CallArrived("c1", "13800000001", "general"), 1.0)
    assert d.agent("a2").state is S.RESERVED  # another seat takes the call
    d(AgentLogin("a3", "seat01", {"general": 3}), 1.0)  # someone sits at the dead seat
    assert state(d.agent("a3")) == ("not_ready", PHONE_OFFLINE)


def test_every_phone_gone_at_once_nobody_is_rung_until_they_are_back() -> None:
    d = Desk()
    seats = {f"a{i}": f"seat{i:02d}" for i in range(1, 11)}
    for agent, seat in seats.items():
        d.login_ready(agent, seat)
    for n in range(4):  # four talking, six ready
        d.talking(f"c{n}", f"a{n + 1}")
    for seat in seats.values():
        d(SeatReachability(seat, False))
    offered = []
    for n in range(4, 10):
        offered += rings(d(CallArrived(f"c{n}", "13800000001", "general"), 1.0))
    for n in range(4):
        offered += rings(d(CallEnded(f"c{n}"), 1.0))
    offered += rings(d(Tick(), 60.0))
    assert offered == []
    assert {state(a) for a in d.engine.agents.values()} == {("not_ready", PHONE_OFFLINE)}
    for seat in seats.values():
        offered += rings(d(SeatReachability(seat, True), 0.1))
    assert len(offered) == 6  # every waiting caller rings a seat again


def test_the_snapshot_keeps_the_dead_seats() -> None:
    d = Desk()
    d.login_ready()
    d(SeatReachability("seat01", False), 1.0)
    d(SeatReachability("seat09", False), 1.0)  # nobody there yet
    saved = json.loads(json.dumps(d.engine.snapshot().to_dict()))
    engine = AcdEngine(d.engine.config)
    engine.restore(Snapshot.from_dict(saved))
    assert engine.unreachable_seats == {"seat01", "seat09"}
    assert engine.agents["a1"] == d.agent()
    engine.apply(AgentLogin("a9", "seat09", {"general": 3}), 10.0)
    engine.apply(AgentReady("a9"), 11.0)
    assert rings(engine.apply(CallArrived("c1", "13800000001", "general"), 12.0)) == []


def test_an_old_snapshot_without_seats_restores_every_seat_reachable() -> None:
    d = Desk()
    d.login_ready()
    saved = d.engine.snapshot().to_dict()
    saved.pop("unreachable_seats")
    for a in saved["agents"]:
        a.pop("phone_offline"), a.pop("ready_on_phone")
    engine = AcdEngine(d.engine.config)
    engine.restore(Snapshot.from_dict(saved))
    assert engine.unreachable_seats == frozenset()
    assert engine.agents["a1"].state is S.READY


class ReachabilityMachine(AcdMachine):
    """The engine's random walk (test_engine_stateful) with phones that come and go: no call
    is ever offered at a seat the engine was told is unreachable, and nobody there is ready."""

    @rule(seat=st.integers(0, 11), reachable=st.booleans(), dt=st.floats(0.0, 5.0))
    def phone(self, seat: int, reachable: bool, dt: float) -> None:
        self.apply(SeatReachability(f"seat{seat:02d}", reachable), dt)

    @rule(data=st.data(), reachable=st.booleans())
    def agents_phone(self, data: st.DataObject, reachable: bool) -> None:
        """The phone at a logged-in agent's seat (login_ready's seats are named by agent)."""
        seats = [a.seat for a in self.engine.agents.values() if a.seat]
        if seats:
            self.apply(SeatReachability(data.draw(st.sampled_from(seats)), reachable))

    def apply(self, event: Input, dt: float = 0.0) -> None:
        before = {a.agent_id: (a.state, a.call_id) for a in self.engine.agents.values()}
        super().apply(event, dt)
        for agent in self.engine.agents.values():
            offered_now = agent.state is S.RESERVED \
                and before.get(agent.agent_id) != (S.RESERVED, agent.call_id)
            if offered_now:  # a ring this input started: never at a dead phone
                assert agent.seat not in self.engine.unreachable_seats, (event, agent)

    @invariant()
    def nobody_ready_at_a_dead_phone(self) -> None:
        for agent in self.engine.agents.values():
            if agent.state is not S.LOGGED_OUT:
                assert agent.phone_offline == (agent.seat in self.engine.unreachable_seats)
                assert not (agent.phone_offline and agent.state is S.READY), agent


ReachabilityMachine.TestCase.settings = settings(
    max_examples=80, stateful_step_count=60, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow])
TestReachabilityStateful = ReachabilityMachine.TestCase
