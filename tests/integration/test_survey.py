"""The post-call satisfaction survey (issue 14 §3) on real Asterisk, with SIPp callers and SIPp
agent phones: where the call's skill has a survey and the agent hangs up first, the caller
stays on, hears "please rate 1-5" and keys a score, which lands on the call record with the
agent and skill it rates; the agent's wrap-up starts when they hang up, not when the caller is
done. A caller who hangs up first gets no survey; a wrong key is asked again; a skill without a
survey ends the call as ever; the desktop's hang-up after a hold and resume is the agent
hanging up too (the resumed bridge sends the caller on to the survey).

The suite runs without a survey (tests/support/settings.py: it changes how every call ends);
this module turns it on for `general` alone through the dialplan's global SURVEY_SKILLS (what
[acd] survey_skills renders), an AMI Setvar, and empties it again at the end. Keys come from
the caller: SIP INFO from the SIPp caller's own scenario, or AMI PlayDTMF with Receive on the
caller's channel (as if the phone had sent it) where the test must key at a given moment.
Waits are on AMI events, MQTT messages and HTTP answers with deadlines, never on sleeps."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cti.db.models import Agent, Call
from hotline import stack
from prompts.index import PromptIndex
from tests.integration.callers import (
    DEMO_PASSWORD,
    CallInProgress,
    call_story,
    is_event,
    seat_answered,
    ts,
    web_login,
)
from tests.integration.conftest import Backend, CtiProcess
from tests.support.agent_phones import AgentPhones, HangingUpPhones, register_seats
from tests.support.ami import AmiRecorder, AmiTimeout, Event, send_action
from tests.support.mqtt import MqttWatcher
from tests.support.ports import port
from tests.support.sipp import Caller, Keys, Pause

pytestmark = pytest.mark.integration

HANGUP_PORT, HANGUP_REGISTER = port(15012), port(15014)
STAY_PORT, STAY_REGISTER = port(15018), port(15022)
HANGS_UP, STAYS = "seat13", "seat14"  # the agent there hangs up first / waits for the caller
CONSULTED = "seat15"  # another phone that waits, for the consulted agent
TALK_MS = 2500  # how long the agent at HANGS_UP talks before hanging up
SURVEYED = "/general/"  # the dialplan's SURVEY_SKILLS for this module: general's callers only
serial = itertools.count(1)


@pytest.fixture(scope="module")
def surveyed(cti: CtiProcess, ami: AmiRecorder) -> Iterator[None]:
    """The survey on for skill general, for this module only."""
    before = send_action(ami, {"Action": "Getvar", "Variable": "SURVEY_SKILLS"})
    assert (before.get("Value") or "") == "", "the suite's dialplan has no survey"
    assert send_action(ami, {"Action": "Setvar", "Variable": "SURVEY_SKILLS",
                             "Value": SURVEYED}).success
    try:
        yield
    finally:
        send_action(ami, {"Action": "Setvar", "Variable": "SURVEY_SKILLS", "Value": ""})


@pytest.fixture(scope="module")
def phones(cti: CtiProcess, mqtt: MqttWatcher, surveyed: None,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mqtt.cti_online()  # agents log in over MQTT: the CTI must be listening for commands
    wd = tmp_path_factory.mktemp("survey-phones")
    secrets = json.loads((cti.settings.state_dir / "secrets.json").read_text())
    target = f"{cti.settings.pbx.bind_ip}:{cti.settings.pbx.sip_port}"
    hanging_up = HangingUpPhones(HANGUP_PORT, wd, ring_ms=800, talk_ms=TALK_MS)
    staying = AgentPhones(STAY_PORT, wd, answer=True, ring_ms=800)
    try:
        register_seats({HANGS_UP: secrets[HANGS_UP]}, target, HANGUP_PORT, wd, HANGUP_REGISTER)
        register_seats({s: secrets[s] for s in (STAYS, CONSULTED)}, target, STAY_PORT, wd,
                       STAY_REGISTER)
        yield
    finally:
        hanging_up.stop()
        staying.stop()


@pytest.fixture(scope="module")
def agents(backend: Backend) -> list[str]:
    """Two general agents no earlier module logs in last (they take the first ones)."""
    with backend.sessions() as s:
        rows = s.execute(select(Agent.agent_id, Agent.skills).where(Agent.role == "agent")
                         .order_by(Agent.agent_id)).all()
    return [a for a, skills in rows if "general" in skills][-3:-1]


def _ready(mqtt: MqttWatcher, agent: str, seat: str) -> None:
    m0 = mqtt.mark()
    assert mqtt.command("agents", agent, {"action": "login", "seat": seat})["ok"]
    assert mqtt.command("agents", agent, {"action": "ready"})["ok"]
    _state(mqtt, agent, "ready", m0)


def _logout(mqtt: MqttWatcher, agent: str) -> None:
    assert mqtt.command("agents", agent, {"action": "logout"})["ok"]


def _state(mqtt: MqttWatcher, agent: str, state: str, since: int, timeout: float = 30) -> Any:
    return mqtt.wait_for(lambda m: m.topic == f"hotline/agents/{agent}/state"
                         and m.payload.get("state") == state, timeout, f"{agent} {state}",
                         since=since)


def _to_general(number: str, *after: Pause | Keys, hangup_after_ms: int | None = None
                ) -> Caller:
    """Mandarin, then 0 for an agent (skill general); then `after`, and wait for the PBX to
    hang up (or hang up after hangup_after_ms)."""
    return Caller(number, [Pause(1500), Keys("1"), Pause(1500), Keys("0"), *after],
                  hangup_after_ms=hangup_after_ms)


def _user_event(kind: str, number: str, since: int, ami: AmiRecorder, cti: CtiProcess,
                timeout: float = 60, **headers: str) -> Event:
    try:
        return ami.wait_for(is_event("UserEvent", number, UserEvent=kind, **headers), timeout,
                            kind, since=since)
    except AmiTimeout as exc:
        raise AssertionError(f"{exc}\n{call_story(ami, number, since, cti.settings)}") from None


def _record(backend: Backend, call_id: str, ready: Any = None, timeout: float = 15) -> Call:
    """The call's record, once `ready(record)` holds (deadline)."""
    found: list[Call] = []

    def get() -> bool:
        with backend.sessions() as s:
            row = s.execute(select(Call).where(Call.call_id == call_id)).scalar_one_or_none()
            if row is not None:
                s.expunge(row)
        found[:] = [row] if row is not None else []
        return row is not None and (ready is None or bool(ready(row)))

    stack.wait_until(get, timeout, f"the record of {call_id}")
    return found[0]


