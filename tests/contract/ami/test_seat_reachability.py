"""Seat reachability from recorded AMI (phones_unregister.ami: two seats register, send REGISTER
with Expires: 0, one registers for 60 s and expires) through the translate layer, the tracker
and the feed into the ACD; and the resync reading which seats are dead from Asterisk's answers,
so a restarted CTI never believes a dead seat is alive. No socket, no Asterisk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest

from acd import engine as acd
from acd.model import AcdConfig, Agent
from callcenter.acd_service import AcdService, CallData
from callcenter.call_control import ask_acd
from cti.ami.feed import AcdFeed
from cti.ami.translate import CallTracker, RingNoAnswer, SeatReachable, translate
from tests.contract.ami.replay import Replay, trace_bytes, trace_events
from tests.support.fakes import FakeBus, FakePbx

TRACE = "phones_unregister"
SNAPSHOT_ACTIONS = ("CoreShowChannels", "Status", "QueueStatus", "DBGet")


def ami(**headers: str) -> dict[str, str]:
    return dict(headers)


# --------------------------------------------------------------------------- translate


def test_asterisk_says_register_unregister_and_expiry_per_seat() -> None:
    """What Asterisk 22 sent, seat by seat, once the tracker let each change through once."""
    tracker = CallTracker()
    out = [ev for msg in trace_events(TRACE) for ev in tracker.feed(msg)]
    assert out == [SeatReachable("seat07", True), SeatReachable("seat08", True),  # REGISTER
                   SeatReachable("seat07", False), SeatReachable("seat08", False),  # Expires: 0
                   SeatReachable("seat07", True), SeatReachable("seat07", False)]  # expired


def test_every_kind_of_event_in_the_trace_says_the_same() -> None:
    """PeerStatus and DeviceStateChange (the endpoint's) each carry every change."""
    events = trace_events(TRACE)
    for name in ("PeerStatus", "DeviceStateChange"):
        said = [ev for msg in events if msg.get("Event") == name for ev in translate(msg)]
        assert said == [SeatReachable("seat07", True), SeatReachable("seat08", True),
                        SeatReachable("seat07", False), SeatReachable("seat08", False),
                        SeatReachable("seat07", True), SeatReachable("seat07", False)], name
    removed = [m for m in events if m.get("Event") == "ContactStatus"
               and m.get("ContactStatus") == "Removed"]
    assert len(removed) == 3 and all(translate(m) == [] for m in removed)


def test_a_contact_replaced_by_the_phone_does_not_kill_the_seat() -> None:
    """A phone registering from a new address: the new contact's Created may come before the
    old one's Removed (max_contacts = 1, remove_existing); the endpoint stays reachable."""
    tracker = CallTracker()
    out = [ev for msg in (
        ami(Event="PeerStatus", Peer="PJSIP/seat07", PeerStatus="Reachable"),
        ami(Event="ContactStatus", AOR="seat07", ContactStatus="Created",
            URI="sip:seat07@10.0.0.2:5060"),
        ami(Event="ContactStatus", AOR="seat07", ContactStatus="Removed",
            URI="sip:seat07@10.0.0.1:5060"),
    ) for ev in tracker.feed(msg)]
    assert out == [SeatReachable("seat07", True)]
    assert tracker.seats() == {"seat07": True}


# ------------------------------------------------------------------------ feed -> ACD


class Store:
    """The database port, answering at once."""

    async def lookup(self, call_id: str, caller: str, account: str | None) -> CallData:
        return CallData(frozenset(), {"call_id": call_id})

    async def agent_state(self, agent: Agent, actor: str) -> None:
        pass

    async def call_queued(self, call_id: str, skill: str, at: float,
                          caller: str | None = None) -> None:
        pass

    async def call_answered(self, call_id: str, agent_id: str, seat: str, at: float) -> None:
        pass

    async def call_ended(self, call_id: str, at: float, abandoned: bool) -> None:
        pass

    async def callback_requested(self, call_id: str, at: float) -> None:
        pass

    async def save_snapshot(self, data: dict[str, Any]) -> None:
        pass


@asynccontextmanager
async def running(snapshot: Mapping[str, Any] | None = None, seat_reachability: str = "asterisk"
                  ) -> AsyncIterator[tuple[AcdFeed, FakePbx, FakeBus]]:
    pbx, bus = FakePbx(), FakeBus()
    service = AcdService.create(AcdConfig(wrap_up_s=0.05, ring_timeout_s=30), pbx, bus,
                                Store(), snapshot)
    writer = asyncio.create_task(service.run(), name="acd")
    try:
        yield AcdFeed(service, seat_reachability=seat_reachability), pbx, bus
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


async def settle(feed: AcdFeed) -> None:
    """Back once the writer handled (and committed) every input queued before."""
    assert (await ask_acd(feed.service, acd.Tick(), "test", timeout=10))["ok"]


async def login_ready(feed: AcdFeed, agent_id: str, seat: str) -> None:
    s = feed.service
    assert (await ask_acd(s, acd.AgentLogin(agent_id=agent_id, seat=seat,
                                            skills={"general": 3}), "test", timeout=10))["ok"]
    assert (await ask_acd(s, acd.AgentReady(agent_id=agent_id), "test", timeout=10))["ok"]


def states(bus: FakeBus, agent_id: str) -> list[tuple[str, str | None]]:
    return [(p["state"], p["reason"]) for p in bus.on(f"hotline/agents/{agent_id}/state")]


async def test_the_recorded_unregister_takes_agents_out_and_the_register_brings_them_back(
        ) -> None:
    async with running() as (feed, pbx, bus):
        await login_ready(feed, "a07", "seat07")
        await login_ready(feed, "a08", "seat08")
        for msg in trace_events(TRACE):
            for ev in feed.tracker.feed(msg):
                feed.core(ev)
                await settle(feed)
            if msg.get("Event") == "PeerStatus" and msg.get("PeerStatus") == "Unreachable" \
                    and msg.get("Peer") == "PJSIP/seat08" and not pbx.rung:
                # both phones gone: a caller waits, and no seat rings
                feed.service.call_waiting("c1", "PJSIP/carrier-00000001", "13800000001",
                                          "general", 0, None)
                await settle(feed)
                assert pbx.rung == []
        # seat07 came back (the 60 s registration): ready, and rung with the waiting call;
        # its expiry came while it rang, so the agent stays reserved (the ring decides)
        assert pbx.rung == [("PJSIP/carrier-00000001", "seat07")]
        assert states(bus, "a07") == [
            ("not_ready", "login"), ("ready", None),
            ("not_ready", "phone_offline"),  # Expires: 0
            ("ready", None), ("reserved", None),  # REGISTER again: the call waiting rings
            ("reserved", None)]  # expired while ringing: the same state, said again
        assert states(bus, "a08") == [("not_ready", "login"), ("ready", None),
                                      ("not_ready", "phone_offline")]
        view = feed.service.view
        assert view.agents["a07"].phone_offline and view.agents["a08"].phone_offline


def recorded_ami(tag: str) -> Any:
    """An AMI session whose read-only actions get what Asterisk answered in the trace at
    snapshot `tag` (the recorder's ActionIDs rec-<action>-<tag>)."""
    answers: dict[str, Any] = {}

    class Recorded:
        async def action(self, action: Mapping[str, str], *, timeout: float | None = None,
                         idempotent: bool) -> Any:
            assert idempotent, action
            return answers[action["Action"]]

    r = Replay()
    pending = {a: r.request({"Action": a, "ActionID": f"rec-{a.lower()}-{tag}"}, True)
               for a in SNAPSHOT_ACTIONS}
    r.feed(trace_bytes(TRACE))
    answers.update({a: p.future.result() for a, p in pending.items()})
    return Recorded()


@pytest.mark.parametrize(("tag", "offline"), [
    ("registered", {"a01"}),  # seat01 never registered in the trace
    ("unregistered", {"a01", "a07", "a08"}),
    ("expired", {"a01", "a07", "a08"}),
])
async def test_a_restarted_cti_reads_which_seats_are_dead(tag: str, offline: set[str]) -> None:
    """The CTI restarts with every agent ready in its snapshot; the resync asks Asterisk
    (QueueStatus: each seat's device state) and takes the dead seats' agents out at once."""
    async with running() as (before, _pbx, _bus):
        for agent, seat in (("a01", "seat01"), ("a07", "seat07"), ("a08", "seat08")):
            await login_ready(before, agent, seat)
        saved = before.service.view.snapshot.to_dict()
    async with running(saved) as (feed, pbx, bus):
        await feed.resync(recorded_ami(tag))
        await settle(feed)
        view = feed.service.view
        assert {a for a, x in view.agents.items()
                if (x.state, x.reason) == ("not_ready", "phone_offline")} == offline
        assert {a for a, x in view.agents.items() if x.state == "ready"} \
            == {"a01", "a07", "a08"} - offline
        # and each desktop is told so: the resync publishes every agent's state
        for agent in offline:
            assert states(bus, agent)[-1] == ("not_ready", "phone_offline")


async def test_a_dead_seat_the_snapshot_kept_stays_dead_across_a_restart() -> None:
    """Between the restart and the resync the restored ACD rings nobody at a seat it knew
    was dead."""
    async with running() as (before, _pbx, _bus):
        await login_ready(before, "a07", "seat07")
        before.core(SeatReachable("seat07", False))
        await settle(before)
        saved = before.service.view.snapshot.to_dict()
    assert saved["unreachable_seats"] == ["seat07"]
    async with running(saved) as (feed, pbx, _bus):
        feed.service.call_waiting("c1", "PJSIP/carrier-00000001", "13800000001", "general",
                                  0, None)
        await settle(feed)
        assert pbx.rung == []


# ------------------------------------------------- [pbx] seat_reachability = "registrar"
# The phones register with a SIP proxy (Kamailio), not with Asterisk: Asterisk sees no contact
# for any seat, so its word (contact and device states, the failover queue's member states)
# would take every agent out. The feed drops it; a ring-no-answer still takes an agent out.


async def until_rung(feed: AcdFeed, pbx: FakePbx, n: int) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while len(pbx.rung) < n:
        assert asyncio.get_running_loop().time() < deadline, f"{n} rings expected: {pbx.rung}"
        await settle(feed)  # a round trip through the writer: no timer in between


async def test_behind_a_registrar_asterisks_unregister_takes_no_agent_out() -> None:
    async with running(seat_reachability="registrar") as (feed, pbx, bus):
        await login_ready(feed, "a07", "seat07")
        await login_ready(feed, "a08", "seat08")
        for msg in trace_events(TRACE):  # every REGISTER, Expires: 0 and expiry of the trace
            for ev in feed.tracker.feed(msg):
                feed.core(ev)
        feed.core(SeatReachable("seat07", False))  # the UNAVAILABLE it would repeat
        await settle(feed)
        view = feed.service.view
        assert not view.snapshot.unreachable_seats
        assert {a: (x.state, x.phone_offline) for a, x in view.agents.items()} == {
            "a07": ("ready", False), "a08": ("ready", False)}
        assert states(bus, "a07") == [("not_ready", "login"), ("ready", None)]
        # and offers go on
        feed.service.call_waiting("c1", "PJSIP/carrier-00000001", "13800000001", "general",
                                  0, None)
        await until_rung(feed, pbx, 1)
        assert pbx.rung[0][0] == "PJSIP/carrier-00000001"
        # a ring-no-answer still applies
        agent = feed.service.view.calls["c1"].offered_to
        assert agent is not None
        seat = feed.service.view.agents[agent].seat
        feed.core(RingNoAnswer("c1", seat, "NOANSWER"))
        await settle(feed)
        assert (feed.service.view.agents[agent].state,
                feed.service.view.agents[agent].reason) == ("not_ready", "rona")


async def test_behind_a_registrar_the_resync_ignores_device_states_and_revives_dead_seats(
        ) -> None:
    """A snapshot from a CTI that ran under "asterisk" holds seat07 dead; Asterisk's member
    states at the resync (every seat unavailable: no phone registers with it) are ignored,
    and the seat the snapshot held dead is reachable again."""
    async with running() as (before, _pbx, _bus):
        for agent, seat in (("a01", "seat01"), ("a07", "seat07")):
            await login_ready(before, agent, seat)
        before.core(SeatReachable("seat07", False))
        await settle(before)
        saved = before.service.view.snapshot.to_dict()
    assert saved["unreachable_seats"] == ["seat07"]
    async with running(saved, seat_reachability="registrar") as (feed, pbx, _bus):
        await feed.resync(recorded_ami("unregistered"))  # seats 01, 07, 08 unavailable
        await settle(feed)
        view = feed.service.view
        assert not view.snapshot.unreachable_seats
        assert view.agents["a01"].state == "ready" and not view.agents["a01"].phone_offline
        # seat07's agent went not_ready 'phone_offline' from ready: ready again
        assert view.agents["a07"].state == "ready" and not view.agents["a07"].phone_offline
        feed.service.call_waiting("c1", "PJSIP/carrier-00000001", "13800000001", "general",
                                  0, None)
        await until_rung(feed, pbx, 1)
