"""Supervision: listen/whisper/barge sessions and refusals (who, whom, call, mode, times).

Revision ID: 0003_supervision
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_supervision"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    # cti.db.models.UTCDateTime only converts values in Python; the column itself is this.
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "supervision_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("supervisor_id", sa.String(length=16), nullable=False),
        sa.Column("supervisor_role", sa.String(length=16), nullable=False),
        sa.Column("endpoint", sa.String(length=16), nullable=True),
        sa.Column("call_id", sa.String(length=64), nullable=True),
        sa.Column("agent_id", sa.String(length=16), nullable=True),
        sa.Column("seat", sa.String(length=16), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=True),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("refusal", sa.String(length=32), nullable=True),
        sa.Column("via", sa.String(length=8), nullable=False),
        sa.Column("requested_at", _utc(), nullable=False),
        sa.Column("answered_at", _utc(), nullable=True),
        sa.Column("ended_at", _utc(), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.CheckConstraint("outcome IN ('allowed', 'refused')",
                           name=op.f("ck_supervision_sessions_outcome")),
        sa.CheckConstraint("outcome = 'allowed' OR refusal IS NOT NULL",
                           name=op.f("ck_supervision_sessions_refusal_reason")),
        sa.CheckConstraint("ended_at IS NULL OR ended_at >= requested_at",
                           name=op.f("ck_supervision_sessions_window")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supervision_sessions")),
        sa.UniqueConstraint("session_id", name=op.f("uq_supervision_sessions_session_id")),
    )
    op.create_index(op.f("ix_supervision_sessions_call_id"), "supervision_sessions",
                    ["call_id"])
    op.create_index(op.f("ix_supervision_sessions_requested_at"), "supervision_sessions",
                    ["requested_at"])
    op.create_index(op.f("ix_supervision_sessions_supervisor_id_requested_at"),
                    "supervision_sessions", ["supervisor_id", "requested_at"])
    op.create_index(op.f("ix_supervision_sessions_agent_id_requested_at"),
                    "supervision_sessions", ["agent_id", "requested_at"])

    op.create_table(
        "supervision_modes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("ended_at", _utc(), nullable=True),
        sa.CheckConstraint("mode IN ('listen', 'whisper', 'barge')",
                           name=op.f("ck_supervision_modes_mode")),
        sa.CheckConstraint("ended_at IS NULL OR ended_at >= started_at",
                           name=op.f("ck_supervision_modes_window")),
        sa.ForeignKeyConstraint(["session_id"], ["supervision_sessions.session_id"],
                                name=op.f("fk_supervision_modes_session_id_supervision_sessions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supervision_modes")),
    )
    op.create_index(op.f("ix_supervision_modes_session_id"), "supervision_modes",
                    ["session_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_supervision_modes_session_id"), table_name="supervision_modes")
    op.drop_table("supervision_modes")
    op.drop_index(op.f("ix_supervision_sessions_agent_id_requested_at"),
                  table_name="supervision_sessions")
    op.drop_index(op.f("ix_supervision_sessions_supervisor_id_requested_at"),
                  table_name="supervision_sessions")
    op.drop_index(op.f("ix_supervision_sessions_requested_at"),
                  table_name="supervision_sessions")
    op.drop_index(op.f("ix_supervision_sessions_call_id"), table_name="supervision_sessions")
    op.drop_table("supervision_sessions")
