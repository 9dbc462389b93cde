"""The outbound engine (issue 14): jobs (one per customer and purpose, resumable after a
restart), their attempts (each written before its Originate: outcome, Originate reason, Q.850
and SIP causes, duration) and the do-not-call list.

Revision ID: 0010_outbound
Revises: 0009_transcripts
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_outbound"
down_revision: str | Sequence[str] | None = "0009_transcripts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the values when this revision was written (cti.db.models_outbound)
_JOB_STATES = ("scheduled", "dialing", "done", "handed_over", "gave_up", "blocked", "expired",
               "cancelled")
_OUTCOMES = ("answered", "no_answer", "busy", "rejected", "invalid_number", "failed",
             "unknown")


def _in(column: str, values: tuple[str, ...], *, nullable: bool = False) -> str:
    inside = f"{column} IN ({', '.join(repr(v) for v in values)})"
    return f"{column} IS NULL OR {inside}" if nullable else inside


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbound_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=24), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", _utc(), nullable=True),
        sa.Column("expires_at", _utc(), nullable=True),
        sa.Column("last_outcome", sa.String(length=16), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("work_order_number", sa.String(length=32), nullable=True),
        sa.Column("outage_id", sa.Integer(), nullable=True),
        sa.Column("account_no", sa.String(length=32), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint(_in("state", _JOB_STATES), name=op.f("ck_outbound_jobs_state")),
        sa.CheckConstraint(_in("last_outcome", _OUTCOMES, nullable=True),
                           name=op.f("ck_outbound_jobs_last_outcome")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_outbound_jobs_attempts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_jobs")),
    )
    op.create_index(op.f("ix_outbound_jobs_purpose"), "outbound_jobs", ["purpose"])
    op.create_index(op.f("ix_outbound_jobs_state_not_before"), "outbound_jobs",
                    ["state", "not_before"])
    op.create_index(op.f("ix_outbound_jobs_work_order_number"), "outbound_jobs",
                    ["work_order_number"])

    op.create_table(
        "outbound_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("answered_at", _utc(), nullable=True),
        sa.Column("ended_at", _utc(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Integer(), nullable=True),
        sa.Column("cause", sa.Integer(), nullable=True),
        sa.Column("sip_cause", sa.Integer(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("linkedid", sa.String(length=64), nullable=True),
        sa.CheckConstraint(_in("outcome", _OUTCOMES, nullable=True),
                           name=op.f("ck_outbound_attempts_outcome")),
        sa.CheckConstraint("n >= 1", name=op.f("ck_outbound_attempts_n")),
        sa.ForeignKeyConstraint(["job_id"], ["outbound_jobs.id"], ondelete="CASCADE",
                                name=op.f("fk_outbound_attempts_job_id_outbound_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_attempts")),
    )
    op.create_index(op.f("ix_outbound_attempts_job_id"), "outbound_attempts", ["job_id"])
    op.create_index(op.f("ix_outbound_attempts_ended_at"), "outbound_attempts", ["ended_at"])

    op.create_table(
        "do_not_call",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.Column("added_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_do_not_call")),
    )


def downgrade() -> None:
    op.drop_table("do_not_call")
    op.drop_table("outbound_attempts")
    op.drop_table("outbound_jobs")
