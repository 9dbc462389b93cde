"""The one notifier: every topic and payload the CTI publishes, to MQTT and to in-process listeners.

Topics and payloads are built here, through the pure builders of config/topics.py (the one
topics module, re-exported as cti/mqtt/topics.py), and nowhere else: the ACD hands over its
agents and queues, the recorder and the work-order service the facts of an alert. A message
goes to the MQTT bus (other processes, the big screen) and, at the same moment, to the
listeners in this process (the desktop's /ws hub), so a screen-pop reaches a browser without a
round trip through Mosquitto.

Only the ACD's messages (agent state, screen-pop, queue figures, call events) are delivered
in-process (LOCAL_FILTERS); a listener subscribes to the bus for whatever else it relays.
Whether a message reflects the database is the caller's business: the ACD's writer calls
agent_state() only after the state is committed (publish after commit), and the screen-pop,
which is not database state, as the seat rings. A work-order alert is held by the outbox
(cti.mqtt.outbox) until the session that marked it commits.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from acd.model import Agent, QueueStats
from config import topics
from config.topics import (
    ALL_AGENT_STATES,
    ALL_CALL_EVENTS,
    ALL_COMMANDS,
    ALL_QUEUE_STATS,
    ALL_SCREEN_POPS,
    ALL_SUPERVISION,
    SUPERVISOR_ALERTS_TOPIC,
    Delivery,
    encode_payload,
    parse_command_topic,
    topic_matches,
)
from cti.mqtt.outbox import PublishAfterCommit

if TYPE_CHECKING:  # the services' facts; they import no cti/ (recorder may not)
    from sqlalchemy.orm import Session

    from cti.db.transcripts import NewAlert
    from recorder.ports import UnrecordedLeg
    from workorders.service import WorkOrderAlert

log = logging.getLogger(__name__)

__all__ = [
    "ALL_AGENT_STATES", "ALL_CALL_EVENTS", "ALL_COMMANDS", "ALL_QUEUE_STATS", "ALL_SCREEN_POPS",
    "ALL_SUPERVISION", "KINDS", "LOCAL_FILTERS", "SUPERVISOR_ALERTS_TOPIC", "Message",
    "Notifier", "classify", "parse_command_topic",
]

# topic filter -> the kind of message (the /ws message type of docs/api.md)
KINDS: Final[Mapping[str, str]] = {
    ALL_AGENT_STATES: "agent_state",
    ALL_SCREEN_POPS: "pop",
    ALL_QUEUE_STATS: "queue_stats",
    ALL_CALL_EVENTS: "call_event",
    SUPERVISOR_ALERTS_TOPIC: "sla_alert",
}
# what in-process listeners get from this notifier directly (not from the bus)
LOCAL_FILTERS: Final = frozenset({ALL_AGENT_STATES, ALL_SCREEN_POPS, ALL_QUEUE_STATS,
                                  ALL_CALL_EVENTS})


def classify(topic: str) -> tuple[str, str | None] | None:
    """(kind, the agent, skill or call id in the topic) of a topic in KINDS, else None."""
    for topic_filter, kind in KINDS.items():
        if topic_matches(topic_filter, topic):
            levels = topic.split("/")
            return kind, (levels[-2] if "+" in topic_filter else None)
    return None


class Publisher(Protocol):
    def publish(self, topic: str, payload: Mapping[str, Any] | str | bytes, *, qos: int = 1,
                retain: bool = False) -> None: ...


@dataclass(frozen=True, slots=True)
class Message:
    """One message as an in-process listener gets it: `data` is the JSON payload decoded,
    exactly what an MQTT subscriber would decode."""

    topic: str
    kind: str
    subject: str | None
    data: Mapping[str, Any]
    retain: bool


Listener = Callable[[Message], None]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Notifier:
    """Builds and sends every message; safe to call from the event loop or a worker thread
    (a listener is always called on the loop it was registered from). Messages that must wait
    for a commit go through `outbox` (by default one over `bus`)."""

    def __init__(self, bus: Publisher | None, *, outbox: PublishAfterCommit | None = None
                 ) -> None:
        self.bus = bus
        self.outbox = outbox if outbox is not None or bus is None else PublishAfterCommit(bus)
        self._listeners: list[tuple[Listener, asyncio.AbstractEventLoop | None]] = []
        self.sent = 0

    # ------------------------------------------------------------------------------ listeners

    def listen(self, listener: Listener) -> None:
        """Deliver the ACD's messages (LOCAL_FILTERS) to `listener` too, as they are sent."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self._listeners.append((listener, loop))

    # ------------------------------------------------------------------------------ messages

    def agent_state(self, agent: Agent, *, wrap_up_s: float) -> None:
        """After the state is in the database."""
        self._send(topics.agent_state_topic(agent.agent_id), topics.AGENT_STATE,
                   topics.agent_state_payload(
                       agent_id=agent.agent_id, seat=agent.seat, state=str(agent.state),
                       reason=agent.reason, since=agent.state_since, call_id=agent.call_id,
                       wrap_up_s=wrap_up_s),
                   local=("agent_state", agent.agent_id))

    def screen_pop(self, agent_id: str, pop: Mapping[str, Any], *, seat: str, attempt: int,
                   skill: str | None = None, callback: bool = False) -> None:
        """As the seat rings: `pop` is cti.db.screen_pop's document."""
        self._send(topics.screen_pop_topic(agent_id), topics.SCREEN_POP,
                   topics.screen_pop_payload(pop, seat=seat, skill=skill, attempt=attempt,
                                             callback=callback),
                   local=("pop", agent_id))

    def call_event(self, call_id: str, event: str, *, at: float, agent_id: str | None = None,
                   seat: str | None = None, skill: str | None = None, reason: str | None = None,
                   detail: Mapping[str, Any] | None = None) -> None:
        self._send(topics.call_events_topic(call_id), topics.CALL_EVENT,
                   topics.call_event_payload(call_id=call_id, event=event, at=_utc(at),
                                             skill=skill, agent_id=agent_id, seat=seat,
                                             reason=reason, detail=detail),
                   local=("call_event", call_id))

    def queue_stats(self, q: QueueStats, *, at: float) -> None:
        self._send(topics.queue_stats_topic(q.skill), topics.QUEUE_STATS,
                   topics.queue_stats_payload(
                       skill=q.skill, waiting=q.waiting, longest_wait_s=q.longest_wait_s,
                       service_level=q.service_level, answered=q.answered,
                       abandoned=q.abandoned, agents=q.agents, aht_s=q.aht_s, at=_utc(at)),
                   local=("queue_stats", q.skill))

    def reply(self, kind: str, user_id: str, doc: Mapping[str, Any]) -> None:
        """A command's reply (callcenter.agent_commands), to hotline/{kind}/{user_id}/reply."""
        self._send(topics.reply_topic(kind, user_id), topics.REPLY, doc)

    def supervision(self, session_id: str, doc: Mapping[str, Any]) -> None:
        """A supervision event (recorder.supervision), after its audit row is committed."""
        self._send(topics.supervision_topic(session_id), topics.SUPERVISION, doc)

    def work_order_alert(self, session: Session, alert: WorkOrderAlert) -> None:
        """An SLA threshold crossed or an urge (workorders.service), to the supervisors: held
        until `session` commits, dropped if it rolls back (publish after commit)."""
        if self.outbox is None:
            return
        payload = topics.work_order_alert_payload(
            kind=alert.kind, level=alert.level, number=alert.number,
            order_type=alert.order_type, status=alert.status, department=alert.department,
            area=alert.area, caller_number=alert.caller_number, account_no=alert.account_no,
            clock=alert.clock, percent=alert.percent, started_at=alert.started_at,
            due_at=alert.due_at, crossed_at=alert.crossed_at, urge_count=alert.urge_count,
            note=alert.note, at=alert.at)
        self.outbox.add(session, SUPERVISOR_ALERTS_TOPIC, payload, qos=topics.ALERT.qos,
                        retain=topics.ALERT.retain)

    def outages_changed(self, session: Session, *, version: int, active: int, suspected: int,
                        changed_id: int | None, action: str | None, at: datetime) -> None:
        """An outage notice changed (callcenter.outage_service): after `session` commits."""
        if self.outbox is None:
            return
        self.outbox.add(session, topics.OUTAGES_TOPIC, topics.outages_payload(
            version=version, active=active, suspected=suspected, changed_id=changed_id,
            action=action, at=at), qos=topics.OUTAGES.qos, retain=topics.OUTAGES.retain)

    def outage_alert(self, session: Session, *, level: str, outage_id: int, scope: str,
                     area_id: int, area: str | None, feeder_id: int | None, feeder: str | None,
                     transformer_area: str | None, reports: int, window_min: float,
                     master_number: str, first_report_at: datetime, at: datetime) -> None:
        """Incident detection opened a suspected outage (callcenter.outage_service), to the
        supervisors: held until `session` commits, dropped if it rolls back."""
        if self.outbox is None:
            return
        payload = topics.outage_alert_payload(
            level=level, outage_id=outage_id, scope=scope, area_id=area_id, area=area,
            feeder_id=feeder_id, feeder=feeder, transformer_area=transformer_area,
            reports=reports, window_min=window_min, master_number=master_number,
            first_report_at=first_report_at, at=at)
        self.outbox.add(session, SUPERVISOR_ALERTS_TOPIC, payload, qos=topics.ALERT.qos,
                        retain=topics.ALERT.retain)

    def storm_changed(self, session: Session, *, on: bool, since: datetime | None,
                      by: str | None, trigger: str | None, at: datetime) -> None:
        """Storm mode switched (callcenter.outage_service): after `session` commits."""
        if self.outbox is None:
            return
        self.outbox.add(session, topics.STORM_TOPIC, topics.storm_payload(
            on=on, since=since, by=by, trigger=trigger, at=at),
            qos=topics.STORM.qos, retain=topics.STORM.retain)

    def recording_disk(self, *, full: bool, free_bytes: int, min_free_bytes: int,
                       at: datetime) -> None:
        """The recordings disk became full, or has room again (recorder.service)."""
        self._send(SUPERVISOR_ALERTS_TOPIC, topics.ALERT, topics.recording_disk_alert_payload(
            full=full, free_bytes=free_bytes, min_free_bytes=min_free_bytes, at=at))

    def unrecorded_leg(self, leg: UnrecordedLeg, *, at: datetime) -> None:
        """An answered leg without a whole recording (recorder.service), after its reason is
        in the unrecorded log."""
        self._send(SUPERVISOR_ALERTS_TOPIC, topics.ALERT, topics.unrecorded_leg_alert_payload(
            call_id=leg.call_id, leg=leg.leg_id, seat=leg.seat, file=leg.rel_path,
            reason=leg.reason, detail=leg.detail, at=at))

    def keyword_alert(self, session: Session, alert: NewAlert) -> None:
        """A transcript held alert keywords (callcenter.transcription): to the supervisors,
        held until `session` (which wrote the alert row) commits, dropped if it rolls back."""
        if self.outbox is None:
            return
        self.outbox.add(session, SUPERVISOR_ALERTS_TOPIC, topics.keyword_alert_payload(
            alert_id=alert.alert_id, recording_id=alert.recording_id, call_id=alert.call_id,
            seat=alert.seat, agent_id=alert.agent_id, caller_number=alert.caller_number,
            keywords=alert.keywords, excerpt=alert.excerpt, at=alert.at),
            qos=topics.ALERT.qos, retain=topics.ALERT.retain)

    def subscribe_commands(self, bus: Any, handler: Callable[[str, bytes], Any]) -> None:
        """The agents' and supervisors' command topics (hotline/cmd/{kind}/{id})."""
        bus.subscribe(ALL_COMMANDS, handler)

    # ------------------------------------------------------------------------------- sending

    def _send(self, topic: str, delivery: Delivery, payload: Mapping[str, Any], *,
              local: tuple[str, str | None] | None = None) -> None:
        data = encode_payload(payload)
        self.sent += 1
        # in-process first: a listener only queues it, and the bus only queues it too
        if local is not None and self._listeners:
            self._deliver(Message(topic, local[0], local[1], json.loads(data), delivery.retain))
        if self.bus is not None:
            self.bus.publish(topic, data, qos=delivery.qos, retain=delivery.retain)

    def _deliver(self, msg: Message) -> None:
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for listener, loop in self._listeners:
            try:
                if loop is None or loop is here:
                    listener(msg)
                elif not loop.is_closed():
                    loop.call_soon_threadsafe(listener, msg)
            except Exception:  # a broken listener must not cost the MQTT message
                log.exception("notifier: listener failed on %s", msg.topic)
