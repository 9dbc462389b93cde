"""Voice messages left on return visits (回访留言, issue 14 §2) in the supervisor console, in
real headless chromium against the real web app on a seeded SQLite city: the latest messages
listed with their order and verdict (Mandarin, then English), one click plays a message in the
console's player, and the recordings search by the order shows it marked as a message."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from playwright.sync_api import expect

from tests.support.browser import login, screenshot
from tests.support.orders import fault_report, return_visit_message

# db, base_url, chromium and page: tests/contract/conftest.py (one seeded city per module)


def test_a_supervisor_plays_a_customers_message_from_its_order(
        page: Any, base_url: str, db: tuple[Any, Any]) -> None:
    now = datetime.now(UTC)
    with db[1].begin() as s:
        wo = fault_report(s, now, caller="13800138000", link=False)
        wo.satisfaction = "unsatisfied"
        order = wo.number
        rec = return_visit_message(s, now, order, "13800138000", seconds=12)
    login(page, base_url, "S01")
    page.wait_for_url("**/supervisor.html")
    row = page.locator(f'[data-testid="rvm-row"][data-number="{order}"]')
    expect(row).to_have_attribute("data-id", str(rec))
    expect(row.get_by_test_id("rvm-verdict")).to_have_text("不满意")
    expect(row).to_contain_text("00:12")
    row.get_by_test_id("rvm-play").click()
    expect(page.locator("#player")).to_have_attribute("data-id", str(rec))
    expect(page.get_by_test_id("rec-now")).to_contain_text(f"回访留言 {order}")
    screenshot(page, "contract-rv-message-zh")

    page.get_by_test_id("lang-toggle").click()
    expect(row.get_by_test_id("rvm-verdict")).to_have_text("Not satisfied")

    page.locator("#r-wo").fill(order)
    page.get_by_test_id("rec-search-submit").click()
    found = page.locator(f'[data-testid="recording"][data-id="{rec}"]')
    expect(found.get_by_test_id("rec-message")).to_have_text("message")
    expect(found).to_contain_text(order)
    screenshot(page, "contract-rv-message-en")
