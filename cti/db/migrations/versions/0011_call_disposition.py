"""Wrap-up codes and notes (dispositions) on the call record (issue 14 §6).

calls.disposition: what the call was about, as the agent coded it in wrap-up (the 95598
business types, cti.db.models.CALL_DISPOSITIONS); calls.agent_note: the agent's free-text note;
disposed_by / disposed_at: who coded it last, and when. All NULL until the call is coded.

Revision ID: 0011_call_disposition
Revises: 0010_outbound
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_call_disposition"
down_revision: str | Sequence[str] | None = "0010_outbound"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the values when this revision was written (cti.db.models.CALL_DISPOSITIONS)
_CODES = ("fault_repair", "bill_query", "outage_query", "consultation", "service_application",
          "complaint", "report", "suggestion", "praise", "urge", "no_business", "other")


def upgrade() -> None:
    # batch: SQLite adds a CHECK only by rebuilding the table (render_as_batch in env.py)
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("disposition", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("agent_note", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("disposed_by", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("disposed_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint(
            op.f("ck_calls_disposition"),
            "disposition IS NULL OR disposition IN ("
            + ", ".join(repr(c) for c in _CODES) + ")")


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_constraint(op.f("ck_calls_disposition"), type_="check")
        batch.drop_column("disposed_at")
        batch.drop_column("disposed_by")
        batch.drop_column("agent_note")
        batch.drop_column("disposition")
