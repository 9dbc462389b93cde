"""Call control from the desktop's web API on real Asterisk: the CTI process serves the API;
agents log in at their seats over HTTP, a SIPp caller reaches the first agent, who puts the
caller on hold (music on the caller's channel) and back, then transfers to a skill (the caller
waits again in our ACD and the second agent's seat rings); the second agent transfers to the
first agent by name, who hangs up from the web. Waits on AMI events and HTTP answers with
deadlines, never on sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from cti.db.models import Agent, CallHold
from hotline import stack
from tests.integration.callers import (
    CallInProgress,
    is_event,
    seat_answered,
    ts,
    wait_agent_state,
    web_login,
)
from tests.integration.conftest import Backend, CtiProcess
from tests.support.agent_phones import answering_seats
from tests.support.ami import AmiRecorder, Event
from tests.support.ports import port
from tests.support.sipp import Caller, Keys, Pause
from tests.support.ws import WsClient

pytestmark = pytest.mark.integration
PHONE_PORT, REGISTER_PORT = port(15040), port(15044)
SEATS = ("seat11", "seat12")


@pytest.fixture(scope="module")
def base(web: str) -> str:
    """The desktop's URL (conftest's `web`)."""
    return web


@pytest.fixture(scope="module")
def phones(cti: CtiProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with answering_seats(cti.settings, SEATS, PHONE_PORT, REGISTER_PORT,
                         tmp_path_factory.mktemp("web-phones"), ring_ms=1000):
        yield


@pytest.fixture(scope="module")
def two_agents(backend: Backend) -> tuple[str, str]:
    """A general agent without billing, and a billing agent: the transfer to billing can only
    go to the second one."""
    with backend.sessions() as s:
        rows = s.execute(select(Agent.agent_id, Agent.skills).where(Agent.role == "agent")
                         .order_by(Agent.agent_id.desc())).all()
    first = next(a for a, sk in rows if "general" in sk and "billing" not in sk)
    second = next(a for a, sk in rows if "billing" in sk and a != first)
    return first, second


def _answered(ami: AmiRecorder, number: str, seat: str, since: int) -> Event:
    ami.wait_for(lambda e: is_event("UserEvent", number, UserEvent="HotlineOffer")(e)
                 and e.get("Seat") == seat, 60, f"offer to {seat}", since=since)
    return ami.wait_for(seat_answered(number, seat), 30, f"{seat} answered", since=since)


def _hold_of(backend: Backend, call_id: str, timeout: float = 10.0) -> CallHold:
    """The call's one hold row, once the CTI wrote it (a condition with a deadline)."""
    found: list[CallHold] = []

    def written() -> bool:
        with backend.sessions() as s:
            found[:] = s.scalars(select(CallHold).where(CallHold.call_id == call_id)).all()
        return bool(found)

    stack.wait_until(written, timeout, f"the hold of {call_id} written")
    assert len(found) == 1, found
    return found[0]


