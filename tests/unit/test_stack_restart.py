"""start_cti right after a kill -9 (hotline/stack.py): the dead CTI's main thread is a zombie
(pid_alive says gone) while its other threads still hold its sockets for a moment; the restart
waits for the FastAGI port to be let go, and only a port that stays taken is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings, load_settings
from hotline import stack
from tests.support.settings import write_test_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(write_test_settings(tmp_path / "hotline.toml", {}))


class _Proc:
    pid = 4242

    def poll(self) -> None:
        return None


def _fake(monkeypatch: pytest.MonkeyPatch, port_states: list[bool]) -> list[str]:
    """port_open answers from `port_states` (then True: the new CTI's FastAGI is up)."""
    spawned: list[str] = []
    states = iter(port_states)
    monkeypatch.setattr(stack, "pid_alive", lambda _p: None)
    monkeypatch.setattr(stack, "port_open", lambda *_a, **_k: next(states, True))

    def spawn(*_a: Any, **_k: Any) -> _Proc:
        spawned.append("cti")
        return _Proc()

    monkeypatch.setattr(stack, "_spawn_cti", spawn)
    return spawned


def test_a_port_a_dying_cti_still_holds_is_waited_for(settings: Settings,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # taken at the check and twice more, then let go; then the new CTI's port is up
    spawned = _fake(monkeypatch, [True, True, True, False])
    assert stack.start_cti(settings) == _Proc.pid
    assert spawned == ["cti"]


def test_a_port_that_stays_taken_is_refused_and_nothing_is_started(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    spawned = _fake(monkeypatch, [True] * 1000)
    monkeypatch.setattr(stack, "PORT_RELEASE_S", 0.3)
    with pytest.raises(stack.StackError, match=r"\(FastAGI\) is taken by another process"):
        stack.start_cti(settings)
    assert spawned == []
