"""workorders.ticker: the escalation task calls the tick on schedule and survives failures."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from workorders.ticker import escalation_ticks

DUE = datetime(2026, 11, 27, 3, 15, tzinfo=UTC)


async def test_ticks_run_in_a_worker_thread_and_a_failure_is_retried(
        caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def tick() -> list[dict[str, Any]]:
        calls.append(threading.current_thread().name)
        if len(calls) == 2:
            raise RuntimeError("database gone")
        return [{"level": "warning", "number": "26112700001", "clock": "arrival",
                 "percent": 80, "due_at": DUE}] if len(calls) == 1 else []

    with caplog.at_level(logging.WARNING, logger="workorders.ticker"):
        await escalation_ticks(tick, 0.001, ticks=3)
    assert len(calls) == 3
    assert threading.main_thread().name not in calls  # never on the event loop's thread
    text = caplog.text
    assert "SLA warning: work order 26112700001 arrival 80%" in text
    assert "escalation tick failed" in text and "database gone" in text
