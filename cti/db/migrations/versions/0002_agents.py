"""Agents: accounts, logins, state audit log, ACD snapshot; ACD columns on calls; caller index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AGENT_STATES = "state IN ('ready', 'not_ready', 'reserved', 'on_call', 'wrap_up')"
LOGGED_STATES = "state IN ('ready', 'not_ready', 'reserved', 'on_call', 'wrap_up', 'logged_out')"
OPEN_SESSION = "logout_at IS NULL"


def _utc() -> sa.DateTime:
    # cti.db.models.UTCDateTime only converts values in Python; the column itself is this.
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.CheckConstraint(
            "role IN ('agent', 'supervisor', 'admin')", name=op.f("ck_agents_role"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("agent_id", name=op.f("uq_agents_agent_id")),
    )

    op.create_table(
        "agent_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=16), nullable=False),
        sa.Column("seat", sa.String(length=16), nullable=False),
        sa.Column("login_at", _utc(), nullable=False),
        sa.Column("logout_at", _utc(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("state_since", _utc(), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=True),
        sa.CheckConstraint(AGENT_STATES, name=op.f("ck_agent_sessions_state")),
        sa.CheckConstraint(
            "logout_at IS NULL OR logout_at >= login_at", name=op.f("ck_agent_sessions_window"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.agent_id"],
            name=op.f("fk_agent_sessions_agent_id_agents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_sessions")),
    )
    op.create_index(
        op.f("ix_agent_sessions_agent_id_login_at"), "agent_sessions", ["agent_id", "login_at"],
    )
    # Partial unique indexes: at most one open session per agent and per seat.
    op.create_index(
        "uq_agent_sessions_open_agent", "agent_sessions", ["agent_id"], unique=True,
        sqlite_where=sa.text(OPEN_SESSION), postgresql_where=sa.text(OPEN_SESSION),
    )
    op.create_index(
        "uq_agent_sessions_open_seat", "agent_sessions", ["seat"], unique=True,
        sqlite_where=sa.text(OPEN_SESSION), postgresql_where=sa.text(OPEN_SESSION),
    )

    op.create_table(
        "agent_state_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=16), nullable=False),
        sa.Column("seat", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.CheckConstraint(LOGGED_STATES, name=op.f("ck_agent_state_log_state")),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.agent_id"],
            name=op.f("fk_agent_state_log_agent_id_agents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_state_log")),
    )
    op.create_index(
        op.f("ix_agent_state_log_agent_id_at"), "agent_state_log", ["agent_id", "at"],
    )
    op.create_index(op.f("ix_agent_state_log_at"), "agent_state_log", ["at"])

    op.create_table(
        "acd_snapshots",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("saved_at", _utc(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_acd_snapshots_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acd_snapshots")),
    )

    # The screen-pop finds a caller's open work orders by number on every call.
    op.create_index("ix_work_orders_caller_number", "work_orders", ["caller_number"])

    # Nullable columns only, so SQLite adds them with ALTER TABLE and no table copy.
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("queued_at", _utc(), nullable=True))
        batch.add_column(sa.Column("answered_at", _utc(), nullable=True))
        batch.add_column(sa.Column("agent_id", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("seat", sa.String(length=16), nullable=True))
        batch.create_index(batch.f("ix_calls_agent_id"), ["agent_id"])


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_index(batch.f("ix_calls_agent_id"))
        batch.drop_column("seat")
        batch.drop_column("agent_id")
        batch.drop_column("answered_at")
        batch.drop_column("queued_at")
    op.drop_index("ix_work_orders_caller_number", table_name="work_orders")
    # Indexes go with their tables.
    for table in ("acd_snapshots", "agent_state_log", "agent_sessions", "agents"):
        op.drop_table(table)
