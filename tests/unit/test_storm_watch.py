"""The storm watch (callcenter.storm_watch): the switch reaches the ACD as a HandlingChanged
within one tick, automatic switching on the ACD's inflow and the active faults, and a
supervisor's switch held against it. Fakes at the ports: the switch row, the ACD's view."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acd import engine as acd
from acd.model import AcdConfig
from callcenter.acd_service import AcdView
from callcenter.outage_service import Who
from callcenter.storm_watch import AUTO_WHO, StormWatch, handling_input, state_of
from config.storm import StormSettings, storm_settings
from cti.db.outages import StormRow
from outages.storm import NORMAL, STORM, StormPolicy, StormState

T0 = datetime(2026, 7, 14, 8, 0, tzinfo=UTC)
POLICY = StormPolicy(aht_s=300.0, on_ratio=2.0, off_ratio=1.0, min_calls_per_min=5.0,
                     faults_on=10, faults_off=5, calm_for=timedelta(minutes=2),
                     manual_off_hold=timedelta(minutes=30))
SETTINGS = StormSettings(policy=POLICY, watch_every_s=3.0)


class FakeSwitch:
    """The storm_state row, as OutageService keeps it; SQLite's naive times included."""

    def __init__(self) -> None:
        self.row = StormRow(False, None, None, None, None)
        self.switched: list[tuple[bool, str, str]] = []

    def storm_state(self) -> StormRow:
        return self.row

    def set_storm(self, on: bool, who: Who, now: datetime, *, trigger: str = "manual",
                  detail: str = "") -> bool:
        if self.row.on is on and self.row.by is not None:
            return False
        self.row = StormRow(on, now.replace(tzinfo=None), who.id, trigger, detail)
        self.switched.append((on, who.id, trigger))
        return True


class FakeAcd:
    """A real ACD engine behind the view the watch reads; what it submits is kept."""

    def __init__(self) -> None:
        self.engine = acd.AcdEngine(AcdConfig(max_queue_per_skill=1000))
        self.inbox: list[Any] = []
        self.calls = 0

    @property
    def view(self) -> AcdView:
        return AcdView.of(self.engine, {}, 0.0, 0)

    def submit(self, item: Any) -> bool:
        self.inbox.append(item)
        self.engine.apply(item, 0.0)
        return True

    def login(self, n: int) -> None:
        for i in range(n):
            self.engine.apply(acd.AgentLogin(f"a{i}", f"seat{i:02d}", {"general": 3}), 0.0)

    def arrive(self, n: int) -> None:
        for _ in range(n):
            self.calls += 1
            self.engine.apply(acd.CallArrived(f"c{self.calls}", "1", "general"), 0.0)


class Rig:
    def __init__(self, settings: StormSettings = SETTINGS) -> None:
        self.now = T0
        self.faults = 0
        self.switch = FakeSwitch()
        self.acd = FakeAcd()
        self.watch = StormWatch(self.switch, self.acd, settings, lambda _now: self.faults,
                                clock=lambda: self.now)

    async def tick(self, after_s: float = 3.0) -> None:
        self.now += timedelta(seconds=after_s)
        await self.watch.tick()

    def fed(self) -> list[acd.HandlingChanged]:
        return [i for i in self.acd.inbox if isinstance(i, acd.HandlingChanged)]


STORM_IN = handling_input(StormState(on=True), SETTINGS)
NORMAL_IN = handling_input(StormState(), SETTINGS)


async def test_a_console_switch_reaches_the_acd_within_one_tick_and_off_reverts() -> None:
    rig = Rig()
    assert rig.watch.outbound_paused  # nothing read yet: the outbound engine waits
    await rig.tick()
    assert rig.fed() == [NORMAL_IN]  # seeded from the row: off
    assert not rig.watch.outbound_paused
    assert rig.acd.engine.max_queue("general") == NORMAL.queue_cap
    rig.switch.set_storm(True, Who("S05", "supervisor"), rig.now)  # the console
    await rig.tick()
    assert rig.fed() == [NORMAL_IN, STORM_IN]
    assert rig.acd.engine.max_queue("general") == STORM.queue_cap
    assert rig.acd.engine.handling.ewt_deflect_s == STORM.ewt_deflect_s
    assert rig.watch.state is not None and rig.watch.state.manual
    assert rig.watch.outbound_paused  # storm mode pauses outbound calls (issue 14)
    for _ in range(5):
        await rig.tick()
    assert rig.fed() == [NORMAL_IN, STORM_IN]  # fed on a change only
    rig.switch.set_storm(False, Who("S05", "supervisor"), rig.now)
    await rig.tick()
    assert rig.fed()[-1] == NORMAL_IN
    assert rig.acd.engine.max_queue("general") == NORMAL.queue_cap
    assert rig.acd.engine.handling.ewt_deflect_s is None


