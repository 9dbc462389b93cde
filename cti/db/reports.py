"""Workload reports (工作量统计, issue 15 §4): the aggregator that folds finished calls and agent
state changes into report_intervals (additive counts and sums per 15-minute interval, skill and
agent), and the report that rolls them up by SQL GROUP BY. REPORTS.md defines every figure.

The aggregator works on whole 15-minute intervals: it recomputes an interval from the raw rows
(delete, then insert) and moves the high-water mark past it in the same transaction, so an
interval is counted exactly once, also across a restart, and a rebuild of any range is safe.
An interval is aggregated once it is `settle_s` old, so late writes (a journal replay after a
short database outage, a wrap-up that ends after the call) are in it; `rebuild` recounts any
range for what came later still.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.orm import Session, sessionmaker

from cti.db.calls import CLICK_TO_CALL_DNIS
from cti.db.models import AgentStateLog, Call, CallHold
from cti.db.models_reports import (
    COUNT_COLUMNS,
    SECONDS_COLUMNS,
    ReportDay,
    ReportInterval,
    ReportMark,
)

logger = logging.getLogger(__name__)

INTERVAL = timedelta(minutes=15)
MARK = "workload"
# the ACD's default (acd.model.AcdConfig.service_level_s): callers pass the configured one
SERVICE_LEVEL_S = 20.0
SETTLE_S = 300.0  # an interval is aggregated this long after it ended
# the state before an interval is the agent's last change at most this long before it (an
# agent with no change for a day is taken as logged out)
STATE_LOOKBACK = timedelta(days=1)
CHUNK = timedelta(days=1)  # one transaction's worth of intervals
PERIODS = ("15", "30", "60", "day", "week", "month")
BYS = ("center", "skill", "agent")
# the state columns agent time goes to (logged_out: not staffed, nowhere)
_STATE_COLUMN = {"ready": "ready_s", "not_ready": "not_ready_s", "reserved": "reserved_s",
                 "on_call": "on_call_s", "wrap_up": "acw_s"}
_CALL_STATES = ("reserved", "on_call", "wrap_up")


def floor_interval(t: datetime) -> datetime:
    """Pure: the start of the 15-minute interval holding t (UTC, aware)."""
    t = t.astimezone(UTC)
    return t.replace(minute=t.minute - t.minute % 15, second=0, microsecond=0)


def _intervals(start: datetime, end: datetime) -> Iterator[datetime]:
    t = start
    while t < end:
        yield t
        t += INTERVAL


Key = tuple[datetime, str, str]


class _Acc:
    """The rows being built for a range: (interval, skill, agent) -> column -> value."""

    def __init__(self) -> None:
        self.rows: dict[Key, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def add(self, key: Key, column: str, value: float = 1) -> None:
        self.rows[key][column] += value


def _holds(s: Session, ended_in: Any) -> dict[str, list[tuple[datetime, datetime]]]:
    """The holds (call_holds) of the calls `ended_in` selects, by call."""
    out: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for call_id, started, ended in s.execute(
            select(CallHold.call_id, CallHold.started_at, CallHold.ended_at)
            .where(CallHold.call_id.in_(ended_in))):
        out[call_id].append((started, ended))
    return out


def hold_seconds(holds: Iterable[tuple[datetime, datetime]], answered: datetime,
                 ended: datetime) -> float:
    """Pure: the seconds of `holds` inside the call's answered..ended (a hold outside it is a
    clock's disagreement, not time the agent held the caller)."""
    total = 0.0
    for a, b in holds:
        lo, hi = max(a, answered), min(b, ended)
        if hi > lo:
            total += (hi - lo).total_seconds()
    return total


