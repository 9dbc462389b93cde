"""ORM classes of the inbound caller lists (issue 15 §3, migration 0017_caller_lists): the
nuisance list (骚扰来电名单: the IVR plays such a caller a warning and ends the call) and the VIP
list (a number answered ahead of the queue, besides an account's important-customer flag), and
the agents' nuisance reports from which a number joins the nuisance list by itself after
`[callers] nuisance_after` of them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cti.db.models import Base

LIST_KINDS: tuple[str, ...] = ("nuisance", "vip")


class CallerListEntry(Base):
    """A number (national form) on one of the lists, with why, who and when."""

    __tablename__ = "caller_lists"
    __table_args__ = (
        CheckConstraint("kind IN ('nuisance', 'vip')", name="kind"),
    )

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(String(200))
    added_by: Mapped[str] = mapped_column(String(64))  # a staff id, or "system" (the reports)
    added_at: Mapped[datetime] = mapped_column()


class NuisanceReport(Base):
    """An agent's report that a call was abusive (骚扰): one per call."""

    __tablename__ = "nuisance_reports"
    __table_args__ = (
        Index("ix_nuisance_reports_number_reported_at", "number", "reported_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), unique=True)
    number: Mapped[str] = mapped_column(String(32))
    reported_by: Mapped[str] = mapped_column(String(16))
    reported_at: Mapped[datetime] = mapped_column()
