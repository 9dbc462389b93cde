"""The outbound engine's service (issue 14): one loop places every kind of call we make.

Each tick it reads the due jobs, asks outbound/ what may start (the call window, pacing against
live capacity, storm mode, the do-not-call list, deadlines), begins each attempt in the
database (committed: the job is `dialing`, the attempt has its id) and only then sends one AMI
Originate for it, never re-sent, into the purpose's dialplan context over the configured trunk.
Its ChannelId is an Asterisk id that carries the attempt (`channel_id`): `<systemname>-<epoch>.
<OB_SEQ + attempt>`, so the channel's Uniqueid (and its call's Linkedid) keeps the form every
other call has (the recorder names the recording by it) and still says which attempt it is.
Asterisk's answer settles the attempt:

- OriginateResponse Failure: not answered; its Reason (and the channel's Hangup cause, when
  one was seen) gives the outcome, and outbound.jobs schedules a retry or gives up;
- OriginateResponse Success: answered; the attempt ends with the channel's Hangup, and the
  dialplan's UserEvent HotlineOutboundResult (the survey's key, a notice heard) is the job's
  result, handed to the purpose's own handler (a return visit's score goes to its order).

At start (and after an AMI reconnect) `recover` settles the attempts left open: one whose
channel is still up (CoreShowChannels lists its id) is left to end; any other
counts as made with outcome `unknown` and waits its backoff. Nothing is dialled again because
an answer was not heard.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from config.settings import DEFAULT_SYSTEMNAME, SYSTEMNAME_PATTERN
from cti.db import outbound as store
from outbound.dnc import DoNotCall
from outbound.jobs import Job, Purpose, State, cancel, finish, pick, recover, screen, start
from outbound.outcome import Outcome, classify
from outbound.pacing import Capacity, Pacing
from outbound.retry import RetryPolicy
from outbound.window import CallWindow

log = logging.getLogger(__name__)

RESULT_EVENT = "HotlineOutboundResult"
UNHEARD_MARGIN_S = 30.0
INBOX_SIZE = 1000
_KEY = re.compile(r"[0-9*#]|none")  # a survey's key, or none heard
_COUNT = re.compile(r"[0-9]{1,2}")  # a notice's Heard (0/1) and Repeats
# a purpose's own channel variables (a notice's prompt files): names and values that cannot
# add an Originate header or another variable (no CR/LF, no ',')
_VAR_NAME = re.compile(r"HOTLINE_[A-Z0-9_]{1,32}")
_VAR_VALUE = re.compile(r"[A-Za-z0-9_/&.:-]{0,960}")  # AMI refuses a line over 1024 bytes
# the sequence part of our ChannelIds: far above any count of channels one Asterisk makes, so
# no channel of Asterisk's own is ever taken for an attempt
OB_SEQ = 900_000_000
_ID = re.compile(rf"^(?:{SYSTEMNAME_PATTERN}-)?[0-9]+\.([0-9]{{1,15}})$")


def kept_fields(value: str) -> dict[str, str] | None:
    """Pure: an attempt's result as the dialplan kept it in AstDB, as the fields of its
    HotlineOutboundResult: `<key>` (a return visit), `<key>|<heard>|<repeats>` (an outage
    notice); None for anything else."""
    parts = value.split("|")
    if len(parts) == 1 and _KEY.fullmatch(parts[0]):
        return {"Key": parts[0]}
    if len(parts) == 3 and _KEY.fullmatch(parts[0]) and all(
            _COUNT.fullmatch(p) for p in parts[1:]):
        return {"Key": parts[0], "Heard": parts[1], "Repeats": parts[2]}
    return None


def channel_id(attempt: int, systemname: str, epoch: float) -> str:
    """The ChannelId of an attempt's Originate (an Asterisk Uniqueid in form)."""
    return f"{systemname}-{int(epoch)}.{OB_SEQ + attempt}"


def attempt_of(uniqueid: str) -> int | None:
    """The attempt a channel's Uniqueid carries (our ChannelId), or None for any other."""
    m = _ID.match(uniqueid or "")
    if m is None or int(m.group(1)) < OB_SEQ:
        return None
    return int(m.group(1)) - OB_SEQ


