"""The storm watch: storm mode's switch as the CTI sees it, fed to the ACD, and automatic
switching on the load (outages.storm).

Every few seconds one named task:
1. reads the switch (OutageService.storm_state: the console, `hotline storm`, or this watch
   set it) and, when the row changed, rebuilds the pure StormState from it (a supervisor's
   switch is held as manual; a supervisor's switch-off blocks automatic switching for
   manual_off_hold, counted from that switch);
2. samples the load: calls offered in about the last minute (the ACD's `arrived` counters,
   from its published view), agents logged in (the view), active fault outages (the notice
   index);
3. runs `outages.storm.evaluate`, and writes a switch it decides through
   OutageService.set_storm as Who('auto', 'system') (audited, published after the commit);
4. feeds the ACD the Handling in force (HandlingChanged) whenever it differs from the last one
   fed: within one period of any switch, whoever made it.

The StormState lives here between ticks (calm_since is not in the database: a restart starts
the calm over, which only delays an automatic switch-off).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from acd.engine import HandlingChanged
from acd.model import AgentState
from callcenter.outage_service import SYSTEM, Who
from outages.storm import AUTO_ACTOR, Load, StormPolicy, StormState, Trigger, evaluate, handling

if TYPE_CHECKING:
    from callcenter.acd_service import AcdView
    from callcenter.outage_service import OutageService
    from config.storm import StormSettings
    from cti.db.outages import StormRow

log = logging.getLogger(__name__)

AUTO_WHO = Who(AUTO_ACTOR, SYSTEM)
INFLOW_WINDOW_S = 60.0


class StormSwitch(Protocol):
    """What the watch asks of the outage service."""

    def storm_state(self) -> StormRow: ...
    def set_storm(self, on: bool, who: Who, now: datetime, *, trigger: str = "manual",
                  detail: str = "") -> bool: ...


class Acd(Protocol):
    """The ACD's one writer, as the watch uses it: its published view, and its inbox."""

    @property
    def view(self) -> AcdView: ...
    def submit(self, item: Any) -> bool: ...


def _aware(at: datetime | None) -> datetime | None:
    """The database's time (SQLite gives it back naive, in UTC) as an aware datetime."""
    if at is None or at.tzinfo is not None:
        return at
    return at.replace(tzinfo=UTC)


def state_of(row: StormRow, policy: StormPolicy) -> StormState:
    """The pure state a switch row stands for."""
    since = _aware(row.since)
    if row.by is None:
        return StormState(on=row.on, since=since)
    manual = row.by != AUTO_ACTOR
    try:
        reason: Trigger | None = Trigger(row.trigger) if row.trigger else None
    except ValueError:
        reason = Trigger.MANUAL if manual else None
    if row.on:
        return StormState(on=True, manual=manual, since=since, by=row.by, reason=reason)
    blocked = since + policy.manual_off_hold if manual and since is not None else None
    return StormState(on=False, since=since, by=row.by, reason=reason,
                      auto_blocked_until=blocked)


def handling_input(state: StormState, settings: StormSettings) -> HandlingChanged:
    """The ACD's part of the Handling in force."""
    h = handling(state, settings.normal, settings.storm)
    return HandlingChanged(queue_cap=h.queue_cap, callback_offer_wait_s=h.callback_offer_wait_s,
                           ewt_deflect_s=h.ewt_deflect_s)


def active_faults_of(outages: OutageService) -> Callable[[datetime], int]:
    """Active fault outages now, from the service's cached notice index."""
    def count(now: datetime) -> int:
        with outages.sessions() as s:
            return outages.index(s).active_faults(now)
    return count


class StormWatch:
    def __init__(self, switch: StormSwitch, acd: Acd, settings: StormSettings,
                 active_faults: Callable[[datetime], int],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.switch = switch
        self.acd = acd
        self.settings = settings
        self.active_faults = active_faults
        self.clock = clock
        self.state: StormState | None = None  # None until the first read of the switch
        self._seen: tuple[bool, datetime | None, str | None] | None = None
        self._fed: HandlingChanged | None = None
        self._arrivals: deque[tuple[float, int]] = deque()  # (time, arrived so far today)
        self.last_load: Load | None = None

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # the database away, say: try again next period
                log.exception("storm watch: tick failed")
            await asyncio.sleep(self.settings.watch_every_s)

    async def tick(self) -> None:
        now = self.clock()
        row = await asyncio.to_thread(self.switch.storm_state)
        key = (row.on, _aware(row.since), row.by)
        if key != self._seen or self.state is None:
            self._seen = key
            self.state = state_of(row, self.settings.policy)
        load = Load(self._calls_per_min(now, self.acd.view),
                    sum(1 for a in self.acd.view.agents.values()
                        if a.state is not AgentState.LOGGED_OUT),
                    await asyncio.to_thread(self.active_faults, now))
        self.last_load = load
        state, change = evaluate(self.state, load, now, self.settings.policy)
        self.state = state
        if change is not None:
            done = await asyncio.to_thread(
                self.switch.set_storm, change.on, AUTO_WHO, change.at,
                trigger=change.reason.value, detail=change.detail)
            if not done:  # someone switched it first: the next read has their switch
                log.info("storm watch: storm mode was already %s", "on" if change.on else "off")
        self._feed(handling_input(self.state, self.settings))

    @property
    def short_menus(self) -> bool:
        """Whether callers get the IVR's shortened storm menus now (the handling in force, as
        last read: a switch reaches new callers within one period, with no read per call)."""
        if self.state is None:
            return False
        return handling(self.state, self.settings.normal, self.settings.storm).short_menus

    @property
    def outbound_paused(self) -> bool:
        """Storm mode pauses the outbound engine (issue 14: the lines and agents are the
        inbound callers'); so does not knowing yet, before the first read."""
        return self.state is None or self.state.on

    def _feed(self, wanted: HandlingChanged) -> None:
        if wanted != self._fed and self.acd.submit(wanted):
            self._fed = wanted
            log.info("storm watch: the ACD's handling is now %s", wanted)

    def _calls_per_min(self, now: datetime, view: AcdView) -> float:
        """Calls offered over about the last minute: the day's `arrived` counters now, less
        their value at the newest sample at least a minute old (or the oldest, in the first
        minute: an undercount, never a burst read as a rate)."""
        t = now.timestamp()
        total = sum(c.arrived for c in view.snapshot.counters.values())
        if self._arrivals and total < self._arrivals[-1][1]:
            self._arrivals.clear()  # a new day: the counters started again
        self._arrivals.append((t, total))
        while len(self._arrivals) > 1 and t - self._arrivals[1][0] >= INFLOW_WINDOW_S:
            self._arrivals.popleft()
        return float(total - self._arrivals[0][1])
