"""The outage pages in a real browser against the real web app (create_app) on a seeded SQLite
database, without Asterisk: a supervisor publishes a notice from the console and sees it
listed, a bad one is refused with the server's reason, the storm switch raises the red banner
on the console, the wallboard and the outage board, the board draws the outages as bars and
confirms a suspected one, and the agent's pop shows a notice's category and text. Debian's
chromium under Playwright; every wait is an `expect` that retries until its deadline."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select

from callcenter.outage_service import OutageService, Who
from cti.db.models import Account, Call
from cti.db.outages import NoticeDraft
from cti.db.screen_pop import screen_pop
from hotline.demo_seed import demo_accounts
from outages.scope import Cause
from tests.support.browser import login, screenshot

# db, base_url, chromium and page: tests/contract/conftest.py (the browser desktop over a
# seeded SQLite city of 200 accounts, one per module)


def _storm_off(page: Any, base_url: str) -> None:
    r = page.request.post(f"{base_url}/api/storm", data={"on": False},
                          headers={"Origin": base_url})
    assert r.status == 200, r.text()


def test_a_supervisor_publishes_a_notice_sees_it_listed_and_closes_it(
        page: Any, base_url: str) -> None:
    login(page, base_url, "S01")
    page.wait_for_url("**/supervisor.html")
    page.get_by_test_id("nav-outages").click()
    page.wait_for_url("**/outages.html")
    # the pickers come from /api/outages/places: wait for them, then choose
    feeders = page.get_by_test_id("n-feeders").locator("option")
    expect(feeders.first).to_be_attached()
    expect(page.get_by_test_id("n-cause").locator("option[value=fault]")).to_have_text("故障停电")
    # no scope: the server refuses it and says why
    page.get_by_test_id("n-text").fill("未选范围")
    page.get_by_test_id("n-submit").click()
    expect(page.get_by_test_id("n-error")).to_contain_text("needs a scope")

    feeder = feeders.nth(1)
    feeder_value = feeder.get_attribute("value")
    assert feeder_value
    ta = page.get_by_test_id("n-tas").locator("option").first
    ta_value = ta.get_attribute("value")
    assert ta_value
    page.get_by_test_id("n-cause").select_option("storm_repair")
    page.get_by_test_id("n-feeders").select_option([feeder_value])
    page.get_by_test_id("n-tas").select_option([ta_value])
    page.get_by_test_id("n-restore").fill("2099-01-01T18:30")
    page.get_by_test_id("n-text").fill("台风致10kV线路倒杆，抢修中")
    page.get_by_test_id("n-submit").click()
    expect(page.get_by_test_id("toast-ok")).to_contain_text("停电通知已发布")
    row = page.locator('[data-testid="notices-active"] [data-testid="notice-row"]',
                       has_text="台风致10kV线路倒杆")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-cause", "storm_repair")
    expect(row.get_by_test_id("notice-scope")).to_contain_text(ta_value.split(":", 1)[1])
    expect(page.get_by_test_id("n-error")).to_be_empty()
    screenshot(page, "contract-outages-console")

    # the server has it, as published (18:30 in the center's time is 10:30 UTC)
    notice_id = int(row.get_attribute("data-id") or 0)
    doc = page.request.get(f"{base_url}/api/outages/{notice_id}").json()
    assert (doc["cause"], doc["feeders"], doc["agent_text"]) == (
        "storm_repair", [int(feeder_value)], "台风致10kV线路倒杆，抢修中")
    assert doc["expected_restore_at"].startswith("2099-01-01T10:30:00")

    # English on the same page, then close it: it moves to the closed list
    page.get_by_test_id("lang-toggle").click()
    expect(page.locator("#form-h")).to_have_text("Publish a notice")
    row.get_by_test_id("notice-close").click()
    closed = page.locator(f'[data-testid="notices-closed"] [data-id="{notice_id}"]')
    expect(closed).to_have_attribute("data-state", "closed")
    expect(page.locator(f'[data-testid="notices-active"] [data-id="{notice_id}"]')).to_have_count(0)


def test_the_storm_switch_raises_the_banner_on_the_console_wallboard_and_board(
        page: Any, base_url: str) -> None:
    login(page, base_url, "S02")
    page.wait_for_url("**/supervisor.html")
    expect(page.get_by_test_id("storm-banner")).to_be_hidden()
    page.goto(f"{base_url}/outages.html")
    expect(page.get_by_test_id("storm-state")).to_have_attribute("data-on", "0")
    page.get_by_test_id("storm-detail").fill("台风“海葵”登陆")
    page.get_by_test_id("storm-on").click()
    banner = page.get_by_test_id("storm-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("恶劣天气应急模式已启动")
    expect(banner.get_by_test_id("storm-who")).to_contain_text("S02")
    expect(page.get_by_test_id("storm-switched-by")).to_contain_text("S02")
    expect(page.get_by_test_id("storm-history-line").first).to_contain_text("台风“海葵”登陆")
    try:
        # the wallboard reads it over REST on load (and over /ws when a CTI runs)
        page.goto(f"{base_url}/supervisor.html?big=1")
        expect(page.get_by_test_id("storm-banner")).to_be_visible()
        expect(page.get_by_test_id("storm-banner")).to_contain_text("恶劣天气应急模式已启动")
        color = page.get_by_test_id("storm-banner").evaluate(
            "el => getComputedStyle(el).backgroundColor")
        red, green, blue = (int(x) for x in re.findall(r"\d+", color)[:3])
        assert red > 120 and green < 60 and blue < 60, color  # red, whichever pulse phase
        screenshot(page, "contract-storm-banner-wallboard")
        page.goto(f"{base_url}/board.html")
        expect(page.get_by_test_id("storm-banner")).to_be_visible()
    finally:
        _storm_off(page, base_url)
    page.goto(f"{base_url}/supervisor.html")
    expect(page.locator("#main")).to_have_attribute("data-updated", re.compile(r"\d+"))
    expect(page.get_by_test_id("storm-banner")).to_be_hidden()


def test_the_board_draws_outages_and_confirms_a_suspected_one_and_hears_the_push(
        page: Any, base_url: str, db: tuple[Any, Any]) -> None:
    _settings, sessions = db
    now = datetime.now(UTC)
    with sessions() as s:
        feeder = s.scalar(select(Account.feeder_id).where(Account.feeder_id.is_not(None))
                          .order_by(Account.id.desc()))
    svc = OutageService(sessions)
    svc.set_storm(False, Who("S01", "supervisor"), now)  # whatever a test before left
    fault = svc.publish(NoticeDraft(Cause.FAULT, now - timedelta(minutes=30),
                                    feeders=frozenset({feeder}),
                                    expected_restore_at=now + timedelta(hours=2),
                                    agent_text="变电站出线开关跳闸"), Who("S01", "supervisor"), now)
    suspected = svc.publish(NoticeDraft(Cause.REPORTED, now - timedelta(minutes=5),
                                        feeders=frozenset({feeder}), awaiting_confirmation=True,
                                        agent_text="疑似停电: 5 起报修 / 15 分钟"),
                            Who("system", "system"), now)
    with sessions.begin() as s:
        for n, outcome in enumerate(("deflected", "deflected", "transfer")):
            call_id = f"17990000{n}.1"
            s.add(Call(call_id=call_id, uniqueid=call_id, caller_number="13900000000",
                       dnis="95598", started_at=now - timedelta(minutes=n + 1), ivr_path=[],
                       outage_ids=[fault], outcome=outcome))
    sockets: list[Any] = []
    login(page, base_url, "S01")
    page.wait_for_url("**/supervisor.html")
    # the board's /ws only: the route is set once the console (whose own /ws could open late,
    # after a clear() of the list: a CI run saw two) has been left for a blank page
    page.goto("about:blank")
    page.route_web_socket(re.compile(r".*/ws$"), lambda ws: sockets.append(ws))
    page.goto(f"{base_url}/board.html")
    card = page.locator(f'[data-testid="board-card"][data-id="{fault}"]')
    expect(card.get_by_test_id("board-deflection")).to_contain_text("66.7% (2/3)")
    expect(card.get_by_test_id("board-customers")).to_have_attribute("data-value", re.compile(
        r"^[1-9]\d*$"))
    expect(card.get_by_test_id("board-calls")).to_have_attribute("data-value", "3")
    expect(card.get_by_test_id("board-scope")).not_to_be_empty()
    expect(page.get_by_test_id("board-total-active")).not_to_have_text("0")
    waiting = page.locator(f'[data-testid="board-suspected-card"][data-id="{suspected}"]')
    expect(waiting).to_contain_text("疑似故障")
    screenshot(page, "contract-outage-board")
    waiting.get_by_test_id("board-confirm").click()
    expect(page.locator(f'[data-testid="board-card"][data-id="{suspected}"]')).to_be_visible()
    expect(waiting).to_have_count(0)

    # storm mode from the retained hotline/storm message the desktop relays: no reload
    expect(page.locator("body")).to_have_attribute("data-push-connects", "1")
    assert len(sockets) == 1  # the board's
    expect(page.get_by_test_id("storm-banner")).to_be_hidden()
    # the switch as the CLI makes it (so a REST re-read of /api/storm agrees with the push),
    # then the message the relay would bring
    on_at = datetime.now(UTC)
    assert svc.set_storm(True, Who("cli:ops", "admin"), on_at)
    sockets[0].send(json.dumps({"type": "storm", "data": {
        "on": True, "since": on_at.isoformat(), "by": "cli:ops", "trigger": "manual"}}))
    expect(page.get_by_test_id("storm-banner")).to_be_visible()
    expect(page.get_by_test_id("storm-who")).to_contain_text("cli:ops")
    screenshot(page, "contract-outage-board-storm")
    assert svc.set_storm(False, Who("cli:ops", "admin"), datetime.now(UTC))
    sockets[0].send(json.dumps({"type": "storm", "data": {"on": False, "by": "cli:ops"}}))
    expect(page.get_by_test_id("storm-banner")).to_be_hidden()
    for oid in (fault, suspected):
        svc.close(oid, Who("S01", "supervisor"), datetime.now(UTC))


def test_the_agents_pop_shows_the_notice_category_and_the_text_for_agents(
        page: Any, base_url: str, db: tuple[Any, Any]) -> None:
    _settings, sessions = db
    now = datetime.now(UTC)
    with sessions() as s:
        demo = {d["purpose"]: d for d in demo_accounts(s, now)}["outage_fault"]
        pop = screen_pop(s, call_id="1790000000.8", caller_number=demo["phone"],
                         account_no=demo["account_no"], now=now)
    [outage] = pop["accounts"][0]["outages"]
    # the demo's fault-like outage there: a 10 kV fault or the wind's storm damage
    assert outage["kind"] == "fault" and outage["category_zh"] in ("故障停电", "灾害抢修")
    pop.update(seat="seat05", skill="repair", attempt=1)
    ringing = {"agent_id": "A005", "seat": "seat05", "state": "reserved", "reason": None,
               "since": now.isoformat(), "call_id": pop["call_id"]}

    def push(ws: Any) -> None:
        ws.send(json.dumps({"type": "agent_state", "data": ringing}))
        ws.send(json.dumps({"type": "pop", "data": pop}))

    page.route_web_socket(re.compile(r".*/ws$"), push)
    login(page, base_url, "A005", seat="seat05")
    page.wait_for_url("**/agent.html")
    shown = page.locator(f'[data-testid="pop-account"][data-account="{demo["account_no"]}"]'
                         ' [data-testid="pop-outage"]')
    expect(shown).to_have_attribute("data-category", outage["category"])
    expect(shown.get_by_test_id("pop-outage-category")).to_have_text(outage["category_zh"])
    expect(shown.get_by_test_id("pop-outage-text")).to_contain_text(outage["agent_text"])
    # agents are refused the outage console by the server
    page.goto(f"{base_url}/outages.html")
    expect(page.get_by_test_id("access-denied")).to_contain_text("无权访问")
    r = page.request.post(f"{base_url}/api/outages", data={"cause": "fault", "areas": [1]},
                          headers={"Origin": base_url})
    assert r.status == 403, r.text()
