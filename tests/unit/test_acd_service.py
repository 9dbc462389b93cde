"""callcenter.acd_service: readers see immutable views; the ring waits on no database.

Fakes at the ports (a store and a PBX that write into one shared log, the MQTT bus); the
assertions are about outcomes: what the log shows happened in which order, and what every
reader saw."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from acd import engine as acd
from acd.model import AcdConfig, Agent, AgentState
from agent_desktop.auth import User
from agent_desktop.push import PushHub
from callcenter.acd_service import (
    RING_RETRY_S,
    AcdService,
    AcdView,
    CallChannel,
    CallData,
    PbxRefused,
    PbxUnreachable,
    all_busy,
    announcement,
    deflection,
)
from callcenter.call_control import ask_acd
from tests.support.fakes import FakeBus, FakePbx

SKILLS = ("general", "repair", "billing")


class Log:
    """What reached the ports, in order: ("db", what, ...), ("ring", seat, channel),
    ("pub", topic[, state])."""

    def __init__(self) -> None:
        self.entries: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()
        self.rang = asyncio.Event()

    def add(self, *entry: Any) -> None:
        with self.lock:
            self.entries.append(entry)

    def since(self, mark: int) -> list[tuple[Any, ...]]:
        with self.lock:
            return list(self.entries[mark:])

    def mark(self) -> int:
        with self.lock:
            return len(self.entries)


class SlowStore:
    """The database port: every unit of work takes `delay_s` (a busy database) and is logged
    when it commits."""

    def __init__(self, log: Log, delay_s: float = 0.0,
                 flags: dict[str, frozenset[str]] | None = None) -> None:
        self.log = log
        self.delay_s = delay_s
        self.flags = flags or {}

    async def _work(self, *entry: Any) -> None:
        self.log.add("db-start", entry[0])
        await asyncio.sleep(self.delay_s)
        self.log.add("db", *entry)

    async def lookup(self, call_id: str, caller: str, account: str | None) -> CallData:
        await self._work("lookup", call_id)
        return CallData(self.flags.get(call_id, frozenset()),
                        {"call_id": call_id, "caller_number": caller,
                         "accounts": [{"account_no": account, "customer_name": "张三"}],
                         "work_orders": [], "ivr": {"queued_at": None, "path": []}})

    async def agent_state(self, agent: Agent, actor: str) -> None:
        await self._work("agent_state", agent.agent_id, str(agent.state))

    async def call_queued(self, call_id: str, skill: str, at: float,
                          caller: str | None = None) -> None:
        await self._work("call_queued", call_id)

    async def call_answered(self, call_id: str, agent_id: str, seat: str, at: float) -> None:
        await self._work("call_answered", call_id)

    async def call_ended(self, call_id: str, at: float, abandoned: bool) -> None:
        await self._work("call_ended", call_id)

    async def call_placed(self, call_id: str, agent_id: str, seat: str, number: str,
                          at: float) -> None:
        await self._work("call_placed", call_id, agent_id, number)

    async def callback_requested(self, call_id: str, at: float) -> None:
        await self._work("callback_requested", call_id)

    async def save_snapshot(self, data: dict[str, Any]) -> None:
        await self._work("snapshot")


class LoggingPbx(FakePbx):
    def __init__(self, log: Log) -> None:
        super().__init__()
        self.log = log

    async def ring_seat(self, channel: str, seat: str) -> None:
        await super().ring_seat(channel, seat)
        self.log.add("ring", seat, channel)
        self.log.rang.set()

    async def callback(self, seat: str, call_id: str, number: str, ring_s: float) -> None:
        await super().callback(seat, call_id, number, ring_s)
        self.log.add("ring", seat, number)


class LoggingBus(FakeBus):
    def __init__(self, log: Log) -> None:
        super().__init__()
        self.log = log

    def publish(self, topic: str, payload: Any, *, qos: int = 1, retain: bool = False) -> None:
        super().publish(topic, payload, qos=qos, retain=retain)
        self.log.add("pub", topic, *([self.sent[-1][1]["state"]] if "/state" in topic else []))


@asynccontextmanager
async def _service(log: Log, store: SlowStore,
                   config: AcdConfig | None = None) -> AsyncIterator[AcdService]:
    service = AcdService.create(config or AcdConfig(wrap_up_s=0.05, ring_timeout_s=30),
                                LoggingPbx(log), LoggingBus(log), store)
    writer = asyncio.create_task(service.run(), name="acd")
    try:
        yield service
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


async def _do(service: AcdService, inp: acd.Input) -> dict[str, Any]:
    """Apply through the writer; back once what it changed is in the database."""
    return await ask_acd(service, inp, "test", timeout=10)


async def _login_ready(service: AcdService, agent_id: str, seat: str,
                       skills: dict[str, int]) -> None:
    assert (await _do(service, acd.AgentLogin(agent_id=agent_id, seat=seat,
                                              skills=skills)))["ok"]
    assert (await _do(service, acd.AgentReady(agent_id=agent_id)))["ok"]


async def _rang(log: Log) -> None:
    await asyncio.wait_for(log.rang.wait(), 5.0)


# ------------------------------------------------------------------------------- the ring


async def test_the_ring_waits_on_no_database_and_state_is_published_after_its_commit() -> None:
    log = Log()
    # a database this slow would hold every ring 50 ms per query if the ring waited on it
    store = SlowStore(log, delay_s=0.05, flags={"c2": frozenset({"important"})})
    async with _service(log, store) as service:
        assert (await _do(service, acd.AgentLogin(agent_id="A001", seat="seat01",
                                                  skills={"general": 3})))["ok"]
        # two callers wait while no agent is free; their data is looked up as they queue
        service.call_waiting("c1", "PJSIP/carrier-1", "13800000001", "general", 0, "3700000001")
        service.call_waiting("c2", "PJSIP/carrier-2", "13800000002", "general", 0, "3700000002")
        await _do(service, acd.Tick())
        assert [e for e in log.entries if e[0] == "db" and e[1] == "lookup"] == [
            ("db", "lookup", "c1"), ("db", "lookup", "c2")]

        mark = log.mark()
        t0 = time.monotonic()
        service.submit(acd.AgentReady(agent_id="A001"))  # the decision: A001 is free
        await _rang(log)
        ring_s = time.monotonic() - t0
        after = log.since(mark)
        ring = next(i for i, e in enumerate(after) if e[0] == "ring")
        # nothing touched the database between the decision and the Redirect ...
        assert [e for e in after[:ring] if e[0] in ("db", "db-start")] == []
        assert ring_s < 0.05, f"the ring took {ring_s * 1000:.0f} ms: it waited on something"
        # ... the pop left first, then the Redirect rang the seat of the important caller
        assert after[ring] == ("ring", "seat01", "PJSIP/carrier-2")
        assert ("pub", "hotline/agents/A001/pop") in after[:ring]
        pop = service.bus.on("hotline/agents/A001/pop")[-1]  # type: ignore[attr-defined]
        assert pop["call_id"] == "c2" and pop["accounts"][0]["customer_name"] == "张三"
        assert (pop["seat"], pop["skill"], pop["attempt"]) == ("seat01", "general", 1)
        assert pop["ivr"]["queued_at"] is not None  # the ACD filled in the queue time
        # the writes come after the ring, and the agent's new state only after its commit
        await _do(service, acd.Tick())
        after = log.since(mark)
        committed = after.index(("db", "agent_state", "A001", "reserved"))
        published = after.index(("pub", "hotline/agents/A001/state", "reserved"))
        assert ring < committed < published


async def test_a_caller_who_leaves_while_being_looked_up_is_never_rung() -> None:
    log = Log()
    async with _service(log, SlowStore(log, delay_s=0.05)) as service:
        await _login_ready(service, "A001", "seat01", {"general": 3})
        service.call_waiting("c1", "PJSIP/carrier-1", "13800000001", "general", 0, None)
        service.submit(acd.CallAbandoned(call_id="c1"))  # hung up during the lookup
        await _do(service, acd.Tick())  # back after the lookup was applied
        assert [e for e in log.entries if e[0] == "ring"] == []
        assert "c1" not in service.view.calls
        assert ("db", "call_ended", "c1") in log.entries  # the call record still ends


async def test_a_call_the_failover_queue_connected_gets_its_answer_and_end_written() -> None:
    """The ACD never had it (the CTI was away when the caller failed over): the call record
    is closed all the same (the fault harness found such records left open)."""
    log = Log()
    async with _service(log, SlowStore(log)) as service:
        service.failover_call("c9", agent_id="A001", seat="seat01")
        service.failover_call("c9", ended=True)
        await _do(service, acd.Tick())  # back after the writes queued before it
        assert [e for e in log.entries if e[0] == "db" and e[2:] == ("c9",)] == [
            ("db", "call_answered", "c9"), ("db", "call_ended", "c9")]


async def test_a_caller_who_fails_over_is_let_go_but_not_recorded_as_gone() -> None:
    """The ACD lets go of a caller the failover queue took; the record ends only when the
    call does (the fault harness found such calls closed as abandoned, then answered)."""
    log = Log()
    async with _service(log, SlowStore(log)) as service:
        service.call_waiting("c8", "PJSIP/carrier-8", "13800000008", "general", 0, None)
        await _do(service, acd.Tick())
        service.failed_over("c8")
        await _do(service, acd.Tick())
        assert "c8" not in service.view.calls
        assert ("db", "call_ended", "c8") not in log.entries
        service.failover_call("c8", agent_id="A001", seat="seat01")
        service.failover_call("c8", ended=True)
        await _do(service, acd.Tick())
        assert ("db", "call_ended", "c8") in log.entries


async def test_a_callback_request_is_written_and_the_record_ends_with_the_callback() -> None:
    """The caller's own leg ends once they asked to be called back: the record keeps the
    request and stays open (it was closed as abandoned, and the callback's answer came after
    that end); the callback's end closes it."""
    log = Log()
    config = AcdConfig(wrap_up_s=0.05, ring_timeout_s=30, callback_enabled=True)
    async with _service(log, SlowStore(log), config) as service:
        service.call_waiting("c7", "PJSIP/carrier-7", "13800000007", "general", 0, None)
        await _do(service, acd.Tick())
        assert (await _do(service, acd.CallbackRequested(call_id="c7",
                                                         number="13800000007")))["ok"]
        service.submit(acd.CallAbandoned(call_id="c7"))  # the caller hangs up, as told
        await _do(service, acd.Tick())
        mine = [e for e in log.entries if e[0] == "db" and e[2:] == ("c7",) and e[1] != "lookup"]
        assert mine == [("db", "call_queued", "c7"), ("db", "callback_requested", "c7")]
        assert str(service.view.calls["c7"].state) == "callback"
        # an agent comes free: the seat rings first, the agent answers, the customer is dialled
        await _login_ready(service, "A001", "seat01", {"general": 3})
        assert ("ring", "seat01", "13800000007") in log.entries
        assert (await _do(service, acd.AgentAnswered(agent_id="A001", call_id="c7")))["ok"]
        assert (await _do(service, acd.CallEnded(call_id="c7")))["ok"]
        mine = [e for e in log.entries if e[0] == "db" and e[2:] == ("c7",) and e[1] != "lookup"]
        assert mine[2:] == [("db", "call_answered", "c7"), ("db", "call_ended", "c7")]


