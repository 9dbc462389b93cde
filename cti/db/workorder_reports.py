"""Work-order figures of the workload reports (issue 15 §4): per local day and order type, into
report_workorder_days (long form, additive), and the report that rolls days up into weeks and
months. REPORTS.md defines every figure.

Each figure belongs to the day of the moment it became known, so a day is final once it is
over: orders created that day; SLA clocks due that day (met: stopped at or before due; breached:
not stopped by then); urges, return visits and lifecycle steps taken that day. The aggregator
counts whole days after a high-water mark, each in one transaction with the mark's move.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from cti.db.models import WORK_ORDER_STEPS, WorkOrder, WorkOrderEvent
from cti.db.models_reports import ReportMark, ReportWorkOrderDay
from cti.db.models_workorders import WorkOrderClock

logger = logging.getLogger(__name__)

MARK = "workorders"
SETTLE = timedelta(minutes=5)  # a day is counted this long after its local midnight
MAX_DAYS = 31  # days one run counts at most
PERIODS = ("day", "week", "month")


def clock_kind(name: str, started: datetime, due: datetime) -> str:
    """Pure: an SLA clock's kind, its name and window: 'arrival 45 min', 'restore 8 h'."""
    minutes = round((due - started).total_seconds() / 60)
    span = f"{minutes // 60} h" if minutes >= 240 and minutes % 60 == 0 else f"{minutes} min"
    return f"{name} {span}"


