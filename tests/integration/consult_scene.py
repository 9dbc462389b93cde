"""What the consult tests share (test_consult.py: agents; test_consult_number.py: outside
numbers): two SIPp seat phones that answer, two general agents the other modules leave alone,
a Scene (a SIPp caller connected to the first agent, the second logged in and ready) and the
bridge waits. Fixtures are imported by the modules that use them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cti.db.models import Agent, Call
from hotline import stack
from tests.integration.callers import (
    CallInProgress,
    call_story,
    is_event,
    seat_answered,
    wait_agent_state,
    web_login,
)
from tests.integration.conftest import Backend, CtiProcess
from tests.support.agent_phones import answering_seats
from tests.support.ami import AmiRecorder, send_action
from tests.support.browser import browser
from tests.support.ports import port
from tests.support.sipp import Caller, Keys, Pause

PHONE_PORT, REGISTER_PORT = port(15056), port(15058)
SEATS = ("seat41", "seat42")
SUPERVISOR, SUP_PHONE = "S03", "sup03"


@pytest.fixture(scope="module")
def phones(cti: CtiProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with answering_seats(cti.settings, SEATS, PHONE_PORT, REGISTER_PORT,
                         tmp_path_factory.mktemp("consult-phones"), ring_ms=1000):
        yield


@pytest.fixture(scope="module")
def pair(backend: Backend) -> tuple[str, str]:
    """Two general agents the other tests leave alone (they take the first few and the last
    ones)."""
    with backend.sessions() as s:
        rows = s.execute(select(Agent.agent_id, Agent.skills).where(Agent.role == "agent")
                         .order_by(Agent.agent_id)).all()
    general = [a for a, skills in rows if "general" in skills and "english" not in skills]
    assert len(general) > 20, general
    return general[10], general[11]


OPEN: list[Scene] = []  # scenes a failed test left: their call and agents end in teardown


@pytest.fixture(autouse=True)
def tidy(ami: AmiRecorder) -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close(ami)


class Scene:
    """The caller connected to the first agent; the second agent logged in, ready."""

    def __init__(self, cti: CtiProcess, ami: AmiRecorder, backend: Backend, base: str,
                 pair: tuple[str, str], number: str, tmp_path: Path) -> None:
        self.cti, self.ami, self.backend = cti, ami, backend
        self.first, self.second = pair
        self.caller = ""
        OPEN.append(self)
        self.a = web_login(base, self.first, SEATS[0])
        self.b = web_login(base, self.second, SEATS[1])
        # only the first is ready when the call comes, so it is theirs
        assert self.a.post(f"/api/agents/{self.first}/state",
                           json={"state": "ready"}).status_code == 200
        self.number = number  # the module's own range (Backend.prefix)
        self.mark = ami.mark()
        self.call = CallInProgress(Caller(self.number, [Pause(1500), Keys("1"), Pause(1500),
                                                        Keys("0")]), cti.settings, tmp_path)
        ami.wait_for(lambda e: is_event("UserEvent", self.number, UserEvent="HotlineOffer")(e)
                     and e.get("Seat") == SEATS[0], 60, "offer to the first seat",
                     since=self.mark)
        answered = ami.wait_for(seat_answered(self.number, SEATS[0]), 30, "first seat answered",
                                since=self.mark)
        self.caller, self.agent_leg = answered["Channel"], answered["DestChannel"]
        live = self.a.get("/api/calls", params={"live": "true"}).json()
        assert [(c["live_state"], c["agent_id"]) for c in live] == [("connected", self.first)]
        self.cid = live[0]["call_id"]
        r = self.b.post(f"/api/agents/{self.second}/state", json={"state": "ready"})
        assert r.status_code == 200, r.text

    def story(self) -> str:
        return call_story(self.ami, self.number, self.mark, self.cti.settings)

    def consult(self) -> str:
        """Consult the second agent; the consulted seat's channel once it answered."""
        m = self.ami.mark()
        r = self.a.post(f"/api/calls/{self.cid}/consult", json={"agent_id": self.second})
        assert r.status_code == 200, r.text
        assert r.json()["consult"]["agent_id"] == self.second
        self.ami.wait_for(lambda e: e.get("Event") == "MusicOnHoldStart"
                          and e.get("Channel") == self.caller, 10, "music to the caller", since=m)
        # the ACD took the second agent out of routing for the consult
        assert wait_agent_state(self.b, self.second, "not_ready")["reason"] == "consult"
        # the first agent's own leg rings the second seat, which answers
        ended = self.ami.wait_for(
            lambda e: e.get("Event") == "DialEnd" and e.get("Channel") == self.agent_leg
            and str(e.get("DestChannel", "")).startswith(f"PJSIP/{SEATS[1]}-"), 30,
            "the consulted seat answered", since=m)
        assert ended.get("DialStatus") == "ANSWER", self.story()
        other = str(ended["DestChannel"])
        # the consulted leg is the same call (Linkedid) and is recorded under it
        rec = self.ami.wait_for(lambda e: e.get("UserEvent") == "HotlineRecordingStart"
                                and e.get("Seat") == SEATS[1], 10, "consult leg recorded",
                                since=m)
        assert rec.get("CallId") == self.cid, rec
        # the caller waits on hold meanwhile; the first agent is still the call's (the CTI
        # sees the answer in its own AMI stream, a moment after this test's)
        stack.wait_until(lambda: self.a.get(f"/api/calls/{self.cid}").json()["consult"][
            "answered"], 10, "the CTI saw the answer")
        doc = self.a.get(f"/api/calls/{self.cid}").json()
        assert (doc["agent_id"], doc["held"], doc["consult"]["answered"]) == \
            (self.first, True, True), doc
        return other

    def record_agent(self) -> str | None:
        with self.backend.sessions() as s:
            return s.execute(select(Call.agent_id).where(Call.call_id == self.cid)
                             ).scalar_one_or_none()

    def done(self) -> None:
        assert self.call.finish(60).ok
        OPEN.remove(self)
        self.close(self.ami)

    def close(self, ami: AmiRecorder) -> None:
        """The agents logged out (after the call, if a failed test left it up)."""
        if self.caller and self.call.thread.is_alive():
            try:
                send_action(ami, {"Action": "Hangup", "Channel": self.caller})
            except Exception:  # gone meanwhile
                pass
        for c, agent in ((self.a, self.first), (self.b, self.second)):
            stack.wait_until(lambda c=c, agent=agent: c.post(
                f"/api/agents/{agent}/logout").status_code == 200, 30, f"{agent} logged out")
            c.close()


def together(ami: AmiRecorder, one: str, other: str, since: int) -> None:
    """`one` enters a bridge after `since`, and `other` enters that same bridge."""
    bridge = bridge_of(ami, one, since)
    ami.wait_for(lambda e: e.get("Event") == "BridgeEnter" and e.get("Channel") == other
                 and e.get("BridgeUniqueid") == bridge, 15, f"{other} bridged with {one}",
                 since=since)


def bridge_of(ami: AmiRecorder, channel: str, since: int) -> str:
    return str(ami.wait_for(lambda e: e.get("Event") == "BridgeEnter"
                            and e.get("Channel") == channel, 15, f"{channel} bridged",
                            since=since)["BridgeUniqueid"])


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as b:
        yield b
