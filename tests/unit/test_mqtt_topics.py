"""cti.mqtt.topics: topic and payload builders, id validation, JSON encoding, filter matching."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from acd.model import AgentState
from cti.mqtt import topics as t

BEIJING = timezone(timedelta(hours=8))
AT = datetime(2026, 7, 1, 9, 30, 5, 123456, tzinfo=BEIJING)
AT_UTC = "2026-07-01T01:30:05.123+00:00"


def roundtrip(doc: dict) -> dict:
    return json.loads(t.to_json(doc).decode("utf-8"))


# ------------------------------------------------------------------------------------- topics


def test_topic_builders() -> None:
    assert t.agent_state_topic("A001") == "hotline/agents/A001/state"
    assert t.screen_pop_topic("A001") == "hotline/agents/A001/pop"
    assert t.queue_stats_topic("repair") == "hotline/queues/repair/stats"
    assert t.call_events_topic("1751333405.42") == "hotline/calls/1751333405.42/events"
    assert t.cti_status_topic() == t.CTI_STATUS_TOPIC == "hotline/cti/status"
    assert t.agent_state_topic("A001", prefix="site2/hotline") == "site2/hotline/agents/A001/state"


@pytest.mark.parametrize("bad", [
    "", "a/b", "+", "#", "a+b", "a#", "$SYS", " A001", "A001\n", "a\x00b", "x" * 129, None, 7,
])
def test_ids_with_topic_syntax_are_refused(bad: object) -> None:
    for build in (t.agent_state_topic, t.screen_pop_topic, t.queue_stats_topic,
                  t.call_events_topic):
        with pytest.raises(t.InvalidTopicError):
            build(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("good", ["A001", "seat_07", "1751333405.42", "sip:1001@pbx", "故障报修"])
def test_ids_accepted(good: str) -> None:
    assert t.check_id(good) == good


def test_bad_prefix_refused() -> None:
    with pytest.raises(t.InvalidTopicError):
        t.agent_state_topic("A001", prefix="hotline/+")
    with pytest.raises(t.InvalidTopicError):
        t.agent_state_topic("A001", prefix="hotline/")


def test_publish_topic_and_filter_checks() -> None:
    assert t.check_publish_topic("hotline/agents/A001/state")
    for bad in ("", "a/+/b", "a/#", "a\x00", None):
        with pytest.raises(t.InvalidTopicError):
            t.check_publish_topic(bad)
    for good in ("#", "+", "a/+/c", "a/#", "$share/g/a/+"):
        assert t.check_topic_filter(good) == good
    for bad in ("a/b#", "a/#/c", "a+/b", ""):
        with pytest.raises(t.InvalidTopicError):
            t.check_topic_filter(bad)


@pytest.mark.parametrize(("flt", "topic", "expected"), [
    ("hotline/agents/+/state", "hotline/agents/A001/state", True),
    ("hotline/agents/+/state", "hotline/agents/A001/pop", False),
    ("hotline/agents/+/state", "hotline/agents/state", False),
    ("hotline/#", "hotline", True),
    ("hotline/#", "hotline/a/b/c", True),
    ("#", "hotline/a", True),
    ("#", "$SYS/broker/uptime", False),
    ("+/broker/uptime", "$SYS/broker/uptime", False),
    ("$SYS/#", "$SYS/broker/uptime", True),
    ("a/b", "a/b", True),
    ("a/b", "a/b/c", False),
    ("$share/desks/hotline/cmd/+", "hotline/cmd/x", True),
])
def test_topic_matches(flt: str, topic: str, expected: bool) -> None:
    assert t.topic_matches(flt, topic) is expected


# ----------------------------------------------------------------------------------- encoding


def test_json_dates_decimals_and_chinese() -> None:
    raw = t.to_json({"at": AT, "due": date(2026, 7, 15), "amount": Decimal("123.40"),
                     "big": Decimal("1E+2"), "name": "国网客户", "state": AgentState.ON_CALL,
                     "flags": frozenset({"b", "a"})})
    assert "国网客户".encode() in raw  # ensure_ascii=False: readable on the wire
    assert json.loads(raw) == {"at": AT_UTC, "due": "2026-07-15", "amount": "123.40",
                               "big": "100", "name": "国网客户", "state": "on_call",
                               "flags": ["a", "b"]}


def test_json_refuses_naive_datetimes_nan_and_unknown_types() -> None:
    with pytest.raises(ValueError, match="naive"):
        t.to_json({"at": datetime(2026, 7, 1, 9, 30)})
    with pytest.raises(ValueError):
        t.to_json({"x": float("nan")})
    with pytest.raises(TypeError):
        t.to_json({"x": object()})


def test_encode_payload() -> None:
    assert t.encode_payload(b"\x00raw") == b"\x00raw"
    assert t.encode_payload(bytearray(b"ab")) == b"ab"
    assert t.encode_payload("在线") == "在线".encode()
    assert t.encode_payload({"a": 1}) == b'{"a":1}'
    with pytest.raises(TypeError):
        t.encode_payload(12)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- payloads


def test_agent_state_payload() -> None:
    doc = t.agent_state_payload(agent_id="A001", seat="seat07", state=AgentState.NOT_READY,
                                reason="break", since=1795791347.21, call_id=None, wrap_up_s=15)
    assert roundtrip(doc) == {"agent_id": "A001", "seat": "seat07", "state": "not_ready",
                              "reason": "break", "since": 1795791347.21, "call_id": None,
                              "wrap_up_s": 15}
    logged_out = t.agent_state_payload(agent_id="A001", seat="", state="logged_out", reason="",
                                       since=0.0, call_id=None, wrap_up_s=15)
    assert logged_out["seat"] is None and logged_out["reason"] is None
    with pytest.raises(ValueError, match="unknown agent state"):
        t.agent_state_payload(agent_id="A001", seat="seat07", state="napping", reason=None,
                              since=0.0, call_id=None, wrap_up_s=15)
    with pytest.raises(t.InvalidTopicError):
        t.agent_state_payload(agent_id="A/1", seat=None, state="ready", reason=None, since=0.0,
                              call_id=None, wrap_up_s=15)


POP: dict[str, Any] = {"call_id": "1751333405.42", "caller_number": "13800138000", "accounts": [],
       "work_orders": [], "ivr": None}


def test_screen_pop_payload_adds_what_the_acd_knows() -> None:
    doc = roundtrip(t.screen_pop_payload(POP, seat="seat07", skill="repair", attempt=2))
    assert doc == {**POP, "seat": "seat07", "skill": "repair", "attempt": 2}
    callback = roundtrip(t.screen_pop_payload(POP, seat="seat07", attempt=1, callback=True))
    assert callback == {**POP, "seat": "seat07", "callback": True, "attempt": 1}
    with pytest.raises(t.InvalidTopicError):
        t.screen_pop_payload({**POP, "call_id": "a/b"}, seat="seat07", attempt=1)
    with pytest.raises(ValueError, match="attempt"):
        t.screen_pop_payload(POP, seat="seat07", attempt=0)


def test_queue_stats_payload_fills_every_state() -> None:
    doc = roundtrip(t.queue_stats_payload(
        skill="general", waiting=7, longest_wait_s=42.26, service_level=0.83333333, answered=120,
        abandoned=4, agents={"ready": 2, "on_call": 9}, aht_s=183.24, at=AT))
    assert doc == {"skill": "general", "waiting": 7, "longest_wait_s": 42.3,
                   "service_level": 0.8333, "answered": 120, "abandoned": 4,
                   "agents": {s.value: {"ready": 2, "on_call": 9}.get(s.value, 0)
                              for s in AgentState},
                   "aht_s": 183.2, "at": AT_UTC}
    assert t.queue_stats_payload(skill="general", waiting=0, longest_wait_s=0,
                                 service_level=None, answered=0, abandoned=0, agents={},
                                 aht_s=180, at=AT)["service_level"] is None
    with pytest.raises(ValueError):
        t.queue_stats_payload(skill="general", waiting=0, longest_wait_s=0, service_level=1.5,
                              answered=0, abandoned=0, agents={}, aht_s=180, at=AT)
    with pytest.raises(ValueError):
        t.queue_stats_payload(skill="general", waiting=0, longest_wait_s=0, service_level=None,
                              answered=0, abandoned=0, agents={"asleep": 1}, aht_s=180, at=AT)


@pytest.mark.parametrize("event", sorted(t.CALL_EVENTS))
def test_call_event_payload(event: str) -> None:
    doc = roundtrip(t.call_event_payload(call_id="1751333405.42", event=event, at=AT,
                                         skill="billing", agent_id="A001", seat="seat07",
                                         detail={"attempt": 2}))
    assert doc == {"call_id": "1751333405.42", "event": event, "at": AT_UTC, "skill": "billing",
                   "agent_id": "A001", "seat": "seat07", "reason": None,
                   "detail": {"attempt": 2}}


def test_call_event_refuses_unknown_events() -> None:
    with pytest.raises(ValueError, match="unknown call event"):
        t.call_event_payload(call_id="c1", event="teleported", at=AT)


def test_deliveries() -> None:
    assert t.AGENT_STATE.retain and t.QUEUE_STATS.retain and t.CTI_STATUS.retain
    assert not t.SCREEN_POP.retain and not t.CALL_EVENT.retain
    assert {d.qos for d in (t.AGENT_STATE, t.SCREEN_POP, t.QUEUE_STATS, t.CALL_EVENT,
                            t.CTI_STATUS)} == {1}
    assert t.AGENT_STATES == {s.value for s in AgentState}
