"""The post-call satisfaction survey's results (满意度评价, issue 14 §3), from the dialplan to the
call record.

Where a call's skill has a survey ([acd] survey_skills) and the agent hangs up first, the
dialplan (hotline-survey, extensions.conf.j2) keeps the caller on and asks for a score, 1 to 5.
It says so in two UserEvents on the caller's channel: HotlineSurveyOffered (the agent at Seat
hung up; the ACD's feed ends the agent's part of the call on it, cti.ami.translate) and
HotlineSurvey (the key, or none after three asks). Here:

- `offer` (from the AMI stream, never waiting: the stream feeds the ACD too) queues those two
  events, checked field by field (translate.survey_fact), in a bounded queue;
- `consume` (the named task survey-results) writes each, in order, on the call record
  (cti.db.calls.record_survey): offered with the agent then at the seat and the skill, then the
  score. Through the durable journal when the database is away, so a survey answered during an
  outage is kept. After the commit a call event 'survey' goes out (the supervisors' report
  refreshes on it).

The key is checked again here: only 1 to 5 is a score.

The dialplan also keeps what it tells in AstDB (hotline-rec/<UTC day>/sv/<call> =
seat|skill|key|offered epoch, key '-' until one came). `recover` (on every AMI login) reads
yesterday's and today's notes and writes what is not on the record yet: a survey offered or
answered while no CTI listened is kept, with the agent the call record names (the seat may have
another agent by then). Each write is idempotent, so reading notes already written changes
nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.ami.translate import SurveyAnswered, SurveyFact, SurveyOffered, header, survey_fact
from cti.db.calls import record_survey
from cti.db.models import SATISFACTION_MAX, SATISFACTION_MIN, Call

log = logging.getLogger(__name__)

INBOX_SIZE = 1000
OFFERED, ANSWERED = "call_survey_offered", "call_survey"  # the journal's kinds
NOTE_FAMILY = "hotline-rec"  # AstDB: <family>/<UTC day>/sv/<call> (hotline-survey's notes)
_NOTE = re.compile(r"([^|]*)\|([^|]*)\|([1-5]|none|-)\|([0-9]{9,11})")


def note_facts(call_id: str, value: str) -> list[tuple[SurveyFact, float]]:
    """Pure: what a survey note says, as the events would have said it (checked field by
    field as they are, survey_fact), with its offered time; [] for a note out of shape."""
    m = _NOTE.fullmatch(value)
    if m is None:
        return []
    seat, skill, key, epoch = m.groups()
    base = {"Event": "UserEvent", "Channel": "", "Linkedid": call_id, "Seat": seat,
            "Skill": skill}
    offered = survey_fact({**base, "UserEvent": "HotlineSurveyOffered"})
    if offered is None:
        return []
    out: list[tuple[SurveyFact, float]] = [(offered, float(epoch))]
    if key != "-":
        answered = survey_fact({**base, "UserEvent": "HotlineSurvey", "Key": key})
        if answered is not None:
            out.append((answered, float(epoch)))
    return out


def _apply(s: Session, d: Mapping[str, Any]) -> bool:
    """A survey write as the journal replays it (idempotent: record_survey)."""
    score = d.get("score")
    return record_survey(s, str(d["call_id"]), at=datetime.fromtimestamp(float(d["at"]), UTC),
                         agent_id=d.get("agent_id"), skill=str(d["skill"]),
                         score=int(score) if score is not None else None)


def score_of(fact: SurveyAnswered) -> int | None:
    """The caller's score, when it is one: 1 to 5."""
    s = fact.score
    return s if s is not None and SATISFACTION_MIN <= s <= SATISFACTION_MAX else None


