"""The caller's time on hold (保持), from Asterisk's own word to the call record (call_holds)
and the workload reports' hold figure (issue 15 §4: "AHT, talk, hold and ACW").

A caller is on hold while their channel plays music on hold in `hotline-hold,caller`
(callcenter/call_control.py puts them there for the desktop's hold and for a consult). So a
hold is exactly Asterisk's MusicOnHoldStart of a channel in that context and extension, to the
channel's MusicOnHoldStop (off hold, a consult completed or cancelled) or its Hangup (the caller
gave up on hold). A waiting caller's music in the queue is in another context and is no hold.
Asterisk's event times are used (timestampevents), so a slow CTI does not stretch a hold.

- `HoldTracker` (pure): events in, finished holds out;
- `HoldService`: sees the AMI stream (`offer`, shown each event by hotline.wiring.observed, never
  waiting: the stream feeds the ACD too), queues each
  finished hold, and the named task `hold-records` writes it (cti.db.calls.record_hold),
  through the durable journal while the database is away.

A hold that began before this CTI started (a restart mid-hold) is not known here and is not
recorded; README "Known limits" says so.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from callcenter.call_control import HOLD_CONTEXT
from cti.ami.translate import header, is_local, linkedid_of
from cti.db.calls import record_hold

log = logging.getLogger(__name__)

HOLD_EXTEN = "caller"  # hotline-hold,caller: MusicOnHold for the caller
INBOX_SIZE = 1000
KIND = "call_hold"  # the journal's kind
MAX_TRACKED = 10_000  # channels on hold at once: far more than any center's seats


@dataclass(frozen=True)
class Hold:
    """One hold of call `call_id` (its Linkedid), epoch seconds."""

    call_id: str
    started: float
    ended: float


def event_time(event: Mapping[str, Any], fallback: float) -> float:
    """The event's Asterisk time (its Timestamp header), else `fallback`."""
    try:
        t = float(header(event, "Timestamp"))
    except ValueError:
        return fallback
    return t if math.isfinite(t) and t > 0 else fallback


class HoldTracker:
    """Which caller channels are on hold now, by Uniqueid: (call_id, since)."""

    def __init__(self) -> None:
        self.on_hold: dict[str, tuple[str, float]] = {}

    def feed(self, event: Mapping[str, Any], now: float) -> Hold | None:
        """A finished hold, when this event ends one; None otherwise."""
        name = header(event, "Event")
        if name not in ("MusicOnHoldStart", "MusicOnHoldStop", "Hangup"):
            return None
        uid = header(event, "Uniqueid")
        if not uid or is_local(header(event, "Channel")):
            return None
        at = event_time(event, now)
        if name == "MusicOnHoldStart":
            if header(event, "Context") != HOLD_CONTEXT or header(event, "Exten") != HOLD_EXTEN:
                return None  # music while queued, or anywhere else: not a hold
            call_id = linkedid_of(event)
            if call_id and uid not in self.on_hold and len(self.on_hold) < MAX_TRACKED:
                self.on_hold[uid] = (call_id, at)
            return None
        held = self.on_hold.pop(uid, None)
        if held is None:
            return None
        call_id, since = held
        return Hold(call_id, since, max(at, since))


def _apply(s: Session, d: Mapping[str, Any]) -> bool:
    """A hold write as the journal replays it (idempotent: record_hold)."""
    return record_hold(s, str(d["call_id"]),
                       started_at=datetime.fromtimestamp(float(d["started"]), UTC),
                       ended_at=datetime.fromtimestamp(float(d["ended"]), UTC))


class HoldService:
    """`durable` (the daemon's DurableWrites): writes journalled while the database is away;
    without it, each is its own unit of work on `sessions`."""

    def __init__(self, sessions: sessionmaker[Session], *, durable: Any = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.sessions = sessions
        self.durable = durable
        self.clock = clock or (lambda: datetime.now(UTC).timestamp())
        self.tracker = HoldTracker()
        self.counts = {"holds": 0, "dropped": 0}
        self._inbox: asyncio.Queue[Hold] = asyncio.Queue(INBOX_SIZE)
        if durable is not None:
            durable.register(KIND, _apply)

    def offer(self, msg: Mapping[str, Any]) -> None:
        hold = self.tracker.feed(msg, self.clock())
        if hold is None:
            return
        try:
            self._inbox.put_nowait(hold)
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            log.error("hold: queue full; a hold of call %s dropped", hold.call_id)

    async def consume(self) -> None:
        """The finished holds, one at a time, in order (a named task)."""
        while True:
            hold = await self._inbox.get()
            try:
                await self._write(hold)
                self.counts["holds"] += 1
            except Exception:  # one write's failure loses only it
                log.exception("hold: %r not recorded", hold)
            finally:
                self._inbox.task_done()

    async def drained(self) -> None:
        await self._inbox.join()

    async def _write(self, hold: Hold) -> None:
        data = {"call_id": hold.call_id, "started": hold.started, "ended": hold.ended}
        if self.durable is not None:
            await self.durable.run_write(KIND, f"{hold.call_id}:hold:{hold.started}", data)
            return

        def work() -> None:
            with self.sessions.begin() as s:
                _apply(s, data)
        await asyncio.to_thread(work)
