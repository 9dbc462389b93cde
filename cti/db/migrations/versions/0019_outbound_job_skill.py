"""The skill an outbound job is for (issue 15 §3): outbound_jobs.skill, nullable. An after-hours
callback (purpose `callback`, booked in the IVR for a closed skill) is dialled when that skill
is open and queued to its agents; before this the skill was only inside created_by
("ivr:<skill>"), which is an audit field, not a routing one. Other purposes leave it null.

Revision ID: 0019_outbound_job_skill
Revises: 0018_calendars
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_outbound_job_skill"
down_revision: str | Sequence[str] | None = "0018_calendars"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbound_jobs", sa.Column("skill", sa.String(length=32), nullable=True))
    # callbacks booked before this revision: their skill was kept in created_by only
    op.execute("UPDATE outbound_jobs SET skill = substr(created_by, 5) "
               "WHERE purpose = 'callback' AND skill IS NULL AND created_by LIKE 'ivr:%'")


def downgrade() -> None:
    with op.batch_alter_table("outbound_jobs") as batch:
        batch.drop_column("skill")
