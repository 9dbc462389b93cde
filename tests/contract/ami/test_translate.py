"""translate() and CallTracker on recorded calls: transitions, duplicates, order, Local legs."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from typing import Any

import pytest

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
    is_caller_channel,
    translate,
)
from tests.contract.ami.replay import trace_events

CALL_TRACES = ["ivr_hangup", "transfer_wait_hangup", "offer_rona_answer",
               "failover_native_queue", "callback", "local_and_actions",
               "synthetic_truncated_utf8"]


def run(events: list[Any], tracker: CallTracker | None = None) -> list[CoreEvent]:
    t = tracker or CallTracker()
    return [out for e in events for out in t.feed(e)]


def calls_of(out: list[CoreEvent]) -> list[CoreEvent]:
    return [e for e in out if not isinstance(e, SeatReachable)]


def queued(events: list[Any]) -> CallQueued:
    [ev] = [e for e in events if e.get("UserEvent") == "HotlineQueued"][:1]
    return CallQueued(call_id=ev["Linkedid"], channel=ev["Channel"], caller=ev["CallerIDNum"],
                      skill="general", priority=0, account=None, channel_id=ev["Uniqueid"])


# ----------------------------------------------------------------------- recorded calls


def test_caller_hanging_up_in_the_ivr_never_reaches_the_acd() -> None:
    events = trace_events("ivr_hangup")
    [hangup] = [e for e in events if e["Event"] == "Hangup"]
    assert translate(hangup) == [CallEnded(hangup["Linkedid"], int(hangup["Cause"]))]
    assert run(events) == []  # the call was never queued: nothing for the ACD


def test_transfer_then_hung_up_while_waiting_is_abandoned() -> None:
    events = trace_events("transfer_wait_hangup")
    q = queued(events)
    assert q.caller == "13900000002" and q.channel.startswith("PJSIP/carrier-")
    assert run(events) == [q, CallerAbandoned(q.call_id)]
    names = {e.get("CallerIDName") for e in events if e.get("UserEvent") == "HotlineQueued"}
    assert names == {"张三"}


def test_offer_ring_out_and_answer() -> None:
    events = trace_events("offer_rona_answer")
    q = queued(events)
    cid = q.call_id
    [agent] = {e["DestChannel"] for e in events if e.get("Event") == "DialEnd"
               and e.get("DialStatus") == "ANSWER"}
    assert agent.startswith("PJSIP/seat07-")
    out = run(events)
    assert calls_of(out) == [
        q,
        CallOffered(cid, "seat09"), RingNoAnswer(cid, "seat09", "CHANUNAVAIL"),  # unregistered
        CallOffered(cid, "seat08"), RingNoAnswer(cid, "seat08", "NOANSWER"),  # rang out
        CallOffered(cid, "seat07"), AgentAnswered(cid, "seat07", agent),
        CallEnded(cid, 16),
    ]
    assert [e for e in out if isinstance(e, SeatReachable)] == [
        SeatReachable("seat07", True), SeatReachable("seat08", True)]


def test_failover_to_the_native_queue_and_answer_there() -> None:
    events = trace_events("failover_native_queue")
    q = queued(events)
    cid = q.call_id
    out = run(events)
    assert calls_of(out) == [q, CallFailedOver(cid),
                             AgentAnswered(cid, "seat07", calls_of(out)[2].agent_channel),  # type: ignore[union-attr]
                             CallEnded(cid, 16)]
    assert SeatReachable("seat08", False) in out  # seat08 unregistered before the call


def test_callback_key_then_hangup() -> None:
    events = trace_events("callback")
    q = queued(events)
    assert run(events) == [q, CallbackRequested(q.call_id, "13900000005"),
                           CallEnded(q.call_id, 16)]


def test_truncated_name_call_still_translates() -> None:
    events = trace_events("synthetic_truncated_utf8")
    cid = events[1]["Linkedid"]
    assert run(events) == [
        CallQueued(cid, "PJSIP/carrier-00000001", "13900000009", "billing", 5, "1234567890",
                   cid),
        CallerAbandoned(cid)]


def test_local_legs_are_ignored() -> None:
    events = trace_events("local_and_actions")
    local = [e for e in events if str(e.get("Channel", "")).startswith("Local/")]
    assert {e["Event"] for e in local} >= {"Newchannel", "UserEvent", "DialBegin", "DialEnd",
                                           "BridgeEnter", "Hangup"}
    assert [out for e in local for out in translate(e)] == []
    # the seat's own leg of that call (DialBegin/End name a Local caller) gives nothing either
    assert calls_of([out for e in events for out in translate(e)]) == []
    assert calls_of(run(events)) == []


# ------------------------------------------------------------ duplicates and reordering


def anchored(events: list[Any]) -> list[bool]:
    """Events whose order Asterisk guarantees: the dialplan's UserEvents and the caller's
    Hangup, all on the caller's channel (one thread). Everything between two of them may
    interleave with other channels' events."""
    return [e.get("Event") == "UserEvent" or (e.get("Event") == "Hangup"
                                              and is_caller_channel(e)) for e in events]


