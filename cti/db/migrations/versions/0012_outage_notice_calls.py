"""Planned-outage notice calls (issue 14 §4): outbound_jobs.lead_days (7: the call a week
before the outage starts) and one job per outage, account, number and lead (a unique index),
so the notice scheduler, ticking or restarted, never makes a second call for the same notice.

Revision ID: 0012_outage_notice_calls
Revises: 0011_call_disposition
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_outage_notice_calls"
down_revision: str | Sequence[str] | None = "0011_call_disposition"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_outbound_jobs_outage_id_account_no_number_lead_days"


def upgrade() -> None:
    op.add_column("outbound_jobs", sa.Column("lead_days", sa.Integer(), nullable=True))
    op.create_index(_INDEX, "outbound_jobs", ["outage_id", "account_no", "number", "lead_days"],
                    unique=True)


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="outbound_jobs")
    with op.batch_alter_table("outbound_jobs") as batch:
        batch.drop_column("lead_days")