def _no_survey_for(ami: AmiRecorder, number: str, since: int) -> None:
    assert not [e for e in ami.events()[since:]
                if is_event("UserEvent", number, UserEvent="HotlineSurveyOffered")(e)
                or is_event("UserEvent", number, UserEvent="HotlineSurvey")(e)]


def test_the_agent_hangs_up_first_and_the_callers_key_is_the_calls_score(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, phones: None,
        agents: list[str], tmp_path: Path) -> None:
    agent = agents[0]
    _ready(mqtt, agent, HANGS_UP)
    number = f"{backend.prefix}79{next(serial):05d}"
    mark, m0 = ami.mark(), mqtt.mark()
    # the caller keys 4 over SIP INFO some 16 s in: the agent answered at about 4 s and hung
    # up 2.5 s later, and the survey's question (13.6 s) is still playing, or asked again
    call = CallInProgress(_to_general(number, Pause(13_000), Keys("4")), cti.settings,
                          tmp_path)
    answered = ami.wait_for(seat_answered(number, HANGS_UP), 60, "the agent answered",
                            since=mark)
    call_id = answered["Linkedid"]
    offered = _user_event("HotlineSurveyOffered", number, mark, ami, cti)
    assert (offered["Seat"], offered["Skill"], offered["Linkedid"]) == (HANGS_UP, "general",
                                                                        call_id)
    # the agent's leg hung up first: the caller's channel lives on
    agent_gone = ami.wait_for(lambda e: e.get("Event") == "Hangup"
                              and e.get("Channel") == answered["DestChannel"], 10,
                              "the agent's leg hung up", since=mark)
    assert ts(agent_gone) <= ts(offered) + 1
    result = _user_event("HotlineSurvey", number, mark, ami, cti, timeout=40)
    assert (result["Key"], result["Seat"], result["Skill"]) == ("4", HANGS_UP, "general")
    # the agent was in wrap-up while the caller was still being asked
    wrap = _state(mqtt, agent, "wrap_up", m0)
    assert wrap.at < ts(result), (wrap.at, ts(result))
    # the PBX thanks the caller and hangs up
    gone = ami.wait_for(lambda e: e.get("Event") == "Hangup"
                        and e.get("Channel") == answered["Channel"], 20, "the caller hung up",
                        since=mark)
    assert ts(gone) > ts(result)
    assert call.finish(60).ok
    rec = _record(backend, call_id, lambda r: r.satisfaction is not None)
    assert (rec.satisfaction, rec.survey_agent_id, rec.survey_skill) == (4, agent, "general")
    assert (rec.agent_id, rec.seat) == (agent, HANGS_UP)
    assert rec.survey_at is not None and rec.ended_at is not None
    # the call's end is the agent's hang-up, not the end of the survey
    assert rec.ended_at.timestamp() < ts(result) and rec.survey_at.timestamp() < ts(result)
    # supervisors hear of it after the commit: offered, then answered with the score
    events = [m.payload for m in mqtt.messages()[m0:]
              if m.topic == f"hotline/calls/{call_id}/events"
              and m.payload.get("event") == "survey"]
    assert [(e["detail"]["stage"], e["detail"]["score"], e["agent_id"], e["skill"])
            for e in events] == [("offered", None, agent, "general"),
                                 ("answered", 4, agent, "general")]
    _logout(mqtt, agent)


