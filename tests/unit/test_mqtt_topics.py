"""cti.mqtt.topics: topic and payload builders, id validation, JSON encoding, filter matching."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

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
                                reason="break", since=AT, call_id=None)
    assert roundtrip(doc) == {"agent_id": "A001", "seat": "seat07", "state": "not_ready",
                              "reason": "break", "since": AT_UTC, "call_id": None}
    logged_out = t.agent_state_payload(agent_id="A001", seat="", state="logged_out", reason="",
                                       since=AT, call_id=None)
    assert logged_out["seat"] is None and logged_out["reason"] is None
    with pytest.raises(ValueError, match="unknown agent state"):
        t.agent_state_payload(agent_id="A001", seat="seat07", state="napping", reason=None,
                              since=AT, call_id=None)
    with pytest.raises(t.InvalidTopicError):
        t.agent_state_payload(agent_id="A/1", seat=None, state="ready", reason=None, since=AT,
                              call_id=None)


def test_screen_pop_payload() -> None:
    bills = [t.PopBill(period=f"2026-0{m}", amount=Decimal(f"{m}00.50"), due_date=date(2026, m, 25),
                       paid=m < 5, paid_amount=Decimal(f"{m}00.50") if m < 5 else Decimal("0"),
                       usage_kwh=m * 100) for m in range(1, 7)]
    outage = t.PopOutage(kind="fault", cause="10kV 线路故障", start_at=AT,
                         expected_restore_at=AT + timedelta(hours=3), notice="正在抢修",
                         feeder="城关线")
    account = t.PopAccount(account_no="3300012345", customer_name="张三",
                           service_address="城关镇人民路1号", area="城关供电所",
                           arrears=Decimal("1101.50"), important=True,
                           transformer_area="人民路1号台区", feeder="城关线",
                           bills=bills, outages=[outage])
    order = t.PopWorkOrder(number="20260701001", type="fault_repair", status="dispatched",
                           created_at=AT, account_no="3300012345",
                           sla_due_at=AT + timedelta(minutes=45), description="整栋楼停电")
    doc = roundtrip(t.screen_pop_payload(
        call_id="1751333405.42", caller_number="13800138000", at=AT, skill="repair",
        accounts=[account], work_orders=[order],
        ivr_path=[t.IvrStep("main", "1", "故障报修"), t.IvrStep("collect_account", "3300012345"),
                  t.IvrStep("confirm", None)]))
    assert doc["call_id"] == "1751333405.42" and doc["caller_number"] == "13800138000"
    assert doc["at"] == AT_UTC and doc["skill"] == "repair"
    acct = doc["accounts"][0]
    assert acct["arrears"] == "1101.50" and acct["important"] is True
    assert [b["period"] for b in acct["bills"]] == ["2026-06", "2026-05", "2026-04"]
    assert acct["bills"][0] == {"period": "2026-06", "amount": "600.50", "paid_amount": "0",
                                "paid": False, "due_date": "2026-06-25", "usage_kwh": 600}
    assert acct["outages"] == [{"kind": "fault", "cause": "10kV 线路故障", "start_at": AT_UTC,
                                "expected_restore_at": "2026-07-01T04:30:05.123+00:00",
                                "feeder": "城关线", "notice": "正在抢修"}]
    assert doc["work_orders"][0]["sla_due_at"] == "2026-07-01T02:15:05.123+00:00"
    assert doc["ivr_path"] == [{"node": "main", "label": "故障报修", "input": "1"},
                               {"node": "collect_account", "label": None, "input": "3300012345"},
                               {"node": "confirm", "label": None, "input": None}]


def test_screen_pop_refuses_float_money() -> None:
    account = t.PopAccount(account_no="3300012345", customer_name="张三", service_address="x",
                           area="y", arrears=12.3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Decimal"):
        t.screen_pop_payload(call_id="c1", caller_number="95598", at=AT, accounts=[account])


def test_queue_stats_payload_fills_every_state() -> None:
    doc = roundtrip(t.queue_stats_payload(
        skill="general", waiting=7, longest_wait_s=42.26, service_level=0.83333333, answered=120,
        abandoned=4, agents={"ready": 2, "on_call": 9}, at=AT))
    assert doc == {"skill": "general", "waiting": 7, "longest_wait_s": 42.3,
                   "service_level": 0.8333, "answered": 120, "abandoned": 4,
                   "agents": {s.value: {"ready": 2, "on_call": 9}.get(s.value, 0)
                              for s in AgentState},
                   "at": AT_UTC}
    assert t.queue_stats_payload(skill="general", waiting=0, longest_wait_s=0,
                                 service_level=None, answered=0, abandoned=0, agents={},
                                 at=AT)["service_level"] is None
    with pytest.raises(ValueError):
        t.queue_stats_payload(skill="general", waiting=0, longest_wait_s=0, service_level=1.5,
                              answered=0, abandoned=0, agents={}, at=AT)
    with pytest.raises(ValueError):
        t.queue_stats_payload(skill="general", waiting=0, longest_wait_s=0, service_level=None,
                              answered=0, abandoned=0, agents={"asleep": 1}, at=AT)


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
