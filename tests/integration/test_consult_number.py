"""Consult, transfer and conference to an outside number (外线, issue 14 §5) from the agent
desktop's own controls, on real Asterisk: a SIPp caller reaches an agent (a SIPp seat phone);
the agent's phone dials the outside number on the carrier trunk, where a SIPp phone (the
suite's customer phone, CUSTOMER_PORT) answers as the outside party. The agent goes back to
the caller; consults again (the directory's number) and completes the transfer (the caller and
the outside party talk, the agent wraps up); on another call makes it a conference the
supervisor's console shows, and leaves it (the caller and the outside party talk on until the
outside party hangs up). Numbers the hotline does not call out to are refused and audited.
Waits are on AMI events, the pages' state and the database, with deadlines; nothing sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cti.db.models import Call
from cti.db.models_recordings import AuditLog, Recording
from hotline import stack
from tests.integration import consult_scene
from tests.integration.callers import CallInProgress, call_story, seat_answered
from tests.integration.conftest import CUSTOMER_PORT, Backend, CtiProcess
from tests.integration.consult_scene import SEATS, SUP_PHONE, SUPERVISOR, together
from tests.support.agent_phones import AgentPhones
from tests.support.ami import AmiRecorder, send_action
from tests.support.browser import VIEWPORT, login
from tests.support.sipp import Caller, Keys, Pause

pytestmark = pytest.mark.integration
# the shared fixtures (consult_scene.py): the seat phones, two agents, the browser
phones, pair, chromium = consult_scene.phones, consult_scene.pair, consult_scene.chromium
OUTSIDE = "13900880001"  # by the pattern (a national mobile number): typed in
DISPATCH = ("抢修调度", "01065550101")  # the directory's (hotline.toml [call_control]): picked
TRUNK = "PJSIP/carrier-out-"


def _number(backend: Backend, n: int) -> str:
    """The caller's number of this module's n-th call (its range: 88)."""
    return f"{backend.prefix}88{n:05d}"


@pytest.fixture(scope="module")
def outside_party(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The carrier's far end: answers every number dialled on the trunk."""
    phone = AgentPhones(CUSTOMER_PORT, tmp_path_factory.mktemp("outside"), answer=True,
                        ring_ms=500)
    try:
        yield
    finally:
        phone.stop()


def _is(event: str, channel: str) -> Any:
    return lambda e: e.get("Event") == event and e.get("Channel") == channel


class Desk:
    """An agent's page with a call connected to it (the caller a SIPp phone)."""

    def __init__(self, cti: CtiProcess, ami: AmiRecorder, backend: Backend, web: str,
                 page: Any, agent: str, n: int, tmp_path: Path) -> None:
        from playwright.sync_api import expect

        self.cti, self.ami, self.page, self.agent = cti, ami, page, agent
        self.state = page.get_by_test_id("agent-state")
        self.number = _number(backend, n)
        self.mark = ami.mark()
        self.call = CallInProgress(Caller(self.number, [Pause(1500), Keys("1"), Pause(1500),
                                                        Keys("0")]), cti.settings, tmp_path)
        answered = ami.wait_for(seat_answered(self.number, SEATS[0]), 60, "seat answered",
                                since=self.mark)
        self.caller, self.leg = str(answered["Channel"]), str(answered["DestChannel"])
        expect(self.state).to_have_attribute("data-state", "on_call")

    def story(self) -> str:
        return call_story(self.ami, self.number, self.mark, self.cti.settings)

    def consult(self, *, typed: str | None = None, picked: str | None = None) -> str:
        """Consult the outside number (typed, or picked from the directory); the trunk's
        channel once the outside party answered."""
        from playwright.sync_api import expect

        p = self.page
        m = self.ami.mark()
        if picked is not None:
            p.get_by_test_id("consult-number").fill("")
            p.get_by_test_id("consult-outside").select_option(picked)
            expect(p.get_by_test_id("consult-outside")).to_have_value(picked)
        else:
            assert typed is not None
            p.get_by_test_id("consult-number").fill(typed)
        p.get_by_test_id("call-consult-outside").click()
        box = p.get_by_test_id("consult-box")
        expect(box).to_be_visible()
        expect(p.get_by_test_id("call-hold")).to_be_disabled()
        self.ami.wait_for(_is("MusicOnHoldStart", self.caller), 10, "music to the caller",
                          since=m)
        ended = self.ami.wait_for(
            lambda e: e.get("Event") == "DialEnd" and e.get("Channel") == self.leg
            and str(e.get("DestChannel", "")).startswith(TRUNK), 30,
            "the outside party answered", since=m)
        assert ended.get("DialStatus") == "ANSWER", self.story()
        expect(box).to_have_attribute("data-answered", "1")
        expect(p.get_by_test_id("consult-status")).to_contain_text(typed or picked or "")
        # the outside leg is a leg of the same call, recorded under it
        rec = self.ami.wait_for(lambda e: e.get("UserEvent") == "HotlineRecordingStart"
                                and e.get("Seat") == "outside", 10,
                                "outside leg recorded", since=m)
        assert rec.get("CallId") == self.call_id(), rec
        return str(ended["DestChannel"])

    def call_id(self) -> str:
        found = [e for e in self.ami.events()[self.mark:]
                 if e.get("Event") == "UserEvent" and e.get("UserEvent") == "HotlineQueued"
                 and e.get("CallerIDNum") == self.number]
        return str(found[0]["Linkedid"])

    def leave_ended(self, outside: str) -> None:
        """The outside party hangs up: the caller's leg ends with it, and the SIPp call is
        over."""
        m = self.ami.mark()
        send_action(self.ami, {"Action": "Hangup", "Channel": outside})
        self.ami.wait_for(_is("Hangup", self.caller), 15, "the caller's leg ended", since=m)
        assert self.call.finish(60).ok, self.story()

    def no_hangup(self, since: int, *channels: str) -> None:
        gone = [e for e in self.ami.events()[since:] if e.get("Event") == "Hangup"
                and e.get("Channel") in channels]
        assert not gone, self.story()


