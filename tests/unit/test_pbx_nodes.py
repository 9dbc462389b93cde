"""Ready for more than one PBX node: each node's Asterisk systemname prefixes its Uniqueid and
Linkedid ("pbx1-1700000000.12"), the settings list the nodes, and every id pattern accepts the
prefix (recording names, the AMI translation, the resync order). The ACD's PBX port, its link
and the AMI feed's resync are per node: two nodes' calls in one ACD, where one node's resync,
restart or lost link leaves the other node's calls alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from acd import engine as acd
from acd.model import AcdConfig, Agent, AgentState, call_node
from asterisk_conf.render import SYSTEM_PROMPTS, RenderError, load_or_create_secrets, render
from callcenter.acd_service import AcdService, CallData, PbxNodes, PbxUnreachable
from callcenter.call_control import ask_acd
from config.settings import ASTERISK_ID_PATTERN, PbxNode, SettingsError, load_settings
from cti.ami import translate as t
from cti.ami.feed import AcdFeed
from cti.ami.resync import ChannelInfo, _order
from cti.ami.translate import AsteriskId, CallQueued, parse_asterisk_id, translate
from recorder.naming import BadRecordingName, parse, relative_to_storage
from tests.support.fakes import FakeBus, FakePbx
from tests.support.settings import write_test_settings

ENV = {"HOTLINE_AMI_SECRET": "s3cret"}
SYS_PROMPTS = {key: {lang: f"/p/{lang}/sys.{key}" for lang in ("zh", "en")}
               for key in SYSTEM_PROMPTS}


# -------------------------------------------------------------------------------- settings


def test_default_is_one_local_node_named_pbx1() -> None:
    s = load_settings(env=ENV)
    assert s.pbx.systemname == "pbx1"
    assert s.pbx.nodes == (PbxNode("pbx1", s.ami.host, s.ami.port),)


def test_a_node_list_from_the_settings_file(tmp_path: Path) -> None:
    path = write_test_settings(tmp_path / "h.toml", {"pbx": {"systemname": "pbx2", "nodes": [
        {"name": "pbx1", "ami_host": "10.0.0.11"},
        {"name": "pbx2", "ami_host": "10.0.0.12", "ami_port": 5039}]}})
    s = load_settings(path, ENV)
    assert s.pbx.systemname == "pbx2"
    assert s.pbx.nodes == (PbxNode("pbx1", "10.0.0.11", s.ami.port),
                           PbxNode("pbx2", "10.0.0.12", 5039))


@pytest.mark.parametrize(("pbx", "message"), [
    ({"systemname": "PBX1"}, "systemname"),
    ({"systemname": "pbx_1"}, "systemname"),
    ({"systemname": "pbx.1"}, "systemname"),
    ({"nodes": [{"name": "pbx1"}, {"name": "pbx1", "ami_port": 5039}]}, "unique"),
    ({"nodes": [{"name": "pbx1"}, {"name": "pbx2"}]}, "AMI addresses"),
    ({"nodes": [{"name": "Node 1"}]}, "name"),
    ({"nodes": []}, "at least one"),
    # the ids this host's Asterisk makes must name a node the CTI drives, or none of its calls
    # would be resynced, Redirected or paused as that node's
    ({"systemname": "pbx3", "nodes": [{"name": "pbx1"}, {"name": "pbx2", "ami_port": 5039}]},
     "systemname"),
    ({"nodes": [{"name": "pbxa"}]}, "systemname"),
])
def test_bad_node_settings_fail_at_startup(tmp_path: Path, pbx: dict[str, object],
                                           message: str) -> None:
    path = write_test_settings(tmp_path / "h.toml", {"pbx": pbx})
    with pytest.raises(SettingsError, match=message):
        load_settings(path, ENV)


def test_systemname_is_rendered_into_asterisk_conf(tmp_path: Path) -> None:
    settings = load_settings(env=ENV)
    secrets = load_or_create_secrets(tmp_path / "s.json", settings)
    files = render(settings, secrets, SYS_PROMPTS, "/moh")
    options = files["asterisk.conf"].split("[options]", 1)[1]
    assert "\nsystemname = pbx1\n" in options
    bad = replace(settings, pbx=replace(settings.pbx, systemname="pbx 1"))
    with pytest.raises(RenderError, match="systemname"):
        render(bad, secrets, SYS_PROMPTS, "/moh")


# --------------------------------------------------------------------------------- call ids


def test_asterisk_ids_with_and_without_a_systemname() -> None:
    assert parse_asterisk_id("pbx1-1700000000.12") == AsteriskId("pbx1", 1700000000, 12)
    assert parse_asterisk_id("pbx-east-2-1700000000.12") == AsteriskId("pbx-east-2",
                                                                        1700000000, 12)
    assert parse_asterisk_id("1700000000.12") == AsteriskId("", 1700000000, 12)
    for bad in ("", "pbx1", "pbx1-", "1700000000", "pbx1_1700000000.12", "PBX1-1.2",
                "hotline-spy-0123"):
        assert parse_asterisk_id(bad) is None, bad


def test_a_systemname_call_goes_through_translate_and_recording_names() -> None:
    call_id, leg = "pbx1-1795781350.1", "pbx1-1795781360.7"
    [queued] = translate({
        "Event": "UserEvent", "UserEvent": "HotlineQueued", "Channel": "PJSIP/carrier-00000001",
        "Uniqueid": call_id, "Linkedid": call_id, "CallerIDNum": "13900000001",
        "Skill": "general", "CallPriority": "0", "Account": ""})
    assert isinstance(queued, CallQueued)
    assert (queued.call_id, queued.channel_id) == (call_id, call_id)
    # the dialplan names the agent leg's file <Linkedid>_<Uniqueid>_<seat>.wav
    rel = relative_to_storage(f"/var/lib/hotline/recordings/20261127/{call_id}_{leg}_seat07.wav")
    name = parse(rel)
    assert (name.call_id, name.leg_id, name.seat, name.kind) == (call_id, leg, "seat07", "agent")
    assert parse(f"20261127/{call_id}_{call_id}_ivr.wav").kind == "ivr"
    with pytest.raises(BadRecordingName):
        parse(f"20261127/{call_id}_{leg}_seat07.wav/../../x")


def test_the_resync_orders_channels_by_age_within_a_node() -> None:
    def ch(uid: str) -> ChannelInfo:
        return ChannelInfo(channel="PJSIP/carrier-1", uniqueid=uid, linkedid=uid,
                           context="hotline-wait", exten="s", application="MusicOnHold",
                           bridge_id="", caller_num="1", caller_name="")

    ids = ["pbx1-1700000000.12", "pbx1-1700000000.9", "pbx1-1699999999.40"]
    assert [c.uniqueid for c in sorted(map(ch, ids), key=_order)] == [
        "pbx1-1699999999.40", "pbx1-1700000000.9", "pbx1-1700000000.12"]


def test_the_acd_reads_a_calls_node_as_the_id_patterns_do() -> None:
    """acd.model keeps its own copy of the id shape (the pure core imports nothing): it must
    agree with config.settings.ASTERISK_ID_PATTERN and translate.parse_asterisk_id."""
    import re

    for call_id in ("pbx1-1700000000.12", "pbx-east-2-1700000000.12", "1700000000.12",
                    "pbx2-1.2", "n-1.2", "pbx1_1700000000.12", "PBX1-1.2", "c1", ""):
        parsed = parse_asterisk_id(call_id)
        assert (re.fullmatch(ASTERISK_ID_PATTERN, call_id) is not None) == (parsed is not None)
        expected = parsed.node if parsed is not None and parsed.node else "dflt"
        assert call_node(call_id, "dflt") == expected, call_id


# ---------------------------------------------------------------------- seat reachability


def test_seat_reachability_is_asterisks_unless_told(tmp_path: Path) -> None:
    assert load_settings(env=ENV).pbx.seat_reachability == "asterisk"  # hotline.toml says so
    path = write_test_settings(tmp_path / "h.toml", {"pbx": {"seat_reachability": "registrar"}})
    assert load_settings(path, ENV).pbx.seat_reachability == "registrar"


@pytest.mark.parametrize("value", ["kamailio", "Registrar", "", True])
def test_a_bad_seat_reachability_fails_at_startup(tmp_path: Path, value: object) -> None:
    path = write_test_settings(tmp_path / "h.toml", {"pbx": {"seat_reachability": value}})
    with pytest.raises(SettingsError, match="seat_reachability"):
        load_settings(path, ENV)


def test_the_feed_refuses_an_unknown_seat_reachability() -> None:
    service = AcdService.create(AcdConfig(), FakePbx(), FakeBus(), Store())
    with pytest.raises(ValueError, match="seat_reachability"):
        AcdFeed(service, seat_reachability="kamailio")


# ------------------------------------------------------------ two nodes behind one ACD


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


class NodePbx(FakePbx):
    """One node's port: what it rang, and how often it set the node's heartbeat."""

    def __init__(self, up: bool = True) -> None:
        super().__init__()
        self.up = up
        self.heartbeats = 0
        self.beat = asyncio.Event()  # set by the first heartbeat

    async def heartbeat(self) -> None:
        if not self.up:
            raise PbxUnreachable("AMI is not connected")
        self.heartbeats += 1
        self.beat.set()


class NodeAmi:
    """One node's AMI session at a resync: its read-only answers (a snapshot holding
    `channels`), and `pbx_restart` when the node restarted since the last session."""

    def __init__(self, channels: list[dict[str, str]], restarted: bool = False) -> None:
        self.channels = channels
        self.pbx_restart = SimpleNamespace(reason="pbx_restart", lost_at=time.time()) \
            if restarted else None

    async def action(self, action: Mapping[str, str], *, timeout: float | None = None,
                     idempotent: bool) -> Any:
        assert idempotent, action
        if action["Action"] == "CoreShowChannels":
            return [{"Event": "CoreShowChannel", **c} for c in self.channels]
        if action["Action"] == "Status":
            return [{"Event": "Status", "Uniqueid": c["Uniqueid"],
                     "Variable": "HOTLINE_SKILL=general\nQUEUE_PRIO=0"} for c in self.channels]
        return []  # QueueStatus: no members; DBGet: no key


def waiting(call_id: str) -> dict[str, str]:
    """A caller's channel in the wait loop, as CoreShowChannels lists it."""
    return {"Channel": f"PJSIP/carrier-{call_id[-1]}", "Uniqueid": call_id, "Linkedid": call_id,
            "Context": "hotline-wait", "Exten": "s", "Application": "WaitExten",
            "CallerIDNum": "13800000001", "ChannelStateDesc": "Up"}