def test_a_score_keyed_while_the_cti_is_down_reaches_the_record_when_it_is_back(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, phones: None,
        agents: list[str], tmp_path: Path) -> None:
    """The CTI dies as the survey begins; the caller keys 4 and is thanked by the dialplan
    alone, which keeps the key in AstDB; the restarted CTI reads it there and the score is on
    the record, rated for the agent the record names."""
    agent = agents[0]
    _ready(mqtt, agent, HANGS_UP)
    number = f"{backend.prefix}79{next(serial):05d}"
    mark = ami.mark()
    call = CallInProgress(_to_general(number, Pause(13_000), Keys("4")), cti.settings,
                          tmp_path)
    answered = ami.wait_for(seat_answered(number, HANGS_UP), 60, "the agent answered",
                            since=mark)
    call_id = answered["Linkedid"]
    _user_event("HotlineSurveyOffered", number, mark, ami, cti)
    cti.kill9()
    try:
        result = _user_event("HotlineSurvey", number, mark, ami, cti, timeout=40)
        assert result["Key"] == "4"
        assert call.finish(60).ok  # thanked and hung up with no CTI at all
    finally:
        cti.start()
    mqtt.cti_online()
    rec = _record(backend, call_id, lambda r: r.satisfaction is not None, timeout=30)
    assert (rec.satisfaction, rec.survey_agent_id, rec.survey_skill) == (4, agent, "general")
    assert rec.survey_at is not None and rec.survey_at.timestamp() < ts(result)
    _logout(mqtt, agent)


def test_a_caller_who_hangs_up_first_is_not_asked(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, phones: None,
        agents: list[str], tmp_path: Path) -> None:
    agent = agents[1]
    _ready(mqtt, agent, STAYS)
    number = f"{backend.prefix}79{next(serial):05d}"
    mark = ami.mark()
    call = CallInProgress(_to_general(number, hangup_after_ms=9_000), cti.settings, tmp_path)
    answered = ami.wait_for(seat_answered(number, STAYS), 60, "the agent answered", since=mark)
    ami.wait_for(lambda e: e.get("Event") == "Hangup"
                 and e.get("Channel") == answered["DestChannel"], 30, "the agent's leg ends",
                 since=mark)
    assert call.finish(60).ok
    rec = _record(backend, answered["Linkedid"], lambda r: r.ended_at is not None)
    assert (rec.agent_id, rec.survey_at, rec.satisfaction) == (agent, None, None)
    _no_survey_for(ami, number, mark)
    _logout(mqtt, agent)


