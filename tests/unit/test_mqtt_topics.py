"""config.topics (re-exported as cti.mqtt.topics): topic, filter, ACL and payload builders, id
validation, JSON encoding, filter matching."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from acd.model import AgentState
from config import topics as t

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


def test_cti_mqtt_topics_is_the_one_module_re_exported() -> None:
    from cti.mqtt import topics as cti_topics

    public = [n for n, v in vars(t).items()
              if not n.startswith("_") and getattr(v, "__module__", t.__name__) == t.__name__]
    assert {"agent_state_topic", "PUBLIC_FILTERS", "work_order_alert_payload"} <= set(public)
    assert [n for n in public if getattr(cti_topics, n, None) is not getattr(t, n)] == []


# ----------------------------------------------------------------------------- the broker ACL


def test_acl_filters_and_patterns() -> None:
    assert t.ALL_TOPICS == "hotline/#"
    assert t.ALL_AGENT_COMMANDS == "hotline/cmd/agents/+"
    assert t.PUBLIC_FILTERS == (
        "hotline/agents/+/state", "hotline/queues/+/stats", "hotline/calls/+/events",
        "hotline/cti/status", "hotline/supervision/#", "hotline/supervisors/alerts",
        "hotline/outages", "hotline/storm")
    assert t.AGENT_SHARED_FILTERS == ("hotline/cti/status", "hotline/outages", "hotline/storm")
    assert t.agent_commands_pattern() == t.agent_commands_pattern(t.ACL_USER) == \
        "hotline/cmd/agents/%u"
    assert t.agent_topics_pattern(t.ACL_USER) == "hotline/agents/%u/#"
    assert t.agent_topics_pattern("A001", prefix="site2/hotline") == "site2/hotline/agents/A001/#"
    for flt in (t.ALL_TOPICS, t.ALL_AGENT_COMMANDS, *t.PUBLIC_FILTERS, t.agent_topics_pattern()):
        assert t.check_topic_filter(flt) == flt
    # a pattern grants what the agent's own topics are, and nothing of another agent
    mine = t.agent_topics_pattern("A001")
    assert all(t.topic_matches(mine, topic) for topic in (
        t.agent_state_topic("A001"), t.screen_pop_topic("A001"), t.reply_topic("agents", "A001")))
    assert not t.topic_matches(mine, t.screen_pop_topic("A002"))
    assert t.topic_matches(t.agent_commands_pattern("A001"), t.command_topic("agents", "A001"))
    # no pops, replies or commands among the public filters
    for private in (t.screen_pop_topic("A001"), t.reply_topic("supervisors", "S01"),
                    t.command_topic("agents", "A001")):
        assert not any(t.topic_matches(f, private) for f in t.PUBLIC_FILTERS), private


@pytest.mark.parametrize("bad", ["a/b", "+", "#", "%x", "%u/x", ""])
def test_acl_patterns_refuse_topic_syntax(bad: str) -> None:
    for build in (t.agent_commands_pattern, t.agent_topics_pattern):
        with pytest.raises(t.InvalidTopicError):
            build(bad)


# the ACL as it was written by hand before the topics module rendered it: not one byte changed
ACL_BEFORE = """\
# The hotline's broker ACL, rendered by asterisk_conf/mosquitto.py: do not edit.
# Whatever no line grants is denied.

user hotline-cti
topic readwrite hotline/#

user hotline-observer
topic read hotline/agents/+/state
topic read hotline/queues/+/stats
topic read hotline/calls/+/events
topic read hotline/cti/status
topic read hotline/supervision/#
topic read hotline/supervisors/alerts
topic read hotline/outages
topic read hotline/storm

user S01
topic write hotline/cmd/supervisors/S01
topic read hotline/supervisors/S01/reply
topic read hotline/agents/+/state
topic read hotline/queues/+/stats
topic read hotline/calls/+/events
topic read hotline/cti/status
topic read hotline/supervision/#
topic read hotline/supervisors/alerts
topic read hotline/outages
topic read hotline/storm

user hotline-bench
topic write hotline/cmd/agents/+
topic read hotline/agents/+/state
topic read hotline/agents/+/reply
topic read hotline/agents/+/pop

# every staff member: their own commands, state, pop and replies;
# the CTI's status, the outage notices' revision and storm mode
pattern write hotline/cmd/agents/%u
pattern read hotline/agents/%u/#
pattern read hotline/cti/status
pattern read hotline/outages
pattern read hotline/storm
"""


def test_the_broker_acl_comes_from_the_topics_module_unchanged() -> None:
    from asterisk_conf.mosquitto import PUBLIC_TOPICS, Staff, render_acl
    from bench.acd import BENCH_ACL, BENCH_USER

    assert PUBLIC_TOPICS == t.PUBLIC_FILTERS
    acl = render_acl([Staff("A001", "agent"), Staff("S01", "supervisor")],
                     {BENCH_USER: list(BENCH_ACL)})
    assert acl == ACL_BEFORE


# --------------------------------------------------------------------------- supervisor alerts


def test_work_order_alert_payload() -> None:
    doc = t.work_order_alert_payload(
        kind="urge", level="urge", number="26112700001", order_type="fault_repair",
        status="dispatched", department="repair", area="历下区", caller_number="13800000001",
        account_no=None, clock=None, percent=None, started_at=None, due_at=AT,
        crossed_at=None, urge_count=2, note="还没人来", at=AT)
    assert list(doc) == ["kind", "level", "number", "type", "status", "department", "area",
                         "caller_number", "account_no", "clock", "percent", "started_at",
                         "due_at", "crossed_at", "urge_count", "note", "at"]
    assert (doc["type"], doc["due_at"], doc["at"], doc["started_at"]) == (
        "fault_repair", AT_UTC, AT_UTC, None)
    assert roundtrip(doc) == doc  # JSON-ready as it is
    for kind, level in (("sla", "urge"), ("urge", "warning"), ("recording", "disk_full")):
        with pytest.raises(ValueError, match="unknown work-order alert"):
            t.work_order_alert_payload(**{**{k: doc[k] for k in doc if k != "type"},
                                          "order_type": "x", "due_at": AT, "at": AT,
                                          "kind": kind, "level": level})


def test_recording_alert_payloads_keep_the_recorders_own_timestamps() -> None:
    assert t.recording_disk_alert_payload(full=True, free_bytes=0, min_free_bytes=10, at=AT) == {
        "kind": "recording", "level": "disk_full", "free_bytes": 0, "min_free_bytes": 10,
        "at": "2026-07-01T09:30:05.123456+08:00"}
    assert t.recording_disk_alert_payload(full=False, free_bytes=30, min_free_bytes=10,
                                          at=AT)["level"] == "disk_ok"
    leg = t.unrecorded_leg_alert_payload(call_id="c.1", leg="c.2", seat=None, file="x.wav",
                                         reason="file_missing", detail="no file", at=AT)
    assert leg == {"kind": "recording", "level": "unrecorded", "call_id": "c.1", "leg": "c.2",
                   "seat": None, "file": "x.wav", "reason": "file_missing", "detail": "no file",
                   "at": "2026-07-01T09:30:05.123456+08:00"}
