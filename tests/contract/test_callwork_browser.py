"""The agent's work around a call (issue 14 §6), in the browser against the real web app on a
seeded SQLite city, without Asterisk: the wrap-up code and note (话后处理) saved on the call,
the caller's history beside the pop (earlier calls with their codes, work orders open or
closed), and "my calls today". The server's checks (only the call's agent or a supervisor
codes it; only known codes) are asserted through the page's own session."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select

from cti.db.models import Call
from cti.db.screen_pop import screen_pop
from tests.support.browser import login, screenshot

# db, base_url, chromium and page: tests/contract/conftest.py

CALLER = "13700000031"


def _call(call_id: str, agent: str, started: datetime, *, disposition: str | None = None,
          note: str | None = None) -> Call:
    return Call(call_id=call_id, uniqueid=call_id, caller_number=CALLER, dnis="95598",
                language="zh", started_at=started, queued_at=started + timedelta(seconds=20),
                answered_at=started + timedelta(seconds=30), ended_at=started + timedelta(
                    seconds=150), outcome="transfer", skill="general", agent_id=agent,
                seat="seat11", ivr_path=[], disposition=disposition, agent_note=note)


def test_a_call_is_coded_in_wrap_up_beside_the_callers_history(page: Any, base_url: str,
                                                               db: tuple[Any, Any]) -> None:
    from hotline.wiring import build_services
    from workorders.lifecycle import Department, Role
    from workorders.service import Actor, NewOrder

    settings, sessions = db
    now = datetime.now(UTC)
    svc = build_services(settings, sessions).workorders
    agent, crew = Actor("A005", Role.AGENT), Actor("crew", Role.DEPARTMENT, Department.REPAIR)
    # an earlier repair, resolved: the pop's open orders leave it out, the history has it
    closed = svc.create(NewOrder(type="fault_repair", description="表箱烧坏",
                                 caller_number=CALLER), agent)["number"]
    for to, who in (("dispatched", agent), ("department_accepted", crew), ("on_site", crew),
                    ("resolved", crew)):
        svc.transition(closed, to, who)
    earlier, current = "1790000031.1", "1790000032.1"
    with sessions.begin() as s:
        s.add(_call(earlier, "A005", now - timedelta(days=1), disposition="bill_query",
                    note="查询上月电费"))
        # today's in the browser's time zone (the machine's, UTC here) even just after midnight
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        s.add(_call(current, "A011", max(now - timedelta(minutes=3), midnight)))
    with sessions() as s:
        pop = screen_pop(s, call_id=current, caller_number=CALLER, account_no=None, now=now)
    pop.update(seat="seat11", skill="general", attempt=1)
    assert closed not in [o["number"] for o in pop["work_orders"]]
    wrap_up = {"agent_id": "A011", "seat": "seat11", "state": "wrap_up", "reason": None,
               "since": now.isoformat(), "call_id": current}

    def push(ws: Any) -> None:
        ws.send(json.dumps({"type": "agent_state", "data": wrap_up}))
        ws.send(json.dumps({"type": "pop", "data": pop}))

    page.route_web_socket(re.compile(r".*/ws$"), push)
    login(page, base_url, "A011", seat="seat11")
    page.wait_for_url("**/agent.html")
    expect(page.get_by_test_id("pop-caller")).to_have_text(CALLER)

    # the caller's history: the earlier call with its code and note, the closed order
    page.get_by_test_id("caller-history").locator("summary").click()
    row = page.get_by_test_id("history-call")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-call-id", earlier)
    expect(row.get_by_test_id("history-disposition")).to_have_text("电费电量查询")
    expect(row).to_contain_text("查询上月电费")
    order = page.get_by_test_id("history-order").filter(has_text=closed)
    expect(order).to_contain_text("处理完成")

    # today's calls: this one, not coded yet
    mine = page.locator(f'[data-testid="mycall"][data-call-id="{current}"]')
    expect(mine.get_by_test_id("mycall-disposition")).to_have_text("未分类")
    expect(page.get_by_test_id("mycalls-summary")).to_have_attribute("data-count", "1")

    # wrap-up: no code is refused on the page, then coded with a note
    form = page.get_by_test_id("disp-form")
    expect(form).to_have_attribute("data-call-id", current)
    page.get_by_test_id("disp-save").click()
    expect(page.get_by_test_id("disp-error")).to_have_text("请选择来电分类")
    page.get_by_test_id("disp-code").select_option("fault_repair")
    page.get_by_test_id("disp-note").fill("客户反映电压不稳，已建报修单\x07")
    page.get_by_test_id("disp-save").click()
    expect(page.get_by_test_id("disp-saved")).to_contain_text("已保存: 故障报修")
    expect(mine.get_by_test_id("mycall-disposition")).to_have_text("故障报修")
    with sessions() as s:
        row_ = s.scalars(select(Call).where(Call.call_id == current)).one()
        assert (row_.disposition, row_.agent_note, row_.disposed_by) == (
            "fault_repair", "客户反映电压不稳，已建报修单", "A011")
        assert row_.disposed_at is not None

    # the server's checks, with this agent's own session: another agent's call is refused,
    # an unknown code is a clear 422, and nothing changed
    other = page.request.put(f"{base_url}/api/calls/{earlier}/disposition",
                             data={"code": "complaint"})
    assert other.status == 403, other.text()
    bad = page.request.put(f"{base_url}/api/calls/{current}/disposition",
                           data={"code": "drop_table"})
    assert bad.status == 422 and "unknown wrap-up code" in bad.text(), bad.text()
    long = page.request.put(f"{base_url}/api/calls/{current}/disposition",
                            data={"code": "other", "note": "x" * 501})
    assert long.status == 422, long.text()
    with sessions() as s:
        codes = dict(s.execute(select(Call.call_id, Call.disposition)
                               .where(Call.call_id.in_([earlier, current]))).all())
    assert codes == {earlier: "bill_query", current: "fault_repair"}

    # English: the codes and the summary read in English
    page.get_by_test_id("lang-toggle").click()
    expect(page.get_by_test_id("disp-saved")).to_contain_text("Saved: Fault repair")
    expect(mine.get_by_test_id("mycall-disposition")).to_have_text("Fault repair")
    expect(page.get_by_test_id("mycalls-summary")).to_contain_text("1 answered")
    screenshot(page, "contract-wrap-up-history")
