"""The resync on recorded answers: snapshot parsing, rebuild, and the tracker catching up."""

from __future__ import annotations

import asyncio

from cti.ami.client import AmiClient, Backoff
from cti.ami.resync import (
    AsteriskSnapshot,
    ChannelInfo,
    parse_snapshot,
    rebuild,
    snapshot,
)
from cti.ami.translate import (
    AgentAnswered,
    CallbackRequested,
    CallEnded,
    CallerAbandoned,
    CallFailedOver,
    CallOffered,
    CallQueued,
    CallTracker,
    CoreEvent,
    Phase,
    RingNoAnswer,
    SeatReachable,
)
from tests.contract.ami.fake_ami import FakeAmi, replay_answer
from tests.contract.ami.replay import Replay, recorded_answer, trace_bytes

ACTIONS = ("CoreShowChannels", "Status", "QueueStatus", "DBGet")


def recorded_snapshot(trace: str, tag: str) -> AsteriskSnapshot:
    """Needs a running loop (panoramisk's Action makes its future at once)."""
    r = Replay()
    acts = [r.request({"Action": a, "ActionID": f"rec-{a.lower()}-{tag}"}, True) for a in ACTIONS]
    r.feed(trace_bytes(trace))
    return parse_snapshot(*(a.future.result() for a in acts))


def calls(events: list[CoreEvent]) -> list[CoreEvent]:
    return [e for e in events if not isinstance(e, SeatReachable)]


def caller_channel(snap: AsteriskSnapshot) -> ChannelInfo:
    [ch] = [c for c in snap.channels if c.channel.startswith("PJSIP/carrier-")]
    return ch


def queued_of(ch: ChannelInfo) -> CallQueued:
    return CallQueued(ch.linkedid, ch.channel, ch.caller_num, "general", 0, None, ch.uniqueid)


# --------------------------------------------------------------------------- parse + rebuild


async def test_waiting_caller() -> None:
    snap = recorded_snapshot("transfer_wait_hangup", "waiting")
    ch = caller_channel(snap)
    assert (ch.context, ch.exten, ch.application) == ("hotline-wait", "s", "WaitExten")
    # the recorder asked for HOTLINE_REASON too
    assert ch.variables == {"HOTLINE_SKILL": "general", "QUEUE_PRIO": "0",
                            "HOTLINE_ACCOUNT": "", "HOTLINE_REASON": "caller_choice"}
    assert ch.caller_name == "张三"
    assert snap.heartbeat is not None and snap.heartbeat > 1.7e9
    assert len(snap.queue_members) == 50 and not snap.queue_entries
    out = rebuild(snap)
    assert calls(out) == [queued_of(ch)]
    assert out[:50] == [SeatReachable(f"seat{i:02d}", False) for i in range(1, 51)]


async def test_waiting_again_after_a_ring_out() -> None:
    snap = recorded_snapshot("offer_rona_answer", "after-rona")
    ch = caller_channel(snap)
    assert calls(rebuild(snap)) == [queued_of(ch)]
    reachable = {e.seat for e in rebuild(snap) if isinstance(e, SeatReachable) and e.reachable}
    assert reachable == {"seat07", "seat08"}


async def test_talking_with_a_seat() -> None:
    snap = recorded_snapshot("offer_rona_answer", "talking")
    ch = caller_channel(snap)
    [seat_leg] = [c for c in snap.channels if c.channel.startswith("PJSIP/seat07-")]
    assert seat_leg.bridge_id == ch.bridge_id != ""
    cid = ch.linkedid
    assert calls(rebuild(snap)) == [queued_of(ch), CallOffered(cid, "seat07"),
                                    AgentAnswered(cid, "seat07", seat_leg.channel)]


async def test_talking_after_failover_in_the_native_queue() -> None:
    snap = recorded_snapshot("failover_native_queue", "failover-talking")
    ch = caller_channel(snap)
    [seat_leg] = [c for c in snap.channels if c.channel.startswith("PJSIP/seat07-")]
    # recorded between the answer and the bridge: the seat's leg is Up, the caller not bridged
    assert seat_leg.state == "Up" and seat_leg.bridge_id and not ch.bridge_id
    assert calls(rebuild(snap)) == [queued_of(ch), CallFailedOver(ch.linkedid),
                                    AgentAnswered(ch.linkedid, "seat07", seat_leg.channel)]


