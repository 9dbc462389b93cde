"""Outage notices and where they apply: cause categories, scopes (areas, feeders, 台区), and the
index that answers "which active notices cover these accounts?" by dict lookups.

Pure: no I/O and no clock; `now` is passed in. Times must be timezone-aware.

A notice counts (is heard, is linked to) at `now` when it is not closed, not waiting for a
supervisor's confirmation, and has started; a scheduled cause (planned work, a temporary
outage, load limiting) counts only while its schedule window [start_at, schedule_end_at) is in
progress. A fault past its expected restoration still counts: the caller is still in the dark
and that is when they call.

What the adapters supply (the wiring step):
- `Notice` values built from the outage rows that are not closed, each with its scope rows
  (whole areas, feeders, and 台区 named within an area) and, when one exists, the number of the
  master repair order (主单) that covers it.
- A `version` that changes whenever any notice is published, updated or closed (e.g. a counter
  row bumped in the same transaction). `IndexCache.get` rebuilds only when it differs; time
  passing never needs a rebuild, because planned windows are checked at query time.
- The caller's accounts as `{account_no: Place}` (area, feeder, 台区 from the account rows
  found for the caller's number), in the order they should be heard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class InvalidNotice(ValueError):
    """A notice or scope that cannot be published as given (no scope, bad window, ...)."""


class Cause(StrEnum):
    """Why the power is off. Callers hear the category's phrase, never the free text."""

    FAULT = "fault"                      # 故障停电
    PLANNED = "planned"                  # 计划停电 (计划检修)
    STORM_REPAIR = "storm_repair"        # 灾害抢修 (台风、冰灾造成的线路损坏)
    TEMPORARY = "temporary"              # 临时停电 (临时检修)
    UPSTREAM = "upstream"                # 上级电网故障
    EXTERNAL_DAMAGE = "external_damage"  # 外力破坏 (施工挖断电缆、车辆撞杆)
    LOAD_LIMITING = "load_limiting"      # 有序用电 (负荷紧张时轮停)
    REPORTED = "reported"                # 多户报修, 疑似故障: opened by incident detection


@dataclass(frozen=True, slots=True)
class CauseInfo:
    phrase: str        # the prompt id that says it (outages.announce.PHRASES)
    label_zh: str      # for the console and the agent's view
    label_en: str
    scheduled: bool    # counts only inside its schedule window
    fault: bool        # counts toward storm mode's active-fault threshold
    db_kind: str       # the existing outages.kind column: "planned" | "fault"


CAUSES: Final[Mapping[Cause, CauseInfo]] = MappingProxyType({
    Cause.FAULT: CauseInfo("outage.cause.fault", "故障停电", "fault", False, True, "fault"),
    Cause.PLANNED: CauseInfo("outage.cause.planned", "计划停电", "planned work", True, False,
                             "planned"),
    Cause.STORM_REPAIR: CauseInfo("outage.cause.storm_repair", "灾害抢修", "storm-damage repair",
                                  False, True, "fault"),
    Cause.TEMPORARY: CauseInfo("outage.cause.temporary", "临时停电", "temporary outage", True,
                               False, "planned"),
    Cause.UPSTREAM: CauseInfo("outage.cause.upstream", "上级电网故障", "upstream grid fault",
                              False, True, "fault"),
    Cause.EXTERNAL_DAMAGE: CauseInfo("outage.cause.external_damage", "外力破坏",
                                     "third-party damage", False, True, "fault"),
    Cause.LOAD_LIMITING: CauseInfo("outage.cause.load_limiting", "有序用电", "load limiting",
                                   True, False, "planned"),
    Cause.REPORTED: CauseInfo("outage.cause.reported", "疑似故障(多户报修)",
                              "suspected (several reports)", False, True, "fault"),
})

TransformerArea = tuple[int, str]
"""A 台区 is named within its area: (area_id, name)."""


def _aware(t: datetime, what: str) -> None:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime for {what} {t!r}: pass a timezone-aware datetime")


def ta_name(name: str | None) -> str | None:
    """A 台区 name as the index keys it: stripped; None when blank."""
    if name is None:
        return None
    return name.strip() or None


