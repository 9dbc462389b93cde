"""The real CTI's work-order escalation task on SQLite and PostgreSQL: orders whose SLA clock
passed 80% and 100% reach supervisors on hotline/supervisors/alerts, each once, and only after
the mark is committed; a stopped clock never alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cti.db.models import WorkOrder
from cti.db.models_workorders import WorkOrderClock, WorkOrderEscalation
from tests.integration.conftest import Backend, CtiProcess
from tests.support.mqtt import MqttWatcher, Msg
from workorders import service as wo
from workorders.lifecycle import Department, Role, SlaPolicy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ALERTS = "hotline/supervisors/alerts"
AGENT = wo.Actor("A001", Role.AGENT)
CREW = wo.Actor("crew-1", Role.DEPARTMENT, Department.REPAIR)
# the CTI ticks every second in the tests (tests/integration/conftest.py [workorders])
DEADLINE_S = 15


def _order(backend: Backend, minutes_ago: float, caller: str) -> str:
    """An unknown-account repair (urban: 45 min to arrive) accepted minutes_ago."""
    with backend.sessions.begin() as s:
        return wo.create(s, wo.NewOrder(type="fault_repair", description="集成测试停电",
                                        caller_number=caller), AGENT,
                         datetime.now(UTC) - timedelta(minutes=minutes_ago), SlaPolicy()).number


def _alert(mqtt: MqttWatcher, number: str, percent: int, since: int) -> Msg:
    return mqtt.wait_for(lambda m: m.topic == ALERTS and isinstance(m.payload, dict)
                         and m.payload["number"] == number and m.payload["percent"] == percent,
                         DEADLINE_S, f"{percent}% alert for {number}", since=since)


def _alerts_for(mqtt: MqttWatcher, number: str, since: int) -> list[tuple[str, int]]:
    return [(m.payload["level"], m.payload["percent"]) for m in mqtt.messages()[since:]
            if m.topic == ALERTS and isinstance(m.payload, dict)
            and m.payload["number"] == number]


def test_cti_alerts_supervisors_once_per_threshold_after_commit(
        cti: CtiProcess, backend: Backend, mqtt: MqttWatcher) -> None:
    mqtt.cti_online()
    since = mqtt.mark()
    p = backend.prefix
    late = _order(backend, 50, f"{p}0000001")      # past 100%: both thresholds at once
    warned = _order(backend, 40, f"{p}0000002")    # 89%: the warning only
    on_site = _order(backend, 40, f"{p}0000003")   # its crew arrived: the clock stopped
    with backend.sessions.begin() as s:
        for to, actor in [("dispatched", AGENT), ("department_accepted", CREW),
                          ("on_site", CREW)]:
            wo.transition(s, on_site, to, actor, datetime.now(UTC))

    warning = _alert(mqtt, late, 80, since)
    breach = _alert(mqtt, late, 100, since)
    assert (warning.payload["kind"], warning.payload["level"], breach.payload["level"]) == (
        "sla", "warning", "breach")
    assert breach.payload["clock"] == "arrival" and breach.payload["status"] == "accepted"
    assert _alert(mqtt, warned, 80, since).payload["level"] == "warning"
    # published after commit: the marks are in the database once the alerts are out
    with backend.sessions() as s:
        marks = s.execute(
            select(WorkOrder.number, WorkOrderEscalation.percent)
            .join(WorkOrderClock, WorkOrderClock.id == WorkOrderEscalation.clock_id)
            .join(WorkOrder, WorkOrder.id == WorkOrderClock.work_order_id)
            .where(WorkOrder.number.in_([late, warned, on_site]))).all()
    assert sorted(marks) == sorted([(late, 80), (late, 100), (warned, 80)])

    # several ticks later (a newer order's alert has come): nothing was alerted twice, and
    # the stopped clock never alerted
    newest = _order(backend, 44, f"{p}0000004")
    _alert(mqtt, newest, 80, since)
    assert _alerts_for(mqtt, late, since) == [("warning", 80), ("breach", 100)]
    assert _alerts_for(mqtt, warned, since) == [("warning", 80)]
    assert _alerts_for(mqtt, on_site, since) == []
    with backend.sessions() as s:
        history = wo.get(s, late, datetime.now(UTC), SlaPolicy())["events"]
    assert [(e["step"], e["actor"]) for e in history] == [
        ("accepted", "A001"), ("escalated", "system"), ("escalated", "system")]