async def test_the_pop_reaches_the_desktop_hub_in_process_and_mqtt_in_parallel() -> None:
    log = Log()
    async with _service(log, SlowStore(log)) as service:
        bus = FakeBus()
        hub = PushHub()
        hub.attach(bus, service.notifier)
        # the ACD's topics come from the notifier, so the hub does not take them from MQTT too;
        # the alerts, the outage notices' revision and storm mode do (any process sends them)
        assert set(bus.handlers) == {"hotline/supervisors/alerts", "hotline/outages",
                                     "hotline/storm"}
        desk = hub.connect(User(user_id="A001", role="agent", name="x", seat="seat01"))
        await _login_ready(service, "A001", "seat01", {"general": 3})
        service.call_waiting("c1", "PJSIP/carrier-1", "13800000001", "general", 0, None)
        await _rang(log)
        got: list[dict[str, Any]] = []
        while not desk.queue.empty():
            got.append(desk.queue.get_nowait())
        pops = [m["data"] for m in got if m["type"] == "pop"]
        assert len(pops) == 1 and pops[0]["call_id"] == "c1" and pops[0]["seat"] == "seat01"
        assert service.bus.on("hotline/agents/A001/pop") == pops  # type: ignore[attr-defined]


# ------------------------------------------------------------------------- the snapshots


