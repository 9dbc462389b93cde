"""Published IVR flow versions (issue 15 §2): every text of a flow file the admin console
published, or found on disk before a publish, with who and when; a rollback publishes one again.

Revision ID: 0015_flow_versions
Revises: 0014_staff_skills
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_flow_versions"
down_revision: str | Sequence[str] | None = "0014_staff_skills"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "flow_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file", sa.String(length=80), nullable=False),
        sa.Column("flow_id", sa.String(length=64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("rollback_of", sa.Integer(), nullable=True),
        sa.Column("published_by", sa.String(length=64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_versions")),
    )
    op.create_index(op.f("ix_flow_versions_file_id"), "flow_versions", ["file", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_flow_versions_file_id"), table_name="flow_versions")
    op.drop_table("flow_versions")
