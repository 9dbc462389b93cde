"""Staff and skills in the admin console's API, and the departments' users (issue 15 §1), over
the ASGI transport with the real ACD service (fakes only at the PBX, AMI and bus ports): admins
only; a new user's temporary password must be changed first; the demo password refused outside
a demo; skills reach the live ACD; a department user works their own orders and reaches nothing
else; every change audited."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from acd.model import AgentState
from cti.db.models_recordings import AuditLog
from tests.contract import test_web_api as web
from tests.contract.test_web_api import BOTH_DATABASES, Env
from workorders.lifecycle import Department, Role
from workorders.service import Actor, NewOrder

PASSWORD = "95598"
# the web API tests' fixtures: the seeded database on either backend, the real ACD service
backend, db_url, env, pg_template = web.backend, web.db_url, web.env, web.pg_template


async def _client(env: Env, user: str, password: str = PASSWORD,
                  seat: str | None = None) -> tuple[httpx.AsyncClient, httpx.Response]:
    c = httpx.AsyncClient(transport=env.client._transport, base_url="http://desk")
    body: dict[str, Any] = {"user_id": user, "password": password}
    if seat:
        body["seat"] = seat
    return c, await c.post("/api/auth/login", json=body)


def _audit(env: Env, action_prefix: str) -> list[tuple[str, str, str | None]]:
    with env.ctx.sessions() as s:
        rows = s.execute(select(AuditLog.actor, AuditLog.action, AuditLog.target)
                         .where(AuditLog.action.startswith(action_prefix))
                         .order_by(AuditLog.id)).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


@BOTH_DATABASES
async def test_an_admin_adds_an_agent_who_changes_the_temporary_password_then_works(
        env: Env) -> None:
    admin, r = await _client(env, "admin")
    assert r.status_code == 200
    r = await admin.post("/api/admin/skills",
                         json={"name": "meter", "label_zh": "计量", "label_en": "metering"})
    assert r.status_code == 201, r.text
    assert {s["name"] for s in r.json()} >= {"general", "repair", "english", "meter"}
    r = await admin.post("/api/admin/staff", json={
        "agent_id": "A051", "name": "李娜", "role": "agent",
        "skills": {"general": 3, "meter": 5}})
    assert r.status_code == 201, r.text
    temporary = r.json()["temporary_password"]
    assert len(temporary) >= 12
    staff = {d["agent_id"]: d for d in (await admin.get("/api/admin/staff")).json()}
    assert staff["A051"]["skills"] == {"general": 3, "meter": 5}
    assert staff["A051"]["must_change_password"] is True and staff["A051"]["active"]

    agent, r = await _client(env, "A051", temporary, seat="seat20")
    assert r.status_code == 200 and r.json()["must_change_password"] is True
    # nothing but the password change until then
    assert (await agent.get("/api/workorders")).status_code == 403
    assert (await agent.get("/api/auth/me")).json()["must_change_password"] is True
    for new, says in (("short", "8 to 128"), (temporary, "is the current one")):
        r = await agent.post("/api/auth/password", json={"current": temporary, "new": new})
        assert r.status_code == 400 and says in r.json()["detail"], r.text
    r = await agent.post("/api/auth/password", json={"current": "wrong", "new": "n3w-Passw0rd"})
    assert r.status_code == 400 and "current password is wrong" in r.json()["detail"]
    r = await agent.post("/api/auth/password", json={"current": temporary, "new": "n3w-Passw0rd"})
    assert r.status_code == 204, r.text
    assert (await agent.get("/api/workorders")).status_code == 200
    assert _audit(env, "staff.") == [("admin", "staff.create", "A051"),
                                      ("A051", "staff.password", "A051")]
    assert _audit(env, "skill.") == [("admin", "skill.create", "meter")]


async def test_only_admins_reach_the_console_and_bad_input_is_a_clear_400(env: Env) -> None:
    for user, seat in (("A001", "seat01"), ("S01", None)):
        c, r = await _client(env, user, seat=seat)
        assert r.status_code == 200
        for method, path, body in (("get", "/api/admin/staff", None),
                                   ("post", "/api/admin/staff", {"agent_id": "X1", "name": "x",
                                                                 "role": "admin"}),
                                   ("post", "/api/admin/staff/A002/password-reset", None),
                                   ("get", "/api/admin/skills", None)):
            r = await c.request(method, path, json=body)
            assert r.status_code == 403, (user, path, r.text)
    admin, _ = await _client(env, "admin")
    for body, says in (
            ({"agent_id": "A001", "name": "x", "role": "agent"}, "already exists"),
            ({"agent_id": "A052", "name": "x", "role": "agent", "skills": {"nope": 3}},
             "no such skill: nope"),
            ({"agent_id": "A052", "name": "x", "role": "agent", "skills": {"general": 9}},
             "proficiency"),
            ({"agent_id": "R09", "name": "x", "role": "department"}, "has a department"),
            ({"agent_id": "S09", "name": "x", "role": "supervisor", "department": "repair"},
             "no other role has one"),
            ({"agent_id": "X09", "name": "x", "role": "admin", "skills": {"general": 3}},
             "only agents and supervisors hold skills")):
        r = await admin.post("/api/admin/staff", json=body)
        assert r.status_code == 400 and says in r.json()["detail"], (body, r.text)
    r = await admin.post("/api/admin/staff", json={"agent_id": "bad id!", "name": "x",
                                                   "role": "agent"})
    assert r.status_code == 422
    r = await admin.put("/api/admin/staff/NOBODY/skills", json={"skills": {}})
    assert r.status_code == 404
    r = await admin.put("/api/admin/staff/admin/active", json={"active": False})
    assert r.status_code == 400 and "own account" in r.json()["detail"]
    r = await admin.post("/api/admin/skills", json={"name": "general", "label_zh": "综合",
                                                    "label_en": "general"})
    assert r.status_code == 400 and "exists already" in r.json()["detail"]


async def test_skills_reach_the_live_acd_and_disabling_signs_the_agent_out(env: Env) -> None:
    agent, r = await _client(env, "A003", seat="seat03")
    assert r.status_code == 200
    await env.settle()
    assert "english" not in env.service.view.agents["A003"].skills
    admin, _ = await _client(env, "admin")
    r = await admin.put("/api/admin/staff/A003/skills",
                        json={"skills": {"english": 5, "general": 2}})
    assert r.status_code == 200, r.text
    assert r.json()["skills"] == {"english": 5, "general": 2}
    # the ACD has it now, before any login: the next offer routes by it
    assert dict(env.service.view.agents["A003"].skills) == {"english": 5, "general": 2}
    r = await admin.put("/api/admin/staff/A003/active", json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    assert env.service.view.agents["A003"].state is AgentState.LOGGED_OUT
    assert (await agent.get("/api/auth/me")).status_code == 401
    _, r = await _client(env, "A003", seat="seat03")
    assert r.status_code == 401
    r = await admin.put("/api/admin/staff/A003/active", json={"active": True})
    assert r.status_code == 200 and r.json()["active"] is True
    r = await admin.post("/api/admin/staff/A003/password-reset")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    temporary = r.json()["temporary_password"]
    _, r = await _client(env, "A003", PASSWORD, seat="seat03")
    assert r.status_code == 401  # the old password is gone
    _, r = await _client(env, "A003", temporary, seat="seat03")
    assert r.status_code == 200 and r.json()["must_change_password"] is True
    assert [a for _, a, t in _audit(env, "staff.") if t == "A003"] == [
        "staff.skills", "staff.disable", "staff.enable", "staff.reset_password"]


async def test_the_demo_password_is_refused_outside_a_demo(env: Env) -> None:
    env.ctx.settings = replace(env.ctx.settings, demo=False)
    _, r = await _client(env, "A001", seat="seat01")
    assert r.status_code == 403 and "demo password 95598 is refused" in r.json()["detail"]
    admin, r = await _client(env, "admin")
    assert r.status_code == 403
    env.ctx.settings = replace(env.ctx.settings, demo=True)
    admin, r = await _client(env, "admin")
    temporary = (await admin.post("/api/admin/staff/A001/password-reset")).json()[
        "temporary_password"]
    env.ctx.settings = replace(env.ctx.settings, demo=False)
    agent, r = await _client(env, "A001", temporary, seat="seat01")
    assert r.status_code == 200
    r = await agent.post("/api/auth/password", json={"current": temporary, "new": PASSWORD})
    assert r.status_code == 400 and "not marked demo" in r.json()["detail"]


async def test_a_department_user_works_their_own_orders_and_nothing_else(env: Env) -> None:
    svc = env.ctx.workorders
    agent = Actor("A001", Role.AGENT)
    repair = svc.create(NewOrder(type="fault_repair", description="整栋楼停电",
                                 caller_number="13800000001"), agent)["number"]
    svc.transition(repair, "dispatched", agent)
    metering = svc.create(NewOrder(type="fault_repair", subtype="meter", description="电表黑屏",
                                   caller_number="13800000002"), agent)["number"]
    svc.transition(metering, "dispatched", agent, department="metering")

    crew, r = await _client(env, "R01")
    assert r.status_code == 200
    me = r.json()
    assert (me["role"], me["department"], me["seat"]) == ("department", "repair", None)
    page = (await crew.get("/api/department/orders")).json()
    assert [o["number"] for o in page["items"]] == [repair] and page["department"] == "repair"
    # another department's order does not exist for them, and no step can be taken on it
    assert (await crew.get(f"/api/department/orders/{metering}")).status_code == 404
    r = await crew.post(f"/api/department/orders/{metering}/step",
                        json={"to": "department_accepted"})
    assert r.status_code == 404
    for to in ("department_accepted", "on_site", "resolved"):
        r = await crew.post(f"/api/department/orders/{repair}/step",
                            json={"to": to, "note": "抢修一班" if to == "resolved" else None})
        assert r.status_code == 200 and r.json()["status"] == to, r.text
    r = await crew.post(f"/api/department/orders/{repair}/step", json={"to": "archived"})
    assert r.status_code == 422  # not a department's step at all
    doc = (await crew.get(f"/api/department/orders/{repair}")).json()
    assert [(e["step"], e["actor"]) for e in doc["events"]][-3:] == [
        ("department_accepted", "R01"), ("on_site", "R01"), ("resolved", "R01")]
    done = (await crew.get("/api/department/orders", params={"scope": "done"})).json()
    assert [o["number"] for o in done["items"]] == [repair]
    # the center's API is not theirs: every path but auth and their own answers 403
    for path in ("/api/workorders", f"/api/workorders/{repair}", "/api/agents",
                 "/api/wallboard", "/api/calls", "/api/auth/mqtt", "/api/admin/staff"):
        r = await crew.get(path)
        assert r.status_code == 403, (path, r.status_code, r.text)
    # and a center user does not reach the department's API
    sup, _ = await _client(env, "S01")
    assert (await sup.get("/api/department/orders")).status_code == 403
    # a crew of another department sees the metering order only
    meter_crew, _ = await _client(env, "J01")
    items = (await meter_crew.get("/api/department/orders")).json()["items"]
    assert [o["number"] for o in items] == [metering]


def test_a_department_actor_names_a_department() -> None:
    with pytest.raises(ValueError, match="needs their department"):
        Actor("R01", Role.DEPARTMENT)
    assert Actor("R01", Role.DEPARTMENT, Department.REPAIR).department is Department.REPAIR
