"""The inbound caller lists in the browser (issue 15 §3) over a seeded city of its own: a
supervisor puts a number on the VIP list and one on the nuisance list and takes it off; an agent
reports the call on the card as a nuisance call, and the third report of a number puts it on
the nuisance list, which the supervisor then sees with its three reports."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect

from cti.db.calls import record_call_start
from cti.db.models import Call
from tests.support.browser import login, screenshot

# db, base_url, chromium and page: tests/contract/conftest.py (this module's own database)

ABUSER = "13700003333"


def test_a_supervisor_keeps_the_vip_and_nuisance_lists(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/")
    page.get_by_test_id("lang-toggle").click()
    login(page, base_url, "S01")
    page.wait_for_url("**/supervisor.html")
    expect(page.get_by_test_id("vip-empty")).to_be_visible()
    page.get_by_test_id("vip-number-input").fill("+86 139-0000-0009")
    page.get_by_test_id("vip-reason-input").fill("key account manager")
    page.get_by_test_id("vip-add").click()
    row = page.locator("[data-testid=vip-row][data-number='13900000009']")
    expect(row.get_by_test_id("vip-added-by")).to_have_text("S01")
    # a bad number is refused by the server, at the form
    page.get_by_test_id("nuisance-number-input").fill("call me")
    page.get_by_test_id("nuisance-reason-input").fill("x")
    page.get_by_test_id("nuisance-add").click()
    expect(page.get_by_test_id("nuisance-error")).to_have_text("Not a telephone number")
    page.get_by_test_id("nuisance-number-input").fill("13700004444")
    page.get_by_test_id("nuisance-reason-input").fill("threatening calls")
    page.get_by_test_id("nuisance-add").click()
    nrow = page.locator("[data-testid=nuisance-row][data-number='13700004444']")
    expect(nrow.get_by_test_id("nuisance-reports")).to_have_text("0")
    screenshot(page, "contract-caller-lists")
    page.once("dialog", lambda d: d.accept())
    nrow.get_by_test_id("nuisance-remove").click()
    expect(page.get_by_test_id("nuisance-empty")).to_be_visible()
    expect(row).to_be_visible()  # the other list is untouched


def test_the_third_nuisance_report_from_the_card_lists_the_number(
        page: Any, base_url: str, db: tuple[Any, Any]) -> None:
    _settings, sessions = db
    now = datetime.now(UTC)
    ids = [f"17900000{n}.1" for n in range(3)]
    with sessions.begin() as s:
        for n, call_id in enumerate(ids):
            record_call_start(s, call_id=call_id, uniqueid=call_id, caller_number=ABUSER,
                              dnis="95598", now=now - timedelta(minutes=10 - n))
            s.execute(Call.__table__.update().where(Call.call_id == call_id)
                      .values(agent_id="A009", seat="seat09"))

    def state(st: str, call: str | None) -> str:
        return json.dumps({"type": "agent_state", "data": {
            "agent_id": "A009", "seat": "seat09", "state": st, "reason": None,
            "since": datetime.now(UTC).isoformat(), "call_id": call}})

    sockets: list[Any] = []
    page.route_web_socket(re.compile(r".*/ws$"), lambda ws: sockets.append(ws))
    login(page, base_url, "A009", seat="seat09")
    page.wait_for_url("**/agent.html")
    expect(page.get_by_test_id("conn")).to_have_attribute("data-online", "1")
    ws = sockets[-1]
    for n, call_id in enumerate(ids):
        ws.send(state("reserved", call_id))
        ws.send(json.dumps({"type": "pop", "data": {
            "call_id": call_id, "caller_number": ABUSER, "accounts": [], "seat": "seat09",
            "skill": "general", "attempt": 1}}))
        ws.send(state("on_call", call_id))
        button = page.get_by_test_id("nuisance-report")
        expect(page.get_by_test_id("disp-form")).to_have_attribute("data-call-id", call_id)
        expect(button).to_be_enabled()
        button.click()
        expect(button).to_have_attribute("data-done", "listed" if n == 2 else "reported")
        expect(button).to_be_disabled()
        ws.send(state("ready", None))
    screenshot(page, "contract-nuisance-reported")
    sup = page.context.new_page()
    login(sup, base_url, "S01")
    sup.wait_for_url("**/supervisor.html")
    row = sup.locator(f"[data-testid=nuisance-row][data-number='{ABUSER}']")
    expect(row.get_by_test_id("nuisance-reports")).to_have_text("3")
    expect(row.get_by_test_id("nuisance-added-by")).to_have_text("system")
