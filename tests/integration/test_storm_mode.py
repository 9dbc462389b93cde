"""Storm mode under load over real Asterisk (issue 12, section 4): a supervisor switches it on
and off (OutageService.set_storm, as the console does) while an agent is busy and callers
wait. New callers beyond the storm's queue cap hear the all-busy message naming the expected
wait and the PBX hangs up; the callers already waiting keep their places; once it is off the
normal cap applies again; every call ends answered or told the queue is full, none lost.

The suite's settings (conftest) give the storm a queue cap of 2 and switch nothing
automatically. Waits are on AMI and MQTT events and the CTI's log, with deadlines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import count
from pathlib import Path

import pytest
from sqlalchemy import select

from callcenter.outage_service import OutageService, Who
from config.settings import Settings
from cti.db.models import Agent, Call
from hotline import stack
from prompts.index import PromptIndex
from tests.integration.callers import CallInProgress, call_story, hang_up, is_event
from tests.integration.conftest import Backend, CtiProcess
from tests.support.agent_phones import AgentPhones, register_seats
from tests.support.ami import AmiRecorder, AmiTimeout, Event
from tests.support.mqtt import MqttWatcher, Msg
from tests.support.ports import port
from tests.support.sipp import Caller, Keys, Pause

pytestmark = pytest.mark.integration
ANSWER_PORT, REGISTER_PORT = port(15046), port(15048)
SEATS = ("seat21", "seat22", "seat23")
STORM_CAP = 2  # conftest: [storm.storm] queue_cap


@pytest.fixture(scope="module")
def storm_phones(cti: CtiProcess, mqtt: MqttWatcher, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[None]:
    """One SIPp phone answering (after 0.5 s of ringing) for the seats these tests use."""
    mqtt.cti_online()  # agents log in over MQTT: the CTI must be listening for commands
    wd = tmp_path_factory.mktemp("storm-phones")
    secrets = json.loads((cti.settings.state_dir / "secrets.json").read_text())
    phone = AgentPhones(ANSWER_PORT, wd, answer=True, ring_ms=500)
    try:
        register_seats({s: secrets[s] for s in SEATS},
                       f"{cti.settings.pbx.bind_ip}:{cti.settings.pbx.sip_port}", ANSWER_PORT,
                       wd, REGISTER_PORT)
        yield
    finally:
        phone.stop()


class CtiLog:
    """The CTI's log file, read from a mark on: the storm watch says there what it fed the ACD."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.state_dir / "log" / "cti.log"

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def wait_for(self, text: str, since: int, timeout: float) -> None:
        def seen() -> bool:
            with self.path.open("rb") as f:
                f.seek(since)
                return text in f.read().decode(errors="replace")
        stack.wait_until(seen, timeout, f"{text!r} in {self.path}")


def _general_agents(backend: Backend) -> list[str]:
    with backend.sessions() as s:
        rows = s.execute(select(Agent.agent_id, Agent.skills).where(Agent.role == "agent")
                         .order_by(Agent.agent_id)).all()
    return [a for a, skills in rows if "general" in skills]


def _state(mqtt: MqttWatcher, agent: str, state: str, since: int, timeout: float = 30) -> Msg:
    return mqtt.wait_for(lambda m: m.topic == f"hotline/agents/{agent}/state"
                         and m.payload.get("state") == state, timeout, f"{agent} {state}",
                         since=since)


def _login_ready(mqtt: MqttWatcher, agent: str, seat: str) -> None:
    r = mqtt.command("agents", agent, {"action": "login", "seat": seat})
    assert r["ok"], r
    assert mqtt.command("agents", agent, {"action": "ready"})["ok"]


def _to_agents(number: str) -> Caller:
    """Mandarin, then 0 for an agent; then wait until the PBX hangs up."""
    return Caller(number, [Pause(1500), Keys("1"), Pause(1500), Keys("0")])


