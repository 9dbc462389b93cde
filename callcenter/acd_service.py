"""The ACD's one writer: AMI events, commands and ticks in; decisions out to PBX, bus and DB.

Only the writer (`AcdService.run`) changes the engine. After each input it publishes an
immutable `AcdView` (`service.view`): routes, worker threads (the wallboard), call control,
agent commands, the AMI feed and supervision read that, never the live engine.

A seat is rung without waiting on the database:
- the data a call's routing flags and screen-pop need is looked up while the call is being
  queued (named tasks, bounded queue, a few lookups at a time, in arrival order), so it is at
  hand when an agent becomes free;
- on an offer the writer builds the pop from that data, hands it to the notifier (MQTT and the
  desktop's /ws at once) and Redirects the caller to the seat, with no database I/O between;
- the writes (call record, agent state, snapshot) then go to a bounded queue that one task
  drains in order; what reflects the database (an agent's state, a command's reply) is
  published only after its commit.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol

from acd import engine as acd
from acd.model import (
    AcdConfig,
    Agent,
    AgentState,
    AgentStateChanged,
    Announce,
    Call,
    CallbackDial,
    CancelRing,
    CancelTimer,
    Deflect,
    Overflow,
    QueueStats,
    Rejected,
    RingAgent,
    StartTimer,
    call_node,
)
from cti.notifier import Notifier

log = logging.getLogger(__name__)

INBOX_SIZE = 10_000
DB_QUEUE_SIZE = 10_000  # database writes waiting; past this the writer waits (backpressure)
LOOKUP_QUEUE_SIZE = 1_000  # queued calls waiting for their lookup
LOOKUP_CONCURRENCY = 4  # lookups in flight at once (threads of the default executor)
LOOKUP_TIMEOUT_S = 3.0  # past this a call is queued without flags, its pop without data
DRAIN_S = 3.0  # on stop, how long the writes still queued may take
TICK_S = 1.0
# a ring the PBX refused (Redirect answered Error: say, the caller's channel is still moving
# out of a bridge after a transfer) had no effect, so it is tried again after these delays
# before the offer counts as not answered; a ring that timed out is never re-sent
RING_RETRY_S: tuple[float, ...] = (0.15, 0.5)
SNAPSHOT_EVERY_S = 10.0


class Pbx(Protocol):
    """What the ACD asks of Asterisk (AMI actions; each has its own timeout)."""

    async def ring_seat(self, channel: str, seat: str) -> None: ...
    async def announce(self, channel: str, prompt_ids: list[str], lang: str) -> None: ...
    # the all-busy message: `prompt_ids` (the wait named) or, empty, the dialplan's own
    async def overflow(self, channel: str, target: str, prompt_ids: Sequence[str] = (),
                       lang: str = "zh") -> None: ...
    async def heartbeat(self) -> None: ...
    async def callback(self, seat: str, call_id: str, number: str, ring_s: float) -> None: ...
    async def click_to_call(self, seat: str, call_id: str, number: str,
                            ring_s: float) -> None: ...
    async def failover_member(self, seat: str, member: bool) -> None: ...


class PbxNodes:
    """The Pbx port of every PBX node, by name (its Asterisk systemname). What concerns a call
    goes to the node the call is on: the one its id names ("pbx2-1700000000.12" -> pbx2;
    acd.model.call_node), or the default node for an id without a prefix. The heartbeat and
    the failover queue's members go to every node. With one node, everything goes to it."""

    def __init__(self, nodes: Mapping[str, Pbx], default: str) -> None:
        if default not in nodes:
            raise ValueError(f"the default PBX node {default!r} is not among {sorted(nodes)}")
        self.nodes: Mapping[str, Pbx] = MappingProxyType(dict(nodes))
        self.default = default

    def node_of(self, call_id: str) -> str:
        return call_node(call_id, self.default)

    def of(self, node: str) -> Pbx:
        """The node's Pbx ("" is the default node's)."""
        pbx = self.nodes.get(node or self.default)
        if pbx is None:  # a call on a node this CTI does not drive: nothing can be sent there
            raise PbxUnreachable(f"no PBX node {node!r} (nodes: {sorted(self.nodes)})")
        return pbx

    def for_call(self, call_id: str) -> Pbx:
        return self.of(self.node_of(call_id))


class PbxRefused(Exception):
    """The PBX answered that it did not do the action: it had no effect and may be tried again
    (a timeout or a lost connection is not this: whether it happened is unknown)."""


class PbxUnreachable(Exception):
    """The PBX could not be reached, so the action was never sent (no connection to it)."""


class Bus(Protocol):
    def publish(self, topic: str, payload: Mapping[str, Any] | str | bytes, *, qos: int = 1,
                retain: bool = False) -> None: ...


