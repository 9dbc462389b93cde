"""ACD engine scenarios: routing, priority, fairness, widening, RONA, overflow, EWT, callbacks."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import TypeVar

import pytest

from acd.engine import (
    AcdEngine,
    AgentAnswered,
    AgentLogin,
    AgentLogout,
    AgentNotReady,
    AgentReady,
    CallAbandoned,
    CallArrived,
    CallbackRequested,
    CallEnded,
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
    AgentStateChanged,
    Announce,
    CallbackDial,
    CallState,
    CancelRing,
    CancelTimer,
    Effect,
    Overflow,
    QueueStats,
    Rejected,
    RingAgent,
    StartTimer,
    ring_timer,
    wrap_up_timer,
)

S = AgentState
E = TypeVar("E")


class Desk:
    """An engine with a clock the test moves; every apply checks the invariants."""

    def __init__(self, config: AcdConfig | None = None) -> None:
        self.engine = AcdEngine(config or AcdConfig())
        self.now = 0.0

    def __call__(self, event: Input, at: float | None = None) -> list[Effect]:
        if at is not None:
            assert at >= self.now
            self.now = at
        effects = self.engine.apply(event, self.now)
        self.engine.assert_invariants()
        return effects

    def ready(self, agent_id: str, skills: dict[str, int], seat: str | None = None) -> None:
        self(AgentLogin(agent_id, seat or f"seat-{agent_id}", skills))
        self(AgentReady(agent_id))

    def state(self, agent_id: str) -> AgentState:
        return self.engine.agents[agent_id].state


def only(effects: list[Effect], kind: type[E]) -> list[E]:
    return [e for e in effects if isinstance(e, kind)]


def rung(effects: list[Effect]) -> list[tuple[str, str]]:
    return [(e.agent_id, e.call_id) for e in only(effects, RingAgent)]


@pytest.fixture
def desk() -> Iterator[Desk]:
    yield Desk()


# ------------------------------------------------------------------------------ basic flow


def test_a_call_end_to_end(desk: Desk) -> None:
    desk.ready("a1", {"general": 3}, seat="seat07")
    effects = desk(CallArrived("L1", "13800000001", "general", account="0101"), at=10.0)
    ring = only(effects, RingAgent)[0]
    assert (ring.agent_id, ring.seat, ring.call_id, ring.account, ring.attempt) == (
        "a1",
        "seat07",
        "L1",
        "0101",
        1,
    )
    assert StartTimer(ring_timer("L1"), 25.0) in effects
    assert not only(effects, Announce)  # offered at once: nothing to announce
    assert desk.state("a1") is S.RESERVED

    effects = desk(AgentAnswered("a1", "L1"), at=14.0)
    assert CancelTimer(ring_timer("L1")) in effects
    assert desk.state("a1") is S.ON_CALL
    assert desk.engine.calls["L1"].state is CallState.CONNECTED

    effects = desk(CallEnded("L1"), at=100.0)
    assert StartTimer(wrap_up_timer("a1"), 115.0) in effects
    assert desk.state("a1") is S.WRAP_UP and "L1" not in desk.engine.calls

    desk(Tick(), at=114.0)
    assert desk.state("a1") is S.WRAP_UP
    effects = desk(Tick(), at=115.0)
    assert desk.state("a1") is S.READY
    assert desk.engine.agents["a1"].idle_since == 115.0
    assert desk.engine.agents["a1"].calls_handled == 1
    assert only(effects, AgentStateChanged)


def test_skill_decides_who_rings(desk: Desk) -> None:
    desk.ready("billing", {"billing": 5})
    desk.ready("repair", {"repair": 2})
    assert rung(desk(CallArrived("L1", "1", "repair"), at=1.0)) == [("repair", "L1")]
    assert rung(desk(CallArrived("L2", "2", "complaint"), at=2.0)) == []
    assert desk.engine.position("L2") == 1


def test_login_starts_not_ready_and_seat_is_exclusive(desk: Desk) -> None:
    desk(AgentLogin("a1", "seat01", {"general": 3}))
    assert desk.state("a1") is S.NOT_READY
    assert rung(desk(CallArrived("L1", "1", "general"))) == []
    effects = desk(AgentLogin("a2", "seat01", {"general": 3}))
    assert only(effects, Rejected) and "a2" not in desk.engine.agents
    assert rung(desk(AgentReady("a1"))) == [("a1", "L1")]


def test_agent_events_for_unknown_agents_are_rejected(desk: Desk) -> None:
    for event in (
        AgentReady("ghost"),
        AgentLogout("ghost"),
        AgentNotReady("ghost", "break"),
        SupervisorForce("ghost", S.READY),
    ):
        assert only(desk(event), Rejected)


# ------------------------------------------------------------------------------- priority


def test_important_and_repeat_fault_callers_go_before_consultations(desk: Desk) -> None:
    for agent_id in ("a1", "a2", "a3"):
        desk(AgentLogin(agent_id, f"seat-{agent_id}", {"general": 3, "repair": 3}))
    desk(CallArrived("consult", "1", "general"), at=0.0)
    desk(CallArrived("repeat", "2", "general", flags=frozenset({REPEAT_FAULT})), at=5.0)
    desk(CallArrived("vip", "3", "general", flags=frozenset({IMPORTANT})), at=9.0)
    order = [rung(desk(AgentReady(a), at=10.0))[0][1] for a in ("a1", "a2", "a3")]
    assert order == ["vip", "repeat", "consult"]


def test_priority_crosses_skill_queues(desk: Desk) -> None:
    desk(AgentLogin("a1", "s1", {"general": 3, "repair": 3}))
    desk(CallArrived("consult", "1", "general", priority=0), at=0.0)
    desk(CallArrived("fault", "2", "repair", priority=5), at=30.0)
    assert rung(desk(AgentReady("a1"), at=31.0)) == [("a1", "fault")]


# ------------------------------------------------------------------------------- fairness


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_longest_idle_spreads_calls_evenly(seed: int) -> None:
    rng = random.Random(seed)
    desk = Desk()
    agents = [f"a{i}" for i in range(6)]
    for a in agents:
        desk.ready(a, {"general": rng.randint(1, 5)})
    connected: dict[str, float] = {}  # call -> end time
    t = 0.0
    for n in range(240):
        t += 20.0
        for cid, end in list(connected.items()):
            if end <= t:
                desk(CallEnded(cid), at=end)
                del connected[cid]
        effects = desk(Tick(), at=t)
        effects += desk(CallArrived(f"L{n}", "1", "general"), at=t)
        for agent_id, cid in rung(effects):
            desk(AgentAnswered(agent_id, cid), at=t + 3)
            connected[cid] = t + 3 + 60.0  # same talk time for everyone
        t += 3
    handled = [desk.engine.agents[a].calls_handled for a in agents]
    assert sum(handled) >= 230
    assert max(handled) - min(handled) <= 1, handled


# ------------------------------------------------------------------------------- widening


def test_repair_call_widens_to_general_then_to_anyone(desk: Desk) -> None:
    desk.ready("general", {"general": 3})
    desk(CallArrived("R1", "1", "repair"), at=0.0)
    assert rung(desk(Tick(), at=60.0)) == []
    assert rung(desk(Tick(), at=60.5)) == [("general", "R1")]
    desk(AgentAnswered("general", "R1"), at=62.0)

    desk.ready("billing", {"billing": 3})
    desk(CallArrived("R2", "2", "repair"), at=62.0)
    assert rung(desk(Tick(), at=182.0)) == []
    assert rung(desk(Tick(), at=182.5)) == [("billing", "R2")]


def test_general_calls_never_take_repair_agents(desk: Desk) -> None:
    desk.ready("repair", {"repair": 3})
    desk(CallArrived("G1", "1", "general"), at=0.0)
    assert rung(desk(Tick(), at=3600.0)) == []


# ------------------------------------------------------------------------------------ RONA


def test_ring_no_answer_requeues_at_the_front_and_sets_rona(desk: Desk) -> None:
    desk.ready("a1", {"general": 3})
    desk(CallArrived("R1", "1", "repair"), at=0.0)  # no repair agent: waits
    desk(CallArrived("G1", "2", "general"), at=5.0)
    assert desk.engine.calls["G1"].offered_to == "a1"

    effects = desk(RingTimeout("a1", "G1"), at=20.0)
    assert CancelRing("a1", "seat-a1", "G1") in effects
    agent = desk.engine.agents["a1"]
    assert (agent.state, agent.reason) == (S.NOT_READY, "rona")
    g1 = desk.engine.calls["G1"]
    assert (g1.state, g1.requeued_front, g1.enqueued_at, g1.attempts) == (
        CallState.WAITING,
        True,
        5.0,
        1,
    )

    # an agent for both skills takes the front-requeued call before the older repair call
    desk(AgentLogin("a2", "s2", {"general": 3, "repair": 3}), at=30.0)
    effects = desk(AgentReady("a2"), at=30.0)
    assert rung(effects) == [("a2", "G1")]
    assert only(effects, RingAgent)[0].attempt == 2


def test_ring_timeout_also_fires_from_tick(desk: Desk) -> None:
    desk.ready("a1", {"general": 3})
    desk.ready("a2", {"general": 3})
    desk(CallArrived("G1", "1", "general"), at=0.0)
    first = desk.engine.calls["G1"].offered_to
    desk(Tick(), at=14.9)
    assert desk.engine.calls["G1"].offered_to == first
    effects = desk(Tick(), at=15.0)
    second = "a2" if first == "a1" else "a1"
    assert rung(effects) == [(second, "G1")]
    assert desk.engine.agents[first or ""].reason == "rona"
    # the late RingTimeout from the PBX is stale now
    assert only(desk(RingTimeout(first or "", "G1"), at=15.1), Rejected)


# -------------------------------------------------------------------------------- overflow


def test_new_calls_overflow_at_the_max_queue_length() -> None:
    desk = Desk(AcdConfig(max_queue_per_skill=3, overflow_target="province-backup"))
    for n in range(3):
        assert not only(desk(CallArrived(f"G{n}", "1", "general"), at=n), Overflow)
    effects = desk(CallArrived("G3", "1", "general"), at=4.0)
    assert effects == [Overflow("G3", "province-backup", "queue_full")]
    assert "G3" not in desk.engine.calls
    assert desk.engine.counters("general").overflowed == 1
    assert not only(desk(CallArrived("R0", "1", "repair"), at=5.0), Overflow)  # other skill
    assert only(desk(CallArrived("G3", "1", "general"), at=6.0), Rejected)  # known id


def test_a_skill_may_have_its_own_max_queue_length() -> None:
    desk = Desk(AcdConfig(max_queue_per_skill=5, max_queue_by_skill={"english": 1}))
    assert not only(desk(CallArrived("E0", "1", "english"), at=0.0), Overflow)
    assert only(desk(CallArrived("E1", "1", "english"), at=1.0), Overflow)
    for n in range(5):  # the other skills keep the default
        assert not only(desk(CallArrived(f"G{n}", "1", "general"), at=2.0 + n), Overflow)
    assert only(desk(CallArrived("G5", "1", "general"), at=8.0), Overflow)


def test_a_requeued_call_is_never_overflowed() -> None:
    desk = Desk(AcdConfig(max_queue_per_skill=1))
    desk.ready("a1", {"general": 3})
    desk(CallArrived("G0", "1", "general"), at=0.0)  # rings a1
    desk(CallArrived("G1", "1", "general"), at=1.0)  # fills the queue
    desk(RingTimeout("a1", "G0"), at=15.0)
    assert [c.call_id for c in desk.engine.queue("general")] == ["G0", "G1"]


# ------------------------------------------------------------------------------ announcing


def test_ewt_from_capacity_and_aht_survives_snapshot_restore() -> None:
    desk = Desk(AcdConfig(aht_initial_s=180.0, aht_smoothing=0.1, wrap_up_s=15.0))
    for a in ("a1", "a2"):
        desk.ready(a, {"general": 3})
    desk(AgentLogin("a3", "s3", {"general": 3}))  # logged in, not ready: no capacity
    desk(CallArrived("L1", "1", "general"), at=0.0)
    desk(CallArrived("L2", "1", "general"), at=0.5)
    for cid in ("L1", "L2"):
        desk(AgentAnswered(desk.engine.calls[cid].offered_to or "", cid), at=1.0)
    announce = only(desk(CallArrived("L3", "1", "general"), at=2.0), Announce)
    # 1 x 180 / 2 agents; a known wait offers the callback (the default handling's
    # callback_offer_wait_s is 0)
    assert announce == [Announce("L3", 1, 90.0, callback=True)]
    assert only(desk(CallArrived("L4", "1", "general"), at=3.0), Announce) == [
        Announce("L4", 2, 180.0, callback=True)
    ]

    desk(AgentNotReady("a3", "break"))  # no change: already not ready
    desk(CallEnded("L1"), at=101.0)  # 100 s talk + 15 s wrap-up = 115 s sample
    assert desk.engine.aht("general") == pytest.approx(173.5)
    desk(AgentNotReady("a1", "break"), at=102.0)  # leaves wrap-up for a break: capacity 1
    ewt = desk.engine.ewt("L4")
    assert ewt == pytest.approx(2 * 173.5)

    saved = json.loads(json.dumps(desk.engine.snapshot().to_dict()))
    fresh = AcdEngine(desk.engine.config)
    assert fresh.aht("general") == 180.0
    fresh.restore(Snapshot.from_dict(saved))
    fresh.assert_invariants()
    assert fresh.aht("general") == pytest.approx(173.5)
    assert fresh.ewt("L4") == pytest.approx(ewt)
    assert fresh.calls["L3"].enqueued_at == 2.0 and fresh.calls["L4"].enqueued_at == 3.0
    assert [c.call_id for c in fresh.queue("general")] == ["L3", "L4"]
    assert fresh.agents == desk.engine.agents
    assert fresh.counters("general") == desk.engine.counters("general")
    # and it carries on: a2 hangs up, wraps up, takes L3
    fresh.apply(CallEnded("L2"), 110.0)
    assert rung(fresh.apply(Tick(), 125.0)) == [("a2", "L3")]
    fresh.assert_invariants()


def test_periodic_announcements_to_waiting_callers_only() -> None:
    desk = Desk(AcdConfig(announce_every_s=30.0))
    desk(CallArrived("L1", "1", "general"), at=0.0)
    desk(CallArrived("L2", "2", "general"), at=10.0)
    desk(CallbackRequested("L1", "13800000001"), at=11.0)
    assert only(desk(Tick(), at=29.0), Announce) == []
    assert only(desk(Tick(), at=40.0), Announce) == [Announce("L2", 2, None)]
    assert only(desk(Tick(), at=60.0), Announce) == []
    assert only(desk(Tick(), at=70.0), Announce) == [Announce("L2", 2, None)]


def test_restore_rejects_an_inconsistent_snapshot(desk: Desk) -> None:
    desk.ready("a1", {"general": 3})
    desk(CallArrived("L1", "1", "general"))
    snap = desk.engine.snapshot()
    broken = Snapshot(agents=(), calls=snap.calls, aht_s={})  # L1 offered to a missing agent
    with pytest.raises(ValueError, match="inconsistent"):
        AcdEngine().restore(broken)


# ------------------------------------------------------------------------------- callbacks


def test_callback_keeps_its_place_and_dials_with_an_agent_reserved(desk: Desk) -> None:
    desk.ready("a1", {"general": 3}, seat="seat03")
    desk(CallArrived("L0", "1", "general"), at=0.0)
    desk(AgentAnswered("a1", "L0"), at=2.0)
    desk(CallArrived("L1", "13800000001", "general", account="0101"), at=5.0)
    desk(CallArrived("L2", "13800000002", "general"), at=6.0)

    assert desk(CallbackRequested("L1", "13800000001"), at=30.0) == []
    assert desk(CallAbandoned("L1"), at=31.0) == []  # the caller's leg hangs up: expected
    assert desk(CallEnded("L1"), at=31.0) == []
    assert desk.engine.calls["L1"].state is CallState.CALLBACK
    assert desk.engine.position("L1") == 1 and desk.engine.position("L2") == 2
    stats = {s.skill: s for s in desk.engine.queue_stats(31.0)}["general"]
    assert (stats.waiting, stats.callbacks_waiting) == (2, 1)

    desk(CallEnded("L0"), at=40.0)
    effects = desk(Tick(), at=55.0)  # wrap-up over: a1 is ready and L1's turn has come
    assert only(effects, CallbackDial) == [
        CallbackDial("L1", "a1", "seat03", "13800000001", "0101", 1)
    ]
    assert not only(effects, RingAgent)
    agent = desk.engine.agents["a1"]
    assert (agent.state, agent.call_id) == (S.RESERVED, "L1")
    assert desk(CallAbandoned("L1"), at=56.0) == []  # a late duplicate of the old leg

    desk(AgentAnswered("a1", "L1"), at=58.0)
    assert desk.engine.calls["L1"].state is CallState.CONNECTED
    desk(CallEnded("L1"), at=120.0)
    assert desk.state("a1") is S.WRAP_UP
    counters = desk.engine.counters("general")
    assert (counters.callbacks_requested, counters.callbacks_connected) == (1, 1)
    assert counters.callbacks_after_sl == 1  # waited 25 s > 20 s before giving up


def test_callback_rona_goes_back_to_the_front_as_a_callback(desk: Desk) -> None:
    desk(CallArrived("L1", "1", "general"), at=0.0)
    desk(CallbackRequested("L1", "13800000001"), at=1.0)
    desk.ready("a1", {"general": 3})
    desk(RingTimeout("a1", "L1"), at=20.0)
    call = desk.engine.calls["L1"]
    assert (call.state, call.requeued_front, call.callback_number) == (
        CallState.CALLBACK,
        True,
        "13800000001",
    )


def test_callback_requests_that_do_not_apply() -> None:
    desk = Desk(AcdConfig(callback_enabled=False))
    desk(CallArrived("L1", "1", "general"))
    assert only(desk(CallbackRequested("L1", "1")), Rejected)
    desk = Desk()
    desk(CallArrived("L1", "1", "general"))
    assert only(desk(CallbackRequested("L1", "")), Rejected)
    assert only(desk(CallbackRequested("nope", "1")), Rejected)
    assert desk(CallbackRequested("L1", "1")) == []
    assert desk(CallbackRequested("L1", "1")) == []  # repeat
    assert only(desk(CallbackRequested("L1", "2")), Rejected)
    desk.ready("a1", {"general": 3})
    desk(AgentAnswered("a1", "L1"))
    desk(CallArrived("L2", "1", "general"))
    desk(AgentLogin("a2", "s2", {"general": 1}))
    desk(AgentReady("a2"))
    assert only(desk(CallbackRequested("L2", "1")), Rejected)  # already ringing a2


# ------------------------------------------------------------------- abandons and supervisors


def test_caller_hangs_up_while_the_seat_rings(desk: Desk) -> None:
    desk.ready("a1", {"general": 3})
    idle_since = desk.engine.agents["a1"].idle_since
    desk(CallArrived("L1", "1", "general"), at=5.0)
    effects = desk(CallAbandoned("L1"), at=8.0)
    assert CancelRing("a1", "seat-a1", "L1") in effects
    agent = desk.engine.agents["a1"]
    assert (agent.state, agent.idle_since, agent.call_id) == (S.READY, idle_since, None)
    assert desk.engine.counters("general").abandoned == 1
    assert desk(CallAbandoned("L1"), at=9.0) == []  # repeat
    assert desk(CallEnded("L1"), at=9.0) == []
    assert only(desk(CallEnded("never-seen"), at=9.0), Rejected)


def test_agent_cannot_log_out_or_break_while_ringing_or_on_a_call(desk: Desk) -> None:
    desk.ready("a1", {"general": 3})
    desk(CallArrived("L1", "1", "general"))
    assert only(desk(AgentLogout("a1")), Rejected)
    assert only(desk(AgentNotReady("a1", "break")), Rejected)
    desk(AgentAnswered("a1", "L1"))
    assert only(desk(AgentLogout("a1")), Rejected)
    assert desk(AgentAnswered("a1", "L1")) == []  # repeat
    assert only(desk(AgentAnswered("a2", "L1")), Rejected)


def test_supervisor_clears_an_agent_stuck_on_call(desk: Desk) -> None:
    desk.ready("a1", {"general": 3})
    desk(CallArrived("L1", "1", "general"))
    desk(AgentAnswered("a1", "L1"))
    desk(SupervisorForce("a1", S.NOT_READY, "stuck"), at=3600.0)
    agent = desk.engine.agents["a1"]
    assert (agent.state, agent.reason, agent.call_id) == (S.NOT_READY, "stuck", None)
    assert "L1" not in desk.engine.calls
    assert desk(CallEnded("L1"), at=3601.0) == []  # the lost hangup turns up after all


def test_supervisor_force_while_ringing_requeues_the_call(desk: Desk) -> None:
    desk.ready("a1", {"general": 3})
    desk(CallArrived("L1", "1", "general"))
    desk(AgentLogin("a2", "s2", {"general": 3}))
    effects = desk(SupervisorForce("a1", S.LOGGED_OUT), at=4.0)
    assert CancelRing("a1", "seat-a1", "L1") in effects
    assert desk.state("a1") is S.LOGGED_OUT
    assert desk.engine.calls["L1"].requeued_front
    assert rung(desk(AgentReady("a2"), at=5.0)) == [("a2", "L1")]
    assert only(desk(SupervisorForce("a2", S.ON_CALL)), Rejected)
    assert desk.engine.calls["L1"].offered_to == "a2"  # a rejected force changes nothing


# -------------------------------------------------------------------------------- statistics


def test_service_level_definition() -> None:
    desk = Desk(AcdConfig(service_level_s=20.0))
    desk(AgentLogin("a1", "s1", {"general": 3}))
    desk(AgentLogin("a2", "s2", {"general": 3}))
    desk(CallArrived("fast", "1", "general"), at=0.0)
    desk(CallArrived("slow", "1", "general"), at=0.1)
    desk(CallArrived("short-abandon", "1", "general"), at=0.2)
    desk(CallArrived("long-abandon", "1", "general"), at=0.3)
    desk(AgentReady("a1"), at=9.0)
    desk(AgentAnswered("a1", "fast"), at=10.0)  # 10 s: in
    desk(CallAbandoned("short-abandon"), at=15.0)  # left out
    desk(AgentReady("a2"), at=25.0)
    desk(AgentAnswered("a2", "slow"), at=30.0)  # 30 s: late
    desk(CallAbandoned("long-abandon"), at=40.0)  # counts against
    c = desk.engine.counters("general")
    assert (c.answered, c.answered_in_sl, c.abandoned, c.abandoned_after_sl) == (2, 1, 2, 1)
    assert c.service_level == pytest.approx(1 / 3)

    stats = only(desk(Tick(), at=41.0), QueueStats)
    general = next(s for s in stats if s.skill == "general")
    assert general.service_level == pytest.approx(1 / 3)
    assert (general.answered, general.abandoned) == (2, 2)
    assert general.agents["on_call"] == 2 and general.agents["ready"] == 0
    assert only(desk(Tick(), at=45.0), QueueStats) == []  # every stats_every_s only
    assert only(desk(Tick(), at=51.0), QueueStats)

    desk(ResetDailyStats(), at=86400.0)
    assert desk.engine.counters("general").service_level is None


def test_queue_stats_longest_wait(desk: Desk) -> None:
    desk(CallArrived("L1", "1", "general"), at=0.0)
    desk(CallArrived("L2", "1", "general"), at=30.0)
    stats = {s.skill: s for s in desk.engine.queue_stats(45.0)}
    assert (stats["general"].waiting, stats["general"].longest_wait_s) == (2, 45.0)
    assert stats["general"].service_level is None


def test_bad_config_fails_at_startup() -> None:
    with pytest.raises(ValueError, match="max_queue_per_skill"):
        AcdConfig(max_queue_per_skill=0)
    with pytest.raises(ValueError, match="max_queue_by_skill"):
        AcdConfig(max_queue_by_skill={"english": 0})
    with pytest.raises(ValueError, match="aht_smoothing"):
        AcdConfig(aht_smoothing=0.0)
