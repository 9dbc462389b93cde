"""`hotline watchdog`: keep what `hotline up` started running, 7×24 (issue 11, section 2).

The standby CTI covers the death of the active one (it takes over within about a second,
RELIABILITY.md), but until now nothing started a new standby after a takeover, nor anything
else that died: one failure was covered, the second was not. The watchdog closes that: every
`interval_s` it looks at each daemon and starts what is not running, with the same idempotent
start functions `hotline up` uses (hotline/stack.py), in `up`'s order:

- Asterisk (`start_asterisk`), then the hotline's own broker (`start_mosquitto`);
- the active CTI slot (`start_cti`): after a takeover the standby's process holds the FastAGI
  port, and `start_cti` then starts the dead slot's process as the new standby;
- the standby slot (`start_cti_standby`), when `[cti] standby` is on.

Every `[memory] trim_every_s` (300 s) it also has Asterisk give back the heap pages glibc keeps
after a burst (`malloc trim`, through the control socket: hotline/trim.py); the CTI trims
itself.

A start that fails is tried again after a back-off (2 s doubling to 60 s), logged each time, so
a daemon that cannot start (a broken config, a port taken) is not restarted in a tight loop.

Privilege: the watchdog runs as root, as `hotline up` does, because starting Asterisk needs
its chroot and starting the CTI needs to drop to the `hotline` user; it starts nothing else and
serves nothing. It reads the pid files in run/ (root's) and the CTI's status files (for roles
only; it never signals a process because of them). `hotline down` stops it first, so that it
does not start again what `down` stops.

`decide` and `Backoff` are the pure core (tests/unit/test_watchdog.py); `Watchdog.tick` does one
round on the real stack (tests/integration/test_standby.py kills the active CTI twice).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from config.settings import Settings
from hotline import stack, trim

log = logging.getLogger(__name__)

DAEMONS = ("asterisk", "mosquitto", "cti", "cti-standby")  # `hotline up`'s order
INTERVAL_S = 2.0
BACKOFF_FIRST_S = 2.0
BACKOFF_MAX_S = 60.0


def decide(running: Mapping[str, bool], watched: Sequence[str]) -> list[str]:
    """The watched daemons that are not running, in start order (DAEMONS)."""
    return [d for d in DAEMONS if d in watched and not running.get(d, False)]


@dataclass
class Backoff:
    """Per daemon: after a failed start, the next try waits 2 s, then 4, 8 .. 60 s; a start
    that works resets it."""

    first_s: float = BACKOFF_FIRST_S
    max_s: float = BACKOFF_MAX_S
    _next: dict[str, float] = field(default_factory=dict)
    _wait: dict[str, float] = field(default_factory=dict)

    def may_try(self, daemon: str, now: float) -> bool:
        return now >= self._next.get(daemon, 0.0)

    def failed(self, daemon: str, now: float) -> float:
        """Note a failed start; the seconds until the next try."""
        wait = min(self.max_s, self._wait.get(daemon, self.first_s / 2) * 2)
        self._wait[daemon] = wait
        self._next[daemon] = now + wait
        return wait

    def started(self, daemon: str) -> None:
        self._wait.pop(daemon, None)
        self._next.pop(daemon, None)


def running(settings: Settings) -> dict[str, bool]:
    """Which of DAEMONS run now, by their pid files (the CTI's two slots by stack.cti_processes:
    after a takeover the standby slot's process is the active one, which is still 'running')."""
    p = stack.paths(settings)
    procs = stack.cti_processes(settings)
    return {"asterisk": bool(stack.pid_alive(p.asterisk_pid)),
            "mosquitto": bool(stack.pid_alive(p.mosquitto_pid)),
            "cti": "cti" in procs, "cti-standby": "cti-standby" in procs}


@dataclass
class Watchdog:
    settings: Settings
    watched: tuple[str, ...] = DAEMONS
    env: dict[str, str] | None = None  # the CTI's environment (tests pass their own)
    clock: Callable[[], float] = time.monotonic
    backoff: Backoff = field(default_factory=Backoff)
    trim_asterisk: Callable[[Settings], trim.Trim | None] = stack.trim_asterisk
    _trim_due: trim.Every = field(init=False)

    def __post_init__(self) -> None:
        if not self.settings.cti.standby:
            self.watched = tuple(d for d in self.watched if d != "cti-standby")
        self._trim_due = trim.Every(self.settings.memory.trim_every_s)

    def trim(self) -> str | None:
        """Asterisk's `malloc trim` when it is due and Asterisk runs; what was done, or None."""
        if "asterisk" not in self.watched or not self._trim_due.due(self.clock()):
            return None
        try:
            t = self.trim_asterisk(self.settings)
        except stack.StackError as exc:
            log.error("watchdog: Asterisk's malloc trim failed: %s", exc)
            return "asterisk: trim failed"
        if t is None:
            return None
        log.info("watchdog: %s", trim.describe("asterisk", t))
        return f"asterisk: trimmed ({t.freed_kib} KiB)"

    def _start(self, daemon: str) -> int | str:
        s = self.settings
        if daemon == "asterisk":
            return stack.start_asterisk(s)
        if daemon == "mosquitto":
            return stack.start_mosquitto(s)
        if daemon == "cti":
            return stack.start_cti(s, env=self.env)
        return stack.start_cti_standby(s, env=self.env)

    def tick(self) -> list[str]:
        """One round: start what is not running; what was started, as log lines."""
        done: list[str] = []
        for daemon in decide(running(self.settings), self.watched):
            now = self.clock()
            if not self.backoff.may_try(daemon, now):
                continue
            try:
                what = self._start(daemon)
            except stack.StackError as exc:
                wait = self.backoff.failed(daemon, now)
                log.error("watchdog: %s is not running and did not start (next try in %.0f s):"
                          " %s", daemon, wait, exc)
                done.append(f"{daemon}: start failed")
                continue
            self.backoff.started(daemon)
            log.warning("watchdog: %s was not running: started (%s)", daemon, what)
            done.append(f"{daemon}: started ({what})")
        trimmed = self.trim()
        if trimmed:
            done.append(trimmed)
        return done

    def run(self, interval_s: float = INTERVAL_S,
            sleep: Callable[[float], None] = time.sleep) -> None:
        log.info("watchdog: watching %s every %.1f s", ", ".join(self.watched), interval_s)
        while True:
            try:
                self.tick()
            except Exception:  # never die of one bad round: the next one tries again
                log.exception("watchdog: a round failed")
            sleep(interval_s)
