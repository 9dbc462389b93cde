"""A standby CTI (issue 11, section 2) over real Asterisk, on SQLite (the flock) and PostgreSQL
(the advisory lock): the active CTI is killed with a call talking and one waiting; the standby,
started as `hotline up` starts it, takes over within 5 s, resyncs, and the waiting caller is
served (re-offered by the new active, or by the native queue if it failed over first) while the
talking call goes on. The takeover times are printed for RELIABILITY.md ("Standby takeover")."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cti.db.models import Agent
from hotline import stack
from hotline.watchdog import Watchdog
from tests.integration.callers import CallInProgress, hang_up, is_event, ts
from tests.integration.conftest import Backend, CtiProcess
from tests.support.agent_phones import AgentPhones, register_seats
from tests.support.ami import AmiRecorder
from tests.support.mqtt import MqttWatcher, Msg
from tests.support.ports import port
from tests.support.sipp import Caller, Keys, Pause

pytestmark = pytest.mark.integration
ANSWER_PORT, REGISTER_PORT = port(15030), port(15032)
SEATS = ("seat07", "seat08")
TAKEOVER_S = 5.0  # the bound, from the kill to the standby routing


@pytest.fixture(scope="module")
def seats(cti: CtiProcess, mqtt: MqttWatcher, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[None]:
    mqtt.cti_online()
    wd = tmp_path_factory.mktemp("standby-phones")
    secrets = json.loads((cti.settings.state_dir / "secrets.json").read_text())
    target = f"{cti.settings.pbx.bind_ip}:{cti.settings.pbx.sip_port}"
    phones = AgentPhones(ANSWER_PORT, wd, answer=True, ring_ms=1000)
    try:
        register_seats({s: secrets[s] for s in SEATS}, target, ANSWER_PORT, wd, REGISTER_PORT)
        yield
    finally:
        phones.stop()


def _general_agents(backend: Backend) -> list[str]:
    with backend.sessions() as s:
        rows = s.execute(select(Agent.agent_id, Agent.skills).where(Agent.role == "agent")
                         .order_by(Agent.agent_id)).all()
    return [a for a, skills in rows if "general" in skills][6:8]  # none test_acd.py uses


def _state(mqtt: MqttWatcher, agent: str, state: str, since: int, timeout: float = 30,
           reason: str | None = None) -> Msg:
    return mqtt.wait_for(lambda m: m.topic == f"hotline/agents/{agent}/state"
                         and m.payload.get("state") == state
                         and (reason is None or m.payload.get("reason") == reason),
                         timeout, f"{agent} {state}", since=since)


def _to_agents(number: str, talk_ms: int | None = None) -> Caller:
    return Caller(number, [Pause(1500), Keys("1"), Pause(1500), Keys("0")],
                  hangup_after_ms=talk_ms)


def test_standby_takes_over_within_5s_when_the_active_cti_is_killed(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, seats: None,
        tmp_path: Path) -> None:
    talker_agent, waiter_agent = _general_agents(backend)
    settings = cti.settings
    m0, a0 = mqtt.mark(), ami.mark()
    assert mqtt.command("agents", talker_agent, {"action": "login", "seat": SEATS[0]})["ok"]
    assert mqtt.command("agents", talker_agent, {"action": "ready"})["ok"]
    _state(mqtt, talker_agent, "ready", m0)
    # the waiter's agent is logged in, not ready: the caller waits in Asterisk for our ACD
    assert mqtt.command("agents", waiter_agent, {"action": "login", "seat": SEATS[1]})["ok"]
    talker, waiter = f"{backend.prefix}7500001", f"{backend.prefix}7500002"
    talking = CallInProgress(_to_agents(talker, talk_ms=45_000), settings, tmp_path)
    bridged = ami.wait_for(is_event("DialEnd", talker, DialStatus="ANSWER"), 60,
                           "talker answered", since=a0)
    waiting = CallInProgress(_to_agents(waiter), settings, tmp_path)
    ami.wait_for(is_event("UserEvent", waiter, UserEvent="HotlineQueued"), 60, "waiter queued",
                 since=a0)

    # the standby, as `hotline up` starts it ([cti] standby): it binds nothing and waits
    standby_pid = stack.start_cti_standby(settings, env=cti.env)
    try:
        procs = stack.cti_processes(settings)
        assert procs == {"cti": {"pid": cti.pid, "role": "active"},
                         "cti-standby": {"pid": standby_pid, "role": "standby"}}, procs
        m_kill, a_kill = mqtt.mark(), ami.mark()
        t_kill = time.time()
        cti.kill9()

        online = mqtt.cti_online(timeout=30, since=m_kill)
        # the new active rebuilt the talking call from Asterisk and re-published its agent
        resynced = _state(mqtt, talker_agent, "on_call", m_kill)
        assert resynced.payload["call_id"] == bridged["Linkedid"]
        stack.wait_until(lambda: stack.cti_processes(settings).get("cti-standby", {})
                         .get("role") == "active", 10, "the standby to report itself active")
        assert stack.status(settings)["cti"]["pid"] == standby_pid

        # routing: the waiter's agent becomes ready; the new active offers the waiting caller,
        # unless the native queue already connected it (it failed over before the takeover)
        assert mqtt.command("agents", waiter_agent, {"action": "ready"})["ok"]
        served = ami.wait_for(
            lambda e: is_event("DialEnd", waiter, DialStatus="ANSWER")(e)
            or is_event("AgentConnect", waiter)(e), 30, "the waiting caller served",
            since=a_kill)
        failed_over = bool([e for e in ami.events()[a_kill:]
                            if is_event("UserEvent", waiter, UserEvent="HotlineFailover")(e)])
        offers = [e for e in ami.events()[a_kill:]
                  if is_event("UserEvent", waiter, UserEvent="HotlineOffer")(e)]
        if served["Event"] == "DialEnd":
            assert offers and offers[0]["Seat"] == SEATS[1], offers
        assert not [e for e in ami.events()[a_kill:] if is_event("Hangup", talker)(e)], \
            "the talking call was cut by the takeover"
        hang_up(ami, served)
        waiting.finish(30)
        assert talking.finish(90).ok  # talked to the end and hung up

        online_s = online.at - t_kill
        resync_s = resynced.at - t_kill
        routed = ("native queue" if served["Event"] == "AgentConnect"
                  else f"offer +{ts(offers[0]) - t_kill:.2f} s")
        print(f"\nSTANDBY TAKEOVER [{backend.name}]: online +{online_s:.2f} s, "
              f"resynced +{resync_s:.2f} s, waiter served by {routed}"
              f"{' (failed over first)' if failed_over else ''}, answered "
              f"+{ts(served) - t_kill:.2f} s")
        assert online_s < TAKEOVER_S and resync_s < TAKEOVER_S, (online_s, resync_s)
        for agent in (talker_agent, waiter_agent):
            assert mqtt.command("agents", agent, {"action": "logout"})["ok"]

        # `hotline up` after the takeover restores the pair: the dead one comes back as standby
        cti.start()
        procs = stack.cti_processes(settings)
        assert procs == {"cti": {"pid": cti.pid, "role": "standby"},
                         "cti-standby": {"pid": standby_pid, "role": "active"}}, procs
        # stopping the active now (a planned switch-over) hands routing back to it
        m_back, t_stop = mqtt.mark(), time.time()
        assert stack.stop_cti_standby(settings)
        back = mqtt.cti_online(timeout=30, since=m_back)
        stack.wait_until(lambda: stack.cti_processes(settings) == {
            "cti": {"pid": cti.pid, "role": "active"}}, 10, "the first CTI active again")
        print(f"STANDBY SWITCH-OVER [{backend.name}]: the active stopped (SIGTERM), the standby "
              f"online +{back.at - t_stop:.2f} s")
    finally:
        # the suite's CTI comes back as it was: the standby's process stops, `cti` runs
        stack.stop_cti_standby(settings)
        if not stack.pid_alive(stack.paths(settings).cti_pid):
            cti.start()
        mqtt.cti_online()


def test_a_caller_who_failed_over_before_a_late_standby_took_over_is_served_there(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, seats: None,
        tmp_path: Path) -> None:
    """The standby is late (stopped, as on a host under load) and the waiting caller fails over
    to the native queue in between: the queue connects them, and the standby, once it takes
    over, leaves that call alone."""
    agent = _general_agents(backend)[1]
    settings = cti.settings
    a0 = ami.mark()
    assert mqtt.command("agents", agent, {"action": "login", "seat": SEATS[1]})["ok"]
    # logged in (not ready): the seat is a member of the failover queue
    ami.wait_for(lambda e: e.get("Event") == "QueueMemberPause"
                 and e.get("Interface") == f"PJSIP/{SEATS[1]}" and e.get("Paused") == "0", 15,
                 f"{SEATS[1]} a member of the failover queue", since=a0)
    waiter = f"{backend.prefix}7500003"
    waiting = CallInProgress(_to_agents(waiter), settings, tmp_path)
    ami.wait_for(is_event("UserEvent", waiter, UserEvent="HotlineQueued"), 60, "waiter queued",
                 since=a0)
    standby_pid = stack.start_cti_standby(settings, env=cti.env)
    try:
        os.kill(standby_pid, signal.SIGSTOP)
        m_kill, a_kill = mqtt.mark(), ami.mark()
        cti.kill9()
        try:
            ami.wait_for(is_event("UserEvent", waiter, UserEvent="HotlineFailover"),
                         settings.acd.cti_stale_s + 15, "failover", since=a_kill)
            connected = ami.wait_for(is_event("AgentConnect", waiter), 30,
                                     "the native queue connected the waiter", since=a_kill)
            assert connected["Interface"] == f"PJSIP/{SEATS[1]}"
        finally:
            os.kill(standby_pid, signal.SIGCONT)
        mqtt.cti_online(timeout=30, since=m_kill)
        # re-published by the new active's resync: still not ready (the native queue's call is
        # not the ACD's; a ready agent would be set not_ready 'failover_call', as in test_acd)
        _state(mqtt, agent, "not_ready", m_kill)
        stack.wait_until(lambda: stack.cti_processes(settings).get("cti-standby", {})
                         .get("role") == "active", 10, "the standby to report itself active")
        assert not [e for e in ami.events()[a_kill:] if is_event("Hangup", waiter)(e)], \
            "the new active cut a call the failover queue had connected"
        assert not [e for e in ami.events()[a_kill:]
                    if is_event("UserEvent", waiter, UserEvent="HotlineOffer")(e)]
        hang_up(ami, connected)
        waiting.finish(30)
        assert mqtt.command("agents", agent, {"action": "logout"})["ok"]
    finally:
        with contextlib.suppress(ProcessLookupError):  # never leave a stopped process behind
            os.kill(standby_pid, signal.SIGCONT)
        stack.stop_cti_standby(settings)
        if cti.pid is None:
            cti.start()
        mqtt.cti_online()


def _watch_until_restored(wd: Watchdog, pair: Callable[[], dict[str, dict[str, Any]] | None],
                          killed: list[int]) -> list[str]:
    """Rounds of the watchdog until an active and a standby run again, none of them killed;
    what it started."""
    started: list[str] = []

    def restored() -> bool:
        started.extend(wd.tick())
        now = pair()
        return bool(now) and not {v["pid"] for v in (now or {}).values()} & set(killed)

    stack.wait_until(restored, 40, "the watchdog to start a new standby")
    return started


def test_the_watchdog_restores_the_pair_after_each_takeover(
        cti: CtiProcess, mqtt: MqttWatcher, backend: Backend) -> None:
    """`hotline watchdog` (hotline/watchdog.py): the active CTI is killed twice; each time the
    standby takes over and the watchdog starts a new standby in the dead one's slot, so the
    second kill is covered as the first was."""
    settings = cti.settings
    stack.start_cti_standby(settings, env=cti.env)
    wd = Watchdog(settings, watched=("cti", "cti-standby"), env=cti.env)
    slot_pidfile = {"cti": stack.paths(settings).cti_pid,
                    "cti-standby": stack.paths(settings).cti_standby_pid}

    def pair() -> dict[str, dict[str, Any]] | None:
        procs = stack.cti_processes(settings)
        roles = sorted(v["role"] for v in procs.values())
        return procs if roles == ["active", "standby"] else None

    try:
        procs = pair()
        assert procs, stack.cti_processes(settings)
        killed: list[int] = []
        for _ in range(2):
            slot = next(k for k, v in procs.items() if v["role"] == "active")
            victim = procs[slot]["pid"]
            m_kill = mqtt.mark()
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
            stack.wait_until(lambda s=slot: not stack.pid_alive(slot_pidfile[s]), 10,
                             "the killed CTI gone")
            mqtt.cti_online(timeout=30, since=m_kill)  # the standby took over
            started = _watch_until_restored(wd, pair, killed)
            # the dead one's slot got the new process (start_cti: a standby, as the other
            # holds the FastAGI port)
            assert [x for x in started if x.startswith(f"{slot}: started")], started
            procs = pair()
            assert procs and procs[slot]["role"] == "standby", procs
            print(f"\nWATCHDOG [{backend.name}]: killed the active {victim} ({slot}); "
                  f"{started}; now {procs}")
        assert wd.tick() == []  # nothing more to do
    finally:
        # the suite's CTI comes back as it was: the standby slot stops, `cti` runs and is active
        stack.stop_cti_standby(settings)
        cti.pid = stack.pid_alive(stack.paths(settings).cti_pid)
        if cti.pid is None:
            cti.start()
        stack.wait_until(lambda: stack.cti_processes(settings).get("cti", {}).get("role")
                         == "active", 30, "the suite's CTI active again")
        mqtt.cti_online()