def chan(channel: str, uid: str, linked: str, context: str = "hotline-wait", exten: str = "s",
         app: str = "WaitExten", bridge: str = "") -> ChannelInfo:
    return ChannelInfo(channel, uid, linked, context, exten, app, bridge, "139", "",
                       {"HOTLINE_SKILL": "billing", "QUEUE_PRIO": "3"})


def test_rebuild_skips_local_legs_phones_and_ivr_calls_and_orders_by_age() -> None:
    snap = AsteriskSnapshot(channels=(
        chan("PJSIP/carrier-0000000b", "100.11", "100.11"),
        chan("Local/seat07@hotline-connect-00000000;1", "100.3", "100.3", "hotline-connect",
             "seat07", "Wait"),
        chan("Local/seat07@hotline-connect-00000000;2", "100.4", "100.3", "hotline-connect",
             "seat07", "Dial"),
        chan("PJSIP/seat01-00000005", "100.5", "100.5", "from-seat", "8002", "Dial"),
        chan("PJSIP/carrier-00000006", "100.6", "100.6", "from-carrier", "95598", "AGI"),
        chan("PJSIP/carrier-00000002", "100.2", "100.2", "hotline-wait", "1", "Playback"),
        chan("PJSIP/carrier-00000009", "100.9", "100.9", "hotline-announce", "s", "Playback"),
    ), queue_members=(), queue_entries=(), heartbeat=None)
    out = rebuild(snap)
    assert [e.call_id for e in out] == ["100.2", "100.2", "100.9", "100.11"]  # type: ignore[union-attr]
    assert out[1] == CallbackRequested("100.2", "139")  # leaving after the callback key
    assert out[2] == CallQueued("100.9", "PJSIP/carrier-00000009", "139", "billing", 3, None,
                                "100.9")


def test_callbacks_in_progress_are_found_by_their_seat_leg() -> None:
    from cti.ami.resync import callbacks_in_progress

    seat = ChannelInfo("PJSIP/seat03-0000000c", "cb.1", "cb.1", "hotline-callback", "s", "Dial",
                       "", "13912345678", "", {"HOTLINE_CALLBACK_OF": "100.2"}, "Up")
    ringing = ChannelInfo("PJSIP/seat04-0000000d", "cb.2", "cb.2", "", "", "", "", "", "",
                          {}, "Ringing")  # an Originate still ringing: not in the dialplan yet
    customer = ChannelInfo("PJSIP/carrier-out-0000000e", "cb.3", "cb.1", "from-carrier",
                           "s", "AppDial", "b1", "13912345678", "", {}, "Up")
    snap = AsteriskSnapshot(channels=(seat, ringing, customer), queue_members=(),
                            queue_entries=(), heartbeat=None)
    assert callbacks_in_progress(snap) == {"100.2": ("seat03", True)}
    assert rebuild(snap) == []  # the tracker never sees them as calls of their own


def test_a_click_to_call_in_progress_is_found_by_its_seat_leg() -> None:
    from cti.ami.resync import callbacks_in_progress

    # the seat's leg carries the call's own id (the Originate's ChannelId)
    cid = "pbx1-1765000000.812345678"
    seat = ChannelInfo("PJSIP/seat48-0000000c", cid, cid, "hotline-click-to-call", "s", "Dial",
                       "", "13912345678", "", {"HOTLINE_CALLBACK_OF": cid}, "Up")
    customer = ChannelInfo("PJSIP/carrier-out-0000000e", "pbx1-1765000000.20", cid,
                           "from-carrier", "s", "AppDial", "b1", "13912345678", "", {}, "Up")
    snap = AsteriskSnapshot(channels=(seat, customer), queue_members=(), queue_entries=(),
                            heartbeat=None)
    assert callbacks_in_progress(snap) == {cid: ("seat48", True)}
    assert rebuild(snap) == []


