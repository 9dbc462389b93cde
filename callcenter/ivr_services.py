"""The IVR's port to the database: lookups, fault orders and the call record, off the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.db import calls as call_records
from cti.db import ivr_queries as q
from cti.db.models import Call
from workorders import service as workorders
from workorders.lifecycle import SlaPolicy

log = logging.getLogger(__name__)


class DbIvrServices:
    """Each method is one unit of work in its own session, run in a worker thread.

    SQLAlchemy sessions are synchronous; running them in threads keeps one slow query from
    stalling every other caller's prompts on the event loop.
    """

    def __init__(self, sessions: sessionmaker[Session],
                 sla_minutes: Mapping[str, int] = q.DEFAULT_SLA_MINUTES,
                 policy: SlaPolicy | None = None) -> None:
        self.sessions = sessions
        self.sla_minutes = dict(sla_minutes)
        self.policy = policy or SlaPolicy(arrival_minutes=MappingProxyType(self.sla_minutes))

    async def query(self, kind: str, args: dict[str, Any]) -> Any:
        return await asyncio.to_thread(self._query, kind, args)

    def _query(self, kind: str, args: dict[str, Any]) -> Any:
        now = args.get("now") or datetime.now(UTC)
        with self.sessions.begin() as s:
            if kind == "bill":
                return q.bill_info(s, str(args["account"]))
            if kind == "outages":
                return q.outages_for_account(s, str(args["account"]), now)
            if kind == "accounts_for_caller":
                return q.accounts_for_phone(s, str(args.get("caller") or "")) or None
            if kind == "create_workorder":
                # through the work-order service: SLA clocks, and a fault in an area that
                # already has an open master order within the window is linked to it (子单)
                order = workorders.create(s, workorders.NewOrder(
                    type="fault_repair", description="IVR fault report",
                    caller_number=str(args.get("caller") or "") or "anonymous",
                    account_no=args.get("account"), call_id=args.get("call_id"),
                    channel="ivr"), workorders.IVR, now, self.policy)
                return q.WorkOrderInfo(number=order.number, sla_due_at=order.sla_due_at,
                                       type=order.type, status=order.status)
        raise ValueError(f"unknown IVR query {kind!r}")

    async def call_started(self, *, call_id: str, uniqueid: str, caller: str, dnis: str,
                           now: datetime) -> None:
        def work() -> None:
            with self.sessions.begin() as s:
                call_records.record_call_start(s, call_id=call_id, uniqueid=uniqueid,
                                               caller_number=caller, dnis=dnis, now=now)
        await asyncio.to_thread(work)

    async def ivr_finished(self, *, call_id: str, outcome: str, path: list[dict[str, Any]],
                           lang: str, account: str | None, skill: str | None,
                           priority: int | None, now: datetime) -> None:
        """Write the IVR path and outcome. A transferred call goes on, so it is not ended here."""
        def work() -> None:
            with self.sessions.begin() as s:
                if outcome == "transfer":
                    call = s.execute(select(Call).where(Call.call_id == call_id)
                                     .with_for_update()).scalar_one_or_none()
                    if call is None:
                        log.warning("IVR outcome for unknown call %s", call_id)
                        return
                    call.ivr_path = list(path)
                    call.outcome, call.language = outcome, lang
                    call.account_no, call.skill, call.priority = account, skill, priority
                    return
                call = s.execute(select(Call).where(Call.call_id == call_id)
                                 ).scalar_one_or_none()
                if call is not None:
                    call.ivr_path = list(path)
                call_records.record_call_end(s, call_id, outcome=outcome, now=now,
                                             language=lang, account_no=account, skill=skill,
                                             priority=priority)
        await asyncio.to_thread(work)
