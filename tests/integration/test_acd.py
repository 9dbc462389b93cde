"""The ACD over real Asterisk: SIPp agent phones on registered seats, real callers, MQTT pops.

Agents log in over MQTT like a desktop would. One SIPp UAS answers for the seats that pick up
(after ringing 1.5 s), another rings and never answers (ring-no-answer). Timings are read from
AMI and MQTT events, never from sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cti.db.models import Agent, Call
from tests.integration.callers import CallInProgress, call_story, hang_up, is_event, ts
from tests.integration.conftest import Backend, CtiProcess
from tests.support.agent_phones import AgentPhones, register_seats
from tests.support.ami import AmiRecorder, AmiTimeout, send_action
from tests.support.mqtt import MqttWatcher, Msg
from tests.support.ports import port
from tests.support.sipp import Caller, Keys, Pause

pytestmark = pytest.mark.integration
ANSWER_PORT, NO_ANSWER_PORT = port(15090), port(15092)


@pytest.fixture(scope="module")
def phones(cti: CtiProcess, mqtt: MqttWatcher, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[None]:
    mqtt.cti_online()  # agents log in over MQTT: the CTI must be listening for commands
    wd = tmp_path_factory.mktemp("agent-phones")
    secrets = json.loads((cti.settings.state_dir / "secrets.json").read_text())
    target = f"{cti.settings.pbx.bind_ip}:{cti.settings.pbx.sip_port}"
    answering = AgentPhones(ANSWER_PORT, wd, answer=True, ring_ms=1500)
    silent = AgentPhones(NO_ANSWER_PORT, wd, answer=False)
    try:
        register_seats({s: secrets[s] for s in ("seat01", "seat02", "seat03")}, target,
                       ANSWER_PORT, wd, port(15094))
        register_seats({"seat04": secrets["seat04"]}, target, NO_ANSWER_PORT, wd, port(15096))
        yield
    finally:
        answering.stop()
        silent.stop()


@pytest.fixture(scope="module")
def general_agents(backend: Backend) -> list[str]:
    with backend.sessions() as s:
        rows = s.execute(select(Agent.agent_id, Agent.skills).where(Agent.role == "agent")
                         .order_by(Agent.agent_id)).all()
    return [a for a, skills in rows if "general" in skills][:3]


def _login(mqtt: MqttWatcher, agent: str, seat: str) -> dict[str, object]:
    """No password on the bus: the harness's broker user writes the agent's command topic."""
    r = mqtt.command("agents", agent, {"action": "login", "seat": seat})
    assert r["ok"], r
    assert "token" not in r, r  # nothing long-lived crosses the bus
    return r


def _login_ready(mqtt: MqttWatcher, agent: str, seat: str) -> None:
    """Sign the agent in at the seat and make them ready for calls."""
    _login(mqtt, agent, seat)
    assert mqtt.command("agents", agent, {"action": "ready"})["ok"]


def _state(mqtt: MqttWatcher, agent: str, state: str, since: int, timeout: float = 30,
           reason: str | None = None) -> Msg:
    return mqtt.wait_for(lambda m: m.topic == f"hotline/agents/{agent}/state"
                         and m.payload.get("state") == state
                         and (reason is None or m.payload.get("reason") == reason),
                         timeout, f"{agent} {state}", since=since)


def _to_agents(number: str, talk_ms: int | None = None) -> Caller:
    """Mandarin, then 0 for an agent; then talk for talk_ms and hang up (or wait for BYE)."""
    return Caller(number, [Pause(1500), Keys("1"), Pause(1500), Keys("0")],
                  hangup_after_ms=talk_ms)


def test_pop_reaches_ringing_agent_before_answer_then_wrap_up(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, phones: None,
        general_agents: list[str], tmp_path: Path) -> None:
    agent = general_agents[0]
    m0 = mqtt.mark()
    _login_ready(mqtt, agent, "seat01")
    _state(mqtt, agent, "ready", m0)
    number = f"{backend.prefix}7000001"
    mark = ami.mark()
    call = CallInProgress(_to_agents(number, talk_ms=14_000), cti.settings, tmp_path)
    offer = ami.wait_for(is_event("UserEvent", number, UserEvent="HotlineOffer"), 60,
                         "HotlineOffer", since=mark)
    assert offer["Seat"] == "seat01"
    answered = ami.wait_for(is_event("DialEnd", number, DialStatus="ANSWER"), 30, "DialEnd ANSWER",
                            since=mark)
    pop = mqtt.wait_for(lambda m: m.topic == f"hotline/agents/{agent}/pop", 5, "pop", since=m0)
    # the pop was on the agent's topic while the seat rang, before the agent answered
    assert pop.at < ts(answered), (pop.at, ts(answered))
    assert pop.payload["caller_number"] == number
    assert pop.payload["call_id"] == offer["Linkedid"]
    assert any(step.get("input") == "0" for step in pop.payload["ivr"]["path"])
    _state(mqtt, agent, "on_call", m0)
    assert call.finish(90).ok
    _state(mqtt, agent, "wrap_up", m0)
    _state(mqtt, agent, "ready", m0 + 1, timeout=cti.settings.acd.wrap_up_s + 10)
    with backend.sessions() as s:
        rec = s.execute(select(Call).where(Call.call_id == offer["Linkedid"])).scalar_one()
        assert rec.agent_id == agent and rec.seat == "seat01"
        assert rec.queued_at is not None and rec.answered_at is not None
        assert rec.ended_at is not None and rec.ended_at > rec.answered_at
    assert mqtt.command("agents", agent, {"action": "logout"})["ok"]
    _state(mqtt, agent, "logged_out", m0)


def test_ring_no_answer_requeues_and_sets_agent_not_ready(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, phones: None,
        general_agents: list[str], tmp_path: Path) -> None:
    silent_agent, backup = general_agents[1], general_agents[2]
    m0 = mqtt.mark()
    _login(mqtt, silent_agent, "seat04")
    _login(mqtt, backup, "seat02")
    assert mqtt.command("agents", silent_agent, {"action": "ready"})["ok"]
    number = f"{backend.prefix}7000002"
    mark = ami.mark()
    call = CallInProgress(_to_agents(number, talk_ms=20_000), cti.settings, tmp_path)
    rona = ami.wait_for(is_event("UserEvent", number, UserEvent="HotlineRona"), 60,
                        "HotlineRona", since=mark)
    assert rona["Seat"] == "seat04"
    _state(mqtt, silent_agent, "not_ready", m0, reason="rona")
    # the caller kept waiting; the next agent to become ready gets the call
    assert mqtt.command("agents", backup, {"action": "ready"})["ok"]
    offer = ami.wait_for(lambda e: is_event("UserEvent", number, UserEvent="HotlineOffer")(e)
                         and e.get("Seat") == "seat02", 30, "offer to seat02", since=mark)
    assert ts(offer) > ts(rona)
    ami.wait_for(is_event("DialEnd", number, DialStatus="ANSWER"), 30, "answered", since=mark)
    assert not [e for e in ami.events()[mark:]
                if is_event("UserEvent", number, UserEvent="HotlineFailover")(e)]
    assert call.finish(90).ok
    for agent in (silent_agent, backup):
        assert mqtt.command("agents", agent, {"action": "logout"})["ok"]


def test_cti_killed_waiting_callers_fail_over_talking_calls_go_on(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, phones: None,
        general_agents: list[str], tmp_path: Path) -> None:
    agent = general_agents[0]
    m_login = ami.mark()
    _login_ready(mqtt, agent, "seat03")
    # the failover queue rings only seats with an agent logged in: the CTI unpaused seat03
    ami.wait_for(lambda e: e.get("Event") == "QueueMemberPause"
                 and e.get("Interface") == "PJSIP/seat03" and e.get("Paused") == "0", 15,
                 "seat03 a member of the failover queue", since=m_login)
    # what Asterisk holds now (QueueStatus), not the pause events seen so far: a member paused
    # before this AMI session (or never changed since) has no event in the recording
    paused = {str(e.get("Location") or e.get("Interface")): str(e["Paused"]) for e in send_action(
        ami, {"Action": "QueueStatus", "Queue": "hotline-agents"}, as_list=True)
        if e.get("Event") == "QueueMember"}
    assert paused["PJSIP/seat03"] == "0"
    assert paused["PJSIP/seat50"] == "1"  # nobody logged in there
    talker, waiter = f"{backend.prefix}7000003", f"{backend.prefix}7000004"
    mark = ami.mark()
    talking = CallInProgress(_to_agents(talker, talk_ms=30_000), cti.settings, tmp_path)
    try:
        bridged = ami.wait_for(is_event("DialEnd", talker, DialStatus="ANSWER"), 60,
                               "talker answered", since=mark)
    except AmiTimeout as exc:  # seen once in a clean-clone run: say what the call did instead
        raise AssertionError(f"{exc}\n{call_story(ami, talker, mark, cti.settings)}") from None
    waiting = CallInProgress(_to_agents(waiter), cti.settings, tmp_path)
    ami.wait_for(is_event("UserEvent", waiter, UserEvent="HotlineQueued"), 60,
                 "waiter queued", since=mark)
    cti.kill9()
    try:
        fo = ami.wait_for(is_event("UserEvent", waiter, UserEvent="HotlineFailover"),
                          cti.settings.acd.cti_stale_s + 15, "failover", since=mark)
        join = ami.wait_for(is_event("QueueCallerJoin", waiter), 10, "native queue",
                            since=mark)
        assert join["Queue"] == "hotline-agents" and ts(join) >= ts(fo)
        hang_up(ami, join)
        # the talking call was never touched
        hangups = [e for e in ami.events()[mark:] if is_event("Hangup", talker)(e)]
        assert not hangups, "the talking call was cut when the CTI died"
    finally:
        m1 = mqtt.mark()
        cti.start()
    # the restarted CTI rebuilt the agent from the DB and the call from Asterisk
    st = _state(mqtt, agent, "on_call", m1, timeout=30)
    assert st.payload["call_id"] == bridged["Linkedid"]
    assert talking.finish(90).ok
    waiting.finish(30)
    _state(mqtt, agent, "wrap_up", m1)
    # the restart kept the agent at the seat: logging in again there re-attaches
    assert _login(mqtt, agent, "seat03").get("reattached") is True
    assert mqtt.command("agents", agent, {"action": "logout"})["ok"]


def _agents_with(backend: Backend, want: str, without: str | None = None) -> list[str]:
    with backend.sessions() as s:
        rows = s.execute(select(Agent.agent_id, Agent.skills).where(Agent.role == "agent")
                         .order_by(Agent.agent_id)).all()
    return [a for a, skills in rows
            if want in skills and (without is None or without not in skills)]


def test_english_caller_goes_to_english_agent_not_the_longest_idle(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, phones: None,
        tmp_path: Path) -> None:
    general_only = _agents_with(backend, "general", without="english")[-1]
    english = _agents_with(backend, "english")[0]
    m0 = mqtt.mark()
    logged_in = []
    # the general-only agent has been idle longest: by idle time alone it would get the call
    for agent, seat in ((general_only, "seat01"), (english, "seat03")):
        _login_ready(mqtt, agent, seat)
        logged_in.append(agent)
        _state(mqtt, agent, "ready", m0)
    number = f"{backend.prefix}7000006"
    mark = ami.mark()
    call = CallInProgress(Caller(number, [Pause(1500), Keys("2"), Pause(1500), Keys("0")],
                                 hangup_after_ms=6_000), cti.settings, tmp_path)
    queued = ami.wait_for(is_event("UserEvent", number, UserEvent="HotlineQueued"), 60,
                          "queued", since=mark)
    assert queued["Skill"] == "english"
    offer = ami.wait_for(is_event("UserEvent", number, UserEvent="HotlineOffer"), 30,
                         "offer", since=mark)
    assert offer["Seat"] == "seat03", "the English caller was not routed by skill"
    assert call.finish(90).ok
    for agent in logged_in:
        assert mqtt.command("agents", agent, {"action": "logout"})["ok"]


def test_important_customer_is_answered_before_an_earlier_caller(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, phones: None,
        general_agents: list[str], tmp_path: Path) -> None:
    agent = general_agents[0]
    important = backend.demo["important_customer"]["account_no"]
    plain_no, vip_no = f"{backend.prefix}7000007", f"{backend.prefix}7000008"
    mark = ami.mark()
    # an ordinary caller asks for an agent first
    plain = CallInProgress(_to_agents(plain_no), cti.settings, tmp_path)
    ami.wait_for(is_event("UserEvent", plain_no, UserEvent="HotlineQueued"), 60, "plain queued",
                 since=mark)
    # then a hospital's account: bill lookup, and 0 for an agent while the bill is read
    vip = CallInProgress(Caller(vip_no, [Pause(1500), Keys("1"), Pause(1500), Keys("1"),
                                         Pause(1500), Keys(important + "#"), Pause(2500),
                                         Keys("0")], hangup_after_ms=8_000),
                         cti.settings, tmp_path)
    q = ami.wait_for(is_event("UserEvent", vip_no, UserEvent="HotlineQueued"), 60,
                     "important caller queued", since=mark)
    assert q["Account"] == important
    m0 = mqtt.mark()
    _login_ready(mqtt, agent, "seat01")
    first = ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                         and e.get("UserEvent") == "HotlineOffer"
                         and e.get("CallerIDNum") in (plain_no, vip_no), 30, "first offer",
                         since=mark)
    assert first["CallerIDNum"] == vip_no, "the important customer waited behind a later caller"
    assert vip.finish(90).ok
    # the ordinary caller is next once the agent is free again
    second = ami.wait_for(is_event("UserEvent", plain_no, UserEvent="HotlineOffer"), 60,
                          "second offer", since=mark)
    assert ts(second) > ts(first)
    hang_up(ami, second)
    plain.finish(60)
    _state(mqtt, agent, "wrap_up", m0)
    assert mqtt.command("agents", agent, {"action": "logout"})["ok"]


def test_asterisk_restart_cti_reconnects_and_resyncs(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, phones: None,
        general_agents: list[str], tmp_path: Path) -> None:
    from hotline import stack

    agent = general_agents[1]
    _login_ready(mqtt, agent, "seat02")
    m1 = mqtt.mark()
    stack.stop_asterisk(cti.settings)
    stack.start_asterisk(cti.settings)
    # the CTI noticed, reconnected, resynced, and said so by re-publishing every agent's state
    st = _state(mqtt, agent, "ready", m1, timeout=60)
    assert st.payload["seat"] == "seat02"
    assert cti.pid is not None and stack.pid_alive(stack.paths(cti.settings).cti_pid) == cti.pid
    # and it routes calls again: the seat's phone must register anew with the new Asterisk
    secrets = json.loads((cti.settings.state_dir / "secrets.json").read_text())
    register_seats({"seat02": secrets["seat02"]}, f"127.0.0.1:{cti.settings.pbx.sip_port}",
                   ANSWER_PORT, tmp_path, port(15098))
    number = f"{backend.prefix}7000005"
    mark = ami.mark()
    call = CallInProgress(_to_agents(number, talk_ms=6_000), cti.settings, tmp_path)
    offer = ami.wait_for(is_event("UserEvent", number, UserEvent="HotlineOffer"), 60,
                         "HotlineOffer after the restart", since=mark)
    assert offer["Seat"] == "seat02"
    assert call.finish(90).ok
    _state(mqtt, agent, "wrap_up", m1)
    assert mqtt.command("agents", agent, {"action": "logout"})["ok"]


# ------------------------------------------------------------------ fairness, overflow, callback

FAIR_SEATS = [f"seat{n:02d}" for n in range(5, 17)]


@pytest.fixture(scope="module")
def more_phones(cti: CtiProcess, phones: None, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every other seat (05-50) on the answering phone too: one SIPp UAS answers for all 50."""
    wd = tmp_path_factory.mktemp("more-phones")
    secrets = json.loads((cti.settings.state_dir / "secrets.json").read_text())
    register_seats({f"seat{n:02d}": secrets[f"seat{n:02d}"] for n in range(5, 51)},
                   f"{cti.settings.pbx.bind_ip}:{cti.settings.pbx.sip_port}", ANSWER_PORT, wd,
                   port(15097))


