"""After-hours callbacks placed (issue 15 §3) on real Asterisk: a callback the IVR booked (an
outbound job, purpose `callback`, for skill repair, which has no calendar: open 7×24, so
nothing here changes with the hour) is due now. The CTI's outbound engine does not dial it
while no agent of the skill is ready; once one is, it dials the customer (a SIPp phone on the
carrier trunk, CUSTOMER_PORT), who answers, hears that this is the callback they booked, is
queued to repair at the callback priority under their own number, and reaches the ready agent
(a SIPp seat phone). The job ends done, and the call has its record as any queued call: the
agent, the skill, the customer's number, dnis `callback`.
Waits are on AMI events, MQTT messages and database conditions with deadlines, never sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import wave
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.ivr_services import DbIvrServices
from callcenter.outbound_service import attempt_of
from cti.db import outbound as store
from cti.db.calls import CALLBACK_DNIS
from cti.db.models import Agent, Call
from hotline import stack
from outbound.callback import QUEUE_PRIORITY
from outbound.jobs import State
from prompts.index import PromptIndex
from tests.integration.callers import ts
from tests.integration.conftest import CUSTOMER_PORT, Backend, CtiProcess
from tests.support.agent_phones import AgentPhones, register_seats
from tests.support.ami import AmiRecorder, Event, send_action
from tests.support.mqtt import MqttWatcher
from tests.support.ports import port

pytestmark = pytest.mark.integration

SEAT_PORT, SEAT_REGISTER = port(15088), port(15091)
SEAT = "seat49"
serial = itertools.count(1)


@pytest.fixture(scope="module")
def seat(cti: CtiProcess, mqtt: MqttWatcher,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SEAT registered on a SIPp phone that answers after 800 ms."""
    mqtt.cti_online()  # agents log in over MQTT: the CTI must be listening for commands
    wd = tmp_path_factory.mktemp("callback-due-seat")
    secrets = json.loads((cti.settings.state_dir / "secrets.json").read_text())
    assert SEAT in secrets, f"{SEAT} is not one of the rendered seats"
    phone = AgentPhones(SEAT_PORT, wd, answer=True, ring_ms=800)
    try:
        register_seats({SEAT: secrets[SEAT]}, f"{cti.settings.pbx.bind_ip}:"
                       f"{cti.settings.pbx.sip_port}", SEAT_PORT, wd, SEAT_REGISTER)
        yield SEAT
    finally:
        phone.stop()


@pytest.fixture(scope="module")
def repair_agent(backend: Backend) -> str:
    """An agent with skill repair (the last one: earlier modules take the first ones)."""
    with backend.sessions() as s:
        rows = s.execute(select(Agent.agent_id, Agent.skills).where(Agent.role == "agent")
                         .order_by(Agent.agent_id)).all()
    found = [a for a, skills in rows if "repair" in skills]
    assert found, "the demo staff has no repair agent"
    return found[-1]


def _user_event(name: str, uniqueid: str) -> Any:
    return lambda e: (e.get("Event") == "UserEvent" and e.get("UserEvent") == name
                      and e.get("Uniqueid") == uniqueid)


def _state(mqtt: MqttWatcher, agent: str, state: str, since: int, **more: str) -> Any:
    return mqtt.wait_for(lambda m: m.topic == f"hotline/agents/{agent}/state"
                         and m.payload.get("state") == state
                         and all(m.payload.get(k) == v for k, v in more.items()),
                         30, f"{agent} {state}", since=since)