def _check(view: AcdView, now: float) -> None:
    """What must hold in any one view: it is one moment of the ACD."""
    agents, calls = dict(view.agents), dict(view.calls)
    for a in agents.values():
        if a.state in (AgentState.RESERVED, AgentState.ON_CALL):
            call = calls.get(a.call_id or "")
            assert call is not None and call.offered_to == a.agent_id, (a, call)
    for c in calls.values():
        if c.offered_to is not None:
            assert agents[c.offered_to].call_id == c.call_id, c
    for q in view.queue_stats(now):
        with_skill = [a for a in agents.values() if q.skill in a.skills]
        assert sum(q.agents.values()) == len(with_skill), q
        assert q.agents.get("ready", 0) == sum(a.state == AgentState.READY for a in with_skill)
        queued = [c for c in calls.values() if c.skill == q.skill
                  and str(c.state) in ("waiting", "callback")]
        assert q.waiting == len(queued), (q, queued)


async def test_threads_read_consistent_views_while_the_writer_works() -> None:
    log = Log()
    async with _service(log, SlowStore(log)) as service:
        for i in range(12):
            await _login_ready(service, f"A{i:03d}", f"seat{i + 1:02d}",
                               {SKILLS[i % 3]: 3, SKILLS[(i + 1) % 3]: 2})
        stop = threading.Event()
        reads = [0] * 4
        errors: list[BaseException] = []

        def reader(n: int) -> None:
            last = -1
            while not stop.is_set():
                view = service.view
                try:
                    assert view.version >= last
                    last = view.version
                    _check(view, time.time())
                except BaseException as exc:  # noqa: BLE001 - reported by the test
                    errors.append(exc)
                    return
                reads[n] += 1

        threads = [threading.Thread(target=reader, args=(n,), name=f"reader-{n}")
                   for n in range(4)]
        for t in threads:
            t.start()
        try:
            for k in range(150):
                cid = f"c{k}"
                service.call_waiting(cid, f"PJSIP/carrier-{k}", f"1380000{k:04d}",
                                     SKILLS[k % 3], k % 2, None)
                for a in service.view.agents.values():
                    if a.state == AgentState.RESERVED and a.call_id:
                        service.submit(acd.AgentAnswered(agent_id=a.agent_id,
                                                         call_id=a.call_id))
                    elif a.state == AgentState.ON_CALL and a.call_id:
                        service.submit(acd.CallEnded(call_id=a.call_id))
                if k % 7 == 0:
                    service.submit(acd.CallAbandoned(call_id=f"c{k - 5}"))
                # the writer takes inputs in order: once this Tick is answered, it has applied
                # everything submitted above (a condition, not a pause)
                await _do(service, acd.Tick())
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not errors, errors[0]
        assert min(reads) > 50, reads  # every thread really read while the writer wrote
        assert service.view.version > 300
        service.engine.assert_invariants()