async def test_inflow_against_capacity_switches_on_and_calm_switches_off() -> None:
    rig = Rig()
    rig.acd.login(5)  # capacity 5 x 60 / 300 = 1 call a minute; on at 2 (and >= 5 calls)
    await rig.tick()
    rig.acd.arrive(4)  # below min_calls_per_min: no storm
    await rig.tick()
    assert rig.switch.switched == []
    rig.acd.arrive(2)  # 6 calls in the last minute
    await rig.tick()
    assert rig.switch.switched == [(True, AUTO_WHO.id, "inflow")]
    assert rig.switch.row.detail and "calls/min" in rig.switch.row.detail
    assert rig.fed()[-1] == STORM_IN
    await rig.tick()  # the watch reads its own switch back: nothing more happens
    assert rig.switch.switched == [(True, "auto", "inflow")]
    # the minute passes with no new calls: calm, but only calm_for later is it off
    for _ in range(20):
        await rig.tick()  # 60 s
    assert rig.switch.switched[-1][0] is True
    for _ in range(40):
        await rig.tick()  # 2 more minutes
    assert rig.switch.switched[-1] == (False, "auto", "calm")
    assert rig.fed()[-1] == NORMAL_IN


async def test_the_inflow_counts_about_the_last_minute_only() -> None:
    rig = Rig()
    rig.acd.login(50)  # capacity 10 a minute
    await rig.tick()
    for _ in range(30):  # 3 calls every 3 s: 60 a minute
        rig.acd.arrive(3)
        await rig.tick()
    assert rig.watch.last_load is not None
    assert 57 <= rig.watch.last_load.calls_per_min <= 63
    assert rig.switch.switched == [(True, "auto", "inflow")]


async def test_active_faults_switch_on_and_a_supervisors_off_holds_against_them() -> None:
    rig = Rig()
    rig.acd.login(10)
    await rig.tick()
    rig.faults = 10
    await rig.tick()
    assert rig.switch.switched == [(True, "auto", "faults")]
    rig.switch.set_storm(False, Who("S05", "supervisor"), rig.now)  # the room decides
    await rig.tick()
    assert rig.switch.row.on is False and rig.fed()[-1] == NORMAL_IN
    for _ in range(int(POLICY.manual_off_hold.total_seconds() // 3) - 2):
        await rig.tick()
    assert rig.switch.switched[-1] == (False, "S05", "manual")  # still held
    for _ in range(3):
        await rig.tick()
    assert rig.switch.switched[-1] == (True, "auto", "faults")


def test_the_switch_row_seeds_the_state() -> None:
    at = datetime(2026, 7, 14, 8, 0)  # SQLite: naive, UTC
    manual_on = state_of(StormRow(True, at, "S05", "manual", ""), POLICY)
    assert manual_on.on and manual_on.manual and manual_on.since == at.replace(tzinfo=UTC)
    auto_on = state_of(StormRow(True, at, "auto", "inflow", "x"), POLICY)
    assert auto_on.on and not auto_on.manual
    off = state_of(StormRow(False, at, "cli:root", "manual", ""), POLICY)
    assert off.auto_blocked_until == at.replace(tzinfo=UTC) + POLICY.manual_off_hold
    assert state_of(StormRow(False, at, "auto", "calm", ""), POLICY).auto_blocked_until is None
    assert state_of(StormRow(False, None, None, None, None), POLICY) == StormState()


def test_storm_settings_from_the_table() -> None:
    s = storm_settings({"on_ratio": 3, "off_ratio": 1.5, "calm_for_min": 5,
                        "storm": {"queue_cap": 20, "ewt_deflect_s": 120},
                        "normal": {"callback_offer_wait_s": 90}})
    assert s.policy.on_ratio == 3.0 and s.policy.calm_for == timedelta(minutes=5)
    assert s.storm == replace(STORM, queue_cap=20, ewt_deflect_s=120.0)
    assert s.normal.callback_offer_wait_s == 90.0
    assert storm_settings({}) == StormSettings()
    for bad in ({"nope": 1}, {"storm": {"queue_cap": 100}}, {"on_ratio": 0.5},
                {"storm": {"ewt_deflect_s": 0}}, {"watch_every_s": 0},
                {"normal": {"banner": "yes"}}):
        with pytest.raises(ValueError):
            storm_settings(bad)
