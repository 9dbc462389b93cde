"""workorders.ticker: the escalation task calls the tick on schedule and survives failures."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import pytest

from workorders.service import WorkOrderAlert
from workorders.ticker import escalation_ticks

DUE = datetime(2026, 11, 27, 3, 15, tzinfo=UTC)


async def test_ticks_run_in_a_worker_thread_and_a_failure_is_retried(
        caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def tick() -> list[WorkOrderAlert]:
        calls.append(threading.current_thread().name)
        if len(calls) == 2:
            raise RuntimeError("database gone")
        return [WorkOrderAlert(
            kind="sla", level="warning", number="26112700001", order_type="fault_repair",
            status="dispatched", department="repair", area=None, caller_number=None,
            account_no=None, clock="arrival", percent=80, started_at=None, due_at=DUE,
            crossed_at=DUE, urge_count=0, note=None, at=DUE)] if len(calls) == 1 else []

    with caplog.at_level(logging.WARNING, logger="workorders.ticker"):
        await escalation_ticks(tick, 0.001, ticks=3)
    assert len(calls) == 3
    assert threading.main_thread().name not in calls  # never on the event loop's thread
    text = caplog.text
    assert "SLA warning: work order 26112700001 arrival 80%" in text
    assert "escalation tick failed" in text and "database gone" in text
