"""MQTT topic and payload builders, id validation and the JSON encoding: pure, no I/O.

Every payload builder returns a plain dict that is ready for JSON: timestamps are ISO 8601 UTC
strings and money is a decimal string, so desktops never see a float amount. docs/mqtt.md
shows one example of each payload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Final

from acd.model import AgentState

PREFIX: Final = "hotline"

# One topic level taken from data: letters (Unicode), digits, '_', '.', ':', '@', '-'.
# This keeps '/', '+', '#', '$', spaces, NUL and control characters out of every topic.
_ID = re.compile(r"[\w.:@-]{1,128}")

CALL_EVENTS: Final = frozenset(
    {"queued", "offered", "answered", "rona", "ended", "abandoned", "failover", "callback"}
)
AGENT_STATES: Final = frozenset(s.value for s in AgentState)

CTI_ONLINE: Final = b"online"
CTI_OFFLINE: Final = b"offline"
MAX_TOPIC_BYTES: Final = 65535


@dataclass(frozen=True)
class Delivery:
    """How a kind of message is published."""

    qos: int
    retain: bool


# State is retained so a desktop or the big screen gets the current value the moment it
# subscribes; events are not, because replaying an old pop or call event would be wrong.
AGENT_STATE: Final = Delivery(qos=1, retain=True)
SCREEN_POP: Final = Delivery(qos=1, retain=False)
QUEUE_STATS: Final = Delivery(qos=1, retain=True)
CALL_EVENT: Final = Delivery(qos=1, retain=False)
CTI_STATUS: Final = Delivery(qos=1, retain=True)


# ------------------------------------------------------------------------------------- validation


class InvalidTopicError(ValueError):
    """A topic or a topic level built from data is not acceptable."""


def check_id(value: object, what: str = "id") -> str:
    """Return `value` if it can be one topic level, else raise InvalidTopicError."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidTopicError(
            f"{what} {value!r} cannot be used in an MQTT topic: use 1-128 letters, digits "
            "or _ . : @ -"
        )
    return value


def check_publish_topic(topic: object) -> str:
    """A topic we may publish to: non-empty, no wildcard, no NUL, at most 65535 UTF-8 bytes."""
    if not isinstance(topic, str) or not topic:
        raise InvalidTopicError(f"topic must be a non-empty str, got {topic!r}")
    if "+" in topic or "#" in topic or "\x00" in topic:
        raise InvalidTopicError(f"topic {topic!r} contains a wildcard or NUL")
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise InvalidTopicError(f"topic is longer than {MAX_TOPIC_BYTES} bytes")
    return topic


