"""bench/capacity.py between steps: the seats registered again before their REGISTER expires,
the agents' newest states folded from the desk's messages and counted by why they are not
ready, and every agent made ready again (a fake desk in place of the CTI over MQTT)."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench import sipp_load
from bench.acd import BenchError
from bench.capacity import (
    QUICK,
    SEAT_REGISTRATION_S,
    Options,
    fold_states,
    not_ready_by_reason,
    ready_agents,
    registration_due,
)

# ------------------------------------------------------------------------ the seats


def test_the_registration_lifetime_is_what_register_seats_asks_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def sipp_ok(args: list[str], **_kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(sipp_load.subprocess, "run", sipp_ok)
    sipp_load.register_seats({"seat01": "pw"}, "127.0.0.1:5060", 5080, tmp_path, 5090)
    expires = re.findall(r"Expires: (\d+)", (tmp_path / "register.xml").read_text())
    assert expires and {float(e) for e in expires} == {SEAT_REGISTRATION_S}


def test_registration_due_past_half_its_lifetime_by_the_steps_end() -> None:
    assert not registration_due(0, 200)
    assert not registration_due(1600, 200)
    assert registration_due(1601, 200)
    assert registration_due(4000, 0)
    assert registration_due(100, 100, expires_s=300)


@pytest.mark.parametrize("opts", [Options(), QUICK])
def test_no_seat_expires_during_a_long_run(opts: Options) -> None:
    # steps back to back, each as long as its bound, for three times the lifetime: checked
    # before every step, the registration is never older than its lifetime during a step
    bound = opts.step_bound_s()
    assert bound < SEAT_REGISTRATION_S / 4
    registered, now, again = 0.0, 0.0, 0
    while now < 3 * SEAT_REGISTRATION_S:
        if registration_due(now - registered, bound):
            registered, again = now, again + 1
        now += bound
        assert now - registered < SEAT_REGISTRATION_S / 2 + 1e-9
    assert 5 <= again <= 6  # about every half lifetime, not before every step


# ------------------------------------------------------------------------ the agents


def _state(agent: str, state: str, reason: str | None = None) -> dict[str, Any]:
    return {"agent_id": agent, "seat": "seat01", "state": state, "reason": reason,
            "since": 0.0, "call_id": None, "wrap_up_s": 1}


def test_fold_states_keeps_the_newest_per_agent_and_goes_on_from_where_it_stopped() -> None:
    states = [_state("A1", "not_ready", "login"), _state("A2", "ready"),
              _state("A1", "ready"), {"state": "ready"}]
    latest: dict[str, Any] = {}
    seen = fold_states(latest, states)
    assert seen == 4
    assert {a: d["state"] for a, d in latest.items()} == {"A1": "ready", "A2": "ready"}
    states.append(_state("A2", "not_ready", "rona"))
    assert fold_states(latest, states, seen) == 5
    assert latest["A2"]["reason"] == "rona" and latest["A1"]["state"] == "ready"


def test_not_ready_by_reason() -> None:
    latest = {d["agent_id"]: d for d in [
        _state("A1", "ready"), _state("A2", "not_ready", "rona"),
        _state("A3", "not_ready", "rona"), _state("A4", "not_ready", "phone_offline"),
        _state("A5", "on_call"), _state("A6", "logged_out"), _state("A7", "not_ready"),
        _state("X9", "not_ready", "rona")]}  # not one of the bench's agents
    agents = ["A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8"]
    got = not_ready_by_reason(latest, agents)
    assert got == {"logged_out": 1, "not_ready:-": 1, "not_ready:phone_offline": 1,
                   "not_ready:rona": 2, "on_call": 1, "unknown": 1}
    assert list(got) == sorted(got)
    assert not_ready_by_reason(latest, ["A1"]) == {}


class FakeDesk:
    """bench.acd.Desk's surface with the ACD's answers: `ready` from not_ready, wrap_up or
    ready is taken (the state message comes a little after the reply, as the CTI publishes it
    after its commit); from reserved, on_call or logged_out it is refused. `stuck` agents'
    state messages never come."""

    def __init__(self, states: list[dict[str, Any]], stuck: frozenset[str] = frozenset(),
                 delay_s: float = 0.05) -> None:
        self.states = states
        self.now = {d["agent_id"]: d["state"] for d in states}
        self.stuck, self.delay_s = stuck, delay_s
        self.sent: list[tuple[str, str]] = []

    def _becomes(self, agent: str, state: str, reason: str | None = None) -> None:
        self.now[agent] = state
        if agent not in self.stuck:
            asyncio.get_running_loop().call_later(
                self.delay_s, self.states.append, _state(agent, state, reason))

    async def command(self, agent: str, payload: dict[str, Any],
                      timeout: float = 15) -> dict[str, Any]:
        action = payload["action"]
        self.sent.append((agent, action))
        state = self.now.get(agent, "not_ready")  # its message not seen yet
        if action == "login":
            if state != "logged_out":
                return {"ok": True, "reattached": True}
            self._becomes(agent, "not_ready", "login")
            return {"ok": True}
        if state in ("reserved", "on_call", "logged_out"):
            return {"ok": False, "error": f"Ready not allowed while {state}"}
        if state != "ready":
            self._becomes(agent, "ready")
        return {"ok": True}

    async def login_ready(self, agent: str, seat: str) -> None:
        for action in ("login", "ready"):
            r = await self.command(agent, {"action": action, "seat": seat})
            if not r.get("ok"):
                raise BenchError(f"{agent}: {r}")


AGENTS = ["A1", "A2", "A3", "A4", "A5"]
SEATS = ["seat01", "seat02", "seat03", "seat04", "seat05"]


async def test_ready_agents_after_rona_and_a_logout() -> None:
    desk = FakeDesk([_state("A1", "ready"), _state("A2", "not_ready", "rona"),
                     _state("A3", "not_ready", "rona"), _state("A4", "wrap_up"),
                     _state("A5", "logged_out")])
    got = await ready_agents(desk, AGENTS, SEATS, deadline_s=5)
    assert got["not_ready_before"] == 4
    assert got["not_ready_before_by_reason"] == {"logged_out": 1, "not_ready:rona": 2,
                                                 "wrap_up": 1}
    assert got["refused"] == {}
    assert got["not_ready_at_start"] == 0 and got["not_ready_at_start_by_reason"] == {}
    assert got["ready_s"] < 5
    # every agent was told (a ready agent's repeat changes nothing); the logged-out one
    # logged in again first
    assert sorted(a for a, action in desk.sent if action == "ready") == AGENTS
    assert [a for a, action in desk.sent if action == "login"] == ["A5"]
    assert set(desk.now.values()) == {"ready"}


async def test_ready_agents_says_who_is_still_not_ready_at_the_deadline() -> None:
    desk = FakeDesk([_state("A1", "ready"), _state("A2", "on_call"),
                     _state("A3", "not_ready", "phone_offline"), _state("A4", "ready")],
                    stuck=frozenset({"A3"}))
    got = await ready_agents(desk, AGENTS, SEATS, deadline_s=0.5)
    assert got["not_ready_before_by_reason"] == {"not_ready:phone_offline": 1, "on_call": 1,
                                                 "unknown": 1}
    assert got["refused"] == {"Ready not allowed while on_call": 1}
    # A5 had no state message: told ready, it now has one; A3's never comes
    assert got["not_ready_at_start_by_reason"] == {"not_ready:phone_offline": 1,
                                                   "on_call": 1}
    assert got["not_ready_at_start"] == 2
    assert 0.5 <= got["ready_s"] < 2
