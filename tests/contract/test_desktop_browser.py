"""The browser UI against the real web app (create_app) on a seeded SQLite database, without
Asterisk: login in Mandarin, switch to English, the supervisor's wallboard, and an agent whom the
server refuses the supervisor console. Real headless chromium (Debian's) under Playwright."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from playwright.sync_api import expect

from cti.db import callers
from cti.db.screen_pop import screen_pop
from hotline.demo_seed import demo_accounts
from tests.support.browser import login, screenshot

# db, base_url, chromium and page: tests/contract/conftest.py (the browser desktop over a
# seeded SQLite city of 200 accounts, one per module)


def test_login_page_in_mandarin_then_english_and_the_choice_is_kept(page: Any,
                                                                    base_url: str) -> None:
    page.goto(f"{base_url}/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_test_id("login-submit")).to_have_text("签入")
    expect(page.locator("h1")).to_have_text("坐席签入")
    # a wrong password is refused by the server, and said in Mandarin
    page.get_by_test_id("login-user").fill("S01")
    page.get_by_test_id("login-password").fill("wrong")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_contain_text("工号或密码错误")
    page.get_by_test_id("lang-toggle").click()
    expect(page.locator("h1")).to_have_text("Agent login")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.reload()
    expect(page.get_by_test_id("login-submit")).to_have_text("Log in")


def test_supervisor_sees_the_wallboard_in_english(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/")
    page.get_by_test_id("lang-toggle").click()
    login(page, base_url, "S01")
    page.wait_for_url("**/supervisor.html")
    expect(page.get_by_test_id("wallboard")).to_be_visible()
    expect(page.locator("#wb-h")).to_contain_text("Wallboard")
    # the figures come from GET /api/wallboard (nothing has called yet: zero waiting)
    expect(page.locator("#main")).to_have_attribute("data-updated", re.compile(r"\d+"))
    expect(page.get_by_test_id("wb-waiting")).to_have_text("0")
    # today's callers an outage notice deflected, next to the abandoned ones
    expect(page.get_by_test_id("wb-deflected")).to_have_text(re.compile(r"^\d+$"))
    expect(page.get_by_test_id("wallboard")).to_contain_text("Deflected by outage notices")
    expect(page.get_by_test_id("access-denied")).to_be_hidden()
    screenshot(page, "contract-supervisor-wallboard-en")
    # big-screen mode: the wallboard alone, big figures
    page.goto(f"{base_url}/supervisor.html?big=1")
    expect(page.locator("body")).to_have_class(re.compile(r"\bbig\b"))
    expect(page.get_by_test_id("wallboard")).to_be_visible()
    expect(page.get_by_test_id("live-calls-panel")).to_be_hidden()
    size = page.get_by_test_id("wb-waiting").evaluate(
        "el => parseFloat(getComputedStyle(el).fontSize)")
    assert size >= 48, size  # body text is 15 px
    screenshot(page, "contract-wallboard-big-screen")


def test_agent_is_refused_the_supervisor_console_by_the_server(page: Any,
                                                               base_url: str) -> None:
    login(page, base_url, "A001", seat="seat01")
    page.wait_for_url("**/agent.html")
    # filled from /api/auth/me after the page loads: wait for it, do not read it once
    expect(page.get_by_test_id("who")).to_contain_text("A001")
    # the server itself says no, whatever the page shows
    for path in ("/api/wallboard", "/api/workorders/at-risk", "/api/agents/A002"):
        r = page.request.get(f"{base_url}{path}")
        assert r.status == 403, (path, r.status, r.text())
        assert r.json()["detail"], r.text()
    for path, body in (("/api/agents/A002/state", {"state": "ready"}),
                       ("/api/agents/A002/logout", {}),
                       ("/api/supervision", {"call_id": "1790000000.1", "mode": "listen"})):
        r = page.request.post(f"{base_url}{path}", data=body,
                              headers={"Origin": base_url})
        assert r.status == 403, (path, r.status, r.text())
    page.goto(f"{base_url}/supervisor.html")
    expect(page.get_by_test_id("access-denied")).to_contain_text("无权访问")
    expect(page.get_by_test_id("wallboard")).to_be_hidden()


def test_agent_desktop_shows_a_pushed_pop_and_files_a_prefilled_work_order(
        page: Any, base_url: str, db: tuple[Any, Any]) -> None:
    """The pop as the CTI builds it (cti.db.screen_pop on the seeded data), pushed over /ws.
    Without a CTI here the browser's WebSocket is answered by Playwright's route; the work order
    goes to the real API."""
    _settings, sessions = db
    now = datetime.now(UTC)
    with sessions() as s:
        demo = {d["purpose"]: d for d in demo_accounts(s, now)}["outage_fault"]
        pop = screen_pop(s, call_id="1790000000.7", caller_number=demo["phone"],
                         account_no=demo["account_no"], now=now)
    pop["ivr"] = {"language": "zh", "skill": "general", "path": [
        {"node": "language", "input": "1"}, {"node": "main_menu", "input": "1"},
        {"node": "bill_account", "input": demo["account_no"]},
        {"node": "bill_after", "input": "0"}, {"node": "to_agent"}]}
    pop.update(seat="seat03", skill="general", attempt=1)
    ringing = {"agent_id": "A003", "seat": "seat03", "state": "reserved", "reason": None,
               "since": now.isoformat(), "call_id": pop["call_id"]}

    def push(ws: Any) -> None:
        ws.send(json.dumps({"type": "agent_state", "data": ringing}))
        ws.send(json.dumps({"type": "pop", "data": pop}))

    page.route_web_socket(re.compile(r".*/ws$"), push)
    login(page, base_url, "A003", seat="seat03")
    page.wait_for_url("**/agent.html")
    expect(page.get_by_test_id("pop-caller")).to_have_text(demo["phone"])
    acc = page.locator(f'[data-testid="pop-account"][data-account="{demo["account_no"]}"]')
    expect(acc.get_by_test_id("pop-address")).not_to_be_empty()
    expect(acc.get_by_test_id("pop-bill")).to_have_count(len(pop["accounts"][0]["bills"]))
    expect(acc.get_by_test_id("pop-outage")).to_have_count(len(pop["accounts"][0]["outages"]))
    expect(page.get_by_test_id("pop-ivr-input").filter(has_text=demo["account_no"])).to_be_visible()
    # the caller's language by name, not its code (it showed "语种: zh", issue 14 §6)
    expect(page.get_by_test_id("pop-language")).to_have_text("语种: 普通话")
    screenshot(page, "contract-agent-desktop-pop")
    page.get_by_test_id("wo-open").click()
    expect(page.get_by_test_id("wo-caller")).to_have_value(demo["phone"])
    expect(page.get_by_test_id("wo-account")).to_have_value(demo["account_no"])
    page.get_by_test_id("wo-type").select_option("fault_repair")
    page.get_by_test_id("wo-submit").click()
    number = page.get_by_test_id("wo-created-number")
    expect(number).to_have_text(re.compile(r"^\d{11}$"))
    # the new order is listed with its SLA clock
    row = page.locator(f'[data-testid="wo-row"][data-number="{number.inner_text()}"]')
    expect(row.get_by_test_id("sla-clock")).to_have_text(re.compile(r"^(\d+:)?\d\d:\d\d$"))
    # English on the same page, with the pop kept
    page.get_by_test_id("lang-toggle").click()
    expect(page.locator("#pop-h")).to_have_text("Screen-pop")
    expect(page.get_by_test_id("pop-caller")).to_have_text(demo["phone"])
    expect(page.get_by_test_id("pop-language")).to_have_text("Language: Mandarin")


def test_a_vip_caller_is_marked_on_the_pop(page: Any, base_url: str,
                                          db: tuple[Any, Any]) -> None:
    """Issue 15 §3: a number on the VIP list is marked on the agent's pop, with the reason the
    supervisor gave, in both languages; the next caller, not on it, is not."""
    _settings, sessions = db
    now = datetime.now(UTC)
    with sessions() as s:
        callers.add(s, "vip", "13700000071", reason="人大代表", by="S01", now=now)
        s.commit()
    try:
        with sessions() as s:
            vip = screen_pop(s, call_id="1790000020.1", caller_number="13700000071",
                             account_no=None, now=now)
            plain = screen_pop(s, call_id="1790000021.1", caller_number="13700000072",
                               account_no=None, now=now)
    finally:
        with sessions() as s:
            callers.remove(s, "vip", "13700000071")
            s.commit()
    pops: list[dict[str, Any]] = [vip]

    def push(ws: Any) -> None:
        for pop in pops:
            ws.send(json.dumps({"type": "pop", "data": {**pop, "seat": "seat04"}}))

    page.route_web_socket(re.compile(r".*/ws$"), push)
    login(page, base_url, "A004", seat="seat04")
    page.wait_for_url("**/agent.html")
    expect(page.get_by_test_id("pop-caller")).to_have_text("13700000071")
    expect(page.get_by_test_id("pop-vip")).to_have_text("VIP 来电 · 人大代表")
    page.get_by_test_id("lang-toggle").click()
    expect(page.get_by_test_id("pop-vip")).to_have_text("VIP caller · 人大代表")
    pops[:] = [plain]
    page.reload()
    expect(page.get_by_test_id("pop-caller")).to_have_text("13700000072")
    expect(page.get_by_test_id("pop-vip")).to_have_count(0)


def test_desktop_reconnects_the_push_and_refetches_its_state(page: Any, base_url: str) -> None:
    """The push drops: the page shows it, connects again and re-reads its state over REST."""
    connections: list[Any] = []
    page.route_web_socket(re.compile(r".*/ws$"), lambda ws: connections.append(ws))
    login(page, base_url, "A004", seat="seat04")
    page.wait_for_url("**/agent.html")
    body, conn = page.locator("body"), page.get_by_test_id("conn")
    expect(body).to_have_attribute("data-push-connects", "1")
    expect(conn).to_have_attribute("data-online", "1")
    expect(body).to_have_attribute("data-refreshes", "2")  # on load, and on connect
    connections[0].close(code=1011, reason="CTI restarting")
    # connected again after a jittered backoff, and the state read again over REST
    expect(body).to_have_attribute("data-push-connects", "2")
    expect(conn).to_have_text("已连接")
    expect(body).to_have_attribute("data-refreshes", "3")
    assert len(connections) == 2
    # English: the connection's status is translated too (it stayed "已连接", issue 14 §6)
    page.get_by_test_id("lang-toggle").click()
    expect(conn).to_have_text("Connected")


def test_supervisor_calls_a_return_visit_with_one_click(page: Any, base_url: str,
                                                        db: tuple[Any, Any]) -> None:
    """Issue 14: a resolved repair waits on the console's return-visit list; one click has
    the outbound engine dial it now (its job is due at once, ahead of the scheduled ones)."""
    from cti.db import outbound as store
    from hotline.wiring import build_services
    from workorders.lifecycle import Department, Role
    from workorders.service import Actor, NewOrder

    settings, sessions = db
    svc = build_services(settings, sessions).workorders
    agent, crew = Actor("A003", Role.AGENT), Actor("crew", Role.DEPARTMENT, Department.REPAIR)
    number = svc.create(NewOrder(type="fault_repair", description="家中无电",
                                 caller_number="13800000077"), agent)["number"]
    for to, who in (("dispatched", agent), ("department_accepted", crew), ("on_site", crew),
                    ("resolved", crew)):
        svc.transition(number, to, who)
    login(page, base_url, "S01")
    page.wait_for_url("**/supervisor.html")
    row = page.get_by_test_id("rv-row").filter(has_text=number)
    expect(row).to_be_visible()
    button = row.get_by_test_id("rv-call")
    expect(button).to_have_text("一键回访")
    button.click()
    expect(button).to_have_attribute("data-state", "dialling")
    expect(button).to_have_text("正在外呼回访")
    expect(button).to_be_disabled()
    # the server's list says so too: a reload (or another supervisor) sees it dialling
    page.reload()
    again = page.get_by_test_id("rv-row").filter(has_text=number).get_by_test_id("rv-call")
    expect(again).to_have_attribute("data-state", "dialling")
    with sessions() as s:
        [job] = store.jobs_of_order(s, number)
        due = [j for j in store.due(s, datetime.now(UTC)) if j.id == job]
    assert due and due[0].priority == 10
    screenshot(page, "contract-return-visit-call")


def test_logging_out_during_a_call_is_refused_aloud(page: Any, base_url: str) -> None:
    """Issue 14 §6: the ACD keeps an agent on a call logged in (409); the page used to swallow
    that and go to the login screen, leaving the call with nobody's desktop. Now it says so and
    stays. (No CTI here: the push and the ACD's refusal are Playwright's.)"""
    now = datetime.now(UTC).isoformat()
    on_call = {"agent_id": "A006", "seat": "seat06", "state": "on_call", "reason": None,
               "since": now, "call_id": "1790000000.9"}
    page.route_web_socket(re.compile(r".*/ws$"), lambda ws: ws.send(
        json.dumps({"type": "agent_state", "data": on_call})))
    page.route(re.compile(r".*/api/agents/A006/logout$"), lambda route: route.fulfill(
        status=409, content_type="application/json",
        body=json.dumps({"detail": "refused by the ACD: Logout not allowed while on_call"})))
    # the page also reads its state over REST (on load and on connect): the ACD's, on the call
    me = {**on_call, "name": "坐席六", "role": "agent", "skills": {"general": 3},
          "active": True, "wrap_up_s": 15.0}
    page.route(re.compile(r".*/api/agents/A006$"), lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(me)))
    login(page, base_url, "A006", seat="seat06")
    page.wait_for_url("**/agent.html")
    expect(page.get_by_test_id("agent-state")).to_have_attribute("data-state", "on_call")
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("toast-error")).to_contain_text("通话中不能签出")
    expect(page).to_have_url(re.compile(r".*/agent\.html$"))


def test_a_forced_logout_says_so_at_once(page: Any, base_url: str) -> None:
    """Issue 14 §6: a supervisor signs the agent out (the ACD's state: logged out, reason
    supervisor, pushed to the desktop); the page goes to the login screen at once and says a
    supervisor did it, not that the session expired."""
    forced = {"agent_id": "A007", "seat": None, "state": "logged_out", "reason": "supervisor",
              "since": datetime.now(UTC).isoformat(), "call_id": None}
    sockets: list[Any] = []
    page.route_web_socket(re.compile(r".*/ws$"), lambda ws: sockets.append(ws))
    login(page, base_url, "A007", seat="seat07")
    page.wait_for_url("**/agent.html")
    expect(page.get_by_test_id("conn")).to_have_attribute("data-online", "1")
    sockets[-1].send(json.dumps({"type": "agent_state", "data": forced}))
    page.wait_for_url("**/index.html?reason=forced")
    expect(page.get_by_test_id("login-error")).to_have_text("班长已将您签出，如需继续请重新签入")


def test_a_finished_call_becomes_a_closed_card_and_the_next_ring_a_clean_one(
        page: Any, base_url: str, db: tuple[Any, Any]) -> None:
    """Issue 14 §6: the previous caller's pop and 一键建单 stayed live after the call, and the
    next call still showed 工单已受理 with the previous order's number (an order could go to
    the wrong customer). Now the card closes when the agent is done with the call (ready
    after wrap-up, or a missed ring), and the next ring starts a clean one."""
    _settings, sessions = db
    now = datetime.now(UTC)
    with sessions() as s:
        demos = {d["purpose"]: d for d in demo_accounts(s, now)}
        first = screen_pop(s, call_id="1790000001.1", caller_number=demos["outage_fault"][
            "phone"], account_no=demos["outage_fault"]["account_no"], now=now)
        second = screen_pop(s, call_id="1790000002.1", caller_number="13700000002",
                            account_no=None, now=now)
    for pop in (first, second):
        pop.update(seat="seat08", skill="general", attempt=1)

    def state(st: str, call: str | None) -> str:
        return json.dumps({"type": "agent_state", "data": {
            "agent_id": "A008", "seat": "seat08", "state": st, "reason": None,
            "since": datetime.now(UTC).isoformat(), "call_id": call}})

    sockets: list[Any] = []
    page.route_web_socket(re.compile(r".*/ws$"), lambda ws: sockets.append(ws))
    login(page, base_url, "A008", seat="seat08")
    page.wait_for_url("**/agent.html")
    expect(page.get_by_test_id("conn")).to_have_attribute("data-online", "1")
    ws = sockets[-1]
    ws.send(state("reserved", first["call_id"]))
    ws.send(json.dumps({"type": "pop", "data": first}))
    ws.send(state("on_call", first["call_id"]))
    expect(page.get_by_test_id("pop-caller")).to_have_text(first["caller_number"])
    page.get_by_test_id("wo-open").click()
    page.get_by_test_id("wo-submit").click()
    expect(page.get_by_test_id("wo-created-number")).to_have_text(re.compile(r"^\d{11}$"))
    # the call ends: wrap-up still belongs to it (an order may still be written for it)
    ws.send(state("wrap_up", first["call_id"]))
    expect(page.get_by_test_id("wo-open")).to_be_enabled()
    expect(page.get_by_test_id("pop-closed")).to_have_count(0)
    # ready again: the card is closed, 一键建单 is off, the order's note is gone
    ws.send(state("ready", None))
    expect(page.get_by_test_id("pop-closed")).to_have_text("通话已结束")
    expect(page.get_by_test_id("wo-open")).to_be_disabled()
    expect(page.get_by_test_id("wo-created")).to_be_hidden()
    # the next ring: a clean card for the next caller
    ws.send(state("reserved", second["call_id"]))
    ws.send(json.dumps({"type": "pop", "data": second}))
    expect(page.get_by_test_id("pop-caller")).to_have_text("13700000002")
    expect(page.get_by_test_id("pop-closed")).to_have_count(0)
    expect(page.get_by_test_id("wo-open")).to_be_enabled()
    expect(page.get_by_test_id("wo-created-number")).to_have_count(0)
    # a missed ring (back to not ready: rona) closes that card too
    ws.send(state("not_ready", None))
    expect(page.get_by_test_id("pop-closed")).to_be_visible()
    expect(page.get_by_test_id("wo-open")).to_be_disabled()


def test_server_errors_read_in_the_pages_language(page: Any, base_url: str) -> None:
    """Issue 14 §6: the server's English errors were shown as they are in the Mandarin UI.
    The ones agents meet read in Mandarin; any other says what kind of failure it is in
    Mandarin, with the server's words after it; English shows English."""
    login(page, base_url, "A009", seat="seat09")
    page.wait_for_url("**/agent.html")
    text = """async ([status, detail]) => {
        const m = await import('/api.js');
        return m.errorText(new m.ApiError(status, detail));
    }"""
    assert page.evaluate(text, [409, "agent A002 is not ready"]) == "坐席 A002 当前不空闲"
    assert page.evaluate(text, [409, "no agent A077 is logged in"]) == "坐席 A077 未签入"
    assert page.evaluate(text, [409, "refused by the ACD: Logout not allowed while on_call"]
                         ) == "通话中不能执行此操作"
    assert page.evaluate(text, [409, "something new"]) == "当前状态不允许此操作（something new）"
    assert page.evaluate(text, [502, "bad gateway"]) == "服务器错误（bad gateway）"
    page.get_by_test_id("lang-toggle").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert page.evaluate(text, [409, "agent A002 is not ready"]) == "Agent A002 is not ready"
    assert page.evaluate(text, [409, "something new"]) == "The action failed: something new"