# ------------------------------------------------------------------------ tracker.resync


async def test_resync_of_a_fresh_tracker_replays_each_path() -> None:
    rebuilt = rebuild(recorded_snapshot("offer_rona_answer", "talking"))
    t = CallTracker()
    assert t.resync(rebuilt) == rebuilt  # everything is news to a fresh tracker
    [(cid, state)] = t.calls().items()
    assert state.phase is Phase.TALKING and state.seat == "seat07"
    assert t.resync(rebuilt) == []  # and again: nothing new


async def test_resync_reports_only_what_was_missed() -> None:
    snap = recorded_snapshot("offer_rona_answer", "talking")
    ch = caller_channel(snap)
    cid = ch.linkedid
    t = CallTracker()
    t.apply(queued_of(ch))
    t.apply(CallOffered(cid, "seat08"))  # the CTI saw seat08 ring, then lost the connection
    t.apply(CallQueued("old.1", "PJSIP/carrier-00000000", "138", "general", 0, None))
    assert calls(t.resync(rebuild(snap))) == [
        CallerAbandoned("old.1"),  # gone from Asterisk meanwhile
        RingNoAnswer(cid, "seat08", ""), CallOffered(cid, "seat07"),
        AgentAnswered(cid, "seat07", calls(rebuild(snap))[2].agent_channel),  # type: ignore[union-attr]
    ]


async def test_resync_while_still_ringing_or_waiting_is_silent() -> None:
    waiting = recorded_snapshot("offer_rona_answer", "after-rona")
    ch = caller_channel(waiting)
    t = CallTracker()
    t.apply(queued_of(ch))
    assert calls(t.resync(rebuild(waiting))) == []
    t.apply(CallOffered(ch.linkedid, "seat07"))
    # Asterisk has the caller back in hotline-wait: the ring-out was missed
    assert calls(t.resync(rebuild(waiting))) == [RingNoAnswer(ch.linkedid, "seat07", "")]


def test_resync_ends_a_talking_call_that_is_gone() -> None:
    t = CallTracker()
    t.apply(CallOffered("1.1", "seat07"))
    t.apply(AgentAnswered("1.1", "seat07", "PJSIP/seat07-1"))
    empty = AsteriskSnapshot((), (), (), None)
    assert t.resync(rebuild(empty)) == [CallEnded("1.1", 0)]


# ------------------------------------------------------------------- snapshot over a socket


async def snapshots_on_connect(fake: FakeAmi) -> list[AsteriskSnapshot]:
    """Connect a client to the fake, take the resync snapshot as it connects, and stop."""
    got: list[AsteriskSnapshot] = []

    async def on_connected(client: AmiClient) -> None:
        got.append(await snapshot(client))

    client = AmiClient("127.0.0.1", fake.port, "hotline", "s3cret", on_connected=on_connected,
                       backoff=Backoff(0.01, 0.05))
    task = asyncio.create_task(client.run(), name="ami-under-test")
    try:
        async with asyncio.timeout(5):
            await client.ready.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return got


async def test_snapshot_through_the_client(fake: FakeAmi) -> None:
    for action in ACTIONS:
        rid = f"rec-{action.lower()}-talking"
        fake.handlers[action.lower()] = replay_answer(
            recorded_answer("offer_rona_answer", rid), rid)
    got = await snapshots_on_connect(fake)
    assert got == [recorded_snapshot("offer_rona_answer", "talking")]
    status = fake.actions("Status")[0].action
    assert status["Variables"] == "HOTLINE_SKILL,QUEUE_PRIO,HOTLINE_ACCOUNT,HOTLINE_CALLBACK_OF"


async def test_snapshot_without_a_heartbeat_key(fake: FakeAmi) -> None:
    fake.handlers["dbget"] = replay_answer(
        recorded_answer("local_and_actions", "rec-dbget-missing"), "rec-dbget-missing")
    got = await snapshots_on_connect(fake)
    assert got and got[0].heartbeat is None