@dataclass(frozen=True, slots=True)
class Place:
    """Where an account is: its area, and its feeder (线路) and 台区 when known."""

    area_id: int
    feeder_id: int | None = None
    transformer_area: str | None = None

    @property
    def ta_key(self) -> TransformerArea | None:
        name = ta_name(self.transformer_area)
        return None if name is None else (self.area_id, name)


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a notice applies: any of whole areas, feeders and 台区; at least one."""

    areas: frozenset[int] = frozenset()
    feeders: frozenset[int] = frozenset()
    transformer_areas: frozenset[TransformerArea] = frozenset()

    def __post_init__(self) -> None:
        tas = frozenset((a, n.strip()) for a, n in self.transformer_areas)
        if any(not n for _, n in tas):
            raise InvalidNotice("a 台区 needs a name")
        object.__setattr__(self, "transformer_areas", tas)
        if not (self.areas or self.feeders or self.transformer_areas):
            raise InvalidNotice("a notice needs a scope: areas, feeders or 台区")

    def covers(self, place: Place) -> bool:
        return (place.area_id in self.areas
                or (place.feeder_id is not None and place.feeder_id in self.feeders)
                or place.ta_key in self.transformer_areas)


@dataclass(frozen=True, slots=True)
class Notice:
    """An outage notice as published: cause, scope, times, the covering repair order.

    `agent_text` is free text for agents (shown on the desktop and the console) and is never
    spoken. `schedule_end_at` is required for a scheduled cause and ends its window.
    """

    id: int
    cause: Cause
    scope: Scope
    start_at: datetime
    expected_restore_at: datetime | None = None
    schedule_end_at: datetime | None = None
    closed_at: datetime | None = None
    master_order: str | None = None      # the repair work order (主单) covering it, if any
    awaiting_confirmation: bool = False  # a suspected outage a supervisor has not confirmed
    agent_text: str = ""

    def __post_init__(self) -> None:
        _aware(self.start_at, "start_at")
        for what in ("expected_restore_at", "schedule_end_at", "closed_at"):
            t = getattr(self, what)
            if t is not None:
                _aware(t, what)
        if self.expected_restore_at is not None and self.expected_restore_at < self.start_at:
            raise InvalidNotice(f"notice {self.id}: expected restoration before its start")
        if CAUSES[self.cause].scheduled:
            if self.schedule_end_at is None or self.schedule_end_at <= self.start_at:
                raise InvalidNotice(
                    f"notice {self.id}: {self.cause.value} needs a schedule ending after start")

    @property
    def info(self) -> CauseInfo:
        return CAUSES[self.cause]

    @property
    def restore_at(self) -> datetime | None:
        """When power is expected back: the expected restoration, else the schedule's end."""
        return self.expected_restore_at or self.schedule_end_at

    def counts_at(self, now: datetime) -> bool:
        """Heard by callers and linked to by fault reports at `now` (see the module doc)."""
        if self.closed_at is not None or self.awaiting_confirmation or now < self.start_at:
            return False
        if self.info.scheduled:
            assert self.schedule_end_at is not None
            return now < self.schedule_end_at
        return True


def speaking_order(n: Notice) -> tuple[bool, datetime, int]:
    """Unscheduled outages (faults) first, then by start, then by id: stable for tests."""
    return (n.info.scheduled, n.start_at, n.id)


@dataclass(frozen=True, slots=True)
class PlaceGroup:
    """Accounts of one caller that hear the same notices: heard once, for all of them."""

    accounts: tuple[str, ...]
    notices: tuple[Notice, ...]


class NoticeIndex:
    """The notices not closed, keyed by area, feeder and 台区; immutable once built.

    A lookup is three dict gets per account plus a check of each candidate's window, so its
    cost follows the notices that match, not the number of notices or accounts.
    """

    def __init__(self, notices: Iterable[Notice], version: int) -> None:
        self.version = version
        by_id: dict[int, Notice] = {}
        by_area: dict[int, list[Notice]] = {}
        by_feeder: dict[int, list[Notice]] = {}
        by_ta: dict[TransformerArea, list[Notice]] = {}
        for n in notices:
            if n.id in by_id:
                raise InvalidNotice(f"notice {n.id} given twice")
            if n.closed_at is not None:
                continue  # closed notices never count, whatever the clock says
            by_id[n.id] = n
            for a in n.scope.areas:
                by_area.setdefault(a, []).append(n)
            for f in n.scope.feeders:
                by_feeder.setdefault(f, []).append(n)
            for t in n.scope.transformer_areas:
                by_ta.setdefault(t, []).append(n)
        self._by_id = by_id
        self._by_area = by_area
        self._by_feeder = by_feeder
        self._by_ta = by_ta

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, notice_id: int) -> Notice | None:
        return self._by_id.get(notice_id)

    def covering(self, place: Place, now: datetime) -> tuple[Notice, ...]:
        """The notices that count at `now` and cover `place`, in speaking order."""
        _aware(now, "now")
        found: dict[int, Notice] = {}
        candidates = [*self._by_area.get(place.area_id, ())]
        if place.feeder_id is not None:
            candidates += self._by_feeder.get(place.feeder_id, ())
        key = place.ta_key
        if key is not None:
            candidates += self._by_ta.get(key, ())
        for n in candidates:
            if n.id not in found and n.counts_at(now):
                found[n.id] = n
        return tuple(sorted(found.values(), key=speaking_order))

    def for_accounts(self, accounts: Mapping[str, Place], now: datetime
                     ) -> tuple[PlaceGroup, ...]:
        """A caller's accounts grouped by what they would hear: accounts with the same notices
        form one group, so each is heard once. Accounts with none are left out; groups keep the
        order of their first account."""
        groups: dict[tuple[int, ...], list[str]] = {}
        notices: dict[tuple[int, ...], tuple[Notice, ...]] = {}
        for account_no, place in accounts.items():
            found = self.covering(place, now)
            if not found:
                continue
            key = tuple(n.id for n in found)
            groups.setdefault(key, []).append(account_no)
            notices[key] = found
        return tuple(PlaceGroup(tuple(accs), notices[key]) for key, accs in groups.items())

    def active(self, now: datetime) -> tuple[Notice, ...]:
        """Every notice that counts at `now`, in speaking order (board, storm mode)."""
        _aware(now, "now")
        return tuple(sorted((n for n in self._by_id.values() if n.counts_at(now)),
                            key=speaking_order))

    def active_faults(self, now: datetime) -> int:
        """How many fault-like notices count at `now` (storm mode's fault threshold)."""
        return sum(1 for n in self.active(now) if n.info.fault)


class IndexCache:
    """Keeps the last index and rebuilds it only when the notices' version changes.

    The index is immutable, so readers may keep using the one they got while a newer one is
    built; `load` is the adapter's read of the notices (called only on a version change).
    """

    def __init__(self) -> None:
        self._index: NoticeIndex | None = None

    def get(self, version: int, load: Callable[[], Iterable[Notice]]) -> NoticeIndex:
        if self._index is None or self._index.version != version:
            self._index = NoticeIndex(load(), version)
        return self._index