def test_longest_idle_agent_gets_each_call_and_calls_spread_evenly(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, phones: None,
        more_phones: None, tmp_path: Path) -> None:
    from cti.db.models import AgentStateLog

    agents = _agents_with(backend, "general")[3:3 + len(FAIR_SEATS)]
    assert len(agents) == len(FAIR_SEATS)
    with backend.sessions() as s:
        before = s.execute(select(func.max(AgentStateLog.id))).scalar() or 0
    m0 = mqtt.mark()
    logged_in = []
    for agent, seat in zip(agents, FAIR_SEATS, strict=True):
        _login_ready(mqtt, agent, seat)
        logged_in.append(agent)
        _state(mqtt, agent, "ready", m0)
    n_calls = 3 * len(agents)
    numbers = [f"{backend.prefix}71{n:05d}" for n in range(n_calls)]
    mark = ami.mark()
    calls = []
    for n, number in enumerate(numbers):
        # callers wait for the PBX to hang up; each starts once the one before it is in
        calls.append(CallInProgress(_to_agents(number), cti.settings, tmp_path))
        ami.wait_for(is_event("Newchannel", number), 30, f"caller {n} in", since=mark)
    # 18 callers queue within seconds for 6 agents. Each answered call is hung up at once,
    # so agents cycle ring -> answer -> wrap-up -> ready while the others wait in the queue.
    answered_numbers: set[str] = set()
    while len(answered_numbers) < n_calls:
        ev = ami.wait_for(lambda e: e.get("Event") == "DialEnd"
                          and e.get("DialStatus") == "ANSWER"
                          and e.get("CallerIDNum") in numbers
                          and e["CallerIDNum"] not in answered_numbers, 120,
                          f"answer {len(answered_numbers) + 1} of {n_calls}", since=mark)
        answered_numbers.add(ev["CallerIDNum"])
        # talk until the ACD has the agent on the call, then the caller hangs up
        call_id = ev["Linkedid"]
        mqtt.wait_for(lambda m, call_id=call_id: m.topic.startswith("hotline/agents/")
                      and m.payload.get("state") == "on_call"
                      and m.payload.get("call_id") == call_id, 30,
                      f"on_call for {ev['CallerIDNum']}", since=m0)
        hang_up(ami, ev)
    for call in calls:
        assert call.finish(60).ok
    for agent in agents:
        _state(mqtt, agent, "ready", m0 + 1, timeout=30)
    offers = [e for e in ami.events()[mark:] if e.get("Event") == "UserEvent"
              and e.get("UserEvent") == "HotlineOffer" and e.get("CallerIDNum") in numbers]
    assert len({e["CallerIDNum"] for e in offers}) == n_calls, "not every caller was offered"
    # replay the ACD's own audit log: at every offer, the chosen agent had been ready longest
    with backend.sessions() as s:
        rows = s.execute(select(AgentStateLog).where(AgentStateLog.agent_id.in_(agents),
                                                     AgentStateLog.id > before)
                         .order_by(AgentStateLog.id)).scalars().all()
    latest: dict[str, AgentStateLog] = {}
    checked = 0
    answered: dict[str, int] = dict.fromkeys(agents, 0)
    for row in rows:
        if row.state == "reserved":
            prev = latest[row.agent_id]
            assert prev.state == "ready", (row.agent_id, prev.state)
            for other, o in latest.items():
                if other != row.agent_id and o.state == "ready":
                    assert prev.at <= o.at, (
                        f"{row.call_id} went to {row.agent_id} (ready since {prev.at}) while "
                        f"{other} had been ready since {o.at}")
            checked += 1
        if row.state == "on_call":
            answered[row.agent_id] += 1
        latest[row.agent_id] = row
    assert checked >= n_calls
    assert sum(answered.values()) >= n_calls
    assert max(answered.values()) - min(answered.values()) <= 1, answered
    for agent in logged_in:
        assert mqtt.command("agents", agent, {"action": "logout"})["ok"]


