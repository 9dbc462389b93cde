"""MQTT topic and payload builders, id validation and the JSON encoding: pure, no I/O.

The one topics module: every topic, topic filter and payload of the hotline is built here.
cti/notifier.py is its one user for what the CTI sends (it builds every message through these
builders); asterisk_conf/mosquitto.py takes the broker ACL's filters and patterns from here too,
which is why this module is on the ground floor (config/ may be imported by every layer;
asterisk_conf and recorder may not import cti/). cti/mqtt/topics.py re-exports it for the
CTI's adapters. Every payload builder returns a plain dict that is ready for JSON: timestamps
are ISO 8601 UTC strings (except the agent state's `since`, epoch seconds as documented, and
the recording alerts' `at`, as the recorder has always sent it) and money is a decimal string,
so desktops never see a float amount. docs/mqtt.md shows one example of each.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
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

# what the CTI sends today (docs/mqtt.md says when); the builder refuses anything else
CALL_EVENTS: Final = frozenset(
    {"offered", "failover", "callback_dialling", "callback_ended", "survey", "click_to_call",
     "transferred_out"}
)
AGENT_STATES: Final = frozenset(s.value for s in AgentState)

COMMAND_KINDS: Final = frozenset({"agents", "supervisors"})

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
REPLY: Final = Delivery(qos=1, retain=False)
SUPERVISION: Final = Delivery(qos=1, retain=False)
ALERT: Final = Delivery(qos=1, retain=False)
# the notices' revision and the storm switch: state, so a desktop that subscribes late has it
OUTAGES: Final = Delivery(qos=1, retain=True)
STORM: Final = Delivery(qos=1, retain=True)


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


def reply_topic(kind: str, user_id: str, *, prefix: str = PREFIX) -> str:
    """Where a command's reply goes: kind is 'agents' or 'supervisors'."""
    if kind not in COMMAND_KINDS:
        raise InvalidTopicError(f"command kind {kind!r} is not one of {sorted(COMMAND_KINDS)}")
    return f"{_check_prefix(prefix)}/{kind}/{check_id(user_id, 'user_id')}/reply"


def command_topic(kind: str, user_id: str, *, prefix: str = PREFIX) -> str:
    """Where an agent's or a supervisor's desktop sends its commands."""
    if kind not in COMMAND_KINDS:
        raise InvalidTopicError(f"command kind {kind!r} is not one of {sorted(COMMAND_KINDS)}")
    return f"{_check_prefix(prefix)}/cmd/{kind}/{check_id(user_id, 'user_id')}"


def parse_command_topic(topic: str, *, prefix: str = PREFIX) -> tuple[str, str] | None:
    """(kind, user_id) of a command topic, or None if it is not one."""
    head = f"{prefix}/cmd/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head):].split("/")
    if len(parts) != 2 or parts[0] not in COMMAND_KINDS or not _ID.fullmatch(parts[1]):
        return None
    return parts[0], parts[1]


def supervision_topic(session_id: str, *, prefix: str = PREFIX) -> str:
    return f"{_check_prefix(prefix)}/supervision/{check_id(session_id, 'session_id')}"


def supervisor_alerts_topic(*, prefix: str = PREFIX) -> str:
    return f"{_check_prefix(prefix)}/supervisors/alerts"


def outages_topic(*, prefix: str = PREFIX) -> str:
    return f"{_check_prefix(prefix)}/outages"


def storm_topic(*, prefix: str = PREFIX) -> str:
    return f"{_check_prefix(prefix)}/storm"


CTI_STATUS_TOPIC: Final = cti_status_topic()
SUPERVISOR_ALERTS_TOPIC: Final = supervisor_alerts_topic()
OUTAGES_TOPIC: Final = outages_topic()
STORM_TOPIC: Final = storm_topic()
# Filters for the big screen (大屏), supervisors and the desktop's /ws relay.
ALL_AGENT_STATES: Final = f"{PREFIX}/agents/+/state"
ALL_SCREEN_POPS: Final = f"{PREFIX}/agents/+/pop"
ALL_AGENT_REPLIES: Final = f"{PREFIX}/agents/+/reply"
ALL_QUEUE_STATS: Final = f"{PREFIX}/queues/+/stats"
ALL_CALL_EVENTS: Final = f"{PREFIX}/calls/+/events"
ALL_SUPERVISION: Final = f"{PREFIX}/supervision/+"
ALL_COMMANDS: Final = f"{PREFIX}/cmd/+/+"
ALL_AGENT_COMMANDS: Final = f"{PREFIX}/cmd/agents/+"


# ------------------------------------------------------------------------------ the broker ACL

# asterisk_conf/mosquitto.py grants these (docs/mqtt.md, "Who may publish what")
ALL_TOPICS: Final = f"{PREFIX}/#"  # the CTI's own: it reads and writes every hotline topic
SUPERVISION_TREE: Final = f"{PREFIX}/supervision/#"  # every level under it
# what the big screen, supervisors and the observer may read: no pops, replies or commands
PUBLIC_FILTERS: Final = (ALL_AGENT_STATES, ALL_QUEUE_STATS, ALL_CALL_EVENTS, CTI_STATUS_TOPIC,
                         SUPERVISION_TREE, SUPERVISOR_ALERTS_TOPIC, OUTAGES_TOPIC, STORM_TOPIC)
