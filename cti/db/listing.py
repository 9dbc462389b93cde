"""JSON-ready listings of recent calls and work orders, for the CLI."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cti.db.jsonready import json_ready
from cti.db.models import Call

logger = logging.getLogger(__name__)


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")


def _wait_s(c: Call) -> float | None:
    """From queueing to the answer (or to the end, for a caller who gave up)."""
    until = c.answered_at or c.ended_at
    if c.queued_at is None or until is None:
        return None
    return (until - c.queued_at).total_seconds()


def list_calls(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    """The newest calls first."""
    _check_limit(limit)
    calls = session.scalars(
        select(Call).order_by(Call.started_at.desc(), Call.id.desc()).limit(limit))
    return [
        json_ready({
            "call_id": c.call_id,
            "uniqueid": c.uniqueid,
            "caller_number": c.caller_number,
            "dnis": c.dnis,
            "language": c.language,
            "started_at": c.started_at,
            "ended_at": c.ended_at,
            "duration_s": (c.ended_at - c.started_at).total_seconds() if c.ended_at else None,
            "outcome": c.outcome,
            "account_no": c.account_no,
            "skill": c.skill,
            "priority": c.priority,
            "queued_at": c.queued_at,
            "answered_at": c.answered_at,
            "wait_s": _wait_s(c),
            "agent_id": c.agent_id,
            "seat": c.seat,
            "ivr_path": c.ivr_path,
        })
        for c in calls
    ]
