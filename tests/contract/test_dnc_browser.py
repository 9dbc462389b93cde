"""The do-not-call list in the supervisor console (issue 14 §1), in real headless chromium
against the real web app on a seeded SQLite city: a supervisor adds a number in any spelling
(shown in national form with reason, who and when), is told clearly about a bad number and a
duplicate (Mandarin, then English), and removes it; the list the engine reads follows each
step; the CLI's additions are there too. An agent is refused the list by the server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from playwright.sync_api import expect

from cti.db import outbound as store
from tests.support.browser import login, screenshot

# db, base_url, chromium and page: tests/contract/conftest.py (one seeded city per module)


def _numbers(db: tuple[Any, Any]) -> list[str]:
    with db[1]() as s:
        return store.dnc_numbers(s)


def test_a_supervisor_keeps_the_do_not_call_list(page: Any, base_url: str,
                                                 db: tuple[Any, Any]) -> None:
    # one already on it, from the CLI
    with db[1].begin() as s:
        store.dnc_add(s, "13900139000", reason="客户投诉后要求", by="cli:root",
                      now=datetime.now(UTC))
    page.on("dialog", lambda d: d.accept())
    login(page, base_url, "S01")
    page.wait_for_url("**/supervisor.html")
    panel = page.get_by_test_id("dnc-panel")
    expect(panel.locator("#dnc-h")).to_have_text("免打扰名单")
    cli_row = panel.locator('[data-testid="dnc-row"][data-number="13900139000"]')
    expect(cli_row.get_by_test_id("dnc-added-by")).to_have_text("cli:root")

    panel.get_by_test_id("dnc-number-input").fill("+86 138-0013-8000")
    panel.get_by_test_id("dnc-reason-input").fill("客户要求不再来电")
    panel.get_by_test_id("dnc-add").click()
    row = panel.locator('[data-testid="dnc-row"][data-number="13800138000"]')
    expect(row.get_by_test_id("dnc-number")).to_have_text("13800138000")
    expect(row.get_by_test_id("dnc-reason")).to_have_text("客户要求不再来电")
    expect(row.get_by_test_id("dnc-added-by")).to_have_text("S01")
    expect(panel.get_by_test_id("dnc-number-input")).to_have_value("")
    assert _numbers(db) == ["13800138000", "13900139000"]
    screenshot(page, "contract-dnc-zh")

    # a bad number and a duplicate: said in the form, nothing added
    error = panel.get_by_test_id("dnc-error")
    panel.get_by_test_id("dnc-number-input").fill("call me")
    panel.get_by_test_id("dnc-reason-input").fill("x")
    panel.get_by_test_id("dnc-add").click()
    expect(error).to_have_text("不是有效的电话号码")
    panel.get_by_test_id("dnc-number-input").fill("0086 13800138000")
    panel.get_by_test_id("dnc-add").click()
    expect(error).to_have_text("13800138000 已在免打扰名单中")
    panel.get_by_test_id("dnc-number-input").fill("13700137000")
    panel.get_by_test_id("dnc-reason-input").fill("")
    panel.get_by_test_id("dnc-add").click()
    expect(error).to_have_text("请填写原因")
    expect(panel.get_by_test_id("dnc-row")).to_have_count(2)

    page.get_by_test_id("lang-toggle").click()
    expect(panel.locator("#dnc-h")).to_have_text("Do-not-call list")
    expect(row.get_by_test_id("dnc-remove")).to_have_text("Remove")
    panel.get_by_test_id("dnc-number-input").fill("138 0013 8000")
    panel.get_by_test_id("dnc-reason-input").fill("again")
    panel.get_by_test_id("dnc-add").click()
    expect(error).to_have_text("13800138000 is on the do-not-call list already")
    screenshot(page, "contract-dnc-en")

    row.get_by_test_id("dnc-remove").click()
    expect(row).to_have_count(0)
    expect(panel.get_by_test_id("dnc-row")).to_have_count(1)
    assert _numbers(db) == ["13900139000"]
    cli_row.get_by_test_id("dnc-remove").click()
    expect(panel.get_by_test_id("dnc-empty")).to_have_text("The list is empty")
    assert _numbers(db) == []


def test_an_agent_is_refused_the_list(page: Any, base_url: str) -> None:
    login(page, base_url, "A003", "seat03")
    page.wait_for_url("**/agent.html")
    status = page.evaluate(
        "fetch('/api/outbound/dnc', {credentials: 'same-origin'}).then((r) => r.status)")
    assert status == 403
