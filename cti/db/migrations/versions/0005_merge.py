"""Merge the four feature branches written off 0002 (recordings, supervision, web sessions,
work orders) into one history, so plain `alembic upgrade head` works and the next migration has
one parent. No schema change.

Revision ID: 0005_merge
Revises: 0003_recordings, 0003_supervision, 0003_web, 0004_workorder_alerts
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0005_merge"
# on one line, so that a line-based reader of the history (a review hook) sees all four parents
down_revision: str | Sequence[str] | None = ("0003_recordings", "0003_supervision", "0003_web", "0004_workorder_alerts")  # noqa: E501
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
