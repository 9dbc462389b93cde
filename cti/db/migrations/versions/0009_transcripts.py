"""Post-call transcription (issue 13): the job table (one job per recording, resumable after a
restart), the transcripts with word timings, and the keyword alerts they raised.

Transcript text is searched with LIKE (a substring search): no index that both SQLite and
PostgreSQL have serves it, so none is made for the text.

Revision ID: 0009_transcripts
Revises: 0008_outage_notices
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_transcripts"
down_revision: str | Sequence[str] | None = "0008_outage_notices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the values when this revision was written (cti.db.models_transcripts)
_JOB_STATES = ("queued", "running", "done", "failed")
_ALERT_STATUSES = ("open", "order_created", "dismissed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _recording_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"], ondelete="CASCADE",
                                   name=op.f(f"fk_{table}_recording_id_recordings"))


def upgrade() -> None:
    op.create_table(
        "transcription_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("lang", sa.String(length=8), nullable=True),
        sa.Column("queued_at", _utc(), nullable=False),
        sa.Column("started_at", _utc(), nullable=True),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.CheckConstraint(_in("state", _JOB_STATES), name=op.f("ck_transcription_jobs_state")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_transcription_jobs_attempts")),
        _recording_fk("transcription_jobs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcription_jobs")),
        sa.UniqueConstraint("recording_id", name=op.f("uq_transcription_jobs_recording_id")),
    )
    op.create_index(op.f("ix_transcription_jobs_state_queued_at"), "transcription_jobs",
                    ["state", "queued_at"])

    op.create_table(
        "transcripts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        _recording_fk("transcripts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcripts")),
        sa.UniqueConstraint("recording_id", name=op.f("uq_transcripts_recording_id")),
    )
    op.create_index(op.f("ix_transcripts_created_at"), "transcripts", ["created_at"])

    op.create_table(
        "keyword_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("seat", sa.String(length=16), nullable=True),
        sa.Column("agent_id", sa.String(length=16), nullable=True),
        sa.Column("caller_number", sa.String(length=32), nullable=True),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=False),
        sa.Column("raised_at", _utc(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("work_order_number", sa.String(length=11), nullable=True),
        sa.Column("handled_by", sa.String(length=64), nullable=True),
        sa.Column("handled_at", _utc(), nullable=True),
        sa.CheckConstraint(_in("status", _ALERT_STATUSES),
                           name=op.f("ck_keyword_alerts_status")),
        _recording_fk("keyword_alerts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_keyword_alerts")),
        sa.UniqueConstraint("recording_id", name=op.f("uq_keyword_alerts_recording_id")),
    )
    op.create_index(op.f("ix_keyword_alerts_call_id"), "keyword_alerts", ["call_id"])
    op.create_index(op.f("ix_keyword_alerts_status_raised_at"), "keyword_alerts",
                    ["status", "raised_at"])


def downgrade() -> None:
    op.drop_table("keyword_alerts")
    op.drop_table("transcripts")
    op.drop_table("transcription_jobs")
