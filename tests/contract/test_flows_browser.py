"""IVR flows in the browser (issue 15 §2), over a seeded city and a copy of the shipped flows: an
admin opens main.yaml, makes a bad edit that is refused at its line (marked in the gutter), a
good one whose diff shows the change, publishes it (written to the folder, kept as a version),
previews the prompts, and rolls back in one click. A supervisor is shown the page is not
theirs. Screenshots in tests/screenshots/ (tests.support.browser)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from config.settings import load_settings
from cti.db.session import make_engine, make_session_factory
from tests.support.browser import edit_text, login, screenshot
from tests.support.seeded_db import SeededDb
from tests.support.settings import REPO, write_test_settings

WELCOME = "prompt: [ivr.welcome]"


@pytest.fixture(scope="module")
def db(seeded_db: SeededDb, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[tuple[Any, Any]]:
    """The conftest's seeded city, its flows folder a copy this module's admin edits."""
    state = tmp_path_factory.mktemp("flows-browser")
    shutil.copytree(REPO / "ivr" / "flows", state / "flows")
    path = write_test_settings(state / "hotline.toml", {
        "paths": {"state_dir": str(state)}, "ivr": {"flows_dir": str(state / "flows")},
        "prompts": {"catalog_dir": str(REPO / "prompts" / "catalog"),
                    "cache_dir": str(REPO / "prompts" / "cache")}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    settings = load_settings(path, env)
    engine = make_engine(seeded_db(state, now=datetime.now(UTC), n_accounts=200))
    yield settings, make_session_factory(engine)
    engine.dispose()


def _line_of(text: str, needle: str) -> int:
    return text[:text.index(needle)].count("\n") + 1


def _set_text(page: Any, text: str) -> None:
    edit_text(page, "flow-text", text)


def test_an_admin_edits_validates_publishes_and_rolls_back_a_flow(
        page: Any, base_url: str, db: tuple[Any, Any]) -> None:
    settings, _sessions = db
    path: Path = settings.ivr.flows_dir / "main.yaml"
    original = path.read_text(encoding="utf-8")
    login(page, base_url, "admin")
    expect(page).to_have_url(re.compile(r"supervisor\.html$"))
    page.goto(f"{base_url}/admin.html")
    page.get_by_test_id("nav-flows").click()
    expect(page).to_have_url(re.compile(r"flows\.html$"))
    expect(page.get_by_test_id("editing")).to_have_text("main.yaml")
    expect(page.get_by_test_id("flow-text")).to_have_value(original)
    expect(page.get_by_test_id("gutter-line-1")).to_have_text("1")

    # a bad edit: a node that does not exist, refused at its line, marked in the gutter
    line = _line_of(original, "next: bill_lookup\n")
    _set_text(page, original.replace("next: bill_lookup\n", "next: bill_lookupp\n", 1))
    page.get_by_test_id("validate").click()
    expect(page.get_by_test_id("validate-result")).to_have_text("校验未通过：1 处错误")
    expect(page.get_by_test_id(f"flow-error-{line}")).to_contain_text(
        f"main.yaml:{line}: ")
    expect(page.get_by_test_id(f"flow-error-{line}")).to_contain_text("bill_lookupp")
    expect(page.get_by_test_id(f"gutter-line-{line}")).to_have_class(re.compile(r"\bbad\b"))
    expect(page.get_by_test_id(f"gutter-line-{line + 1}")).not_to_have_class(
        re.compile(r"\bbad\b"))
    page.get_by_test_id(f"flow-error-{line}").get_by_role("button").click()
    screenshot(page, "flows-bad-edit-at-its-line")
    page.get_by_test_id("publish").click()  # publish validates first: nothing is written
    expect(page.get_by_test_id("validate-result")).to_have_text("校验未通过：1 处错误")
    assert path.read_text(encoding="utf-8") == original

    # a good edit: the welcome plays another prompt; its diff; published
    edited = original.replace(WELCOME, "prompt: [ivr.outage_apology]", 1)
    _set_text(page, edited)
    page.get_by_test_id("validate").click()
    expect(page.get_by_test_id("validate-result")).to_have_text("校验通过")
    expect(page.get_by_test_id("flow-errors")).to_be_empty()
    page.get_by_test_id("show-diff").click()
    diff = page.get_by_test_id("diff-view")
    expect(diff).to_contain_text("-    prompt: [ivr.welcome]")
    expect(diff).to_contain_text("+    prompt: [ivr.outage_apology]")
    expect(diff.locator("span.add")).to_have_count(1)
    screenshot(page, "flows-diff-before-publish")
    page.get_by_test_id("publish").click()
    expect(page.get_by_test_id("validate-result")).to_have_text(
        re.compile(r"^已发布为版本 \d+，新来电即按新流程$"))
    expect(page.get_by_test_id("version-table").locator("tbody tr")).to_have_count(2)
    rows = page.get_by_test_id("version-table").locator("tbody tr")
    expect(rows.nth(0)).to_contain_text("发布")
    expect(rows.nth(0)).to_contain_text("admin")
    expect(rows.nth(0)).to_contain_text("线上")
    expect(rows.nth(1)).to_contain_text("磁盘原有")
    expect(page.get_by_test_id("flow-text")).to_have_value(edited)
    assert path.read_text(encoding="utf-8") == edited
    # the preview plays the live flow's prompts, the welcome node's now the apology
    expect(page.get_by_test_id("audio-welcome-ivr.outage_apology")).to_have_attribute(
        "src", "/api/admin/prompts/ivr.outage_apology/zh")
    screenshot(page, "flows-published-with-history")

    # rollback in one click (confirmed) to the text found on disk
    page.once("dialog", lambda d: d.accept())
    rows.nth(1).get_by_role("button").click()
    expect(page.get_by_test_id("validate-result")).to_have_text(
        re.compile(r"^已回滚：版本 \d+ 的内容已作为新版本 \d+ 发布$"))
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("回滚（自版本")
    expect(page.get_by_test_id("flow-text")).to_have_value(original)
    expect(page.get_by_test_id("audio-welcome-ivr.welcome")).to_be_attached()
    assert path.read_text(encoding="utf-8") == original

    # in English: the labels, and the preview's audio in English
    page.get_by_test_id("lang-toggle").click()
    expect(page.get_by_test_id("publish")).to_have_text("Publish")
    expect(page.get_by_test_id("audio-welcome-ivr.welcome")).to_have_attribute(
        "src", "/api/admin/prompts/ivr.welcome/en")
    screenshot(page, "flows-rolled-back-english")


def test_a_supervisor_is_told_the_flows_page_is_not_theirs(page: Any, base_url: str) -> None:
    login(page, base_url, "S01")
    expect(page).to_have_url(re.compile(r"supervisor\.html$"))
    page.goto(f"{base_url}/flows.html")
    expect(page.get_by_test_id("access-denied")).to_contain_text("仅限系统管理员")
    expect(page.get_by_test_id("flow-editor-panel")).to_be_hidden()
