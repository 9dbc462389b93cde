"""CLI listings: newest first, JSON-ready."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.orm import Session

from cti.db.calls import record_call_end, record_call_start, record_ivr_step
from cti.db.jsonready import json_ready
from cti.db.listing import list_calls

if TYPE_CHECKING:
    pass

MIN = timedelta(minutes=1)
HALF_MIN = timedelta(seconds=30)


def test_list_calls_newest_first(session: Session, now: datetime) -> None:
    for i in range(3):
        record_call_start(session, call_id=f"c{i}", uniqueid=f"u{i}",
                          caller_number="13800000001", dnis="95598", now=now + i * MIN)
    record_ivr_step(session, "c0", {"node": "welcome"})
    record_call_end(session, "c0", outcome="self_served", now=now + HALF_MIN,
                    language="zh")
    session.commit()
    rows = list_calls(session)
    assert [r["call_id"] for r in rows] == ["c2", "c1", "c0"]
    assert [r["call_id"] for r in list_calls(session, limit=2)] == ["c2", "c1"]
    oldest = rows[-1]
    assert oldest["started_at"] == now.isoformat()
    assert oldest["ended_at"] == (now + HALF_MIN).isoformat()
    assert (oldest["duration_s"], oldest["outcome"], oldest["ivr_path"]) == (
        30.0, "self_served", [{"node": "welcome"}])
    assert json.loads(json.dumps(rows, ensure_ascii=False)) == rows
    assert oldest["queued_at"] is None and oldest["wait_s"] is None  # never reached agents


def test_list_calls_shows_the_agent_side(session: Session, now: datetime) -> None:
    from cti.db.agents import record_call_answered, record_call_queued

    record_call_start(session, call_id="q1", uniqueid="q1", caller_number="13800000002",
                      dnis="95598", now=now)
    record_call_queued(session, "q1", now=now + HALF_MIN)
    record_call_answered(session, "q1", agent_id=None, seat="seat07", now=now + MIN)
    session.commit()
    (row,) = list_calls(session)
    assert (row["queued_at"], row["answered_at"]) == ((now + HALF_MIN).isoformat(),
                                                     (now + MIN).isoformat())
    assert (row["wait_s"], row["seat"]) == (30.0, "seat07")


def test_limit_must_be_positive(session: Session) -> None:
    with pytest.raises(ValueError):
        list_calls(session, limit=0)


def test_decimals_become_strings() -> None:
    assert json_ready({"amount": Decimal("12.30"), "items": [Decimal("0.01")]}) == {
        "amount": "12.30", "items": ["0.01"]}