def test_a_wrong_key_is_asked_again_in_the_calls_language(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, phones: None,
        agents: list[str], prompt_index: PromptIndex, tmp_path: Path) -> None:
    agent = agents[0]
    _ready(mqtt, agent, HANGS_UP)
    number = f"{backend.prefix}79{next(serial):05d}"
    mark = ami.mark()
    call = CallInProgress(_to_general(number), cti.settings, tmp_path)
    answered = ami.wait_for(seat_answered(number, HANGS_UP), 60, "the agent answered",
                            since=mark)
    caller = answered["Channel"]
    # the call is in English from here (as the IVR sets it for a caller who chose English):
    # the survey asks in English
    assert send_action(ami, {"Action": "Setvar", "Channel": caller,
                             "Variable": "CHANNEL(language)", "Value": "en"}).success
    _user_event("HotlineSurveyOffered", number, mark, ami, cti)
    m1 = ami.mark()

    def key(digit: str) -> None:
        reply = send_action(ami, {"Action": "PlayDTMF", "Channel": caller, "Digit": digit,
                                  "Duration": "200", "Receive": "yes"})
        assert reply.success, reply

    def asked(prompt_id: str) -> bool:
        path = prompt_index.asterisk_path(prompt_id, "en")
        shown = send_action(ami, {"Action": "CoreShowChannels"}, as_list=True)
        return any(e.get("Channel") == caller and e.get("Application") == "Read"
                   and path in str(e.get("ApplicationData", "")) for e in shown)

    stack.wait_until(lambda: asked("sys.survey"), 10, "the question, in English", interval=0.2)
    # 9 is no score: the short question again (the Read of the retry prompt), then 2
    key("9")
    stack.wait_until(lambda: asked("sys.survey_retry"), 30, "the caller asked again",
                     interval=0.2)
    assert not [e for e in ami.events()[m1:]
                if is_event("UserEvent", number, UserEvent="HotlineSurvey")(e)]
    key("2")
    result = _user_event("HotlineSurvey", number, m1, ami, cti, timeout=30)
    assert result["Key"] == "2"
    assert call.finish(60).ok
    rec = _record(backend, answered["Linkedid"], lambda r: r.satisfaction is not None)
    assert (rec.satisfaction, rec.survey_agent_id) == (2, agent)
    _logout(mqtt, agent)


def test_a_skill_without_a_survey_ends_with_the_agent(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, phones: None,
        agents: list[str], tmp_path: Path) -> None:
    agent = agents[0]
    _ready(mqtt, agent, HANGS_UP)
    assert send_action(ami, {"Action": "Setvar", "Variable": "SURVEY_SKILLS",
                             "Value": "/repair/"}).success
    try:
        number = f"{backend.prefix}79{next(serial):05d}"
        mark = ami.mark()
        call = CallInProgress(_to_general(number), cti.settings, tmp_path)
        answered = ami.wait_for(seat_answered(number, HANGS_UP), 60, "the agent answered",
                                since=mark)
        # the agent hangs up (TALK_MS): the caller is hung up with them
        ami.wait_for(lambda e: e.get("Event") == "Hangup"
                     and e.get("Channel") == answered["Channel"], 30, "the caller hung up",
                     since=mark)
        assert call.finish(60).ok
    finally:
        assert send_action(ami, {"Action": "Setvar", "Variable": "SURVEY_SKILLS",
                                 "Value": SURVEYED}).success
    _no_survey_for(ami, number, mark)
    rec = _record(backend, answered["Linkedid"], lambda r: r.ended_at is not None)
    assert (rec.survey_at, rec.satisfaction) == (None, None)
    _logout(mqtt, agent)


