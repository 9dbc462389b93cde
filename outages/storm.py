"""Storm mode (恶劣天气应急): when it switches on and off, and what the center does while it is on.

Pure: transitions take the state, the time and the measured load, and return the new state and
the change to audit (who, when, why) as data; nothing here reads a clock or does I/O.

Switching:
- A supervisor switches it on (console, `hotline storm on`); it then stays on until a
  supervisor switches it off, whatever the load does.
- A supervisor switches it off; automatic switching may not turn it on again for
  `manual_off_hold`, so a decision made in the room is not overruled a minute later.
- Automatically on when inflow reaches `on_ratio` times live capacity, or active fault
  outages reach `faults_on`. Capacity is what the logged-in agents can answer a minute
  (agents x 60 / average handling time): logged in, not ready, because in a storm every agent
  is busy and "ready" is near zero by design. Inflow below `min_calls_per_min` never counts
  (a night shift of two agents is not a storm).
- Automatically off only after `calm_for` of calm: inflow at or below `off_ratio` of capacity
  (or below the minimum) and faults at or below `faults_off`. Between the on and off levels
  nothing changes: that band is the hysteresis that keeps it from flapping.

While on, `handling()` gives the storm profile; when off, the normal one, unchanged: everything
reverts because nothing is changed in place.

What the adapters supply (the wiring step): the state kept by the one writer (and persisted,
so a restart does not drop it), a sample of `Load` every tick (calls offered in the last minute,
agents logged in from the ACD snapshot, `NoticeIndex.active_faults`), every `StormChange`
written to the audit log and published (wallboard banner, desktops), and the `Handling` in
force passed to the IVR, the ACD's queue cap, the callback offer and the campaign runner.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

AUTO_ACTOR = "auto"


class Trigger(StrEnum):
    MANUAL = "manual"   # a supervisor
    INFLOW = "inflow"   # calls per minute against capacity
    FAULTS = "faults"   # active fault outages
    CALM = "calm"       # both back under the off levels for long enough


@dataclass(frozen=True, slots=True)
class StormPolicy:
    """[storm] thresholds; off levels below on levels (the hysteresis band)."""

    aht_s: float = 300.0              # average handling time of one call, for capacity
    on_ratio: float = 2.0
    off_ratio: float = 1.0
    min_calls_per_min: float = 5.0
    faults_on: int = 10
    faults_off: int = 5
    calm_for: timedelta = timedelta(minutes=15)
    manual_off_hold: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        if self.aht_s <= 0 or self.min_calls_per_min < 0:
            raise ValueError("[storm] aht_s must be positive and min_calls_per_min >= 0")
        if not 0 < self.off_ratio < self.on_ratio:
            raise ValueError("[storm] needs 0 < off_ratio < on_ratio")
        if not 0 <= self.faults_off < self.faults_on:
            raise ValueError("[storm] needs 0 <= faults_off < faults_on")
        if self.calm_for < timedelta(0) or self.manual_off_hold < timedelta(0):
            raise ValueError("[storm] calm_for and manual_off_hold must not be negative")


@dataclass(frozen=True, slots=True)
class Load:
    """One sample of what the center faces."""

    calls_per_min: float
    agents_logged_in: int
    active_fault_outages: int

    def ratio(self, policy: StormPolicy) -> float:
        """Inflow over capacity; infinite with nobody logged in."""
        capacity = self.agents_logged_in * 60.0 / policy.aht_s
        return self.calls_per_min / capacity if capacity > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class StormState:
    on: bool = False
    manual: bool = False                  # on by a supervisor: held until one switches it off
    since: datetime | None = None         # when it last switched
    by: str | None = None                 # who switched it last (a supervisor id, or "auto")
    reason: Trigger | None = None
    calm_since: datetime | None = None    # on automatically, and calm since then
    auto_blocked_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class StormChange:
    """A switch to audit and publish."""

    on: bool
    at: datetime
    by: str
    reason: Trigger
    detail: str = ""


def _aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: pass a timezone-aware datetime")


def switch_on(state: StormState, by: str, at: datetime) -> tuple[StormState, StormChange | None]:
    """A supervisor switches storm mode on. Taking over an automatic storm is audited too."""
    _aware(at)
    if state.on and state.manual:
        return state, None
    new = StormState(on=True, manual=True, since=at, by=by, reason=Trigger.MANUAL)
    return new, StormChange(True, at, by, Trigger.MANUAL)


def switch_off(state: StormState, by: str, at: datetime,
               policy: StormPolicy) -> tuple[StormState, StormChange | None]:
    """A supervisor switches it off; automatic switching waits `manual_off_hold`."""
    _aware(at)
    blocked = at + policy.manual_off_hold
    if not state.on:
        return replace(state, auto_blocked_until=blocked), None
    new = StormState(on=False, since=at, by=by, reason=Trigger.MANUAL,
                     auto_blocked_until=blocked)
    return new, StormChange(False, at, by, Trigger.MANUAL)


def _hot(load: Load, ratio: float, policy: StormPolicy) -> tuple[Trigger, str] | None:
    if load.calls_per_min >= policy.min_calls_per_min and ratio >= policy.on_ratio:
        return Trigger.INFLOW, (f"{load.calls_per_min:g} calls/min, {load.agents_logged_in} "
                                f"agents logged in (ratio {ratio:.2f} >= {policy.on_ratio:g})")
    if load.active_fault_outages >= policy.faults_on:
        return Trigger.FAULTS, (f"{load.active_fault_outages} active fault outages "
                                f"(>= {policy.faults_on})")
    return None


def _calm(load: Load, ratio: float, policy: StormPolicy) -> bool:
    quiet = load.calls_per_min < policy.min_calls_per_min or ratio <= policy.off_ratio
    return quiet and load.active_fault_outages <= policy.faults_off


def evaluate(state: StormState, load: Load, at: datetime,
             policy: StormPolicy) -> tuple[StormState, StormChange | None]:
    """One tick of automatic switching (see the module doc)."""
    _aware(at)
    ratio = load.ratio(policy)
    if not state.on:
        hot = _hot(load, ratio, policy)
        blocked = state.auto_blocked_until is not None and at < state.auto_blocked_until
        if hot is None or blocked:
            return state, None
        trigger, detail = hot
        return (StormState(on=True, since=at, by=AUTO_ACTOR, reason=trigger),
                StormChange(True, at, AUTO_ACTOR, trigger, detail))
    if state.manual:
        return state, None
    if not _calm(load, ratio, policy):
        return (replace(state, calm_since=None) if state.calm_since else state), None
    calm_since = state.calm_since or at
    if at - calm_since < policy.calm_for:
        return replace(state, calm_since=calm_since), None
    detail = f"calm since {calm_since.isoformat()}"
    return (StormState(on=False, since=at, by=AUTO_ACTOR, reason=Trigger.CALM),
            StormChange(False, at, AUTO_ACTOR, Trigger.CALM, detail))


# ------------------------------------------------------------------------- what changes


@dataclass(frozen=True, slots=True)
class Handling:
    """How calls are handled: one frozen profile for normal days and one for storms."""

    outage_first: bool = True              # known outages before the menu
    short_menus: bool = False              # the storm flow's shortened menus
    callback_offer_wait_s: float = 120.0   # offer callback-keeps-place past this expected wait
    queue_cap: int = 60                    # waiting calls beyond this hear the all-busy message
    ewt_deflect_s: float | None = None     # tell the wait, offer callback or self-service
    campaigns_paused: bool = False         # outbound campaigns
    banner: bool = False                   # the wallboard's red storm banner


NORMAL = Handling()
STORM = Handling(outage_first=True, short_menus=True, callback_offer_wait_s=30.0, queue_cap=30,
                 ewt_deflect_s=180.0, campaigns_paused=True, banner=True)


def check_profiles(normal: Handling, storm: Handling) -> None:
    """The storm profile must be at least as tight as the normal one; ValueError at startup."""
    problems = []
    if not storm.outage_first:
        problems.append("storm mode is always outage-first")
    if storm.callback_offer_wait_s > normal.callback_offer_wait_s:
        problems.append("callback_offer_wait_s must not grow in a storm")
    if storm.queue_cap > normal.queue_cap:
        problems.append("queue_cap must not grow in a storm")
    if storm.ewt_deflect_s is None:
        problems.append("storm mode needs ewt_deflect_s")
    if normal.queue_cap < 1 or storm.queue_cap < 1:
        problems.append("queue_cap must be at least 1")
    if problems:
        raise ValueError("[storm] " + "; ".join(problems))


def handling(state: StormState, normal: Handling = NORMAL, storm: Handling = STORM) -> Handling:
    """The profile in force: the storm one while on, the normal one otherwise."""
    return storm if state.on else normal