def check_topic_filter(topic_filter: object) -> str:
    """A subscription filter: '+' only as a whole level, '#' only as the whole last level."""
    if not isinstance(topic_filter, str) or not topic_filter or "\x00" in topic_filter:
        raise InvalidTopicError(f"topic filter must be a non-empty str, got {topic_filter!r}")
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and level != "#"):
            raise InvalidTopicError(f"topic filter {topic_filter!r}: wildcard inside a level")
        if level == "#" and i != len(levels) - 1:
            raise InvalidTopicError(f"topic filter {topic_filter!r}: '#' must be last")
    if len(topic_filter.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise InvalidTopicError(f"topic filter is longer than {MAX_TOPIC_BYTES} bytes")
    return topic_filter


def _check_prefix(prefix: str) -> str:
    for level in prefix.split("/"):
        check_id(level, "topic prefix level")
    return prefix


# ----------------------------------------------------------------------------------------- topics


def agent_state_topic(agent_id: str, *, prefix: str = PREFIX) -> str:
    return f"{_check_prefix(prefix)}/agents/{check_id(agent_id, 'agent_id')}/state"


def screen_pop_topic(agent_id: str, *, prefix: str = PREFIX) -> str:
    return f"{_check_prefix(prefix)}/agents/{check_id(agent_id, 'agent_id')}/pop"


def queue_stats_topic(skill: str, *, prefix: str = PREFIX) -> str:
    return f"{_check_prefix(prefix)}/queues/{check_id(skill, 'skill')}/stats"


def call_events_topic(call_id: str, *, prefix: str = PREFIX) -> str:
    return f"{_check_prefix(prefix)}/calls/{check_id(call_id, 'call_id')}/events"


def cti_status_topic(*, prefix: str = PREFIX) -> str:
    return f"{_check_prefix(prefix)}/cti/status"


CTI_STATUS_TOPIC: Final = cti_status_topic()
# Filters for the big screen (大屏) and supervisors.
ALL_AGENT_STATES: Final = f"{PREFIX}/agents/+/state"
ALL_QUEUE_STATS: Final = f"{PREFIX}/queues/+/stats"
ALL_CALL_EVENTS: Final = f"{PREFIX}/calls/+/events"


# --------------------------------------------------------------------------------------- encoding


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds; a naive datetime is refused (its zone is unknown)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def _json_default(value: object) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        # a string keeps fen exact; 'f' avoids exponent forms like '1E+2'
        return format(value, "f")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable: {value!r}")


def to_json(doc: Mapping[str, Any]) -> bytes:
    """UTF-8 JSON, Chinese kept as is, datetimes as ISO 8601 UTC, Decimals as strings."""
    return json.dumps(
        doc, ensure_ascii=False, default=_json_default, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def encode_payload(payload: Mapping[str, Any] | str | bytes | bytearray | memoryview) -> bytes:
    """Mappings become JSON; str is UTF-8; bytes pass through."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, Mapping):
        return to_json(payload)
    raise TypeError(f"payload must be a Mapping, str or bytes, got {type(payload).__name__}")


def _money(value: Decimal) -> str:
    if not isinstance(value, Decimal):
        raise TypeError(f"money must be a Decimal, got {type(value).__name__} {value!r}")
    return format(value, "f")


def _opt_iso(value: datetime | None) -> str | None:
    return None if value is None else iso_utc(value)


# ----------------------------------------------------------------------------------- agent state


def agent_state_payload(
    *,
    agent_id: str,
    seat: str | None,
    state: str,
    reason: str | None,
    since: datetime,
    call_id: str | None,
) -> dict[str, Any]:
    """hotline/agents/{agent_id}/state, retained. `state` is an acd AgentState value."""
    check_id(agent_id, "agent_id")
    if str(state) not in AGENT_STATES:
        raise ValueError(f"unknown agent state {state!r}; one of {sorted(AGENT_STATES)}")
    return {
        "agent_id": agent_id,
        "seat": seat or None,
        "state": str(state),
        "reason": reason or None,
        "since": iso_utc(since),
        "call_id": call_id,
    }


# ------------------------------------------------------------------------------------ screen-pop


@dataclass(frozen=True)
class PopBill:
    period: str  # 'YYYY-MM'
    amount: Decimal  # 应缴金额
    due_date: date  # 缴费截止日
    paid: bool
    paid_amount: Decimal = Decimal("0.00")
    usage_kwh: int | None = None


@dataclass(frozen=True)
class PopOutage:
    """A planned (计划停电) or fault (故障停电) outage affecting the account's area or feeder."""

    kind: str  # planned | fault
    cause: str
    start_at: datetime
    expected_restore_at: datetime
    notice: str = ""
    feeder: str | None = None  # None: the whole area


@dataclass(frozen=True)
class PopAccount:
    account_no: str  # 户号
    customer_name: str  # 用户名称
    service_address: str  # 用电地址
    area: str  # 供电区域 name
    arrears: Decimal  # 欠费: everything still owed, not only the bills shown
    important: bool = False  # 重要客户
    transformer_area: str | None = None  # 台区
    feeder: str | None = None  # 线路
    bills: Sequence[PopBill] = ()
    outages: Sequence[PopOutage] = ()


@dataclass(frozen=True)
class PopWorkOrder:
    number: str
    type: str
    status: str
    created_at: datetime
    account_no: str | None = None
    sla_due_at: datetime | None = None
    description: str = ""


@dataclass(frozen=True)
class IvrStep:
    """One node the caller went through, and what they keyed or said there (None: nothing)."""

    node: str
    input: str | None = None
    label: str | None = None  # e.g. '故障报修'


def _bill(b: PopBill) -> dict[str, Any]:
    return {
        "period": b.period,
        "amount": _money(b.amount),
        "paid_amount": _money(b.paid_amount),
        "paid": b.paid,
        "due_date": b.due_date.isoformat(),
        "usage_kwh": b.usage_kwh,
    }


def _outage(o: PopOutage) -> dict[str, Any]:
    return {
        "kind": o.kind,
        "cause": o.cause,
        "start_at": iso_utc(o.start_at),
        "expected_restore_at": iso_utc(o.expected_restore_at),
        "feeder": o.feeder,
        "notice": o.notice,
    }


def _account(a: PopAccount, last_bills: int) -> dict[str, Any]:
    bills = sorted(a.bills, key=lambda b: b.period, reverse=True)[:last_bills]
    return {
        "account_no": a.account_no,
        "customer_name": a.customer_name,
        "service_address": a.service_address,
        "area": a.area,
        "transformer_area": a.transformer_area,
        "feeder": a.feeder,
        "important": a.important,
        "arrears": _money(a.arrears),
        "bills": [_bill(b) for b in bills],
        "outages": [_outage(o) for o in a.outages],
    }


def _work_order(w: PopWorkOrder) -> dict[str, Any]:
    return {
        "number": w.number,
        "type": w.type,
        "status": w.status,
        "account_no": w.account_no,
        "created_at": iso_utc(w.created_at),
        "sla_due_at": _opt_iso(w.sla_due_at),
        "description": w.description,
    }


def screen_pop_payload(
    *,
    call_id: str,
    caller_number: str,
    at: datetime,
    accounts: Iterable[PopAccount] = (),
    work_orders: Iterable[PopWorkOrder] = (),
    ivr_path: Iterable[IvrStep] = (),
    skill: str | None = None,
    last_bills: int = 3,
) -> dict[str, Any]:
    """hotline/agents/{agent_id}/pop, not retained: what the agent needs while the seat rings.

    `work_orders` are the caller's open ones (by account or phone). Bills are shown newest
    first, at most `last_bills` per account.
    """
    check_id(call_id, "call_id")
    if last_bills < 0:
        raise ValueError(f"last_bills must be >= 0, got {last_bills}")
    return {
        "call_id": call_id,
        "caller_number": caller_number,
        "skill": skill,
        "at": iso_utc(at),
        "accounts": [_account(a, last_bills) for a in accounts],
        "work_orders": [_work_order(w) for w in work_orders],  # open ones only
        "ivr_path": [{"node": s.node, "label": s.label, "input": s.input} for s in ivr_path],
    }


# ---------------------------------------------------------------------------------- queue stats


def queue_stats_payload(
    *,
    skill: str,
    waiting: int,
    longest_wait_s: float,
    service_level: float | None,
    answered: int,
    abandoned: int,
    agents: Mapping[str, int],
    at: datetime,
) -> dict[str, Any]:
    """hotline/queues/{skill}/stats, retained. `agents` counts agents with the skill by state;
    every state is present (0 when none), so the big screen needs no defaults."""
    check_id(skill, "skill")
    unknown = set(agents) - AGENT_STATES
    if unknown:
        raise ValueError(f"unknown agent states in agents: {sorted(unknown)}")
    if service_level is not None and not 0.0 <= service_level <= 1.0:
        raise ValueError(f"service_level must be in [0, 1] or None, got {service_level!r}")
    return {
        "skill": skill,
        "waiting": waiting,
        "longest_wait_s": round(float(longest_wait_s), 1),
        "service_level": None if service_level is None else round(float(service_level), 4),
        "answered": answered,
        "abandoned": abandoned,
        "agents": {state: int(agents.get(state, 0)) for state in sorted(AGENT_STATES)},
        "at": iso_utc(at),
    }


# ---------------------------------------------------------------------------------- call events


def call_event_payload(
    *,
    call_id: str,
    event: str,
    at: datetime,
    skill: str | None = None,
    agent_id: str | None = None,
    seat: str | None = None,
    reason: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """hotline/calls/{call_id}/events, not retained. QoS 1 may deliver twice: (call_id, event,
    at) identifies one event."""
    check_id(call_id, "call_id")
    if event not in CALL_EVENTS:
        raise ValueError(f"unknown call event {event!r}; one of {sorted(CALL_EVENTS)}")
    return {
        "call_id": call_id,
        "event": event,
        "at": iso_utc(at),
        "skill": skill,
        "agent_id": agent_id,
        "seat": seat,
        "reason": reason,
        "detail": dict(detail or {}),
    }


# -------------------------------------------------------------------------------------- matching


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching: '+' is one level, a last '#' is any number of levels (zero too);
    topics starting with '$' are not matched by a leading wildcard; '$share/group/' is dropped."""
    levels = topic_filter.split("/")
    if levels[0] == "$share" and len(levels) > 2:
        levels = levels[2:]
    parts = topic.split("/")
    if topic.startswith("$") and levels[0] in ("+", "#"):
        return False
    for i, level in enumerate(levels):
        if level == "#":
            return True
        if i >= len(parts) or (level != "+" and level != parts[i]):
            return False
    return len(levels) == len(parts)
