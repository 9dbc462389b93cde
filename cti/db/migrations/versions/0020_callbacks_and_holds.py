"""Callbacks and holds in the call record and the workload reports (issue 15 §4: "callbacks"
and "AHT, talk, hold and ACW"): calls.callback_requested_at (a waiting caller asked to be
called back), call_holds (each time a caller was on hold, from Asterisk's music-on-hold events),
and their sums in report_intervals and report_days.

Existing report rows get zeros: `hotline reports rebuild` recounts a range with the new figures
(holds before this revision were never recorded, and stay zero).

Revision ID: 0020_callbacks_and_holds
Revises: 0019_outbound_job_skill
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_callbacks_and_holds"
down_revision: str | Sequence[str] | None = "0019_outbound_job_skill"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = ("callbacks_requested", "callbacks_after_sl", "callbacks_connected", "holds")
_SECONDS = ("hold_s",)
_TABLES = ("report_intervals", "report_days")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("calls", sa.Column("callback_requested_at", _utc(), nullable=True))
    op.create_table(
        "call_holds",
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("ended_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("call_id", "started_at", name=op.f("pk_call_holds")),
    )
    for table in _TABLES:
        # the rows already there get zeros; the models have no server default, so it goes
        with op.batch_alter_table(table) as batch:
            for c in _COUNTS:
                batch.add_column(sa.Column(c, sa.Integer(), nullable=False,
                                           server_default=sa.text("0")))
            for c in _SECONDS:
                batch.add_column(sa.Column(c, sa.Float(), nullable=False,
                                           server_default=sa.text("0")))
        with op.batch_alter_table(table) as batch:
            for c in (*_COUNTS, *_SECONDS):
                batch.alter_column(c, server_default=None)


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            for c in (*_COUNTS, *_SECONDS):
                batch.drop_column(c)
    op.drop_table("call_holds")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("callback_requested_at")