def _add_handled(acc: _Acc, key: Key, c: Any, ended: datetime,
                 holds: list[tuple[datetime, datetime]], agents_on: int) -> None:
    """An answered call's (or connected callback's) work: talk less hold, the holds, and the
    transfers (each agent after the first who was on the call)."""
    span = max(0.0, (ended - c.answered_at).total_seconds())
    held = min(span, hold_seconds(holds, c.answered_at, ended))
    acc.add(key, "talk_s", span - held)
    acc.add(key, "hold_s", held)
    acc.add(key, "holds", sum(1 for a, b in holds if b > c.answered_at and a < ended))
    acc.add(key, "transfers", max(0, agents_on - 1))


def _add_calls(s: Session, acc: _Acc, start: datetime, end: datetime, sl_s: float) -> None:
    ended_in = select(Call.call_id).where(Call.ended_at >= start, Call.ended_at < end,
                                          Call.answered_at.is_not(None))
    calls = s.execute(
        select(Call.call_id, Call.skill, Call.agent_id, Call.outcome, Call.queued_at,
               Call.callback_requested_at, Call.answered_at, Call.ended_at, Call.survey_at,
               Call.survey_skill, Call.survey_agent_id, Call.satisfaction)
        .where(Call.ended_at >= start, Call.ended_at < end,
               Call.dnis != CLICK_TO_CALL_DNIS)).all()
    # a call answered by more than one agent was transferred (blind, or a consult completed):
    # each agent after the first is one transfer
    agents_on = dict(s.execute(
        select(AgentStateLog.call_id, func.count(AgentStateLog.agent_id.distinct()))
        .where(AgentStateLog.state == "on_call", AgentStateLog.call_id.in_(ended_in))
        .group_by(AgentStateLog.call_id)).all())
    holds = _holds(s, ended_in)
    for c in calls:
        ended = c.ended_at
        at = floor_interval(ended)
        key = (at, c.skill or "", c.agent_id or "")
        if c.outcome == "deflected":
            acc.add(key, "deflected")
        if c.queued_at is not None and c.callback_requested_at is not None:
            # the caller asked to be called back: offered, neither answered nor abandoned;
            # after service_level_s it is a miss of the SL, as the ACD counts it
            acc.add(key, "offered")
            acc.add(key, "callbacks_requested")
            late = (c.callback_requested_at - c.queued_at).total_seconds() > sl_s
            acc.add(key, "callbacks_after_sl", 1 if late else 0)
            if c.answered_at is not None:
                acc.add(key, "callbacks_connected")
                _add_handled(acc, key, c, ended, holds.get(c.call_id, []),
                             agents_on.get(c.call_id, 1))
        elif c.queued_at is not None:
            if c.answered_at is not None:
                wait = (c.answered_at - c.queued_at).total_seconds()
                acc.add(key, "offered")
                acc.add(key, "answered")
                acc.add(key, "answered_in_sl", 1 if wait <= sl_s else 0)
                acc.add(key, "answer_wait_s", wait)
                _add_handled(acc, key, c, ended, holds.get(c.call_id, []),
                             agents_on.get(c.call_id, 1))
            elif (ended - c.queued_at).total_seconds() <= sl_s:
                acc.add(key, "abandoned_short")
            else:
                acc.add(key, "offered")
                acc.add(key, "abandoned")
        if c.survey_at is not None:
            skey = (at, c.survey_skill or "", c.survey_agent_id or "")
            acc.add(skey, "survey_offered")
            if c.satisfaction is not None:
                acc.add(skey, "survey_answered")
                acc.add(skey, "survey_score_sum", c.satisfaction)


