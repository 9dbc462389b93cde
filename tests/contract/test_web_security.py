"""The desktop's web-side security (issue 10, defects 5, 6, 7 and the web items of 10), over the
ASGI transport on a seeded SQLite database with the real ACD service in the same loop and fakes
only at the ports. Each test names the defect it shows fixed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from acd import engine as acd
from acd.model import AcdConfig
from agent_desktop.app import create_app
from agent_desktop.context import WebContext
from callcenter.acd_service import AcdService
from callcenter.agent_commands import AgentCommands
from callcenter.call_control import CallControl, ask_acd
from config.settings import WebSettings, load_settings
from cti.ami.translate import AgentAnswered, CallOffered, CallQueued, CallTracker
from cti.db.acd_store import DbAcdStore
from cti.db.calls import record_call_start
from cti.db.models import Call, WorkOrder
from cti.db.models_recordings import AuditLog
from cti.db.session import make_engine, make_session_factory
from hotline.wiring import build_services
from tests.support.fakes import Clock, FakeAmi, FakeBus, FakePbx
from tests.support.seeded_db import SeededDb

PASSWORD = "95598"
T0 = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
SEATS = {f"seat{i:02d}" for i in range(1, 51)}
AGENT_LEG = {"BRIDGEPEER": "PJSIP/seat01-00000007", "CONTEXT": "hotline-hold", "PRIORITY": "2"}
BASE = "http://desk"


@dataclass
class Env:
    app: Any
    transport: httpx.ASGITransport
    ctx: WebContext
    service: AcdService
    clock: Clock
    tracker: CallTracker

    def client(self, ip: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport, base_url=BASE,
                                 headers={"x-test-ip": ip} if ip else None)

    async def login(self, user: str, seat: str | None = None, *, password: str = PASSWORD,
                    ip: str | None = None, client: httpx.AsyncClient | None = None
                    ) -> httpx.Response:
        c = client or self.client(ip)
        return await c.post("/api/auth/login", json={
            "user_id": user, "password": password, **({"seat": seat} if seat else {})})

    async def as_user(self, user: str, seat: str | None = None) -> httpx.AsyncClient:
        c = self.client()
        r = await self.login(user, seat, client=c)
        assert r.status_code == 200, r.text
        return c

    async def settle(self) -> None:
        await ask_acd(self.service, acd.Tick(), "test")


def _env_settings(tmp_path: Path, **web: Any) -> Any:
    return replace(load_settings(env={}), state_dir=tmp_path,
                   web=replace(WebSettings(), **web))


@pytest.fixture
async def env(seeded_db: SeededDb, tmp_path: Path) -> AsyncIterator[Env]:
    engine = make_engine(seeded_db(tmp_path))
    sessions = make_session_factory(engine)
    pbx, bus, tracker = FakePbx(), FakeBus(), CallTracker()
    ami = FakeAmi(variables=AGENT_LEG)
    store = DbAcdStore(sessions)
    service = AcdService.create(AcdConfig(wrap_up_s=15), pbx, bus, store)
    clock = Clock(T0)
    ctx = build_services(_env_settings(tmp_path), sessions, bus=bus, clock=clock).web_context(
        acd=service, pbx=ami, bus=bus, agent_commands=AgentCommands(service, bus, store, SEATS),
        calls=CallControl(ami, service, tracker))
    app = create_app(ctx)

    async def ip_from_header(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for k, v in scope.get("headers", []):
                if k == b"x-test-ip":
                    scope = {**scope, "client": (v.decode(), 1234)}
        await app(scope, receive, send)

    writer = asyncio.create_task(service.run(), name="acd")
    yield Env(app, httpx.ASGITransport(app=ip_from_header), ctx, service, clock, tracker)
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    engine.dispose()


async def _connected(env: Env, agent: httpx.AsyncClient, agent_id: str, seat: str,
                     call_id: str, caller: str, skill: str = "general") -> None:
    """A caller for general rings agent_id (ready at seat) and is answered."""
    with env.ctx.sessions.begin() as s:
        record_call_start(s, call_id=call_id, uniqueid=call_id, caller_number=caller,
                          dnis="95598", now=T0)
    r = await agent.post(f"/api/agents/{agent_id}/state", json={"state": "ready"})
    assert r.status_code == 200, r.text
    channel = f"PJSIP/carrier-{call_id[-4:]}"
    env.tracker.apply(CallQueued(call_id=call_id, channel=channel, caller=caller,
                                 skill=skill, priority=0, account=None,
                                 channel_id=call_id))
    env.service.call_waiting(call_id, channel, caller, skill, 0, None)
    await env.settle()
    env.tracker.apply(CallOffered(call_id, seat))
    env.tracker.apply(AgentAnswered(call_id, seat, f"PJSIP/{seat}-00000007"))
    env.service.submit(acd.AgentAnswered(agent_id=agent_id, call_id=call_id))
    await env.settle()
    assert env.service.view.agents[agent_id].call_id == call_id


def _order(**kw: Any) -> dict[str, Any]:
    return {"type": "consultation", "description": "电费咨询", **kw}


# ------------------------------------------------------------ defect 5: orders per role


async def test_defect5_an_agent_sees_only_their_orders_and_calls(env: Env) -> None:
    a1 = await env.as_user("A001", "seat01")
    a2 = await env.as_user("A002", "seat02")
    await _connected(env, a1, "A001", "seat01", "1764210600.1", "13800000001")
    # A002 cannot take A001's call's caller number by naming the call
    r = await a2.post("/api/workorders", json=_order(call_id="1764210600.1"))
    assert r.status_code == 403, r.text
    assert "13800000001" not in r.text
    # nor with a number of its own (the call is still not theirs)
    r = await a2.post("/api/workorders", json=_order(call_id="1764210600.1",
                                                    caller_number="13900000009"))
    assert r.status_code == 403, r.text
    # a call id nobody has (no record, not in the ACD) has nothing to leak: the body's number
    r = await a2.post("/api/workorders", json=_order(call_id="1764299999.1",
                                                    caller_number="13900000009"))
    assert r.status_code == 201 and r.json()["caller_number"] == "13900000009", r.text
    # a call still waiting in the ACD (offered to nobody) is not A002's either
    env.service.call_waiting("1764210600.2", "PJSIP/carrier-0002", "13500000005", "english",
                             0, None)
    await env.settle()
    assert "1764210600.2" in env.service.view.calls
    r = await a2.post("/api/workorders", json=_order(call_id="1764210600.2"))
    assert r.status_code == 403 and "13500000005" not in r.text, r.text
    # A001, on that call, may: the caller number comes from the call record
    r = await a1.post("/api/workorders", json=_order(call_id="1764210600.1"))
    assert r.status_code == 201, r.text
    from_call = r.json()["number"]
    assert r.json()["caller_number"] == "13800000001"
    # an order A002 accepts for a walk-in number
    r = await a2.post("/api/workorders", json=_order(caller_number="13900000002"))
    assert r.status_code == 201, r.text
    own2 = r.json()["number"]

    def numbers(page: httpx.Response) -> set[str]:
        assert page.status_code == 200, page.text
        return {i["number"] for i in page.json()["items"]}

    seen1 = numbers(await a1.get("/api/workorders", params={"limit": 200}))
    seen2 = numbers(await a2.get("/api/workorders", params={"limit": 200}))
    assert from_call in seen1 and own2 not in seen1
    assert own2 in seen2 and from_call not in seen2
    # the seeded orders (other agents', the IVR's) are nobody's here
    with env.ctx.sessions() as s:
        total = s.query(WorkOrder).count()
    assert len(seen1) < total and len(seen2) < total
    # one order by number: another agent's is a 404 (not even its existence), so are steps
    assert (await a2.get(f"/api/workorders/{from_call}")).status_code == 404
    assert (await a2.post(f"/api/workorders/{from_call}/urge", json={})).status_code == 404
    r = await a2.post(f"/api/workorders/{from_call}/transitions", json={"to": "resolved"})
    assert r.status_code == 404
    assert (await a1.get(f"/api/workorders/{from_call}")).status_code == 200


async def test_defect5_the_call_an_agent_is_on_shows_that_callers_orders(env: Env) -> None:
    a3 = await env.as_user("A003", "seat03")
    sup = await env.as_user("S01")
    caller = "13600000006"
    r = await sup.post("/api/workorders", json=_order(caller_number=caller))
    assert r.status_code == 201
    number = r.json()["number"]
    assert (await a3.get(f"/api/workorders/{number}")).status_code == 404
    # the same customer calls and A003 answers: the customer's older order is visible now
    await _connected(env, a3, "A003", "seat03", "1764210700.5", caller, skill="billing")
    assert (await a3.get(f"/api/workorders/{number}")).status_code == 200
    r = await a3.get("/api/workorders", params={"caller": caller})
    assert number in {i["number"] for i in r.json()["items"]}


async def test_defect5_supervisors_and_admins_see_every_order(env: Env) -> None:
    a1 = await env.as_user("A001", "seat01")
    await _connected(env, a1, "A001", "seat01", "1764210600.1", "13800000001")
    r = await a1.post("/api/workorders", json=_order(call_id="1764210600.1"))
    assert r.status_code == 201
    number = r.json()["number"]
    for who in ("S01", "admin"):
        with env.ctx.sessions() as s:
            total = s.query(WorkOrder).count()
        c = await env.as_user(who)
        page = (await c.get("/api/workorders", params={"limit": 200})).json()
        assert page["total"] == total, who
        assert (await c.get(f"/api/workorders/{number}")).json()["caller_number"] == \
            "13800000001"
        # and may file an order for any call (a supervisor helping out)
        r = await c.post("/api/workorders", json=_order(call_id="1764210600.1"))
        assert r.status_code == 201 and r.json()["caller_number"] == "13800000001", who


async def test_defect5_an_agent_sees_orders_of_calls_they_answered_earlier(env: Env) -> None:
    a4 = await env.as_user("A004", "seat04")
    with env.ctx.sessions.begin() as s:
        s.add(Call(call_id="1764200000.9", uniqueid="1764200000.9", caller_number="13700000007",
                   dnis="95598", started_at=T0 - timedelta(hours=1), agent_id="A004",
                   seat="seat04", ivr_path=[]))
    # a supervisor filed the order for that call; it is A004's call, so A004 sees it
    sup = await env.as_user("S01")
    r = await sup.post("/api/workorders", json=_order(call_id="1764200000.9"))
    assert r.status_code == 201
    assert (await a4.get(f"/api/workorders/{r.json()['number']}")).status_code == 200
    # and may file another one for it afterwards (wrap-up)
    r = await a4.post("/api/workorders", json=_order(call_id="1764200000.9"))
    assert r.status_code == 201 and r.json()["caller_number"] == "13700000007"


# ------------------------------------------------------------- defect 10: the web items


@pytest.mark.parametrize("url", [
    "/api/recordings/9223372036854775808", "/api/recordings/9223372036854775808/audio",
    "/api/recordings/99999999999999999999999", "/api/recordings?offset=9223372036854775808",
    "/api/workorders?offset=9223372036854775808", "/api/recordings/2147483648",
])
async def test_defect10_huge_ids_and_offsets_are_422_not_500(env: Env, url: str) -> None:
    sup = await env.as_user("S01")
    r = await sup.get(url)
    assert r.status_code == 422, (url, r.status_code, r.text)
    r = await sup.post("/api/recordings/9223372036854775808/play-to-phone")
    assert r.status_code == 422, r.text


async def test_defect10_a_supervisor_cannot_force_an_admin_or_a_supervisor(env: Env) -> None:
    admin = await env.as_user("admin")
    sup = await env.as_user("S01")
    await env.as_user("S02")
    for target in ("admin", "S02"):
        r = await sup.post(f"/api/agents/{target}/logout")
        assert r.status_code == 403, (target, r.text)
        r = await sup.post(f"/api/agents/{target}/state", json={"state": "not_ready"})
        assert r.status_code == 403, (target, r.text)
    # the admin's session is still alive, and the refusal is on the audit trail
    assert (await admin.get("/api/auth/me")).status_code == 200
    with env.ctx.sessions() as s:
        refused = s.scalars(select(AuditLog).where(AuditLog.actor == "S01",
                                                   AuditLog.target == "admin")).all()
    assert refused and not any(a.allowed for a in refused)
    # a supervisor still forces agents; the admin may force a supervisor
    await env.as_user("A001", "seat01")
    assert (await sup.post("/api/agents/A001/logout")).status_code == 200
    assert (await admin.post("/api/agents/S02/logout")).status_code != 403


SECURITY_HEADERS = {
    "x-frame-options": "DENY", "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


@pytest.mark.parametrize("method,url", [
    ("GET", "/"), ("GET", "/agent.html"), ("GET", "/agent.js"), ("GET", "/api/health"),
    ("GET", "/api/auth/me"), ("GET", "/api/nothing-here"), ("POST", "/api/auth/login"),
])
async def test_defect10_every_response_has_the_security_headers(env: Env, method: str,
                                                                url: str) -> None:
    r = await env.client().request(method, url, json={} if method == "POST" else None)
    for k, v in SECURITY_HEADERS.items():
        assert r.headers.get(k) == v, (url, k, dict(r.headers))
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp


async def test_defect10_the_cookie_is_secure_under_tls(env: Env, seeded_db: SeededDb,
                                                       tmp_path: Path) -> None:
    # plain HTTP (the fixture): no Secure flag, it would never be sent back
    r = await env.login("S01")
    assert "secure" not in r.headers["set-cookie"].lower()
    engine = make_engine(seeded_db(tmp_path / "tls"))
    settings = _env_settings(tmp_path, tls="self-signed")
    ctx = build_services(settings, make_session_factory(engine), clock=Clock(T0)).web_context()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)),
                                 base_url="https://desk") as c:
        r = await c.post("/api/auth/login", json={"user_id": "S01", "password": PASSWORD})
    engine.dispose()
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"].lower()
    assert "; secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert r.headers["strict-transport-security"].startswith("max-age=")


async def test_defect10_api_docs_and_spec_are_for_admins_only(env: Env) -> None:
    anon = env.client()
    agent = await env.as_user("A001", "seat01")
    sup = await env.as_user("S01")
    admin = await env.as_user("admin")
    for url in ("/api/docs", "/api/openapi.json", "/api/redoc", "/docs", "/openapi.json"):
        assert (await anon.get(url)).status_code in (401, 404), url
        assert (await agent.get(url)).status_code in (403, 404), url
        assert (await sup.get(url)).status_code in (403, 404), url
    r = await admin.get("/api/openapi.json")
    assert r.status_code == 200 and "/api/workorders" in r.json()["paths"]
    r = await admin.get("/api/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()


async def test_defect10_control_and_bidi_characters_never_reach_stored_text(env: Env) -> None:
    sup = await env.as_user("S01")
    nasty = "停电\x00\x1b[31m红字\r\n伪造日志行\u202e\u2066反向\u2069\x7f\x9b尾"
    r = await sup.post("/api/workorders", json=_order(caller_number="13800000001",
                                                     description=nasty))
    assert r.status_code == 201, r.text
    number = r.json()["number"]
    r = await sup.post(f"/api/workorders/{number}/urge", json={"note": "快\r\n点\x00\u202e"})
    assert r.status_code == 200, r.text
    with env.ctx.sessions() as s:
        order = s.scalars(select(WorkOrder).where(WorkOrder.number == number)).one()
        texts = [order.description] + [e.note or "" for e in order.events]
    assert order.description == "停电[31m红字 伪造日志行反向尾"
    for text in texts:
        assert not any(ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f
                       or ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
                       for ch in text), repr(text)


async def test_defect10_type_is_checked_against_the_list_and_not_echoed(env: Env) -> None:
    sup = await env.as_user("S01")
    long_type = "x" * 100_000
    r = await sup.post("/api/workorders", json=_order(type=long_type,
                                                     caller_number="13800000001"))
    assert r.status_code == 422 and len(r.text) < 1000, r.text[:200]
    r = await sup.post("/api/workorders", json=_order(type="<script>",
                                                     caller_number="13800000001"))
    assert r.status_code == 422 and "<script>" not in r.text
    r = await sup.get("/api/workorders", params={"type": "y" * 5000})
    assert r.status_code == 422 and len(r.text) < 1000


@pytest.mark.parametrize("number", ["abc", "138-0000-0001", "1" * 21, "+", "１３８", "138 0000"])
async def test_defect10_caller_number_must_be_digits(env: Env, number: str) -> None:
    sup = await env.as_user("S01")
    r = await sup.post("/api/workorders", json=_order(caller_number=number))
    assert r.status_code == 422 and "caller_number" in r.json()["detail"], r.text
    r = await sup.post("/api/workorders", json=_order(caller_number="+8613800000001"))
    assert r.status_code == 201, r.text
    # empty is "not given": taken from the call (a withheld caller's form field)
    a1 = await env.as_user("A001", "seat01")
    await _connected(env, a1, "A001", "seat01", "1764210600.1", "anonymous")
    r = await a1.post("/api/workorders", json=_order(caller_number="", call_id="1764210600.1"))
    assert r.status_code == 201 and r.json()["caller_number"] == "anonymous", r.text


@pytest.mark.parametrize("method,url,body", [
    ("POST", "/api/agents/A001/state", {"state": "ready"}),
    ("POST", "/api/workorders", _order(caller_number="13800000001")),
    ("POST", "/api/auth/logout", None),
    ("POST", "/api/auth/login", {"user_id": "S01", "password": PASSWORD}),
])
async def test_defect10_state_changes_from_a_foreign_origin_are_refused(
        env: Env, method: str, url: str, body: Any) -> None:
    agent = await env.as_user("A001", "seat01")
    for origin in ("http://evil.example", "http://desk.evil.example", "https://desk", "null"):
        r = await agent.request(method, url, json=body, headers={"Origin": origin})
        assert r.status_code == 403 and "origin" in r.json()["detail"], (origin, r.text)
    # the agent is still logged in and nothing changed
    assert (await agent.get("/api/auth/me")).status_code == 200
    # the desktop's own origin (and no Origin at all: curl, the CLI) is fine
    r = await agent.request(method, url, json=body, headers={"Origin": BASE})
    assert r.status_code < 400, r.text


async def test_defect10_not_ready_reasons_come_from_the_configured_list(env: Env) -> None:
    agent = await env.as_user("A001", "seat01")
    for reason in ("miDBhTj", "pwned", "rona", "phone_offline", "failover_call", "supervisor",
                   "login"):
        r = await agent.post("/api/agents/A001/state",
                             json={"state": "not_ready", "reason": reason})
        assert r.status_code == 422, (reason, r.text)
    for reason in env.ctx.settings.acd.not_ready_reasons:
        r = await agent.post("/api/agents/A001/state",
                             json={"state": "not_ready", "reason": reason})
        assert r.status_code == 200 and r.json()["reason"] == reason, (reason, r.text)
    # the desktop's own choices are on the list
    html = (await env.client().get("/agent.html")).text
    for value in ("break", "lunch", "training", "meeting"):
        assert f'<option value="{value}"' in html
        assert value in env.ctx.settings.acd.not_ready_reasons
    # a supervisor's force says "supervisor" (what supervisor.js sends), or a listed reason
    sup = await env.as_user("S01")
    r = await sup.post("/api/agents/A001/state", json={"state": "not_ready",
                                                       "reason": "supervisor"})
    assert r.status_code == 200 and r.json()["reason"] == "supervisor"
    r = await sup.post("/api/agents/A001/state", json={"state": "not_ready", "reason": "pwned"})
    assert r.status_code == 422


# ------------------------------------------------------------------ defect 6: login limits


async def _fail(env: Env, user: str, ip: str = "10.0.0.1", seat: str = "seat01") -> int:
    return (await env.login(user, seat, password="guess", ip=ip)).status_code


async def test_defect6_an_account_backs_off_exponentially_and_a_valid_password_waits(
        env: Env) -> None:
    web = env.ctx.settings.web
    assert (web.login_max_failures, web.login_backoff_max_s) == (5, 60)
    for _ in range(4):
        assert await _fail(env, "A001") == 401
    assert await _fail(env, "A001") == 401          # the 5th: now 2 s of backoff
    r = await env.login("A001", "seat01", ip="10.0.0.1")
    assert r.status_code == 429 and r.headers["retry-after"] == "2"  # even the right password
    waits = []
    for _ in range(8):                              # each further failure doubles it ...
        env.clock.now += timedelta(seconds=int(r.headers.get("retry-after", "0")))
        assert await _fail(env, "A001") == 401
        r = await env.login("A001", "seat01", ip="10.0.0.1")
        assert r.status_code == 429
        waits.append(int(r.headers["retry-after"]))
    assert waits == [4, 8, 16, 32, 60, 60, 60, 60]  # ... up to login_backoff_max_s
    # attempts refused during the block are not counted: they do not stretch it
    for _ in range(50):
        assert (await env.login("A001", "seat01", password="guess")).status_code == 429
    env.clock.now += timedelta(seconds=60)
    assert (await env.login("A001", "seat01")).status_code == 200
    # a success starts the account's count again
    assert await _fail(env, "A001") == 401
    assert (await env.login("A001", "seat01")).status_code == 200


async def test_defect6_an_attacker_blocks_a_named_agent_for_at_most_the_bound(env: Env) -> None:
    # hammering A002 from many addresses: A002 waits at most login_backoff_max_s, never 5 min
    for i in range(40):
        await _fail(env, "A002", ip=f"10.1.0.{i}", seat="seat02")
    env.clock.now += timedelta(seconds=env.ctx.settings.web.login_backoff_max_s)
    assert (await env.login("A002", "seat02", ip="10.2.0.1")).status_code == 200
    # the old design's 5 minutes after the window's 5th failure: long gone
    for _ in range(5):
        await _fail(env, "A003", seat="seat03")
    env.clock.now += timedelta(seconds=2)
    assert (await env.login("A003", "seat03")).status_code == 200


async def test_defect6_failures_from_one_address_do_not_lock_out_its_valid_users(
        env: Env) -> None:
    # 20+ failures behind one office address, on several accounts ...
    for i in range(24):
        assert await _fail(env, f"A{10 + i % 4:03d}", ip="10.9.9.9", seat="seat10") in (401, 429)
    # ... and everyone else behind it still logs in
    for i, user in enumerate(("A001", "A002", "S01")):
        seat = f"seat{i + 1:02d}" if user.startswith("A") else None
        assert (await env.login(user, seat, ip="10.9.9.9")).status_code == 200, user


async def test_defect6_unknown_user_ids_are_limited_per_address_and_a_success_does_not_reset_it(
        env: Env) -> None:
    limit = env.ctx.settings.web.login_ip_max_failures
    assert limit == 20
    statuses = []
    for i in range(36):
        statuses.append(await _fail(env, f"NOBODY{i}", ip="10.7.7.7"))
        if i % 5 == 0:  # the attacker's own valid account logs in in between
            assert (await env.login("A005", "seat05", ip="10.7.7.7")).status_code == 200
    assert statuses[:limit] == [401] * limit
    assert set(statuses[limit:]) == {429}, statuses
    # another address is not affected, and known accounts from this one are not either
    assert await _fail(env, "NOBODY99", ip="10.7.7.8") == 401
    assert (await env.login("A006", "seat06", ip="10.7.7.7")).status_code == 200


async def test_defect6_concurrent_attempts_are_counted_atomically(env: Env) -> None:
    """20 guesses at once: only the free ones reach the password check (was 7 past a check of 5
    before any was counted)."""
    results = await asyncio.gather(*(
        env.login("A007", "seat07", password=f"guess{i}", ip=f"10.3.0.{i}") for i in range(20)))
    codes = sorted(r.status_code for r in results)
    free = env.ctx.settings.web.login_max_failures
    assert codes == [401] * free + [429] * (20 - free), codes
    from cti.db.models_web import WebLoginAttempt, WebLoginLimit
    with env.ctx.sessions() as s:
        row = s.get(WebLoginLimit, "user:A007")
        attempts = s.query(WebLoginAttempt).filter(WebLoginAttempt.user_id == "A007").count()
    assert row is not None and row.failures == free and attempts == 20
