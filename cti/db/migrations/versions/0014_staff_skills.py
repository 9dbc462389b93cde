"""Staff and skills (issue 15 §1): department users, forced password changes, a skills table.

agents.role may be 'department' (a repair crew's, marketing's or metering's user, with
agents.department); agents.must_change_password is set by an admin's password reset; the
skills table lists the skills calls are routed by, seeded with the shipped ones and every skill
an agent already holds.

Revision ID: 0014_staff_skills
Revises: 0013_call_survey
Create Date: 2026-12-06
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0014_staff_skills"
down_revision: str | Sequence[str] | None = "0013_call_survey"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the values when this revision was written (cti.db.models)
_ROLES = ("agent", "supervisor", "admin", "department")
_DEPARTMENTS = ("repair", "marketing", "metering")
# the skills the shipped flows and demo use, with their labels
_SHIPPED = {"general": ("综合", "general"), "billing": ("电费", "billing"),
            "repair": ("故障报修", "repair"), "english": ("英语", "English")}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("department", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("must_change_password", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.drop_constraint(op.f("ck_agents_role"), type_="check")
        batch.create_check_constraint(op.f("ck_agents_role"), _in("role", _ROLES))
        batch.create_check_constraint(
            op.f("ck_agents_department"),
            f"(role = 'department' AND department IS NOT NULL AND "
            f"{_in('department', _DEPARTMENTS)}) "
            "OR (role <> 'department' AND department IS NULL)")
    skills = op.create_table(
        "skills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("label_zh", sa.String(length=32), nullable=False),
        sa.Column("label_en", sa.String(length=32), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skills")),
        sa.UniqueConstraint("name", name=op.f("uq_skills_name")),
    )
    held: set[str] = set()
    for (raw,) in op.get_bind().execute(sa.text("SELECT skills FROM agents")):
        if isinstance(raw, str):  # SQLite hands JSON back as text
            raw = json.loads(raw)
        held |= set(raw or {})
    now = datetime.now(UTC)
    op.bulk_insert(skills, [
        {"name": name, "label_zh": _SHIPPED.get(name, (name, name))[0][:32],
         "label_en": _SHIPPED.get(name, (name, name))[1][:32], "active": True,
         "created_at": now, "created_by": "migration"}
        for name in sorted(set(_SHIPPED) | {h[:32] for h in held})])


def downgrade() -> None:
    op.drop_table("skills")
    op.execute("DELETE FROM agents WHERE role = 'department'")
    with op.batch_alter_table("agents") as batch:
        batch.drop_constraint(op.f("ck_agents_department"), type_="check")
        batch.drop_constraint(op.f("ck_agents_role"), type_="check")
        batch.create_check_constraint(op.f("ck_agents_role"),
                                      "role IN ('agent', 'supervisor', 'admin')")
        batch.drop_column("must_change_password")
        batch.drop_column("department")
