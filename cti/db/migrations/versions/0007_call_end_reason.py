"""Call records say why the PBX ended a call: calls.end_reason (issue 11, Asterisk restart).

NULL when the caller or the agent ended the call; pbx_restart when Asterisk restarted and said
so, pbx_lost when it vanished (crash, kill -9). Written by the CTI's resync after the restart.

Revision ID: 0007_call_end_reason
Revises: 0006_login_limits
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_call_end_reason"
down_revision: str | Sequence[str] | None = "0006_login_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the values when this revision was written (cti.db.models.CALL_END_REASONS)
_REASONS = ("pbx_restart", "pbx_lost")


def upgrade() -> None:
    # batch: SQLite adds a CHECK only by rebuilding the table (render_as_batch in env.py)
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("end_reason", sa.String(length=16), nullable=True))
        batch.create_check_constraint(
            op.f("ck_calls_end_reason"),
            "end_reason IS NULL OR end_reason IN ("
            + ", ".join(repr(r) for r in _REASONS) + ")")


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_constraint(op.f("ck_calls_end_reason"), type_="check")
        batch.drop_column("end_reason")
