"""ORM classes of the outbound engine (migration 0010_outbound, issue 14): one job per customer
and purpose (the resumable queue a restart picks up exactly where it was), each attempt with
its outcome, causes and duration, and the do-not-call list.

The rules (which state follows which, when to try again) are outbound.jobs' and
outbound.retry's: this layer stores what they decide. An attempt row is committed in state
`dialing` before its Originate is sent, with the ChannelId it is dialled on (an Asterisk
Uniqueid carrying the attempt, callcenter.outbound_service.channel_id; also the call's
Linkedid), so a restart can ask Asterisk whether it is still on a live channel.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cti.db.models import Base

# outbound.jobs.State and outbound.outcome.Outcome (a unit test keeps them in step; the
# database layer does not import the domain)
JOB_STATES: tuple[str, ...] = ("scheduled", "dialing", "done", "handed_over", "gave_up",
                               "blocked", "expired", "cancelled")
OUTCOMES: tuple[str, ...] = ("answered", "no_answer", "busy", "rejected", "invalid_number",
                             "failed", "unknown")


def _in(column: str, values: tuple[str, ...], *, nullable: bool = False) -> str:
    inside = f"{column} IN ({', '.join(repr(v) for v in values)})"
    return f"{column} IS NULL OR {inside}" if nullable else inside


class OutboundJob(Base):
    """A customer to call for one purpose (return_visit, outage_notice, ...)."""

    __tablename__ = "outbound_jobs"
    __table_args__ = (
        CheckConstraint(_in("state", JOB_STATES), name="state"),
        CheckConstraint(_in("last_outcome", OUTCOMES, nullable=True), name="last_outcome"),
        CheckConstraint("attempts >= 0", name="attempts"),
        # the scheduler reads the scheduled jobs that are due
        Index(None, "state", "not_before"),
        # a planned outage's notice: one job per account, number and lead (migration
        # 0012_outage_notice_calls), so the notice scheduler never makes a second
        Index(None, "outage_id", "account_no", "number", "lead_days", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(24), index=True)
    number: Mapped[str] = mapped_column(String(32))        # national form (outbound.dnc)
    state: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer)
    not_before: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    lang: Mapped[str] = mapped_column(String(8))
    # what the call is about: the work order of a return visit, the notice of an outage
    work_order_number: Mapped[str | None] = mapped_column(String(32), index=True)
    outage_id: Mapped[int | None] = mapped_column(Integer)
    account_no: Mapped[str | None] = mapped_column(String(32))
    # an outage notice's lead (7: the call a week before the outage starts); null otherwise
    lead_days: Mapped[int | None] = mapped_column(Integer)
    # the skill whose agents take the call: an after-hours callback's (migration 0019); null
    # for a purpose that reaches no queue
    skill: Mapped[str | None] = mapped_column(String(32))
    # the purpose's own result (a survey's key, a notice heard to the end), when done
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column()


class OutboundAttempt(Base):
    """One dial of a job: written before its Originate, finished by what Asterisk said."""

    __tablename__ = "outbound_attempts"
    __table_args__ = (
        CheckConstraint(_in("outcome", OUTCOMES, nullable=True), name="outcome"),
        CheckConstraint("n >= 1", name="n"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("outbound_jobs.id", ondelete="CASCADE"),
                                        index=True)
    n: Mapped[int] = mapped_column(Integer)                  # 1 for the job's first attempt
    started_at: Mapped[datetime] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column(index=True)   # null: still open
    outcome: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[int | None] = mapped_column(Integer)      # OriginateResponse Reason
    cause: Mapped[int | None] = mapped_column(Integer)       # Q.850, from the Hangup
    sip_cause: Mapped[int | None] = mapped_column(Integer)   # the SIP final response, if known
    duration_s: Mapped[float | None] = mapped_column(Float)
    linkedid: Mapped[str | None] = mapped_column(String(64))  # its ChannelId: the call's id


class DoNotCall(Base):
    """A number the hotline never calls, whatever the purpose (national form)."""

    __tablename__ = "do_not_call"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(String(200))
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column()
