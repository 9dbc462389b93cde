"""ORM classes of post-call transcription (migration 0009_transcripts, issue 13): one job per
recording (the resumable queue), the transcript with word timings, and the keyword alerts it
raised for supervisors.

Each row names its recording by id (recordings.id); a call's legs are found through the
recording's call_id. The job's rules (which state follows which) are speech.jobs'.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cti.db.models import Base

# speech.jobs.STATES and ALERT_STATUSES (a unit test keeps them in step; the database layer
# does not import the domain)
JOB_STATES: tuple[str, ...] = ("queued", "running", "done", "failed")
ALERT_STATUSES: tuple[str, ...] = ("open", "order_created", "dismissed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class TranscriptionJob(Base):
    """The transcription of one recording: queued at indexing (or by the sweep at start), run
    by one worker at a time, retried up to [speech] transcribe_attempts."""

    __tablename__ = "transcription_jobs"
    __table_args__ = (
        CheckConstraint(_in("state", JOB_STATES), name="state"),
        CheckConstraint("attempts >= 0", name="attempts"),
        # the workers take the oldest queued job first
        Index(None, "state", "queued_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), unique=True)
    state: Mapped[str] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # the language it was (or is being) transcribed in; null until a worker picks it
    lang: Mapped[str | None] = mapped_column(String(8))
    queued_at: Mapped[datetime] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class Transcript(Base):
    """What the full-vocabulary recogniser heard in one recording (one leg, both directions as
    MixMonitor mixed them). words: [{"w": word, "s": start s, "e": end s, "c": confidence}]."""

    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), unique=True)
    lang: Mapped[str] = mapped_column(String(8))
    # searched with LIKE (cti.db.transcripts.text_matches): no index serves a substring
    # search on both backends, so a search scans the transcripts of the recordings it filters
    text: Mapped[str] = mapped_column(Text)
    words: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    model: Mapped[str] = mapped_column(String(255))  # the model folder it was made with
    created_at: Mapped[datetime] = mapped_column(index=True)


class KeywordAlert(Base):
    """A transcript held words of [speech] alert_keywords: supervisors were alerted and may
    turn it into a complaint work order (order_created) or dismiss it."""

    __tablename__ = "keyword_alerts"
    __table_args__ = (
        CheckConstraint(_in("status", ALERT_STATUSES), name="status"),
        Index(None, "status", "raised_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # one alert per recording: a job run again after a crash does not alert twice
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), unique=True)
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    seat: Mapped[str | None] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(String(16))
    caller_number: Mapped[str | None] = mapped_column(String(32))
    keywords: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # {word, start}
    excerpt: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(16))
    work_order_number: Mapped[str | None] = mapped_column(String(11))
    handled_by: Mapped[str | None] = mapped_column(String(64))
    handled_at: Mapped[datetime | None] = mapped_column()