# what every agent reads besides its own topics: the center-wide state of the storm day
AGENT_SHARED_FILTERS: Final = (CTI_STATUS_TOPIC, OUTAGES_TOPIC, STORM_TOPIC)
# in a Mosquitto `pattern` line, the connecting user's name (%c: its client id)
ACL_USER: Final = "%u"
_ACL_SUBSTITUTIONS: Final = frozenset({"%u", "%c"})


def _acl_level(user: str, what: str) -> str:
    return user if user in _ACL_SUBSTITUTIONS else check_id(user, what)


def agent_commands_pattern(user: str = ACL_USER, *, prefix: str = PREFIX) -> str:
    """hotline/cmd/agents/{user}: an agent's command topic, `user` an id or ACL_USER (%u)."""
    return f"{_check_prefix(prefix)}/cmd/agents/{_acl_level(user, 'user_id')}"


def agent_topics_pattern(user: str = ACL_USER, *, prefix: str = PREFIX) -> str:
    """hotline/agents/{user}/#: an agent's state, pop and replies, `user` an id or ACL_USER."""
    return f"{_check_prefix(prefix)}/agents/{_acl_level(user, 'user_id')}/#"


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


# ----------------------------------------------------------------------------------- agent state


def agent_state_payload(
    *,
    agent_id: str,
    seat: str | None,
    state: str,
    reason: str | None,
    since: float,
    call_id: str | None,
    wrap_up_s: float | None,
) -> dict[str, Any]:
    """hotline/agents/{agent_id}/state, retained. `state` is an acd AgentState value; `since`
    is when the agent entered it, in epoch seconds (the ACD's own clock)."""
    check_id(agent_id, "agent_id")
    if str(state) not in AGENT_STATES:
        raise ValueError(f"unknown agent state {state!r}; one of {sorted(AGENT_STATES)}")
    return {
        "agent_id": agent_id,
        "seat": seat or None,
        "state": str(state),
        "reason": reason or None,
        "since": since,
        "call_id": call_id,
        "wrap_up_s": wrap_up_s,
    }


# ------------------------------------------------------------------------------------ screen-pop


def screen_pop_payload(
    pop: Mapping[str, Any],
    *,
    seat: str,
    attempt: int,
    skill: str | None = None,
    callback: bool = False,
) -> dict[str, Any]:
    """hotline/agents/{agent_id}/pop, not retained: what the agent needs while the seat rings.

    `pop` is cti.db.screen_pop.screen_pop()'s document (JSON-ready); the ACD adds the seat, the
    skill and the attempt (2 after a ring-no-answer). A queued callback's pop says
    `"callback": true` and carries no skill.
    """
    check_id(str(pop.get("call_id")), "call_id")
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    extra: dict[str, Any] = ({"seat": seat, "callback": True, "attempt": attempt} if callback
                             else {"seat": seat, "skill": skill, "attempt": attempt})
    return {**pop, **extra}


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
    aht_s: float,
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
        "aht_s": round(float(aht_s), 1),
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


# ---------------------------------------------------------------------------- supervisor alerts

# (kind, level) of the alerts on hotline/supervisors/alerts (docs/mqtt.md)
WORK_ORDER_ALERTS: Final = frozenset({("sla", "warning"), ("sla", "breach"), ("urge", "urge")})


def _iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else iso_utc(value)


def work_order_alert_payload(
    *,
    kind: str,
    level: str,
    number: str,
    order_type: str,
    status: str,
    department: str | None,
    area: str | None,
    caller_number: str | None,
    account_no: str | None,
    clock: str | None,
    percent: int | None,
    started_at: datetime | None,
    due_at: datetime | None,
    crossed_at: datetime | None,
    urge_count: int,
    note: str | None,
    at: datetime,
) -> dict[str, Any]:
    """hotline/supervisors/alerts, not retained: a work order's SLA clock crossed a threshold
    (kind 'sla', level 'warning' or 'breach') or a caller urged it (kind 'urge', level 'urge',
    clock and percent null). Every field is present, null when it has no value."""
    if (kind, level) not in WORK_ORDER_ALERTS:
        raise ValueError(f"unknown work-order alert {kind!r}/{level!r}; one of "
                         f"{sorted(WORK_ORDER_ALERTS)}")
    return {
        "kind": kind,
        "level": level,
        "number": number,
        "type": order_type,
        "status": status,
        "department": department,
        "area": area,
        "caller_number": caller_number,
        "account_no": account_no,
        "clock": clock,
        "percent": percent,
        "started_at": _iso_or_none(started_at),
        "due_at": _iso_or_none(due_at),
        "crossed_at": _iso_or_none(crossed_at),
        "urge_count": urge_count,
        "note": note,
        "at": iso_utc(at),
    }


