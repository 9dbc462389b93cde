"""The protocol on recorded traces: framing, decoding, and how each action's answer ends."""

from __future__ import annotations

import random
from typing import Any

import pytest
from panoramisk import actions as pk_actions
from panoramisk.ami_protocol import AMIProtocol as PanoramiskProtocol

from tests.contract.ami.replay import Replay, replay, trace_bytes

TRACES = ["ivr_hangup", "transfer_wait_hangup", "offer_rona_answer", "failover_native_queue",
          "callback", "local_and_actions", "synthetic_truncated_utf8"]


def as_dicts(events: list[object]) -> list[dict[str, object]]:
    return [dict(e) for e in events]  # type: ignore[call-overload]


@pytest.mark.parametrize("name", TRACES)
def test_any_chunking_gives_the_same_messages(name: str) -> None:
    whole = replay(name)
    assert whole.proto.version == "11.0.0"
    assert whole.events and whole.events[0]["Event"] == "FullyBooted"
    rng = random.Random(name)
    data = trace_bytes(name)
    for chunks in (1, 2, 3, 7, 4096, [rng.randint(1, 64) for _ in range(len(data))]):
        assert as_dicts(replay(name, chunks).events) == as_dicts(whole.events), chunks


def test_every_event_block_of_a_trace_is_parsed() -> None:
    data = trace_bytes("offer_rona_answer")
    n_events = data.count(b"\r\nEvent: ") + data.startswith(b"Event: ")
    # list items answer actions nobody sent here, so they arrive as events too
    assert len(replay("offer_rona_answer").events) == n_events


def test_chinese_caller_names_survive_reads_split_inside_a_character() -> None:
    events = replay("transfer_wait_hangup", 1).events
    names = {e.get("CallerIDName") for e in events if "CallerIDName" in e}
    assert names == {"张三"}
    events = replay("offer_rona_answer", 1).events
    assert {"李四", "坐席07", "坐席08"} <= {e.get("CallerIDName") for e in events}


def test_asterisk_itself_replaces_a_truncated_name_from_sip() -> None:
    # recorded: the SIP From display name was 王小 plus two bytes of 明; Asterisk 22 already
    # sent U+FFFD for them, so the truncation case on the wire is covered synthetically below
    names = {e.get("CallerIDName") for e in replay("failover_native_queue").events
             if str(e.get("Channel", "")).startswith("PJSIP/carrier")}
    assert names == {"王小\ufffd"}


@pytest.mark.parametrize("chunks", [None, 1, 5])
def test_truncated_utf8_is_replaced_not_dropped_and_nothing_else_breaks(chunks: int | None
                                                                        ) -> None:
    events = replay("synthetic_truncated_utf8", chunks).events
    assert [e["Event"] for e in events] == ["FullyBooted", "Newchannel", "UserEvent", "Hangup"]
    for e in events[1:]:
        assert e["CallerIDName"] == "王小\ufffd"
        assert e["ConnectedLineName"] == "\ufffd"
        assert e["Linkedid"] == "1795781358.1"  # the headers after the bad bytes are intact
    assert events[2]["Account"] == "1234567890"


def test_panoramisk_alone_would_silently_drop_the_truncated_bytes() -> None:
    """Why the client decodes for itself: errors='ignore' loses the evidence."""
    seen: list[Any] = []

    class Factory:
        save_stream = None

        def dispatch(self, message: Any) -> None:
            seen.append(message)

    proto = PanoramiskProtocol()
    proto.connection_made(Replay().transport)
    proto.factory = Factory()
    proto.encoding = "utf-8"
    proto.data_received(trace_bytes("synthetic_truncated_utf8"))
    names = {m.get("CallerIDName") for m in seen if "CallerIDName" in m}
    assert names == {"王小"}


@pytest.mark.parametrize(("action", "tag", "items"), [
    ("CoreShowChannels", "talking", ["CoreShowChannel", "CoreShowChannel"]),
    ("Status", "talking", ["Status", "Status"]),
    ("QueueStatus", "talking", ["QueueParams"] + ["QueueMember"] * 50),
    ("DBGet", "talking", ["DBGetResponse"]),
    ("BridgeList", "talking", ["BridgeListItem"]),
    ("CoreShowChannels", "after-rona", ["CoreShowChannel"]),
])
async def test_list_actions_resolve_with_the_whole_list(action: str, tag: str,
                                                  items: list[str]) -> None:
    r = Replay()
    act = r.request({"Action": action, "ActionID": f"rec-{action.lower()}-{tag}"}, True)
    r.feed(trace_bytes("offer_rona_answer"))
    result = act.future.result()
    assert result[0]["Response"] == "Success"
    assert [m["Event"] for m in result[1:-1]] == items
    assert result[-1]["EventList"] == "Complete"
    assert not any(e.get("ActionID") == act.id for e in r.events)


