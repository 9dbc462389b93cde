"""Return visits (回访, issue 14) through the outbound engine.

- A repair or complaint resolved: WorkOrderService calls `resolved` in the same unit of work,
  and a `return_visit` job is scheduled for the order's caller after `delay` (one job per
  order: resolving it again while the visit is still open makes no second one).
- The customer keyed 1 or 2 on the survey (the dialplan's hotline-return-visit): `on_result`
  records the return-visit step with the score, by the system, at that moment. "Not satisfied"
  then reopens the order (the lifecycle's RETURN_VISIT -> DISPATCHED, back to the department
  that resolved it), where supervisors see it reopened; "satisfied" leaves it for a
  supervisor to archive.
- No key, or no answer after the retries: the job ends handed over and the order stays in
  WorkOrderService.return_visit_list, an agent's list, exactly as without the engine.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cti.db import outbound as store
from cti.db.models import Call, WorkOrder
from outbound.jobs import Job, Purpose
from workorders.lifecycle import Status, WorkOrderError
from workorders.service import SYSTEM, WorkOrderService

log = logging.getLogger(__name__)

PURPOSE = Purpose("return_visit", "hotline-return-visit", hand_over=True)
SATISFIED, UNSATISFIED = "1", "2"
CLICKED = 10  # an agent's "call now" goes ahead of the scheduled visits


class ReturnVisits:
    def __init__(self, delay: timedelta = timedelta(hours=1), default_lang: str = "zh") -> None:
        self.delay = delay
        self.default_lang = default_lang
        self.workorders: WorkOrderService | None = None  # set once both exist (wiring)

    def resolved(self, session: Session, order: WorkOrder, now: datetime) -> None:
        if not order.caller_number:
            return
        done = store.schedule(session, purpose=PURPOSE.name, number=order.caller_number,
                              lang=self._lang(session, order), now=now, created_by="system",
                              not_before=now + self.delay, work_order_number=order.number)
        if done.created:
            log.info("work order %s resolved: return visit job %s scheduled", order.number,
                     done.job_id)

    def call_now(self, session: Session, order: WorkOrder, now: datetime, by: str) -> int:
        """An agent's one click: the order's return visit is dialled at the next tick (ahead of
        the others), whether it was scheduled for later or not at all. The job's id."""
        done = store.schedule(session, purpose=PURPOSE.name, number=order.caller_number,
                              lang=self._lang(session, order), now=now, created_by=by,
                              not_before=now, priority=CLICKED, work_order_number=order.number)
        if not done.created:
            store.bring_forward(session, done.job_id, now, priority=CLICKED)
        log.info("work order %s: return visit called now by %s (job %s)", order.number, by,
                 done.job_id)
        return done.job_id

    def calls(self, session: Session, numbers: list[str]) -> dict[str, dict[str, Any]]:
        """The latest return-visit job of each of these orders, for the console's list: whether
        a call is waiting (and clicked), being dialled, or how the last one ended."""
        return store.latest_jobs_of_orders(session, numbers)

    def _lang(self, session: Session, order: WorkOrder) -> str:
        if order.call_id:
            return session.scalar(select(Call.language).where(
                Call.call_id == order.call_id)) or self.default_lang
        return self.default_lang

    async def on_result(self, job: Job, result: dict[str, str], now: datetime) -> None:
        key = result.get("Key")
        if key not in (SATISFIED, UNSATISFIED) or self.workorders is None:
            return
        number = await asyncio.to_thread(self._order_of, job.id)
        if number is None:
            return
        try:
            await asyncio.to_thread(self.workorders.transition, number,
                                    Status.RETURN_VISIT.value, SYSTEM,
                                    satisfied=key == SATISFIED, now=now,
                                    note="回访电话 return visit call")
            if key == UNSATISFIED:
                await asyncio.to_thread(self.workorders.transition, number,
                                        Status.DISPATCHED.value, SYSTEM, now=now,
                                        note="回访不满意 the customer is not satisfied")
        except WorkOrderError as exc:  # already visited by an agent meanwhile, say
            log.warning("return visit of %s not recorded: %s", number, exc)

    def _order_of(self, job_id: int) -> str | None:
        assert self.workorders is not None
        with self.workorders.sessions() as s:
            return store.work_order_of(s, job_id)