def test_a_full_queue_overflows_new_callers_to_the_busy_message(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, tmp_path: Path) -> None:
    # no English agent is logged in; the English queue holds two callers (conftest)
    assert dict(cti.settings.acd.max_queue_by_skill)["english"] == 2
    numbers = [f"{backend.prefix}72000{n}" for n in range(3)]
    mark = ami.mark()
    calls = []
    for number in numbers:
        calls.append(CallInProgress(Caller(number, [Pause(1500), Keys("2"), Pause(1500),
                                                    Keys("0")]), cti.settings, tmp_path))
        ami.wait_for(is_event("UserEvent", number, UserEvent="HotlineQueued"), 60,
                     f"{number} queued", since=mark)
    # the third caller is told all lines are busy (not dead air) and the PBX hangs up
    gone = ami.wait_for(is_event("Hangup", numbers[2]), 30, "overflowed caller hung up",
                        since=mark)
    assert gone["Cause"] == "17"  # user busy: hotline-wait,busy after the all-busy message
    assert calls[2].finish(30).ok
    # the two waiting callers were never touched
    waiting = [e for e in ami.events()[mark:] if e.get("Event") == "Hangup"
               and e.get("CallerIDNum") in numbers[:2]]
    assert not waiting
    for number in numbers[:2]:
        queued = ami.wait_for(is_event("UserEvent", number, UserEvent="HotlineQueued"), 1,
                              "queued", since=mark)
        hang_up(ami, queued)
    for call in calls[:2]:
        call.finish(30)


