"""The workload reports page (issue 15 §4) in real headless chromium against the real web app
on a seeded SQLite city: a supervisor opens it from the console, sees yesterday's figures per
skill in the table, a time series and bars drawn as SVG, switches to English, changes the
interval, and the export links give the same rows as CSV and XLSX; an agent is refused."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from playwright.sync_api import expect
from sqlalchemy import select

from cti.db import reports, workorder_reports
from cti.db.agents import record_call_answered, record_call_queued
from cti.db.calls import record_call_start
from cti.db.models import Call
from tests.support.browser import login, screenshot

SKILL = "reportx"  # a skill of this test's own: the seeded city's calls are under others


def _history(db: tuple[Any, Any]) -> str:
    """Yesterday (local): 3 calls of SKILL answered in 09:00 and 10:00, one abandoned after
    40 s; counted by the aggregators as the CTI's task would. Returns yesterday's date."""
    settings, sessions = db
    tz = ZoneInfo(settings.ivr.timezone)
    day = datetime.now(tz).date() - timedelta(days=1)
    base = datetime.combine(day, time(9, 0), tz).astimezone(UTC)
    with sessions.begin() as s:
        for i, (offset, answered) in enumerate([(0, 5), (600, 30), (3600, 10), (3700, None)]):
            cid = f"pbx1-1764500000.{i}"
            at = base + timedelta(seconds=offset)
            record_call_start(s, call_id=cid, uniqueid=cid, caller_number="13800000001",
                              dnis="95598", now=at)
            record_call_queued(s, cid, now=at, skill=SKILL)
            if answered is not None:
                record_call_answered(s, cid, agent_id="A001", seat="seat01",
                                     now=at + timedelta(seconds=answered))
            call = s.scalars(select(Call).where(Call.call_id == cid)).one()
            call.skill = SKILL
            call.ended_at = at + timedelta(seconds=(answered or 40) + (120 if answered else 0))
            call.outcome = "transfer" if answered is not None else "abandoned"
    now = datetime.now(UTC)
    reports.run_pending(sessions, now, tz=tz)
    workorder_reports.run_pending(sessions, now, tz=tz)
    return day.isoformat()


def test_the_supervisor_sees_the_workload_with_charts_and_exports(
        page: Any, base_url: str, db: tuple[Any, Any]) -> None:
    day = _history(db)
    login(page, base_url, "S01")
    page.wait_for_url("**/supervisor.html")
    page.get_by_test_id("nav-reports").click()
    expect(page).to_have_url(re.compile(r"reports\.html$"))
    expect(page.locator("#rp-h")).to_have_text("话务工作量")
    # today's report (the default) has loaded: the form shows its days
    expect(page.get_by_test_id("report-counted")).not_to_be_empty()
    page.get_by_test_id("report-from").fill(day)
    page.get_by_test_id("report-to").fill(day)
    page.get_by_test_id("report-by").select_option("skill")
    page.get_by_test_id("report-submit").click()
    row = page.locator(f'[data-testid="report-row"][data-key="{SKILL}"]')
    expect(row.get_by_test_id("cell-offered")).to_have_text("4")
    expect(row.get_by_test_id("cell-answered")).to_have_text("3")
    expect(row.get_by_test_id("cell-abandoned")).to_have_text("1")
    # answered within 20 s: 2 of 3 answered + 1 abandoned
    expect(row.get_by_test_id("cell-service_level")).to_have_text("50.0%")
    expect(page.locator(f'[data-testid="bar"][data-key="{SKILL}"]')).to_have_attribute(
        "data-value", "3")
    expect(page.get_by_test_id("series-answered")).to_have_attribute("data-points", "1")
    screenshot(page, "contract-workload-report-zh")

    page.get_by_test_id("lang-toggle").click()
    expect(page.locator("#rp-h")).to_have_text("Call workload")
    expect(page.get_by_test_id("report-table")).to_contain_text("Service level")

    # by the hour: two periods in the series (09:00 and 10:00), the bars per period
    page.get_by_test_id("report-interval").select_option("60")
    page.get_by_test_id("report-by").select_option("center")
    page.get_by_test_id("report-submit").click()
    expect(page.get_by_test_id("series-offered")).not_to_have_attribute("data-points", "1")
    expect(page.get_by_test_id("bar").first).to_be_visible()
    screenshot(page, "contract-workload-report-en")

    # the export links carry the form's choice; the files read back
    page.get_by_test_id("report-by").select_option("skill")
    page.get_by_test_id("report-interval").select_option("day")
    page.get_by_test_id("report-submit").click()
    expect(row.get_by_test_id("cell-answered")).to_have_text("3")
    csv_url = page.get_by_test_id("export-csv").get_attribute("href")
    xlsx_url = page.get_by_test_id("export-xlsx").get_attribute("href")
    assert csv_url and "by=skill" in csv_url and xlsx_url
    text = page.evaluate("(u) => fetch(u, {credentials: 'same-origin'}).then((r) => r.text())",
                         csv_url)
    back = [r for r in csv.DictReader(io.StringIO(text.lstrip("\ufeff"))) if r["key"] == SKILL]
    assert [(r["offered"], r["answered"]) for r in back] == [("4", "3")]
    data = page.evaluate(
        "(u) => fetch(u, {credentials: 'same-origin'}).then((r) => r.arrayBuffer())"
        ".then((b) => Array.from(new Uint8Array(b)))", xlsx_url)
    sheet = load_workbook(io.BytesIO(bytes(data))).active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    header = list(values[0])
    [mine] = [v for v in values[1:] if v[header.index("key")] == SKILL]
    assert mine[header.index("answered")] == 3
    expect(page.get_by_test_id("workorder-table")).to_be_visible()


def test_an_agent_is_refused_the_reports(page: Any, base_url: str) -> None:
    login(page, base_url, "A003", "seat03")
    page.wait_for_url("**/agent.html")
    page.goto(f"{base_url}/reports.html")
    expect(page.get_by_test_id("access-denied")).to_be_visible()
    status = page.evaluate(
        "fetch('/api/reports/workload', {credentials: 'same-origin'}).then((r) => r.status)")
    assert status == 403
