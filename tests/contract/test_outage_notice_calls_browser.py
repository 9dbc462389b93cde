"""The outage console's notice calls (issue 14 §4) in a real browser against the real web app
(create_app) on a seeded SQLite city, without Asterisk: a planned outage over an important
customer's area has its calls scheduled by the notice scheduler; one is then settled as the
outbound engine settles it (the job done, with the dialplan's result: heard to the end after
one repeat); the supervisor opens the outage's calls and sees every customer's call, its lead,
state and outcome, in Mandarin and in English. Every wait is an `expect` that retries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select

from callcenter.outage_notices import OutageNotices
from callcenter.outage_service import OutageService, Who
from cti.db import outbound as store
from cti.db.models import Account, AccountPhone, Customer
from cti.db.models_outbound import OutboundJob
from cti.db.outages import NoticeDraft
from outages.scope import Cause
from outbound.jobs import State
from tests.support.browser import login, screenshot

# db, base_url, chromium and page: tests/contract/conftest.py


def test_the_console_shows_a_planned_outages_notice_calls_and_their_outcomes(
        page: Any, base_url: str, db: tuple[Any, Any]) -> None:
    _settings, sessions = db
    now = datetime.now(UTC)
    with sessions() as s:
        area = s.scalar(select(Account.area_id).join(Customer)
                        .join(AccountPhone, AccountPhone.account_id == Account.id)
                        .where(Customer.important.is_(True)).order_by(Account.id))
    assert area is not None
    start = now + timedelta(days=2)
    oid = OutageService(sessions).publish(NoticeDraft(
        Cause.PLANNED, start, areas=frozenset({area}), schedule_end_at=start + timedelta(hours=9),
        agent_text="浏览器测试：计划检修外呼"), Who("S01", "supervisor"), now)
    assert OutageNotices(sessions, (7, 1)).sync(now)["created"] >= 2
    with sessions() as s:
        jobs = s.scalars(select(OutboundJob).where(OutboundJob.outage_id == oid)
                         .order_by(OutboundJob.id)).all()
        told = store.get(s, jobs[0].id)
        assert told is not None
        # as the engine writes an answered call and the dialplan's HotlineOutboundResult
        store.store(s, replace(told, state=State.DONE, attempts=1), now,
                    result={"Key": "none", "Heard": "1", "Repeats": "1"})
        s.commit()
        first_account = str(jobs[0].account_no)

    login(page, base_url, "S01")
    page.wait_for_url("**/supervisor.html")
    page.goto(f"{base_url}/outages.html")
    row = page.locator(f'[data-testid="notice-row"][data-id="{oid}"]')
    expect(row).to_have_attribute("data-cause", "planned")
    row.get_by_test_id("notice-calls-btn").click()
    panel = page.get_by_test_id("notice-calls-panel")
    expect(panel).to_be_visible()
    expect(page.get_by_test_id("notice-calls-title")).to_have_text(f"计划停电外呼通知 #{oid}")
    calls = panel.get_by_test_id("notice-call-row")
    expect(calls).to_have_count(len(jobs))
    done = panel.locator('[data-testid="notice-call-row"][data-state="done"]')
    expect(done).to_have_count(1)
    expect(done).to_have_attribute("data-account", first_account)
    expect(done).to_have_attribute("data-heard", "1")
    expect(done.get_by_test_id("notice-call-result")).to_have_text("已完整收听 · 重听1次")
    expect(done.get_by_test_id("notice-call-state")).to_have_text("已通知")
    waiting = panel.locator('[data-testid="notice-call-row"][data-state="scheduled"]')
    expect(waiting).to_have_count(len(jobs) - 1)
    expect(waiting.first.get_by_test_id("notice-call-state")).to_have_text("待外呼")
    screenshot(page, "contract-outage-notice-calls")

    page.get_by_test_id("lang-toggle").click()
    expect(page.get_by_test_id("notice-calls-title")).to_have_text(f"Outage notice calls #{oid}")
    expect(done.get_by_test_id("notice-call-result")).to_have_text(
        "heard to the end · 1 repeat(s)")
    expect(done.get_by_test_id("notice-call-state")).to_have_text("told")
