"""Workload report tables (issue 15 §4): report_intervals (additive figures per 15-minute
interval, skill and agent), report_days (the same summed per local day), report_workorder_days
(work-order figures per local day and order type) and report_marks (the aggregators'
high-water marks); indexes on calls.ended_at and work_order_events.at, which the aggregators
read by.

Revision ID: 0016_report_tables
Revises: 0015_flow_versions
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_report_tables"
down_revision: str | Sequence[str] | None = "0015_flow_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = ("offered", "answered", "answered_in_sl", "abandoned", "abandoned_short",
           "deflected", "transfers")
_SURVEY = ("survey_offered", "survey_answered", "survey_score_sum")
_SECONDS = ("answer_wait_s", "talk_s")
_AGENT_SECONDS = ("ready_s", "not_ready_s", "reserved_s", "on_call_s", "acw_s")


def upgrade() -> None:
    # the aggregators read the calls that ended in an interval and a day's order events
    op.create_index(op.f("ix_calls_ended_at"), "calls", ["ended_at"])
    op.create_index(op.f("ix_work_order_events_at"), "work_order_events", ["at"])
    op.create_table(
        "report_intervals",
        sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("skill", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.String(length=16), nullable=False),
        sa.Column("local_day", sa.Date(), nullable=False),
        *[sa.Column(c, sa.Integer(), nullable=False) for c in _COUNTS],
        *[sa.Column(c, sa.Float(), nullable=False) for c in _SECONDS],
        *[sa.Column(c, sa.Integer(), nullable=False) for c in _SURVEY],
        sa.Column("rona", sa.Integer(), nullable=False),
        *[sa.Column(c, sa.Float(), nullable=False) for c in _AGENT_SECONDS],
        sa.PrimaryKeyConstraint("interval_start", "skill", "agent_id",
                                name=op.f("pk_report_intervals")),
    )
    op.create_index(op.f("ix_report_intervals_local_day"), "report_intervals", ["local_day"])
    op.create_table(
        "report_days",
        sa.Column("local_day", sa.Date(), nullable=False),
        sa.Column("skill", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.String(length=16), nullable=False),
        *[sa.Column(c, sa.Integer(), nullable=False) for c in _COUNTS],
        *[sa.Column(c, sa.Float(), nullable=False) for c in _SECONDS],
        *[sa.Column(c, sa.Integer(), nullable=False) for c in _SURVEY],
        sa.Column("rona", sa.Integer(), nullable=False),
        *[sa.Column(c, sa.Float(), nullable=False) for c in _AGENT_SECONDS],
        sa.PrimaryKeyConstraint("local_day", "skill", "agent_id", name=op.f("pk_report_days")),
    )
    op.create_table(
        "report_workorder_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("figure", sa.String(length=48), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("total_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("day", "type", "figure", name=op.f("pk_report_workorder_days")),
    )
    op.create_table(
        "report_marks",
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("done_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_report_marks")),
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_work_order_events_at"), table_name="work_order_events")
    op.drop_index(op.f("ix_calls_ended_at"), table_name="calls")
    op.drop_table("report_marks")
    op.drop_table("report_workorder_days")
    op.drop_table("report_days")
    op.drop_index(op.f("ix_report_intervals_local_day"), table_name="report_intervals")
    op.drop_table("report_intervals")
