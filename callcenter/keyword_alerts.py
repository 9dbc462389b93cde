"""Keyword alerts as a service for the console: list them, the prefilled complaint form, turn
one into a complaint work order (投诉工单) linked to the call, or dismiss it. Each call is one unit
of work with its audit line; the order is made by the work-order service in the same
transaction as the alert's new status, so an alert never says order_created without its order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from cti.db import transcripts as store
from cti.db import web_audit
from cti.db.transcripts import AlertHandled, AlertNotFound
from cti.db.web_audit import AuditEntry
from speech.keywords import distinct_words
from workorders.lifecycle import OrderType
from workorders.service import MAX_DESCRIPTION, Actor, NewOrder, WorkOrderService
from workorders.service import get as get_order

__all__ = ["AlertHandled", "AlertNotFound", "KeywordAlertService", "complaint_description"]


def complaint_description(excerpt: str, keywords: list[dict[str, Any]]) -> str:
    """The complaint order's prefilled description: the keywords, then the excerpt."""
    words = "、".join(distinct_words(keywords))
    return f"关键词告警（{words}）通话摘录：{excerpt}"[:MAX_DESCRIPTION]


class KeywordAlertService:
    def __init__(self, sessions: sessionmaker[Session], workorders: WorkOrderService,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.sessions = sessions
        self.workorders = workorders
        self.clock = clock

    def list(self, status: str | None, limit: int, offset: int,
             audit: AuditEntry) -> list[dict[str, Any]]:
        """Alerts, newest first (status None: all), and the audit line with how many."""
        with self.sessions.begin() as s:
            rows = store.list_alerts(s, status, limit, offset)
            web_audit.add(s, replace(audit, detail={**audit.detail, "results": len(rows)}))
        return rows

    def _prefill(self, s: Session, alert_id: int) -> dict[str, Any]:
        a = store.get_alert(s, alert_id)
        return {
            "alert_id": a.id, "type": OrderType.COMPLAINT.value,
            "caller_number": a.caller_number, "account_number": store.call_account(s, a.call_id),
            "call_id": a.call_id, "recording_id": a.recording_id,
            "description": complaint_description(a.excerpt, list(a.keywords or [])),
            "keywords": list(a.keywords or []), "excerpt": a.excerpt, "status": a.status,
        }

    def prefill(self, alert_id: int, audit: AuditEntry) -> dict[str, Any]:
        """What the complaint form starts with (AlertNotFound without the alert)."""
        with self.sessions.begin() as s:
            doc = self._prefill(s, alert_id)
            web_audit.add(s, audit)
        return doc

    def complaint(self, alert_id: int, actor: Actor, description: str | None,
                  audit: AuditEntry) -> dict[str, Any]:
        """Create the complaint order for the alert's call and mark the alert order_created
        with its number, in one transaction; the order as GET /api/workorders/{n} shows it.
        AlertNotFound, AlertHandled (it was handled before), or the work-order service's
        errors (InvalidWorkOrder: no caller number known, say)."""
        now = self.clock()
        with self.sessions.begin() as s:
            alert = store.get_alert(s, alert_id, lock=True)
            if alert.status != "open":
                store.handle(s, alert, "order_created", actor.id, now)  # raises AlertHandled
            form = self._prefill(s, alert_id)
            text = (description or "").strip() or form["description"]
            order = self.workorders.create_in(s, NewOrder(
                type=OrderType.COMPLAINT.value, description=text[:MAX_DESCRIPTION],
                caller_number=form["caller_number"], account_no=form["account_number"],
                call_id=alert.call_id, channel="agent"), actor, now, link_duplicates=False)
            store.handle(s, alert, "order_created", actor.id, now, order.number)
            web_audit.add(s, replace(audit, detail={**audit.detail, "work_order": order.number,
                                                    "call_id": alert.call_id}))
            return get_order(s, order.number, now, self.workorders.policy)

    def dismiss(self, alert_id: int, actor_id: str, audit: AuditEntry) -> dict[str, Any]:
        now = self.clock()
        with self.sessions.begin() as s:
            alert = store.get_alert(s, alert_id, lock=True)
            store.handle(s, alert, "dismissed", actor_id, now)
            web_audit.add(s, replace(audit, detail={**audit.detail, "call_id": alert.call_id}))
            return store.alert_doc(alert)
