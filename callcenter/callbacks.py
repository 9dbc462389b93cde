"""After-hours callbacks (预约回电, issue 15 §3) through the outbound engine.

A caller of a closed skill booked a call back in the IVR (callcenter.ivr_services
book_callback): an outbound job, purpose `callback`, with the skill, due when the skill opens
and kept `[calendars] callback_hours` after. Here the engine learns to place it:

- `admit`: at each tick, the due callbacks whose skill is open now (its calendar, read at the
  tick like the IVR reads it at a transfer) and has a ready agent left over for it
  (outbound.callback.admit); the others wait, still scheduled, until their deadline. Pacing
  (needs_agent) bounds them by all ready agents as well.
- `variables`: at the dial, the skill (a configured one, checked here: the 7×24 skill for one
  removed since the booking), the queue priority and the customer's number, for the dialplan's
  hotline-callback-due: the customer answers, hears that this is the callback they booked and
  waits for an agent of that skill exactly as an inbound caller the IVR transferred (the ACD
  routes, rings, records and pops it).
- `answered`: the call's record (dnis `callback`, outcome transfer, the skill and language) in
  the unit of work that marks the attempt answered, so the ACD, the recorder and the reports
  treat it as any queued call.

The job's outcome is the engine's: answered is done (the customer reached the queue: what
happens there is the call record's, as for any caller); no answer or busy is tried again by
[outbound]'s retry policy while the job has time left, and at the skill's open hours only;
after the last try it ends `gave_up` (there is no agents' list of callbacks to hand it to, as
return visits have) and a job that never found a free agent before its deadline `expired`,
each logged as a warning with the number and skill for the supervisor.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo

from sqlalchemy.orm import Session, sessionmaker

from acd.calendar import Calendar
from cti.db import calendars as calendar_store
from cti.db import calls as call_records
from cti.db.staff import skill_names
from outbound import callback
from outbound.jobs import Job, Purpose

log = logging.getLogger(__name__)

# needs an agent: pacing never dials more of them than ready agents less the callers waiting;
# above return visits (0) and outage notices (5): a call promised to a caller goes first
PURPOSE = Purpose(callback.PURPOSE, "hotline-callback-due", needs_agent=True, priority=8)
_NUMBER = re.compile(r"[0-9]{3,20}")  # outbound.dnc.national's form, as dialled


class Callbacks:
    def __init__(self, sessions: sessionmaker[Session], agents: Callable[[], callback.Agents],
                 *, tz: tzinfo, always_open: str) -> None:
        self.sessions = sessions
        self.agents = agents
        self.tz = tz
        self.always_open = always_open

    def _facts(self) -> tuple[set[str], Mapping[str, Calendar]]:
        with self.sessions() as s:
            known = skill_names(s)
        return known, calendar_store.load(self.sessions)

    async def admit(self, due: list[Job], in_flight: list[Job], now: datetime) -> list[Job]:
        known, calendars = await asyncio.to_thread(self._facts)

        def is_open(skill: str, at: datetime) -> bool:
            cal = calendars.get(skill)
            return cal is None or cal.is_open(at, self.tz)
        return callback.admit(due, in_flight, self.agents(), known=known,
                              fallback=self.always_open, is_open=is_open, now=now)

    async def variables(self, job: Job, now: datetime) -> dict[str, str] | None:
        """HOTLINE_SKILL (a configured skill, or the 7×24 one), HOTLINE_PRIORITY and
        HOTLINE_CUSTOMER (the number dialled) for hotline-callback-due; the engine checks each
        value's shape again before the Originate."""
        known, _ = await asyncio.to_thread(self._facts)
        skill = callback.skill_of(job, known, self.always_open)
        if skill != job.skill:
            log.warning("callback job %s: skill %r is not configured now; queued to %s",
                        job.id, job.skill, skill)
        if not _NUMBER.fullmatch(job.number):
            raise ValueError(f"callback job {job.id}: its number is not digits")
        return {"HOTLINE_SKILL": skill, "HOTLINE_PRIORITY": str(callback.QUEUE_PRIORITY),
                "HOTLINE_CUSTOMER": job.number}

    def answered(self, session: Session, job: Job, call_id: str, now: datetime) -> None:
        known = skill_names(session)
        call_records.record_callback_answered(
            session, call_id=call_id, number=job.number,
            skill=callback.skill_of(job, known, self.always_open),
            priority=callback.QUEUE_PRIORITY, language="en" if job.lang == "en" else "zh",
            job_id=job.id, now=now)


def agents_of(view: object) -> callback.Agents:
    """Ready agents and waiting callers per skill, from the ACD's published view
    (callcenter.acd_service.AcdView): an agent with two skills is ready for both."""
    ready: dict[str, int] = {}
    waiting: dict[str, int] = {}
    for a in getattr(view, "agents", {}).values():
        if str(a.state) == "ready":
            for skill in a.skills:
                ready[skill] = ready.get(skill, 0) + 1
    for c in getattr(view, "calls", {}).values():
        if str(c.state) in ("waiting", "callback"):
            waiting[c.skill] = waiting.get(c.skill, 0) + 1
    return callback.Agents(ready=ready, waiting=waiting)