def test_the_desktops_hang_up_after_a_hold_sends_the_caller_to_the_survey(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, web: str,
        phones: None, agents: list[str], tmp_path: Path) -> None:
    """Hold and resume twice (the second hold meets the agent's leg in the resumed bridge),
    then the agent hangs up from the web: the caller rates the call, 5; the supervisors'
    report shows it for the agent and the skill."""
    agent = agents[1]
    a = web_login(web, agent, STAYS)
    sup = httpx.Client(base_url=web, timeout=15)
    try:
        assert sup.post("/api/auth/login", json={"user_id": "S04",
                                                 "password": DEMO_PASSWORD}).status_code == 200
        before = sup.get("/api/reports/surveys").json()
        assert a.post(f"/api/agents/{agent}/state", json={"state": "ready"}).status_code == 200
        number = f"{backend.prefix}79{next(serial):05d}"
        mark = ami.mark()
        call = CallInProgress(_to_general(number), cti.settings, tmp_path)
        answered = ami.wait_for(seat_answered(number, STAYS), 60, "the agent answered",
                                since=mark)
        caller, cid = answered["Channel"], answered["Linkedid"]
        for _ in range(2):
            m = ami.mark()
            r = a.post(f"/api/calls/{cid}/hold", json={"on": True})
            assert r.status_code == 200 and r.json()["held"] is True, r.text
            ami.wait_for(lambda e: e.get("Event") == "MusicOnHoldStart"
                         and e.get("Channel") == caller, 10, "music to the caller", since=m)
            r = a.post(f"/api/calls/{cid}/hold", json={"on": False})
            assert r.status_code == 200 and r.json()["held"] is False, r.text
            ami.wait_for(lambda e: e.get("Event") == "BridgeEnter"
                         and e.get("Channel") == caller, 10, "caller bridged again", since=m)
        m, m0 = ami.mark(), mqtt.mark()
        assert a.post(f"/api/calls/{cid}/hangup").status_code == 200
        offered = _user_event("HotlineSurveyOffered", number, m, ami, cti, timeout=15)
        assert (offered["Seat"], offered["Channel"]) == (STAYS, caller)
        _state(mqtt, agent, "wrap_up", m0)
        reply = send_action(ami, {"Action": "PlayDTMF", "Channel": caller, "Digit": "5",
                                  "Duration": "200", "Receive": "yes"})
        assert reply.success, reply
        assert _user_event("HotlineSurvey", number, m, ami, cti, timeout=30)["Key"] == "5"
        assert call.finish(60).ok
        rec = _record(backend, cid, lambda r: r.satisfaction is not None)
        assert (rec.satisfaction, rec.survey_agent_id, rec.survey_skill) == (5, agent,
                                                                             "general")
        # the report: this agent's one survey, and one more for general
        after = sup.get("/api/reports/surveys").json()
        mine = [r for r in after["by_agent"] if r["agent_id"] == agent]
        assert [(r["offered"], r["answered"], r["average"], r["scores"]["5"])
                for r in mine] == [(1, 1, 5.0, 1)]

        def general(doc: dict[str, Any]) -> tuple[int, int]:
            row = [r for r in doc["by_skill"] if r["skill"] == "general"]
            return (row[0]["offered"], row[0]["answered"]) if row else (0, 0)
        assert general(after) == (general(before)[0] + 1, general(before)[1] + 1)
        assert a.post(f"/api/agents/{agent}/logout").status_code == 200
    finally:
        a.close()
        sup.close()


def test_a_transfer_after_a_hold_is_no_survey_and_the_survey_rates_the_last_agent(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, web: str,
        phones: None, agents: list[str], tmp_path: Path) -> None:
    """The first agent holds and resumes the call (their leg bridges the caller again, set to
    send the caller to the survey when they hang up), then transfers it to the second agent by
    name: the Redirect takes the caller to the second seat, not to the survey. The second agent
    hangs up first: the survey rates them."""
    first, second = agents[1], agents[0]
    a = web_login(web, first, STAYS)
    try:
        assert a.post(f"/api/agents/{first}/state", json={"state": "ready"}).status_code == 200
        m0 = mqtt.mark()
        assert mqtt.command("agents", second, {"action": "login", "seat": HANGS_UP})["ok"]
        number = f"{backend.prefix}79{next(serial):05d}"
        mark = ami.mark()
        call = CallInProgress(_to_general(number), cti.settings, tmp_path)
        answered = ami.wait_for(seat_answered(number, STAYS), 60, "the first agent answered",
                                since=mark)
        caller, cid = answered["Channel"], answered["Linkedid"]
        m = ami.mark()
        assert a.post(f"/api/calls/{cid}/hold", json={"on": True}).json()["held"] is True
        ami.wait_for(lambda e: e.get("Event") == "MusicOnHoldStart"
                     and e.get("Channel") == caller, 10, "music to the caller", since=m)
        assert a.post(f"/api/calls/{cid}/hold", json={"on": False}).json()["held"] is False
        ami.wait_for(lambda e: e.get("Event") == "BridgeEnter" and e.get("Channel") == caller,
                     10, "caller bridged again", since=m)
        assert mqtt.command("agents", second, {"action": "ready"})["ok"]
        _state(mqtt, second, "ready", m0)
        m = ami.mark()
        r = a.post(f"/api/calls/{cid}/transfer", json={"agent_id": second})
        assert r.status_code == 200, r.text
        ami.wait_for(seat_answered(number, HANGS_UP), 30, "the second agent answered", since=m)
        offered = _user_event("HotlineSurveyOffered", number, m, ami, cti, timeout=30)
        assert offered["Seat"] == HANGS_UP
        assert [e["Seat"] for e in ami.events()[mark:] if is_event(
            "UserEvent", number, UserEvent="HotlineSurveyOffered")(e)] == [HANGS_UP]
        reply = send_action(ami, {"Action": "PlayDTMF", "Channel": caller, "Digit": "3",
                                  "Duration": "200", "Receive": "yes"})
        assert reply.success, reply
        assert _user_event("HotlineSurvey", number, m, ami, cti, timeout=30)["Key"] == "3"
        assert call.finish(60).ok
        rec = _record(backend, cid, lambda r: r.satisfaction is not None)
        assert (rec.agent_id, rec.survey_agent_id, rec.satisfaction) == (first, second, 3)
        assert a.post(f"/api/agents/{first}/logout").status_code == 200
        _logout(mqtt, second)
    finally:
        a.close()


