"""The watchdog's pure core (hotline/watchdog.py): what to start, in which order, and the
back-off after a failed start; and one round with the stack's start functions replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings, load_settings
from hotline import stack, watchdog
from hotline.watchdog import DAEMONS, Backoff, Watchdog, decide
from tests.support.settings import write_test_settings


def test_what_is_not_running_is_started_in_hotline_ups_order() -> None:
    running = {"asterisk": True, "mosquitto": False, "cti": False, "cti-standby": True}
    assert decide(running, DAEMONS) == ["mosquitto", "cti"]
    assert decide({}, DAEMONS) == list(DAEMONS)
    assert decide(dict.fromkeys(DAEMONS, True), DAEMONS) == []
    # only what is watched: without [cti] standby the standby slot is nobody's business
    assert decide({}, ("cti", "asterisk")) == ["asterisk", "cti"]


def test_a_failed_start_backs_off_doubling_to_a_minute_and_a_good_one_resets() -> None:
    b = Backoff()
    assert b.may_try("cti", 0.0)
    assert [b.failed("cti", t) for t in (0.0, 2.0, 6.0, 14.0)] == [2.0, 4.0, 8.0, 16.0]
    assert not b.may_try("cti", 29.9) and b.may_try("cti", 30.0)
    for _ in range(10):
        last = b.failed("cti", 100.0)
    assert last == 60.0
    assert b.may_try("asterisk", 100.0)  # per daemon
    b.started("cti")
    assert b.may_try("cti", 100.0) and b.failed("cti", 100.0) == 2.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(write_test_settings(tmp_path / "hotline.toml", {}))


def test_a_round_starts_what_died_and_backs_off_what_will_not_start(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    state = {"asterisk": True, "mosquitto": True, "cti": False, "cti-standby": False}
    monkeypatch.setattr(watchdog, "running", lambda _s: dict(state))
    tried: list[str] = []

    def start(self: Watchdog, daemon: str) -> int:
        tried.append(daemon)
        if daemon == "cti-standby":
            raise stack.StackError("port 4573 (FastAGI) is taken by another process")
        state[daemon] = True
        return 4242

    monkeypatch.setattr(Watchdog, "_start", start)
    now = [0.0]
    wd = Watchdog(settings, clock=lambda: now[0])
    assert wd.tick() == ["cti: started (4242)", "cti-standby: start failed"]
    assert wd.tick() == []  # the standby waits out its back-off (2 s); the CTI runs
    assert tried == ["cti", "cti-standby"]
    now[0] = 2.0
    assert wd.tick() == ["cti-standby: start failed"]
    assert tried == ["cti", "cti-standby", "cti-standby"]


def test_without_a_standby_the_standby_slot_is_not_watched(tmp_path: Path) -> None:
    path = write_test_settings(tmp_path / "hotline.toml", {"cti": {"standby": False}})
    wd = Watchdog(load_settings(path))
    assert "cti-standby" not in wd.watched and "cti" in wd.watched