def test_a_view_is_immutable() -> None:
    engine = acd.AcdEngine(AcdConfig())
    engine.apply(acd.AgentLogin(agent_id="A001", seat="seat01", skills={"general": 3}), 1.0)
    view = AcdView.of(engine, {}, 1.0, 1)
    with pytest.raises(TypeError):
        view.agents["A002"] = view.agents["A001"]  # type: ignore[index]
    engine.apply(acd.AgentReady(agent_id="A001"), 2.0)
    assert str(view.agents["A001"].state) == "not_ready"  # the engine moved on; the view not


async def test_a_call_restored_after_a_restart_rings_at_once_and_its_full_pop_follows() -> None:
    before = acd.AcdEngine(AcdConfig())
    before.apply(acd.AgentLogin(agent_id="A001", seat="seat01", skills={"general": 3}), 1.0)
    before.apply(acd.CallArrived(call_id="c1", caller="13800000001", skill="general",
                                 priority=0, account=None), 2.0)
    log = Log()
    service = AcdService.create(AcdConfig(), LoggingPbx(log), LoggingBus(log),
                                SlowStore(log, delay_s=0.05), before.snapshot().to_dict())
    writer = asyncio.create_task(service.run(), name="acd")
    try:
        # the resync finds the caller still waiting in Asterisk; the agent says ready at once
        service.call_waiting("c1", "PJSIP/carrier-1", "13800000001", "general", 0, None)
        service.submit(acd.AgentReady(agent_id="A001"))
        await _rang(log)
        assert [e for e in log.entries if e[0] == "ring"] == [
            ("ring", "seat01", "PJSIP/carrier-1")]
        await _do(service, acd.Tick())
        pops = service.bus.on("hotline/agents/A001/pop")  # type: ignore[attr-defined]
        assert [p.get("error") for p in pops] == ["not_looked_up", None]
        assert pops[1]["accounts"][0]["customer_name"] == "张三"
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