def test_after_a_completed_consult_the_survey_rates_the_consulted_agent(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, web: str, phones: None,
        agents: list[str], tmp_path: Path) -> None:
    """The first agent consults the second and completes the transfer: the second agent's leg
    is bridged with the caller by hotline-hold,resume, which names its own seat for the
    caller's survey. The second agent hangs up from the web: the survey rates them."""
    first, second = agents[1], agents[0]
    a, b = web_login(web, first, STAYS), web_login(web, second, CONSULTED)
    try:
        assert a.post(f"/api/agents/{first}/state", json={"state": "ready"}).status_code == 200
        number = f"{backend.prefix}79{next(serial):05d}"
        mark = ami.mark()
        call = CallInProgress(_to_general(number), cti.settings, tmp_path)
        answered = ami.wait_for(seat_answered(number, STAYS), 60, "the first agent answered",
                                since=mark)
        caller, cid = answered["Channel"], answered["Linkedid"]
        assert b.post(f"/api/agents/{second}/state", json={"state": "ready"}).status_code == 200
        m = ami.mark()
        r = a.post(f"/api/calls/{cid}/consult", json={"agent_id": second})
        assert r.status_code == 200, r.text
        ami.wait_for(lambda e: e.get("Event") == "DialEnd"
                     and e.get("Channel") == answered["DestChannel"]
                     and e.get("DialStatus") == "ANSWER"
                     and str(e.get("DestChannel", "")).startswith(f"PJSIP/{CONSULTED}-"), 30,
                     "the consulted seat answered", since=m)
        m = ami.mark()
        assert a.post(f"/api/calls/{cid}/consult/complete").status_code == 200
        ami.wait_for(lambda e: e.get("Event") == "BridgeEnter" and e.get("Channel") == caller,
                     15, "the caller bridged with the consulted agent", since=m)
        stack.wait_until(lambda: b.get(f"/api/calls/{cid}").json().get("agent_id") == second,
                         10, "the call is the second agent's")
        m = ami.mark()
        assert b.post(f"/api/calls/{cid}/hangup").status_code == 200
        offered = _user_event("HotlineSurveyOffered", number, m, ami, cti, timeout=15)
        assert offered["Seat"] == CONSULTED
        reply = send_action(ami, {"Action": "PlayDTMF", "Channel": caller, "Digit": "4",
                                  "Duration": "200", "Receive": "yes"})
        assert reply.success, reply
        assert _user_event("HotlineSurvey", number, m, ami, cti, timeout=30)["Key"] == "4"
        assert call.finish(60).ok
        rec = _record(backend, cid, lambda r: r.satisfaction is not None)
        assert (rec.survey_agent_id, rec.survey_skill, rec.satisfaction) == (second, "general",
                                                                             4)
        for c, agent in ((a, first), (b, second)):
            stack.wait_until(lambda c=c, agent=agent: c.post(
                f"/api/agents/{agent}/logout").status_code == 200, 30, f"{agent} logged out")
    finally:
        a.close()
        b.close()
