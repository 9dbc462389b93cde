"""The ACD's one writer: AMI events, commands and ticks in; decisions out to PBX, bus and DB."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from acd import engine as acd
from acd.model import (
    AcdConfig,
    Agent,
    AgentState,
    AgentStateChanged,
    Announce,
    CallbackDial,
    CancelRing,
    CancelTimer,
    Overflow,
    QueueStats,
    Rejected,
    RingAgent,
    StartTimer,
)

log = logging.getLogger(__name__)

INBOX_SIZE = 10_000
TICK_S = 1.0
SNAPSHOT_EVERY_S = 10.0


class Pbx(Protocol):
    """What the ACD asks of Asterisk (AMI actions; each has its own timeout)."""

    async def ring_seat(self, channel: str, seat: str) -> None: ...
    async def announce(self, channel: str, prompt_ids: list[str], lang: str) -> None: ...
    async def overflow(self, channel: str, target: str) -> None: ...
    async def heartbeat(self) -> None: ...
    async def callback(self, seat: str, call_id: str, number: str, ring_s: float) -> None: ...
    async def failover_member(self, seat: str, member: bool) -> None: ...


class Bus(Protocol):
    def publish(self, topic: str, payload: Mapping[str, Any], *, qos: int = 1,
                retain: bool = False) -> None: ...


class Store(Protocol):
    """The database, as the ACD needs it. Each call is one unit of work; events for the bus are
    returned by the store only after its commit (publish after commit)."""

    async def screen_pop(self, call_id: str, caller: str,
                         account: str | None) -> dict[str, Any]: ...
    async def agent_state(self, agent: Agent, actor: str) -> None: ...
    async def call_queued(self, call_id: str, skill: str, at: float) -> None: ...
    async def call_answered(self, call_id: str, agent_id: str, seat: str, at: float) -> None: ...
    async def save_snapshot(self, data: dict[str, Any]) -> None: ...
    async def call_flags(self, caller: str, account: str | None) -> frozenset[str]: ...
    async def call_ended(self, call_id: str, at: float, abandoned: bool) -> None: ...


@dataclass(frozen=True)
class Command:
    """An agent's or a supervisor's request; `reply` gets {"ok": bool, ...}."""

    input: acd.Input
    actor: str
    reply: Callable[[dict[str, Any]], Awaitable[None]] | None = None


@dataclass
class CallChannel:
    channel: str
    caller: str
    account: str | None
    lang: str = "zh"


@dataclass
class AcdService:
    """Single consumer of one bounded inbox: no locks, and the ACD sees inputs in order."""

    engine: acd.AcdEngine
    pbx: Pbx
    bus: Bus
    store: Store
    clock: Callable[[], float] = time.time
    inbox: asyncio.Queue[Any] = field(default_factory=lambda: asyncio.Queue(INBOX_SIZE))
    channels: dict[str, CallChannel] = field(default_factory=dict)
    dropped: int = 0
    # the engine's deadlines (wrap-up end, ring timeout): a Tick exactly then, so an agent is
    # free the moment wrap-up ends, not up to a tick later
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    # the seats of the failover app_queue; a seat is a member (unpaused) only while an agent is
    # logged in there, so callers who fail over while the CTI is down ring logged-in seats only
    seats: tuple[str, ...] = ()
    failover_members: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def create(cls, config: AcdConfig, pbx: Pbx, bus: Bus, store: Store,
               snapshot: Mapping[str, Any] | None = None,
               seats: tuple[str, ...] = ()) -> AcdService:
        engine = acd.AcdEngine(config)
        if snapshot:
            try:
                engine.restore(acd.Snapshot.from_dict(snapshot))
            except (ValueError, KeyError, TypeError):
                log.exception("ACD snapshot unusable; starting empty (resync rebuilds calls)")
        return cls(engine=engine, pbx=pbx, bus=bus, store=store, seats=seats)

    # ------------------------------------------------------------------------------ inputs

    def submit(self, item: acd.Input | Command | tuple[str, Any]) -> bool:
        """Queue an input without blocking; False (and counted) if the inbox is full."""
        try:
            self.inbox.put_nowait(item)
            return True
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("ACD inbox full: input dropped (%d so far): %r", self.dropped, item)
            return False

    def call_waiting(self, call_id: str, channel: str, caller: str, skill: str, priority: int,
                     account: str | None, lang: str = "zh", flags: frozenset[str] = frozenset()
                     ) -> None:
        """Asterisk holds a caller for us (HotlineQueued)."""
        self.submit(("channel", (call_id, CallChannel(channel, caller, account, lang))))
        self.submit(acd.CallArrived(call_id=call_id, caller=caller, skill=skill,
                                    priority=priority, account=account, flags=flags))

    # ------------------------------------------------------------------------------- tasks

    async def run(self) -> None:
        """The writer. Runs until cancelled."""
        while True:
            item = await self.inbox.get()
            try:
                await self._handle(item)
            except Exception:
                log.exception("ACD input failed: %r", item)

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.submit(acd.Tick())

    async def heartbeat(self) -> None:
        """Tells the dialplan the CTI is alive; when this stops, waiting callers fail over."""
        while True:
            try:
                await self.pbx.heartbeat()
            except Exception as exc:  # AMI down: the dialplan fails callers over, as designed
                log.warning("heartbeat not delivered: %s", exc)
            await asyncio.sleep(TICK_S)

    async def snapshots(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_EVERY_S)
            self.submit(("snapshot", None))

    # ---------------------------------------------------------------------------- handling

    async def _handle(self, item: Any) -> None:
        now = self.clock()
        if isinstance(item, tuple):
            kind, payload = item
            if kind == "channel":
                call_id, ch = payload
                self.channels[call_id] = ch
            elif kind == "snapshot":
                await self.store.save_snapshot(self.engine.snapshot().to_dict())
            elif kind == "forget":
                self.channels.pop(payload, None)
            elif kind == "publish_agents":
                # after a restart or resync: every desktop gets its agent's state again, and
                # the failover queue's members are set anew (Asterisk may have restarted)
                self.failover_members.clear()
                for agent in self.engine.agents.values():
                    await self._effect(AgentStateChanged(agent), "resync")
                await self._sync_failover()
            return
        actor, reply = "acd", None
        if isinstance(item, Command):
            actor, reply, item = item.actor, item.reply, item.input
        if isinstance(item, acd.CallArrived) and not item.flags and item.call_id not in \
                self.engine.calls:
            flags = await self.store.call_flags(item.caller, item.account)
            if flags:
                item = acd.CallArrived(call_id=item.call_id, caller=item.caller,
                                       skill=item.skill, priority=item.priority,
                                       account=item.account, flags=flags)
        effects = self.engine.apply(item, now)
        rejected = [e for e in effects if isinstance(e, Rejected)]
        if isinstance(item, acd.CallArrived):
            await self.store.call_queued(item.call_id, item.skill, now)
        if isinstance(item, acd.AgentAnswered) and not rejected:
            answered_by = self.engine.agents.get(item.agent_id)
            if answered_by is not None:
                await self.store.call_answered(item.call_id, item.agent_id, answered_by.seat,
                                               now)
        if isinstance(item, acd.CallEnded | acd.CallAbandoned):
            self.submit(("forget", item.call_id))
            if not rejected:
                await self.store.call_ended(item.call_id, now,
                                            abandoned=isinstance(item, acd.CallAbandoned))
        for eff in effects:
            try:
                await self._effect(eff, actor)
            except Exception:
                # one failed PBX/bus/DB action (say, a Setvar on a caller who just hung up)
                # must not cost the effects after it: the ring, the state, the statistics
                log.exception("ACD effect failed: %r", eff)
        if any(isinstance(e, AgentStateChanged) for e in effects):
            await self._sync_failover()
            # a restart must find agents and calls as they are now, not 10 s ago
            await self.store.save_snapshot(self.engine.snapshot().to_dict())
        if reply is not None:
            await reply({"ok": not rejected,
                         **({"error": rejected[0].reason} if rejected else {})})

    async def _effect(self, eff: Any, actor: str) -> None:
        if isinstance(eff, RingAgent):
            ch = self.channels.get(eff.call_id)
            # the pop leaves before the seat rings, so it is on screen while it rings
            pop = await self.store.screen_pop(eff.call_id, eff.caller, eff.account)
            self.bus.publish(f"hotline/agents/{eff.agent_id}/pop",
                             {**pop, "seat": eff.seat, "skill": eff.skill,
                              "attempt": eff.attempt})
            self.bus.publish(f"hotline/calls/{eff.call_id}/events",
                             {"event": "offered", "agent_id": eff.agent_id, "seat": eff.seat})
            if ch is None:
                log.error("call %s: no channel known; cannot ring %s", eff.call_id, eff.seat)
                self.submit(acd.RingTimeout(agent_id=eff.agent_id, call_id=eff.call_id))
                return
            try:
                await self.pbx.ring_seat(ch.channel, eff.seat)
            except Exception:
                log.exception("call %s: could not ring %s", eff.call_id, eff.seat)
                self.submit(acd.RingTimeout(agent_id=eff.agent_id, call_id=eff.call_id))
        elif isinstance(eff, AgentStateChanged):
            await self.store.agent_state(eff.agent, actor)
            a = eff.agent
            self.bus.publish(f"hotline/agents/{a.agent_id}/state", {
                "agent_id": a.agent_id, "seat": a.seat, "state": str(a.state),
                "reason": a.reason, "since": a.state_since, "call_id": a.call_id,
                "wrap_up_s": self.engine.config.wrap_up_s},
                retain=True)
        elif isinstance(eff, QueueStats):
            self.bus.publish(f"hotline/queues/{eff.skill}/stats", {
                "skill": eff.skill, "waiting": eff.waiting, "longest_wait_s": eff.longest_wait_s,
                "service_level": eff.service_level, "answered": eff.answered,
                "abandoned": eff.abandoned, "agents": dict(eff.agents), "aht_s": eff.aht_s},
                retain=True)
        elif isinstance(eff, Announce):
            ch = self.channels.get(eff.call_id)
            if ch is not None:
                await self.pbx.announce(ch.channel, announcement(eff.position, eff.ewt_s,
                                                                 ch.lang), ch.lang)
        elif isinstance(eff, Overflow):
            ch = self.channels.get(eff.call_id)
            if ch is not None:
                await self.pbx.overflow(ch.channel, eff.target)
        elif isinstance(eff, CallbackDial):
            # the pop first, as for any offer: the agent sees whom they are calling back
            pop = await self.store.screen_pop(eff.call_id, eff.number, eff.account)
            self.bus.publish(f"hotline/agents/{eff.agent_id}/pop",
                             {**pop, "seat": eff.seat, "callback": True,
                              "attempt": eff.attempt})
            self.bus.publish(f"hotline/calls/{eff.call_id}/events",
                             {"event": "callback_dialling", "agent_id": eff.agent_id,
                              "seat": eff.seat})
            try:
                # Asterisk gives up on the seat a little before the ACD's own ring timer
                await self.pbx.callback(eff.seat, eff.call_id, eff.number,
                                        max(1.0, self.engine.config.ring_timeout_s - 5))
            except Exception:
                log.exception("callback %s: could not ring %s", eff.call_id, eff.seat)
                self.submit(acd.RingTimeout(agent_id=eff.agent_id, call_id=eff.call_id))
        elif isinstance(eff, StartTimer):
            self._cancel_timer(eff.name)
            loop = asyncio.get_running_loop()
            delay = max(0.0, eff.at - self.clock()) + 0.005  # land after the deadline
            self.timers[eff.name] = loop.call_later(delay, self._timer_fired, eff.name)
        elif isinstance(eff, CancelTimer):
            self._cancel_timer(eff.name)
        elif isinstance(eff, CancelRing | Rejected):
            log.debug("ACD: %r", eff)


    async def _sync_failover(self) -> None:
        """Pause the failover queue's seats that have no agent logged in; unpause the others.
        Only changes reach Asterisk; a failed action is tried again on the next change."""
        if not self.seats:
            return
        logged_in = {a.seat for a in self.engine.agents.values()
                     if a.state != AgentState.LOGGED_OUT and a.seat}
        for seat in self.seats:
            member = seat in logged_in
            if self.failover_members.get(seat) == member:
                continue
            try:
                await self.pbx.failover_member(seat, member)
                self.failover_members[seat] = member
            except Exception as exc:
                log.warning("failover queue: %s %s not set: %s", seat,
                            "member" if member else "paused", exc)

    def _cancel_timer(self, name: str) -> None:
        handle = self.timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _timer_fired(self, name: str) -> None:
        self.timers.pop(name, None)
        self.submit(acd.Tick())


def announcement(position: int, ewt_s: float | None, lang: str) -> list[str]:
    """Prompt ids: "you are number N in line; the expected wait is about M minutes"."""
    from ivr.say import say_number

    out = ["acd.position_before", *say_number(position, lang), "acd.position_after"]
    if ewt_s is not None:
        minutes = max(1, round(ewt_s / 60))
        out += ["acd.ewt_before", *say_number(minutes, lang), "acd.ewt_after"]
    return out
