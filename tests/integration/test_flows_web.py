"""Issue 15 §2 on the real stack: an admin publishes a flow change in the browser's flows page
(the CTI, running as its own `hotline` user, writes the flows folder), the registry reloads it
as a file edit, and the next SIPp call follows it; a one-click rollback to the version found on
disk, and the call after follows the old flow again. The change is a key of the language menu
no other module's caller presses (7), so that their calls cannot trip over it while it is live;
the original file is restored in a finally. Waits are on the CTI's status and AMI events."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from hotline import stack
from prompts.index import PromptIndex
from tests.integration.callers import CallInProgress, is_event
from tests.integration.conftest import Backend, CtiProcess
from tests.support.ami import AmiRecorder
from tests.support.browser import VIEWPORT, browser, edit_text, login, screenshot
from tests.support.callview import CallView
from tests.support.sipp import Caller, Keys, Pause

pytestmark = pytest.mark.integration
MENU = 'options: {"1": lang_zh, "2": lang_en}'
PROBE = """  flows_web_probe:
    type: play
    prompt: [ivr.outage_apology]
    next: lang_zh

"""


def _wait_flows(cti: CtiProcess, pred: Callable[[dict[str, Any]], bool],
                timeout: float = 15) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def matched() -> bool:
        nonlocal last
        last = cti.status().get("flows") or {}
        return bool(last) and pred(last)

    try:
        stack.wait_until(matched, timeout, "the flow status")
    except stack.StackError:
        raise AssertionError(f"flow status never matched; last was {last}") from None
    return last


@pytest.fixture
def admin(web: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web, timeout=10) as c:
        r = c.post("/api/auth/login", json={"user_id": "admin", "password": "95598"})
        assert r.status_code == 200, r.text
        yield c


def _call_pressing_7(cti: CtiProcess, ami: AmiRecorder, number: str, index: PromptIndex,
                     workdir: Path) -> list[str]:
    """A caller who presses 7 through the welcome (type-ahead for the language menu), stays a
    few seconds and hangs up; the prompts the IVR offered them."""
    mark = ami.mark()
    call = CallInProgress(Caller(number, [Pause(1500), Keys("7")], hangup_after_ms=9_000),
                          cti.settings, workdir)
    ami.wait_for(is_event("Hangup", number), 40, "the caller's hangup", since=mark)
    assert call.finish().ok
    return CallView(ami.events()[mark:], number, index).offered_ids()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as b:
        yield b


def test_a_flow_published_in_the_browser_is_followed_by_the_next_call_and_rolled_back(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, prompt_index: PromptIndex,
        admin: httpx.Client, web: str, chromium: Any, tmp_path: Path) -> None:
    path = cti.settings.ivr.flows_dir / "main.yaml"
    original = path.read_text(encoding="utf-8")
    version = _wait_flows(cti, lambda f: f["last_reload_ok"])["version"]
    ctx = chromium.new_context(viewport=VIEWPORT, locale="zh-CN")
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    try:
        assert MENU in original and "  lang_zh:\n" in original
        edited = original.replace(MENU, MENU[:-1] + ', "7": flows_web_probe}', 1).replace(
            "  lang_zh:\n", PROBE + "  lang_zh:\n", 1)
        login(page, web, "admin")
        expect(page).to_have_url(re.compile(r"supervisor\.html$"))
        page.goto(f"{web}/flows.html")
        expect(page.get_by_test_id("flow-text")).to_have_value(original)
        expect(page.get_by_test_id("reload-status")).to_have_text(
            re.compile(rf"CTI 流程第 {version} 版"))
        edit_text(page, "flow-text", edited)
        page.get_by_test_id("validate").click()
        expect(page.get_by_test_id("validate-result")).to_have_text("校验通过")
        page.get_by_test_id("publish").click()
        expect(page.get_by_test_id("validate-result")).to_have_text(
            re.compile(r"^已发布为版本 \d+，新来电即按新流程$"))
        _wait_flows(cti, lambda f: f["last_reload_ok"] and f["version"] == version + 1)
        assert path.read_text(encoding="utf-8") == edited
        page.reload()
        expect(page.get_by_test_id("reload-status")).to_have_text(
            re.compile(rf"CTI 流程第 {version + 1} 版"))
        screenshot(page, f"flows-live-published-{backend.name}")

        offered = _call_pressing_7(cti, ami, f"{backend.prefix}9500001", prompt_index,
                                   tmp_path / "new")
        assert offered[:1] == ["ivr.welcome"], offered
        assert "ivr.outage_apology" in offered and "ivr.invalid" not in offered, offered

        # one click (confirmed) on the version found on disk before the publish
        page.once("dialog", lambda d: d.accept())
        page.get_by_test_id("version-table").locator("tbody tr").filter(
            has_text="磁盘原有").get_by_role("button").click()
        expect(page.get_by_test_id("validate-result")).to_have_text(
            re.compile(r"^已回滚：版本 \d+ 的内容已作为新版本 \d+ 发布$"))
        _wait_flows(cti, lambda f: f["last_reload_ok"] and f["version"] == version + 2)
        assert path.read_text(encoding="utf-8") == original
        screenshot(page, f"flows-live-rolled-back-{backend.name}")

        offered = _call_pressing_7(cti, ami, f"{backend.prefix}9500002", prompt_index,
                                   tmp_path / "old")
        # the old flow's language menu has no 7: the caller hears it is not a choice
        assert offered[:1] == ["ivr.welcome"], offered
        assert "ivr.invalid" in offered and "ivr.outage_apology" not in offered, offered
        versions = admin.get("/api/admin/flows/main.yaml/versions").json()
        assert [(v["source"], v["published_by"]) for v in versions] == [
            ("rollback", "admin"), ("publish", "admin"), ("disk", "admin")]
    finally:
        ctx.close()
        if path.read_text(encoding="utf-8") != original:
            path.write_text(original, encoding="utf-8")
            _wait_flows(cti, lambda f: f["last_reload_ok"] and f["version"] > version)