async def test_a_clean_stop_still_writes_what_was_queued() -> None:
    log = Log()
    service = AcdService.create(AcdConfig(), LoggingPbx(log), LoggingBus(log),
                                SlowStore(log, delay_s=0.02))
    writer = asyncio.create_task(service.run(), name="acd")
    for i in range(5):
        service.submit(acd.AgentLogin(agent_id=f"A{i}", seat=f"seat0{i + 1}",
                                      skills={"general": 3}))
    # the writer decided (its view says so); the writes still wait in their queue
    async with asyncio.timeout(5):  # a deadline on the condition
        while service.view.version < 5:  # noqa: ASYNC110 - the view's version is what we wait for
            await asyncio.sleep(0.001)
    assert not [e for e in log.entries if e[:2] == ("db", "agent_state")]
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    assert {e[2] for e in log.entries if e[:2] == ("db", "agent_state")} == {
        f"A{i}" for i in range(5)}


class HungUpPbx(LoggingPbx):
    """Asterisk refuses the announcement's Setvar: the caller's channel is already gone."""

    async def announce(self, channel: str, prompt_ids: list[str], lang: str) -> None:
        self.log.add("announce", channel)
        raise RuntimeError(f"Channel {channel} does not exist")


async def test_an_announcement_on_a_channel_that_just_hung_up_is_a_warning_not_a_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    log = Log()
    service = AcdService.create(AcdConfig(wrap_up_s=0.05, ring_timeout_s=30),
                                HungUpPbx(log), LoggingBus(log), SlowStore(log))
    writer = asyncio.create_task(service.run(), name="acd")
    try:
        with caplog.at_level(logging.WARNING, logger="callcenter.acd_service"):
            service.call_waiting("c1", "PJSIP/carrier-1", "13800000001", "general", 0, None)
            await _do(service, acd.Tick())
            assert ("announce", "PJSIP/carrier-1") in log.entries  # announced at join
        assert "c1" in service.view.calls  # the call still waits for an agent
        failed = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert failed == []
        assert any("announcement not set" in r.getMessage() for r in caplog.records)
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


class RefusingPbx(LoggingPbx):
    """Asterisk answers Error to the first `refusals` Redirects (the caller's channel is still
    leaving a bridge after a transfer), then rings."""

    def __init__(self, log: Log, refusals: int) -> None:
        super().__init__(log)
        self.refusals = refusals

    async def ring_seat(self, channel: str, seat: str) -> None:
        if self.refusals > 0:
            self.refusals -= 1
            self.log.add("refused", seat, channel)
            raise PbxRefused("Redirect: Response: Error")
        await super().ring_seat(channel, seat)


async def _offer_with(pbx: RefusingPbx, log: Log) -> AcdService:
    service = AcdService.create(AcdConfig(wrap_up_s=0.05, ring_timeout_s=30), pbx,
                                LoggingBus(log), SlowStore(log))
    return service


async def test_a_refused_ring_is_tried_again_while_the_offer_stands() -> None:
    log = Log()
    service = await _offer_with(RefusingPbx(log, refusals=1), log)
    writer = asyncio.create_task(service.run(), name="acd")
    try:
        await _login_ready(service, "A001", "seat01", {"general": 3})
        service.call_waiting("c1", "PJSIP/carrier-1", "13800000001", "general", 0, None)
        await _rang(log)  # the second Redirect rang the seat
        assert [e[0] for e in log.entries if e[0] in ("refused", "ring")] == ["refused", "ring"]
        assert service.view.agents["A001"].state == AgentState.RESERVED  # no ring-no-answer
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


async def test_a_ring_refused_every_time_counts_as_not_answered() -> None:
    log = Log()
    service = await _offer_with(RefusingPbx(log, refusals=10), log)
    writer = asyncio.create_task(service.run(), name="acd")
    try:
        await _login_ready(service, "A001", "seat01", {"general": 3})
        service.call_waiting("c1", "PJSIP/carrier-1", "13800000001", "general", 0, None)
        deadline = time.monotonic() + 10
        while service.view.agents["A001"].state != AgentState.NOT_READY:
            assert time.monotonic() < deadline, "the refused offer never counted as RONA"
            await _do(service, acd.Tick())
        assert len([e for e in log.entries if e[0] == "refused"]) == 1 + len(RING_RETRY_S)
        assert service.view.agents["A001"].reason == "rona"
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


class UnreachablePbx(LoggingPbx):
    """The AMI session is gone: a Redirect cannot be sent (AmiNotConnected -> PbxUnreachable)."""

    async def ring_seat(self, channel: str, seat: str) -> None:
        self.log.add("not sent", seat, channel)
        raise PbxUnreachable("Redirect not sent: AMI is not connected and resynced")