@dataclass(frozen=True)
class CallData:
    """What the database knows of a queued call: its routing flags and its screen-pop
    (cti.db.screen_pop's document), looked up once while the call is queued."""

    flags: frozenset[str]
    pop: Mapping[str, Any]


class Store(Protocol):
    """The database, as the ACD needs it. Each call is one unit of work, committed when it
    returns; the ACD publishes what reflects it only after that."""

    async def lookup(self, call_id: str, caller: str, account: str | None) -> CallData: ...
    async def agent_state(self, agent: Agent, actor: str) -> None: ...
    async def call_queued(self, call_id: str, skill: str, at: float,
                          caller: str | None = None) -> None: ...
    async def call_answered(self, call_id: str, agent_id: str, seat: str, at: float) -> None: ...
    # a consult completed: the record names the agent who has the call now
    async def call_handed_over(self, call_id: str, agent_id: str, seat: str,
                               at: float) -> None: ...
    async def save_snapshot(self, data: dict[str, Any]) -> None: ...
    async def call_ended(self, call_id: str, at: float, abandoned: bool) -> None: ...
    # a waiting caller asked to be called back: when, on the record (not its end)
    async def callback_requested(self, call_id: str, at: float) -> None: ...
    # an agent's click-to-call: its record (outbound, the agent, the number) from the click on
    async def call_placed(self, call_id: str, agent_id: str, seat: str, number: str,
                          at: float) -> None: ...


@dataclass(frozen=True)
class Principal:
    """Who sends commands to the ACD: a verified agent, supervisor or admin."""

    user_id: str
    role: str  # agent | supervisor | admin
    skills: dict[str, int]


@dataclass(frozen=True)
class Command:
    """An agent's or a supervisor's request; `reply` gets {"ok": bool, ...} once what the input
    changed is in the database."""

    input: acd.Input
    actor: str
    reply: Callable[[dict[str, Any]], Awaitable[None]] | None = None


@dataclass(frozen=True)
class CallChannel:
    channel: str
    caller: str
    account: str | None
    lang: str = "zh"


@dataclass(frozen=True, eq=False)
class AcdView:
    """The ACD as its writer left it after one input: immutable, safe to read from any thread.

    Read it once (`view = service.view`) and use that object: every figure in it belongs to
    the same moment."""

    at: float  # when the writer published it
    version: int  # one more per input handled
    config: AcdConfig
    agents: Mapping[str, Agent]
    calls: Mapping[str, Call]  # live calls: waiting, callback, offered, connected
    channels: Mapping[str, CallChannel]  # the caller's channel of each call Asterisk holds
    snapshot: acd.Snapshot
    _reader: list[acd.AcdEngine] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # call_id -> the agent consulted on it (acd ConsultStarted), not in the snapshot
    consults: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, engine: acd.AcdEngine, channels: Mapping[str, CallChannel], at: float,
           version: int) -> AcdView:
        snap = engine.snapshot()
        return cls(at=at, version=version, config=engine.config,
                   agents=MappingProxyType({a.agent_id: a for a in snap.agents}),
                   calls=MappingProxyType({c.call_id: c for c in snap.calls}),
                   channels=MappingProxyType(dict(channels)), snapshot=snap,
                   consults=MappingProxyType(dict(engine.consults)))

    @property
    def wrap_up_s(self) -> float:
        return self.config.wrap_up_s

    def queue_stats(self, now: float) -> list[QueueStats]:
        """Every skill's live figures, as the engine computes them, at `now`."""
        with self._lock:  # a private engine rebuilt from the snapshot once, then only read
            if not self._reader:
                engine = acd.AcdEngine(self.config)
                engine.restore(self.snapshot)
                self._reader.append(engine)
        return self._reader[0].queue_stats(now)

    def agent_at(self, seat: str) -> Agent | None:
        """The agent logged in at this seat."""
        for a in self.agents.values():
            if a.seat == seat and a.state != AgentState.LOGGED_OUT:
                return a
        return None


@dataclass(frozen=True)
class _Lookup:
    """A call's data to fetch: for a call being queued (`arrival`), or for the pop of an offer
    that went out without it (after a CTI restart)."""

    seq: int
    call_id: str
    caller: str
    account: str | None
    arrival: acd.CallArrived | None = None


@dataclass(frozen=True)
class _DbJob:
    what: str
    write: Callable[[], Awaitable[None]] | None
    after: Callable[[], Awaitable[None] | None] | None = None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass
