"""Storm handling in the ACD (HandlingChanged): the tighter queue cap, the callback offer, EWT
deflection once per call, and everything back when storm mode goes off."""

from __future__ import annotations

import json

import pytest

from acd.engine import (
    AcdEngine,
    AgentAnswered,
    CallArrived,
    CallEnded,
    HandlingChanged,
    RingTimeout,
    Snapshot,
    SupervisorForce,
    Tick,
)
from acd.model import AcdConfig, AgentState, Announce, Deflect, Overflow, Rejected
from tests.unit.acd.test_engine import Desk, only

# outages.storm's profiles, as the storm watch feeds them (NORMAL: no deflection, cap 60)
NORMAL = HandlingChanged(queue_cap=60, callback_offer_wait_s=120.0, ewt_deflect_s=None)
STORM = HandlingChanged(queue_cap=3, callback_offer_wait_s=30.0, ewt_deflect_s=180.0)
WIDE_STORM = HandlingChanged(queue_cap=30, callback_offer_wait_s=30.0, ewt_deflect_s=180.0)


def _busy_desk(agents: int = 2, config: AcdConfig | None = None) -> Desk:
    """Agents logged in and all on calls: every new caller waits."""
    desk = Desk(config or AcdConfig(max_queue_per_skill=5, aht_initial_s=120.0))
    for n in range(agents):
        desk.ready(f"a{n}", {"general": 3})
        desk(CallArrived(f"T{n}", "1", "general"), at=0.0)
        desk(AgentAnswered(f"a{n}", f"T{n}"), at=0.0)
    return desk


def _fill(desk: Desk, prefix: str, n: int, at: float) -> list[Overflow]:
    out: list[Overflow] = []
    for i in range(n):
        out += only(desk(CallArrived(f"{prefix}{i}", "1", "general"), at=at + i / 10), Overflow)
    return out


def test_storm_on_tightens_the_cap_and_off_restores_the_config_cap() -> None:
    desk = _busy_desk()
    assert desk.engine.max_queue("general") == 5
    assert desk(STORM, at=1.0) == []
    assert desk.engine.max_queue("general") == 3  # min(config 5, storm 3)
    overflowed = _fill(desk, "S", 4, at=2.0)
    assert [o.call_id for o in overflowed] == ["S3"]
    # the all-busy message names the wait the caller would have had: 4th x 120 s / 2 agents
    assert overflowed[0].ewt_s == pytest.approx(240.0)
    assert desk.engine.counters("general").overflowed == 1

    desk(NORMAL, at=10.0)  # storm off: the config's 5 (the normal profile's 60 is looser)
    assert desk.engine.max_queue("general") == 5
    assert _fill(desk, "N", 3, at=11.0) == [Overflow("N2", "overflow", "queue_full", 360.0)]
    assert [c.call_id for c in desk.engine.queue("general")] == ["S0", "S1", "S2", "N0", "N1"]


def test_a_tighter_cap_keeps_the_callers_already_waiting() -> None:
    desk = _busy_desk()
    assert _fill(desk, "W", 5, at=1.0) == []
    desk(STORM, at=2.0)
    assert len(desk.engine.queue("general")) == 5  # nobody is put out
    assert [o.call_id for o in _fill(desk, "X", 1, at=3.0)] == ["X0"]
    desk(CallEnded("T0"), at=4.0)  # an agent frees up after wrap-up and takes W0
    desk(Tick(), at=20.0)
    assert len(desk.engine.queue("general")) == 4  # still above the cap: still full
    assert [o.call_id for o in _fill(desk, "Y", 1, at=21.0)] == ["Y0"]


def test_the_inflow_counter_counts_queued_and_overflowed_calls() -> None:
    desk = _busy_desk()
    desk(STORM, at=1.0)
    _fill(desk, "C", 5, at=2.0)
    c = desk.engine.counters("general")
    assert (c.arrived, c.overflowed) == (2 + 5, 2)  # the two talking calls arrived too
    saved = json.loads(json.dumps(desk.engine.snapshot().to_dict()))
    assert Snapshot.from_dict(saved).counters["general"].arrived == 7
    del saved["counters"]["general"]["arrived"]  # a snapshot from before the counter
    assert Snapshot.from_dict(saved).counters["general"].arrived == 0


def test_a_call_whose_wait_passes_the_threshold_is_deflected_once() -> None:
    desk = _busy_desk(config=AcdConfig(max_queue_per_skill=10, aht_initial_s=120.0,
                                       announce_every_s=30.0))
    desk(WIDE_STORM, at=1.0)
    # positions 1..3: 60, 120, 180 s: at the threshold is not past it
    for i in range(3):
        effects = desk(CallArrived(f"L{i}", "1", "general"), at=2.0 + i)
        assert not only(effects, Deflect)
        assert only(effects, Announce)[0].callback  # 60 s and more >= 30 s: offered
    # the 4th waits 240 s: told at once, instead of the position announcement
    effects = desk(CallArrived("L3", "1", "general"), at=6.0)
    assert only(effects, Deflect) == [Deflect("L3", 240.0, True)]
    assert not only(effects, Announce)
    # ticks go by: never told again, and the regular announcements resume for it
    told: list[Deflect] = []
    announced: list[str] = []
    for t in range(7, 200):
        effects = desk(Tick(), at=float(t))
        told += only(effects, Deflect)
        announced += [a.call_id for a in only(effects, Announce)]
    assert told == []
    assert "L3" in announced
    assert desk.engine.calls["L3"].deflected


