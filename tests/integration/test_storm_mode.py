"""Storm mode under load over real Asterisk (issue 12, section 4): a supervisor switches it on
and off (OutageService.set_storm, as the console does) while an agent is busy and callers
wait. The waiting callers are told their wait once and offered a callback (EWT deflection); one
takes it. New callers beyond the storm's queue cap hear the all-busy message naming the
expected wait and the PBX hangs up; the callers already waiting keep their places; once it is
off the normal cap applies again; every call ends answered, called back or told the queue is
full, none lost.

The suite's settings (conftest) give the storm a queue cap of 2 and a deflection threshold of
1 s and switch nothing automatically. Waits are on AMI and MQTT events and the CTI's log, with
deadlines.
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
from cti.db.models import Agent, Call
from hotline import stack
from prompts.index import PromptIndex
from tests.integration.callers import CallInProgress, call_story, hang_up, is_event, ts
from tests.integration.conftest import CUSTOMER_PORT, Backend, CtiProcess
from tests.support.agent_phones import AgentPhones, register_seats
from tests.support.ami import AmiRecorder, AmiTimeout, Event
from tests.support.ctilog import CtiLog
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


CALLBACK_AFTER_MS = 20_000  # after asking for an agent, the asker waits this long, then presses 1


def _general_agents(backend: Backend) -> list[str]:
    with backend.sessions() as s:
        rows = s.execute(select(Agent.agent_id, Agent.skills).where(Agent.role == "agent")
                         .order_by(Agent.agent_id)).all()
    return [a for a, skills in rows if "general" in skills]


def _queued_in_acd(backend: Backend, numbers: list[str]) -> bool:
    with backend.sessions() as s:
        queued = s.execute(select(Call.caller_number).where(
            Call.caller_number.in_(numbers), Call.queued_at.is_not(None))).scalars().all()
    return set(queued) == set(numbers)


def _state(mqtt: MqttWatcher, agent: str, state: str, since: int, timeout: float = 30) -> Msg:
    return mqtt.wait_for(lambda m: m.topic == f"hotline/agents/{agent}/state"
                         and m.payload.get("state") == state, timeout, f"{agent} {state}",
                         since=since)


def _login_ready(mqtt: MqttWatcher, agent: str, seat: str) -> None:
    r = mqtt.command("agents", agent, {"action": "login", "seat": seat})
    assert r["ok"], r
    assert mqtt.command("agents", agent, {"action": "ready"})["ok"]


def _to_agents(number: str, then: list[Pause | Keys] | None = None) -> Caller:
    """Mandarin, then 0 for an agent, then `then`; then wait until the PBX hangs up."""
    return Caller(number, [Pause(1500), Keys("1"), Pause(1500), Keys("0"), *(then or [])])


def test_storm_mode_on_and_off_under_load_loses_no_call(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend,
        storm_phones: None, prompt_index: PromptIndex, tmp_path: Path) -> None:
    outages = OutageService(backend.sessions)
    supervisor = Who("S05", "supervisor")
    log = CtiLog(cti.settings)
    first, *spare = _general_agents(backend)[-len(SEATS):]
    serial = count()
    placed: dict[str, CallInProgress] = {}

    def call(then: list[Pause | Keys] | None = None) -> str:
        number = f"{backend.prefix}76{next(serial):05d}"  # 76: this module's range
        placed[number] = CallInProgress(_to_agents(number, then), cti.settings, tmp_path)
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
    # the customers' side of the outbound trunk: where a callback reaches the caller
    customer_phone = AgentPhones(CUSTOMER_PORT, tmp_path / "customer", answer=True, ring_ms=500)
    try:
        # the agent is busy with a first caller ...
        talker = call()
        talking = wait(is_event("DialEnd", talker, DialStatus="ANSWER"), "talker answered")
        # ... and three callers wait: more than the storm's cap. The last of them will press
        # the callback key once told the wait (well after storm mode is on: see below)
        before = [call() for _ in range(STORM_CAP)]
        asker = call([Pause(CALLBACK_AFTER_MS), Keys("1")])
        before.append(asker)
        queued = {number: wait(is_event("UserEvent", number, UserEvent="HotlineQueued"),
                               f"{number} queued") for number in before}
        # ... in the ACD itself, not only in Asterisk's wait (the ACD takes a call after its
        # lookup; the call record's queued_at is written once it has): a caller still on its
        # way when storm mode comes on would meet the storm's cap
        stack.wait_until(lambda: _queued_in_acd(backend, before), 15, "callers in the ACD")

        # storm mode on, as the console switches it: the ACD has the storm handling within
        # one period of the storm watch
        at = log.mark()
        assert outages.set_storm(True, supervisor, datetime.now(UTC))
        log.wait_for(f"handling is now HandlingChanged(queue_cap={STORM_CAP},", at, 15)
        # every waiting caller's wait is known (one agent, busy) and past the storm's
        # threshold: each is told it once, with the callback (a trunk is set) and self-service
        for ev in queued.values():
            log.wait_for(f"call {ev['Linkedid']}: expected wait", at, 10)
        storm_on = at
        deflected = log.read(storm_on)
        for ev in queued.values():
            lines = [line for line in deflected.splitlines()
                     if f"call {ev['Linkedid']}: expected wait" in line]
            assert len(lines) == 1 and "callback offered, self-service offered" in lines[0], lines
        assert "announcement not set" not in deflected
        # the asker takes the callback: told so, the PBX hangs up, the place is kept
        asked = wait(is_event("UserEvent", asker, UserEvent="HotlineCallback"),
                     "callback requested", timeout=CALLBACK_AFTER_MS / 1000 + 30)
        assert log.read(storm_on).count(f"call {queued[asker]['Linkedid']}: expected wait") == 1
        assert placed[asker].finish(30).ok
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
                    and e.get("CallerIDNum") in before and e.get("CallerIDNum") != asker]

        # storm mode off: the normal cap applies again, so callers past the storm's cap wait
        at = log.mark()
        assert outages.set_storm(False, supervisor, datetime.now(UTC))
        log.wait_for("handling is now HandlingChanged(queue_cap=60,", at, 15)
        after = [call() for _ in range(2)]
        for number in after:
            wait(is_event("UserEvent", number, UserEvent="HotlineQueued"), f"{number} queued")

        # more agents, and the talker's call ends: the callback, which kept its place, is
        # dialled, and every waiting caller is answered
        m1 = mqtt.mark()
        for agent, seat in zip(spare, SEATS[1:], strict=True):
            _login_ready(mqtt, agent, seat)
        hang_up(ami, talking)
        waiting = {n for n in before + after if n != asker}
        answered: set[str] = set()
        called_back = False
        while answered != waiting or not called_back:
            def answer(e: Event, left: set[str] = waiting - answered,
                       callback_left: bool = not called_back) -> bool:
                return e.get("Event") == "DialEnd" and e.get("DialStatus") == "ANSWER" and (
                    e.get("CallerIDNum") in left or (callback_left and e.get(
                        "DestChannel", "").startswith("PJSIP/carrier-out-")))
            ev = wait(answer, f"answer {len(answered) + called_back + 1} of {len(waiting) + 1}",
                      timeout=90)
            if ev.get("DestChannel", "").startswith("PJSIP/carrier-out-"):
                called_back = True  # the agent's seat dialled the customer, who answered
                def dial_begin(e: Event, dest: str = ev["DestChannel"]) -> bool:
                    return e.get("Event") == "DialBegin" and e.get("DestChannel") == dest
                begin = wait(dial_begin, "DialBegin to the customer", 1)
                assert begin["DialString"] == f"{asker}@carrier-out"
                assert ts(ev) > ts(asked)
                call_id = queued[asker]["Linkedid"]  # the callback is the same call
            else:
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
        customer_phone.stop()

    # each waiting caller was told the wait once, however many ticks it waited through
    said = log.read(storm_on)
    assert all(said.count(f"call {ev['Linkedid']}: expected wait") == 1 for ev in queued.values())
    # no call lost: each ended in exactly one way, and SIPp saw every one end cleanly
    for number, progress in placed.items():
        assert progress.finish(60).ok, (number, call_story(ami, number, mark))
        events = ami.events()[mark:]
        was_answered = any(is_event("DialEnd", number, DialStatus="ANSWER")(e) for e in events)
        was_told_full = any(is_event("UserEvent", number, UserEvent="HotlineBusy")(e)
                            for e in events)
        took_callback = any(is_event("UserEvent", number, UserEvent="HotlineCallback")(e)
                            for e in events)
        assert was_answered + was_told_full + took_callback == 1, (
            number, call_story(ami, number, mark))
        assert was_told_full is (number in told_full)
        assert took_callback is (number == asker)
    # and the call records are all closed, the answered ones with their answer

    def records() -> list[tuple[str, str, str | None, object]]:
        with backend.sessions() as s:
            return [(r.caller_number, r.call_id, r.outcome, r.ended_at) for r in s.execute(
                select(Call).where(Call.caller_number.in_(placed))).scalars()]

    def closed() -> bool:
        rows = records()
        return len(rows) == len(placed) and all(ended is not None for *_, ended in rows)

    try:
        stack.wait_until(closed, 30, "every call record closed")
    except stack.StackError as exc:  # which record, and whose: the message is all CI keeps
        raise AssertionError(f"{exc}: {len(placed)} callers, records {records()}") from None
    with backend.sessions() as s:
        rows = {r.caller_number: r for r in s.execute(
            select(Call).where(Call.caller_number.in_(placed))).scalars()}
    # the callback counts as answered when its agent took it
    assert {n for n, r in rows.items() if r.answered_at is not None} == {talker, asker,
                                                                          *waiting}
    for agent in (first, *spare):
        assert mqtt.command("agents", agent, {"action": "logout"})["ok"]