def test_an_open_order_is_urged_from_the_pop(page: Any, base_url: str,
                                             db: tuple[Any, Any]) -> None:
    """Issue 14 §6: the caller asks after an open order; the agent urges it from the pop (催办)
    and the order counts it."""
    from hotline.wiring import build_services
    from workorders.lifecycle import Role
    from workorders.service import Actor, NewOrder

    settings, sessions = db
    svc = build_services(settings, sessions).workorders
    caller = "13700000010"
    number = svc.create(NewOrder(type="fault_repair", description="家中无电",
                                 caller_number=caller), Actor("A010", Role.AGENT))["number"]
    with sessions() as s:
        pop = screen_pop(s, call_id="1790000010.1", caller_number=caller, account_no=None,
                         now=datetime.now(UTC))
    pop.update(seat="seat10", skill="general", attempt=1)
    assert [o["number"] for o in pop["work_orders"]] == [number]
    on_call = {"agent_id": "A010", "seat": "seat10", "state": "on_call", "reason": None,
               "since": datetime.now(UTC).isoformat(), "call_id": pop["call_id"]}

    def push(ws: Any) -> None:
        ws.send(json.dumps({"type": "agent_state", "data": on_call}))
        ws.send(json.dumps({"type": "pop", "data": pop}))

    page.route_web_socket(re.compile(r".*/ws$"), push)
    login(page, base_url, "A010", seat="seat10")
    page.wait_for_url("**/agent.html")
    row = page.get_by_test_id("pop-work-order").filter(has_text=number)
    row.get_by_test_id("pop-wo-urge").click()
    expect(row.get_by_test_id("pop-wo-urge")).to_have_text("已催办 ×1")
    assert svc.get(number)["urge_count"] == 1


