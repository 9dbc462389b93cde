"""ORM classes of the recorder (migration 0003_recordings): the recording index, deletions
under retention, and a general audit log (who did what to what, when; refusals too).

The index links each recording to its call by call_id (the Linkedid); the call's work orders
are found through work_orders.call_id, so an order written after the call still links.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cti.db.models import Base

RECORDING_KINDS: tuple[str, ...] = ("agent", "ivr")
INDEXED_BY: tuple[str, ...] = ("event", "reconcile")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Recording(Base):
    """One recorded leg: a file under [recorder] storage_dir named by its call."""

    __tablename__ = "recordings"
    __table_args__ = (
        CheckConstraint(_in("kind", RECORDING_KINDS), name="kind"),
        CheckConstraint(_in("indexed_by", INDEXED_BY), name="indexed_by"),
        CheckConstraint("size_bytes >= 0 AND duration_s >= 0", name="sizes"),
        Index(None, "agent_id", "started_at"),
        Index(None, "caller_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    leg_id: Mapped[str] = mapped_column(String(64))
    rel_path: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    seat: Mapped[str | None] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(String(16))
    queue: Mapped[str | None] = mapped_column(String(32))
    caller_number: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(index=True)
    duration_s: Mapped[float] = mapped_column(Float)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    indexed_at: Mapped[datetime] = mapped_column()
    indexed_by: Mapped[str] = mapped_column(String(16))
    # set when retention deleted the file; the row stays as the record of what existed
    deleted_at: Mapped[datetime | None] = mapped_column()


class RecordingDeletion(Base):
    """Every file deleted under retention: what, why (category, days), when and by whom."""

    __tablename__ = "recording_deletions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[int] = mapped_column(Integer, index=True)
    call_id: Mapped[str] = mapped_column(String(64))
    rel_path: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(24))
    retention_days: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column()
    deleted_at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))


class AuditLog(Base):
    """Who did what to what, when, and whether it was allowed (refusals are logged too).

    General on purpose: recording access writes action `recording.*`; supervision may write
    `supervision.*` here as well.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "actor", "at"), Index(None, "target"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(48))
    target: Mapped[str | None] = mapped_column(String(128))
    allowed: Mapped[bool] = mapped_column(Boolean)
    client_ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