# the levels of an outage alert on hotline/supervisors/alerts: a suspected outage (疑似停电) that
# incident detection opened, waiting for a supervisor's confirmation or already announced (auto)
OUTAGE_ALERT_LEVELS: Final = frozenset({"suspected", "announced"})
OUTAGE_SCOPE_KINDS: Final = frozenset({"feeder", "transformer_area"})


def outage_alert_payload(
    *,
    level: str,
    outage_id: int,
    scope: str,
    area_id: int,
    area: str | None,
    feeder_id: int | None,
    feeder: str | None,
    transformer_area: str | None,
    reports: int,
    window_min: float,
    master_number: str,
    first_report_at: datetime,
    at: datetime,
) -> dict[str, Any]:
    """hotline/supervisors/alerts, not retained: incident detection opened a suspected outage
    (kind 'outage'): `reports` fault reports on one feeder or 台区 (`scope`) within `window_min`
    minutes. Level 'suspected': callers hear it once a supervisor confirms it; 'announced': they
    hear it already (mode auto). Every field is present, null when it has no value."""
    if level not in OUTAGE_ALERT_LEVELS:
        raise ValueError(f"unknown outage alert level {level!r}; one of "
                         f"{sorted(OUTAGE_ALERT_LEVELS)}")
    if scope not in OUTAGE_SCOPE_KINDS:
        raise ValueError(f"unknown outage scope {scope!r}; one of {sorted(OUTAGE_SCOPE_KINDS)}")
    return {
        "kind": "outage",
        "level": level,
        "outage_id": int(outage_id),
        "scope": scope,
        "area_id": int(area_id),
        "area": area,
        "feeder_id": feeder_id,
        "feeder": feeder,
        "transformer_area": transformer_area,
        "reports": int(reports),
        "window_min": float(window_min),
        "master_number": master_number,
        "first_report_at": iso_utc(first_report_at),
        "at": iso_utc(at),
    }


def outages_payload(*, version: int, active: int, suspected: int, changed_id: int | None,
                    action: str | None, at: datetime) -> dict[str, Any]:
    """hotline/outages, retained: the notices changed (published, updated, confirmed, closed,
    suspected). It carries no notice text: a desktop that cares fetches /api/outages."""
    return {"version": int(version), "active": int(active), "suspected": int(suspected),
            "changed_id": changed_id, "action": action, "at": iso_utc(at)}


def storm_payload(*, on: bool, since: datetime | None, by: str | None, trigger: str | None,
                  at: datetime) -> dict[str, Any]:
    """hotline/storm, retained: storm mode on or off, since when, and who or what switched it
    (a user id, or 'auto'; never a credential)."""
    return {"on": bool(on), "since": iso_utc(since) if since is not None else None,
            "by": by, "trigger": trigger, "at": iso_utc(at)}


def recording_disk_alert_payload(*, full: bool, free_bytes: int, min_free_bytes: int,
                                 at: datetime) -> dict[str, Any]:
    """hotline/supervisors/alerts, not retained: the recordings disk fell below its minimum
    free space (level 'disk_full') or has room again (level 'disk_ok'). `at` is sent as the
    recorder has always sent it (datetime.isoformat: microseconds, the clock's own offset)."""
    return {
        "kind": "recording",
        "level": "disk_full" if full else "disk_ok",
        "free_bytes": free_bytes,
        "min_free_bytes": min_free_bytes,
        "at": at.isoformat(),
    }


def unrecorded_leg_alert_payload(*, call_id: str, leg: str, seat: str | None, file: str,
                                 reason: str, detail: str, at: datetime) -> dict[str, Any]:
    """hotline/supervisors/alerts, not retained: an answered leg has no whole recording, and
    why (`reason` one of recorder.disk's reasons). `at` as in recording_disk_alert_payload."""
    return {
        "kind": "recording",
        "level": "unrecorded",
        "call_id": call_id,
        "leg": leg,
        "seat": seat,
        "file": file,
        "reason": reason,
        "detail": detail,
        "at": at.isoformat(),
    }


def keyword_alert_payload(*, alert_id: int, recording_id: int, call_id: str, seat: str | None,
                          agent_id: str | None, caller_number: str | None,
                          keywords: list[dict[str, Any]], excerpt: str,
                          at: datetime) -> dict[str, Any]:
    """hotline/supervisors/alerts, not retained: a recording's transcript held alert keywords
    ([speech] alert_keywords). `type` and `kind` are both "keyword_alert" (the other alerts are
    told apart by `kind`); keywords: [{"word", "start"}], start in seconds into the recording.
    Every field is present, null when it has no value."""
    return {
        "type": "keyword_alert",
        "kind": "keyword_alert",
        "alert_id": int(alert_id),
        "recording_id": int(recording_id),
        "call_id": call_id,
        "seat": seat,
        "agent_id": agent_id,
        "caller_number": caller_number,
        "keywords": [{"word": str(k["word"]), "start": float(k["start"])} for k in keywords],
        "excerpt": excerpt,
        "at": iso_utc(at),
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