def channel(call_id: str) -> str:
    return f"PJSIP/carrier-{call_id[-1]}"


async def until(service: AcdService, what: str, cond: Callable[[], bool]) -> None:
    """Back once `cond` holds (the writer handles inputs, lookups and replies in turn)."""
    deadline = time.monotonic() + 10
    while not cond():
        assert time.monotonic() < deadline, what
        assert (await ask_acd(service, acd.Tick(), "test", timeout=10))["ok"]


async def ready(service: AcdService, agent_id: str, seat: str) -> None:
    assert (await ask_acd(service, acd.AgentLogin(agent_id=agent_id, seat=seat,
                                                  skills={"general": 3}), "test"))["ok"]
    assert (await ask_acd(service, acd.AgentReady(agent_id=agent_id), "test"))["ok"]


def queue(feed: AcdFeed, call_id: str) -> None:
    """The node's HotlineQueued, through its feed's tracker."""
    for ev in feed.tracker.apply(t.CallQueued(call_id, channel(call_id), "13800000001",
                                              "general", 0, None, call_id)):
        feed.core(ev)


P1_TALKING, P1_WAITING = "pbx1-1700000000.1", "pbx1-1700000000.2"
P2_WAITING, P2_LATER = "pbx2-1700000000.3", "pbx2-1700000000.4"


