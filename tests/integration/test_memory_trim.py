"""hotline/trim.py on the real stack: the watchdog's `malloc trim` in the running Asterisk
(through its control socket, as the watchdog runs it), and the CTI's own trims, counted in its
status (the suite's CTI trims every 10 s, tests/integration/conftest.py)."""

from __future__ import annotations

from typing import Any

from config.settings import Settings
from hotline import stack, trim
from hotline.watchdog import Watchdog
from tests.integration.conftest import CtiProcess, ItEnv


def test_the_watchdog_has_the_running_asterisk_trim_its_heap(asterisk: Settings) -> None:
    s = asterisk
    pid = stack.pid_alive(stack.paths(s).asterisk_pid)
    assert pid, "the suite's Asterisk is not running"
    assert "Return excess memory to the OS" in stack.asterisk_cli(s, "core show help malloc")
    now = [0.0]
    seen: list[trim.Trim | None] = []

    def real_trim(settings: object) -> trim.Trim | None:
        seen.append(stack.trim_asterisk(settings))
        return seen[-1]

    wd = Watchdog(s, watched=("asterisk",), clock=lambda: now[0], trim_asterisk=real_trim)
    assert wd.tick() == []  # Asterisk runs: nothing to start, no trim before a period
    now[0] = s.memory.trim_every_s
    done = wd.tick()
    assert len(seen) == 1 and seen[0] is not None
    t = seen[0]
    assert t.rss_before_kib and t.rss_after_kib and t.freed_kib is not None
    assert t.rss_after_kib <= t.rss_before_kib + 1024
    assert 0 <= t.ms < 5_000
    assert done == [f"asterisk: trimmed ({t.freed_kib} KiB)"]
    assert stack.pid_alive(stack.paths(s).asterisk_pid) == pid  # the same Asterisk, alive


def test_the_cti_trims_itself_and_says_so_in_its_status(it_env: ItEnv, cti: CtiProcess) -> None:
    s = it_env.settings
    assert s.memory.trim_every_s == 10
    path = s.state_dir / "cti.status.json"

    def memory() -> dict[str, Any]:
        doc = stack.read_json(path) or {}
        got = doc.get("memory") if doc.get("pid") == cti.pid else None
        return got if isinstance(got, dict) else {}

    stack.wait_until(lambda: "trims" in memory(), 30, "the CTI's status with its memory")
    base = memory()["trims"]
    stack.wait_until(lambda: memory().get("trims", base) > base, 40,
                     "a malloc trim counted in the CTI's status")
    got = memory()
    assert isinstance(got["trim_ms"], int | float) and got["trim_ms"] >= 0
    assert isinstance(got["trim_rss_after_kib"], int) and got["trim_rss_after_kib"] > 0
    assert isinstance(got["trim_freed_kib"], int)
