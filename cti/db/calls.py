"""Call records: one row per Asterisk Linkedid, written idempotently as the call progresses."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cti.db.models import CALL_OUTCOMES, Call
from cti.db.upsert import insert_on_conflict

logger = logging.getLogger(__name__)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware datetime")


def _locked_call(session: Session, call_id: str) -> Call | None:
    # FOR UPDATE (PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes) so two writers of the
    # same call cannot both read the old ivr_path or both see ended_at null.
    return session.scalars(
        select(Call).where(Call.call_id == call_id).with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def record_call_start(
    session: Session, *, call_id: str, uniqueid: str, caller_number: str, dnis: str,
    now: datetime,
) -> None:
    """Record a new call; a repeat for the same call_id (Asterisk duplicates events) is a no-op."""
    _require_aware(now)
    # ON CONFLICT DO NOTHING rather than check-then-insert: two AGI sessions of one Linkedid may
    # start together, and the loser must not fail with a unique violation.
    stmt = insert_on_conflict(session, Call).values(
        call_id=call_id, uniqueid=uniqueid, caller_number=caller_number, dnis=dnis,
        started_at=now, ivr_path=[],
    ).on_conflict_do_nothing(index_elements=[Call.call_id])
    session.execute(stmt)
    logger.debug("call start recorded call_id=%s uniqueid=%s", call_id, uniqueid)


def record_ivr_step(session: Session, call_id: str, step: Mapping[str, Any]) -> None:
    """Append one IVR step (a JSON object) to the call's ivr_path."""
    # Fail here, at the IVR step that produced it, not at flush time with a vaguer error.
    json.dumps(step)
    call = _locked_call(session, call_id)
    if call is None:
        # The IVR must keep serving the caller; a missing start record is a bug to log, not a
        # reason to drop the call.
        logger.warning("IVR step for unknown call call_id=%s step=%r", call_id, step)
        return
    # Reassign, never append in place: plain JSON columns do not track in-place mutation.
    call.ivr_path = [*call.ivr_path, dict(step)]
    session.flush()


def record_call_end(
    session: Session,
    call_id: str,
    *,
    outcome: str,
    now: datetime,
    language: str | None = None,
    account_no: str | None = None,
    skill: str | None = None,
    priority: int | None = None,
) -> None:
    """Close the call record; a repeat for an already ended call is a no-op.

    Optional fields left as None keep whatever the record already has.
    """
    _require_aware(now)
    if outcome not in CALL_OUTCOMES:
        raise ValueError(f"outcome must be one of {CALL_OUTCOMES}, got {outcome!r}")
    call = _locked_call(session, call_id)
    if call is None:
        logger.warning("call end for unknown call call_id=%s outcome=%s", call_id, outcome)
        return
    if call.ended_at is not None:
        logger.debug("call end repeated call_id=%s", call_id)
        return
    call.ended_at = now.astimezone(UTC)
    call.outcome = outcome
    if language is not None:
        call.language = language
    if account_no is not None:
        call.account_no = account_no
    if skill is not None:
        call.skill = skill
    if priority is not None:
        call.priority = priority
    session.flush()
    logger.info("call ended call_id=%s outcome=%s skill=%s", call_id, outcome, skill)
