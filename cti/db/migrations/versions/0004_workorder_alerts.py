"""Work-order SLA clocks: warn_at (the first threshold) and next_alert_at (the next threshold not
yet alerted), so the escalation tick and the at-risk list read only the clocks that matter
instead of every running one. Existing clocks are filled in with the default thresholds.

Revision ID: 0004_workorder_alerts
Revises: 0003_workorders
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004_workorder_alerts"
down_revision: str | None = "0003_workorders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the defaults of [workorders] escalation_thresholds when this revision was written
THRESHOLDS = (0.8, 1.0)


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive UTC, PostgreSQL aware datetimes
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def upgrade() -> None:
    # plain ADD COLUMN: a batch rebuild on SQLite would DROP the old table and so delete every
    # escalation mark (ON DELETE CASCADE)
    op.add_column("work_order_clocks", sa.Column("warn_at", _utc(), nullable=True))
    op.add_column("work_order_clocks", sa.Column("next_alert_at", _utc(), nullable=True))
    op.create_index(op.f("ix_work_order_clocks_stopped_at_next_alert_at"), "work_order_clocks",
                    ["stopped_at", "next_alert_at"])
    op.create_index(op.f("ix_work_order_clocks_stopped_at_warn_at"), "work_order_clocks",
                    ["stopped_at", "warn_at"])
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    ts = sa.DateTime(timezone=True)
    clocks_t = sa.table("work_order_clocks", sa.column("id", sa.Integer()),
                        sa.column("started_at", ts), sa.column("due_at", ts),
                        sa.column("stopped_at", ts), sa.column("warn_at", ts),
                        sa.column("next_alert_at", ts))
    marks_t = sa.table("work_order_escalations", sa.column("clock_id", sa.Integer()),
                       sa.column("percent", sa.Integer()))
    marks: dict[int, set[int]] = {}
    for clock_id, percent in conn.execute(sa.select(marks_t.c.clock_id, marks_t.c.percent)):
        marks.setdefault(clock_id, set()).add(percent)

    def stored(value: datetime | None) -> datetime | None:
        # the application stores naive UTC on SQLite (cti.db.models.UTCDateTime)
        if value is None or not sqlite:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    rows = conn.execute(sa.select(clocks_t.c.id, clocks_t.c.started_at, clocks_t.c.due_at,
                                  clocks_t.c.stopped_at)).all()
    for clock_id, started, due, stopped in rows:
        start = _aware(started)
        span = _aware(due) - start
        pending = [t for t in THRESHOLDS if round(t * 100) not in marks.get(clock_id, set())]
        nxt = start + span * pending[0] if pending and stopped is None else None
        conn.execute(clocks_t.update().where(clocks_t.c.id == clock_id).values(
            warn_at=stored(start + span * THRESHOLDS[0]), next_alert_at=stored(nxt)))


def downgrade() -> None:
    op.drop_index(op.f("ix_work_order_clocks_stopped_at_warn_at"), table_name="work_order_clocks")
    op.drop_index(op.f("ix_work_order_clocks_stopped_at_next_alert_at"),
                  table_name="work_order_clocks")
    # SQLite (3.35+) drops a column without constraints in place, no rebuild (see upgrade)
    for column in ("next_alert_at", "warn_at"):
        op.execute(f"ALTER TABLE work_order_clocks DROP COLUMN {column}")