class AcdService:
    """Single consumer of one bounded inbox: no locks, and the ACD sees inputs in order."""

    engine: acd.AcdEngine  # the writer's alone: everyone else reads `view`
    pbx: Pbx  # the default PBX node's (engine.config.default_node)
    bus: Bus
    store: Store
    clock: Callable[[], float] = time.time
    notifier: Notifier = None  # type: ignore[assignment]  # default: one over `bus`
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
    # every PBX node's port; default: `pbx` alone, as the default node
    nodes: PbxNodes = None  # type: ignore[assignment]
    # the key the wait's dialplan takes for a callback ([acd] callback_key), named in offers
    callback_key: str = "1"
    view: AcdView = field(init=False)

    def __post_init__(self) -> None:
        if self.nodes is None:
            self.nodes = PbxNodes({self.engine.config.default_node: self.pbx},
                                  self.engine.config.default_node)
        if self.notifier is None:
            self.notifier = Notifier(self.bus)
        self.view = AcdView.of(self.engine, self.channels, self.clock(), 0)
        self.call_data: dict[str, CallData] = {}  # the writer's: by call_id, while it lives
        self._db: asyncio.Queue[_DbJob] = asyncio.Queue(DB_QUEUE_SIZE)
        self._snapshot_queued = False
        self._db_current: asyncio.Task[None] | None = None
        self._lookups: asyncio.Queue[_Lookup] = asyncio.Queue(LOOKUP_QUEUE_SIZE)
        self._fetching: asyncio.Queue[tuple[_Lookup, asyncio.Task[CallData | None]]] = \
            asyncio.Queue(LOOKUP_CONCURRENCY)
        self._lookups_started = 0  # seq of the last lookup asked for
        self._lookups_applied = 0  # seq of the last lookup the writer applied (in order)
        self._looking_up: dict[str, int] = {}  # call_id -> lookups in flight
        self._gone: set[str] = set()  # calls that ended while being looked up
        # calls the native failover queue took: the ACD lets go of them, their record stays
        # open for what the queue does (failover_call), until they end
        self._failed_over: set[str] = set()
        # offers that went out with a minimal pop: the full one follows its lookup
        self._late_pops: dict[str, RingAgent | CallbackDial] = {}
        self._ring_retries: dict[tuple[str, str], int] = {}  # (call, agent) -> retries so far
        # replies that wait for the lookups asked for before them: (seq, deadline, job)
        self._held_replies: deque[tuple[int, float, _DbJob]] = deque()

    @classmethod
    def create(cls, config: AcdConfig, pbx: Pbx, bus: Bus, store: Store,
               snapshot: Mapping[str, Any] | None = None,
               seats: tuple[str, ...] = (), notifier: Notifier | None = None,
               nodes: Mapping[str, Pbx] | None = None, callback_key: str = "1") -> AcdService:
        """`pbx` is the default node's port (config.default_node); `nodes`, if given, every
        node's, that one included."""
        engine = acd.AcdEngine(config)
        if snapshot:
            try:
                engine.restore(acd.Snapshot.from_dict(snapshot))
            except (ValueError, KeyError, TypeError):
                log.exception("ACD snapshot unusable; starting empty (resync rebuilds calls)")
        return cls(engine=engine, pbx=pbx, bus=bus, store=store, seats=seats,
                   callback_key=callback_key,
                   notifier=notifier if notifier is not None else Notifier(bus),
                   nodes=PbxNodes(nodes or {config.default_node: pbx}, config.default_node))

    def queue_lengths(self) -> dict[str, int]:
        """What waits in the service now: its bounded queues (inbox, the DB job queue, lookups,
        replies held behind lookups) and the per-call maps that must empty as calls end. For
        the CTI's status file; the soak bench watches them for growth."""
        return {"inbox": self.inbox.qsize(), "db_jobs": self._db.qsize(),
                "lookups": self._lookups.qsize(), "held_replies": len(self._held_replies),
                "calls": len(self.call_data), "channels": len(self.channels),
                "timers": len(self.timers), "looking_up": len(self._looking_up),
                "gone": len(self._gone), "failed_over": len(self._failed_over),
                "late_pops": len(self._late_pops), "ring_retries": len(self._ring_retries)}

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
        """Asterisk holds a caller for us (HotlineQueued): its channel is known at once (a call
        restored from the snapshot may be rung any moment); its data is looked up, then the call
        reaches the ACD with its routing flags."""
        self.submit(("channel", (call_id, CallChannel(channel, caller, account, lang))))
        self._ask_lookup(call_id, caller, account, arrival=acd.CallArrived(
            call_id=call_id, caller=caller, skill=skill, priority=priority, account=account,
            flags=flags))

    def failed_over(self, call_id: str) -> None:
        """The caller went to the native failover queue: the ACD lets go of the call, but it
        is not abandoned; failover_call records what the queue does with it."""
        self.submit(("failed_over", call_id))
        self.submit(acd.CallAbandoned(call_id=call_id))

    def failover_call(self, call_id: str, *, agent_id: str | None = None, seat: str = "",
                      ended: bool = False) -> None:
        """A call the native failover queue has (the ACD let go of it, or never had it: the
        CTI was down): its record still gets who answered it, and its end (abandoned if no
        one did)."""
        self.submit(("failover_call", (call_id, agent_id, seat, ended)))

    def _ask_lookup(self, call_id: str, caller: str, account: str | None, *,
                    arrival: acd.CallArrived | None = None) -> None:
        self._lookups_started += 1
        job = _Lookup(self._lookups_started, call_id, caller, account, arrival)
        self._looking_up[call_id] = self._looking_up.get(call_id, 0) + 1
        try:
            self._lookups.put_nowait(job)
        except asyncio.QueueFull:
            log.warning("call %s: lookup queue full; queued without its data", call_id)
            self.submit(("looked_up", (job, None)))

    # ------------------------------------------------------------------------------- tasks

    async def run(self) -> None:
        """The writer, with its database writer and its lookups (named tasks in one
        TaskGroup). Runs until cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._db_writer(), name="acd-db-writer")
                tg.create_task(self._lookup_starter(), name="acd-lookup-start")
                tg.create_task(self._lookup_finisher(), name="acd-lookup-finish")
                while True:
                    item = await self.inbox.get()
                    try:
                        await self._handle(item)
                    except Exception:
                        log.exception("ACD input failed: %r", item)
        finally:
            while not self._fetching.empty():  # lookups no one will wait for any more
                self._fetching.get_nowait()[1].cancel()
            current = self._db_current
            if not self._db.empty() or (current is not None and not current.done()):
                # a clean stop keeps the call records and states it decided
                try:
                    await asyncio.wait_for(self._drain_db(), DRAIN_S)
                except (TimeoutError, asyncio.CancelledError):
                    log.warning("ACD stopped with %d database writes undone", self._db.qsize())

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.submit(acd.Tick())

    async def heartbeat(self) -> None:
        """Tells each node's dialplan the CTI is alive; when this stops on a node, the callers
        waiting there fail over. One loop per node, so a node that does not answer delays
        no other node's heartbeat."""
        async with asyncio.TaskGroup() as tg:
            for node, pbx in self.nodes.nodes.items():
                tg.create_task(self._heartbeat(node, pbx), name=f"cti-heartbeat-{node}")

    async def _heartbeat(self, node: str, pbx: Pbx) -> None:
        while True:
            try:
                await pbx.heartbeat()
            except Exception as exc:  # AMI down: the dialplan fails callers over, as designed
                log.warning("heartbeat not delivered to PBX node %s: %s", node or "-", exc)
            await asyncio.sleep(TICK_S)

    async def snapshots(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_EVERY_S)
            self.submit(("snapshot", None))

    # ----------------------------------------------------------------------------- lookups

    async def _lookup_starter(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._lookups.get()
            task = loop.create_task(self._fetch(job), name=f"acd-lookup-{job.call_id}")
            await self._fetching.put((job, task))  # at most LOOKUP_CONCURRENCY in flight

    async def _lookup_finisher(self) -> None:
        """Hands lookups to the writer in the order they were asked for."""
        while True:
            job, task = await self._fetching.get()
            data = await task
            await self.inbox.put(("looked_up", (job, data)))

    async def _fetch(self, job: _Lookup) -> CallData | None:
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_S):
                return await self.store.lookup(job.call_id, job.caller, job.account)
        except Exception:
            log.exception("call %s: lookup failed; routed without its data", job.call_id)
            return None

    # ---------------------------------------------------------------------------- handling

    async def _handle(self, item: Any) -> None:
        now = self.clock()
        actor, reply = "acd", None
        if isinstance(item, tuple):
            kind, payload = item
            if kind == "looked_up":
                item = self._looked_up(*payload)
                if item is None:
                    self._publish_view(now)
                    await self._release_replies()
                    return
            else:
                await self._internal(kind, payload)
                return
        if isinstance(item, Command):
            actor, reply, item = item.actor, item.reply, item.input
        await self._apply(item, actor, reply, now)

    def _looked_up(self, job: _Lookup, data: CallData | None) -> acd.Input | None:
        """A lookup is back: the call it was for goes into the ACD now (None: nothing to)."""
        self._lookups_applied = max(self._lookups_applied, job.seq)
        left = self._looking_up.get(job.call_id, 1) - 1
        gone = job.call_id in self._gone and job.call_id not in self.engine.calls
        if left > 0:
            self._looking_up[job.call_id] = left
        else:
            self._looking_up.pop(job.call_id, None)
            self._gone.discard(job.call_id)
        call = self.engine.calls.get(job.call_id)
        if data is not None and not gone and (call is not None or job.arrival is not None):
            self.call_data[job.call_id] = data
        offer = self._late_pops.pop(job.call_id, None)
        if offer is not None and data is not None and call is not None \
                and call.offered_to == offer.agent_id:
            self._send_pop(offer, call)  # the offer went out without data; still ringing
        arrived = job.arrival
        if arrived is None or gone:
            return None
        if not arrived.flags and data is not None and data.flags:
            arrived = replace(arrived, flags=data.flags)
        return arrived

    async def _internal(self, kind: str, payload: Any) -> None:
        if kind == "channel":
            call_id, ch = payload
            self.channels[call_id] = ch
            self._publish_view(self.clock())
        elif kind == "snapshot":
            await self._queue_snapshot()
        elif kind == "forget":
            self.channels.pop(payload, None)
            self.call_data.pop(payload, None)
            self._late_pops.pop(payload, None)
            self._publish_view(self.clock())
        elif kind == "ring_again":
            eff = payload
            call, ch = self.engine.calls.get(eff.call_id), self.channels.get(eff.call_id)
            if call is not None and ch is not None and call.offered_to == eff.agent_id \
                    and str(call.state) == "offered":
                await self._ring(eff, ch.channel)  # the same offer still stands
            else:
                self._ring_retries.pop((eff.call_id, eff.agent_id), None)
        elif kind == "failed_over":
            self._failed_over.add(payload)
        elif kind == "failover_call":
            call_id, agent_id, seat, ended = payload
            store, now = self.store, self.clock()
            if ended:
                self._failed_over.discard(call_id)
                # abandoned only if nobody answered (call_ended keeps an answered call's)
                await self._queue_db("call_ended", lambda: store.call_ended(
                    call_id, now, abandoned=True))
            elif agent_id is not None:
                await self._queue_db("call_answered", lambda: store.call_answered(
                    call_id, agent_id, seat, now))
        elif kind == "publish_agents":
            # after a restart or resync: every desktop gets its agent's state again, and
            # the failover queue's members are set anew (Asterisk may have restarted)
            self.failover_members.clear()
            for agent in self.engine.agents.values():
                await self._queue_agent_state(agent, "resync")
            await self._sync_failover()

    async def _apply(self, item: acd.Input, actor: str,
                     reply: Callable[[dict[str, Any]], Awaitable[None]] | None,
                     now: float) -> None:
        effects = self.engine.apply(item, now)
        rejected = [e for e in effects if isinstance(e, Rejected)]
        if isinstance(item, acd.CallArrived) and item.call_id not in self.engine.calls:
            self.call_data.pop(item.call_id, None)  # a duplicate of a gone call, or overflowed
        gone_early = False
        if isinstance(item, acd.CallEnded | acd.CallAbandoned) \
                and item.call_id in self._looking_up and item.call_id not in self.engine.calls:
            gone_early = True  # the caller left while their data was being looked up
            self._gone.add(item.call_id)
        self._publish_view(now)
        # 1. the ring side: pops, Redirects, announcements; no database in between
        for eff in effects:
            try:
                await self._effect(eff, now)
            except Exception:
                # one failed PBX/bus action (say, a Setvar on a caller who just hung up)
                # must not cost the effects after it: the ring, the state, the statistics
                log.exception("ACD effect failed: %r", eff)
        changed = [e.agent for e in effects if isinstance(e, AgentStateChanged)]
        if changed:
            await self._sync_failover()
        # 2. the database, after the ring and in input order; published after its commit
        store = self.store
        if isinstance(item, acd.CallArrived):
            call_id, skill, caller = item.call_id, item.skill, item.caller
            await self._queue_db("call_queued", lambda: store.call_queued(call_id, skill, now,
                                                                         caller))
        if isinstance(item, acd.ClickToCall) and not rejected \
                and item.call_id in self.engine.calls:
            placer = self.engine.agents.get(item.agent_id)
            call_id, agent_id, number = item.call_id, item.agent_id, item.number
            seat = placer.seat if placer is not None else ""
            await self._queue_db("call_placed", lambda: store.call_placed(
                call_id, agent_id, seat, number, now))
        if isinstance(item, acd.AgentAnswered) and not rejected:
            answered_by = self.engine.agents.get(item.agent_id)
            if answered_by is not None:
                call_id, agent_id, seat = item.call_id, item.agent_id, answered_by.seat
                await self._queue_db("call_answered", lambda: store.call_answered(
                    call_id, agent_id, seat, now))
        if isinstance(item, acd.ConsultCompleted) and not rejected:
            call = self.engine.calls.get(item.call_id)
            taker = self.engine.agents.get(call.offered_to) if call and call.offered_to else None
            if taker is not None:
                call_id, agent_id, seat = item.call_id, taker.agent_id, taker.seat
                await self._queue_db("call_handed_over", lambda: store.call_handed_over(
                    call_id, agent_id, seat, now))
        if isinstance(item, acd.CallbackRequested) and not rejected:
            call_id = item.call_id
            await self._queue_db("callback_requested",
                                 lambda: store.callback_requested(call_id, now))
        if isinstance(item, acd.CallEnded | acd.CallAbandoned):
            call_id = item.call_id
            self.submit(("forget", call_id))
            waiting = self.engine.calls.get(call_id)
            if waiting is not None and str(waiting.state) == "callback":
                # the caller's own leg, after asking for a callback: the call keeps its place,
                # and its record stays open until the callback ends (the ACD's CallEnded then)
                pass
            elif call_id in self._failed_over and isinstance(item, acd.CallAbandoned):
                pass  # not over: the failover queue has the caller (failover_call ends it)
            elif not rejected or gone_early:
                abandoned = isinstance(item, acd.CallAbandoned)
                await self._queue_db("call_ended", lambda: store.call_ended(
                    call_id, now, abandoned=abandoned))
        for agent in changed:
            await self._queue_agent_state(agent, actor)
        if changed:
            # a restart must find agents and calls as they are now, not 10 s ago
            await self._queue_snapshot()
        if reply is not None:
            doc = {"ok": not rejected, **({"error": rejected[0].reason} if rejected else {})}
            await self._reply_after_commit(reply, doc)
        await self._release_replies()

    async def _effect(self, eff: Any, now: float) -> None:
        if isinstance(eff, RingAgent):
            ch = self.channels.get(eff.call_id)
            call = self.engine.calls.get(eff.call_id)
            # the pop leaves as the seat rings (to /ws in-process, to MQTT in parallel)
            self._send_pop(eff, call)
            self.notifier.call_event(eff.call_id, "offered", at=now, agent_id=eff.agent_id,
                                     seat=eff.seat, skill=eff.skill,
                                     detail={"attempt": eff.attempt})
            if ch is None:
                log.error("call %s: no channel known; cannot ring %s", eff.call_id, eff.seat)
                self.submit(acd.RingTimeout(agent_id=eff.agent_id, call_id=eff.call_id))
                return
            await self._ring(eff, ch.channel)
        elif isinstance(eff, QueueStats):
            self.notifier.queue_stats(eff, at=now)
        elif isinstance(eff, Announce | Deflect):
            ch = self.channels.get(eff.call_id)
            if ch is not None:
                key = self.callback_key if eff.callback else None
                prompt_ids = (announcement(eff.position, eff.ewt_s, ch.lang, key)
                              if isinstance(eff, Announce) else
                              deflection(eff.ewt_s, ch.lang, key))
                if isinstance(eff, Deflect):
                    log.info("call %s: expected wait %.0f s: told, callback %s, self-service "
                             "offered", eff.call_id, eff.ewt_s,
                             "offered" if eff.callback else "not offered")
                try:
                    # only prompt ids (the index's paths) reach the channel: no caller input
                    await self.nodes.for_call(eff.call_id).announce(ch.channel, prompt_ids,
                                                                    ch.lang)
                except Exception as exc:  # the caller most likely just hung up
                    # a position announcement that cannot be set is no fault of ours: the
                    # channel's Hangup follows; a warning, not a traceback, says so
                    log.warning("call %s: position announcement not set on %s (%s: %s)",
                                eff.call_id, ch.channel, type(exc).__name__, exc)
        elif isinstance(eff, Overflow):
            ch = self.channels.get(eff.call_id)
            if ch is not None:
                busy = all_busy(eff.ewt_s, ch.lang) if eff.ewt_s is not None else []
                await self.nodes.for_call(eff.call_id).overflow(ch.channel, eff.target, busy,
                                                                ch.lang)
        elif isinstance(eff, CallbackDial):
            # the pop first, as for any offer: the agent sees whom they are calling back
            self._send_pop(eff, self.engine.calls.get(eff.call_id))
            self.notifier.call_event(
                eff.call_id, "click_to_call" if eff.click_to_call else "callback_dialling",
                at=now, agent_id=eff.agent_id, seat=eff.seat, detail={"attempt": eff.attempt})
            try:
                # Asterisk gives up on the seat a little before the ACD's own ring timer
                pbx = self.nodes.for_call(eff.call_id)
                dial = pbx.click_to_call if eff.click_to_call else pbx.callback
                await dial(eff.seat, eff.call_id, eff.number,
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
        elif isinstance(eff, CancelRing | Rejected | AgentStateChanged):
            log.debug("ACD: %r", eff)  # agent states go out after their commit (_apply)

    async def _ring(self, eff: RingAgent, channel: str) -> None:
        """Redirect the caller to the seat; a refusal is tried again shortly (RING_RETRY_S)
        while the offer stands, then, like any other failure, it counts as not answered."""
        key = (eff.call_id, eff.agent_id)
        try:
            # the caller's channel is on the call's node: that node's AMI Redirects it
            await self.nodes.for_call(eff.call_id).ring_seat(channel, eff.seat)
        except PbxUnreachable as exc:
            # not the agent's doing: the call goes back to the front of its queue, the agent
            # back to ready, and routing of that node's calls waits for it (PbxLink, from
            # the node's AMI client)
            self._ring_retries.pop(key, None)
            log.warning("call %s: ring of %s not sent: %s", eff.call_id, eff.seat, exc)
            self.submit(acd.RingNotSent(agent_id=eff.agent_id, call_id=eff.call_id))
        except PbxRefused as exc:
            done = self._ring_retries.get(key, 0)
            if done < len(RING_RETRY_S):
                self._ring_retries[key] = done + 1
                log.warning("call %s: the PBX refused to ring %s (%s); again in %.2f s",
                            eff.call_id, eff.seat, exc, RING_RETRY_S[done])
                asyncio.get_running_loop().call_later(RING_RETRY_S[done], self.submit,
                                                      ("ring_again", eff))
                return
            self._ring_retries.pop(key, None)
            log.error("call %s: could not ring %s: refused %d times (%s)", eff.call_id,
                      eff.seat, done + 1, exc)
            self.submit(acd.RingTimeout(agent_id=eff.agent_id, call_id=eff.call_id))
        except Exception:
            self._ring_retries.pop(key, None)
            log.exception("call %s: could not ring %s", eff.call_id, eff.seat)
            self.submit(acd.RingTimeout(agent_id=eff.agent_id, call_id=eff.call_id))
        else:
            self._ring_retries.pop(key, None)

    def _send_pop(self, eff: RingAgent | CallbackDial, call: Call | None) -> None:
        """The screen-pop from the data looked up when the call was queued: no I/O here."""
        callback = isinstance(eff, CallbackDial)
        caller = eff.number if isinstance(eff, CallbackDial) else eff.caller
        data = self.call_data.get(eff.call_id)
        if data is None:
            pop: dict[str, Any] = {
                "call_id": eff.call_id, "caller_number": caller, "generated_at": None,
                "entered_account": None if not eff.account else {
                    "account_no": eff.account, "found": None},
                "accounts": [], "accounts_total": 0, "accounts_truncated": False,
                "work_orders": [], "ivr": None, "error": "not_looked_up"}
            self._late_pops[eff.call_id] = eff  # the full pop follows its lookup
            if eff.call_id not in self._looking_up:
                self._ask_lookup(eff.call_id, caller, eff.account)
        else:
            pop = {**data.pop, "caller_number": caller} if callback else dict(data.pop)
            ivr = pop.get("ivr")
            if isinstance(ivr, Mapping) and ivr.get("queued_at") is None and call is not None:
                # looked up before the queue time was written; the ACD knows it
                pop["ivr"] = {**ivr, "queued_at": _iso(call.enqueued_at)}
        if isinstance(eff, CallbackDial):
            self.notifier.screen_pop(eff.agent_id, pop, seat=eff.seat, attempt=eff.attempt,
                                     callback=True)
        else:
            self.notifier.screen_pop(eff.agent_id, pop, seat=eff.seat, skill=eff.skill,
                                     attempt=eff.attempt)

    def _publish_view(self, now: float) -> None:
        self.view = AcdView.of(self.engine, self.channels, now, self.view.version + 1)

    # ---------------------------------------------------------------------------- database

    async def _queue_db(self, what: str, write: Callable[[], Awaitable[None]] | None,
                        after: Callable[[], Awaitable[None] | None] | None = None) -> None:
        job = _DbJob(what, write, after)
        try:
            self._db.put_nowait(job)
        except asyncio.QueueFull:
            log.warning("ACD: %d database writes waiting; the writer waits for them",
                        self._db.qsize())
            await self._db.put(job)

    async def _queue_agent_state(self, agent: Agent, actor: str) -> None:
        wrap_up_s = self.engine.config.wrap_up_s
        await self._queue_db(
            "agent_state", lambda: self.store.agent_state(agent, actor),
            lambda: self.notifier.agent_state(agent, wrap_up_s=wrap_up_s))

    async def _queue_snapshot(self) -> None:
        if self._snapshot_queued:
            return  # the queued one will save the latest view
        self._snapshot_queued = True

        async def save() -> None:
            self._snapshot_queued = False
            data = await asyncio.to_thread(self.view.snapshot.to_dict)
            await self.store.save_snapshot(data)
        await self._queue_db("snapshot", save)

    async def _reply_after_commit(self, reply: Callable[[dict[str, Any]], Awaitable[None]],
                                  doc: dict[str, Any]) -> None:
        """A reply means the input and every call queued before it are in the database."""
        job = _DbJob("reply", None, lambda: reply(doc))
        if self._lookups_started <= self._lookups_applied and not self._held_replies:
            await self._queue_db(job.what, job.write, job.after)
        else:
            self._held_replies.append((self._lookups_started,
                                       self.clock() + 2 * LOOKUP_TIMEOUT_S, job))

    async def _release_replies(self) -> None:
        now = self.clock()
        while self._held_replies and (self._held_replies[0][0] <= self._lookups_applied
                                      or self._held_replies[0][1] <= now):
            job = self._held_replies.popleft()[2]
            await self._queue_db(job.what, job.write, job.after)

    async def _db_writer(self) -> None:
        """Drains the database writes in order; publishes what reflects each after it."""
        loop = asyncio.get_running_loop()
        while True:
            job = await self._db.get()
            # shielded: a stop lets the write under way finish (and _drain_db waits for it)
            self._db_current = loop.create_task(self._db_job(job), name="acd-db-write")
            await asyncio.shield(self._db_current)

    async def _drain_db(self) -> None:
        if self._db_current is not None and not self._db_current.done():
            await self._db_current
        while not self._db.empty():
            await self._db_job(self._db.get_nowait())

    async def _db_job(self, job: _DbJob) -> None:
        try:
            if job.write is not None:
                await job.write()
        except Exception:
            log.exception("ACD: database write %s failed; not published", job.what)
            return
        if job.after is not None:
            try:
                done = job.after()
                if inspect.isawaitable(done):
                    await done
            except Exception:
                log.exception("ACD: after %s", job.what)

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
            # every node has its failover queue; the seat counts as set once every node took
            # it (QueuePause is idempotent, so a node that already has it may hear it again)
            done = True
            for node, pbx in self.nodes.nodes.items():
                try:
                    await pbx.failover_member(seat, member)
                except Exception as exc:
                    done = False
                    log.warning("failover queue on PBX node %s: %s %s not set: %s",
                                node or "-", seat, "member" if member else "paused", exc)
            if done:
                self.failover_members[seat] = member

    def _cancel_timer(self, name: str) -> None:
        handle = self.timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _timer_fired(self, name: str) -> None:
        self.timers.pop(name, None)
        self.submit(acd.Tick())


def _minutes(ewt_s: float) -> int:
    return max(1, round(ewt_s / 60))


def _callback_offer(key: str | None, lang: str) -> list[str]:
    """"To be called back and keep your place, press <key>" (a key that is no digit, as
    [acd] callback_key could be, is not spoken: the sentence is left out)."""
    from ivr.say import say_digits

    if not key or not (key.isascii() and key.isdigit()):
        return []
    return ["acd.callback_press", *say_digits(key, lang, phone_style=False)]


def announcement(position: int, ewt_s: float | None, lang: str,
                 callback_key: str | None = None) -> list[str]:
    """Prompt ids: "you are number N in line; the expected wait is about M minutes", and the
    callback offer when `callback_key` is given (Announce.callback)."""
    from ivr.say import say_number

    out = ["acd.position_before", *say_number(position, lang), "acd.position_after"]
    if ewt_s is not None:
        out += ["acd.ewt_before", *say_number(_minutes(ewt_s), lang), "acd.ewt_minutes"]
    return out + _callback_offer(callback_key, lang)


def deflection(ewt_s: float, lang: str, callback_key: str | None) -> list[str]:
    """Prompt ids of the storm's EWT deflection (Deflect): "many calls; the expected wait is
    about M minutes", the callback offer where a callback can be made, then self-service (the
    State Grid app, the outage notices) and "stay on the line to keep waiting"."""
    from ivr.say import say_number

    return ["acd.deflect_before", *say_number(_minutes(ewt_s), lang), "acd.ewt_minutes",
            *_callback_offer(callback_key, lang), "acd.deflect_self_service"]


def all_busy(ewt_s: float, lang: str) -> list[str]:
    """Prompt ids of the all-busy message that names the wait (Overflow.ewt_s): the queue is
    full, the wait is about M minutes, call again later or use self-service; goodbye."""
    from ivr.say import say_number

    return ["acd.busy_wait_before", *say_number(_minutes(ewt_s), lang), "acd.busy_wait_after"]
