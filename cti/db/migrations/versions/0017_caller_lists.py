"""Inbound caller lists (issue 15 §3): caller_lists (kind nuisance or vip, the number in national
form, why, who, when), nuisance_reports (an agent's report that a call was abusive, one per
call), and the calls' outcome 'refused' (a nuisance caller who heard the warning and was hung
up on).

Revision ID: 0017_caller_lists
Revises: 0016_report_tables
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_caller_lists"
down_revision: str | Sequence[str] | None = "0016_report_tables"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the values when this revision was written (cti.db.models.CALL_OUTCOMES)
_OUTCOMES_BEFORE = ("self_served", "transfer", "hangup", "fallback", "abandoned", "deflected")
_OUTCOMES = (*_OUTCOMES_BEFORE, "refused")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "caller_lists",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.Column("added_at", _utc(), nullable=False),
        sa.CheckConstraint("kind IN ('nuisance', 'vip')", name=op.f("ck_caller_lists_kind")),
        sa.PrimaryKeyConstraint("kind", "number", name=op.f("pk_caller_lists")),
    )
    op.create_table(
        "nuisance_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("reported_by", sa.String(length=16), nullable=False),
        sa.Column("reported_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nuisance_reports")),
        sa.UniqueConstraint("call_id", name=op.f("uq_nuisance_reports_call_id")),
    )
    op.create_index("ix_nuisance_reports_number_reported_at", "nuisance_reports",
                    ["number", "reported_at"])
    with op.batch_alter_table("calls") as batch:
        batch.drop_constraint(op.f("ck_calls_outcome"), type_="check")
        batch.create_check_constraint(op.f("ck_calls_outcome"),
                                      f"outcome IS NULL OR {_in('outcome', _OUTCOMES)}")


def downgrade() -> None:
    op.execute("UPDATE calls SET outcome = 'hangup' WHERE outcome = 'refused'")
    with op.batch_alter_table("calls") as batch:
        batch.drop_constraint(op.f("ck_calls_outcome"), type_="check")
        batch.create_check_constraint(
            op.f("ck_calls_outcome"), f"outcome IS NULL OR {_in('outcome', _OUTCOMES_BEFORE)}")
    op.drop_index("ix_nuisance_reports_number_reported_at", table_name="nuisance_reports")
    op.drop_table("nuisance_reports")
    op.drop_table("caller_lists")
