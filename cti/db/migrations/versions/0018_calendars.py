"""Service hours per skill (issue 15 §3): skill_calendars (a skill's weekly hours and what its
calls do when it is closed: route to another skill, or a callback) and calendar_days (its
holidays and special days).

Revision ID: 0018_calendars
Revises: 0017_caller_lists
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_calendars"
down_revision: str | Sequence[str] | None = "0017_caller_lists"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "skill_calendars",
        sa.Column("skill", sa.String(length=32), nullable=False),
        sa.Column("week", sa.JSON(), nullable=False),
        sa.Column("after_hours", sa.String(length=12), nullable=False),
        sa.Column("route_to", sa.String(length=32), nullable=True),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint("after_hours IN ('route', 'callback')",
                           name=op.f("ck_skill_calendars_after_hours")),
        sa.PrimaryKeyConstraint("skill", name=op.f("pk_skill_calendars")),
    )
    op.create_table(
        "calendar_days",
        sa.Column("skill", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("hours", sa.String(length=120), nullable=False),
        sa.Column("note", sa.String(length=64), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.Column("added_at", _utc(), nullable=False),
        sa.CheckConstraint("kind IN ('holiday', 'special')", name=op.f("ck_calendar_days_kind")),
        sa.ForeignKeyConstraint(["skill"], ["skill_calendars.skill"], ondelete="CASCADE",
                                name=op.f("fk_calendar_days_skill_skill_calendars")),
        sa.PrimaryKeyConstraint("skill", "day", name=op.f("pk_calendar_days")),
    )


def downgrade() -> None:
    op.drop_table("calendar_days")
    op.drop_table("skill_calendars")
