"""The supervisors' wallboard in the browser (issue 15 §5) over a seeded city of its own: one
service-level definition on every tile, row and line (the workload reports', REPORTS.md), the
amber and red thresholds the server judges, today's trend line, and `?big=1` on a 1920x1080
screen without scrolling, with every agent logged in."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from cti.db.agents import open_session, record_state
from cti.db.models import Agent, Call
from tests.support.browser import login, screenshot

# db, base_url, chromium and page: tests/contract/conftest.py (this module's own database)

CALLS = [  # (waited s, answered?, talked s): today's calls of the general skill
    (5, True, 60), (8, True, 60), (12, True, 60), (19, True, 60),  # answered within 20 s
    (40, True, 60),  # answered after 20 s
    (45, False, 0),  # abandoned after 20 s
    (5, False, 0),  # a short abandon: apart, in neither offered nor abandoned
]


def _add_todays_calls(sessions: Any) -> None:
    """CALLS, each ending a second before now (in today's local day however close to midnight)
    with the waits and talks above."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.astimezone(ZoneInfo("Asia/Shanghai")).date(),
                                datetime.min.time(), ZoneInfo("Asia/Shanghai"))
    end = max(now - timedelta(seconds=1), midnight.astimezone(UTC) + timedelta(milliseconds=1))
    with sessions.begin() as s:
        for i, (waited, answered, talked) in enumerate(CALLS):
            queued = end - timedelta(seconds=waited + talked)
            s.add(Call(call_id=f"wb{i}", uniqueid=f"wb{i}", caller_number="13800000000",
                       dnis="95598", started_at=queued - timedelta(seconds=20),
                       queued_at=queued, skill="general", ivr_path=[],
                       answered_at=queued + timedelta(seconds=waited) if answered else None,
                       agent_id="A001" if answered else None, ended_at=end,
                       outcome="transfer" if answered else "abandoned"))


def test_the_wallboard_shows_one_service_level_its_thresholds_and_todays_trend(
        page: Any, base_url: str, db: tuple[Any, Any]) -> None:
    _add_todays_calls(db[1])
    page.goto(f"{base_url}/")
    page.get_by_test_id("lang-toggle").click()
    login(page, base_url, "S01")
    page.wait_for_url("**/supervisor.html")
    # the center: 6 offered (the short abandon apart), 5 answered, 1 abandoned; 4 of 5 + 1
    # answered within 20 s: 66.7 %, below the red 80 %; abandon rate 1 of 6, above the red 10 %
    expect(page.get_by_test_id("wb-offered")).to_have_text("6")
    expect(page.get_by_test_id("wb-answered")).to_have_text("5")
    expect(page.get_by_test_id("wb-abandoned")).to_have_text("1")
    expect(page.get_by_test_id("wb-service-level")).to_have_text("66.7%")
    expect(page.get_by_test_id("wb-abandon-rate")).to_have_text("16.7%")
    expect(page.get_by_test_id("wb-tile-service_level")).to_have_attribute("data-level", "red")
    expect(page.get_by_test_id("wb-tile-service_level")).to_have_class(re.compile(r"\blvl-red\b"))
    expect(page.get_by_test_id("wb-tile-abandon_rate")).to_have_attribute("data-level", "red")
    # nobody is waiting: the longest wait is fine; nobody is logged in: no agent available
    expect(page.get_by_test_id("wb-tile-longest_wait")).to_have_attribute("data-level", "ok")
    expect(page.get_by_test_id("wb-tile-agents_ready")).to_have_attribute("data-level", "red")
    # the skill's row says what the tiles say: the same definition
    row = page.locator("[data-testid=wb-queue][data-skill=general]")
    expect(row.get_by_test_id("wb-skill-offered")).to_have_text("6")
    expect(row.get_by_test_id("wb-skill-abandoned")).to_have_text("1")
    expect(row.get_by_test_id("wb-skill-sl")).to_have_text("66.7%")
    # the trend of the day: a line per figure, every 15 minutes since midnight, summing to
    # the tiles
    line = page.get_by_test_id("wb-trend-offered")
    expect(line).to_have_attribute("data-values", re.compile(r"\d"))
    assert sum(int(v) for v in line.get_attribute("data-values").split(",")) == 6
    abandoned = page.get_by_test_id("wb-trend-abandoned").get_attribute("data-values")
    assert sum(int(v) for v in abandoned.split(",")) == 1
    screenshot(page, "contract-wallboard-thresholds-trend")


def test_the_big_screen_fits_1920_by_1080_without_scrolling(
        chromium: Any, base_url: str, db: tuple[Any, Any]) -> None:
    sessions = db[1]
    now = datetime.now(UTC)
    with sessions.begin() as s:  # every agent logged in, ready: the longest agents list
        agents = sorted(s.query(Agent.agent_id).filter(Agent.role == "agent").all())
        for n, (agent_id,) in enumerate(agents[:50], start=1):
            open_session(s, agent_id=agent_id, seat=f"seat{n:02d}", now=now)
            record_state(s, agent_id=agent_id, state="ready", reason=None, call_id=None,
                         now=now, actor=agent_id)
    ctx = chromium.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    try:
        page = ctx.new_page()
        login(page, base_url, "S01")
        page.wait_for_url("**/supervisor.html")
        page.goto(f"{base_url}/supervisor.html?big=1")
        expect(page.locator("body")).to_have_class(re.compile(r"\bbig\b"))
        expect(page.get_by_test_id("wb-agent")).to_have_count(len(agents[:50]))
        expect(page.get_by_test_id("wb-tile-agents_ready")).to_have_attribute("data-level",
                                                                              "ok")
        expect(page.get_by_test_id("wb-trend")).to_be_visible()
        size = page.evaluate("() => [document.documentElement.scrollWidth,"
                             " document.documentElement.scrollHeight,"
                             " window.innerWidth, window.innerHeight]")
        assert size[0] <= size[2] and size[1] <= size[3], size
        screenshot(page, "contract-wallboard-big-1920x1080")
    finally:
        ctx.close()
