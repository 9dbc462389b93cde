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

from sqlalchemy.orm import Session, sessionmaker

from cti.db import outages as store
from cti.db import web_audit
from outages.scope import IndexCache, Notice, NoticeIndex, Place, PlaceGroup

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


class OutageService:
    def __init__(self, sessions: sessionmaker[Session], notifier: Notifier | None = None
                 ) -> None:
        self.sessions = sessions
        self.notifier = notifier
        self._cache = IndexCache()

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
            index = self.index(s)  # the new revision, read inside the transaction
            suspected = sum(1 for n in store.load_notices(s) if n.awaiting_confirmation)
            self.notifier.outages_changed(
                s, version=index.version, active=len(index.active(now)), suspected=suspected,
                changed_id=outage_id, action=action.removeprefix("outage."), at=now)
        log.info("%s %s by %s", action, outage_id, who.id)

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