def _add_agent_time(s: Session, acc: _Acc, start: datetime, end: datetime) -> None:
    cols = (AgentStateLog.id, AgentStateLog.agent_id, AgentStateLog.state,
            AgentStateLog.reason, AgentStateLog.at, AgentStateLog.call_id)
    last = (select(AgentStateLog.agent_id, func.max(AgentStateLog.at).label("at"))
            .where(AgentStateLog.at < start, AgentStateLog.at >= start - STATE_LOOKBACK)
            .group_by(AgentStateLog.agent_id).subquery())
    before = s.execute(select(*cols).join(last, (last.c.agent_id == AgentStateLog.agent_id)
                                          & (last.c.at == AgentStateLog.at))).all()
    inside = s.execute(select(*cols).where(AgentStateLog.at >= start,
                                           AgentStateLog.at < end)).all()
    by_agent: dict[str, list[Any]] = defaultdict(list)
    for r in [*before, *inside]:
        by_agent[r.agent_id].append(r)
    call_ids = {r.call_id for r in inside if r.call_id and r.state in _CALL_STATES}
    call_ids |= {r.call_id for r in before if r.call_id and r.state in _CALL_STATES}
    skills: dict[str, str] = {}
    ids = sorted(call_ids)
    for i in range(0, len(ids), 500):
        skills.update((cid, sk or "") for cid, sk in s.execute(
            select(Call.call_id, Call.skill).where(Call.call_id.in_(ids[i:i + 500]))))
    for agent_id, rows in by_agent.items():
        rows.sort(key=lambda r: (r.at, r.id))
        for i, r in enumerate(rows):
            if r.at >= start and r.state == "not_ready" and r.reason == "rona":
                acc.add((floor_interval(r.at), "", agent_id), "rona")
            column = _STATE_COLUMN.get(r.state)
            if column is None:
                continue
            seg_from = max(r.at, start)
            seg_to = min(rows[i + 1].at if i + 1 < len(rows) else end, end)
            skill = skills.get(r.call_id, "") if r.call_id and r.state in _CALL_STATES else ""
            t = seg_from
            while t < seg_to:
                bucket = floor_interval(t)
                upto = min(bucket + INTERVAL, seg_to)
                acc.add((bucket, skill, agent_id), column, (upto - t).total_seconds())
                t = upto


def aggregate(s: Session, start: datetime, end: datetime, *, tz: ZoneInfo,
              service_level_s: float = SERVICE_LEVEL_S) -> int:
    """Recount the whole intervals in [start, end) (both on 15-minute edges) from the raw rows,
    in the caller's unit of work: their report rows are deleted and written again. Returns
    how many rows were written."""
    if start != floor_interval(start) or end != floor_interval(end):
        raise ValueError("start and end must be on 15-minute edges")
    acc = _Acc()
    _add_calls(s, acc, start, end, service_level_s)
    _add_agent_time(s, acc, start, end)
    s.execute(delete(ReportInterval).where(ReportInterval.interval_start >= start,
                                           ReportInterval.interval_start < end))
    rows = []
    for (at, skill, agent), values in acc.rows.items():
        row: dict[str, Any] = {"interval_start": at, "skill": skill[:32], "agent_id": agent[:16],
                               "local_day": at.astimezone(tz).date()}
        row.update({c: int(values.get(c, 0)) for c in COUNT_COLUMNS})
        row.update({c: float(values.get(c, 0.0)) for c in SECONDS_COLUMNS})
        rows.append(row)
    if rows:
        s.execute(insert(ReportInterval), rows)
    _roll_days(s, start.astimezone(tz).date(), (end - INTERVAL).astimezone(tz).date())
    return len(rows)


def _roll_days(s: Session, first: date, last: date) -> None:
    """report_days of the local days first..last, summed again from report_intervals."""
    names = (*COUNT_COLUMNS, *SECONDS_COLUMNS)
    s.execute(delete(ReportDay).where(ReportDay.local_day >= first,
                                      ReportDay.local_day <= last))
    keys = (ReportInterval.local_day, ReportInterval.skill, ReportInterval.agent_id)
    s.execute(insert(ReportDay).from_select(
        ["local_day", "skill", "agent_id", *names],
        select(*keys, *[func.sum(getattr(ReportInterval, c)) for c in names])
        .where(ReportInterval.local_day >= first, ReportInterval.local_day <= last)
        .group_by(*keys)))