def test_a_wait_that_grows_past_the_threshold_is_deflected_on_a_tick() -> None:
    desk = _busy_desk(agents=2, config=AcdConfig(max_queue_per_skill=10, aht_initial_s=120.0))
    for i in range(3):
        desk(CallArrived(f"L{i}", "1", "general"), at=1.0 + i)  # 60, 120, 180 s
    desk(WIDE_STORM, at=5.0)
    assert only(desk(Tick(), at=6.0), Deflect) == []
    # an agent's break halves the capacity: every wait doubles
    effects = desk(SupervisorForce("a1", AgentState.NOT_READY, "break"), at=7.0)
    effects += desk(Tick(), at=8.0)
    deflected = only(effects, Deflect)
    assert [d.call_id for d in deflected] == ["L1", "L2"]  # 240 s and 360 s; L0 120 s
    assert [d.ewt_s for d in deflected] == [pytest.approx(240.0), pytest.approx(360.0)]
    assert not any(only(desk(Tick(), at=9.0 + t), Deflect) for t in range(100))


def test_a_deflected_call_put_back_after_a_ring_no_answer_is_not_told_again() -> None:
    desk = _busy_desk(agents=2, config=AcdConfig(max_queue_per_skill=10, aht_initial_s=400.0,
                                                 wrap_up_s=0.0))
    desk(WIDE_STORM, at=1.0)
    effects = desk(CallArrived("L0", "1", "general"), at=2.0)  # 1 x 400 / 2 = 200 s
    assert only(effects, Deflect) == [Deflect("L0", 200.0, True)]
    desk(CallEnded("T0"), at=3.0)
    desk(Tick(), at=3.0)  # a0's (zero) wrap-up ends: L0 rings there
    assert desk.engine.calls["L0"].offered_to == "a0"
    desk(RingTimeout("a0", "L0"), at=4.0)  # back at the front; a0 not ready (rona)
    ewt = desk.engine.ewt("L0")  # 1 x AHT (3 s talk learnt) / 1 agent
    assert ewt is not None and ewt > 180.0  # still past the threshold
    assert not any(only(desk(Tick(), at=5.0 + t), Deflect) for t in range(100))


def test_storm_off_stops_deflection_and_callback_offers_follow_the_normal_wait() -> None:
    desk = _busy_desk(config=AcdConfig(max_queue_per_skill=10, aht_initial_s=120.0))
    desk(STORM, at=1.0)
    desk(NORMAL, at=2.0)
    for i in range(5):
        effects = desk(CallArrived(f"L{i}", "1", "general"), at=3.0 + i)
        assert not only(effects, Deflect)
        # normal days: the callback is offered from 120 s of expected wait on
        (announce,) = only(effects, Announce)
        assert announce.callback is (announce.ewt_s is not None and announce.ewt_s >= 120.0)
    assert not any(only(desk(Tick(), at=float(t)), Deflect) for t in range(10, 100))


def test_no_callback_offer_without_callbacks_and_the_deflection_says_so() -> None:
    desk = _busy_desk(config=AcdConfig(max_queue_per_skill=10, aht_initial_s=120.0,
                                       callback_enabled=False))
    desk(WIDE_STORM, at=1.0)
    effects = []
    for i in range(4):
        effects += desk(CallArrived(f"L{i}", "1", "general"), at=2.0 + i)
    assert not any(a.callback for a in only(effects, Announce))
    assert only(effects, Deflect) == [Deflect("L3", 240.0, False)]


def test_an_unknown_wait_is_not_deflected() -> None:
    desk = Desk(AcdConfig(max_queue_per_skill=10))
    desk(STORM, at=0.0)
    effects = desk(CallArrived("L0", "1", "general"), at=1.0)  # no agent at all: no EWT
    assert only(effects, Announce) == [Announce("L0", 1, None, False)]
    assert not any(only(desk(Tick(), at=float(t)), Deflect) for t in range(2, 100))


@pytest.mark.parametrize("bad", [
    HandlingChanged(queue_cap=0),
    HandlingChanged(callback_offer_wait_s=-1.0),
    HandlingChanged(ewt_deflect_s=0.0),
    HandlingChanged(callback_offer_wait_s=float("nan")),
])
def test_an_invalid_handling_is_rejected_and_changes_nothing(bad: HandlingChanged) -> None:
    engine = AcdEngine(AcdConfig(max_queue_per_skill=5))
    engine.apply(STORM, 0.0)
    assert only(engine.apply(bad, 1.0), Rejected)
    assert engine.handling == STORM and engine.max_queue("general") == 3
