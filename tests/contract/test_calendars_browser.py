"""The skills' service hours in the browser (issue 15 §3) over a seeded city of its own: an admin
sets a skill's week and after-hours route, adds a holiday, sees a bad entry refused with the
server's reason at the form, and the change is what the API and the database then hold; a
supervisor sees the same calendars with no edit controls."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from playwright.sync_api import expect

from cti.db import calendars as store
from tests.support.browser import login, screenshot

# db, base_url, chromium and page: tests/contract/conftest.py (this module's own database)

SKILL = "english"
HOLIDAY = "2026-10-01"


@pytest.fixture(autouse=True)
def _no_english_calendar(db: tuple[Any, Any]) -> Iterator[None]:
    """The tests' skill starts and ends without a calendar (the demo's billing one is kept)."""
    _settings, sessions = db

    def drop() -> None:
        with sessions.begin() as s:
            if SKILL in store.calendars_of(s):
                store.remove_calendar(s, SKILL)

    drop()
    yield
    drop()


def _admin_on_calendars(page: Any, base_url: str) -> None:
    login(page, base_url, "admin")
    expect(page).to_have_url(re.compile(r"supervisor\.html$"))
    page.get_by_test_id("nav-calendars").click()
    expect(page).to_have_url(re.compile(r"calendars\.html$"))


def test_an_admin_sets_hours_adds_a_holiday_and_is_told_why_a_bad_entry_is_refused(
        page: Any, base_url: str, db: tuple[Any, Any]) -> None:
    _settings, sessions = db
    _admin_on_calendars(page, base_url)
    # the demo's billing calendar, as seeded: day time, routed to general at night
    expect(page.get_by_test_id("cal-billing-mon")).to_have_text("08:00-20:00")
    expect(page.get_by_test_id("cal-billing-after")).to_have_text("转接 综合")

    page.get_by_test_id("cal-skill").select_option(SKILL)
    expect(page.get_by_test_id("cal-remove")).to_be_hidden()  # no calendar yet: nothing to remove
    # a bad entry: the server's reason, at the form, and nothing is kept
    page.get_by_test_id("cal-hours-mon").fill("8-20")
    page.get_by_test_id("cal-after").select_option("route")
    page.get_by_test_id("cal-route-to").select_option("general")
    page.get_by_test_id("cal-save").click()
    expect(page.get_by_test_id("cal-error")).to_contain_text("mon: '8' is not a time")
    expect(page.get_by_test_id(f"cal-row-{SKILL}")).to_have_count(0)

    for day in ("mon", "tue", "wed", "thu", "fri"):
        page.get_by_test_id(f"cal-hours-{day}").fill("08:00-12:00,13:30-18:00")
    page.get_by_test_id("cal-hours-sat").fill("09:00-12:00")
    page.get_by_test_id("cal-save").click()
    expect(page.get_by_test_id(f"cal-{SKILL}-mon")).to_have_text("08:00-12:00,13:30-18:00")
    expect(page.get_by_test_id(f"cal-{SKILL}-sat")).to_have_text("09:00-12:00")
    expect(page.get_by_test_id(f"cal-{SKILL}-sun")).to_have_text("不服务")
    expect(page.get_by_test_id(f"cal-{SKILL}-after")).to_have_text("转接 综合")
    expect(page.get_by_test_id(f"cal-{SKILL}-updated")).to_contain_text("admin")
    expect(page.get_by_test_id("cal-error")).to_have_text("")

    # a holiday given hours is refused with the reason; as a holiday it is kept
    page.get_by_test_id("cal-day-date").fill(HOLIDAY)
    page.get_by_test_id("cal-day-kind").select_option("special")
    page.get_by_test_id("cal-day-note").fill("国庆节")
    page.get_by_test_id("cal-day-add").click()
    expect(page.get_by_test_id("cal-day-error")).to_contain_text("needs its hours")
    page.get_by_test_id("cal-day-kind").select_option("holiday")
    page.get_by_test_id("cal-day-note").fill("国庆节")
    page.get_by_test_id("cal-day-add").click()
    row = f"cal-day-{SKILL}-{HOLIDAY}"
    expect(page.get_by_test_id(f"{row}-kind")).to_have_text("节假日（全天不服务）")
    expect(page.get_by_test_id(f"{row}-note")).to_have_text("国庆节")
    expect(page.get_by_test_id("cal-day-error")).to_have_text("")
    screenshot(page, "admin-calendars")

    # read back: the API as the page reads it, and what the IVR reads at the next call
    doc = page.evaluate("fetch('/api/calendars').then((r) => r.json())")
    mine = next(c for c in doc if c["skill"] == SKILL)
    assert mine["week"] == {**{d: "08:00-12:00,13:30-18:00"
                               for d in ("mon", "tue", "wed", "thu", "fri")},
                            "sat": "09:00-12:00", "sun": "closed"}
    assert (mine["after_hours"], mine["route_to"], mine["updated_by"]) == (
        "route", "general", "admin")
    assert [(d["day"], d["kind"], d["note"]) for d in mine["days"]] == [
        (HOLIDAY, "holiday", "国庆节")]
    with sessions() as s:
        cal = store.calendars_of(s)[SKILL]
    assert (cal.after_hours, cal.route_to) == ("route", "general")
    assert cal.days[date.fromisoformat(HOLIDAY)].kind == "holiday"

    # English, then the holiday and the calendar go again
    page.get_by_test_id("lang-toggle").click()
    expect(page.get_by_test_id(f"{row}-kind")).to_have_text("Holiday (closed all day)")
    page.once("dialog", lambda d: d.accept())
    page.get_by_test_id(f"cal-day-remove-{SKILL}-{HOLIDAY}").click()
    expect(page.get_by_test_id(row)).to_have_count(0)
    page.get_by_test_id(f"cal-edit-{SKILL}").click()
    expect(page.get_by_test_id("cal-skill")).to_have_value(SKILL)
    expect(page.get_by_test_id("cal-hours-sat")).to_have_value("09:00-12:00")
    page.once("dialog", lambda d: d.accept())
    page.get_by_test_id("cal-remove").click()
    expect(page.get_by_test_id(f"cal-row-{SKILL}")).to_have_count(0)
    with sessions() as s:
        assert SKILL not in store.calendars_of(s)


def test_a_supervisor_reads_the_calendars_without_edit_controls(
        page: Any, base_url: str) -> None:
    login(page, base_url, "S01")
    expect(page).to_have_url(re.compile(r"supervisor\.html$"))
    page.get_by_test_id("nav-calendars").click()
    expect(page).to_have_url(re.compile(r"calendars\.html$"))
    expect(page.get_by_test_id("cal-billing-mon")).to_have_text("08:00-20:00")
    expect(page.get_by_test_id("cal-billing-after")).to_have_text("转接 综合")
    expect(page.get_by_test_id("cal-readonly")).to_be_visible()
    for control in ("cal-editor", "cal-form", "cal-day-form", "cal-save", "cal-edit-billing"):
        expect(page.get_by_test_id(control)).to_have_count(0)
    expect(page.locator("main button, main input, main select")).to_have_count(0)
    expect(page.get_by_test_id("nav-admin")).to_be_hidden()
    screenshot(page, "supervisor-calendars")


def test_an_agent_is_turned_away(page: Any, base_url: str) -> None:
    login(page, base_url, "A001", seat="seat01")
    expect(page).to_have_url(re.compile(r"agent\.html$"))
    page.goto(f"{base_url}/calendars.html")
    expect(page.get_by_test_id("access-denied")).to_contain_text("仅限班长和系统管理员")
    expect(page.get_by_test_id("cal-list")).to_be_hidden()
