"""Random sequences of every ACD input over 10 agents; the invariants hold after every step."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from acd.engine import (
    AcdEngine,
    AgentAnswered,
    AgentLogin,
    AgentLogout,
    AgentNotReady,
    AgentReady,
    AgentWrapUp,
    CallAbandoned,
    CallArrived,
    CallbackRequested,
    CallEnded,
    CallTransferred,
    HandlingChanged,
    Input,
    ResetDailyStats,
    RingTimeout,
    Snapshot,
    SupervisorForce,
    Tick,
)
from acd.model import (
    IMPORTANT,
    REPEAT_FAULT,
    AcdConfig,
    AgentState,
    CallbackDial,
    CallState,
    Deflect,
    Overflow,
    RingAgent,
)
from acd.routing import eligible_agents

AGENTS = [f"a{i:02d}" for i in range(10)]
SKILLS = ["repair", "general", "billing"]
CONFIG = AcdConfig(max_queue_per_skill=6, announce_every_s=20.0, stats_every_s=15.0)

agent_ids = st.sampled_from(AGENTS)
skill_sets = st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), min_size=1, max_size=3)
small_dt = st.floats(0.0, 5.0, allow_nan=False)
rarely = st.sampled_from([False] * 4 + [True])


class AcdMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = AcdEngine(CONFIG)
        self.now = 0.0
        self.arrived: list[str] = []  # every call id ever sent
        self.accepted: set[str] = set()
        self.overflowed: set[str] = set()
        self.deflected: set[str] = set()  # calls told their wait (storm mode): once each

    # ------------------------------------------------------------------------ driving

    def apply(self, event: Input, dt: float = 0.0) -> None:
        self.now += dt
        effects = self.engine.apply(event, self.now)
        for effect in effects:
            if isinstance(effect, RingAgent | CallbackDial):
                agent = self.engine.agents[effect.agent_id]
                call = self.engine.calls[effect.call_id]
                assert agent.state is AgentState.RESERVED and agent.call_id == call.call_id
                assert call.state is CallState.OFFERED and call.offered_to == agent.agent_id
                assert isinstance(effect, CallbackDial) == (call.callback_number is not None)
                assert effect.seat == agent.seat != ""
            if isinstance(effect, Overflow):
                self.overflowed.add(effect.call_id)
            if isinstance(effect, Deflect):
                assert effect.call_id not in self.deflected, f"{effect.call_id} told twice"
                assert self.engine.calls[effect.call_id].state is CallState.WAITING
                assert effect.ewt_s > (self.engine.handling.ewt_deflect_s or 0.0)
                self.deflected.add(effect.call_id)
        if isinstance(event, CallArrived) and event.call_id not in self.overflowed:
            self.accepted.add(event.call_id)

    def some_call(self, data: st.DataObject) -> str:
        live = list(self.engine.calls)
        pool = live + self.arrived[-5:] + ["never-seen"]
        return data.draw(st.sampled_from(pool))

    def some_agent(self, data: st.DataObject, *states: AgentState) -> str:
        """Mostly an agent in one of `states` (if any), sometimes anyone."""
        fitting = [a.agent_id for a in self.engine.agents.values() if a.state in states]
        return data.draw(st.sampled_from(fitting) if fitting else agent_ids)

    def calls_in(self, state: CallState) -> list[str]:
        return [c.call_id for c in self.engine.calls.values() if c.state is state]

    # Hypothesis draws earlier rules and smaller values more often: the everyday flow comes
    # first, and `stray` (a random, usually stale agent/call pair, as duplicated or late PBX
    # events are) is the rarer branch.

    @rule(
        skill=st.sampled_from(SKILLS),
        priority=st.sampled_from([0, 0, 0, 5]),
        flags=st.sets(st.sampled_from([IMPORTANT, REPEAT_FAULT])),
        dt=small_dt,
    )
    def call_arrives(self, skill: str, priority: int, flags: set[str], dt: float) -> None:
        call_id = f"17000000{len(self.arrived):02d}.1"
        self.arrived.append(call_id)
        self.apply(CallArrived(call_id, "1380000", skill, priority, "0101", frozenset(flags)), dt)

    @rule(data=st.data(), stray=rarely, dt=small_dt)
    def answer(self, data: st.DataObject, stray: bool, dt: float) -> None:
        """Every ringing seat picks up (or one stray answer)."""
        ringing = self.calls_in(CallState.OFFERED)
        if ringing and not stray:
            self.now += dt
            for call_id in ringing:
                self.apply(AgentAnswered(self.engine.calls[call_id].offered_to or "", call_id))
        else:
            self.apply(AgentAnswered(data.draw(agent_ids), self.some_call(data)), dt)

    @rule(data=st.data(), stray=rarely, dt=st.floats(0.0, 300.0, allow_nan=False))
    def call_ended(self, data: st.DataObject, stray: bool, dt: float) -> None:
        connected = self.calls_in(CallState.CONNECTED)
        if connected and not stray:
            self.apply(CallEnded(data.draw(st.sampled_from(connected))), dt)
        else:
            self.apply(CallEnded(self.some_call(data)), dt)

    @rule(data=st.data(), to_agent=st.booleans(), stray=rarely, dt=small_dt)
    def transfer(self, data: st.DataObject, to_agent: bool, stray: bool, dt: float) -> None:
        """The desktop's transfer of a connected call, to a skill or to an agent."""
        connected = self.calls_in(CallState.CONNECTED)
        call_id = (data.draw(st.sampled_from(connected)) if connected and not stray
                   else self.some_call(data))
        if to_agent:
            target = self.some_agent(data, AgentState.READY)
            self.apply(CallTransferred(call_id, agent_id=target), dt)
        else:
            self.apply(CallTransferred(call_id, skill=data.draw(st.sampled_from(SKILLS))), dt)

    @rule(agent=agent_ids, skills=skill_sets, dt=small_dt)
    def login_ready(self, agent: str, skills: dict[str, int], dt: float) -> None:
        self.apply(AgentLogin(agent, f"seat{agent}", skills), dt)
        self.apply(AgentReady(agent))

    @rule(dt=st.floats(0.0, 150.0, allow_nan=False), midnight=rarely)
    def tick(self, dt: float, midnight: bool) -> None:
        self.apply(Tick(), dt)
        if midnight:
            self.apply(ResetDailyStats())

    @rule(data=st.data(), stray=rarely, dt=small_dt)
    def ring_timeout(self, data: st.DataObject, stray: bool, dt: float) -> None:
        ringing = self.calls_in(CallState.OFFERED)
        if ringing and not stray:
            call = self.engine.calls[data.draw(st.sampled_from(ringing))]
            self.apply(RingTimeout(call.offered_to or "", call.call_id), dt)
        else:
            self.apply(RingTimeout(data.draw(agent_ids), self.some_call(data)), dt)

    @rule(data=st.data(), dt=small_dt)
    def ready(self, data: st.DataObject, dt: float) -> None:
        self.apply(AgentReady(self.some_agent(data, AgentState.NOT_READY, AgentState.WRAP_UP)), dt)

    @rule(data=st.data(), number=st.sampled_from(["13800000001", "13800000002", ""]))
    def callback(self, data: st.DataObject, number: str) -> None:
        waiting = self.calls_in(CallState.WAITING)
        call_id = data.draw(st.sampled_from(waiting)) if waiting else self.some_call(data)
        self.apply(CallbackRequested(call_id, number))

    @rule(data=st.data(), dt=small_dt)
    def caller_hangs_up(self, data: st.DataObject, dt: float) -> None:
        self.apply(CallAbandoned(self.some_call(data)), dt)

    @rule(data=st.data(), reason=st.sampled_from(["break", "lunch", "training"]), dt=small_dt)
    def not_ready(self, data: st.DataObject, reason: str, dt: float) -> None:
        self.apply(AgentNotReady(self.some_agent(data, *AgentState), reason), dt)

    @rule(data=st.data(), dt=small_dt)
    def wrap_up(self, data: st.DataObject, dt: float) -> None:
        self.apply(AgentWrapUp(self.some_agent(data, *AgentState)), dt)

    @rule(data=st.data(), state=st.sampled_from(list(AgentState)), dt=small_dt)
    def force(self, data: st.DataObject, state: AgentState, dt: float) -> None:
        self.apply(SupervisorForce(self.some_agent(data, *AgentState), state, "supervisor"), dt)

    # --------------------------------------------------------------------------- calls

    @rule(data=st.data(), dt=small_dt)
    def logout(self, data: st.DataObject, dt: float) -> None:
        self.apply(AgentLogout(self.some_agent(data, AgentState.READY, AgentState.NOT_READY)), dt)

    @rule(agent=agent_ids, skills=skill_sets, seat=st.integers(0, 11), dt=small_dt)
    def login(self, agent: str, skills: dict[str, int], seat: int, dt: float) -> None:
        self.apply(AgentLogin(agent, f"seat{seat:02d}", skills), dt)

    @rule(cap=st.sampled_from([None, 1, 3]), deflect=st.sampled_from([None, 1.0, 90.0]),
          offer=st.sampled_from([0.0, 30.0]))
    def storm_switch(self, cap: int | None, deflect: float | None, offer: float) -> None:
        """Storm mode switches: the cap, the deflection threshold and the callback offer."""
        self.apply(HandlingChanged(queue_cap=cap, callback_offer_wait_s=offer,
                                   ewt_deflect_s=deflect))

    @rule(data=st.data())
    def duplicate_arrival(self, data: st.DataObject) -> None:
        self.apply(CallArrived(self.some_call(data), "1380000", "general"))

    @rule(dt=st.floats(0.0, 30.0, allow_nan=False))
    def restart(self, dt: float) -> None:
        """The CTI restarts from its last snapshot (JSON), then time moves on."""
        before = self.engine.snapshot()
        saved = json.loads(json.dumps(before.to_dict()))
        engine = AcdEngine(CONFIG)
        engine.restore(Snapshot.from_dict(saved))
        assert engine.snapshot().to_dict() == before.to_dict()
        engine.apply(self.engine.handling, self.now)  # the storm watch feeds it again
        self.engine = engine
        self.apply(Tick(), dt)

    # ----------------------------------------------------------------------- invariants

    @invariant()
    def engine_invariants(self) -> None:
        self.engine.assert_invariants()

    @invariant()
    def calls_are_accounted_for(self) -> None:
        assert set(self.engine.calls) <= self.accepted
        assert not self.overflowed & self.accepted
        for skill in SKILLS:
            c = self.engine.counters(skill)
            assert 0 <= c.answered_in_sl <= c.answered
            assert 0 <= c.abandoned_after_sl <= c.abandoned
            sl = c.service_level
            assert sl is None or 0.0 <= sl <= 1.0

    @invariant()
    def nobody_ready_while_a_call_they_can_take_waits(self) -> None:
        # after every input the engine has dispatched: no ready agent and eligible call left
        for call in self.engine.calls.values():
            if call.state in (CallState.WAITING, CallState.CALLBACK):
                agents = self.engine.agents.values()
                assert not eligible_agents(call, agents, self.now, CONFIG), call.call_id


AcdMachine.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAcdEngineStateful = AcdMachine.TestCase
