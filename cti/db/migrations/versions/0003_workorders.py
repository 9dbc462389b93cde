"""Work-order lifecycle: subtype, department, urges, resolution, satisfaction; SLA clocks and
their escalation marks. Existing orders stay valid: every new column is nullable or defaults.

Revision ID: 0003_workorders
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_workorders"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    # cti.db.models.UTCDateTime only converts values in Python; the column itself is this.
    return sa.DateTime(timezone=True)


URGE_CHECK = "urge_count >= 0"
SATISFACTION_CHECK = "satisfaction IS NULL OR satisfaction IN ('satisfied', 'unsatisfied')"
# SQLite: ADD COLUMN with the CHECK inline. A batch rebuild of work_orders would DROP the old
# table, and with foreign keys on that deletes every work_order_events row (ON DELETE CASCADE).
SQLITE_COLUMNS = (
    "subtype VARCHAR(32)",
    "department VARCHAR(16)",
    f"urge_count INTEGER DEFAULT 0 NOT NULL CONSTRAINT ck_work_orders_urge_count "
    f"CHECK ({URGE_CHECK})",
    "last_urged_at DATETIME",
    "resolved_at DATETIME",
    f"satisfaction VARCHAR(16) CONSTRAINT ck_work_orders_satisfaction "
    f"CHECK ({SATISFACTION_CHECK})",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for column in SQLITE_COLUMNS:
            op.execute(f"ALTER TABLE work_orders ADD COLUMN {column}")
    else:
        op.add_column("work_orders", sa.Column("subtype", sa.String(length=32), nullable=True))
        op.add_column("work_orders",
                      sa.Column("department", sa.String(length=16), nullable=True))
        op.add_column("work_orders", sa.Column("urge_count", sa.Integer(), nullable=False,
                                               server_default=sa.text("0")))
        op.add_column("work_orders", sa.Column("last_urged_at", _utc(), nullable=True))
        op.add_column("work_orders", sa.Column("resolved_at", _utc(), nullable=True))
        op.add_column("work_orders",
                      sa.Column("satisfaction", sa.String(length=16), nullable=True))
        op.create_check_constraint(op.f("ck_work_orders_urge_count"), "work_orders",
                                   URGE_CHECK)
        op.create_check_constraint(op.f("ck_work_orders_satisfaction"), "work_orders",
                                   SATISFACTION_CHECK)
    op.create_index(op.f("ix_work_orders_status_created_at"), "work_orders",
                    ["status", "created_at"])
    op.create_index(op.f("ix_work_orders_area_id_created_at"), "work_orders",
                    ["area_id", "created_at"])

    op.create_table(
        "work_order_clocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("work_order_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("due_at", _utc(), nullable=False),
        sa.Column("stops_at", sa.String(length=24), nullable=False),
        sa.Column("stopped_at", _utc(), nullable=True),
        sa.Column("stopped_by", sa.String(length=24), nullable=True),
        sa.CheckConstraint("due_at > started_at", name=op.f("ck_work_order_clocks_window")),
        sa.ForeignKeyConstraint(
            ["work_order_id"], ["work_orders.id"], ondelete="CASCADE",
            name=op.f("fk_work_order_clocks_work_order_id_work_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_clocks")),
        sa.UniqueConstraint("work_order_id", "name",
                            name=op.f("uq_work_order_clocks_work_order_id_name")),
    )
    op.create_index(op.f("ix_work_order_clocks_stopped_at_due_at"), "work_order_clocks",
                    ["stopped_at", "due_at"])

    op.create_table(
        "work_order_escalations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clock_id", sa.Integer(), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("crossed_at", _utc(), nullable=False),
        sa.Column("alerted_at", _utc(), nullable=False),
        sa.CheckConstraint("level IN ('warning', 'breach')",
                           name=op.f("ck_work_order_escalations_level")),
        sa.ForeignKeyConstraint(
            ["clock_id"], ["work_order_clocks.id"], ondelete="CASCADE",
            name=op.f("fk_work_order_escalations_clock_id_work_order_clocks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_escalations")),
        sa.UniqueConstraint("clock_id", "percent",
                            name=op.f("uq_work_order_escalations_clock_id_percent")),
    )
    op.create_index(op.f("ix_work_order_escalations_alerted_at"), "work_order_escalations",
                    ["alerted_at"])

    # Open repair orders created before this revision get their arrival clock from the
    # sla_due_at they already carry, so the escalation tick watches them too.
    op.execute(sa.text(
        "INSERT INTO work_order_clocks (work_order_id, name, started_at, due_at, stops_at) "
        "SELECT id, 'arrival', created_at, sla_due_at, 'on_site' FROM work_orders "
        "WHERE type = 'fault_repair' AND sla_due_at IS NOT NULL AND sla_due_at > created_at "
        "AND status IN ('accepted', 'dispatched', 'department_accepted')"))


def downgrade() -> None:
    op.drop_table("work_order_escalations")
    op.drop_table("work_order_clocks")
    op.drop_index(op.f("ix_work_orders_area_id_created_at"), table_name="work_orders")
    op.drop_index(op.f("ix_work_orders_status_created_at"), table_name="work_orders")
    columns = ("satisfaction", "resolved_at", "last_urged_at", "urge_count", "department",
               "subtype")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_work_orders_satisfaction"), "work_orders", type_="check")
        op.drop_constraint(op.f("ck_work_orders_urge_count"), "work_orders", type_="check")
        for column in columns:
            op.drop_column("work_orders", column)
        return
    # SQLite cannot drop a column that has a CHECK, so the table is rebuilt; its DROP would
    # cascade to work_order_events, so the history is kept aside and put back.
    op.execute("CREATE TEMP TABLE keep_work_order_events AS SELECT * FROM work_order_events")
    with op.batch_alter_table("work_orders", recreate="always") as batch:
        batch.drop_constraint(op.f("ck_work_orders_satisfaction"), type_="check")
        batch.drop_constraint(op.f("ck_work_orders_urge_count"), type_="check")
        for column in columns:
            batch.drop_column(column)
    op.execute("INSERT INTO work_order_events SELECT * FROM keep_work_order_events "
               "WHERE id NOT IN (SELECT id FROM work_order_events)")
    op.execute("DROP TABLE keep_work_order_events")