async def test_two_nodes_in_one_acd_a_nodes_resync_and_link_leave_the_other_alone() -> None:
    p1, p2 = NodePbx(), NodePbx()
    service = AcdService.create(AcdConfig(wrap_up_s=0.05, ring_timeout_s=30,
                                          default_node="pbx1"), p1, FakeBus(), Store(),
                                nodes={"pbx1": p1, "pbx2": p2})
    feeds = {n: AcdFeed(service, node=n) for n in ("pbx1", "pbx2")}
    assert feeds["pbx1"].owns("1700000000.9") and not feeds["pbx2"].owns("1700000000.9")
    writer = asyncio.create_task(service.run(), name="acd")
    try:
        # pbx1: a1 talks with a caller (rung through pbx1's port), another caller waits;
        # pbx2: a caller waits
        await ready(service, "a1", "seat01")
        queue(feeds["pbx1"], P1_TALKING)
        await until(service, "pbx1's caller rung", lambda: p1.rung != [])
        assert p1.rung == [(channel(P1_TALKING), "seat01")] and p2.rung == []
        for ev in feeds["pbx1"].tracker.apply(t.AgentAnswered(P1_TALKING, "seat01",
                                                              "PJSIP/seat01-00000001")):
            feeds["pbx1"].core(ev)
        queue(feeds["pbx1"], P1_WAITING)
        queue(feeds["pbx2"], P2_WAITING)
        await until(service, "both wait", lambda: {P1_WAITING, P2_WAITING} <= set(
            service.view.calls))
        assert service.view.agents["a1"].state == AgentState.ON_CALL

        # pbx2 restarted and holds none of its calls any more: only pbx2's call ends; a1's
        # call on pbx1 did not die with pbx2 (the agent stays on it), and only pbx2's
        # heartbeat is set before its resync
        beats = p1.heartbeats
        await feeds["pbx2"].resync(NodeAmi([], restarted=True))
        await until(service, "pbx2's caller gone", lambda: P2_WAITING not in service.view.calls)
        view = service.view
        assert view.calls[P1_TALKING].state.value == "connected"
        assert view.calls[P1_WAITING].state.value == "waiting"
        assert view.agents["a1"].state == AgentState.ON_CALL
        assert p2.heartbeats == 1 and p1.heartbeats == beats

        # pbx2's link is lost: its new caller waits, pbx1's is offered meanwhile
        service.submit(acd.PbxLink(up=False, node="pbx2"))
        queue(feeds["pbx2"], P2_LATER)
        await until(service, "pbx2's caller queued", lambda: P2_LATER in service.view.calls)
        await ready(service, "a2", "seat02")
        await until(service, "pbx1's caller rung", lambda: len(p1.rung) == 2)
        assert p1.rung[1] == (channel(P1_WAITING), "seat02")
        await ready(service, "a3", "seat03")
        assert service.view.calls[P2_LATER].state.value == "waiting"
        assert service.view.agents["a3"].state == AgentState.READY
        assert p2.rung == []

        # pbx2's resync (its caller still there) brings routing of its calls back
        await feeds["pbx2"].resync(NodeAmi([waiting(P2_LATER)]))
        await until(service, "pbx2's caller rung", lambda: p2.rung != [])
        assert p2.rung == [(channel(P2_LATER), "seat03")]
        assert P1_TALKING in service.view.calls and P1_WAITING in service.view.calls
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


