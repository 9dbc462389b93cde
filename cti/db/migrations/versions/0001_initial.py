"""Initial schema: topology, customers, billing, outages, work orders, calls.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    # cti.db.models.UTCDateTime only converts values in Python; the column itself is this.
    return sa.DateTime(timezone=True)


def _money() -> sa.Numeric:
    return sa.Numeric(precision=12, scale=2)


def upgrade() -> None:
    op.create_table(
        "areas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.CheckConstraint("kind IN ('urban', 'rural', 'remote')", name=op.f("ck_areas_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_areas")),
        sa.UniqueConstraint("code", name=op.f("uq_areas_code")),
    )
    op.create_table(
        "feeders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["area_id"], ["areas.id"], name=op.f("fk_feeders_area_id_areas")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feeders")),
        sa.UniqueConstraint("code", name=op.f("uq_feeders_code")),
        sa.UniqueConstraint("id", "area_id", name=op.f("uq_feeders_id_area_id")),
    )
    op.create_index(op.f("ix_feeders_area_id"), "feeders", ["area_id"])

    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("important", sa.Boolean(), nullable=False),
        sa.Column("important_kind", sa.String(length=32), nullable=True),
        sa.CheckConstraint(
            "(important AND important_kind IN ('hospital', 'life_support', 'government', 'other'))"
            " OR (NOT important AND important_kind IS NULL)",
            name=op.f("ck_customers_important_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_no", sa.String(length=10), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("service_address", sa.String(length=255), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.Column("feeder_id", sa.Integer(), nullable=True),
        sa.Column("transformer_area", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "account_no GLOB '" + "[0-9]" * 10 + "'", name=op.f("ck_accounts_account_no_digits"),
        ).ddl_if(dialect="sqlite"),
        sa.CheckConstraint(
            "account_no ~ '^[0-9]{10}$'", name=op.f("ck_accounts_account_no_digits"),
        ).ddl_if(dialect="postgresql"),
        sa.ForeignKeyConstraint(["area_id"], ["areas.id"], name=op.f("fk_accounts_area_id_areas")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_accounts_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["feeder_id", "area_id"], ["feeders.id", "feeders.area_id"],
            name=op.f("fk_accounts_feeder_id_area_id_feeders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("account_no", name=op.f("uq_accounts_account_no")),
    )
    op.create_index(op.f("ix_accounts_area_id"), "accounts", ["area_id"])
    op.create_index(op.f("ix_accounts_customer_id"), "accounts", ["customer_id"])
    op.create_index(op.f("ix_accounts_feeder_id"), "accounts", ["feeder_id"])

    op.create_table(
        "account_phones",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], ondelete="CASCADE",
            name=op.f("fk_account_phones_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("account_id", "phone", name=op.f("pk_account_phones")),
    )
    op.create_index(op.f("ix_account_phones_phone"), "account_phones", ["phone"])

    op.create_table(
        "bills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("usage_kwh", sa.Integer(), nullable=False),
        sa.Column("amount", _money(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("paid", sa.Boolean(), nullable=False),
        sa.Column("paid_amount", _money(), nullable=False),
        sa.CheckConstraint(
            "length(period) = 7 AND substr(period, 5, 1) = '-'", name=op.f("ck_bills_period"),
        ),
        sa.CheckConstraint(
            "paid_amount >= 0 AND amount >= 0 AND usage_kwh >= 0", name=op.f("ck_bills_amounts"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_bills_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bills")),
        sa.UniqueConstraint("account_id", "period", name=op.f("uq_bills_account_id_period")),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("amount", _money(), nullable=False),
        sa.Column("paid_at", _utc(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_payments_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
    )
    op.create_index(op.f("ix_payments_account_id_paid_at"), "payments", ["account_id", "paid_at"])

    op.create_table(
        "outages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("cause", sa.String(length=255), nullable=False),
        sa.Column("start_at", _utc(), nullable=False),
        sa.Column("expected_restore_at", _utc(), nullable=False),
        sa.Column("restored_at", _utc(), nullable=True),
        sa.Column("notice", sa.Text(), nullable=False),
        sa.CheckConstraint("kind IN ('planned', 'fault')", name=op.f("ck_outages_kind")),
        sa.CheckConstraint("expected_restore_at >= start_at", name=op.f("ck_outages_window")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outages")),
    )
    op.create_table(
        "outage_areas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outage_id", sa.Integer(), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.Column("feeder_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["area_id"], ["areas.id"], name=op.f("fk_outage_areas_area_id_areas"),
        ),
        sa.ForeignKeyConstraint(
            ["feeder_id", "area_id"], ["feeders.id", "feeders.area_id"],
            name=op.f("fk_outage_areas_feeder_id_area_id_feeders"),
        ),
        sa.ForeignKeyConstraint(
            ["outage_id"], ["outages.id"], ondelete="CASCADE",
            name=op.f("fk_outage_areas_outage_id_outages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outage_areas")),
    )
    op.create_index(
        op.f("ix_outage_areas_area_id_feeder_id"), "outage_areas", ["area_id", "feeder_id"],
    )
    op.create_index(op.f("ix_outage_areas_outage_id"), "outage_areas", ["outage_id"])

    op.create_table(
        "work_order_counters",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_work_order_counters")),
    )
    op.create_table(
        "work_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=11), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("caller_number", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("area_id", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("sla_due_at", _utc(), nullable=True),
        sa.Column("master_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("channel IN ('ivr', 'agent')", name=op.f("ck_work_orders_channel")),
        sa.CheckConstraint(
            "type IN ('fault_repair', 'bill_query', 'outage_query', 'consultation',"
            " 'service_application', 'complaint', 'report', 'suggestion', 'praise', 'urging')",
            name=op.f("ck_work_orders_type"),
        ),
        sa.CheckConstraint("length(number) = 11", name=op.f("ck_work_orders_number")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_work_orders_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["area_id"], ["areas.id"], name=op.f("fk_work_orders_area_id_areas"),
        ),
        sa.ForeignKeyConstraint(
            ["master_id"], ["work_orders.id"], name=op.f("fk_work_orders_master_id_work_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_orders")),
        sa.UniqueConstraint("number", name=op.f("uq_work_orders_number")),
    )
    op.create_index(op.f("ix_work_orders_account_id"), "work_orders", ["account_id"])
    op.create_index(op.f("ix_work_orders_call_id"), "work_orders", ["call_id"])
    op.create_index(op.f("ix_work_orders_created_at"), "work_orders", ["created_at"])
    op.create_index(op.f("ix_work_orders_master_id"), "work_orders", ["master_id"])

    op.create_table(
        "work_order_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("work_order_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=24), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["work_order_id"], ["work_orders.id"], ondelete="CASCADE",
            name=op.f("fk_work_order_events_work_order_id_work_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_events")),
    )
    op.create_index(
        op.f("ix_work_order_events_work_order_id"), "work_order_events", ["work_order_id"],
    )

    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=False),
        sa.Column("caller_number", sa.String(length=32), nullable=False),
        sa.Column("dnis", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("ended_at", _utc(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("account_no", sa.String(length=10), nullable=True),
        sa.Column("skill", sa.String(length=32), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("ivr_path", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN"
            " ('self_served', 'transfer', 'hangup', 'fallback', 'abandoned')",
            name=op.f("ck_calls_outcome"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("call_id", name=op.f("uq_calls_call_id")),
    )
    op.create_index(op.f("ix_calls_started_at"), "calls", ["started_at"])


def downgrade() -> None:
    # Indexes go with their tables.
    for table in (
        "calls", "work_order_events", "work_orders", "work_order_counters", "outage_areas",
        "outages", "payments", "bills", "account_phones", "accounts", "customers", "feeders",
        "areas",
    ):
        op.drop_table(table)
