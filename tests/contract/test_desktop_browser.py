"""The browser UI against the real web app (create_app) on a seeded SQLite database, without
Asterisk: login in Mandarin, switch to English, the supervisor's wallboard, and an agent whom the
server refuses the supervisor console. Real headless chromium (Debian's) under Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from agent_desktop.app import create_app
from agent_desktop.context import WebContext
from cti.db.migrate import upgrade
from cti.db.seed import seed_demo
from cti.db.session import make_engine, make_session_factory
from cti.settings import load_settings
from tests.support.browser import VIEWPORT, browser, screenshot, serve
from tests.support.settings import write_test_settings

PASSWORD = "95598"  # the demo staff's password (cti/db/seed.py)
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("desktop-browser")
    path = write_test_settings(state / "hotline.toml", {"paths": {"state_dir": str(state)}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    settings = load_settings(path, env)
    url = f"sqlite:///{state / 'web.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        seed_demo(s, now=datetime.now(UTC), n_accounts=200)
    app = create_app(WebContext(settings=settings, sessions=sessions))
    with serve(app) as base:
        yield base
    engine.dispose()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as b:
        yield b


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    ctx = chromium.new_context(viewport=VIEWPORT, locale="zh-CN")
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    ctx.close()


def _login(page: Any, base_url: str, user: str, seat: str | None = None) -> None:
    page.goto(f"{base_url}/")
    page.get_by_test_id("login-user").fill(user)
    page.get_by_test_id("login-password").fill(PASSWORD)
    if seat:
        page.get_by_test_id("login-seat").fill(seat)
    page.get_by_test_id("login-submit").click()


def test_login_page_in_mandarin_then_english_and_the_choice_is_kept(page: Any,
                                                                    base_url: str) -> None:
    page.goto(f"{base_url}/")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.get_by_test_id("login-submit").inner_text() == "签入"
    assert page.locator("h1").inner_text() == "坐席签入"
    # a wrong password is refused by the server, and said in Mandarin
    page.get_by_test_id("login-user").fill("S01")
    page.get_by_test_id("login-password").fill("wrong")
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("login-error").filter(has_text="工号或密码错误").wait_for()
    page.get_by_test_id("lang-toggle").click()
    assert page.locator("h1").inner_text() == "Agent login"
    assert page.locator("html").get_attribute("lang") == "en"
    page.reload()
    assert page.get_by_test_id("login-submit").inner_text() == "Log in"


def test_supervisor_sees_the_wallboard_in_english(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/")
    page.get_by_test_id("lang-toggle").click()
    _login(page, base_url, "S01")
    page.wait_for_url("**/supervisor.html")
    wb = page.get_by_test_id("wallboard")
    wb.wait_for()
    assert "Wallboard" in page.locator("#wb-h").inner_text()
    # the figures come from GET /api/wallboard (nothing has called yet: zero waiting)
    page.wait_for_function(
        "document.getElementById('main').dataset.updated !== undefined")
    assert page.get_by_test_id("wb-waiting").inner_text() == "0"
    assert page.get_by_test_id("access-denied").is_hidden()
    screenshot(page, "contract-supervisor-wallboard-en")
    # big-screen mode: the wallboard alone, big figures
    page.goto(f"{base_url}/supervisor.html?big=1")
    page.wait_for_function("document.body.classList.contains('big')")
    page.get_by_test_id("wallboard").wait_for()
    assert page.get_by_test_id("live-calls-panel").is_hidden()
    size = page.get_by_test_id("wb-waiting").evaluate(
        "el => parseFloat(getComputedStyle(el).fontSize)")
    assert size >= 64, size
    screenshot(page, "contract-wallboard-big-screen")


def test_agent_is_refused_the_supervisor_console_by_the_server(page: Any,
                                                               base_url: str) -> None:
    _login(page, base_url, "A001", seat="seat01")
    page.wait_for_url("**/agent.html")
    page.get_by_test_id("agent-state").wait_for()
    assert "A001" in page.get_by_test_id("who").inner_text()
    # the server itself says no, whatever the page shows
    for path in ("/api/wallboard", "/api/recordings", "/api/workorders/at-risk"):
        r = page.request.get(f"{base_url}{path}")
        assert r.status == 403, (path, r.status, r.text())
    page.goto(f"{base_url}/supervisor.html")
    denied = page.get_by_test_id("access-denied")
    denied.wait_for()
    assert "无权访问" in denied.inner_text()
    assert page.get_by_test_id("wallboard").is_hidden()

