"""The daemon's outage watch: publishes the retained hotline/outages and hotline/storm messages
whenever the notices' revision or the storm switch moved in the database, whoever moved it.

The console's changes go out from the web app's OutageService after their commit; a change made
in another process (`hotline outages ...`, `hotline storm ...`, which have no bus) would reach
no desktop without this. It reads one revision row and one storm row every `every_s` (2 s), so
every change reaches the desktops within a few seconds. A change made in this process is sent
twice (by the service at once, by the watch a moment later): both are the same retained state,
and a desktop that re-reads /api/outages twice loses nothing. At start it sends the current
state once, so the retained messages match the database after a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from config import topics
from cti.db import outages as store

log = logging.getLogger(__name__)

EVERY_S = 2.0


class Publisher(Protocol):
    def publish(self, topic: str, payload: Mapping[str, Any] | str | bytes, *, qos: int = 1,
                retain: bool = False) -> None: ...


@dataclass(frozen=True, slots=True)
class Seen:
    version: int
    storm: tuple[bool, datetime | None, str | None, str | None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class OutageWatch:
    """`step()` reads and publishes what moved (a thread's work); `run()` is the named task."""

    def __init__(self, sessions: sessionmaker[Session], bus: Publisher, *,
                 every_s: float = EVERY_S, clock: Callable[[], datetime] = _utc_now) -> None:
        self.sessions = sessions
        self.bus = bus
        self.every_s = every_s
        self.clock = clock
        self.seen: Seen | None = None
        self.sent = 0

    def step(self) -> Seen:
        """One look at the database: publish the notices' and the storm's state if either
        moved since the last look (both, the first time)."""
        now = self.clock()
        with self.sessions() as s:
            version = store.version(s)
            row = store.storm(s)
            storm = (row.on, row.since, row.by, row.trigger)
            outages_moved = self.seen is None or self.seen.version != version
            if outages_moved:
                notices = store.load_notices(s)
                active = sum(1 for n in notices if n.counts_at(now))
                suspected = sum(1 for n in notices if n.awaiting_confirmation)
        if outages_moved:
            self.bus.publish(topics.OUTAGES_TOPIC, topics.outages_payload(
                version=version, active=active, suspected=suspected, changed_id=None,
                action=None, at=now), qos=topics.OUTAGES.qos, retain=topics.OUTAGES.retain)
            self.sent += 1
        if self.seen is None or self.seen.storm != storm:
            self.bus.publish(topics.STORM_TOPIC, topics.storm_payload(
                on=row.on, since=row.since, by=row.by, trigger=row.trigger, at=now),
                qos=topics.STORM.qos, retain=topics.STORM.retain)
            self.sent += 1
        self.seen = Seen(version, storm)
        return self.seen

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, self.step)
            except Exception as exc:  # the database is away: look again next time
                log.warning("outage watch: %s", exc)
            await asyncio.sleep(self.every_s)
