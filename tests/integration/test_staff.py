"""Issue 15 §1 on the real stack: an admin creates an agent with two skills in the browser
console; the agent signs in at a seat with the temporary password, chooses their own, goes
ready, and takes a real SIPp call of the second skill (English), which reaches their seat's
phone; then the admin takes the skill away and the next English caller is not offered to them.
Waits are on AMI events and the page, with deadlines."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from hotline import stack
from tests.integration.callers import CallInProgress, hang_up, is_event
from tests.integration.conftest import Backend, CtiProcess
from tests.support.agent_phones import answering_seats
from tests.support.ami import AmiRecorder
from tests.support.browser import VIEWPORT, browser, login, screenshot
from tests.support.ports import port
from tests.support.sipp import Caller, Keys, Pause

pytestmark = pytest.mark.integration
PHONE_PORT, REGISTER_PORT = port(15016), port(15042)
SEAT = "seat36"


@pytest.fixture(scope="module")
def phones(cti: CtiProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with answering_seats(cti.settings, [SEAT], PHONE_PORT, REGISTER_PORT,
                         tmp_path_factory.mktemp("staff-phones"), ring_ms=800):
        yield


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as b:
        yield b


def _english_caller(number: str) -> Caller:
    # 2: English; 0: an agent (tests/integration/test_acd.py's English caller)
    return Caller(number, [Pause(1500), Keys("2"), Pause(1500), Keys("0")],
                  hangup_after_ms=6_000)


def test_an_admin_adds_an_agent_who_takes_a_call_of_their_second_skill(
        cti: CtiProcess, web: str, ami: AmiRecorder, backend: Backend, phones: None,
        chromium: Any, tmp_path: Path) -> None:
    agent_id = f"N94{backend.name[:2]}"  # this module's agent, one per backend's database
    admin_ctx = chromium.new_context(viewport=VIEWPORT)
    desk_ctx = chromium.new_context(viewport=VIEWPORT)
    admin, desk = admin_ctx.new_page(), desk_ctx.new_page()
    for p in (admin, desk):
        p.set_default_timeout(20_000)
    try:
        login(admin, web, "admin")
        expect(admin).to_have_url(re.compile(r"supervisor\.html$"))
        admin.goto(f"{web}/admin.html")
        admin.get_by_test_id("add-id").fill(agent_id)
        admin.get_by_test_id("add-name").fill("新坐席")
        admin.get_by_test_id("add-role").select_option("agent")
        admin.get_by_test_id("add-skill-billing").check()
        admin.get_by_test_id("add-level-billing").fill("3")
        admin.get_by_test_id("add-skill-english").check()
        admin.get_by_test_id("add-level-english").fill("5")
        admin.get_by_test_id("add-submit").click()
        expect(admin.get_by_test_id("temp-password")).to_have_text(re.compile(r"^\S{12}$"))
        temporary = admin.get_by_test_id("temp-password").text_content() or ""
        expect(admin.get_by_test_id(f"skills-of-{agent_id}")).to_have_text("电费 3，英语 5")

        desk.goto(f"{web}/")
        desk.get_by_test_id("login-user").fill(agent_id)
        desk.get_by_test_id("login-password").fill(temporary)
        desk.get_by_test_id("login-seat").fill(SEAT)
        desk.get_by_test_id("login-submit").click()
        expect(desk.get_by_test_id("password-form")).to_be_visible()
        for field in ("password-new", "password-again"):
            desk.get_by_test_id(field).fill("Xin-Zuo-Xi-2026")
        desk.get_by_test_id("password-submit").click()
        expect(desk).to_have_url(re.compile(r"agent\.html$"))
        state = desk.get_by_test_id("agent-state")
        expect(state).to_have_attribute("data-state", "not_ready")
        desk.get_by_test_id("set-ready").click()
        expect(state).to_have_attribute("data-state", "ready")

        # an English caller: the only ready agent with English is the new one
        number = f"{backend.prefix}9400001"
        mark = ami.mark()
        call = CallInProgress(_english_caller(number), cti.settings, tmp_path)
        queued = ami.wait_for(is_event("UserEvent", number, UserEvent="HotlineQueued"), 60,
                              "queued", since=mark)
        assert queued["Skill"] == "english"
        offer = ami.wait_for(is_event("UserEvent", number, UserEvent="HotlineOffer"), 30,
                             "offered", since=mark)
        assert offer["Seat"] == SEAT, offer
        expect(state).to_have_attribute("data-state", re.compile("reserved|on_call|wrap_up"))
        screenshot(desk, "new-agent-takes-english-call")
        assert call.finish(90).ok
        expect(state).to_have_attribute("data-state", re.compile("wrap_up|ready"))

        # the admin takes English away: from the next offer on, an English caller waits
        admin.get_by_test_id(f"edit-skills-{agent_id}").click()
        admin.get_by_test_id(f"edit-{agent_id}-skill-english").uncheck()
        admin.get_by_test_id(f"save-skills-{agent_id}").click()
        expect(admin.get_by_test_id(f"skills-of-{agent_id}")).to_have_text("电费 3")
        desk.get_by_test_id("set-ready").click()
        expect(state).to_have_attribute("data-state", "ready")
        second = f"{backend.prefix}9400002"
        mark = ami.mark()
        call = CallInProgress(_english_caller(second), cti.settings, tmp_path)
        queued = ami.wait_for(is_event("UserEvent", second, UserEvent="HotlineQueued"), 60,
                              "second queued", since=mark)
        # the ACD has the call and the agent ready, and does not offer it: it waits for an
        # English agent (a ready agent who held the skill would have been rung at once)
        stack.wait_until(lambda: any(
            c["caller_number"] == second and c["live_state"] == "waiting"
            for c in admin.request.get(f"{web}/api/calls?live=true").json()), 30,
            "the second caller waiting in the ACD")
        expect(state).to_have_attribute("data-state", "ready")
        offers = [e for e in ami.events()[mark:]
                  if is_event("UserEvent", second, UserEvent="HotlineOffer")(e)
                  and e.get("Seat") == SEAT]
        assert offers == [], "an English caller was offered to an agent without English"
        # the caller leaves (nobody here will answer them): their channel is gone before the
        # next module, whose agents may hold English
        hang_up(ami, queued)
        ami.wait_for(is_event("Hangup", second), 30, "the second caller gone", since=mark)
        call.finish(90)
    finally:
        stack.wait_until(lambda: desk.request.post(
            f"{web}/api/agents/{agent_id}/logout").status in (200, 401, 403), 30,
            f"{agent_id} logged out")
        # the other modules pick their agents from the database by skill: this one, whose
        # password is not the demo's, must not be one of them
        admin.request.put(f"{web}/api/admin/staff/{agent_id}/skills", data={"skills": {}})
        admin.request.put(f"{web}/api/admin/staff/{agent_id}/active", data={"active": False})
        admin_ctx.close()
        desk_ctx.close()