class SurveyService:
    """`agent_at(seat)`: the agent logged in at a seat (the ACD's view), None if none.
    `durable` (the daemon's DurableWrites): writes journalled while the database is away;
    without it, each is its own unit of work on `sessions`. `notifier` (cti.notifier): the
    call event after the commit."""

    def __init__(self, sessions: sessionmaker[Session], *,
                 agent_at: Callable[[str], str | None], durable: Any = None,
                 notifier: Any = None, clock: Callable[[], float] | None = None) -> None:
        self.sessions = sessions
        self.agent_at = agent_at
        self.durable = durable
        self.notifier = notifier
        self.clock = clock or (lambda: datetime.now(UTC).timestamp())
        self.counts = {"offered": 0, "answered": 0, "no_score": 0, "dropped": 0,
                       "recovered": 0}
        self._inbox: asyncio.Queue[tuple[SurveyFact, float]] = asyncio.Queue(INBOX_SIZE)
        if durable is not None:
            durable.register(OFFERED, _apply)
            durable.register(ANSWERED, _apply)

    # ------------------------------------------------------------------ the AMI stream

    def offer(self, msg: Mapping[str, Any]) -> None:
        """A survey event is queued for `consume`, with when it came; every other event
        returns at once."""
        fact = survey_fact(msg)
        if fact is None:
            return
        try:
            self._inbox.put_nowait((fact, self.clock()))
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            log.error("survey: event queue full; %s of call %s dropped", type(fact).__name__,
                      fact.call_id)

    async def consume(self) -> None:
        """The queued survey events, one at a time, in order (a named task)."""
        while True:
            fact, at = await self._inbox.get()
            try:
                await self.handle(fact, at)
            except Exception:  # one write's failure (the database refusing it) loses only it
                log.exception("survey: %r not recorded", fact)
            finally:
                self._inbox.task_done()

    async def drained(self) -> None:
        """Until every queued event has been handled."""
        await self._inbox.join()

    # ------------------------------------------------------------------ the call record

    async def handle(self, fact: SurveyFact, at: float) -> None:
        agent_id = self.agent_at(fact.seat)
        if isinstance(fact, SurveyOffered):
            kind, score = OFFERED, None
            self.counts["offered"] += 1
        else:
            kind, score = ANSWERED, score_of(fact)
            self.counts["answered" if score is not None else "no_score"] += 1
        data = {"call_id": fact.call_id, "at": at, "agent_id": agent_id, "skill": fact.skill,
                "score": score}
        written, _changed = await self._write(kind, f"{fact.call_id}:{kind}", data)
        log.info("survey %s call_id=%s seat=%s agent_id=%s skill=%s score=%s%s",
                 "offered" if kind == OFFERED else "answered", fact.call_id, fact.seat,
                 agent_id, fact.skill, score, "" if written else " (journalled)")
        if written and self.notifier is not None:
            self.notifier.call_event(
                fact.call_id, "survey", at=at, agent_id=agent_id, seat=fact.seat,
                skill=fact.skill,
                detail={"stage": "offered" if kind == OFFERED else "answered", "score": score})

    async def _write(self, kind: str, key: str, data: dict[str, Any]) -> tuple[bool, bool]:
        """(True once the database has it, False when it waits in the journal; whether it
        changed the record, False while journalled)."""
        if self.durable is not None:
            done, changed = await self.durable.run_write(kind, key, data)
            return bool(done), bool(changed)

        def work() -> bool:
            with self.sessions.begin() as s:
                return _apply(s, data)
        return True, await asyncio.to_thread(work)

    # ------------------------------------------------------------------ after an absence

    async def recover(self, client: Any) -> int:
        """The notes the dialplan kept of yesterday's and today's surveys (UTC days), written
        where the record lacks them; how many writes changed a record. The records are read
        first, in one query per 500 notes, so a busy day's notes already written cost no
        write each (this runs on every AMI login, beside the live calls' writes). The agent
        is left to the call record (agent_id None: record_survey takes the call's agent).
        Never raises: a day without notes, or AMI away, is nothing to recover."""
        today = datetime.fromtimestamp(self.clock(), UTC)
        notes: list[tuple[SurveyFact, float]] = []
        for day in (today - timedelta(days=1), today):
            family = f"{NOTE_FAMILY}/{day:%Y%m%d}/sv"
            try:
                answer = await client.action({"Action": "DBGetTree", "Family": family},
                                             idempotent=True)
            except Exception:  # noqa: BLE001 - no notes that day (Response: Error), AMI away
                continue
            for m in answer if isinstance(answer, list) else [answer]:
                if header(m, "Event") == "DBGetTreeResponse":
                    notes += note_facts(header(m, "Key").rsplit("/", 1)[-1], header(m, "Val"))
        known = await self._recorded({fact.call_id for fact, _ in notes})
        changed = 0
        for fact, at in notes:
            kind = OFFERED if isinstance(fact, SurveyOffered) else ANSWERED
            score = None if isinstance(fact, SurveyOffered) else score_of(fact)
            offered, scored = known.get(fact.call_id, (False, False))
            if offered and (score is None or scored):
                continue  # on the record already
            data = {"call_id": fact.call_id, "at": at, "agent_id": None, "skill": fact.skill,
                    "score": score}
            try:
                _done, did = await self._write(kind, f"{fact.call_id}:{kind}", data)
            except Exception:
                log.exception("survey: the note of call %s not recorded", fact.call_id)
                continue
            if did:
                changed += 1
                self.counts["recovered"] += 1
                log.info("survey %s of call %s recovered from AstDB (score %s)",
                         "offer" if kind == OFFERED else "answer", fact.call_id, score)
        return changed

    async def _recorded(self, call_ids: set[str]) -> dict[str, tuple[bool, bool]]:
        """{call_id: (survey offered on the record, scored)} of these calls; {} when the
        database cannot say (every note is then written: each write is idempotent)."""
        ids = sorted(call_ids)

        def read(s: Session) -> dict[str, tuple[bool, bool]]:
            out: dict[str, tuple[bool, bool]] = {}
            for i in range(0, len(ids), 500):
                for cid, at, score in s.execute(
                        select(Call.call_id, Call.survey_at, Call.satisfaction)
                        .where(Call.call_id.in_(ids[i:i + 500]))):
                    out[cid] = (at is not None, score is not None)
            return out

        if not ids:
            return {}
        try:
            if self.durable is not None:
                return dict(await self.durable.run_read(read))

            def work() -> dict[str, tuple[bool, bool]]:
                with self.sessions() as s:
                    return read(s)
            return await asyncio.to_thread(work)
        except Exception:  # noqa: BLE001 - the database away: write them all (journalled)
            log.warning("survey notes: the records could not be read; writing every note")
            return {}