def test_callback_keeps_the_callers_place_and_dials_them_back(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, phones: None,
        general_agents: list[str], tmp_path: Path) -> None:
    from tests.integration.conftest import CUSTOMER_PORT

    customer_phone = AgentPhones(CUSTOMER_PORT, tmp_path / "customer", answer=True, ring_ms=800)
    try:
        agent = general_agents[0]
        m0 = mqtt.mark()
        _login_ready(mqtt, agent, "seat01")
        talker, asker, later = (f"{backend.prefix}730000{n}" for n in range(3))
        mark = ami.mark()
        # the agent is busy with a first caller ...
        talking = CallInProgress(_to_agents(talker, talk_ms=20_000), cti.settings, tmp_path)
        ami.wait_for(is_event("DialEnd", talker, DialStatus="ANSWER"),
                     60, "talker answered", since=mark)
        # ... a second caller waits, presses 1 to be called back, hears so and hangs up ...
        callback = CallInProgress(Caller(asker, [Pause(1500), Keys("1"), Pause(1500), Keys("0"),
                                                 Pause(6000), Keys("1")]),
                                  cti.settings, tmp_path)
        queued = ami.wait_for(is_event("UserEvent", asker, UserEvent="HotlineQueued"), 60,
                              "asker queued", since=mark)
        asked = ami.wait_for(is_event("UserEvent", asker, UserEvent="HotlineCallback"), 30,
                             "callback requested", since=mark)
        assert callback.finish(30).ok  # the PBX hung up after the callback message
        # ... and a third caller arrives after that, and waits
        waiting = CallInProgress(_to_agents(later), cti.settings, tmp_path)
        ami.wait_for(is_event("UserEvent", later, UserEvent="HotlineQueued"), 60,
                     "later caller queued", since=mark)
        assert talking.finish(60).ok
        # the agent is free: the callback, which kept its place, goes first. The seat rings,
        # the agent answers, and the customer is dialled on the outbound trunk.
        cb = ami.wait_for(lambda e: e.get("UserEvent") == "HotlineCallbackAnswered"
                          and e.get("CallId") == queued["Linkedid"], 60,
                          "callback answered by the agent", since=mark)
        assert cb["Seat"] == "seat01" and ts(cb) > ts(asked)
        dialled = ami.wait_for(lambda e: e.get("Event") == "DialEnd"
                               and e.get("DestChannel", "").startswith("PJSIP/carrier-out-")
                               and e.get("DialStatus") == "ANSWER", 30,
                               "the customer answered", since=mark)
        begin = ami.wait_for(lambda e: e.get("Event") == "DialBegin"
                             and e.get("DestChannel") == dialled["DestChannel"], 1,
                             "DialBegin to the customer", since=mark)
        assert begin["DialString"] == f"{asker}@carrier-out"  # the caller's own number
        mqtt.wait_for(lambda m: m.topic == f"hotline/agents/{agent}/state"
                      and m.payload.get("state") == "on_call"
                      and m.payload.get("call_id") == queued["Linkedid"], 30,
                      "agent on the callback", since=m0)
        pop = mqtt.wait_for(lambda m: m.topic == f"hotline/agents/{agent}/pop"
                            and m.payload.get("callback") is True, 5, "callback pop", since=m0)
        assert pop.payload["caller_number"] == asker
        early = [e for e in ami.events()[mark:]
                 if is_event("UserEvent", later, UserEvent="HotlineOffer")(e) and ts(e) < ts(cb)]
        assert not early, "a later caller was served before the callback"
        # the callback ends; after wrap-up the waiting caller is next
        hang_up(ami, dialled)
        ami.wait_for(lambda e: e.get("UserEvent") == "HotlineCallbackEnded"
                     and e.get("CallId") == queued["Linkedid"], 30, "callback ended",
                     since=mark)
        mqtt.wait_for(lambda m: m.topic == f"hotline/agents/{agent}/state"
                      and m.payload.get("state") == "wrap_up"
                      and m.payload.get("call_id") == queued["Linkedid"], 30,
                      "wrap-up after the callback", since=m0)
        # the record: the caller's own hang-up after asking did not end it (it was closed as
        # abandoned, and answered after its end); the callback's end did
        with backend.sessions() as s:
            rec = s.execute(select(Call).where(Call.call_id == queued["Linkedid"])).scalar_one()
        assert rec.callback_requested_at is not None
        assert rec.callback_requested_at.timestamp() == pytest.approx(ts(asked), abs=1.0)
        assert rec.answered_at is not None and rec.ended_at is not None
        assert rec.ended_at > rec.answered_at > rec.callback_requested_at
        assert rec.outcome != "abandoned" and rec.agent_id == agent
        offer = ami.wait_for(is_event("UserEvent", later, UserEvent="HotlineOffer"), 30,
                             "later caller offered", since=mark)
        assert ts(offer) > ts(cb)
        hang_up(ami, offer)
        waiting.finish(30)
        assert mqtt.command("agents", agent, {"action": "logout"})["ok"]
    finally:
        customer_phone.stop()


