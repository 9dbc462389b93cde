"""The post-call survey's report in the supervisor console (issue 14 §3), in real headless
chromium against the real web app on a seeded SQLite city: today's figures per agent and per
skill as the console opens (Mandarin), the same in English, another range of days chosen in the
form, and a new survey counted after the push's call event (here: the periodic refresh's
stand-in, the form again). Survey rows are written as the CTI writes them (record_survey)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from cti.db.calls import record_call_start, record_survey
from tests.support.browser import login, screenshot

# db, base_url, chromium and page: tests/contract/conftest.py (one seeded city per module)


def _local_day(settings: Any, days_ago: int) -> tuple[date, datetime]:
    """A day of the center's calendar and a moment in it (10:00 local)."""
    tz = ZoneInfo(settings.ivr.timezone)
    day = datetime.now(tz).date() - timedelta(days=days_ago)
    return day, datetime.combine(day, time(10, 0), tz).astimezone(UTC)


def _surveys(db: tuple[Any, Any], rows: list[tuple[str, datetime, str | None, str,
                                                   int | None]]) -> None:
    _settings, sessions = db
    with sessions.begin() as s:
        for cid, at, agent, skill, score in rows:
            record_call_start(s, call_id=cid, uniqueid=cid, caller_number="13800000001",
                              dnis="95598", now=at)
            record_survey(s, cid, at=at, agent_id=agent, skill=skill, score=score)


def test_the_supervisor_sees_satisfaction_per_agent_and_per_skill(
        page: Any, base_url: str, db: tuple[Any, Any]) -> None:
    settings = db[0]
    today, at = _local_day(settings, 0)
    yesterday, before = _local_day(settings, 1)
    _surveys(db, [("pbx1-1764300000.1", at, "A001", "general", 5),
                  ("pbx1-1764300000.2", at, "A001", "general", 4),
                  ("pbx1-1764300000.3", at, "A002", "repair", None),
                  ("pbx1-1764300000.4", before, "A002", "repair", 1)])
    login(page, base_url, "S01")
    page.wait_for_url("**/supervisor.html")
    panel = page.get_by_test_id("survey-panel")
    expect(panel).to_be_visible()
    expect(page.locator("#sv-h")).to_have_text("满意度评价")
    # today (the default): A001 rated twice, 4.50; A002 asked once, no score
    a001 = page.locator('[data-testid="survey-agent"][data-agent="A001"]')
    expect(a001.get_by_test_id("survey-offered")).to_have_text("2")
    expect(a001.get_by_test_id("survey-answered")).to_have_text("2")
    expect(a001.get_by_test_id("survey-average")).to_have_text("4.50")
    a002 = page.locator('[data-testid="survey-agent"][data-agent="A002"]')
    expect(a002.get_by_test_id("survey-answered")).to_have_text("0")
    expect(a002.get_by_test_id("survey-average")).to_have_text("—")
    general = page.locator('[data-testid="survey-skill"][data-skill="general"]')
    expect(general).to_contain_text("综合")  # the skill's name in the console's language
    expect(general.get_by_test_id("survey-average")).to_have_text("4.50")
    total = page.get_by_test_id("survey-total")
    expect(total).to_have_attribute("data-offered", "3")
    expect(total).to_contain_text(f"{today.isoformat()} 至 {today.isoformat()}")
    screenshot(page, "contract-survey-report-zh")

    page.get_by_test_id("lang-toggle").click()
    expect(page.locator("#sv-h")).to_have_text("Caller satisfaction")
    expect(general).to_contain_text("General")
    expect(total).to_contain_text("3 asked, 2 rated, average 4.50")

    # yesterday and today: A002's 1 from yesterday counts too
    page.get_by_test_id("survey-from").fill(yesterday.isoformat())
    page.get_by_test_id("survey-to").fill(today.isoformat())
    page.get_by_test_id("survey-submit").click()
    expect(total).to_have_attribute("data-offered", "4")
    expect(a002.get_by_test_id("survey-average")).to_have_text("1.00")
    repair = page.locator('[data-testid="survey-skill"][data-skill="repair"]')
    expect(repair.get_by_test_id("survey-offered")).to_have_text("2")
    expect(repair).to_contain_text(re.compile(r"1★ 1"))

    # a caller rates a call now: counted at the next load
    _surveys(db, [("pbx1-1764300000.5", at, "A002", "repair", 3)])
    page.get_by_test_id("survey-submit").click()
    expect(total).to_have_attribute("data-offered", "5")
    expect(a002.get_by_test_id("survey-average")).to_have_text("2.00")
    screenshot(page, "contract-survey-report-en")


def test_an_agent_is_refused_the_report(page: Any, base_url: str) -> None:
    login(page, base_url, "A003", "seat03")
    page.wait_for_url("**/agent.html")
    status = page.evaluate(
        "fetch('/api/reports/surveys', {credentials: 'same-origin'}).then((r) => r.status)")
    assert status == 403