def _first_data(s: Session) -> datetime | None:
    firsts = [s.scalar(select(func.min(Call.ended_at))),
              s.scalar(select(func.min(AgentStateLog.at)))]
    known = [f for f in firsts if f is not None]
    return floor_interval(min(known)) if known else None


def aggregate_pending(s: Session, now: datetime, *, tz: ZoneInfo,
                      service_level_s: float = SERVICE_LEVEL_S, settle_s: float = SETTLE_S,
                      chunk: timedelta = CHUNK) -> tuple[datetime, datetime] | None:
    """The minute's task, in the caller's unit of work: the intervals from the high-water mark
    to the last settled one (at most `chunk` of them), counted, and the mark moved past them.
    The mark row is locked, so two runs never count one interval twice. Returns the range
    counted, or None when nothing was due."""
    upto = floor_interval(now - timedelta(seconds=settle_s))
    mark = s.scalars(select(ReportMark).where(ReportMark.name == MARK)
                     .with_for_update()).one_or_none()
    if mark is None:
        first = _first_data(s)
        if first is None:
            return None
        mark = ReportMark(name=MARK, done_until=first)
        s.add(mark)
        s.flush()
    start = mark.done_until
    end = min(upto, start + chunk)
    if end <= start:
        return None
    n = aggregate(s, start, end, tz=tz, service_level_s=service_level_s)
    mark.done_until = end
    s.flush()
    logger.info("workload report: %s to %s counted (%d rows)", start.isoformat(),
                end.isoformat(), n)
    return start, end


def run_pending(sessions: sessionmaker[Session], now: datetime, *, tz: ZoneInfo,
                service_level_s: float = SERVICE_LEVEL_S, settle_s: float = SETTLE_S
                ) -> int:
    """Catch up to `now`, one transaction per chunk; returns how many chunks were counted."""
    n = 0
    while True:
        with sessions.begin() as s:
            done = aggregate_pending(s, now, tz=tz, service_level_s=service_level_s,
                                     settle_s=settle_s)
        if done is None:
            return n
        n += 1


def rebuild(sessions: sessionmaker[Session], start: datetime, end: datetime, *, tz: ZoneInfo,
            service_level_s: float = SERVICE_LEVEL_S) -> int:
    """Recount [start, end) (widened to 15-minute edges), a day per transaction; the mark is
    left where it is (intervals past it are counted again by the task, which is harmless).
    Returns the rows written."""
    a = floor_interval(start)
    b = floor_interval(end)
    if b < end:
        b += INTERVAL
    written = 0
    while a < b:
        upto = min(a + CHUNK, b)
        with sessions.begin() as s:
            written += aggregate(s, a, upto, tz=tz, service_level_s=service_level_s)
        a = upto
    return written


# ------------------------------------------------------------------------------- the report

@dataclass(frozen=True)
class WorkloadRow:
    """One period's figures of one key (a skill, an agent; None: the center or unknown)."""

    period: datetime  # the period's start, in the center's zone
    key: str | None
    sums: dict[str, float]

    @classmethod
    def empty(cls, period: datetime, key: str | None) -> WorkloadRow:
        """A period with nothing counted (a skill with no call yet today)."""
        return cls(period=period, key=key, sums=dict.fromkeys((*COUNT_COLUMNS,
                                                              *SECONDS_COLUMNS), 0.0))

    def figures(self) -> dict[str, Any]:
        """The derived figures (REPORTS.md): rates as fractions, times in seconds, None
        where the denominator is zero."""
        v = self.sums

        def ratio(a: float, b: float, nd: int = 4) -> float | None:
            return round(a / b, nd) if b else None

        work = v["talk_s"] + v["hold_s"] + v["acw_s"]
        handled = v["answered"] + v["callbacks_connected"]
        busy = v["on_call_s"] + v["acw_s"] + v["reserved_s"]
        staffed = busy + v["ready_s"] + v["not_ready_s"]
        out: dict[str, Any] = {c: int(v[c]) for c in COUNT_COLUMNS}
        out.update({c: round(v[c], 1) for c in SECONDS_COLUMNS})
        out.update({
            "answer_rate": ratio(handled, v["offered"]),
            "abandon_rate": ratio(v["abandoned"], v["offered"]),
            "service_level": ratio(v["answered_in_sl"], v["answered"] + v["abandoned"]
                                   + v["callbacks_after_sl"]),
            "asa_s": ratio(v["answer_wait_s"], v["answered"], 1),
            "handled": int(handled),
            "aht_s": ratio(work, handled, 1),
            "avg_talk_s": ratio(v["talk_s"], handled, 1),
            "avg_hold_s": ratio(v["hold_s"], handled, 1),
            "avg_acw_s": ratio(v["acw_s"], handled, 1),
            "occupancy": ratio(busy, busy + v["ready_s"]),
            "utilisation": ratio(v["on_call_s"] + v["acw_s"], staffed),
            "staffed_s": round(staffed, 1),
            "satisfaction": ratio(v["survey_score_sum"], v["survey_answered"], 2),
        })
        return out