def test_hold_transfer_and_hangup_from_the_web(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, base: str, phones: None,
        two_agents: tuple[str, str], tmp_path: Path) -> None:
    first, second = two_agents
    a = web_login(base, first, SEATS[0])
    b = web_login(base, second, SEATS[1])
    # the first agent's desktop push: the CTI relays MQTT to it, filtered for this agent
    push = WsClient(cti.settings.web.host, cti.settings.web.port, "/ws",
                    f"hotline_session={a.cookies['hotline_session']}")
    try:
        # the API is the CTI's: the login put the agent in the ACD, as the MQTT login does
        assert wait_agent_state(a, first, "not_ready")["reason"] == "login"
        assert [x["agent_id"] for x in a.get("/api/agents").json()] == [first]
        assert a.post(f"/api/agents/{first}/state", json={"state": "ready"}).json()[
            "state"] == "ready"
        push.wait_for(lambda m: m["type"] == "agent_state" and m["data"]["agent_id"] == first
                      and m["data"]["state"] == "ready", 10, "own state ready")
        number = f"{backend.prefix}7800001"
        mark = ami.mark()
        call = CallInProgress(Caller(number, [Pause(1500), Keys("1"), Pause(1500), Keys("0")]),
                              cti.settings, tmp_path)
        answered = _answered(ami, number, SEATS[0], mark)
        caller_channel = answered["Channel"]
        live = a.get("/api/calls", params={"live": "true"}).json()
        assert [(c["live_state"], c["agent_id"]) for c in live] == [("connected", first)]
        cid = live[0]["call_id"]
        assert a.get(f"/api/calls/{cid}/pop").json()["caller_number"] == number
        pushed = push.wait_for(lambda m: m["type"] == "pop", 10, "the pop")
        assert (pushed["data"]["call_id"], pushed["data"]["seat"]) == (cid, SEATS[0])
        push.wait_for(lambda m: m["type"] == "queue_stats", 30, "queue figures")

        # hold: music on the caller's channel; resume: both legs bridged again
        m = ami.mark()
        r = a.post(f"/api/calls/{cid}/hold", json={"on": True})
        assert r.status_code == 200 and r.json()["held"] is True, r.text
        moh = ami.wait_for(lambda e: e.get("Event") == "MusicOnHoldStart"
                           and e.get("Channel") == caller_channel, 10, "music to the caller",
                           since=m)
        m = ami.mark()
        r = a.post(f"/api/calls/{cid}/hold", json={"on": False})
        assert r.status_code == 200 and r.json()["held"] is False, r.text
        unheld = ami.wait_for(lambda e: e.get("Event") == "MusicOnHoldStop"
                              and e.get("Channel") == caller_channel, 10, "music stopped",
                              since=m)
        # the hold is on the call record, with Asterisk's times (the workload reports' hold)
        hold = _hold_of(backend, cid)
        assert (hold.started_at.timestamp(), hold.ended_at.timestamp()) == pytest.approx(
            (ts(moh), ts(unheld)), abs=0.01)
        ami.wait_for(lambda e: e.get("Event") == "BridgeEnter"
                     and e.get("Channel") == caller_channel, 10, "caller bridged again",
                     since=m)
        assert wait_agent_state(a, first, "on_call")["call_id"] == cid

        # transfer to a skill: the caller waits in our ACD again; the billing agent gets it
        assert b.post(f"/api/agents/{second}/state", json={"state": "ready"}).status_code == 200
        m = ami.mark()
        r = a.post(f"/api/calls/{cid}/transfer", json={"skill": "billing"})
        assert r.status_code == 200, r.text
        # the billing agent's seat is offered it (a HotlineQueued is not always seen: with an
        # agent ready, the ACD's ring may Redirect the caller before the wait's first step ran)
        _answered(ami, number, SEATS[1], m)
        assert b.get(f"/api/calls/{cid}").json()["skill"] == "billing"
        assert wait_agent_state(b, second, "on_call")["call_id"] == cid
        # the first agent's part is over: wrap-up, then ready again (wrap_up_s in the tests)
        wait_agent_state(a, first, "ready", timeout=cti.settings.acd.wrap_up_s + 15)

        # transfer back to the first agent by name; the first agent hangs up from the web
        m = ami.mark()
        r = b.post(f"/api/calls/{cid}/transfer", json={"agent_id": first})
        assert r.status_code == 200, r.text
        _answered(ami, number, SEATS[0], m)
        wait_agent_state(a, first, "on_call")
        assert b.post(f"/api/calls/{cid}/hangup").status_code == 403  # no longer theirs
        m = ami.mark()
        assert a.post(f"/api/calls/{cid}/hangup").status_code == 200
        ami.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("Channel") == caller_channel,
                     10, "caller hung up", since=m)
        assert call.finish(60).ok
        wait_agent_state(a, first, "wrap_up")
        # the other agent was ready, rang and talked meanwhile: none of it reached this socket
        assert all(m["data"].get("agent_id", first) == first for m in push.messages
                   if m["type"] in ("agent_state", "pop")), push.messages
        assert not [m for m in push.messages if m["type"] in ("call_event", "sla_alert")]
        for c, agent in ((a, first), (b, second)):
            assert c.post(f"/api/agents/{agent}/logout").status_code == 200
    finally:
        push.close()
        a.close()
        b.close()


def test_resume_before_the_hold_music_starts_keeps_the_call(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, base: str, phones: None,
        two_agents: tuple[str, str], tmp_path: Path) -> None:
    """Issue 14's race: hold, then off hold at once, as fast as HTTP goes, three times over.
    It dropped the call: the second hold ended the agent's leg (after a resume it sits in
    Bridge(), which returned as the caller left, and then hung up), and an off-hold whose
    Bridge() met the caller still leaving the old bridge ended it too (hotline-hold in
    extensions.conf). Now the call stays up, bridged again each time."""
    first = two_agents[0]
    a = web_login(base, first, SEATS[0])
    try:
        assert a.post(f"/api/agents/{first}/state", json={"state": "ready"}).json()[
            "state"] == "ready"
        number = f"{backend.prefix}7800002"
        mark = ami.mark()
        call = CallInProgress(Caller(number, [Pause(1500), Keys("1"), Pause(1500), Keys("0")]),
                              cti.settings, tmp_path)
        caller_channel = _answered(ami, number, SEATS[0], mark)["Channel"]
        cid = a.get("/api/calls", params={"live": "true"}).json()[0]["call_id"]
        for _ in range(3):
            m = ami.mark()
            r = a.post(f"/api/calls/{cid}/hold", json={"on": True})
            assert r.status_code == 200 and r.json()["held"] is True, r.text
            r = a.post(f"/api/calls/{cid}/hold", json={"on": False})
            assert r.status_code == 200 and r.json()["held"] is False, r.text
            ami.wait_for(lambda e: e.get("Event") == "BridgeEnter"
                         and e.get("Channel") == caller_channel, 10, "caller bridged again",
                         since=m)
        assert wait_agent_state(a, first, "on_call")["call_id"] == cid
        # still the same call: the agent ends it from the web, the caller's leg hears it
        m = ami.mark()
        assert a.post(f"/api/calls/{cid}/hangup").status_code == 200
        gone = ami.wait_for(lambda e: e.get("Event") == "Hangup"
                            and e.get("Channel") == caller_channel, 10, "caller hung up",
                            since=m)
        assert gone.get("Cause") == "16", gone
        assert not [e for e in ami.events()[mark:m] if e.get("Event") == "Hangup"
                    and e.get("Channel") == caller_channel], "the caller dropped mid-race"
        assert call.finish(60).ok
        assert a.post(f"/api/agents/{first}/logout").status_code == 200
    finally:
        a.close()
