"""Incident detection: N fault reports from one feeder or 台区 within a window open a suspected
outage there, and later reports there link to it instead of starting new work.

A pure state machine: one writer feeds it fault reports in arrival order with their time; it
reads no clock and does no I/O, and answers each report with what to link it to and whether it
opened a suspected outage (effects as data). Same inputs, same answers.

Rules:
- A report counts toward its feeder and its 台区 (each when known; a report with neither only
  links to published notices, as area-wide duplicates are linked by workorders.lifecycle).
- A report at time t counts while now - t <= window (the boundary is inside). Older reports
  fall out, so memory holds at most the reports of one window: each scope keeps fewer than N,
  because the N-th opens a suspected outage and those N leave the count.
- When a 台区 and its feeder reach N on the same report, the 台区 opens (the narrower fault:
  a transformer rather than a line). Reports that open an outage leave every count.
- A report inside a published notice (`covering`) links to it and is not counted; inside an
  open suspected outage (台区 first, then feeder) it links to that and is not counted.
- A scope is suspected once: it opens again only after `close`.
- A report id seen again while still counted is ignored (idempotent); time never runs
  backwards (a late report counts as arriving at the latest time seen).

What the adapters supply (the wiring step): each new fault-repair order's time, its account's
`Place` and its work-order number as the report id, plus `NoticeIndex.covering(place, now)`;
they write the links (子单 under `LinkTarget.master_order`), store and alert on `opened`
(announce it when `announced`, else list it for confirmation), and call `confirm`/`close` from
the console. After a restart, pass the suspected outages still open to the constructor and feed
the last window's reports again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from outages.scope import Notice, Place, Scope, ta_name


class IncidentError(Exception):
    """A supervisor action on a suspected outage that does not exist or cannot be taken."""


class Mode(StrEnum):
    AUTO = "auto"        # callers hear a suspected outage as soon as it opens
    CONFIRM = "confirm"  # callers hear it once a supervisor confirms it


@dataclass(frozen=True, slots=True)
class DetectionSettings:
    """[outages] threshold, window and mode. Confirm is the default: what callers are told is
    a supervisor's decision unless the center chooses auto."""

    threshold: int = 5
    window: timedelta = timedelta(minutes=15)
    mode: Mode = Mode.CONFIRM

    def __post_init__(self) -> None:
        if self.threshold < 2:
            raise ValueError("incident threshold must be at least 2 reports")
        if self.window <= timedelta(0):
            raise ValueError("incident window must be positive")


@dataclass(frozen=True, slots=True, order=True)
class DetectedScope:
    """The feeder or the 台区 a suspected outage is on."""

    kind: Literal["feeder", "transformer_area"]
    area_id: int
    feeder_id: int | None = None
    transformer_area: str | None = None

    def to_scope(self) -> Scope:
        """The notice scope to publish when a supervisor turns it into a notice."""
        if self.kind == "feeder":
            assert self.feeder_id is not None
            return Scope(feeders=frozenset({self.feeder_id}))
        assert self.transformer_area is not None
        return Scope(transformer_areas=frozenset({(self.area_id, self.transformer_area)}))

    def covers(self, place: Place) -> bool:
        if self.kind == "feeder":
            return place.feeder_id == self.feeder_id
        return place.ta_key == (self.area_id, self.transformer_area)


def _scopes(place: Place) -> tuple[DetectedScope, ...]:
    """The scopes a report counts toward, narrowest first."""
    out: list[DetectedScope] = []
    name = ta_name(place.transformer_area)
    if name is not None:
        out.append(DetectedScope("transformer_area", place.area_id, transformer_area=name))
    if place.feeder_id is not None:
        out.append(DetectedScope("feeder", place.area_id, feeder_id=place.feeder_id))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SuspectedOutage:
    """A suspected outage (疑似停电) opened by detection; `seq` identifies it in this detector."""

    seq: int
    scope: DetectedScope
    opened_at: datetime
    reports: tuple[str, ...]       # the N reports that opened it, oldest first
    announced: bool                # callers hear it (auto, or confirmed)
    confirmed_by: str | None = None

    @property
    def master_report(self) -> str:
        """The oldest report: its repair order is the master (主单); the others are children."""
        return self.reports[0]


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """What a report joins: a published notice or a suspected outage (exactly one is set)."""

    notice_id: int | None = None
    suspected_seq: int | None = None
    master_order: str | None = None   # link the report under this order as a child (子单)


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    report_id: str
    link: LinkTarget | None               # None: a new, unlinked repair order
    opened: SuspectedOutage | None = None  # this report opened it; link reports[1:] as children


