"""ORM classes of supervision (migration 0003_supervision): every listen/whisper/barge session
and every refused attempt (who, whom, which call, the mode, when), and each mode's period."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cti.db.models import Base

MODES: tuple[str, ...] = ("listen", "whisper", "barge")
OUTCOMES: tuple[str, ...] = ("allowed", "refused")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class SupervisionSession(Base):
    """One supervision request. Allowed ones run from requested_at (the supervisor's phone
    rings) through answered_at to ended_at; refused ones end at once, with the reason.

    `mode` is the mode first asked for (as given, so a refused bad mode is on record too);
    the modes actually used, with their times, are in supervision_modes.
    """

    __tablename__ = "supervision_sessions"
    __table_args__ = (
        CheckConstraint(_in("outcome", OUTCOMES), name="outcome"),
        CheckConstraint("outcome = 'allowed' OR refusal IS NOT NULL", name="refusal_reason"),
        CheckConstraint("ended_at IS NULL OR ended_at >= requested_at", name="window"),
        Index(None, "supervisor_id", "requested_at"),
        Index(None, "agent_id", "requested_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(String(32), unique=True)
    supervisor_id: Mapped[str] = mapped_column(String(16))  # who
    supervisor_role: Mapped[str] = mapped_column(String(16))
    endpoint: Mapped[str | None] = mapped_column(String(16))  # the phone rung (sup01...)
    call_id: Mapped[str | None] = mapped_column(String(64), index=True)  # which call
    agent_id: Mapped[str | None] = mapped_column(String(16))  # whom
    seat: Mapped[str | None] = mapped_column(String(16))
    mode: Mapped[str | None] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(8))
    refusal: Mapped[str | None] = mapped_column(String(32))
    via: Mapped[str] = mapped_column(String(8))  # mqtt | web
    requested_at: Mapped[datetime] = mapped_column(index=True)
    answered_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    end_reason: Mapped[str | None] = mapped_column(String(32))


class SupervisionMode(Base):
    """A period of one mode within a session: listen from t0, whisper from t1, ..."""

    __tablename__ = "supervision_modes"
    __table_args__ = (
        CheckConstraint(_in("mode", MODES), name="mode"),
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="window"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("supervision_sessions.session_id"), index=True)
    mode: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
