"""Outage notices in the database: publish, update, confirm and close them; read them back as
`outages.scope.Notice` values for the index; find a caller's places; the storm-mode switch.

Every change bumps `outage_revisions.version` in the same transaction, so a reader's
`IndexCache` rebuilds exactly when a notice changed, on every CTI or IVR process, with no reload
message needed. The caller of each function owns the transaction (`sessions.begin()`), and the
audit line goes into the same one (callcenter/outage_service.py writes it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from cti.db.ivr_queries import normalize_phone
from cti.db.models import (
    Account,
    AccountPhone,
    Area,
    Feeder,
    Outage,
    OutageArea,
    OutageRevision,
    StormState,
    WorkOrder,
)
from outages.scope import CAUSES, Cause, InvalidNotice, Notice, Place, Scope, ta_name

MAX_AGENT_TEXT = 255
MAX_SCOPE_ROWS = 500


class NoticeNotFound(LookupError):
    """No outage notice with that id (or it is closed, for a change that needs it open)."""


@dataclass(frozen=True, slots=True)
class NoticeDraft:
    """What a supervisor (console, CLI) or incident detection publishes or updates.

    `transformer_areas` are (area_id, 台区 name). `master_order` is a work-order number.
    Validation is `outages.scope.Notice`'s, plus: the areas, feeders and order exist.
    """

    cause: Cause
    start_at: datetime
    areas: frozenset[int] = frozenset()
    feeders: frozenset[int] = frozenset()
    transformer_areas: frozenset[tuple[int, str]] = frozenset()
    expected_restore_at: datetime | None = None
    schedule_end_at: datetime | None = None
    agent_text: str = ""
    master_order: str | None = None
    awaiting_confirmation: bool = False

    def scope(self) -> Scope:
        return Scope(frozenset(self.areas), frozenset(self.feeders),
                     frozenset(self.transformer_areas))

    def check(self) -> Notice:
        """The notice this draft would be (id 0), or InvalidNotice saying what is wrong."""
        if len(self.agent_text) > MAX_AGENT_TEXT:
            raise InvalidNotice(f"the text for agents is longer than {MAX_AGENT_TEXT} characters")
        scope = self.scope()
        if len(scope.areas) + len(scope.feeders) + len(scope.transformer_areas) > MAX_SCOPE_ROWS:
            raise InvalidNotice(f"a notice covers at most {MAX_SCOPE_ROWS} areas, feeders, 台区")
        return Notice(id=0, cause=self.cause, scope=scope, start_at=self.start_at,
                      expected_restore_at=self.expected_restore_at,
                      schedule_end_at=self.schedule_end_at, master_order=self.master_order,
                      awaiting_confirmation=self.awaiting_confirmation,
                      agent_text=self.agent_text)


@dataclass(frozen=True, slots=True)
class NoticeRow:
    """A notice as the console, the CLI and the desktop list it (closed ones too)."""

    notice: Notice
    created_by: str | None
    confirmed_by: str | None
    updated_at: datetime | None
    restored_at: datetime | None
    area_names: Mapping[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        n = self.notice
        info = CAUSES[n.cause]
        return {
            "id": n.id, "cause": n.cause.value, "cause_zh": info.label_zh,
            "cause_en": info.label_en, "fault": info.fault, "scheduled": info.scheduled,
            "agent_text": n.agent_text, "start_at": n.start_at,
            "expected_restore_at": n.expected_restore_at, "schedule_end_at": n.schedule_end_at,
            "restored_at": self.restored_at, "master_order": n.master_order,
            "awaiting_confirmation": n.awaiting_confirmation,
            "areas": sorted(n.scope.areas), "feeders": sorted(n.scope.feeders),
            "transformer_areas": sorted([a, t] for a, t in n.scope.transformer_areas),
            "area_names": {str(k): v for k, v in sorted(self.area_names.items())},
            "created_by": self.created_by, "confirmed_by": self.confirmed_by,
            "updated_at": self.updated_at,
        }


# ----------------------------------------------------------------------------- the version


def version(s: Session) -> int:
    """The notices' revision: one primary-key read (done per call by the IVR's lookup)."""
    v = s.execute(select(OutageRevision.version).where(OutageRevision.id == 1)).scalar()
    return int(v) if v is not None else 0


def _bump(s: Session) -> int:
    """Bump the revision in the caller's transaction; the row lock orders concurrent writers."""
    done = s.execute(update(OutageRevision).where(OutageRevision.id == 1)
                     .values(version=OutageRevision.version + 1))
    if not getattr(done, "rowcount", 1):  # the row is gone (a wiped test database): again
        s.add(OutageRevision(id=1, version=2))
        s.flush()
    return version(s)