def _record(backend: Backend, call_id: str) -> tuple[str | None, bool]:
    with backend.sessions() as s:
        row = s.execute(select(Call.agent_id, Call.ended_at).where(Call.call_id == call_id)
                        ).one()
    return row[0], row[1] is not None


def _audited(backend: Backend, call_id: str) -> list[tuple[str, str, bool, str | None]]:
    """The call's control steps in audit_log (the recorder's rows left out: the SIPp phones
    send no audio, so a leg between two of them is flagged as a short recording)."""
    with backend.sessions() as s:
        rows = s.execute(select(AuditLog.action, AuditLog.actor, AuditLog.allowed,
                                AuditLog.detail).where(AuditLog.target == call_id,
                                                       AuditLog.action.like("call.%"))
                         .order_by(AuditLog.id)).all()
    return [(a, who, ok, (d or {}).get("number")) for a, who, ok, d in rows]


def _pages(chromium: Any, n: int) -> tuple[list[Any], list[Any]]:
    ctxs = [chromium.new_context(viewport=VIEWPORT) for _ in range(n)]
    pages = [c.new_page() for c in ctxs]
    for p in pages:
        p.set_default_timeout(20_000)
    return ctxs, pages


def _agent_page(page: Any, web: str, agent: str) -> None:
    from playwright.sync_api import expect

    login(page, web, agent, SEATS[0])
    page.wait_for_url("**/agent.html")
    state = page.get_by_test_id("agent-state")
    expect(state).to_have_attribute("data-state", "not_ready")
    page.get_by_test_id("set-ready").click()
    expect(state).to_have_attribute("data-state", "ready")


def _close(web: str, ami: AmiRecorder, desk: Desk | None, pages: list[Any], ctxs: list[Any],
           agent: str) -> None:
    if desk is not None and desk.call.thread.is_alive():  # a failure left it up
        send_action(ami, {"Action": "Hangup", "Channel": desk.caller})
    stack.wait_until(lambda: pages[0].request.post(
        f"{web}/api/agents/{agent}/logout").status in (200, 401), 30, f"{agent} logged out")
    for c in ctxs:
        c.close()