def test_a_due_callback_reaches_a_ready_agent_of_its_skill(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend, seat: str,
        repair_agent: str, prompt_index: PromptIndex, tmp_path: Path) -> None:
    number = f"{backend.prefix}98{next(serial):05d}"
    customer = AgentPhones(CUSTOMER_PORT, tmp_path / "customer", answer=True, ring_ms=500)
    agent = repair_agent
    try:
        # booked last night as the IVR books it, for when repair opens: now
        now = datetime.now(UTC)
        job = asyncio.run(DbIvrServices(backend.sessions).book_callback(
            call_id=f"it98-{backend.name}", caller=number, skill="repair", at=now, lang="zh",
            valid_for=timedelta(hours=4), now=now - timedelta(hours=10)))
        with backend.sessions() as s:
            booked = store.get(s, job)
        assert booked is not None and (booked.skill, booked.state) == ("repair", State.SCHEDULED)

        # no agent of the skill is ready: the engine's ticks go by and it stays undialled
        ticks = (cti.status().get("outbound") or {}).get("ticks", 0)
        stack.wait_until(lambda: (cti.status().get("outbound") or {}).get("ticks", 0)
                         >= ticks + 3, 20, "three outbound ticks")
        with backend.sessions() as s:
            assert store.attempts_of(s, job) == []
            assert store.get(s, job).state is State.SCHEDULED  # type: ignore[union-attr]

        # the agent gets ready: the customer is dialled on the carrier trunk
        mark, m0 = ami.mark(), mqtt.mark()
        assert mqtt.command("agents", agent, {"action": "login", "seat": seat})["ok"]
        assert mqtt.command("agents", agent, {"action": "ready"})["ok"]
        _state(mqtt, agent, "ready", m0)
        answered: Event = ami.wait_for(
            lambda e: e.get("Event") == "UserEvent"
            and e.get("UserEvent") == "HotlineOutboundAnswered"
            and e.get("Purpose") == "callback", 30, "the callback answered", since=mark)
        chan = str(answered["Uniqueid"])
        [attempt] = _attempts(backend, job)
        assert (attempt["id"], attempt["linkedid"]) == (attempt_of(chan), chan)
        assert int(answered["Attempt"]) == attempt["id"]
        dialled = ami.wait_for(lambda e: e.get("Event") == "Newchannel"
                               and e.get("Uniqueid") == chan, 5, "the dialled channel",
                               since=mark)
        assert str(dialled["Channel"]).startswith("PJSIP/carrier-out-")

        # the customer hears why we call, in their language, then waits for repair under
        # their own number, at the callback's priority
        queued = ami.wait_for(_user_event("HotlineQueued", chan), 30, "the customer queued",
                              since=mark)
        # (the dialplan's global is the prompt's file, played to its end before the queue)
        said = send_action(ami, {"Action": "Getvar", "Variable": "CALLBACK_DUE_ZH"})
        assert said.get("Value") == prompt_index.asterisk_path("sys.callback_due", "zh")
        for var, value in (("CHANNEL(language)", "zh"), ("PLAYBACKSTATUS", "SUCCESS")):
            got = send_action(ami, {"Action": "Getvar", "Channel": answered["Channel"],
                                    "Variable": var})
            assert got.get("Value") == value, (var, got)
        with wave.open(str(prompt_index.local_file("sys.callback_due", "zh"))) as w:
            seconds = w.getnframes() / w.getframerate()
        assert ts(queued) - ts(answered) >= seconds - 0.5, (ts(queued) - ts(answered), seconds)
        assert (queued["Skill"], queued["CallPriority"], queued["CallerIDNum"]) == (
            "repair", str(QUEUE_PRIORITY), number)
        # and reaches the ready agent of the skill, whose desktop pops the customer
        offer = ami.wait_for(_user_event("HotlineOffer", chan), 30, "the agent's seat rung",
                             since=mark)
        assert offer["Seat"] == seat
        _state(mqtt, agent, "on_call", m0, call_id=chan)
        pop = mqtt.wait_for(lambda m: m.topic == f"hotline/agents/{agent}/pop"
                            and m.payload.get("call_id") == chan, 10, "the pop", since=m0)
        assert pop.payload["caller_number"] == number

        # the customer hangs up: the job is done and the call recorded as a queued call
        assert send_action(ami, {"Action": "Hangup", "Channel": answered["Channel"]}).success
        _state(mqtt, agent, "wrap_up", m0, call_id=chan)

        def finished() -> tuple[Any, ...]:
            with backend.sessions() as s:
                j = store.get(s, job)
                c = s.scalar(select(Call).where(Call.call_id == chan))
            return ((j.state, j.attempts, j.last_outcome) if j else None,
                    (c.dnis, c.caller_number, c.skill, c.agent_id, c.seat, c.outcome,
                     c.answered_at is not None, c.ended_at is not None) if c else None)

        want = ((State.DONE, 1, "answered"),
                (CALLBACK_DNIS, number, "repair", agent, seat, "transfer", True, True))
        stack.wait_until(lambda: finished() == want, 20, "the job done and the call recorded")
        assert mqtt.command("agents", agent, {"action": "logout"})["ok"]
    finally:
        customer.stop()


def _attempts(backend: Backend, job_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def dialled() -> bool:
        with backend.sessions() as s:
            found[:] = store.attempts_of(s, job_id)
        return bool(found)

    stack.wait_until(dialled, 10, f"callback job {job_id} dialled")
    return found