# ----------------------------------------------------------------------------- reading


def _notice(o: Outage, master: str | None) -> Notice:
    areas: set[int] = set()
    feeders: set[int] = set()
    tas: set[tuple[int, str]] = set()
    for row in o.areas:
        name = ta_name(row.transformer_area)
        if name is not None:
            tas.add((row.area_id, name))
        elif row.feeder_id is not None:
            feeders.add(row.feeder_id)
        else:
            areas.add(row.area_id)
    return Notice(id=o.id, cause=Cause(o.category),
                  scope=Scope(frozenset(areas), frozenset(feeders), frozenset(tas)),
                  start_at=o.start_at, expected_restore_at=o.expected_restore_at,
                  schedule_end_at=o.schedule_end_at, closed_at=o.restored_at,
                  master_order=master, awaiting_confirmation=o.awaiting_confirmation,
                  agent_text=o.cause)


def _masters(s: Session, outages: Iterable[Outage]) -> dict[int, str]:
    ids = {o.master_order_id for o in outages if o.master_order_id is not None}
    if not ids:
        return {}
    return dict(s.execute(select(WorkOrder.id, WorkOrder.number)
                          .where(WorkOrder.id.in_(ids))).all())


def load_notices(s: Session) -> list[Notice]:
    """Every notice not closed, for `IndexCache.get`'s load (a row that fails the domain's
    checks, e.g. an old planned row without a schedule, is skipped rather than fatal)."""
    rows = list(s.scalars(select(Outage).options(selectinload(Outage.areas))
                          .where(Outage.restored_at.is_(None)).order_by(Outage.id)))
    masters = _masters(s, rows)
    out: list[Notice] = []
    for o in rows:
        try:
            out.append(_notice(o, masters.get(o.master_order_id or 0)))
        except (InvalidNotice, ValueError):
            continue
    return out


def list_notices(s: Session, *, include_closed: bool = False, limit: int = 200
                 ) -> list[NoticeRow]:
    """Notices for the console and the CLI, newest first."""
    q = (select(Outage).options(selectinload(Outage.areas)).order_by(Outage.id.desc())
         .limit(max(1, min(limit, 1000))))
    if not include_closed:
        q = q.where(Outage.restored_at.is_(None))
    rows = list(s.scalars(q))
    masters = _masters(s, rows)
    area_ids = {a.area_id for o in rows for a in o.areas}
    names = dict(s.execute(select(Area.id, Area.name).where(Area.id.in_(area_ids)))
                 .all()) if area_ids else {}
    out = []
    for o in rows:
        try:
            n = _notice(o, masters.get(o.master_order_id or 0))
        except (InvalidNotice, ValueError):
            continue
        out.append(NoticeRow(n, o.created_by, o.confirmed_by, o.updated_at, o.restored_at,
                             {a.area_id: names.get(a.area_id, "") for a in o.areas}))
    return out


def get_notice(s: Session, outage_id: int) -> NoticeRow:
    o = s.get(Outage, outage_id)
    if o is None:
        raise NoticeNotFound(f"no outage notice {outage_id}")
    masters = _masters(s, [o])
    return NoticeRow(_notice(o, masters.get(o.master_order_id or 0)), o.created_by,
                     o.confirmed_by, o.updated_at, o.restored_at)


def places_for_phone(s: Session, phone: str) -> dict[str, Place]:
    """The caller's accounts and where each is, in account-number order; {} when none."""
    normalized = normalize_phone(phone)
    if not normalized:
        return {}
    rows = s.execute(
        select(Account.account_no, Account.area_id, Account.feeder_id, Account.transformer_area)
        .join(AccountPhone, AccountPhone.account_id == Account.id)
        .where(AccountPhone.phone == normalized)
        .order_by(Account.account_no).distinct()).all()
    return {no: Place(area, feeder, ta) for no, area, feeder, ta in rows}


def place_of_account(s: Session, account_no: str) -> Place | None:
    row = s.execute(select(Account.area_id, Account.feeder_id, Account.transformer_area)
                    .where(Account.account_no == account_no)).one_or_none()
    return None if row is None else Place(*row)


# ----------------------------------------------------------------------------- writing