def test_outside_consult_back_then_complete_from_the_browser(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, web: str, phones: None,
        outside_party: None, pair: tuple[str, str], chromium: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    agent = pair[0]
    ctxs, pages = _pages(chromium, 1)
    page, desk = pages[0], None
    try:
        _agent_page(page, web, agent)
        desk = Desk(cti, ami, backend, web, page, agent, 1, tmp_path)
        cid = desk.call_id()
        # numbers the hotline does not call out to: refused, nothing dialled, audited
        for bad, code in (("+1 650 555 0100", 403), ("4008123456", 403), ("95598", 403)):
            r = page.request.post(f"{web}/api/calls/{cid}/consult", data={"number": bad})
            assert r.status == code, (bad, r.status, r.text())
        r = page.request.post(f"{web}/api/calls/{cid}/consult", data={"number": "139;1"})
        assert r.status == 422, r.text()
        assert not [e for e in ami.events()[desk.mark:] if e.get("Event") == "DialBegin"
                    and str(e.get("DestChannel", "")).startswith(TRUNK)], desk.story()

        # 1. consult a typed number, then back to the caller
        outside = desk.consult(typed=OUTSIDE)
        m = ami.mark()
        page.get_by_test_id("consult-cancel").click()
        expect(page.get_by_test_id("consult-box")).to_be_hidden()
        ami.wait_for(_is("Hangup", outside), 10, "outside leg ended", since=m)
        together(ami, desk.caller, desk.leg, m)
        expect(desk.state).to_have_attribute("data-state", "on_call")
        expect(page.get_by_test_id("call-hold")).to_be_enabled()

        # 2. consult the directory's dispatch, then complete: the caller and the outside
        #    party talk, the agent wraps up and the call is over for the ACD and its record
        outside = desk.consult(picked=DISPATCH[1])
        expect(page.get_by_test_id("consult-status")).to_contain_text(DISPATCH[0])
        m = ami.mark()
        page.get_by_test_id("consult-complete").click()
        expect(desk.state).to_have_attribute("data-state", "wrap_up")
        together(ami, outside, desk.caller, m)
        ami.wait_for(_is("Hangup", desk.leg), 10, "the agent's leg ended", since=m)
        desk.no_hangup(m, desk.caller, outside)
        stack.wait_until(lambda: _record(backend, cid) == (agent, True), 10,
                         "the record ends with the hand-over")
        assert page.request.get(f"{web}/api/calls", params={"live": "true"}).json() == []
        # the outside leg is recorded until it ends, under the call
        desk.leave_ended(outside)
        def legs() -> set[str | None]:
            with backend.sessions() as s:
                return set(s.execute(select(Recording.seat).where(Recording.call_id == cid)
                                     ).scalars())
        stack.wait_until(lambda: {SEATS[0], "outside"} <= legs(), 15,
                         "the agent's and the outside leg indexed")
        assert _audited(backend, cid) == [
            ("call.consult_outside", agent, False, "16505550100"),
            ("call.consult_outside", agent, False, "4008123456"),
            ("call.consult_outside", agent, False, "95598"),
            ("call.consult_outside", agent, True, OUTSIDE),
            ("call.consult_cancel", agent, True, OUTSIDE),
            ("call.consult_outside", agent, True, DISPATCH[1]),
            ("call.consult_complete", agent, True, DISPATCH[1])], _audited(backend, cid)
    finally:
        _close(web, ami, desk, pages, ctxs, agent)


def test_outside_conference_the_agent_leaves_from_the_browser(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, web: str, phones: None,
        outside_party: None, pair: tuple[str, str], chromium: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    agent = pair[0]
    ctxs, pages = _pages(chromium, 2)
    page, sup = pages
    desk = None
    try:
        _agent_page(page, web, agent)
        login(sup, web, SUPERVISOR, SUP_PHONE)
        sup.wait_for_url("**/supervisor.html")
        desk = Desk(cti, ami, backend, web, page, agent, 2, tmp_path)
        cid = desk.call_id()
        outside = desk.consult(typed=OUTSIDE)
        m = ami.mark()
        page.get_by_test_id("consult-conference").click()
        for ch in (desk.caller, desk.leg, outside):
            joined = ami.wait_for(lambda e, ch=ch: e.get("Event") == "ConfbridgeJoin"
                                  and e.get("Channel") == ch, 15, f"{ch} in conference",
                                  since=m)
            assert joined.get("Conference") == f"hotline-{cid}", joined
        expect(page.get_by_test_id("consult-box")).to_have_attribute("data-state",
                                                                     "conference")
        expect(page.get_by_test_id("consult-status")).to_contain_text(OUTSIDE)
        # the supervisor's live calls show the outside party as a party
        sup.goto(f"{web}/supervisor.html")
        row = sup.locator('[data-testid="live-call"]', has_text=desk.number)
        parties = row.get_by_test_id("call-parties")
        expect(parties).to_have_attribute("data-state", "conference")
        expect(parties).to_have_attribute("data-parties", f"{agent},{OUTSIDE}")
        # the agent leaves: the caller and the outside party talk on; the call is over for
        # the ACD (the agent wraps up, the supervisor's list no longer has it)
        m = ami.mark()
        page.get_by_test_id("conference-leave").click()
        ami.wait_for(_is("ConfbridgeLeave", desk.leg), 10, "the agent left", since=m)
        expect(desk.state).to_have_attribute("data-state", "wrap_up")
        expect(row).to_have_count(0)
        stack.wait_until(lambda: _record(backend, cid) == (agent, True), 10,
                         "the record ends as the agent leaves")
        desk.no_hangup(m, desk.caller, outside)
        # the outside party hangs up: the CTI ends the caller's leg (alone in the bridge)
        desk.leave_ended(outside)
        assert _audited(backend, cid) == [("call.consult_outside", agent, True, OUTSIDE),
                                          ("call.conference", agent, True, OUTSIDE),
                                          ("call.leave", agent, True, OUTSIDE)]
    finally:
        _close(web, ami, desk, pages, ctxs, agent)
