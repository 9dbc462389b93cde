"""The post-call satisfaction survey on the call record (issue 14 §3).

calls.survey_at: when the caller was put to the survey (the agent hung up first on a call whose
skill has one); survey_agent_id / survey_skill: the agent and skill it rates; satisfaction: the
caller's score, 1 to 5 (CHECK), NULL while none came. All NULL on a call without a survey.
survey_at is indexed: the reports read surveys by when they were offered.

Revision ID: 0013_call_survey
Revises: 0012_outage_notice_calls
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_call_survey"
down_revision: str | Sequence[str] | None = "0012_outage_notice_calls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch: SQLite adds a CHECK only by rebuilding the table (render_as_batch in env.py)
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("survey_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("survey_agent_id", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("survey_skill", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("satisfaction", sa.SmallInteger(), nullable=True))
        batch.create_check_constraint(
            op.f("ck_calls_satisfaction"),
            "satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5")
        batch.create_index(op.f("ix_calls_survey_at"), ["survey_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_index(op.f("ix_calls_survey_at"))
        batch.drop_constraint(op.f("ck_calls_satisfaction"), type_="check")
        batch.drop_column("satisfaction")
        batch.drop_column("survey_skill")
        batch.drop_column("survey_agent_id")
        batch.drop_column("survey_at")