def test_a_ringing_seat_flashes_the_tab(page: Any, base_url: str) -> None:
    """Issue 14 §6: while the seat rings the page says so beyond its badge: the tab's title
    flashes 【来电】 (and a tone plays, and a notification shows where allowed); answering
    stops it."""
    def state(st: str) -> str:
        return json.dumps({"type": "agent_state", "data": {
            "agent_id": "A011", "seat": "seat11", "state": st, "reason": None,
            "since": datetime.now(UTC).isoformat(), "call_id": "1790000011.1"}})

    sockets: list[Any] = []
    page.route_web_socket(re.compile(r".*/ws$"), lambda ws: sockets.append(ws))
    login(page, base_url, "A011", seat="seat11")
    page.wait_for_url("**/agent.html")
    expect(page.get_by_test_id("conn")).to_have_attribute("data-online", "1")
    title = page.title()
    sockets[-1].send(state("reserved"))
    expect(page.locator("body")).to_have_attribute("data-ringing", "1")
    expect(page).to_have_title(re.compile(r"^【来电】"))
    sockets[-1].send(state("on_call"))
    expect(page.locator("body")).to_have_attribute("data-ringing", "0")
    expect(page).to_have_title(title)


def test_the_key_pad_sends_keys_during_a_call(page: Any, base_url: str) -> None:
    """Issue 14 §6: a key pad for a party that is an IVR; its keys are live only on a call and
    each goes to the call's far end (no CTI here: the server's answer is Playwright's)."""
    sent: list[Any] = []

    def answer(route: Any) -> None:
        sent.append(json.loads(route.request.post_data or "{}"))
        route.fulfill(status=200, content_type="application/json",
                      body=json.dumps({"call_id": "1790000012.1", "ok": True}))

    page.route(re.compile(r".*/api/calls/1790000012\.1/dtmf$"), answer)
    sockets: list[Any] = []
    page.route_web_socket(re.compile(r".*/ws$"), lambda ws: sockets.append(ws))
    login(page, base_url, "A012", seat="seat12")
    page.wait_for_url("**/agent.html")
    page.get_by_test_id("dtmf-pad").locator("summary").click()
    key = page.locator('[data-testid="dtmf-key"][data-key="5"]')
    expect(key).to_be_disabled()
    expect(page.get_by_test_id("conn")).to_have_attribute("data-online", "1")
    sockets[-1].send(json.dumps({"type": "agent_state", "data": {
        "agent_id": "A012", "seat": "seat12", "state": "on_call", "reason": None,
        "since": datetime.now(UTC).isoformat(), "call_id": "1790000012.1"}}))
    expect(key).to_be_enabled()
    key.click()
    page.locator('[data-testid="dtmf-key"][data-key="#"]').click()
    expect(key).to_be_enabled()
    page.wait_for_function("() => document.querySelectorAll('#dtmf-keys button:disabled')"
                           ".length === 0")
    assert sent == [{"digits": "5"}, {"digits": "#"}]
