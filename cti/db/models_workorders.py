"""ORM classes of the work-order lifecycle: SLA clocks and their escalation marks (0003_workorders,
0004_workorder_alerts).

The work order itself and its events stay in cti.db.models (WorkOrder, WorkOrderEvent).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cti.db.models import Base, WorkOrder
from workorders.lifecycle import ClockView, next_alert_at, threshold_time


class WorkOrderClock(Base):
    """One SLA clock of an order (arrival, restore): it runs from started_at towards due_at
    until the order reaches the `stops_at` step; `stopped_at` is then set."""

    __tablename__ = "work_order_clocks"
    __table_args__ = (
        UniqueConstraint("work_order_id", "name"),
        CheckConstraint("due_at > started_at", name="window"),
        # the escalation tick reads running clocks only
        Index(None, "stopped_at", "due_at"),
        # ... and of those only the ones with an alert due; at-risk lists those past warn_at
        Index(None, "stopped_at", "next_alert_at"),
        Index(None, "stopped_at", "warn_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    work_order_id: Mapped[int] = mapped_column(
        ForeignKey("work_orders.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column()
    due_at: Mapped[datetime] = mapped_column()
    stops_at: Mapped[str] = mapped_column(String(24))
    stopped_at: Mapped[datetime | None] = mapped_column()
    # why it stopped: the step reached, or "linked" when the order became a child (子单)
    stopped_by: Mapped[str | None] = mapped_column(String(24))
    # when the first threshold (80%) is reached: from then on the order is at risk
    warn_at: Mapped[datetime | None] = mapped_column()
    # when the next threshold not yet alerted is reached; null once all are (0004)
    next_alert_at: Mapped[datetime | None] = mapped_column()

    work_order: Mapped[WorkOrder] = relationship()
    escalations: Mapped[list[WorkOrderEscalation]] = relationship(
        back_populates="clock", order_by="WorkOrderEscalation.percent",
        cascade="all, delete-orphan", passive_deletes=True)

    @classmethod
    def start(cls, work_order_id: int, name: str, started_at: datetime, due_at: datetime,
              stops_at: str, thresholds: tuple[float, ...]) -> WorkOrderClock:
        """A new running clock with its alert times for these escalation thresholds."""
        view = ClockView(name, started_at, due_at)
        return cls(work_order_id=work_order_id, name=name, started_at=started_at,
                   due_at=due_at, stops_at=stops_at,
                   warn_at=threshold_time(view, min(thresholds)),
                   next_alert_at=next_alert_at(view, thresholds))


class WorkOrderEscalation(Base):
    """A threshold a clock crossed, alerted to the supervisors once: the unique (clock, percent)
    makes a repeated or concurrent escalation tick insert nothing and publish nothing."""

    __tablename__ = "work_order_escalations"
    __table_args__ = (
        UniqueConstraint("clock_id", "percent"),
        CheckConstraint("level IN ('warning', 'breach')", name="level"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clock_id: Mapped[int] = mapped_column(ForeignKey("work_order_clocks.id", ondelete="CASCADE"))
    # the threshold in whole percent (80, 100): an integer compares exactly, a float may not
    percent: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(8))
    crossed_at: Mapped[datetime] = mapped_column()
    alerted_at: Mapped[datetime] = mapped_column(index=True)

    clock: Mapped[WorkOrderClock] = relationship(back_populates="escalations")
