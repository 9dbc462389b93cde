"""Recorder: the recording index, retention deletions, and a general audit log.

Revision ID: 0003_recordings
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_recordings"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    # cti.db.models.UTCDateTime only converts values in Python; the column itself is this.
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("leg_id", sa.String(length=64), nullable=False),
        sa.Column("rel_path", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("seat", sa.String(length=16), nullable=True),
        sa.Column("agent_id", sa.String(length=16), nullable=True),
        sa.Column("queue", sa.String(length=32), nullable=True),
        sa.Column("caller_number", sa.String(length=32), nullable=True),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("indexed_at", _utc(), nullable=False),
        sa.Column("indexed_by", sa.String(length=16), nullable=False),
        sa.Column("deleted_at", _utc(), nullable=True),
        sa.CheckConstraint("kind IN ('agent', 'ivr')", name=op.f("ck_recordings_kind")),
        sa.CheckConstraint("indexed_by IN ('event', 'reconcile')",
                           name=op.f("ck_recordings_indexed_by")),
        sa.CheckConstraint("size_bytes >= 0 AND duration_s >= 0",
                           name=op.f("ck_recordings_sizes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.UniqueConstraint("rel_path", name=op.f("uq_recordings_rel_path")),
    )
    op.create_index(op.f("ix_recordings_call_id"), "recordings", ["call_id"])
    op.create_index(op.f("ix_recordings_started_at"), "recordings", ["started_at"])
    op.create_index(op.f("ix_recordings_agent_id_started_at"), "recordings",
                    ["agent_id", "started_at"])
    op.create_index(op.f("ix_recordings_caller_number"), "recordings", ["caller_number"])

    op.create_table(
        "recording_deletions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("rel_path", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=24), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("deleted_at", _utc(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_deletions")),
    )
    op.create_index(op.f("ix_recording_deletions_recording_id"), "recording_deletions",
                    ["recording_id"])
    op.create_index(op.f("ix_recording_deletions_deleted_at"), "recording_deletions",
                    ["deleted_at"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=True),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"])
    op.create_index(op.f("ix_audit_log_actor_at"), "audit_log", ["actor", "at"])
    op.create_index(op.f("ix_audit_log_target"), "audit_log", ["target"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("recording_deletions")
    op.drop_table("recordings")