async def test_the_pbx_port_picks_the_calls_node_and_beats_on_every_node() -> None:
    p1, p2 = NodePbx(), NodePbx(up=False)
    nodes = PbxNodes({"pbx1": p1, "pbx2": p2}, "pbx1")
    assert nodes.for_call("pbx2-1700000000.3") is p2
    assert nodes.for_call("1700000000.3") is p1 and nodes.of("") is p1
    with pytest.raises(PbxUnreachable, match="pbx3"):
        nodes.for_call("pbx3-1700000000.3")  # a node this CTI does not drive
    with pytest.raises(ValueError, match="default"):
        PbxNodes({"pbx1": p1}, "pbx2")
    service = AcdService.create(AcdConfig(default_node="pbx1"), p1, FakeBus(), Store(),
                                nodes={"pbx1": p1, "pbx2": p2}, seats=("seat01",))
    # one heartbeat loop per node: pbx2 failing (its AMI is down) does not stop pbx1's
    beating = asyncio.create_task(service.heartbeat(), name="cti-heartbeat")
    try:
        await asyncio.wait_for(p1.beat.wait(), 10)  # the heartbeat task's first beat
        assert p1.heartbeats == 1
    finally:
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)
    # the failover queue's members are set on every node, and count as set once all took it
    p2.up = True
    await service._sync_failover()
    assert p1.failover_members == p2.failover_members == {"seat01": False}
    assert service.failover_members == {"seat01": False}
