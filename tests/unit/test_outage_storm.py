"""outages.storm: manual and automatic switching with hysteresis, and the profile in force."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from outages.storm import (
    NORMAL,
    STORM,
    Handling,
    Load,
    StormChange,
    StormPolicy,
    StormState,
    Trigger,
    check_profiles,
    evaluate,
    handling,
    switch_off,
    switch_on,
)

T0 = datetime(2026, 7, 14, 6, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
P = StormPolicy()  # 300 s AHT: 50 agents answer 10 calls a minute
OFF = StormState()


def load(calls: float, agents: int = 50, faults: int = 0) -> Load:
    return Load(calls_per_min=calls, agents_logged_in=agents, active_fault_outages=faults)


def run(state: StormState, samples: list[Load], start: datetime = T0
        ) -> tuple[StormState, list[StormChange]]:
    changes = []
    for i, sample in enumerate(samples):
        state, change = evaluate(state, sample, start + i * MIN, P)
        if change is not None:
            changes.append(change)
    return state, changes


def test_policy_needs_a_hysteresis_band() -> None:
    with pytest.raises(ValueError, match="off_ratio"):
        StormPolicy(on_ratio=1.0, off_ratio=1.0)
    with pytest.raises(ValueError, match="faults_off"):
        StormPolicy(faults_on=5, faults_off=5)
    with pytest.raises(ValueError, match="aht_s"):
        StormPolicy(aht_s=0)


def test_inflow_against_capacity_switches_it_on() -> None:
    state, change = evaluate(OFF, load(19.9), T0, P)   # ratio 1.99
    assert not state.on and change is None
    state, change = evaluate(OFF, load(20), T0, P)     # ratio 2.0
    assert state.on and not state.manual and state.by == "auto"
    assert change is not None and change.reason is Trigger.INFLOW and change.on
    assert "20 calls/min" in change.detail


def test_capacity_is_what_the_logged_in_agents_can_answer() -> None:
    assert load(20, agents=50).ratio(P) == pytest.approx(2.0)
    assert evaluate(OFF, load(20, agents=100), T0, P)[0].on is False
    assert load(6, agents=0).ratio(P) == float("inf")
    assert evaluate(OFF, load(6, agents=0), T0, P)[0].on
    # a quiet night with two agents is not a storm, however small the capacity
    assert evaluate(OFF, load(4, agents=1), T0, P)[0].on is False


def test_active_fault_outages_switch_it_on() -> None:
    state, change = evaluate(OFF, load(1, faults=10), T0, P)
    assert state.on and change is not None and change.reason is Trigger.FAULTS


def test_it_does_not_flap_inside_the_band() -> None:
    on, _ = evaluate(OFF, load(25), T0, P)
    # 15 (ratio 1.5) is under the on level but above the off level: stays on, indefinitely
    state, changes = run(on, [load(15)] * 120)
    assert state.on and changes == []
    # and from off, the same sample never turns it on
    state, changes = run(OFF, [load(15)] * 120)
    assert not state.on and changes == []


def test_it_goes_off_only_after_calm_for_the_whole_period() -> None:
    on, _ = evaluate(OFF, load(25), T0 - MIN, P)
    # calm (ratio 1.0) for 14 minutes, one busy minute, then calm again
    samples = [load(10)] * 14 + [load(15)] + [load(10)] * 15 + [load(10)]
    state, changes = run(on, samples)
    assert len(changes) == 1
    off = changes[0]
    assert not off.on and off.reason is Trigger.CALM and off.by == "auto"
    assert off.at == T0 + 30 * MIN  # 15 minutes after the calm restarted at minute 15
    assert not state.on and state.calm_since is None


def test_faults_above_the_off_level_keep_it_on() -> None:
    on, _ = evaluate(OFF, load(1, faults=12), T0, P)
    state, changes = run(on, [load(1, faults=6)] * 60, start=T0 + MIN)
    assert state.on and changes == []
    state, changes = run(state, [load(1, faults=5)] * 16, start=T0 + 61 * MIN)
    assert not state.on and len(changes) == 1


def test_a_supervisor_on_holds_whatever_the_load() -> None:
    state, change = switch_on(OFF, "sup01", T0)
    assert change == StormChange(True, T0, "sup01", Trigger.MANUAL)
    state, changes = run(state, [load(0)] * 120)
    assert state.on and state.manual and changes == []
    assert switch_on(state, "sup02", T0) == (state, None)   # already on by hand


def test_taking_over_an_automatic_storm_is_audited() -> None:
    auto, _ = evaluate(OFF, load(30), T0, P)
    state, change = switch_on(auto, "sup01", T0 + MIN)
    assert state.manual and change is not None and change.by == "sup01"


def test_a_supervisor_off_is_not_overruled_for_the_hold() -> None:
    on, _ = evaluate(OFF, load(30), T0, P)
    state, change = switch_off(on, "sup01", T0 + MIN, P)
    assert not state.on and change == StormChange(False, T0 + MIN, "sup01", Trigger.MANUAL)
    state, changes = run(state, [load(30)] * 30, start=T0 + MIN)
    assert not state.on and changes == []                    # held for 30 minutes
    state, change = evaluate(state, load(30), T0 + 31 * MIN, P)
    assert state.on and change is not None and change.reason is Trigger.INFLOW


def test_switching_off_when_off_records_nothing_but_still_holds() -> None:
    state, change = switch_off(OFF, "sup01", T0, P)
    assert change is None and state.auto_blocked_until == T0 + P.manual_off_hold
    assert not evaluate(state, load(50), T0 + MIN, P)[0].on


def test_times_must_be_aware() -> None:
    with pytest.raises(ValueError, match="naive"):
        evaluate(OFF, load(1), datetime(2026, 7, 14), P)
    with pytest.raises(ValueError, match="naive"):
        switch_on(OFF, "sup01", datetime(2026, 7, 14))


# ------------------------------------------------------------------------- what changes


def test_the_storm_profile_changes_everything_the_issue_lists() -> None:
    assert STORM.outage_first and STORM.short_menus and STORM.campaigns_paused and STORM.banner
    assert STORM.callback_offer_wait_s < NORMAL.callback_offer_wait_s
    assert STORM.queue_cap < NORMAL.queue_cap
    assert STORM.ewt_deflect_s is not None and NORMAL.ewt_deflect_s is None
    check_profiles(NORMAL, STORM)


def test_everything_reverts_when_it_goes_off() -> None:
    on, _ = switch_on(OFF, "sup01", T0)
    assert handling(on) is STORM
    off, _ = switch_off(on, "sup01", T0 + 60 * MIN, P)
    assert handling(off) == NORMAL == Handling()
    with pytest.raises(dataclasses.FrozenInstanceError):
        STORM.queue_cap = 500  # type: ignore[misc]


@pytest.mark.parametrize(("field", "value", "words"), [
    ("queue_cap", 100, "queue_cap"),
    ("callback_offer_wait_s", 600.0, "callback_offer_wait_s"),
    ("ewt_deflect_s", None, "ewt_deflect_s"),
    ("outage_first", False, "outage-first"),
])
def test_a_looser_storm_profile_is_refused(field: str, value: Any, words: str) -> None:
    changes: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=words):
        check_profiles(NORMAL, dataclasses.replace(STORM, **changes))