def doubled_and_shuffled(events: list[Any], rng: random.Random) -> list[Any]:
    out: list[Any] = []
    segment: list[Any] = []
    for e, anchor in zip(events, anchored(events), strict=True):
        if anchor:
            rng.shuffle(segment)
            out += segment + [e, e]
            segment = []
        else:
            segment += [e, e]
    rng.shuffle(segment)
    return out + segment


@pytest.mark.parametrize("name", CALL_TRACES)
@pytest.mark.parametrize("seed", range(8))
def test_every_event_twice_and_shuffled_changes_nothing(name: str, seed: int) -> None:
    events = trace_events(name)
    t1, t2 = CallTracker(), CallTracker()
    expected = run(events, t1)
    got = run(doubled_and_shuffled(events, random.Random(seed)), t2)
    assert calls_of(got) == calls_of(expected)
    assert set(got) - set(calls_of(got)) == set(expected) - set(calls_of(expected))
    assert t2.seats() == t1.seats()
    assert t2.calls() == t1.calls()


@pytest.mark.parametrize("name", CALL_TRACES)
def test_a_whole_trace_again_adds_nothing(name: str) -> None:
    events = trace_events(name)
    t = CallTracker()
    run(events, t)
    assert run(events, t) == []


# -------------------------------------------------------------------- translate, pure


def ami(**headers: str) -> Mapping[str, str]:
    return headers


def test_queued_event_fields() -> None:
    ev = ami(Event="UserEvent", UserEvent="HotlineQueued", Channel="PJSIP/carrier-0000000a",
             Uniqueid="1.10", Linkedid="1.10", CallerIDNum="<unknown>", Skill="repair",
             CallPriority="", Account="")
    assert translate(ev) == [CallQueued("1.10", "PJSIP/carrier-0000000a", "", "repair", 0, None,
                                        "1.10")]
    assert translate({**ev, "Linkedid": ""}) == []
    # the dialplan never sends these: not a default, the event is dropped (test_fuzz_reader.py)
    for key, bad in [("CallPriority", "junk"), ("CallPriority", "101"), ("Skill", "VIP!"),
                     ("Account", "12a"), ("CallerIDNum", "1\r\n2"), ("Linkedid", "x"),
                     ("Channel", "PJSIP/c 1"), ("Uniqueid", "1.10\n1.11")]:
        assert translate({**ev, key: bad}) == [], key
    assert translate({k: v for k, v in ev.items() if k != "Skill"}) == []


def test_callback_number_falls_back_to_the_caller_id() -> None:
    ev = ami(Event="UserEvent", UserEvent="HotlineCallback", Linkedid="1.1", Number="",
             CallerIDNum="13800000000", Channel="PJSIP/carrier-00000001")
    assert translate(ev) == [CallbackRequested("1.1", "13800000000")]


@pytest.mark.parametrize("ev", [
    ami(Event="QueueCallerJoin", Queue="other-queue", Linkedid="1.1", Channel="PJSIP/c-1"),
    ami(Event="DeviceStateChange", Device="PJSIP/seat07", State="UNKNOWN"),
    ami(Event="DeviceStateChange", Device="PJSIP/carrier", State="UNAVAILABLE"),
    ami(Event="DeviceStateChange", Device="Queue:hotline-agents_avail", State="INUSE"),
    ami(Event="ContactStatus", AOR="sup01", ContactStatus="Removed"),
    ami(Event="DialEnd", DialStatus="NOANSWER", Linkedid="1.1", Channel="PJSIP/c-1",
        DestChannel="PJSIP/seat07-00000002"),
    ami(Event="DialBegin", Context="hotline-wait", Linkedid="1.1", Channel="PJSIP/c-1",
        DestChannel="PJSIP/seat07-00000002"),
    ami(Event="Hangup", Channel="PJSIP/seat07-00000002", Uniqueid="1.2", Linkedid="1.2",
        Cause="16"),
    ami(Event="UserEvent", UserEvent="HotlineTransfer", Linkedid="1.1", Channel="PJSIP/c-1"),
    ami(Event="UserEvent", UserEvent="HotlineOffer", Seat="seat07", Linkedid="1.1",
        Channel="Local/seat07@hotline-connect-00000000;2"),
])
def test_events_that_mean_nothing_to_the_cti(ev: Mapping[str, str]) -> None:
    assert translate(ev) == []