def test_restarted_cti_leaves_a_failover_call_talking_and_the_agent_out_of_routing(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, phones: None,
        general_agents: list[str], tmp_path: Path) -> None:
    agent = general_agents[1]
    _login_ready(mqtt, agent, "seat02")
    number = f"{backend.prefix}7400001"
    cti.kill9()
    try:
        mark = ami.mark()
        # with the CTI down the caller hears the apology, waits, and fails over to app_queue,
        # which rings the one seat with an agent logged in
        call = CallInProgress(Caller(number, [], hangup_after_ms=35_000), cti.settings,
                              tmp_path)
        connected = ami.wait_for(lambda e: e.get("Event") == "AgentConnect"
                                 and e.get("CallerIDNum") == number, 60,
                                 "failover call connected", since=mark)
        assert connected["Interface"] == "PJSIP/seat02"
    finally:
        m1 = mqtt.mark()
        cti.start()
    # the restarted CTI leaves the call alone and takes the agent out of routing meanwhile
    _state(mqtt, agent, "not_ready", m1, reason="failover_call", timeout=30)
    assert not [e for e in ami.events()[mark:] if is_event("Hangup", number)(e)], \
        "the restarted CTI cut a call the failover queue had connected"
    assert not [e for e in ami.events()[mark:]
                if is_event("UserEvent", number, UserEvent="HotlineOffer")(e)]
    assert call.finish(90).ok  # the caller talked to the end and hung up
    # the call over, the agent is back in routing as the failover found them
    _state(mqtt, agent, "ready", m1, timeout=30)
    _login(mqtt, agent, "seat02")  # a desktop reconnecting after the restart re-attaches
    assert mqtt.command("agents", agent, {"action": "logout"})["ok"]