def _check_refs(s: Session, draft: NoticeDraft) -> int | None:
    """The areas, feeders and master order exist; returns the master order's id."""
    areas = set(draft.areas) | {a for a, _ in draft.transformer_areas}
    if areas:
        known = set(s.scalars(select(Area.id).where(Area.id.in_(areas))))
        if missing := sorted(areas - known):
            raise InvalidNotice(f"no such area: {', '.join(map(str, missing))}")
    if draft.feeders:
        known = set(s.scalars(select(Feeder.id).where(Feeder.id.in_(draft.feeders))))
        if missing := sorted(set(draft.feeders) - known):
            raise InvalidNotice(f"no such feeder: {', '.join(map(str, missing))}")
    if draft.master_order is None:
        return None
    order_id = s.scalar(select(WorkOrder.id).where(WorkOrder.number == draft.master_order))
    if order_id is None:
        raise InvalidNotice(f"no such work order: {draft.master_order}")
    return order_id


def _scope_rows(s: Session, draft: NoticeDraft) -> list[OutageArea]:
    rows = [OutageArea(area_id=a) for a in sorted(draft.areas)]
    if draft.feeders:
        area_of = dict(s.execute(select(Feeder.id, Feeder.area_id)
                                 .where(Feeder.id.in_(draft.feeders))).all())
        rows += [OutageArea(area_id=area_of[f], feeder_id=f) for f in sorted(draft.feeders)]
    rows += [OutageArea(area_id=a, transformer_area=t.strip())
             for a, t in sorted(draft.transformer_areas)]
    return rows


def _apply(o: Outage, draft: NoticeDraft, master_id: int | None) -> None:
    info = CAUSES[draft.cause]
    o.kind, o.category, o.cause = info.db_kind, draft.cause.value, draft.agent_text
    o.start_at = draft.start_at
    o.expected_restore_at = draft.expected_restore_at
    o.schedule_end_at = draft.schedule_end_at
    o.master_order_id = master_id
    o.awaiting_confirmation = draft.awaiting_confirmation


def publish(s: Session, draft: NoticeDraft, by: str, now: datetime) -> int:
    """A new notice; returns its id. InvalidNotice when the draft cannot be published."""
    draft.check()
    master_id = _check_refs(s, draft)
    o = Outage(notice="", created_by=by[:64], updated_at=now)
    _apply(o, draft, master_id)
    o.areas = _scope_rows(s, draft)
    s.add(o)
    s.flush()
    _bump(s)
    return o.id


def _open(s: Session, outage_id: int) -> Outage:
    o = s.execute(select(Outage).where(Outage.id == outage_id).with_for_update()).scalar()
    if o is None or o.restored_at is not None:
        raise NoticeNotFound(f"no open outage notice {outage_id}")
    return o


def update_notice(s: Session, outage_id: int, draft: NoticeDraft, by: str, now: datetime
                  ) -> None:
    """Replace an open notice's cause, scope, times, text and master order."""
    draft.check()
    master_id = _check_refs(s, draft)
    o = _open(s, outage_id)
    _apply(o, draft, master_id)
    o.areas = _scope_rows(s, draft)
    o.updated_at = now
    _bump(s)


def confirm(s: Session, outage_id: int, by: str, now: datetime) -> None:
    """A supervisor confirms a suspected outage: callers hear it from the next call on."""
    o = _open(s, outage_id)
    o.awaiting_confirmation = False
    o.confirmed_by, o.updated_at = by[:64], now
    _bump(s)


def set_master(s: Session, outage_id: int, order_id: int, now: datetime) -> None:
    o = _open(s, outage_id)
    o.master_order_id, o.updated_at = order_id, now
    _bump(s)


def close(s: Session, outage_id: int, by: str, now: datetime) -> None:
    """Power is back (or the notice was wrong): it stops counting from the next call."""
    o = _open(s, outage_id)
    o.restored_at = max(now, o.start_at)
    o.updated_at = now
    _bump(s)


# ----------------------------------------------------------------------------- storm mode


@dataclass(frozen=True, slots=True)
class StormRow:
    on: bool
    since: datetime | None
    by: str | None
    trigger: str | None
    detail: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"on": self.on, "since": self.since, "by": self.by, "trigger": self.trigger,
                "detail": self.detail}


def storm(s: Session) -> StormRow:
    row = s.get(StormState, 1)
    if row is None:
        return StormRow(False, None, None, None, None)
    return StormRow(row.active, row.since, row.by, row.trigger, row.detail)


def set_storm(s: Session, on: bool, by: str, trigger: str, detail: str, now: datetime
              ) -> bool:
    """Switch storm mode; False (and nothing written) when it already was so."""
    row = s.execute(select(StormState).where(StormState.id == 1).with_for_update()).scalar()
    if row is None:
        row = StormState(id=1, active=False)
        s.add(row)
    elif row.active is on:
        return False
    row.active, row.since, row.by = on, now, by[:64]
    row.trigger, row.detail = trigger[:16], detail[:255]
    return True
