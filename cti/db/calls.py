"""Call records: one row per Asterisk Linkedid, written idempotently as the call progresses."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from cti.db.models import (
    CALL_END_REASONS,
    CALL_OUTCOMES,
    SATISFACTION_MAX,
    SATISFACTION_MIN,
    Call,
    CallHold,
)
from cti.db.upsert import insert_on_conflict

logger = logging.getLogger(__name__)

# record_pbx_cut: how much earlier than `lost_at` (Asterisk's first shutdown hangup, or the
# lost connection) the IVR may have written the end of a call the shutdown hung up (its AGI
# hears the hangup by another path); a call ended normally that close before is counted too
PBX_CUT_GRACE_S = 0.5


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


# calls.dnis of an agent's click-to-call (拨打客户): an outbound call, whose caller_number is
# the customer's number (so it is in the caller's history like their own calls)
CLICK_TO_CALL_DNIS = "click-to-call"


def record_call_placed(session: Session, *, call_id: str, agent_id: str, seat: str,
                       number: str, now: datetime) -> None:
    """An agent's click-to-call, recorded at the click: who placed it, from which seat, to
    which number (`answered_at` is written when the agent's seat answers, as for any call).
    A repeat for the same call_id is a no-op."""
    _require_aware(now)
    session.execute(insert_on_conflict(session, Call).values(
        call_id=call_id, uniqueid=call_id, caller_number=number[:32], dnis=CLICK_TO_CALL_DNIS,
        started_at=now.astimezone(UTC), agent_id=agent_id, seat=seat,
        ivr_path=[{"step": "click_to_call", "agent_id": agent_id}],
    ).on_conflict_do_nothing(index_elements=[Call.call_id]))
    logger.info("click-to-call recorded call_id=%s agent_id=%s", call_id, agent_id)


# calls.dnis of an after-hours callback's call (issue 15 §3, callcenter/callbacks.py): one we
# placed to a customer who booked it; like an inbound call it is queued, answered and reported
# under its skill
CALLBACK_DNIS = "callback"


def record_callback_answered(session: Session, *, call_id: str, number: str, skill: str,
                             priority: int, language: str, job_id: int, now: datetime) -> None:
    """The customer answered their callback (the outbound attempt's channel `call_id`): the
    call's record, as the IVR leaves a transferred call's, before the customer is queued. The
    ACD may have made the record first from its queue event (a slow database): then this fills
    in what that could not know. A repeat is a no-op."""
    _require_aware(now)
    path = [{"node": "callback", "job": job_id, "skill": skill}]
    session.execute(insert_on_conflict(session, Call).values(
        call_id=call_id, uniqueid=call_id, caller_number=number[:32], dnis=CALLBACK_DNIS,
        started_at=now.astimezone(UTC), ivr_path=path, outcome="transfer", language=language,
        skill=skill, priority=priority,
    ).on_conflict_do_nothing(index_elements=[Call.call_id]))
    call = _locked_call(session, call_id)
    if call is not None and call.dnis == "" and call.outcome is None:
        call.dnis, call.ivr_path, call.outcome = CALLBACK_DNIS, path, "transfer"
        call.language, call.skill, call.priority = language, skill, priority
        session.flush()
    logger.info("callback answered call_id=%s job=%s skill=%s", call_id, job_id, skill)


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
    outage_ids: Sequence[int] | None = None,
) -> None:
    """Close the call record; a repeat for an already ended call is a no-op.

    Optional fields left as None keep whatever the record already has. `outage_ids`: the
    outage notices the caller was told (outcome 'deflected': they hung up in its window).
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
    if outage_ids is not None:
        call.outage_ids = [int(i) for i in outage_ids]
    session.flush()
    logger.info("call ended call_id=%s outcome=%s skill=%s", call_id, outcome, skill)


def record_survey(session: Session, call_id: str, *, at: datetime,
                  agent_id: str | None, skill: str, score: int | None = None) -> bool:
    """The post-call survey on the call record: offered at `at` (score None), then the caller's
    score 1-5 (or None: no valid key). What the first write set stays (the time it was offered,
    its agent and skill, the first score): a repeat (Asterisk's duplicate events, a journal
    replay) changes nothing, and a score that comes without its offer (that write lost) fills
    those in. Returns whether the record changed; False for an unknown call (logged)."""
    _require_aware(at)
    if score is not None and not SATISFACTION_MIN <= score <= SATISFACTION_MAX:
        raise ValueError(f"score must be {SATISFACTION_MIN}..{SATISFACTION_MAX}, got {score!r}")
    call = _locked_call(session, call_id)
    if call is None:
        logger.warning("survey for unknown call call_id=%s", call_id)
        return False
    changed = False
    if call.survey_at is None:
        call.survey_at = at.astimezone(UTC)
        # no agent known at the seat (gone already, or a note read after a CTI restart): the
        # agent the call record names, who had the call last
        call.survey_agent_id = agent_id if agent_id is not None else call.agent_id
        call.survey_skill = skill
        changed = True
    if score is not None and call.satisfaction is None:
        call.satisfaction = score
        changed = True
    if changed:
        session.flush()
        logger.info("call survey call_id=%s agent_id=%s skill=%s score=%s", call_id,
                    call.survey_agent_id, call.survey_skill, call.satisfaction)
    return changed


def record_callback_requested(session: Session, call_id: str, *, now: datetime) -> bool:
    """A waiting caller asked to be called back (the ACD took the request): when, on the call
    record; the first time wins (a repeat, a journal replay). The caller's own leg ends next,
    the record does not: the callback's answer and end complete it. Returns whether the
    record changed; False for an unknown call (logged)."""
    _require_aware(now)
    call = _locked_call(session, call_id)
    if call is None:
        logger.warning("callback requested for unknown call call_id=%s", call_id)
        return False
    if call.callback_requested_at is not None:
        return False
    call.callback_requested_at = now.astimezone(UTC)
    session.flush()
    logger.info("callback requested call_id=%s", call_id)
    return True


def record_hold(session: Session, call_id: str, *, started_at: datetime,
                ended_at: datetime) -> bool:
    """One time the caller was on hold, from `started_at` to `ended_at`. Keyed by call and
    start: a repeat (a journal replay) adds nothing. A hold of an unknown call is kept all the
    same (its record may come later from a slow writer); the reports read holds by the calls
    they count. Returns whether it was new."""
    _require_aware(started_at)
    _require_aware(ended_at)
    if ended_at < started_at:
        raise ValueError(f"a hold cannot end ({ended_at}) before it starts ({started_at})")
    result = session.execute(insert_on_conflict(session, CallHold).values(
        call_id=call_id, started_at=started_at.astimezone(UTC),
        ended_at=ended_at.astimezone(UTC),
    ).on_conflict_do_nothing(index_elements=[CallHold.call_id, CallHold.started_at])
        .returning(CallHold.call_id))
    new = result.first() is not None
    if new:
        logger.info("call hold call_id=%s %.1f s", call_id,
                    (ended_at - started_at).total_seconds())
    return new


def record_pbx_cut(session: Session, *, reason: str, lost_at: datetime,
                   grace_s: float = PBX_CUT_GRACE_S) -> list[str]:
    """Asterisk restarted (or was lost and came back) and every call it held died with it:
    give those calls' records their end and `reason` (CALL_END_REASONS); the call_ids marked.

    Those calls are the ones started before Asterisk began to go away (`lost_at`: its first
    shutdown hangup, or the lost connection) whose record is still open, or was closed by the
    shutdown itself: Asterisk hangs its channels up as it goes (`core restart now`), and the
    IVR and the ACD write those ends as for any hangup (from `lost_at - grace_s` on). An open
    record ends at `lost_at`, with the outcome it has, or 'hangup' if the IVR never wrote one.
    A call whose record already has a reason is left alone, so a repeat is a no-op."""
    _require_aware(lost_at)
    if reason not in CALL_END_REASONS:
        raise ValueError(f"reason must be one of {CALL_END_REASONS}, got {reason!r}")
    at = lost_at.astimezone(UTC)
    since = at - timedelta(seconds=grace_s)
    calls = session.scalars(
        select(Call).where(Call.started_at <= at, Call.end_reason.is_(None),
                           or_(Call.ended_at.is_(None), Call.ended_at >= since))
        .with_for_update()).all()
    for call in calls:
        if call.ended_at is None:
            call.ended_at = at
            call.outcome = call.outcome or "hangup"
        call.end_reason = reason
    session.flush()
    ids = [c.call_id for c in calls]
    logger.info("calls cut by the PBX (%s at %s): %d", reason, at.isoformat(), len(ids))
    return ids


def pbx_cut_writer(sessions: sessionmaker[Session]
                   ) -> Callable[[str, float], Awaitable[list[str]]]:
    """record_pbx_cut as the CTI's resync calls it: (reason, lost_at epoch s), in a thread."""
    async def write(reason: str, lost_at: float) -> list[str]:
        def work() -> list[str]:
            with sessions.begin() as s:
                return record_pbx_cut(s, reason=reason,
                                      lost_at=datetime.fromtimestamp(lost_at, UTC))
        return await asyncio.to_thread(work)
    return write