class Ami(Protocol):
    async def action(self, action: dict[str, Any], *, timeout: float | None = None,
                     idempotent: bool) -> Any: ...


ResultHandler = Callable[[Job, dict[str, str], datetime], Awaitable[None]]
# a purpose's channel variables for one dial (an outage notice's prompt files, chosen by the
# CTI); None: the job has nothing left to say (its outage closed) and is cancelled undialled
VariablesHook = Callable[[Job, datetime], Awaitable[dict[str, str] | None]]
# which of a purpose's due jobs may start now, beyond the pacing (a callback: its skill open
# and one of its agents free); given the due jobs and the purpose's attempts in flight
AdmitHook = Callable[[list[Job], list[Job], datetime], Awaitable[list[Job]]]
# written in the unit of work that marks an attempt answered (a callback's call record, so the
# ACD's queue and the recorder find the call theirs): the job, the call's id (its channel's)
AnsweredHook = Callable[[Session, Job, str, datetime], None]


@dataclass
class OutboundConfig:
    trunk: str                        # the PJSIP endpoint of the carrier ([pbx] outbound_trunk)
    systemname: str = DEFAULT_SYSTEMNAME   # the node's, in our ChannelIds
    caller_id: str = "95598"
    ring_s: float = 30.0
    window: CallWindow = field(default_factory=CallWindow)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    pacing: Pacing = field(default_factory=Pacing)


@dataclass
class _Open:
    job: Job
    started: datetime
    answered: bool = False
    cause: int | None = None


