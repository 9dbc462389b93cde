"""Outage notices (issue 12): what the outage-first IVR, the console and incident detection need.

- outages: a cause category (outages.scope.Cause; the free-text `cause` stays, for agents only),
  a schedule end for planned work, the master repair order that covers it, a suspected outage's
  confirmation, who published it and when it last changed. expected_restore_at may be unknown
  (a suspected outage opened by incident detection has none until a supervisor sets it).
- outage_areas: a 台区 (transformer area) named within its area, besides whole areas and feeders.
- outage_revisions: one row whose counter is bumped in the same transaction as any change to a
  notice, so a reader rebuilds its index only when it moved (outages.scope.IndexCache).
- storm_state: one row, the storm-mode switch (who, when, why).
- calls: the 'deflected' outcome and the notices the caller heard; work_orders.outage_id: the
  outage a fault report was linked into.

Revision ID: 0008_outage_notices
Revises: 0007_call_end_reason
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision: str = "0008_outage_notices"
down_revision: str | Sequence[str] | None = "0007_call_end_reason"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the values when this revision was written (outages.scope.Cause, cti.db.models.CALL_OUTCOMES)
_CAUSES = ("fault", "planned", "storm_repair", "temporary", "upstream", "external_damage",
           "load_limiting", "reported")
_OUTCOMES_BEFORE = ("self_served", "transfer", "hangup", "fallback", "abandoned")
_OUTCOMES = (*_OUTCOMES_BEFORE, "deflected")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


# SQLite rebuilds a table to add or drop a foreign key or a CHECK (batch mode), and with foreign
# keys on, dropping the old table first deletes its rows, which cascades (ON DELETE CASCADE) to
# the scope rows of every outage and to the history and SLA clocks of every work order. They
# are kept aside and put back, as 0003_workorders does (PRAGMA foreign_keys cannot be switched
# off inside the migration's transaction).
_CASCADED = {"outages": ("outage_areas",),
             "work_orders": ("work_order_events", "work_order_clocks", "work_order_escalations")}


@contextmanager
def _keeping_children(table: str) -> Iterator[None]:
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    for child in _CASCADED[table]:
        op.execute(f"CREATE TEMP TABLE keep_{child} AS SELECT * FROM {child}")
    yield
    for child in _CASCADED[table]:  # parents first: escalations need their clocks
        op.execute(f"INSERT INTO {child} SELECT * FROM keep_{child} "
                   f"WHERE id NOT IN (SELECT id FROM {child})")
        op.execute(f"DROP TABLE keep_{child}")


def upgrade() -> None:
    with _keeping_children("outages"), op.batch_alter_table("outages") as batch:
        batch.add_column(sa.Column("category", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("schedule_end_at", _utc(), nullable=True))
        batch.add_column(sa.Column("master_order_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("awaiting_confirmation", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("confirmed_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("created_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("updated_at", _utc(), nullable=True))
        batch.alter_column("expected_restore_at", existing_type=_utc(), nullable=True)
        batch.create_foreign_key(op.f("fk_outages_master_order_id_work_orders"),
                                 "work_orders", ["master_order_id"], ["id"])
    # the rows before this revision: a fault is a fault, planned work's window is its restoration
    op.execute("UPDATE outages SET category = kind")
    op.execute("UPDATE outages SET schedule_end_at = expected_restore_at WHERE kind = 'planned'")
    with _keeping_children("outages"), op.batch_alter_table("outages") as batch:
        batch.alter_column("category", existing_type=sa.String(length=24), nullable=False)
        batch.create_check_constraint(op.f("ck_outages_category"), _in("category", _CAUSES))
        batch.create_check_constraint(
            op.f("ck_outages_schedule"),
            "schedule_end_at IS NULL OR schedule_end_at > start_at")
    with op.batch_alter_table("outage_areas") as batch:
        batch.add_column(sa.Column("transformer_area", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_outage_areas_area_id_transformer_area"), "outage_areas",
                    ["area_id", "transformer_area"])
    op.create_table(
        "outage_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outage_revisions")),
    )
    op.execute("INSERT INTO outage_revisions (id, version) VALUES (1, 1)")
    op.create_table(
        "storm_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("since", _utc(), nullable=True),
        sa.Column("by", sa.String(length=64), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=True),
        sa.Column("detail", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storm_state")),
    )
    op.execute("INSERT INTO storm_state (id, active) VALUES (1, false)")
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("outage_ids", sa.JSON(), nullable=True))
        batch.drop_constraint(op.f("ck_calls_outcome"), type_="check")
        batch.create_check_constraint(op.f("ck_calls_outcome"),
                                      f"outcome IS NULL OR {_in('outcome', _OUTCOMES)}")
    with _keeping_children("work_orders"), op.batch_alter_table("work_orders") as batch:
        batch.add_column(sa.Column("outage_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_work_orders_outage_id_outages"),
                                 "outages", ["outage_id"], ["id"])
        batch.create_index(op.f("ix_work_orders_outage_id"), ["outage_id"])


def downgrade() -> None:
    # the master orders go with their column below; on SQLite the rebuilt work_orders could not
    # be dropped while an outage still referred to one of its rows
    op.execute("UPDATE outages SET master_order_id = NULL")
    with _keeping_children("work_orders"), op.batch_alter_table("work_orders") as batch:
        batch.drop_index(op.f("ix_work_orders_outage_id"))
        batch.drop_constraint(op.f("fk_work_orders_outage_id_outages"), type_="foreignkey")
        batch.drop_column("outage_id")
    op.execute("UPDATE calls SET outcome = 'hangup' WHERE outcome = 'deflected'")
    with op.batch_alter_table("calls") as batch:
        batch.drop_constraint(op.f("ck_calls_outcome"), type_="check")
        batch.create_check_constraint(
            op.f("ck_calls_outcome"), f"outcome IS NULL OR {_in('outcome', _OUTCOMES_BEFORE)}")
        batch.drop_column("outage_ids")
    op.drop_table("storm_state")
    op.drop_table("outage_revisions")
    op.drop_index(op.f("ix_outage_areas_area_id_transformer_area"), table_name="outage_areas")
    with op.batch_alter_table("outage_areas") as batch:
        batch.drop_column("transformer_area")
    # an unknown restoration cannot go back into a NOT NULL column: the schedule end, else start
    op.execute("UPDATE outages SET expected_restore_at = COALESCE(schedule_end_at, start_at) "
               "WHERE expected_restore_at IS NULL")
    with _keeping_children("outages"), op.batch_alter_table("outages") as batch:
        batch.drop_constraint(op.f("ck_outages_schedule"), type_="check")
        batch.drop_constraint(op.f("ck_outages_category"), type_="check")
        batch.drop_constraint(op.f("fk_outages_master_order_id_work_orders"), type_="foreignkey")
        batch.alter_column("expected_restore_at", existing_type=_utc(), nullable=False)
        for column in ("updated_at", "created_by", "confirmed_by", "awaiting_confirmation",
                       "master_order_id", "schedule_end_at", "category"):
            batch.drop_column(column)