class Detector:
    """Counts fault reports per feeder and 台区 and keeps the open suspected outages."""

    def __init__(self, settings: DetectionSettings,
                 open_outages: Iterable[SuspectedOutage] = ()) -> None:
        self.settings = settings
        self._open: dict[DetectedScope, SuspectedOutage] = {}
        for s in open_outages:
            self._open[s.scope] = s
        self._seq = max((s.seq for s in self._open.values()), default=0)
        self._counts: dict[DetectedScope, deque[tuple[datetime, str]]] = {}
        self._arrivals: deque[tuple[datetime, str]] = deque()
        # report id -> the scopes it counts toward, while it is counted
        self._counted: dict[str, tuple[DetectedScope, ...]] = {}
        self._last: datetime | None = None

    # ---------------------------------------------------------------------------- reading

    @property
    def open_outages(self) -> tuple[SuspectedOutage, ...]:
        return tuple(sorted(self._open.values(), key=lambda s: s.seq))

    def pending(self) -> tuple[SuspectedOutage, ...]:
        """Suspected outages waiting for a supervisor (confirm mode)."""
        return tuple(s for s in self.open_outages if not s.announced)

    def counted(self) -> int:
        """Reports still inside the window and counted (for tests and the status page)."""
        return len(self._counted)

    # ---------------------------------------------------------------------------- input

    def report(self, at: datetime, place: Place, report_id: str,
               covering: Sequence[Notice] = ()) -> ReportOutcome:
        """One fault report. `covering` is what the notice index says covers `place` at `at`."""
        now = self._advance(at)
        if covering:
            n = next((n for n in covering if n.master_order is not None), covering[0])
            return ReportOutcome(report_id, LinkTarget(notice_id=n.id,
                                                       master_order=n.master_order))
        scopes = _scopes(place)
        for scope in scopes:
            s = self._open.get(scope)
            if s is not None:
                return ReportOutcome(report_id, self._link(s))
        if not scopes or report_id in self._counted:
            return ReportOutcome(report_id, None)
        self._counted[report_id] = scopes
        self._arrivals.append((now, report_id))
        for scope in scopes:
            self._counts.setdefault(scope, deque()).append((now, report_id))
        for scope in scopes:
            if len(self._counts[scope]) >= self.settings.threshold:
                opened = self._open_on(scope, now)
                return ReportOutcome(report_id, self._link(opened), opened)
        return ReportOutcome(report_id, None)

    def expire(self, now: datetime) -> None:
        """Let reports older than the window fall out without a new report (a timer tick)."""
        self._advance(now)

    # ------------------------------------------------------------------ supervisor actions

    def confirm(self, seq: int, by: str, at: datetime) -> SuspectedOutage:
        """A supervisor confirms a suspected outage: from now on callers hear it."""
        self._advance(at)
        s = self._find(seq)
        if s.announced:
            raise IncidentError(f"suspected outage {seq} is already announced")
        s = self._open[s.scope] = replace(s, announced=True, confirmed_by=by)
        return s

    def close(self, seq: int, at: datetime) -> SuspectedOutage:
        """Closed (restored, dismissed, or replaced by a published notice): its scope counts
        reports anew from now on."""
        self._advance(at)
        s = self._find(seq)
        del self._open[s.scope]
        return s

    # ---------------------------------------------------------------------------- internals

    def _find(self, seq: int) -> SuspectedOutage:
        for s in self._open.values():
            if s.seq == seq:
                return s
        raise IncidentError(f"no open suspected outage {seq}")

    @staticmethod
    def _link(s: SuspectedOutage) -> LinkTarget:
        return LinkTarget(suspected_seq=s.seq, master_order=s.master_report)

    def _advance(self, at: datetime) -> datetime:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"naive datetime {at!r}: pass a timezone-aware datetime")
        now = at if self._last is None or at > self._last else self._last
        self._last = now
        oldest = now - self.settings.window
        while self._arrivals and self._arrivals[0][0] < oldest:
            _, rid = self._arrivals.popleft()
            self._uncount(rid)  # a no-op if it opened a suspected outage and left then
        return now

    def _uncount(self, report_id: str) -> None:
        for scope in self._counted.pop(report_id, ()):
            self._drop(scope, report_id)

    def _drop(self, scope: DetectedScope, report_id: str) -> None:
        q = self._counts.get(scope)
        if q is None:
            return
        for item in q:
            if item[1] == report_id:
                q.remove(item)
                break
        if not q:
            del self._counts[scope]

    def _open_on(self, scope: DetectedScope, now: datetime) -> SuspectedOutage:
        reports = tuple(rid for _, rid in self._counts[scope])
        for rid in reports:  # the reports that opened it are explained: they leave every count
            self._uncount(rid)
        self._seq += 1
        s = SuspectedOutage(seq=self._seq, scope=scope, opened_at=now, reports=reports,
                            announced=self.settings.mode is Mode.AUTO)
        self._open[scope] = s
        return s