FIGURE_COLUMNS: tuple[str, ...] = (
    *COUNT_COLUMNS, *SECONDS_COLUMNS, "answer_rate", "abandon_rate", "service_level", "asa_s",
    "handled", "aht_s", "avg_talk_s", "avg_hold_s", "avg_acw_s", "occupancy", "utilisation",
    "staffed_s", "satisfaction")


def period_start(local: datetime | date, period: str) -> date | datetime:
    """Pure: the start of the day/week (Monday)/month holding a local day, or, for minutes,
    of the 15/30/60-minute period holding a local time."""
    if period in ("day", "week", "month"):
        d = local.date() if isinstance(local, datetime) else local
        if period == "week":
            return d - timedelta(days=d.weekday())
        if period == "month":
            return d.replace(day=1)
        return d
    assert isinstance(local, datetime)
    minutes = int(period)
    total = local.hour * 60 + local.minute
    total -= total % minutes
    return local.replace(hour=total // 60, minute=total % 60, second=0, microsecond=0)


def _sum_columns(table: type[ReportDay] | type[ReportInterval]) -> list[Any]:
    return [func.sum(getattr(table, c)).label(c) for c in (*COUNT_COLUMNS, *SECONDS_COLUMNS)]


def workload_report(s: Session, first: date, last: date, *, tz: ZoneInfo, period: str,
                    by: str) -> list[WorkloadRow]:
    """The figures of the local days first..last per period and per `by` (center, skill,
    agent), from the report tables only: SQL sums per local day from report_days (day, week,
    month) or per interval from report_intervals (15/30/60 minutes), folded into the periods
    here."""
    if period not in PERIODS or by not in BYS:
        raise ValueError(f"period one of {PERIODS}, by one of {BYS}")
    table: type[ReportDay] | type[ReportInterval] = (
        ReportDay if period in ("day", "week", "month") else ReportInterval)
    key_col = {"center": None, "skill": table.skill, "agent": table.agent_id}[by]
    time_col = table.local_day if table is ReportDay else ReportInterval.interval_start
    group = [time_col] + ([key_col] if key_col is not None else [])
    q = (select(*group, *_sum_columns(table))
         .where(table.local_day >= first, table.local_day <= last)
         .group_by(*group))
    folded: dict[tuple[Any, str | None], dict[str, float]] = {}
    names = (*COUNT_COLUMNS, *SECONDS_COLUMNS)
    for r in s.execute(q):
        when: Any = r[0]
        if isinstance(when, datetime):
            when = when.astimezone(tz)
        elif isinstance(when, str):  # SQLite's Date in a raw group: never, but be exact
            when = date.fromisoformat(when)
        p = period_start(when, period)
        key: str | None = (str(r[1]) if r[1] else None) if key_col is not None else None
        acc = folded.setdefault((p, key), dict.fromkeys(names, 0.0))
        for name in names:
            acc[name] += float(getattr(r, name) or 0)
    out = []
    for (p, key), sums in sorted(folded.items(), key=lambda kv: (kv[0][0], kv[0][1] is None,
                                                                 kv[0][1] or "")):
        start = p if isinstance(p, datetime) else datetime(p.year, p.month, p.day, tzinfo=tz)
        out.append(WorkloadRow(period=start, key=key, sums=sums))
    return out


def workload_report_in(sessions: sessionmaker[Session], first: date, last: date, *,
                       tz: ZoneInfo, period: str, by: str) -> list[WorkloadRow]:
    """workload_report in a unit of work of its own (the desktop's and the CLI's way in)."""
    with sessions() as s:
        return workload_report(s, first, last, tz=tz, period=period, by=by)


@dataclass(frozen=True)
class TodayLive:
    """Today's figures (the center's local day, up to now) with the reports' definitions: the
    center's, each skill's, and the center's per 15-minute interval (the wallboard's trend)."""

    day: date
    center: WorkloadRow
    skills: list[WorkloadRow]
    intervals: list[WorkloadRow]


def today_live(s: Session, now: datetime, *, tz: ZoneInfo,
               service_level_s: float = SERVICE_LEVEL_S) -> TodayLive:
    """The wallboard's today, counted as the workload reports count (one service-level
    definition everywhere, REPORTS.md): the intervals the aggregator has counted are read from
    report_intervals, and the rows after its mark are counted here the same way (_add_calls,
    _add_agent_time), never written. So a request reads at most `settle_s` plus a chunk of raw
    rows once the aggregator keeps up, not the whole day's. One difference, being live: a
    call answered and still talking counts as answered already (_add_calls_in_progress)."""
    local = now.astimezone(tz)
    start = datetime(local.year, local.month, local.day, tzinfo=tz).astimezone(UTC)
    now = now.astimezone(UTC)
    mark = s.scalar(select(ReportMark.done_until).where(ReportMark.name == MARK))
    split = start if mark is None else min(max(mark.astimezone(UTC), start), now)
    names = (*COUNT_COLUMNS, *SECONDS_COLUMNS)
    cells: dict[tuple[datetime, str], dict[str, float]] = {}

    def into(at: datetime, skill: str, values: Mapping[Any, Any]) -> None:
        cell = cells.setdefault((at.astimezone(UTC), skill), dict.fromkeys(names, 0.0))
        for name in names:
            cell[name] += float(values.get(name) or 0)

    if split > start:
        q = (select(ReportInterval.interval_start, ReportInterval.skill,
                    *_sum_columns(ReportInterval))
             .where(ReportInterval.interval_start >= start, ReportInterval.interval_start < split)
             .group_by(ReportInterval.interval_start, ReportInterval.skill))
        for r in s.execute(q):
            into(r.interval_start, r.skill or "", r._mapping)
    acc = _Acc()
    if now > split:
        _add_calls(s, acc, split, now, service_level_s)
        _add_agent_time(s, acc, split, now)
    _add_calls_in_progress(s, acc, start, now, service_level_s)
    for (at, skill, _agent), values in acc.rows.items():
        into(at, skill, values)

    def row(period: datetime, key: str | None, parts: Iterable[dict[str, float]]) -> WorkloadRow:
        sums = dict.fromkeys(names, 0.0)
        for part in parts:
            for name in names:
                sums[name] += part[name]
        return WorkloadRow(period=period.astimezone(tz), key=key, sums=sums)

    day_start = start.astimezone(tz)
    by_skill: dict[str, list[dict[str, float]]] = defaultdict(list)
    by_interval: dict[datetime, list[dict[str, float]]] = defaultdict(list)
    for (at, skill), cell in cells.items():
        if skill:
            by_skill[skill].append(cell)
        by_interval[at].append(cell)
    return TodayLive(
        day=local.date(),
        center=row(day_start, None, cells.values()),
        skills=[row(day_start, k, v) for k, v in sorted(by_skill.items())],
        intervals=[row(at, None, by_interval.get(at, []))
                   for at in _intervals(start, floor_interval(now) + INTERVAL)])


def _add_calls_in_progress(s: Session, acc: _Acc, start: datetime, now: datetime,
                           sl_s: float) -> None:
    """The calls of [start, now) not ended yet: a live view counts a call answered from its
    answer (offered, answered, in SL or not, its wait), and a callback from its request
    (offered, requested, after the SL or not) and its connection, not only once the record
    has ended as the reports do; talk, hold, and so the AHT, come when it ends, and it moves
    to that interval."""
    calls = s.execute(
        select(Call.skill, Call.agent_id, Call.queued_at, Call.callback_requested_at,
               Call.answered_at)
        .where(Call.ended_at.is_(None), Call.queued_at.is_not(None),
               Call.dnis != CLICK_TO_CALL_DNIS,
               or_(Call.answered_at.between(start, now),
                   Call.callback_requested_at.between(start, now)))).all()
    for c in calls:
        if c.callback_requested_at is not None:
            if not start <= c.callback_requested_at < now:
                continue  # asked for yesterday, connected today: yesterday's offer
            key = (floor_interval(c.callback_requested_at), c.skill or "", c.agent_id or "")
            late = (c.callback_requested_at - c.queued_at).total_seconds() > sl_s
            acc.add(key, "offered")
            acc.add(key, "callbacks_requested")
            acc.add(key, "callbacks_after_sl", 1 if late else 0)
            if c.answered_at is not None:
                acc.add(key, "callbacks_connected")
            continue
        if not start <= c.answered_at < now:
            continue
        key = (floor_interval(c.answered_at), c.skill or "", c.agent_id or "")
        wait = (c.answered_at - c.queued_at).total_seconds()
        acc.add(key, "offered")
        acc.add(key, "answered")
        acc.add(key, "answered_in_sl", 1 if wait <= sl_s else 0)
        acc.add(key, "answer_wait_s", wait)


def today_live_in(sessions: sessionmaker[Session], now: datetime, *, tz: ZoneInfo,
                  service_level_s: float = SERVICE_LEVEL_S) -> TodayLive:
    """today_live in a unit of work of its own (the wallboard's way in)."""
    with sessions() as s:
        return today_live(s, now, tz=tz, service_level_s=service_level_s)


def mark_in(sessions: sessionmaker[Session]) -> datetime | None:
    """Where the aggregator is: every interval before it is counted (None: never ran)."""
    with sessions() as s:
        return s.scalar(select(ReportMark.done_until).where(ReportMark.name == MARK))


def table_rows(rows: Iterable[WorkloadRow]) -> list[dict[str, Any]]:
    """The rows as flat dicts (period ISO, key, every figure): what the exports write."""
    return [{"period": r.period.isoformat(), "key": r.key, **r.figures()} for r in rows]


async def aggregate_every(sessions: sessionmaker[Session], *, tz: ZoneInfo,
                          service_level_s: float = SERVICE_LEVEL_S, interval_s: float = 60.0,
                          clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                          ticks: int | None = None) -> None:
    """The CTI's task: every `interval_s`, the workload intervals and the work-order days that
    are due, counted in a worker thread (a slow database never stalls the event loop). A
    failed run is logged and the next one takes up from the mark. `ticks` bounds it (tests)."""
    from cti.db import workorder_reports

    def work() -> None:
        now = clock()
        run_pending(sessions, now, tz=tz, service_level_s=service_level_s)
        workorder_reports.run_pending(sessions, now, tz=tz)

    done = 0
    while ticks is None or done < ticks:
        try:
            await asyncio.to_thread(work)
        except Exception:
            logger.exception("report aggregation failed; retrying in %.0f s", interval_s)
        done += 1
        if ticks is None or done < ticks:
            await asyncio.sleep(interval_s)