def test_storm_mode_on_and_off_under_load_loses_no_call(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend,
        storm_phones: None, prompt_index: PromptIndex, tmp_path: Path) -> None:
    outages = OutageService(backend.sessions)
    supervisor = Who("S05", "supervisor")
    log = CtiLog(cti.settings)
    first, *spare = _general_agents(backend)[-len(SEATS):]
    serial = count()
    placed: dict[str, CallInProgress] = {}

    def call() -> str:
        number = f"{backend.prefix}75{next(serial):05d}"
        placed[number] = CallInProgress(_to_agents(number), cti.settings, tmp_path)
        return number

    def wait(pred: Callable[[Event], bool], what: str, timeout: float = 60) -> Event:
        try:
            return ami.wait_for(pred, timeout, what, since=mark)
        except AmiTimeout as exc:
            stories = "\n".join(call_story(ami, n, mark) for n in placed)
            raise AssertionError(f"{exc}\n{stories}") from None

    m0 = mqtt.mark()
    _login_ready(mqtt, first, SEATS[0])
    _state(mqtt, first, "ready", m0)
    mark = ami.mark()
    try:
        # the agent is busy with a first caller ...
        talker = call()
        talking = wait(is_event("DialEnd", talker, DialStatus="ANSWER"), "talker answered")
        # ... and three callers wait: more than the storm's cap
        before = [call() for _ in range(STORM_CAP + 1)]
        for number in before:
            wait(is_event("UserEvent", number, UserEvent="HotlineQueued"), f"{number} queued")

        # storm mode on, as the console switches it: the ACD has the storm handling within
        # one period of the storm watch
        at = log.mark()
        assert outages.set_storm(True, supervisor, datetime.now(UTC))
        log.wait_for(f"handling is now HandlingChanged(queue_cap={STORM_CAP},", at, 15)
        # new callers beyond the cap hear the all-busy message naming the wait, then the PBX
        # hangs up (cause 17, user busy): told the queue is full, not dead air
        told_full = [call() for _ in range(2)]
        for number in told_full:
            busy = wait(is_event("UserEvent", number, UserEvent="HotlineBusy"),
                        f"{number} told the queue is full")
            files = busy["Prompts"].split("&")
            assert files[0] == prompt_index.asterisk_path("acd.busy_wait_before", "zh")
            assert files[-1] == prompt_index.asterisk_path("acd.busy_wait_after", "zh")
            minutes = files[1:-1]  # the number pieces of the wait, in minutes
            assert minutes and all(f.startswith(files[0].rsplit("/", 1)[0]) for f in minutes)
            gone = wait(is_event("Hangup", number), f"{number} hung up by the PBX")
            assert gone["Cause"] == "17"
            assert placed[number].finish(60).ok
        # the callers waiting when it switched keep their places under the tighter cap
        assert not [e for e in ami.events()[mark:] if e.get("Event") == "Hangup"
                    and e.get("CallerIDNum") in before]

        # storm mode off: the normal cap applies again, so callers past the storm's cap wait
        at = log.mark()
        assert outages.set_storm(False, supervisor, datetime.now(UTC))
        log.wait_for("handling is now HandlingChanged(queue_cap=60,", at, 15)
        after = [call() for _ in range(2)]
        for number in after:
            wait(is_event("UserEvent", number, UserEvent="HotlineQueued"), f"{number} queued")

        # more agents, and the talker's call ends: every waiting caller is answered
        m1 = mqtt.mark()
        for agent, seat in zip(spare, SEATS[1:], strict=True):
            _login_ready(mqtt, agent, seat)
        hang_up(ami, talking)
        waiting = set(before + after)
        answered: set[str] = set()
        while answered != waiting:
            ev = wait(lambda e: e.get("Event") == "DialEnd" and e.get("DialStatus") == "ANSWER"
                      and e.get("CallerIDNum") in waiting - answered,
                      f"answer {len(answered) + 1} of {len(waiting)}", timeout=90)
            answered.add(ev["CallerIDNum"])
            call_id = ev["Linkedid"]
            # talk until the ACD has the agent on the call, then the caller hangs up
            def on_call(m: Msg, call_id: str = call_id) -> bool:
                return (m.topic.startswith("hotline/agents/")
                        and m.payload.get("state") == "on_call"
                        and m.payload.get("call_id") == call_id)
            mqtt.wait_for(on_call, 30, f"on_call for {ev['CallerIDNum']}", since=m1)
            hang_up(ami, ev)
    finally:
        outages.set_storm(False, supervisor, datetime.now(UTC))  # whatever happened above

    # no call lost: each ended in exactly one way, and SIPp saw every one end cleanly
    for number, progress in placed.items():
        assert progress.finish(60).ok, (number, call_story(ami, number, mark))
        events = ami.events()[mark:]
        was_answered = any(is_event("DialEnd", number, DialStatus="ANSWER")(e) for e in events)
        was_told_full = any(is_event("UserEvent", number, UserEvent="HotlineBusy")(e)
                            for e in events)
        assert was_answered != was_told_full, (number, call_story(ami, number, mark))
        assert was_told_full is (number in told_full)
    # and the call records are all closed, the answered ones with their answer

    def closed() -> bool:
        with backend.sessions() as s:
            rows = s.execute(select(Call).where(Call.caller_number.in_(placed))).scalars().all()
            return len(rows) == len(placed) and all(r.ended_at is not None for r in rows)

    stack.wait_until(closed, 30, "every call record closed")
    with backend.sessions() as s:
        rows = {r.caller_number: r for r in s.execute(
            select(Call).where(Call.caller_number.in_(placed))).scalars()}
    assert {n for n, r in rows.items() if r.answered_at is not None} == {talker, *waiting}
    for agent in (first, *spare):
        assert mqtt.command("agents", agent, {"action": "logout"})["ok"]