class OutboundService:
    def __init__(self, sessions: sessionmaker[Session], ami: Ami, config: OutboundConfig,
                 purposes: Mapping[str, Purpose], *, capacity: Callable[[], Capacity],
                 paused: Callable[[], bool], clock: Callable[[], datetime],
                 results: Mapping[str, ResultHandler] | None = None,
                 variables: Mapping[str, VariablesHook] | None = None,
                 admit: Mapping[str, AdmitHook] | None = None,
                 answered: Mapping[str, AnsweredHook] | None = None) -> None:
        self.sessions = sessions
        self.ami = ami
        self.config = config
        # the higher a purpose's priority, the earlier its jobs take the trunk's free channels
        # at a tick (a callback promised to a caller before a return visit); ties keep the
        # order given
        self.purposes = dict(sorted(purposes.items(), key=lambda kv: -kv[1].priority))
        self.capacity = capacity
        self.paused = paused
        self.clock = clock
        self.results = dict(results or {})
        self.variables = dict(variables or {})
        self.admit = dict(admit or {})
        self.answered = dict(answered or {})
        self.open: dict[int, _Open] = {}      # attempt id -> what we know of it
        # nothing is dialled before recover() has settled what a previous process left open
        self.recovered = False
        self.counts = {"dialled": 0, "answered": 0, "blocked": 0, "originate_failed": 0}
        self.ticks = 0
        self._inbox: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue(maxsize=INBOX_SIZE)

    # ------------------------------------------------------------------------ the database

    async def _db(self, work: Callable[[Session], Any]) -> Any:
        def unit() -> Any:
            with self.sessions() as s:
                out = work(s)
                s.commit()
                return out
        return await asyncio.to_thread(unit)

    # --------------------------------------------------------------------------- ticking

    def active(self, purpose: str) -> int:
        return sum(1 for o in self.open.values() if o.job.purpose == purpose)

    def stats(self) -> dict[str, Any]:
        """For cti.status.json (no database here): whether the window is open now, how many
        ticks have run, the attempts in flight and the counts since start."""
        return {"window_open": self.config.window.allows(self.clock()),
                "recovered": self.recovered, "ticks": self.ticks,
                "in_flight": len(self.open), **self.counts}

    async def tick(self) -> list[int]:
        """Start what may start now; the attempt ids begun."""
        now = self.clock()
        self.ticks += 1
        await self._expire_unheard(now)
        if not self.recovered or not self.config.window.allows(now):
            return []
        due: list[Job] = await self._db(lambda s: store.due(s, now))
        if not due:
            return []  # the usual tick: one small query, and the do-not-call list not read
        due = await self._expire(due, now)
        dnc = DoNotCall(await self._db(store.dnc_numbers))
        begun: list[int] = []
        for name, purpose in self.purposes.items():
            mine = [j for j in due if j.purpose == name]
            if mine and name in self.admit:
                flying = [o.job for o in self.open.values() if o.job.purpose == name]
                try:
                    mine = await self.admit[name](mine, flying, now)
                except Exception:  # its facts unreadable now (the database away): next tick
                    log.exception("outbound %s: could not tell which jobs may start", name)
                    continue
            cap = self.capacity()
            # the capacity counts inbound calls on the trunk; ours are known here
            cap = Capacity(active=self.active(name),
                           channels_free=cap.channels_free - len(self.open),
                           ready_agents=cap.ready_agents, waiting_inbound=cap.waiting_inbound)
            n = self.config.pacing.launches(len(mine), cap, needs_agent=purpose.needs_agent,
                                            paused=self.paused())
            for job in pick(mine, now, self.config.window, n):
                attempt = await self._launch(job, purpose, dnc, now)
                if attempt is not None:
                    begun.append(attempt)
        return begun

    async def _expire(self, due: list[Job], now: datetime) -> list[Job]:
        """Jobs past their deadline that were never started (no free agent, no open window
        until then) are written expired, so they leave the due list; the others."""
        keep: list[Job] = []
        for job in due:
            if job.expires_at is None or now < job.expires_at:
                keep.append(job)
                continue
            gone = replace(job, state=State.EXPIRED)

            def work(s: Session, j: Job = gone) -> None:
                store.store(s, j, now)
            await self._db(work)
            log.warning("outbound job %s (%s) expired after %s attempt(s): its time ran out",
                        job.id, job.purpose, job.attempts)
        return keep

    async def _launch(self, job: Job, purpose: Purpose, dnc: DoNotCall,
                      now: datetime) -> int | None:
        screened = screen(job, now, dnc)
        if screened is not job:
            self.counts["blocked"] += screened.state.value == "blocked"
            await self._db(lambda s: store.store(s, screened, now))
            log.info("outbound job %s: %s, not dialled", job.id, screened.state)
            return None
        extra = await self._variables(job, now)
        if extra is None:
            return None
        def chan_of(a: int) -> str:
            return channel_id(a, self.config.systemname, now.timestamp())

        attempt = await self._db(lambda s: store.begin_attempt(s, job.id, now, chan_of))
        if attempt is None:
            return None  # another tick or CTI began it
        self.open[attempt] = _Open(start(job), now)
        chan = chan_of(attempt)
        action = {
            "Action": "Originate", "Channel": f"PJSIP/{job.number}@{self.config.trunk}",
            "Context": purpose.context, "Exten": "s", "Priority": "1",
            "Timeout": str(int(self.config.ring_s * 1000)), "Async": "true",
            "ChannelId": chan,
            "CallerID": f'"95598" <{self.config.caller_id}>',
            # the customer's language (the survey's, a notice's own unless it says): zh or en
            "Variable": [f"HOTLINE_ATTEMPT={attempt}", f"HOTLINE_JOB={job.id}",
                         *([] if "HOTLINE_LANG" in extra
                           else [f"HOTLINE_LANG={'en' if job.lang == 'en' else 'zh'}"]),
                         *(f"{k}={v}" for k, v in extra.items())],
        }
        try:
            await self.ami.action(action, idempotent=False)
        except Exception as exc:
            # refused, or its answer lost: it may ring all the same, so nothing is re-sent;
            # the OriginateResponse (or the restart's recovery) settles it
            self.counts["originate_failed"] += 1
            log.warning("outbound attempt %s (job %s): Originate: %s", attempt, job.id, exc)
        self.counts["dialled"] += 1
        log.info("outbound attempt %s: job %s (%s) dialled", attempt, job.id, job.purpose)
        return attempt

    async def _variables(self, job: Job, now: datetime) -> dict[str, str] | None:
        """The purpose's own channel variables for this dial ({} for none); None: not dialled
        now (the job withdrawn, or its variables could not be made: tried at the next tick)."""
        hook = self.variables.get(job.purpose)
        if hook is None:
            return {}
        try:
            extra = await hook(job, now)
        except Exception:
            log.exception("outbound job %s: its call's variables could not be made", job.id)
            return None
        if extra is None:
            withdrawn = cancel(job)
            await self._db(lambda s: store.store(s, withdrawn, now))
            log.info("outbound job %s: nothing left to say, cancelled", job.id)
            return None
        if not all(_VAR_NAME.fullmatch(k) and _VAR_VALUE.fullmatch(v)
                   for k, v in extra.items()):
            log.error("outbound job %s: a channel variable out of shape; not dialled", job.id)
            return None
        return extra

    # ---------------------------------------------------------------------------- events

    def offer(self, msg: Mapping[str, Any]) -> None:
        """From the AMI event stream, without waiting: an event about one of our attempts is
        queued for `consume` (in order); every other returns at once. The stream feeds the ACD
        too, which must never wait on this service's database writes."""
        ours = (msg.get("Event") == "UserEvent" and msg.get("UserEvent") == RESULT_EVENT) or (
            attempt_of(str(msg.get("Uniqueid") or "")) is not None)
        if not ours:
            return
        try:
            self._inbox.put_nowait(msg)
        except asyncio.QueueFull:  # an attempt's end then comes from its ring-time expiry
            log.error("outbound: event queue full; %s dropped", msg.get("Event"))

    async def consume(self) -> None:
        """Handles the queued events one at a time, in their order (a named task)."""
        while True:
            msg = await self._inbox.get()
            try:
                await self.on_ami_event(msg)
            except Exception:  # one event's failure (the database away) loses only it
                log.exception("outbound: event not handled")
            finally:
                self._inbox.task_done()

    async def drained(self) -> None:
        """Until every queued event has been handled."""
        await self._inbox.join()

    async def on_ami_event(self, msg: Mapping[str, Any]) -> None:
        name = str(msg.get("Event", ""))
        attempt = attempt_of(str(msg.get("Uniqueid") or msg.get("Channel") or ""))
        if name == "UserEvent" and msg.get("UserEvent") == RESULT_EVENT:
            try:
                attempt = int(str(msg.get("Attempt", "")))
            except ValueError:
                return
            await self._result(attempt, msg)
            return
        if attempt is None or attempt not in self.open:
            return
        now = self.clock()
        o = self.open[attempt]
        if name == "OriginateResponse":
            if str(msg.get("Response")) == "Success":
                o.answered = True
                self.counts["answered"] += 1
                hook = self.answered.get(o.job.purpose)
                call_id = str(msg.get("Uniqueid") or "")

                def work(s: Session) -> None:
                    store.answered(s, attempt, now)
                    if hook is not None and attempt_of(call_id) == attempt:
                        hook(s, o.job, call_id, now)
                await self._db(work)
                return
            reason = _int(msg.get("Reason"))
            await self._end(attempt, classify(reason, o.cause), now, reason=reason)
        elif name == "Hangup":
            o.cause = _int(msg.get("Cause"))
            if o.answered:
                await self._end(attempt, Outcome.ANSWERED, now, reason=4)

    async def _expire_unheard(self, now: datetime) -> None:
        """An unanswered attempt whose OriginateResponse never came (Asterisk names a channel
        it could not create `<null>`, so the response cannot be matched) ends as unknown once
        its ring time and a margin are past, and waits its backoff."""
        limit = self.config.ring_s + UNHEARD_MARGIN_S
        for attempt, o in list(self.open.items()):
            if not o.answered and (now - o.started).total_seconds() > limit:
                await self._end(attempt, Outcome.UNKNOWN, now, reason=None)

    async def _end(self, attempt: int, outcome: Outcome, now: datetime, *,
                   reason: int | None) -> None:
        o = self.open.pop(attempt, None)
        if o is None:
            return
        purpose = self.purposes[o.job.purpose]
        after = finish(o.job, outcome, now, policy=self.config.retry,
                       window=self.config.window, purpose=purpose)

        def work(s: Session) -> None:
            if store.finish_attempt(s, attempt, outcome=outcome, ended_at=now, reason=reason,
                                    cause=o.cause):
                store.store(s, after, now)
        await self._db(work)
        log.info("outbound attempt %s: %s; job %s %s", attempt, outcome, o.job.id, after.state)

    async def _result(self, attempt: int, msg: Mapping[str, Any]) -> None:
        o = self.open.get(attempt)
        job = o.job if o is not None else None
        if job is None:
            return
        # the dialplan's own event, from the attempt's own channel, with a key or none
        key = str(msg.get("Key", ""))
        if (attempt_of(str(msg.get("Uniqueid", ""))) != attempt
                or not _KEY.fullmatch(key)):
            log.warning("outbound attempt %s: a result not from its channel, or a bad key; "
                        "ignored", attempt)
            return
        result = {"Key": key}
        for field_ in ("Heard", "Repeats"):  # an outage notice's (hotline-outage-notice)
            value = str(msg.get(field_, ""))
            if _COUNT.fullmatch(value):
                result[field_] = value
        now = self.clock()
        await self._db(lambda s: store.store(s, job, now, result=result))
        handler = self.results.get(job.purpose)
        if handler is not None:
            await handler(job, result, now)

    # -------------------------------------------------------------------------- recovery

    async def _kept_result(self, o: store.OpenAttempt) -> dict[str, str] | None:
        """What the dialplan kept in AstDB for an attempt whose call ended while no CTI
        listened (RESULT_FAMILY/<UTC day>/ob<attempt>, on the day it started or the next;
        tidied with the recordings' notes days later), as its HotlineOutboundResult's fields:
        a return visit's key (`1`, or `none`), an outage notice's `none|heard|repeats`; None
        if nothing was kept."""
        if o.started_at is None:
            return None
        days = {o.started_at.astimezone(UTC).strftime("%Y%m%d"),
                (o.started_at.astimezone(UTC) + timedelta(days=1)).strftime("%Y%m%d")}
        for day in sorted(days):
            try:
                answer = await self.ami.action(
                    {"Action": "DBGet", "Family": f"{RESULT_FAMILY}/{day}",
                     "Key": f"ob{o.attempt_id}"}, idempotent=True)
            except Exception:  # noqa: BLE001 - no such key (Response: Error), or AMI away
                continue
            for m in answer if isinstance(answer, list) else [answer]:
                value = str(m.get("Val", "")) if hasattr(m, "get") else ""
                kept = kept_fields(value)
                if kept is not None:
                    return kept
        return None

    async def recover(self, live_channels: Iterable[str]) -> int:
        """Settle the attempts left open by a previous process; how many were settled as
        unknown. `live_channels`: the Uniqueids of the channels up now."""
        live = {a for c in live_channels if (a := attempt_of(c)) is not None}
        now = self.clock()
        opened = await self._db(store.open_attempts)
        settled = 0
        for o in opened:
            purpose = self.purposes.get(o.job.purpose)
            if purpose is None:
                continue
            if o.attempt_id in live:
                self.open[o.attempt_id] = _Open(o.job, now, answered=True)
                continue
            # the call ended while no CTI heard it: the dialplan kept its result in AstDB
            kept = await self._kept_result(o)
            if kept is not None and o.channel_id is not None:
                self.open[o.attempt_id] = _Open(o.job, now, answered=True)
                await self._result(o.attempt_id, {"Uniqueid": o.channel_id, **kept})
                await self._end(o.attempt_id, Outcome.ANSWERED, now, reason=4)
                log.info("outbound attempt %s: ended while the CTI was away, with %s "
                         "(kept in AstDB): not dialled again", o.attempt_id, kept)
                continue
            after = recover(o.job, live=False, now=now, policy=self.config.retry,
                            window=self.config.window, purpose=purpose)

            def work(s: Session, aid: int = o.attempt_id, job: Job = after) -> None:
                if store.finish_attempt(s, aid, outcome=Outcome.UNKNOWN, ended_at=now):
                    store.store(s, job, now)
            await self._db(work)
            settled += 1
        self.recovered = True
        return settled


RESULT_FAMILY = "hotline-rec"  # AstDB: <family>/<UTC day>/ob<attempt> = the key, or none


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def utcnow() -> datetime:
    return datetime.now(UTC)