def _window(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return (datetime.combine(first, time(0), tz),
            datetime.combine(last + timedelta(days=1), time(0), tz))


def aggregate_days(s: Session, first: date, last: date, *, tz: ZoneInfo) -> int:
    """Recount the local days first..last from the raw rows, in the caller's unit of work;
    returns the rows written."""
    start, end = _window(first, last, tz)
    acc: dict[tuple[date, str, str], list[float]] = defaultdict(lambda: [0, 0.0])

    def add(at: datetime, otype: str, figure: str, secs: float = 0.0) -> None:
        cell = acc[(at.astimezone(tz).date(), otype, figure)]
        cell[0] += 1
        cell[1] += secs

    for at, otype in s.execute(select(WorkOrder.created_at, WorkOrder.type)
                               .where(WorkOrder.created_at >= start,
                                      WorkOrder.created_at < end)):
        add(at, otype, "created")
    for c, otype in s.execute(
            select(WorkOrderClock, WorkOrder.type).join(WorkOrder)
            .where(WorkOrderClock.due_at >= start, WorkOrderClock.due_at < end)):
        if c.stopped_by == "linked" and c.stopped_at is not None and c.stopped_at <= c.due_at:
            continue  # it became a child (子单): its master's clock answers for it
        kind = clock_kind(c.name, c.started_at, c.due_at)
        met = c.stopped_at is not None and c.stopped_at <= c.due_at
        add(c.due_at, otype, f"sla {kind} {'met' if met else 'breached'}")
    steps = set(WORK_ORDER_STEPS) | {"urged"}
    events = s.execute(
        select(WorkOrderEvent.work_order_id, WorkOrderEvent.step, WorkOrderEvent.at,
               WorkOrderEvent.id, WorkOrder.type, WorkOrder.satisfaction)
        .join(WorkOrder)
        .where(WorkOrderEvent.work_order_id.in_(
            select(WorkOrderEvent.work_order_id).where(WorkOrderEvent.at >= start,
                                                       WorkOrderEvent.at < end)),
               WorkOrderEvent.step.in_(steps), WorkOrderEvent.at < end)
        .order_by(WorkOrderEvent.work_order_id, WorkOrderEvent.at, WorkOrderEvent.id)).all()
    previous: dict[int, datetime] = {}
    for order_id, step, at, _id, otype, satisfaction in events:
        inside = at >= start
        if step == "urged":
            if inside:
                add(at, otype, "urged")
            continue
        before = previous.get(order_id)
        previous[order_id] = at
        if not inside:
            continue
        if before is not None:
            add(at, otype, f"step {step}", (at - before).total_seconds())
        if step == "return_visit" and satisfaction in ("satisfied", "unsatisfied"):
            add(at, otype, f"return_visit {satisfaction}")
    s.execute(delete(ReportWorkOrderDay).where(ReportWorkOrderDay.day >= first,
                                               ReportWorkOrderDay.day <= last))
    rows = [{"day": d, "type": t, "figure": f, "n": int(v[0]), "total_s": float(v[1])}
            for (d, t, f), v in acc.items()]
    if rows:
        s.execute(insert(ReportWorkOrderDay), rows)
    return len(rows)


def aggregate_pending(s: Session, now: datetime, *, tz: ZoneInfo) -> tuple[date, date] | None:
    """The whole local days from the mark to yesterday (SETTLE after midnight), at most
    MAX_DAYS, counted in the caller's unit of work with the mark moved past them."""
    last = (now - SETTLE).astimezone(tz).date() - timedelta(days=1)
    mark = s.scalars(select(ReportMark).where(ReportMark.name == MARK)
                     .with_for_update()).one_or_none()
    if mark is None:
        first_at = s.scalar(select(func.min(WorkOrder.created_at)))
        if first_at is None:
            return None
        mark = ReportMark(name=MARK, done_until=datetime.combine(
            first_at.astimezone(tz).date(), time(0), tz))
        s.add(mark)
        s.flush()
    first = mark.done_until.astimezone(tz).date()
    last = min(last, first + timedelta(days=MAX_DAYS - 1))
    if last < first:
        return None
    n = aggregate_days(s, first, last, tz=tz)
    mark.done_until = datetime.combine(last + timedelta(days=1), time(0), tz)
    s.flush()
    logger.info("work-order report: %s to %s counted (%d rows)", first, last, n)
    return first, last


def run_pending(sessions: sessionmaker[Session], now: datetime, *, tz: ZoneInfo) -> int:
    """Catch up to yesterday, one transaction per run; returns how many runs counted days."""
    n = 0
    while True:
        with sessions.begin() as s:
            if aggregate_pending(s, now, tz=tz) is None:
                return n
        n += 1


def rebuild(sessions: sessionmaker[Session], first: date, last: date, *, tz: ZoneInfo) -> int:
    """Recount the local days first..last, a month per transaction; the mark stays."""
    written = 0
    d = first
    while d <= last:
        upto = min(last, d + timedelta(days=MAX_DAYS - 1))
        with sessions.begin() as s:
            written += aggregate_days(s, d, upto, tz=tz)
        d = upto + timedelta(days=1)
    return written


@dataclass(frozen=True)
class WorkOrderRow:
    """One period's figures of one order type (None: all types)."""

    period: date
    type: str | None
    counts: dict[str, int]
    seconds: dict[str, float]

    def figures(self) -> dict[str, Any]:
        """The derived figures (REPORTS.md): SLA compliance per clock kind, return-visit
        satisfaction, average seconds per lifecycle step; None without a denominator."""
        c = self.counts
        out: dict[str, Any] = {"created": c.get("created", 0), "urged": c.get("urged", 0)}
        kinds = sorted({f.rsplit(" ", 1)[0][4:] for f in c if f.startswith("sla ")})
        for kind in kinds:
            met, breached = c.get(f"sla {kind} met", 0), c.get(f"sla {kind} breached", 0)
            out[f"sla {kind} met"] = met
            out[f"sla {kind} breached"] = breached
            out[f"sla {kind} compliance"] = round(met / (met + breached), 4) \
                if met + breached else None
        out["overdue"] = sum(v for f, v in c.items() if f.startswith("sla ")
                             and f.endswith(" breached"))
        sat, unsat = c.get("return_visit satisfied", 0), c.get("return_visit unsatisfied", 0)
        out["return_visits"] = sat + unsat
        out["return_visit_satisfaction"] = round(sat / (sat + unsat), 4) if sat + unsat \
            else None
        for step in WORK_ORDER_STEPS[1:]:
            n = c.get(f"step {step}", 0)
            out[f"avg {step} s"] = round(self.seconds.get(f"step {step}", 0.0) / n, 1) \
                if n else None
        return out


def _period(d: date, period: str) -> date:
    if period == "week":
        return d - timedelta(days=d.weekday())
    if period == "month":
        return d.replace(day=1)
    return d


def workorder_report(s: Session, first: date, last: date, *, period: str,
                     by_type: bool) -> list[WorkOrderRow]:
    """The figures of the local days first..last per period (day, week, month), per order
    type or for all, from report_workorder_days only."""
    if period not in PERIODS:
        raise ValueError(f"period one of {PERIODS}")
    t = ReportWorkOrderDay
    group = [t.day, t.figure] + ([t.type] if by_type else [])
    q = (select(*group, func.sum(t.n), func.sum(t.total_s))
         .where(t.day >= first, t.day <= last).group_by(*group))
    counts: dict[tuple[date, str | None], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    secs: dict[tuple[date, str | None], dict[str, float]] = defaultdict(
        lambda: defaultdict(float))
    for r in s.execute(q):
        row: tuple[Any, ...] = tuple(r)
        key = (_period(row[0], period), str(row[2]) if by_type else None)
        counts[key][str(row[1])] += int(row[-2] or 0)
        secs[key][str(row[1])] += float(row[-1] or 0.0)
    return [WorkOrderRow(period=p, type=ty, counts=dict(counts[(p, ty)]),
                         seconds=dict(secs[(p, ty)]))
            for p, ty in sorted(counts, key=lambda k: (k[0], k[1] or ""))]


def workorder_report_in(sessions: sessionmaker[Session], first: date, last: date, *,
                        period: str, by_type: bool) -> list[WorkOrderRow]:
    """workorder_report in a unit of work of its own."""
    with sessions() as s:
        return workorder_report(s, first, last, period=period, by_type=by_type)


def table_rows(rows: list[WorkOrderRow]) -> tuple[list[str], list[dict[str, Any]]]:
    """The rows as flat dicts with one header for all (a figure missing in a row: None)."""
    flat = [{"period": r.period.isoformat(), "type": r.type, **r.figures()} for r in rows]
    header: list[str] = []
    for row in flat:
        header.extend(k for k in row if k not in header)
    return header, flat
