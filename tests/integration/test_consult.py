"""Consult transfer (咨询转接) and the three-way conference (三方通话) from the agent desktop, on
real Asterisk with SIPp phones on two seats (issue 14 §5): a SIPp caller reaches the first
agent, who consults the second (the caller on hold, the first agent's phone rings the second's
seat), then completes the transfer, goes back to the caller, or makes a conference that one
party then leaves. Each step waits on AMI events (bridges, ConfBridge joins and leaves,
hangups), the ACD's agent states and the call record, with deadlines; nothing sleeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cti.db.models import Call
from cti.db.models_recordings import AuditLog, Recording
from hotline import stack
from tests.integration import consult_scene
from tests.integration.callers import CallInProgress, seat_answered, wait_agent_state, web_login
from tests.integration.conftest import Backend, CtiProcess
from tests.integration.consult_scene import SEATS, SUP_PHONE, SUPERVISOR, Scene, bridge_of, together
from tests.support.ami import AmiRecorder, send_action
from tests.support.browser import VIEWPORT, login
from tests.support.sipp import Caller, Keys, Pause

pytestmark = pytest.mark.integration
# the shared fixtures (consult_scene.py)
phones, pair, chromium, tidy = (consult_scene.phones, consult_scene.pair,
                                consult_scene.chromium, consult_scene.tidy)


def _number(backend: Backend, n: int) -> str:
    """The caller's number of this module's n-th call (its range: 91)."""
    return f"{backend.prefix}91{n:05d}"


def test_consult_then_complete(cti: CtiProcess, ami: AmiRecorder, backend: Backend, web: str,
                               phones: None, pair: tuple[str, str], tmp_path: Path) -> None:
    sc = Scene(cti, ami, backend, web, pair, _number(backend, 1), tmp_path)
    other = sc.consult()
    m = ami.mark()
    r = sc.a.post(f"/api/calls/{sc.cid}/consult/complete")
    assert r.status_code == 200, r.text
    # the caller and the second agent share one bridge; the first agent's leg is gone
    together(ami, sc.caller, other, m)
    ami.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("Channel") == sc.agent_leg,
                 10, "first agent's leg ended", since=m)
    # the ACD and the call record know the new agent; the first wraps up as after any call
    assert wait_agent_state(sc.b, sc.second, "on_call")["call_id"] == sc.cid
    first = wait_agent_state(sc.a, sc.first, "wrap_up")
    assert first["call_id"] is None, first
    stack.wait_until(lambda: sc.record_agent() == sc.second, 10, "record names the second")
    assert sc.b.get(f"/api/calls/{sc.cid}").json()["agent_id"] == sc.second
    assert sc.a.post(f"/api/calls/{sc.cid}/hangup").status_code == 403  # no longer theirs
    # the call goes on as any call: the new agent holds, resumes and hangs up
    m = ami.mark()
    assert sc.b.post(f"/api/calls/{sc.cid}/hold", json={"on": True}).json()["held"] is True
    ami.wait_for(lambda e: e.get("Event") == "MusicOnHoldStart" and e.get("Channel") == sc.caller,
                 10, "held by the new agent", since=m)
    assert sc.b.post(f"/api/calls/{sc.cid}/hold", json={"on": False}).json()["held"] is False
    assert bridge_of(ami, sc.caller, m)
    m = ami.mark()
    assert sc.b.post(f"/api/calls/{sc.cid}/hangup").status_code == 200
    ami.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("Channel") == sc.caller, 10,
                 "caller hung up", since=m)
    wait_agent_state(sc.b, sc.second, "wrap_up")
    # the recording went on across it: each agent's leg is a file of the same call, the second
    # one's from the consult to the end (one leg, through the consult, hold and resume)
    def legs() -> list[tuple[str | None, str | None, float]]:
        with sc.backend.sessions() as s:
            return [tuple(r) for r in s.execute(  # type: ignore[misc]
                select(Recording.seat, Recording.agent_id, Recording.duration_s)
                .where(Recording.call_id == sc.cid).order_by(Recording.seat)).all()]
    stack.wait_until(lambda: len(legs()) == 2, 15, "both legs indexed")
    assert [(seat, agent) for seat, agent, _ in legs()] == \
        [(SEATS[0], sc.first), (SEATS[1], sc.second)], legs()
    assert all(d > 0 for _, _, d in legs()), legs()
    sc.done()


def test_consult_then_back_to_the_caller(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, web: str, phones: None,
        pair: tuple[str, str], tmp_path: Path) -> None:
    sc = Scene(cti, ami, backend, web, pair, _number(backend, 2), tmp_path)
    other = sc.consult()
    # the consulted agent is not offered a new call meanwhile, and cannot go ready
    assert sc.b.post(f"/api/agents/{sc.second}/state", json={"state": "ready"}).status_code \
        == 409
    m = ami.mark()
    r = sc.a.post(f"/api/calls/{sc.cid}/consult/cancel")
    assert r.status_code == 200, r.text
    ami.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("Channel") == other, 10,
                 "consulted leg ended", since=m)
    together(ami, sc.caller, sc.agent_leg, m)
    assert wait_agent_state(sc.b, sc.second, "ready")["call_id"] is None
    assert wait_agent_state(sc.a, sc.first, "on_call")["call_id"] == sc.cid
    doc = sc.a.get(f"/api/calls/{sc.cid}").json()
    assert (doc["agent_id"], doc["held"], doc["consult"]) == (sc.first, False, None), doc
    m = ami.mark()
    assert sc.a.post(f"/api/calls/{sc.cid}/hangup").status_code == 200
    ami.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("Channel") == sc.caller, 10,
                 "caller hung up", since=m)
    wait_agent_state(sc.a, sc.first, "wrap_up")
    assert sc.record_agent() == sc.first
    sc.done()


def test_consult_then_conference_then_a_party_leaves(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, web: str, phones: None,
        pair: tuple[str, str], tmp_path: Path) -> None:
    sc = Scene(cti, ami, backend, web, pair, _number(backend, 3), tmp_path)
    sup = web_login(web, SUPERVISOR, SUP_PHONE)
    try:
        other = sc.consult()
        m = ami.mark()
        r = sc.a.post(f"/api/calls/{sc.cid}/conference")
        assert r.status_code == 200, r.text
        conf = f"hotline-{sc.cid}"
        joined: dict[str, Any] = {}
        for ch in (sc.caller, sc.agent_leg, other):
            joined[ch] = ami.wait_for(lambda e, ch=ch: e.get("Event") == "ConfbridgeJoin"
                                      and e.get("Channel") == ch, 15, f"{ch} in conference",
                                      since=m)
            assert joined[ch].get("Conference") == conf, joined[ch]
        # the supervisor's live calls show who is on it
        live = {c["call_id"]: c for c in sup.get("/api/calls", params={"live": "true"}).json()}
        assert live[sc.cid]["consult"]["state"] == "conference"
        assert live[sc.cid]["consult"]["parties"] == sorted([sc.first, sc.second])
        # the first agent leaves: the second has the call, the caller stays in the conference
        m = ami.mark()
        r = sc.a.post(f"/api/calls/{sc.cid}/leave")
        assert r.status_code == 200, r.text
        ami.wait_for(lambda e: e.get("Event") == "ConfbridgeLeave"
                     and e.get("Channel") == sc.agent_leg, 10, "first agent left", since=m)
        assert wait_agent_state(sc.b, sc.second, "on_call")["call_id"] == sc.cid
        assert wait_agent_state(sc.a, sc.first, "wrap_up")["call_id"] is None
        stack.wait_until(lambda: sc.record_agent() == sc.second, 10, "record names the second")
        live = {c["call_id"]: c for c in sup.get("/api/calls", params={"live": "true"}).json()}
        assert live[sc.cid]["consult"]["parties"] == [sc.second]
        assert not [e for e in ami.events()[m:] if e.get("Event") == "Hangup"
                    and e.get("Channel") in (sc.caller, other)], sc.story()
        # the last agent leaves, taken out by the supervisor (an agent cannot take another
        # out; a supervisor must say whom): the caller's leg ends with the conference
        assert sc.a.post(f"/api/calls/{sc.cid}/leave",
                         json={"agent_id": sc.second}).status_code == 403
        assert sup.post(f"/api/calls/{sc.cid}/leave").status_code == 422
        m = ami.mark()
        r = sup.post(f"/api/calls/{sc.cid}/leave", json={"agent_id": sc.second})
        assert r.status_code == 200, r.text
        ami.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("Channel") == sc.caller,
                     10, "caller hung up", since=m)
        wait_agent_state(sc.b, sc.second, "wrap_up")
        with backend.sessions() as s:
            audited = s.execute(select(AuditLog.actor, AuditLog.allowed, AuditLog.detail)
                                .where(AuditLog.action == "call.leave",
                                       AuditLog.target == sc.cid)).all()
        assert [(a, ok, d.get("agent_id")) for a, ok, d in audited] == \
            [(SUPERVISOR, True, sc.second)], audited
        sc.done()
    finally:
        sup.close()


def test_the_consulted_phone_hanging_up(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, web: str, phones: None,
        pair: tuple[str, str], tmp_path: Path) -> None:
    """The consulted phone, not the desktop, ends its part (AMI Hangup of its leg, as a phone
    hanging up): in a consult the first agent is back on hold and takes the caller off hold;
    in a conference the other two talk on and the consulted agent is ready again."""
    sc = Scene(cti, ami, backend, web, pair, _number(backend, 5), tmp_path)
    other = sc.consult()
    m = ami.mark()
    send_action(ami, {"Action": "Hangup", "Channel": other})
    ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                 and e.get("UserEvent") == "HotlineConsultEnded"
                 and e.get("Channel") == sc.agent_leg, 10, "the consult's Dial ended", since=m)
    assert wait_agent_state(sc.b, sc.second, "ready")["call_id"] is None
    stack.wait_until(lambda: sc.a.get(f"/api/calls/{sc.cid}").json()["consult"] is None, 10,
                     "consult over")
    doc = sc.a.get(f"/api/calls/{sc.cid}").json()
    assert (doc["held"], doc["agent_id"]) == (True, sc.first), doc
    assert not [e for e in ami.events()[m:] if e.get("Event") == "Hangup"
                and e.get("Channel") in (sc.caller, sc.agent_leg)], sc.story()
    r = sc.a.post(f"/api/calls/{sc.cid}/hold", json={"on": False})
    assert r.status_code == 200 and r.json()["held"] is False, r.text
    together(ami, sc.caller, sc.agent_leg, m)

    other = sc.consult()
    m = ami.mark()
    assert sc.a.post(f"/api/calls/{sc.cid}/conference").status_code == 200
    for ch in (sc.caller, sc.agent_leg, other):
        ami.wait_for(lambda e, ch=ch: e.get("Event") == "ConfbridgeJoin"
                     and e.get("Channel") == ch, 15, f"{ch} in conference", since=m)
    m = ami.mark()
    send_action(ami, {"Action": "Hangup", "Channel": other})
    assert wait_agent_state(sc.b, sc.second, "ready")["call_id"] is None
    stack.wait_until(lambda: sc.a.get(f"/api/calls/{sc.cid}").json()["consult"]["parties"]
                     == [sc.first], 10, "the first agent alone with the caller")
    assert wait_agent_state(sc.a, sc.first, "on_call")["call_id"] == sc.cid
    assert not [e for e in ami.events()[m:] if e.get("Event") == "Hangup"
                and e.get("Channel") in (sc.caller, sc.agent_leg)], sc.story()
    m = ami.mark()
    assert sc.a.post(f"/api/calls/{sc.cid}/hangup").status_code == 200
    ami.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("Channel") == sc.agent_leg, 10,
                 "the agent left with the caller", since=m)
    wait_agent_state(sc.a, sc.first, "wrap_up")
    sc.done()


def test_consult_a_skill(cti: CtiProcess, ami: AmiRecorder, backend: Backend, web: str,
                        phones: None, pair: tuple[str, str], tmp_path: Path) -> None:
    """Consult a skill: the ACD picks its ready agent (the second, the only one ready); a
    skill nobody ready has is refused and nothing changes."""
    sc = Scene(cti, ami, backend, web, pair, _number(backend, 6), tmp_path)
    skills = sc.b.get(f"/api/agents/{sc.second}").json()["skills"]
    missing = next(k for k in ("english", "repair", "billing") if k not in skills)
    r = sc.a.post(f"/api/calls/{sc.cid}/consult", json={"skill": missing})
    assert r.status_code == 409 and missing in r.text, r.text
    doc = sc.a.get(f"/api/calls/{sc.cid}").json()
    assert (doc["held"], doc["consult"]) == (False, None), doc
    assert wait_agent_state(sc.b, sc.second, "ready")["reason"] is None
    skill = next(iter(skills))
    m = ami.mark()
    r = sc.a.post(f"/api/calls/{sc.cid}/consult", json={"skill": skill})
    assert r.status_code == 200, r.text
    assert r.json()["consult"]["agent_id"] == sc.second
    assert wait_agent_state(sc.b, sc.second, "not_ready")["reason"] == "consult"
    other = str(ami.wait_for(
        lambda e: e.get("Event") == "DialEnd" and e.get("Channel") == sc.agent_leg
        and e.get("DialStatus") == "ANSWER", 30, "the skill's agent answered",
        since=m)["DestChannel"])
    assert other.startswith(f"PJSIP/{SEATS[1]}-"), other
    m = ami.mark()
    stack.wait_until(lambda: sc.a.get(f"/api/calls/{sc.cid}").json()["consult"]["answered"],
                     10, "answered seen")
    assert sc.a.post(f"/api/calls/{sc.cid}/consult/complete").status_code == 200
    together(ami, sc.caller, other, m)
    assert wait_agent_state(sc.b, sc.second, "on_call")["call_id"] == sc.cid
    m = ami.mark()
    assert sc.b.post(f"/api/calls/{sc.cid}/hangup").status_code == 200
    ami.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("Channel") == sc.caller, 10,
                 "caller hung up", since=m)
    sc.done()


def test_the_caller_leaving_a_conference_ends_it(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, web: str, phones: None,
        pair: tuple[str, str], tmp_path: Path) -> None:
    """The caller hangs up a three-way call: both agents' legs end with it (end_marked), the
    call's agent wraps up, the consulted agent is ready again, and neither leg's end is taken
    for an agent leaving on their own (the record keeps the call's agent)."""
    sc = Scene(cti, ami, backend, web, pair, _number(backend, 7), tmp_path)
    other = sc.consult()
    m = ami.mark()
    assert sc.a.post(f"/api/calls/{sc.cid}/conference").status_code == 200
    for ch in (sc.caller, sc.agent_leg, other):
        ami.wait_for(lambda e, ch=ch: e.get("Event") == "ConfbridgeJoin"
                     and e.get("Channel") == ch, 15, f"{ch} in conference", since=m)
    m = ami.mark()
    send_action(ami, {"Action": "Hangup", "Channel": sc.caller})
    for ch in (sc.agent_leg, other):
        left = ami.wait_for(lambda e, ch=ch: e.get("UserEvent") == "HotlineConfLeft"
                            and e.get("Channel") == ch, 10, f"{ch} ended with the caller",
                            since=m)
        assert left.get("Result") == "ENDMARKED", left
        ami.wait_for(lambda e, ch=ch: e.get("Event") == "Hangup" and e.get("Channel") == ch,
                     10, f"{ch} hung up", since=m)
    assert wait_agent_state(sc.a, sc.first, "wrap_up")["call_id"] == sc.cid
    assert wait_agent_state(sc.b, sc.second, "ready")["call_id"] is None
    assert sc.record_agent() == sc.first
    assert sc.a.get("/api/calls", params={"live": "true"}).json() == []
    sc.done()


def test_refusals(cti: CtiProcess, web: str, pair: tuple[str, str]) -> None:
    """Bad input and the wrong person are 4xx, never 5xx."""
    a = web_login(web, pair[0], SEATS[0])
    try:
        for bad in ({"agent_id": "A0;01"}, {"skill": "bill ing"}, {},
                    {"agent_id": "A002", "skill": "billing"}):
            r = a.post("/api/calls/1751333405.42/consult", json=bad)
            assert r.status_code == 422, (bad, r.text)
        for path in ("consult/complete", "consult/cancel", "conference", "leave"):
            r = a.post(f"/api/calls/1751333405.42/{path}")
            assert r.status_code in (403, 404), (path, r.text)
    finally:
        assert a.post(f"/api/agents/{pair[0]}/logout").status_code == 200
        a.close()


def test_every_consult_control_from_the_browser(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, web: str, phones: None,
        pair: tuple[str, str], chromium: Any, tmp_path: Path) -> None:
    """The pages' own buttons, on one call: the first agent consults the second and goes back
    to the caller, consults again and completes the transfer; the second (now the call's agent)
    consults the first, makes it a conference, which the supervisor's console shows, and
    leaves it; the first hangs up."""
    from playwright.sync_api import expect

    first, second = pair
    ctxs = [chromium.new_context(viewport=VIEWPORT) for _ in range(3)]
    pa, pb, sup = (c.new_page() for c in ctxs)
    for p in (pa, pb, sup):
        p.set_default_timeout(20_000)
    caller, call = "", None
    try:
        for page, agent, seat in ((pa, first, SEATS[0]), (pb, second, SEATS[1])):
            login(page, web, agent, seat)
            page.wait_for_url("**/agent.html")
            expect(page.get_by_test_id("agent-state")).to_have_attribute("data-state",
                                                                          "not_ready")
        login(sup, web, SUPERVISOR, SUP_PHONE)
        sup.wait_for_url("**/supervisor.html")
        state = {p: p.get_by_test_id("agent-state") for p in (pa, pb)}
        pa.get_by_test_id("set-ready").click()
        expect(state[pa]).to_have_attribute("data-state", "ready")
        number = f"{backend.prefix}91{4:05d}"
        mark = ami.mark()
        call = CallInProgress(Caller(number, [Pause(1500), Keys("1"), Pause(1500), Keys("0")]),
                              cti.settings, tmp_path)
        answered = ami.wait_for(seat_answered(number, SEATS[0]), 60, "first seat answered",
                                since=mark)
        caller, a_leg = answered["Channel"], answered["DestChannel"]
        expect(state[pa]).to_have_attribute("data-state", "on_call")
        pb.get_by_test_id("set-ready").click()
        expect(state[pb]).to_have_attribute("data-state", "ready")

        def consult(page: Any, leg: str, target: str, target_page: Any) -> str:
            """Pick the target and consult; the consulted seat's channel once it answered."""
            m = ami.mark()
            page.get_by_test_id("transfer-agent").click()
            page.get_by_test_id("transfer-agent").select_option(target)
            expect(page.get_by_test_id("transfer-agent")).to_have_value(target)
            page.get_by_test_id("call-consult").click()
            box = page.get_by_test_id("consult-box")
            expect(box).to_be_visible()
            expect(page.get_by_test_id("call-hold")).to_be_disabled()
            expect(target_page.get_by_test_id("agent-state")).to_have_attribute(
                "data-reason", "consult")
            ended = ami.wait_for(lambda e: e.get("Event") == "DialEnd" and e.get("Channel") == leg
                                 and e.get("DialStatus") == "ANSWER", 30, "consult answered",
                                 since=m)
            expect(box).to_have_attribute("data-answered", "1")
            expect(page.get_by_test_id("consult-status")).to_contain_text(target)
            expect(page.get_by_test_id("conference-leave")).to_be_hidden()
            return str(ended["DestChannel"])

        # 1. consult, then back to the caller
        other = consult(pa, a_leg, second, pb)
        m = ami.mark()
        pa.get_by_test_id("consult-cancel").click()
        expect(pa.get_by_test_id("consult-box")).to_be_hidden()
        ami.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("Channel") == other, 10,
                     "consulted leg ended", since=m)
        together(ami, caller, a_leg, m)
        expect(state[pb]).to_have_attribute("data-state", "ready")
        expect(pa.get_by_test_id("call-hold")).to_be_enabled()

        # 2. consult again, then complete the transfer: the second agent has the caller
        other = consult(pa, a_leg, second, pb)
        m = ami.mark()
        pa.get_by_test_id("consult-complete").click()
        expect(state[pa]).to_have_attribute("data-state", "wrap_up")
        expect(state[pb]).to_have_attribute("data-state", "on_call")
        together(ami, caller, other, m)
        b_leg = other

        # 3. the second consults the first (ready after wrap-up), makes it a conference, and
        #    leaves it: the first has the call and hangs up
        expect(state[pa]).to_have_attribute("data-state", "ready",
                                            timeout=(cti.settings.acd.wrap_up_s + 15) * 1000)
        other = consult(pb, b_leg, first, pa)
        m = ami.mark()
        pb.get_by_test_id("consult-conference").click()
        for ch in (caller, b_leg, other):
            ami.wait_for(lambda e, ch=ch: e.get("Event") == "ConfbridgeJoin"
                         and e.get("Channel") == ch, 15, f"{ch} in conference", since=m)
        expect(pb.get_by_test_id("consult-box")).to_have_attribute("data-state", "conference")
        expect(pb.get_by_test_id("conference-leave")).to_be_visible()
        expect(pb.get_by_test_id("consult-complete")).to_be_hidden()
        sup.goto(f"{web}/supervisor.html")
        row = sup.locator('[data-testid="live-call"]', has_text=number)
        parties = row.get_by_test_id("call-parties")
        expect(parties).to_have_attribute("data-state", "conference")
        expect(parties).to_have_attribute("data-parties", ",".join(sorted([first, second])))
        m = ami.mark()
        pb.get_by_test_id("conference-leave").click()
        ami.wait_for(lambda e: e.get("Event") == "ConfbridgeLeave" and e.get("Channel") == b_leg,
                     10, "the second agent left", since=m)
        expect(state[pb]).to_have_attribute("data-state", "wrap_up")
        expect(state[pa]).to_have_attribute("data-state", "on_call")
        m = ami.mark()
        pa.get_by_test_id("call-hangup").click()
        ami.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("Channel") == caller, 10,
                     "caller hung up", since=m)
        expect(state[pa]).to_have_attribute("data-state", "wrap_up")
        assert call.finish(60).ok
        with backend.sessions() as s:
            assert s.execute(select(Call.agent_id).where(Call.caller_number == number)
                             ).scalar_one() == first
    finally:
        if caller and call is not None and call.thread.is_alive():  # a failure left it up
            send_action(ami, {"Action": "Hangup", "Channel": caller})
        for page, agent in ((pa, first), (pb, second)):  # the pages' own sessions
            stack.wait_until(lambda page=page, agent=agent: page.request.post(
                f"{web}/api/agents/{agent}/logout").status in (200, 401), 30,
                f"{agent} logged out")
        for c in ctxs:
            c.close()