async def test_status_carries_the_variables_the_resync_asked_for() -> None:
    r = Replay()
    act = r.request({"Action": "Status", "ActionID": "rec-status-after-rona"}, True)
    r.feed(trace_bytes("offer_rona_answer"))
    caller = act.future.result()[1]
    # a repeated header's values, in order, joined by LF (protocol.parse_message)
    assert caller["Variable"].split("\n") == ["HOTLINE_SKILL=general", "QUEUE_PRIO=0",
                                              "HOTLINE_ACCOUNT=", "HOTLINE_REASON=caller_choice"]


async def test_queueadd_resolves_on_its_single_response() -> None:
    r = Replay()
    ok = r.request({"Action": "QueueAdd", "ActionID": "rec-queueadd"}, False)
    err = r.request({"Action": "QueueAdd", "ActionID": "rec-queueadd-error"}, False)
    r.feed(trace_bytes("local_and_actions"))
    assert ok.future.result()["Response"] == "Success"
    assert err.future.result()["Response"] == "Error"
    assert "rec-queueadd" not in r.proto.responses


async def test_panoramisk_own_action_never_completes_queueadd() -> None:
    """The trap the client avoids: panoramisk reads "Added interface to queue" as a list."""
    act = pk_actions.Action({"Action": "QueueAdd", "ActionID": "rec-queueadd"}, as_list=None)
    r = Replay()
    r.proto.send(act, as_list=None)
    r.feed(trace_bytes("local_and_actions"))
    assert not act.future.done()


async def test_error_answer_to_a_list_action_ends_it() -> None:
    r = Replay()
    act = r.request({"Action": "DBGet", "ActionID": "rec-dbget-missing"}, True)
    r.feed(trace_bytes("local_and_actions"))
    [answer] = act.future.result()
    assert answer["Response"] == "Error"


async def test_originate_resolves_when_queued_and_its_outcome_is_an_event() -> None:
    r = Replay()
    act = r.request({"Action": "Originate", "ActionID": "rec-originate"}, False)
    r.feed(trace_bytes("local_and_actions"))
    assert act.future.result()["Response"] == "Success"
    outcome = [e for e in r.events if e.get("Event") == "OriginateResponse"]
    assert len(outcome) == 1 and outcome[0]["ActionID"] == "rec-originate"


async def test_late_list_items_of_a_forgotten_action_are_dropped() -> None:
    r = Replay()
    act = r.request({"Action": "QueueStatus", "ActionID": "rec-queuestatus-talking"}, True)
    act.future.cancel()  # what a timeout does
    r.proto.forget(act)
    r.feed(trace_bytes("offer_rona_answer"))
    assert not any(e.get("ActionID") == "rec-queuestatus-talking" for e in r.events)


def test_shutdown_event_ends_the_connection() -> None:
    r = Replay().feed(b"Asterisk Call Manager/11.0.0\r\nEvent: Shutdown\r\nShutdown: Cleanly\r\n"
                      b"Restart: False\r\n\r\n")
    assert r.transport.closed and len(r.lost) == 1
    assert r.events[-1]["Event"] == "Shutdown"


def test_a_peer_without_banner_and_bare_lf_framing_still_parse() -> None:
    r = Replay().feed(b"Event: FullyBooted\n\nEvent: Hangup\nLinkedid: 1.1\n\n")
    assert [e["Event"] for e in r.events] == ["FullyBooted", "Hangup"]
    assert r.proto.version is None


@pytest.mark.parametrize("chunks", [None, 1, 3])
def test_the_framer_alone_turns_bytes_into_the_same_messages(chunks: int | None) -> None:
    """The framing is pure: no transport, no loop, the same messages as the protocol."""
    from cti.ami.protocol import AmiFramer

    data = trace_bytes("synthetic_truncated_utf8")
    framer = AmiFramer()
    step = chunks or len(data)
    got = [m for i in range(0, len(data), step) for m in framer.feed(data[i:i + step])]
    assert framer.version == "11.0.0"
    assert [m["ActionID"] for m in got if "Response" in m] == ["rec-login"]
    events = [m for m in got if "Event" in m]
    assert as_dicts(events) == as_dicts(replay("synthetic_truncated_utf8").events)
