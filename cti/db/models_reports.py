"""ORM classes of the workload reports (migration 0016_report_tables, issue 15 §4): additive
counts and sums per 15-minute interval, skill and agent, and the aggregator's high-water mark.

Only sums and counts are stored, never an average or a rate: 30/60 minutes, a day, a week, a
month and the whole center are then a SQL GROUP BY over these rows (REPORTS.md has every
figure's formula). The key columns hold '' rather than NULL for "no skill" / "no agent", so the
primary key is the same on SQLite and PostgreSQL (NULLs are never equal in a key).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cti.db.models import Base

# the columns of ReportInterval that are counts (int) and sums of seconds (float), in the
# order the exports show them
COUNT_COLUMNS: tuple[str, ...] = (
    "offered", "answered", "answered_in_sl", "abandoned", "abandoned_short",
    "deflected", "transfers", "rona", "survey_offered", "survey_answered", "survey_score_sum",
    "callbacks_requested", "callbacks_after_sl", "callbacks_connected", "holds")
SECONDS_COLUMNS: tuple[str, ...] = (
    "answer_wait_s", "talk_s", "hold_s", "acw_s", "ready_s", "not_ready_s", "reserved_s",
    "on_call_s")


class ReportInterval(Base):
    """One 15-minute interval's figures of one skill ('' none) and one agent ('' none)."""

    __tablename__ = "report_intervals"
    # day, week and month reports read by the center's local day
    __table_args__ = (Index(None, "local_day"),)

    interval_start: Mapped[datetime] = mapped_column(primary_key=True)
    skill: Mapped[str] = mapped_column(String(32), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    # the interval's day in the center's zone ([ivr] timezone) when it was counted: a change
    # of zone needs `hotline reports rebuild`
    local_day: Mapped[date] = mapped_column(Date)
    # calls (by the interval their record ended in; REPORTS.md)
    offered: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    answered_in_sl: Mapped[int] = mapped_column(Integer, default=0)
    abandoned: Mapped[int] = mapped_column(Integer, default=0)        # after service_level_s
    abandoned_short: Mapped[int] = mapped_column(Integer, default=0)  # within it
    deflected: Mapped[int] = mapped_column(Integer, default=0)
    transfers: Mapped[int] = mapped_column(Integer, default=0)
    answer_wait_s: Mapped[float] = mapped_column(Float, default=0.0)  # queued -> answered
    # answered -> ended, less the caller's time on hold (hold_s)
    talk_s: Mapped[float] = mapped_column(Float, default=0.0)
    survey_offered: Mapped[int] = mapped_column(Integer, default=0)
    survey_answered: Mapped[int] = mapped_column(Integer, default=0)
    survey_score_sum: Mapped[int] = mapped_column(Integer, default=0)
    # agent time (agent_state_log, split at interval edges); acw_s is wrap_up time
    rona: Mapped[int] = mapped_column(Integer, default=0)
    ready_s: Mapped[float] = mapped_column(Float, default=0.0)
    not_ready_s: Mapped[float] = mapped_column(Float, default=0.0)
    reserved_s: Mapped[float] = mapped_column(Float, default=0.0)
    on_call_s: Mapped[float] = mapped_column(Float, default=0.0)
    acw_s: Mapped[float] = mapped_column(Float, default=0.0)
    # callbacks (0020): requested while waiting (after service_level_s: callbacks_after_sl),
    # and connected (the agent answered the callback); holds and their seconds (call_holds)
    callbacks_requested: Mapped[int] = mapped_column(Integer, default=0)
    callbacks_after_sl: Mapped[int] = mapped_column(Integer, default=0)
    callbacks_connected: Mapped[int] = mapped_column(Integer, default=0)
    holds: Mapped[int] = mapped_column(Integer, default=0)
    hold_s: Mapped[float] = mapped_column(Float, default=0.0)


class ReportDay(Base):
    """The same figures summed per local day, skill and agent: what day, week and month
    reports read (90 days of a 50-seat center are ~20,000 rows here against ~600,000 interval
    rows). Written from report_intervals in the transaction that wrote those."""

    __tablename__ = "report_days"

    local_day: Mapped[date] = mapped_column(Date, primary_key=True)
    skill: Mapped[str] = mapped_column(String(32), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    offered: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    answered_in_sl: Mapped[int] = mapped_column(Integer, default=0)
    abandoned: Mapped[int] = mapped_column(Integer, default=0)
    abandoned_short: Mapped[int] = mapped_column(Integer, default=0)
    deflected: Mapped[int] = mapped_column(Integer, default=0)
    transfers: Mapped[int] = mapped_column(Integer, default=0)
    answer_wait_s: Mapped[float] = mapped_column(Float, default=0.0)
    talk_s: Mapped[float] = mapped_column(Float, default=0.0)
    survey_offered: Mapped[int] = mapped_column(Integer, default=0)
    survey_answered: Mapped[int] = mapped_column(Integer, default=0)
    survey_score_sum: Mapped[int] = mapped_column(Integer, default=0)
    rona: Mapped[int] = mapped_column(Integer, default=0)
    ready_s: Mapped[float] = mapped_column(Float, default=0.0)
    not_ready_s: Mapped[float] = mapped_column(Float, default=0.0)
    reserved_s: Mapped[float] = mapped_column(Float, default=0.0)
    on_call_s: Mapped[float] = mapped_column(Float, default=0.0)
    acw_s: Mapped[float] = mapped_column(Float, default=0.0)
    # callbacks (0020): requested while waiting (after service_level_s: callbacks_after_sl),
    # and connected (the agent answered the callback); holds and their seconds (call_holds)
    callbacks_requested: Mapped[int] = mapped_column(Integer, default=0)
    callbacks_after_sl: Mapped[int] = mapped_column(Integer, default=0)
    callbacks_connected: Mapped[int] = mapped_column(Integer, default=0)
    holds: Mapped[int] = mapped_column(Integer, default=0)
    hold_s: Mapped[float] = mapped_column(Float, default=0.0)


class ReportWorkOrderDay(Base):
    """One local day's work-order figure of one order type, long form: `figure` names it
    (cti.db.workorder_reports), `n` counts and `total_s` sums seconds where it is a time."""

    __tablename__ = "report_workorder_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    type: Mapped[str] = mapped_column(String(24), primary_key=True)
    figure: Mapped[str] = mapped_column(String(48), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)
    total_s: Mapped[float] = mapped_column(Float, default=0.0)


class ReportMark(Base):
    """An aggregator's high-water mark, one row per report: 'workload' (every interval before
    `done_until` is counted, once) and 'workorders' (every local day before its date)."""

    __tablename__ = "report_marks"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    done_until: Mapped[datetime] = mapped_column()
