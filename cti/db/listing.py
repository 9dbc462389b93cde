"""JSON-ready listings of recent calls and work orders, for the CLI."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased, selectinload

from cti.db.jsonready import json_ready
from cti.db.models import Account, Area, Call, WorkOrder

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


def list_workorders(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    """The newest work orders first, each with its lifecycle events."""
    _check_limit(limit)
    master = aliased(WorkOrder)
    rows = session.execute(
        select(WorkOrder, Account.account_no, Area.name, master.number)
        .outerjoin(Account, Account.id == WorkOrder.account_id)
        .outerjoin(Area, Area.id == WorkOrder.area_id)
        .outerjoin(master, master.id == WorkOrder.master_id)
        .options(selectinload(WorkOrder.events))
        .order_by(WorkOrder.created_at.desc(), WorkOrder.id.desc())
        .limit(limit)
    ).all()
    return [
        json_ready({
            "number": wo.number,
            "type": wo.type,
            "status": wo.status,
            "caller_number": wo.caller_number,
            "account_no": account_no,
            "area": area_name,
            "description": wo.description,
            "channel": wo.channel,
            "call_id": wo.call_id,
            "created_at": wo.created_at,
            "sla_due_at": wo.sla_due_at,
            "master_number": master_number,
            "events": [
                {"step": e.step, "at": e.at, "actor": e.actor, "note": e.note}
                for e in wo.events
            ],
        })
        for wo, account_no, area_name, master_number in rows
    ]
