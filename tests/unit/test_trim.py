"""hotline/trim.py: glibc's kept pages given back on a timer, its [memory] setting, and the
watchdog's trim of Asterisk (with the CLI call replaced)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings, SettingsError, load_settings, memory_settings
from hotline import stack, trim, watchdog
from hotline.trim import Every, Trim
from hotline.watchdog import Watchdog
from tests.support.settings import write_test_settings


def test_due_once_per_period_never_at_the_start_and_never_when_off() -> None:
    e = Every(300)
    assert [e.due(t) for t in (0, 100, 299.9, 300, 301, 599, 600)] == [
        False, False, False, True, False, False, True]
    late = Every(300)
    late.due(0)
    assert late.due(1000) and not late.due(1200)  # missed periods are not made up
    off = Every(0)
    assert not any(off.due(t) for t in (0, 300, 10_000))


def test_a_trim_says_what_it_gave_back() -> None:
    t = Trim(rss_before_kib=150_000, rss_after_kib=141_000, ms=4.26)
    assert t.freed_kib == 9_000
    assert t.as_status() == {"trim_freed_kib": 9_000, "trim_ms": 4.3,
                             "trim_rss_after_kib": 141_000}
    assert Trim(None, 100, 1.0).freed_kib is None
    assert "gave back 9000 KiB in 4 ms (RSS 150000 -> 141000 KiB)" in trim.describe("cti", t)


def test_timed_reads_rss_around_the_call_on_the_given_clock() -> None:
    ticks = iter([10.0, 10.25])
    calls: list[int] = []
    t = trim.timed(lambda: calls.append(1), "self", clock=lambda: next(ticks))
    assert calls == [1] and t.ms == 250.0
    assert t.rss_before_kib and t.rss_after_kib and t.rss_before_kib > 0
    assert trim.rss_kib(2**22 + 12345) is None  # no such process


def test_trim_self_gives_back_the_pages_freed_below_a_live_block() -> None:
    """The soak's growth in small: freed blocks below a live one stay resident (glibc trims
    only the top of its heap by itself) until malloc_trim gives their pages back."""
    assert trim.available()  # glibc, as on every machine this runs on
    blocks = [bytes(1500) for _ in range(20_000)]  # ~30 MB from malloc (over pymalloc's 512)
    pin = bytes(1500)  # above them: the heap's top stays in use
    before = trim.rss_kib()
    del blocks
    kept = trim.rss_kib()
    assert before and kept and kept > before - 5_000  # freed, but still resident
    t = trim.trim_self()
    assert t is not None and t.freed_kib is not None
    assert t.freed_kib > 15_000, t
    assert len(pin) == 1500


def test_the_memory_setting_is_checked() -> None:
    assert memory_settings({}).trim_every_s == 300.0
    assert memory_settings({"trim_every_s": 0}).trim_every_s == 0.0
    assert memory_settings({"trim_every_s": 60.5}).trim_every_s == 60.5
    for bad in (5, -1, "300", True, 100_000):
        with pytest.raises(SettingsError, match=r"\[memory\] trim_every_s"):
            memory_settings({"trim_every_s": bad})
    with pytest.raises(SettingsError, match="no setting 'trim_every'"):
        memory_settings({"trim_every": 300})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(write_test_settings(tmp_path / "hotline.toml", {}))


def test_the_watchdog_trims_asterisk_each_period_and_logs_a_failure(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watchdog, "running", lambda _s: dict.fromkeys(watchdog.DAEMONS, True))
    results: list[Trim | Exception] = [Trim(120_000, 111_000, 3.0),
                                       stack.StackError("asterisk is not running")]

    def fake_trim(_s: Settings) -> Trim | None:
        r = results.pop(0)
        if isinstance(r, Exception):
            raise r
        return r

    now = [0.0]
    wd = Watchdog(settings, clock=lambda: now[0], trim_asterisk=fake_trim)
    assert settings.memory.trim_every_s == 300
    assert wd.tick() == []
    now[0] = 299.0
    assert wd.tick() == []
    now[0] = 300.0
    assert wd.tick() == ["asterisk: trimmed (9000 KiB)"]
    now[0] = 400.0
    assert wd.tick() == []
    now[0] = 600.0
    assert wd.tick() == ["asterisk: trim failed"]  # logged; the round goes on
    assert results == []


def test_no_trim_when_it_is_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(write_test_settings(tmp_path / "hotline.toml",
                                          {"memory": {"trim_every_s": 0}}))
    monkeypatch.setattr(watchdog, "running", lambda _s: dict.fromkeys(watchdog.DAEMONS, True))
    called: list[Settings] = []
    now = [0.0]
    wd = Watchdog(s, clock=lambda: now[0], trim_asterisk=lambda x: called.append(x) or None)
    for t in (0.0, 300.0, 900.0):
        now[0] = t
        assert wd.tick() == []
    assert called == []
