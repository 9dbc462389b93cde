"""ORM classes of the skills' service hours (服务时间, issue 15 §3, migration 0018_calendars): a
skill's weekly hours and after-hours action, and its dated exceptions (holidays, special days).
The rules (open or not, where a closed skill's calls go) are acd.calendar's: this layer keeps
what the console and the CLI set."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, CheckConstraint, Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from cti.db.models import Base


class SkillCalendar(Base):
    """A skill's weekly hours (`week`: {"mon": "08:00-20:00", ...}, acd.calendar.parse_hours'
    text; a day left out is closed) and what its calls do when it is closed."""

    __tablename__ = "skill_calendars"
    __table_args__ = (
        CheckConstraint("after_hours IN ('route', 'callback')", name="after_hours"),
    )

    skill: Mapped[str] = mapped_column(String(32), primary_key=True)
    week: Mapped[dict[str, str]] = mapped_column(JSON)
    after_hours: Mapped[str] = mapped_column(String(12))
    route_to: Mapped[str | None] = mapped_column(String(32))
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column()


class CalendarDay(Base):
    """A holiday (closed all day) or a special day (its own hours) of one skill's calendar."""

    __tablename__ = "calendar_days"
    __table_args__ = (
        CheckConstraint("kind IN ('holiday', 'special')", name="kind"),
    )

    skill: Mapped[str] = mapped_column(
        String(32), ForeignKey("skill_calendars.skill", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    hours: Mapped[str] = mapped_column(String(120))   # parse_hours' text; "closed" on a holiday
    note: Mapped[str] = mapped_column(String(64))      # 国庆节, 调休, ...
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column()