@pytest.mark.parametrize(("ev", "reachable"), [
    (ami(Event="DeviceStateChange", Device="PJSIP/seat07", State="NOT_INUSE"), True),
    (ami(Event="DeviceStateChange", Device="PJSIP/seat07", State="UNAVAILABLE"), False),
    (ami(Event="ContactStatus", AOR="seat07", ContactStatus="NonQualified"), True),
    (ami(Event="ContactStatus", AOR="seat07", ContactStatus="Created"), True),
    (ami(Event="PeerStatus", Peer="PJSIP/seat07", PeerStatus="Reachable"), True),
    (ami(Event="PeerStatus", Peer="PJSIP/seat07", PeerStatus="Unreachable"), False),
])
def test_seat_reachability(ev: Mapping[str, str], reachable: bool) -> None:
    assert translate(ev) == [SeatReachable("seat07", reachable)]


def test_answer_reported_by_dialend_agentconnect_counts_once() -> None:
    t = CallTracker()
    t.apply(CallOffered("1.1", "seat07"))
    dial_end = ami(Event="DialEnd", DialStatus="ANSWER", Linkedid="1.1", Channel="PJSIP/c-1",
                   DestChannel="PJSIP/seat07-00000002")
    connect = ami(Event="AgentConnect", Linkedid="1.1", Channel="PJSIP/c-1",
                  DestChannel="PJSIP/seat07-00000002", Interface="PJSIP/seat07")
    assert t.feed(dial_end) == [AgentAnswered("1.1", "seat07", "PJSIP/seat07-00000002")]
    assert t.feed(connect) == []


# ---------------------------------------------------------------------- the tracker


def test_missing_rona_is_inferred_when_the_caller_is_back_waiting() -> None:
    t = CallTracker()
    q = CallQueued("1.1", "PJSIP/c-1", "139", "general", 0, None)
    assert t.apply(q) == [q]
    t.apply(CallOffered("1.1", "seat07"))
    assert t.apply(q) == [RingNoAnswer("1.1", "seat07", "")]
    assert t.state("1.1").phase is Phase.WAITING  # type: ignore[union-attr]


def test_offer_to_another_seat_implies_the_first_rang_out() -> None:
    t = CallTracker()
    t.apply(CallOffered("1.1", "seat07"))
    assert t.apply(CallOffered("1.1", "seat08")) == [RingNoAnswer("1.1", "seat07", ""),
                                                     CallOffered("1.1", "seat08")]
    assert t.apply(RingNoAnswer("1.1", "seat07", "NOANSWER")) == []  # stale
    assert t.apply(RingNoAnswer("1.1", "seat08", "NOANSWER")) == [
        RingNoAnswer("1.1", "seat08", "NOANSWER")]


def test_hangup_while_ringing_is_an_abandon_and_late_events_are_dropped() -> None:
    t = CallTracker()
    t.apply(CallQueued("1.1", "PJSIP/c-1", "139", "general", 0, None))
    t.apply(CallOffered("1.1", "seat07"))
    assert t.apply(CallEnded("1.1", 16)) == [CallerAbandoned("1.1")]
    assert t.apply(AgentAnswered("1.1", "seat07", "PJSIP/seat07-1")) == []
    assert t.apply(CallQueued("1.1", "PJSIP/c-1", "139", "general", 0, None)) == []
    assert t.calls() == {}


def test_answer_for_an_untracked_call_is_not_the_acds() -> None:
    t = CallTracker()
    assert t.apply(AgentAnswered("9.9", "seat07", "PJSIP/seat07-1")) == []
    assert t.apply(CallEnded("9.9", 16)) == []


def test_ended_calls_are_remembered_within_a_bound() -> None:
    t = CallTracker(remember_ended=2)
    for i in range(3):
        t.apply(CallFailedOver(f"{i}.0"))
        t.apply(CallEnded(f"{i}.0", 16))
    assert t.apply(CallFailedOver("2.0")) == []
    assert t.apply(CallFailedOver("0.0")) == [CallFailedOver("0.0")]  # forgotten by now


# ------------------------------------------------------------------- systemname (PBX nodes)


def _with_systemname(events: list[Any], node: str = "pbx1") -> list[dict[str, Any]]:
    """The trace as a node with `systemname = node` would have sent it: every Uniqueid and
    Linkedid (and the Dest/Bridge variants) carries the prefix."""
    out = []
    for e in events:
        d = dict(e)
        for k, v in d.items():
            if k.endswith(("Uniqueid", "Linkedid")) and isinstance(v, str) and v:
                d[k] = f"{node}-{v}"
        out.append(d)
    return out


def _prefixed(ev: CoreEvent, node: str = "pbx1") -> CoreEvent:
    changes = {f: f"{node}-{getattr(ev, f)}" for f in ("call_id", "channel_id")
               if getattr(ev, f, "")}
    return dataclasses.replace(ev, **changes)  # type: ignore[type-var, arg-type]


@pytest.mark.parametrize("name", CALL_TRACES)
def test_a_systemname_prefix_changes_nothing_but_the_ids(name: str) -> None:
    events = trace_events(name)
    assert run(_with_systemname(events)) == [_prefixed(e) for e in run(events)]
