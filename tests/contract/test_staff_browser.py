"""The admin console's staff and skills, and a department's orders, in the browser (issue 15
§1), over a seeded city: an admin adds a skill and an agent holding two skills, who signs in
with the temporary password and must choose their own first; an agent's skills are changed and
a user disabled; a repair crew's user works an order to resolved. Screenshots in
tests/screenshots/ (tests.support.browser)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from hotline.wiring import build_services
from tests.support.browser import login, screenshot
from workorders.lifecycle import Role
from workorders.service import Actor, NewOrder


def _sign_in(page: Any, base_url: str, user: str, password: str, seat: str | None = None) -> None:
    page.goto(f"{base_url}/")
    page.get_by_test_id("login-user").fill(user)
    page.get_by_test_id("login-password").fill(password)
    if seat:
        page.get_by_test_id("login-seat").fill(seat)
    page.get_by_test_id("login-submit").click()


def test_an_admin_adds_an_agent_with_two_skills_who_then_signs_in(page: Any, base_url: str
                                                                   ) -> None:
    login(page, base_url, "admin")
    expect(page).to_have_url(re.compile(r"supervisor\.html$"))
    page.get_by_test_id("nav-admin").click()
    expect(page).to_have_url(re.compile(r"admin\.html$"))
    expect(page.get_by_test_id("staff-A001")).to_be_visible()

    page.get_by_test_id("skill-name").fill("meter")
    page.get_by_test_id("skill-zh").fill("计量")
    page.get_by_test_id("skill-en").fill("metering")
    page.get_by_test_id("skill-submit").click()
    expect(page.get_by_test_id("skill-meter")).to_contain_text("计量")

    page.get_by_test_id("add-id").fill("A060")
    page.get_by_test_id("add-name").fill("李娜")
    page.get_by_test_id("add-role").select_option("agent")
    page.get_by_test_id("add-skill-general").check()
    page.get_by_test_id("add-level-general").fill("3")
    page.get_by_test_id("add-skill-meter").check()
    page.get_by_test_id("add-level-meter").fill("5")
    page.get_by_test_id("add-submit").click()
    expect(page.get_by_test_id("temp-password-box")).to_contain_text("A060")
    expect(page.get_by_test_id("temp-password")).to_have_text(re.compile(r"^\S{12}$"))
    temporary = page.get_by_test_id("temp-password").text_content()
    expect(page.get_by_test_id("skills-of-A060")).to_have_text("综合 3，计量 5")
    expect(page.get_by_test_id("status-of-A060")).to_contain_text("待改密码")
    screenshot(page, "admin-staff-added")

    # a bad add is refused with the server's reason, and nothing is added
    page.get_by_test_id("add-id").fill("A001")
    page.get_by_test_id("add-name").fill("重复")
    page.get_by_test_id("add-submit").click()
    expect(page.get_by_test_id("add-error")).to_contain_text("already exists")

    # the new agent signs in with the temporary password and must choose their own
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("login-form")).to_be_visible()
    _sign_in(page, base_url, "A060", temporary or "", seat="seat30")
    expect(page.get_by_test_id("password-form")).to_be_visible()
    page.get_by_test_id("password-new").fill("Li-Na-2026!")
    page.get_by_test_id("password-again").fill("Li-Na-2026?")
    page.get_by_test_id("password-submit").click()
    expect(page.get_by_test_id("password-error")).to_have_text(
        re.compile("两次输入的密码不一致"))
    page.get_by_test_id("password-again").fill("Li-Na-2026!")
    screenshot(page, "agent-choose-password")
    page.get_by_test_id("password-submit").click()
    expect(page).to_have_url(re.compile(r"agent\.html$"))
    expect(page.get_by_test_id("who")).to_contain_text("A060")


def test_an_admin_changes_skills_disables_and_resets(page: Any, base_url: str) -> None:
    login(page, base_url, "admin")
    expect(page).to_have_url(re.compile(r"supervisor\.html$"))  # signed in: the cookie is set
    page.goto(f"{base_url}/admin.html")
    page.get_by_test_id("edit-skills-A002").click()
    editor = page.get_by_test_id("skills-editor-A002")
    expect(editor).to_be_visible()
    page.get_by_test_id("edit-A002-skill-english").check()
    page.get_by_test_id("edit-A002-level-english").fill("4")
    page.get_by_test_id("save-skills-A002").click()
    expect(page.get_by_test_id("skills-of-A002")).to_contain_text("英语 4")
    page.get_by_test_id("disable-A003").click()
    expect(page.get_by_test_id("status-of-A003")).to_have_text("已停用")
    expect(page.get_by_test_id("enable-A003")).to_be_visible()
    page.get_by_test_id("reset-S02").click()
    expect(page.get_by_test_id("temp-password-box")).to_contain_text("S02")
    expect(page.get_by_test_id("status-of-S02")).to_contain_text("待改密码")
    # an admin does not disable themself: no button for it
    expect(page.get_by_test_id("disable-admin")).to_have_count(0)

    # a supervisor has no way in: no link, and the page says so (the API refuses anyway)
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("login-form")).to_be_visible()
    login(page, base_url, "S01")
    expect(page).to_have_url(re.compile(r"supervisor\.html$"))
    expect(page.get_by_test_id("nav-admin")).to_be_hidden()
    page.goto(f"{base_url}/admin.html")
    expect(page.get_by_test_id("access-denied")).to_be_visible()


def test_a_repair_crew_works_an_order_to_resolved(page: Any, base_url: str,
                                                  db: tuple[Any, Any]) -> None:
    settings, sessions = db
    svc = build_services(settings, sessions).workorders
    agent = Actor("A001", Role.AGENT)
    number = svc.create(NewOrder(type="fault_repair", description="整栋楼停电，电梯困人",
                                 caller_number="13800000009"), agent)["number"]
    svc.transition(number, "dispatched", agent)
    login(page, base_url, "R01")
    expect(page).to_have_url(re.compile(r"department\.html$"))
    expect(page.get_by_test_id("dept-name")).to_have_text("抢修工单")
    row = page.get_by_test_id(f"order-{number}")
    expect(row).to_contain_text("电梯困人")
    page.get_by_test_id(f"step-department_accepted-{number}").click()
    expect(page.get_by_test_id(f"status-{number}")).to_have_text("接单")
    page.get_by_test_id(f"step-on_site-{number}").click()
    expect(page.get_by_test_id(f"status-{number}")).to_have_text("到达现场")
    page.get_by_test_id(f"note-{number}").fill("已更换跌落式熔断器")
    screenshot(page, "department-order-on-site")
    page.get_by_test_id(f"step-resolved-{number}").click()
    expect(page.get_by_test_id(f"done-{number}")).to_contain_text("处理完成")
    expect(page.get_by_test_id(f"order-{number}")).to_have_count(0)
    doc = svc.get(number)
    assert [(e["step"], e["actor"]) for e in doc["events"]][-3:] == [
        ("department_accepted", "R01"), ("on_site", "R01"), ("resolved", "R01")]
    assert doc["events"][-1]["note"] == "已更换跌落式熔断器"
