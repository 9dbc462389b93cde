"""Outage notices and storm mode as services: what the IVR, the console, the CLI and incident
detection call. Each write is one transaction with its audit line and its MQTT message (sent
after the commit); each read goes through one `IndexCache`, rebuilt only when the notices'
revision moved, so the IVR's lookup per call is one primary-key read plus dict gets.

Synchronous, like the SQLAlchemy sessions under it: the IVR runs it in its worker threads
(DbIvrServices), the web app in its threadpool, the CLI directly. `IndexCache.get` may rebuild
in two threads at once after a change; both build the same immutable index, so that is only
wasted work, never a wrong answer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.db import outages as store
from cti.db import web_audit
from cti.db.models import Area, Feeder
from outages.incidents import DetectionSettings, SuspectedOutage
from outages.scope import Cause, IndexCache, Notice, NoticeIndex, Place, PlaceGroup

if TYPE_CHECKING:
    from cti.notifier import Notifier

log = logging.getLogger(__name__)

SYSTEM = "system"  # incident detection and automatic storm switching act as this


@dataclass(frozen=True, slots=True)
class Who:
    """Who made a change, for the audit trail: a user id and role, or 'cli:<user>', 'system'."""

    id: str
    role: str
    client_ip: str | None = None


SYSTEM_WHO = Who(SYSTEM, SYSTEM)


class OutageService:
    def __init__(self, sessions: sessionmaker[Session], notifier: Notifier | None = None,
                 *, detection: DetectionSettings | None = None) -> None:
        self.sessions = sessions
        self.notifier = notifier
        # [outages] incident detection: workorders.service.create counts fault reports with it
        # and opens suspected outages through open_suspected; None: no detection, no linking
        self.detection = detection
        self._cache = IndexCache()
        # the open suspected outages waiting for a supervisor, by the revision they were read at
        self._awaiting: tuple[int, tuple[Notice, ...]] = (-1, ())

    # ------------------------------------------------------------------------------- reading

    def index(self, s: Session) -> NoticeIndex:
        """The current index: a revision read, and a rebuild only when it moved."""
        return self._cache.get(store.version(s), lambda: store.load_notices(s))

    def for_caller(self, s: Session, phone: str, now: datetime
                   ) -> tuple[dict[str, Place], tuple[PlaceGroup, ...]]:
        """The caller's accounts (by phone) and the notices each group of them would hear."""
        places = store.places_for_phone(s, phone)
        if not places:
            return {}, ()
        return places, self.index(s).for_accounts(places, now)

    def for_account(self, s: Session, account_no: str, now: datetime
                    ) -> tuple[Notice, ...] | None:
        """The notices covering one account now; None when the account does not exist."""
        place = store.place_of_account(s, account_no)
        if place is None:
            return None
        return self.index(s).covering(place, now)

    def active(self, s: Session, now: datetime) -> tuple[Notice, ...]:
        return self.index(s).active(now)

    # ------------------------------------------------------------------------------- writing

    def publish(self, draft: store.NoticeDraft, who: Who, now: datetime) -> int:
        with self.sessions.begin() as s:
            outage_id = store.publish(s, draft, who.id, now)
            action = "outage.suspect" if draft.awaiting_confirmation else "outage.publish"
            self._changed(s, who, action, outage_id, now, _draft_detail(draft))
        return outage_id

    def update(self, outage_id: int, draft: store.NoticeDraft, who: Who, now: datetime) -> None:
        with self.sessions.begin() as s:
            store.update_notice(s, outage_id, draft, who.id, now)
            self._changed(s, who, "outage.update", outage_id, now, _draft_detail(draft))

    def confirm(self, outage_id: int, who: Who, now: datetime) -> None:
        with self.sessions.begin() as s:
            store.confirm(s, outage_id, who.id, now)
            self._changed(s, who, "outage.confirm", outage_id, now, {})

    def close(self, outage_id: int, who: Who, now: datetime) -> None:
        with self.sessions.begin() as s:
            store.close(s, outage_id, who.id, now)
            self._changed(s, who, "outage.close", outage_id, now, {})

    def set_master(self, s: Session, outage_id: int, order_id: int, who: Who, now: datetime
                   ) -> None:
        """In the caller's transaction (the fault report that became the master order)."""
        store.set_master(s, outage_id, order_id, now)
        self._changed(s, who, "outage.master", outage_id, now, {"order_id": order_id})

    def _changed(self, s: Session, who: Who, action: str, outage_id: int, now: datetime,
                 detail: Mapping[str, Any]) -> None:
        web_audit.add(s, web_audit.AuditEntry(
            at=now, actor=who.id, role=who.role, action=action, target=f"outage:{outage_id}",
            allowed=True, client_ip=who.client_ip, detail=dict(detail)))
        if self.notifier is not None:
            # the new revision, read inside the transaction and not cached: should the
            # transaction roll back (a fault report's, which opened a suspected outage), the
            # cache must not keep an index another writer's same revision number would reuse
            notices = store.load_notices(s)
            index = NoticeIndex(notices, store.version(s))
            suspected = sum(1 for n in notices if n.awaiting_confirmation)
            self.notifier.outages_changed(
                s, version=index.version, active=len(index.active(now)), suspected=suspected,
                changed_id=outage_id, action=action.removeprefix("outage."), at=now)
        log.info("%s %s by %s", action, outage_id, who.id)

    # ------------------------------------------------------- fault reports (workorders.service)

    def notice_for_report(self, s: Session, place: Place, now: datetime) -> Notice | None:
        """The notice a fault report from `place` joins: a counting notice covering it (one with
        a master order first, else the first in speaking order, as outages.incidents does);
        else an open suspected outage covering it that still waits for a supervisor, which
        links reports before callers hear it (the 台区 before the feeder). None: no outage."""
        index = self.index(s)
        covering = index.covering(place, now)
        if covering:
            return next((n for n in covering if n.master_order is not None), covering[0])
        return next((n for n in self._awaiting_confirmation(s, index)
                     if n.start_at <= now and n.scope.covers(place)), None)

    def _awaiting_confirmation(self, s: Session, index: NoticeIndex) -> tuple[Notice, ...]:
        version, found = self._awaiting
        if version != index.version:  # a tuple swap: threads may race, both read the same
            found = tuple(sorted((n for n in store.load_notices(s) if n.awaiting_confirmation),
                                 key=lambda n: (not n.scope.transformer_areas, n.id)))
            self._awaiting = (index.version, found)
        return found

    def heard_notice(self, s: Session, outage_id: int, now: datetime) -> Notice | None:
        """The notice a fault report was linked into (WorkOrder.outage_id), when callers may
        hear it now: the IVR then says the outage is known and when power is expected back
        (`Notice.restore_at`, None when unknown). None when it is closed or still waits for a
        supervisor's confirmation (a suspected outage in confirm mode)."""
        n = self.index(s).get(outage_id)
        return n if n is not None and n.counts_at(now) else None

    def restore_time(self, s: Session, outage_id: int, now: datetime) -> datetime | None:
        """When power is expected back in the outage a report was linked into, if callers may
        hear it (see heard_notice); None otherwise or when unknown."""
        n = self.heard_notice(s, outage_id, now)
        return n.restore_at if n is not None else None

    def report_became_master(self, s: Session, outage_id: int, order_id: int, now: datetime
                             ) -> None:
        """A fault report inside an outage without a master order became its master (主单):
        in the report's transaction, audited as 'system'."""
        self.set_master(s, outage_id, order_id, SYSTEM_WHO, now)

    def open_suspected(self, s: Session, suspected: SuspectedOutage, *, master_number: str,
                       first_report_at: datetime, now: datetime) -> int:
        """Incident detection opened a suspected outage (疑似停电): publish it as a 'reported'
        notice on its feeder or 台区 with `master_number` as its master order, waiting for a
        supervisor unless it is announced (mode auto); audited as 'system'; supervisors are
        alerted after the commit. In the fault report's transaction; returns the notice id."""
        window = self.detection.window if self.detection is not None else None
        minutes = window.total_seconds() / 60 if window is not None else 0.0
        scope = suspected.scope
        area, feeder = s.execute(
            select(Area.name, Feeder.name).select_from(Area)
            .outerjoin(Feeder, Feeder.id == scope.feeder_id)
            .where(Area.id == scope.area_id)).one_or_none() or (None, None)
        where = (f"台区 {scope.transformer_area}" if scope.kind == "transformer_area"
                 else f"线路 {feeder or scope.feeder_id}")
        text = (f"疑似停电: {len(suspected.reports)} 起报修 / {minutes:g} 分钟, {where}"
                f" ({area or scope.area_id}); 主单 {master_number}")
        draft = store.NoticeDraft(
            cause=Cause.REPORTED, start_at=min(first_report_at, now),
            feeders=frozenset({scope.feeder_id}) if scope.feeder_id is not None else frozenset(),
            transformer_areas=(frozenset({(scope.area_id, scope.transformer_area)})
                               if scope.transformer_area is not None else frozenset()),
            agent_text=text[:store.MAX_AGENT_TEXT], master_order=master_number,
            awaiting_confirmation=not suspected.announced)
        outage_id = store.publish(s, draft, SYSTEM, now)
        detail = {**_draft_detail(draft), "detected": True, "reports": list(suspected.reports),
                  "announced": suspected.announced}
        self._changed(s, SYSTEM_WHO, "outage.publish" if suspected.announced
                      else "outage.suspect", outage_id, now, detail)
        if self.notifier is not None:
            self.notifier.outage_alert(
                s, level="announced" if suspected.announced else "suspected",
                outage_id=outage_id, scope=scope.kind, area_id=scope.area_id, area=area,
                feeder_id=scope.feeder_id, feeder=feeder if scope.feeder_id else None,
                transformer_area=scope.transformer_area, reports=len(suspected.reports),
                window_min=minutes, master_number=master_number,
                first_report_at=first_report_at, at=now)
        log.warning("suspected outage %s opened on %s %s: %d reports, master %s (%s)",
                    outage_id, scope.kind, scope.transformer_area or scope.feeder_id,
                    len(suspected.reports), master_number,
                    "announced" if suspected.announced else "awaiting confirmation")
        return outage_id

    # ------------------------------------------------------------------------------- storm mode

    def storm_state(self) -> store.StormRow:
        with self.sessions() as s:
            return store.storm(s)

    def set_storm(self, on: bool, who: Who, now: datetime, *, trigger: str = "manual",
                  detail: str = "") -> bool:
        """Switch storm mode; False when it already was so (nothing audited or sent)."""
        with self.sessions.begin() as s:
            if not store.set_storm(s, on, who.id, trigger, detail, now):
                return False
            web_audit.add(s, web_audit.AuditEntry(
                at=now, actor=who.id, role=who.role, action="storm.on" if on else "storm.off",
                target="storm", allowed=True, client_ip=who.client_ip,
                detail={"trigger": trigger, "detail": detail or None}))
            if self.notifier is not None:
                self.notifier.storm_changed(s, on=on, since=now, by=who.id, trigger=trigger,
                                            at=now)
        log.warning("storm mode %s by %s (%s)", "ON" if on else "off", who.id, trigger)
        return True


def _draft_detail(draft: store.NoticeDraft) -> dict[str, Any]:
    return {"cause": draft.cause.value, "areas": sorted(draft.areas),
            "feeders": sorted(draft.feeders),
            "transformer_areas": sorted([a, t] for a, t in draft.transformer_areas),
            "start_at": draft.start_at.isoformat(),
            "expected_restore_at": (draft.expected_restore_at.isoformat()
                                    if draft.expected_restore_at else None),
            "schedule_end_at": (draft.schedule_end_at.isoformat()
                                if draft.schedule_end_at else None),
            "master_order": draft.master_order}