async def test_a_ring_not_sent_leaves_the_agent_ready_and_routing_waits_for_the_pbx() -> None:
    """Under an Asterisk kill -9 every agent who came free went not_ready 'rona': a ring that
    could not be sent is not the agent's doing. The agent stays ready, the caller waits at the
    front, and nothing is offered until the AMI client's resync says the PBX is back."""
    log = Log()
    pbx = UnreachablePbx(log)
    service = AcdService.create(AcdConfig(wrap_up_s=0.05, ring_timeout_s=30), pbx,
                                LoggingBus(log), SlowStore(log))
    writer = asyncio.create_task(service.run(), name="acd")
    try:
        await _login_ready(service, "A001", "seat01", {"general": 3})
        service.call_waiting("c1", "PJSIP/carrier-1", "13800000001", "general", 0, None)
        deadline = time.monotonic() + 10
        while not [e for e in log.entries if e[0] == "not sent"]:
            assert time.monotonic() < deadline, "the offer was never tried"
            await _do(service, acd.Tick())
        service.submit(acd.PbxLink(up=False))  # the client's on_lost (here after the ring)
        # a ring tried again before the link went down may still be on its way back (the
        # agent is reserved until it says "not sent"): wait for the agent, with a deadline
        deadline = time.monotonic() + 10
        while service.view.agents["A001"].state != AgentState.READY:
            assert time.monotonic() < deadline, "the agent never came back to ready"
            await _do(service, acd.Tick())
        assert service.view.calls["c1"].state.value == "waiting"
        tries = len([e for e in log.entries if e[0] == "not sent"])
        for _ in range(5):
            await _do(service, acd.Tick())
        assert len([e for e in log.entries if e[0] == "not sent"]) == tries, \
            "rung again while the PBX is away"
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


class PromptPbx(LoggingPbx):
    """Keeps what each announcement said, as prompt ids."""

    async def announce(self, channel: str, prompt_ids: list[str], lang: str) -> None:
        self.log.add("announce", channel, tuple(prompt_ids))


async def test_storm_handling_reaches_callers_as_prompt_ids_only() -> None:
    log = Log()
    pbx = PromptPbx(log)
    service = AcdService.create(AcdConfig(max_queue_per_skill=5, aht_initial_s=120.0), pbx,
                                LoggingBus(log), SlowStore(log), callback_key="2")
    writer = asyncio.create_task(service.run(), name="acd")
    try:
        await _login_ready(service, "A1", "seat01", {"general": 3})
        for n in range(3):
            service.submit(("channel", (f"L{n}", CallChannel(f"PJSIP/carrier-{n}", "1390000",
                                                             None))))
        assert (await _do(service, acd.CallArrived("L0", "1390000", "general")))["ok"]
        await _rang(log)  # A1 is busy with L0: one agent's capacity, 120 s a caller
        assert (await _do(service, acd.HandlingChanged(queue_cap=1, callback_offer_wait_s=30.0,
                                                       ewt_deflect_s=100.0)))["ok"]
        await _do(service, acd.CallArrived("L1", "1390000", "general"))
        said = [e[2] for e in log.entries if e[:2] == ("announce", "PJSIP/carrier-1")]
        # the wait (2 minutes), the callback on key 2, self-service: once, instead of the
        # position announcement
        assert said == [("acd.deflect_before", "num.zh.2", "acd.ewt_minutes",
                         "acd.callback_press", "num.zh.2", "acd.deflect_self_service")]
        await _do(service, acd.CallArrived("L2", "1390000", "general"))  # beyond the cap of 1
        assert pbx.overflowed == [("PJSIP/carrier-2",
                                   ["acd.busy_wait_before", "num.zh.4", "acd.busy_wait_after"])]
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


def test_the_callback_offer_follows_the_announcement_and_names_the_key() -> None:
    assert announcement(2, 150.0, "en", "1") == [
        "acd.position_before", "num.en.2", "acd.position_after", "acd.ewt_before", "num.en.2",
        "acd.ewt_minutes", "acd.callback_press", "num.en.1"]
    assert announcement(1, None, "zh", None) == [
        "acd.position_before", "num.zh.1", "acd.position_after"]
    assert deflection(600.0, "zh", None)[-1] == "acd.deflect_self_service"
    assert "acd.callback_press" not in deflection(600.0, "zh", "*")  # a key we cannot say
    assert all_busy(20.0, "en") == ["acd.busy_wait_before", "num.en.1", "acd.busy_wait_after"]
