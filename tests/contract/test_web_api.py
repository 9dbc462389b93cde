"""The desktop web API (agent_desktop) over the ASGI transport, on a seeded SQLite database, with
the real ACD service and call control in the same loop and fakes only at the ports (Asterisk's
AMI, the PBX, the MQTT bus): login, sessions, rate limits, roles, agent states, calls and call
control. No Asterisk needed."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import create_engine, func, make_url, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

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
from cti.db.migrate import upgrade
from cti.db.models import AgentSession, Call
from cti.db.models_recordings import AuditLog
from cti.db.models_web import WebSession
from cti.db.session import make_engine, make_session_factory
from hotline.demo_seed import seed_demo
from hotline.wiring import build_services, observed
from tests.support.fakes import Clock, FakeAmi, FakeBus, FakePbx
from tests.support.seeded_db import SEED_NOW, SeededDb

PASSWORD = "95598"  # demo staff (hotline/demo_seed.py)
DEFAULT_PG_URL = "postgresql+psycopg://hotline:hotline@127.0.0.1:5432/postgres"
T0 = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)  # 10:30 in Beijing
SEATS = {f"seat{i:02d}" for i in range(1, 51)}
# Getvar on the caller's channel: the agent's leg it is bridged to, and where it waits
AGENT_LEG = {"BRIDGEPEER": "PJSIP/seat01-00000007", "CONTEXT": "hotline-hold", "PRIORITY": "2"}


@dataclass
class Env:
    client: httpx.AsyncClient
    ctx: WebContext
    service: AcdService
    clock: Clock
    pbx: FakePbx
    ami: FakeAmi
    bus: FakeBus
    tracker: CallTracker
    cookies: dict[str, httpx.Cookies] = field(default_factory=dict)

    async def login(self, user: str, seat: str | None = None, *, password: str = PASSWORD,
                    ip: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"user_id": user, "password": password}
        if seat is not None:
            body["seat"] = seat
        return await self.client.post("/api/auth/login", json=body,
                                      headers={"x-test-ip": ip} if ip else None)

    async def as_user(self, user: str, seat: str | None = None) -> httpx.AsyncClient:
        """A client of its own, logged in as user."""
        c = httpx.AsyncClient(transport=self.client._transport, base_url="http://desk")
        r = await c.post("/api/auth/login",
                         json={"user_id": user, "password": PASSWORD,
                               **({"seat": seat} if seat else {})})
        assert r.status_code == 200, r.text
        return c

    async def settle(self) -> None:
        """Every input submitted so far has been handled by the ACD's writer."""
        await ask_acd(self.service, acd.Tick(), "test")


@pytest.fixture(scope="module")
def pg_template() -> Iterator[tuple[Any, str]]:
    """A seeded PostgreSQL database that each PostgreSQL test copies (CREATE ... TEMPLATE)."""
    server = make_url(os.environ.get("HOTLINE_TEST_PG_URL", DEFAULT_PG_URL))
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                          connect_args={"connect_timeout": 5})
    name = f"hotline_webtpl_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        pytest.fail(f"PostgreSQL is required ({server!r}): {exc}", pytrace=False)
    url = server.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    engine = make_engine(url)
    with make_session_factory(engine).begin() as s:
        seed_demo(s, now=SEED_NOW, n_accounts=60)
    engine.dispose()
    yield admin, name
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """sqlite unless a test is parametrized with BOTH_DATABASES."""
    return str(getattr(request, "param", "sqlite"))


BOTH_DATABASES = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def db_url(backend: str, seeded_db: SeededDb, tmp_path: Path,
           request: pytest.FixtureRequest) -> Iterator[str]:
    if backend == "sqlite":
        yield seeded_db(tmp_path)
        return
    admin, template = request.getfixturevalue("pg_template")
    name = f"hotline_web_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _settings(tmp_path: Path, **web: Any) -> Any:
    s = load_settings(env={})
    return replace(s, state_dir=tmp_path, web=replace(WebSettings(), **web))


@pytest.fixture
async def env(db_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    pbx, bus, tracker = FakePbx(), FakeBus(), CallTracker()
    ami = FakeAmi(variables=AGENT_LEG)
    store = DbAcdStore(sessions)
    service = AcdService.create(AcdConfig(wrap_up_s=15), pbx, bus, store)
    commands = AgentCommands(service, bus, store, SEATS)
    clock = Clock(T0)
    ctx = build_services(_settings(tmp_path), sessions, bus=bus, clock=clock).web_context(
        acd=service, pbx=ami, bus=bus, agent_commands=commands,
        calls=CallControl(ami, service, tracker))
    app = create_app(ctx)

    async def ip_from_header(scope: Any, receive: Any, send: Any) -> None:
        # every test client would be 127.0.0.1; a header lets a test be another address
        if scope["type"] == "http":
            for k, v in scope.get("headers", []):
                if k == b"x-test-ip":
                    scope = {**scope, "client": (v.decode(), 1234)}
        await app(scope, receive, send)

    writer = asyncio.create_task(service.run(), name="acd")
    transport = httpx.ASGITransport(app=ip_from_header)
    async with httpx.AsyncClient(transport=transport, base_url="http://desk") as client:
        yield Env(client, ctx, service, clock, pbx, ami, bus, tracker)
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    engine.dispose()


# ------------------------------------------------------------------------------- login


async def test_agent_login_sets_a_strict_httponly_cookie_and_logs_in_to_the_acd(env: Env) -> None:
    r = await env.login("A001", "seat01")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["user_id"], doc["role"], doc["seat"]) == ("A001", "agent", "seat01")
    assert doc["name"] and doc["expires_at"].startswith("2026-11-27T14:30")  # 12 h
    cookie = r.headers["set-cookie"].lower()
    assert "hotline_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    agent = env.service.engine.agents["A001"]
    assert (agent.seat, str(agent.state), agent.reason) == ("seat01", "not_ready", "login")
    await env.settle()
    with env.ctx.sessions.begin() as s:
        row = s.scalars(select(AgentSession).where(AgentSession.agent_id == "A001")).one()
        assert (row.seat, row.state, row.reason, row.logout_at) == (
            "seat01", "not_ready", "login", None)
    me = await env.client.get("/api/auth/me")
    assert me.status_code == 200 and me.json()["seat"] == "seat01"
    # the same agent again at the same seat re-attaches; at another seat is refused
    assert (await env.login("A001", "seat01")).status_code == 200
    r = await env.login("A001", "seat02")
    assert r.status_code == 409 and "seat01" in r.json()["detail"]


async def test_bad_logins_are_refused_with_clear_errors(env: Env) -> None:
    for user, password, seat, status in [
        ("A001", "wrong", "seat01", 401),
        ("NOBODY", PASSWORD, "seat01", 401),
        ("A001", PASSWORD, None, 400),  # agents need a seat
        ("A001", PASSWORD, "seat99", 400),
        ("S01", PASSWORD, "seat01", 400),  # a supervisor's seat is their phone
    ]:
        r = await env.login(user, seat, password=password)
        assert r.status_code == status, (user, seat, r.text)
        assert isinstance(r.json()["detail"], str) and r.json()["detail"]
    r = await env.client.post("/api/auth/login", json={"user_id": "A001"})
    assert r.status_code == 422 and "password" in r.json()["detail"]
    r = await env.client.post("/api/auth/login", content=b"{not json",
                              headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert (await env.client.get("/api/auth/me")).status_code == 401
    # another agent already sits at seat01
    assert (await env.login("A002", "seat01")).status_code == 200
    r = await env.login("A003", "seat01")
    assert r.status_code == 409


@BOTH_DATABASES
async def test_sessions_expire_when_idle_and_after_the_absolute_limit(env: Env) -> None:
    assert (await env.login("S01")).status_code == 200
    idle = env.ctx.settings.web.session_idle_s
    env.clock.now += timedelta(seconds=idle - 60)
    assert (await env.client.get("/api/auth/me")).status_code == 200  # touches the session
    env.clock.now += timedelta(seconds=idle - 60)
    assert (await env.client.get("/api/auth/me")).status_code == 200
    env.clock.now += timedelta(seconds=idle + 1)
    r = await env.client.get("/api/auth/me")
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    # absolute: kept busy, the session still ends after session_absolute_s
    assert (await env.login("S01")).status_code == 200
    end = env.clock.now + timedelta(seconds=env.ctx.settings.web.session_absolute_s)
    while env.clock.now + timedelta(seconds=idle // 2) < end:
        env.clock.now += timedelta(seconds=idle // 2)
        assert (await env.client.get("/api/auth/me")).status_code == 200
    env.clock.now = end
    assert (await env.client.get("/api/auth/me")).status_code == 401
    # a week past their end, old sessions are deleted at the next login
    env.clock.now += timedelta(days=8)
    assert (await env.login("S01")).status_code == 200
    with env.ctx.sessions.begin() as s:
        assert s.scalar(select(func.count()).select_from(WebSession)) == 1


async def test_logout_ends_the_session_and_the_agents_acd_login(env: Env) -> None:
    assert (await env.login("A001", "seat01")).status_code == 200
    token = env.client.cookies.get("hotline_session")
    r = await env.client.post("/api/auth/logout")
    assert r.status_code == 204
    await env.settle()
    assert str(env.service.engine.agents["A001"].state) == "logged_out"
    # the old token is dead even if a client kept it
    r = await env.client.get("/api/auth/me", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 401


async def test_a_forged_or_garbage_token_is_refused(env: Env) -> None:
    for token in ("x", "a" * 43, "%00" * 10, "a" * 500):
        r = await env.client.get("/api/auth/me", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 401


# ------------------------------------------------------------------------------- roles


async def test_an_agent_sees_only_themself(env: Env) -> None:
    assert (await env.login("A001", "seat01")).status_code == 200
    r = await env.client.get("/api/agents")
    assert r.status_code == 200 and [a["agent_id"] for a in r.json()] == ["A001"]
    assert (await env.client.get("/api/agents/A001")).status_code == 200
    for path in ("/api/agents/A002", "/api/agents/S01"):
        r = await env.client.get(path)
        assert r.status_code == 403, path
    r = await env.client.post("/api/agents/A002/state", json={"state": "not_ready"})
    assert r.status_code == 403
    r = await env.client.post("/api/agents/A002/logout")
    assert r.status_code == 403


# supervisor-only areas; every route under them that the app has is checked (recordings and
# supervision come from their own routers, registered in agent_desktop/app.py ROUTERS)
SUPERVISOR_ONLY = ("/api/wallboard", "/api/recordings", "/api/supervision",
                   "/api/workorders/at-risk")
MUST_EXIST = ("/api/wallboard",)
# valid bodies, so a refusal is about the role and not the input
BODIES: dict[str, dict[str, Any]] = {
    "/api/supervision": {"call_id": "1764210600.1", "mode": "listen"},
    "/api/supervision/1/mode": {"mode": "whisper"},
}


def _supervisor_routes(env: Env) -> list[tuple[str, str]]:
    app = create_app(env.ctx)
    out = []
    for path, item in app.openapi()["paths"].items():
        if path.startswith(SUPERVISOR_ONLY):
            concrete = path
            for name in ("{id}", "{session_id}", "{recording_id}"):
                concrete = concrete.replace(name, "1")
            out += [(m.upper(), concrete) for m in item]
    return out


async def test_supervisor_endpoints_and_recordings_are_refused_to_agents(env: Env) -> None:
    routes = _supervisor_routes(env)
    assert {p for _, p in routes} >= set(MUST_EXIST)
    for method, path in routes:
        assert (await env.client.request(method, path)).status_code == 401, path
    assert (await env.login("A001", "seat01")).status_code == 200
    for method, path in routes:
        r = await env.client.request(method, path, json=BODIES.get(path, {}))
        # a supervision session's own routes leave the role check to the supervision service,
        # which this test app does not run: "not running" is a refusal too
        not_running = path.startswith("/api/supervision/") and r.status_code == 409
        assert r.status_code == 403 or not_running, (method, path, r.status_code, r.text)
    for user in ("S01", "admin"):
        c = await env.as_user(user)
        try:
            r = await c.get("/api/wallboard")
            assert r.status_code == 200, r.text
        finally:
            await c.aclose()


@BOTH_DATABASES
async def test_agent_states_and_a_supervisor_forcing_one_is_audited(env: Env) -> None:
    assert (await env.login("A001", "seat01")).status_code == 200
    r = await env.client.post("/api/agents/A001/state", json={"state": "ready"})
    assert r.status_code == 200 and r.json()["state"] == "ready"
    r = await env.client.post("/api/agents/A001/state",
                              json={"state": "not_ready", "reason": "lunch"})
    assert (r.json()["state"], r.json()["reason"]) == ("not_ready", "lunch")
    r = await env.client.post("/api/agents/A001/state", json={"state": "wrap_up"})
    assert r.status_code == 200 and r.json()["state"] == "wrap_up"  # after-call work on request
    assert r.json()["wrap_up_s"] == 15
    r = await env.client.post("/api/agents/A001/state", json={"state": "asleep"})
    assert r.status_code == 422
    sup = await env.as_user("S02")
    try:
        r = await sup.post("/api/agents/A001/state", json={"state": "ready"})
        assert r.status_code == 200 and r.json()["state"] == "ready"
        r = await sup.post("/api/agents/A009/state", json={"state": "ready"})  # not logged in
        assert r.status_code == 409
        r = await sup.get("/api/agents")
        assert len(r.json()) == 56
        r = await sup.post("/api/agents/A001/logout")
        assert r.status_code == 200 and r.json()["state"] == "logged_out"
    finally:
        await sup.aclose()
    # the agent's own web session ended with the forced logout
    assert (await env.client.get("/api/auth/me")).status_code == 401
    await env.settle()
    with env.ctx.sessions.begin() as s:
        rows = s.execute(select(AuditLog.actor, AuditLog.action, AuditLog.target,
                                AuditLog.allowed).order_by(AuditLog.id)).all()
    assert [tuple(r) for r in rows] == [
        ("S02", "agent.force_state", "A001", True),
        ("S02", "agent.force_state", "A009", False),
        ("S02", "agent.logout", "A001", True),
    ]


# ------------------------------------------------------------------------------- calls


async def _a_connected_call(env: Env, call_id: str = "1764210600.1") -> None:
    """A caller waiting for general, A001 ready at seat01: rings, answers."""
    with env.ctx.sessions.begin() as s:
        record_call_start(s, call_id=call_id, uniqueid=call_id, caller_number="13800000001",
                          dnis="95598", now=T0)
    assert (await env.login("A001", "seat01")).status_code == 200
    r = await env.client.post("/api/agents/A001/state", json={"state": "ready"})
    assert r.status_code == 200
    env.tracker.apply(CallQueued(call_id=call_id, channel="PJSIP/carrier-00000001",
                                 caller="13800000001", skill="general", priority=0,
                                 account=None, channel_id=call_id))
    env.service.call_waiting(call_id, "PJSIP/carrier-00000001", "13800000001", "general", 0,
                             None)
    await env.settle()
    assert env.pbx.rung == [("PJSIP/carrier-00000001", "seat01")]
    assert any(t == "hotline/agents/A001/pop" for t, _ in env.bus.sent)
    env.tracker.apply(CallOffered(call_id, "seat01"))
    env.tracker.apply(AgentAnswered(call_id, "seat01", "PJSIP/seat01-00000007"))
    env.service.submit(acd.AgentAnswered(agent_id="A001", call_id=call_id))
    await env.settle()


@BOTH_DATABASES
async def test_calls_and_the_pop_are_for_the_agent_on_the_call_or_a_supervisor(env: Env) -> None:
    cid = "1764210600.1"
    await _a_connected_call(env, cid)
    r = await env.client.get("/api/calls", params={"live": "true"})
    assert r.status_code == 200
    assert [(c["call_id"], c["live_state"], c["agent_id"]) for c in r.json()] == [
        (cid, "connected", "A001")]
    r = await env.client.get(f"/api/calls/{cid}")
    assert r.status_code == 200 and r.json()["caller_number"] == "13800000001"
    r = await env.client.get(f"/api/calls/{cid}/pop")
    assert r.status_code == 200
    assert (r.json()["call_id"], r.json()["caller_number"]) == (cid, "13800000001")
    assert (await env.client.get("/api/calls/nope.1")).status_code == 404
    other = await env.as_user("A002", "seat02")
    sup = await env.as_user("S01")
    try:
        assert (await other.get(f"/api/calls/{cid}")).status_code == 403
        assert (await other.get(f"/api/calls/{cid}/pop")).status_code == 403
        assert (await other.post(f"/api/calls/{cid}/hangup")).status_code == 403
        assert (await other.get("/api/calls", params={"live": "true"})).json() == []
        assert (await sup.get(f"/api/calls/{cid}/pop")).status_code == 200
        r = await sup.get("/api/calls", params={"from": "2026-11-27T00:00:00+00:00"})
        assert [c["call_id"] for c in r.json()] == [cid]
        r = await sup.get("/api/calls", params={"from": "2026-11-27T00:00:00"})
        assert r.status_code == 400 and "time zone" in r.json()["detail"]
    finally:
        await other.aclose()
        await sup.aclose()


async def test_hold_and_resume_over_ami(env: Env) -> None:
    cid = "1764210600.1"
    await _a_connected_call(env, cid)
    r = await env.client.post(f"/api/calls/{cid}/hold", json={"on": True})
    assert r.status_code == 200 and r.json()["held"] is True
    redirect = [a for a in env.ami.sent if a["Action"] == "Redirect"]
    assert redirect == [{
        "Action": "Redirect", "Channel": "PJSIP/carrier-00000001", "Context": "hotline-hold",
        "Exten": "caller", "Priority": "1"}]
    # both legs know their peer: either hanging up while held ends the other
    assert [(a["Channel"], a["Value"]) for a in env.ami.sent
            if a.get("Variable") == "HOTLINE_HOLD_PEER"] == [
        ("PJSIP/carrier-00000001", "PJSIP/seat01-00000007"),
        ("PJSIP/seat01-00000007", "PJSIP/carrier-00000001")]
    assert (await env.client.get(f"/api/calls/{cid}")).json()["held"] is True
    r = await env.client.post(f"/api/calls/{cid}/hold", json={"on": False})
    assert r.status_code == 200 and r.json()["held"] is False
    assert env.ami.sent[-1] == {"Action": "Redirect", "Channel": "PJSIP/seat01-00000007",
                                   "Context": "hotline-hold", "Exten": "resume",
                                   "Priority": "1"}


async def test_transfer_to_a_skill_requeues_the_caller_in_our_acd(env: Env) -> None:
    cid = "1764210600.1"
    await _a_connected_call(env, cid)
    r = await env.client.post(f"/api/calls/{cid}/transfer", json={"skill": "repair"})
    assert r.status_code == 200, r.text
    assert env.ami.sent[-2:] == [
        {"Action": "Setvar", "Channel": "PJSIP/carrier-00000001", "Variable": "HOTLINE_SKILL",
         "Value": "repair"},
        {"Action": "Redirect", "Channel": "PJSIP/carrier-00000001", "Context": "hotline-wait",
         "Exten": "s", "Priority": "1"}]
    call = env.service.engine.calls[cid]
    assert (str(call.state), call.skill) == ("waiting", "repair")
    assert str(env.service.engine.agents["A001"].state) == "wrap_up"
    # the tracker now counts the next offer and answer of this caller
    assert env.tracker.apply(CallOffered(cid, "seat05")) == [CallOffered(cid, "seat05")]
    # no longer the agent's call to control
    r = await env.client.post(f"/api/calls/{cid}/hangup")
    assert r.status_code == 403
    # the supervisor's live calls show it waiting with nobody (it kept showing A001, with
    # listen, whisper and barge offered: issue 14 §6)
    sup = await env.as_user("S01")
    try:
        live = (await sup.get("/api/calls", params={"live": "true"})).json()
        assert [(c["call_id"], c["live_state"], c["agent_id"], c["seat"]) for c in live] == [
            (cid, "waiting", None, None)]
    finally:
        await sup.aclose()


async def test_transfer_to_an_agent_rings_that_seat(env: Env) -> None:
    cid = "1764210600.1"
    await _a_connected_call(env, cid)
    r = await env.client.post(f"/api/calls/{cid}/transfer", json={"agent_id": "A002"})
    assert r.status_code == 409 and "no agent A002 is logged in" in r.json()["detail"]
    # the desktop's picker offers the agents ready now (names and skills only), not the asker
    assert (await env.client.get("/api/agents/transfer-targets")).json() == []
    other = await env.as_user("A002", "seat02")
    try:
        r = await env.client.post(f"/api/calls/{cid}/transfer", json={"agent_id": "A002"})
        assert r.status_code == 409 and "agent A002 is not ready" in r.json()["detail"]
        assert (await other.post("/api/agents/A002/state", json={"state": "ready"})
                ).status_code == 200
        targets = (await env.client.get("/api/agents/transfer-targets")).json()
        assert [t["agent_id"] for t in targets] == ["A002"]
        assert set(targets[0]) == {"agent_id", "name", "skills"}
        assert [t["agent_id"] for t in (await other.get(
            "/api/agents/transfer-targets")).json()] == []    # never the asker
    finally:
        await other.aclose()
    r = await env.client.post(f"/api/calls/{cid}/transfer", json={"agent_id": "A002"})
    assert r.status_code == 200, r.text
    await env.settle()
    assert env.pbx.rung[-1] == ("PJSIP/carrier-00000001", "seat02")
    assert env.service.engine.calls[cid].offered_to == "A002"
    r = await env.client.post(f"/api/calls/{cid}/transfer",
                              json={"skill": "repair", "agent_id": "A002"})
    assert r.status_code == 422


@BOTH_DATABASES
async def test_consult_an_outside_number_checked_audited_then_handed_over(env: Env) -> None:
    """外线 (issue 14 §5): the directory for the picker; a number that is not a number is a
    422, one the hotline does not call out to a 403, both audited and nothing dialled; an
    allowed one reaches AMI only as its national digits, the ACD takes no agent for it, and
    completing it ends the call for the ACD (the agent wraps up) while the legs talk on."""
    cid = "1764210600.1"
    await _a_connected_call(env, cid)
    doc = (await env.client.get("/api/calls/outside-numbers")).json()
    assert doc["any_number"] is True
    assert {"name": "抢修调度", "number": "01065550101"} in doc["numbers"]
    for bad in ("+1 650 555 0100", "4008123456", "0016505550100", "95598"):
        r = await env.client.post(f"/api/calls/{cid}/consult", json={"number": bad})
        assert r.status_code == 403, (bad, r.text)
    for bad in ("139;1", "1390088\r\n0001", "", "1" * 30, "++8613900880001"):
        r = await env.client.post(f"/api/calls/{cid}/consult", json={"number": bad})
        assert r.status_code == 422, (bad, r.text)
    r = await env.client.post(f"/api/calls/{cid}/consult",
                              json={"number": "13900880001", "agent_id": "A002"})
    assert r.status_code == 422
    assert env.ami.named("Redirect") == []
    # another agent may not dial out on this call
    other = await env.as_user("A002", "seat02")
    try:
        r = await other.post(f"/api/calls/{cid}/consult", json={"number": "13900880001"})
        assert r.status_code == 403
    finally:
        await other.aclose()
    r = await env.client.post(f"/api/calls/{cid}/consult", json={"number": "+86 139-0088-0001"})
    assert r.status_code == 200, r.text
    assert r.json()["consult"]["outside"] == {"number": "13900880001", "name": ""}
    assert r.json()["consult"]["agent_id"] is None
    assert [(a["Channel"], a["Value"]) for a in env.ami.sent
            if a.get("Variable") == "HOTLINE_CONSULT_NUMBER"] == [
        ("PJSIP/seat01-00000007", "13900880001")]
    assert env.ami.named("Redirect")[-1] == {
        "Action": "Redirect", "Channel": "PJSIP/seat01-00000007", "Context": "hotline-consult",
        "Exten": "out", "Priority": "1"}
    assert dict(env.service.view.consults) == {}  # no agent of ours taken
    # not answered yet: nothing to complete
    r = await env.client.post(f"/api/calls/{cid}/consult/complete")
    assert r.status_code == 409 and "not answered" in r.json()["detail"]
    env.ami.variables["BRIDGEPEER"] = "PJSIP/carrier-out-0000000a"
    r = await env.client.post(f"/api/calls/{cid}/consult/complete")
    assert r.status_code == 200, r.text
    assert env.ami.named("Redirect")[-1] == {
        "Action": "Redirect", "Channel": "PJSIP/carrier-out-0000000a",
        "Context": "hotline-hold", "Exten": "resume", "Priority": "1"}
    assert ("PJSIP/carrier-00000001", "HOTLINE_SURVEY_SEAT", "") in [
        (a["Channel"], a["Variable"], a["Value"]) for a in env.ami.named("Setvar")]
    await env.settle()
    assert cid not in env.service.engine.calls
    assert str(env.service.engine.agents["A001"].state) == "wrap_up"
    told = [p for t, p in env.bus.sent if t == f"hotline/calls/{cid}/events"
            and p.get("event") == "transferred_out"]
    assert [(p["agent_id"], p["detail"]) for p in told] == [
        ("A001", {"number": "13900880001", "how": "complete"})]
    with env.ctx.sessions() as s:
        rows = s.execute(select(AuditLog.actor, AuditLog.action, AuditLog.allowed,
                                AuditLog.detail).where(AuditLog.target == cid)
                         .order_by(AuditLog.id)).all()
    assert [(who, what, ok, d.get("number")) for who, what, ok, d in rows] == [
        ("A001", "call.consult_outside", False, "16505550100"),
        ("A001", "call.consult_outside", False, "4008123456"),
        ("A001", "call.consult_outside", False, "0016505550100"),
        ("A001", "call.consult_outside", False, "95598"),
        ("A001", "call.consult_outside", True, "13900880001"),
        ("A001", "call.consult_complete", False, "13900880001"),
        ("A001", "call.consult_complete", True, "13900880001")]


async def test_a_supervisor_hangs_up_a_call_and_it_is_audited(env: Env) -> None:
    cid = "1764210600.1"
    await _a_connected_call(env, cid)
    sup = await env.as_user("S03")
    try:
        r = await sup.post(f"/api/calls/{cid}/hangup")
        assert r.status_code == 200
    finally:
        await sup.aclose()
    # the agent side ends a connected call: the agent's leg, as the agent's phone would (the
    # dialplan then hangs the caller up, or asks them to rate the call: the post-call survey)
    assert env.ami.sent[-1] == {"Action": "Hangup", "Channel": "PJSIP/seat01-00000007",
                                   "Cause": "16"}
    with env.ctx.sessions.begin() as s:
        row = s.execute(select(AuditLog.actor, AuditLog.action, AuditLog.target,
                               AuditLog.allowed)).one()
    assert tuple(row) == ("S03", "call.hangup", cid, True)


async def test_a_held_call_is_hung_up_on_the_callers_side(env: Env) -> None:
    """On hold the caller hears music alone: hanging up ends the caller's channel (no survey
    for a caller the agent left on hold), and the agent's leg waiting in hotline-hold."""
    cid = "1764210600.1"
    await _a_connected_call(env, cid)
    assert (await env.client.post(f"/api/calls/{cid}/hold", json={"on": True})).json()["held"]
    n = len(env.ami.sent)
    assert (await env.client.post(f"/api/calls/{cid}/hangup")).status_code == 200
    assert [(a["Action"], a["Channel"]) for a in env.ami.sent[n:]] == [
        ("Hangup", "PJSIP/carrier-00000001"), ("Hangup", "PJSIP/seat01-00000007")]


async def test_call_control_without_a_pbx_is_a_clear_409(env: Env) -> None:
    cid = "1764210600.1"
    await _a_connected_call(env, cid)
    env.ctx.calls = None
    r = await env.client.post(f"/api/calls/{cid}/hold", json={"on": True})
    assert r.status_code == 409 and "not running" in r.json()["detail"]


# ------------------------------------------------------------------------ figures


@BOTH_DATABASES
async def test_wallboard_today_service_level_answer_rate_and_abandoned(env: Env) -> None:
    day = T0.replace(hour=1)  # 09:xx in Beijing: today
    rows = [  # (queued +s answered, outcome)
        (5, None), (15, None), (19, None), (25, None),  # answered: 3 within 20 s, 1 after
        (None, "abandoned"),  # abandoned after 30 s
        (None, "abandoned-early"),  # abandoned within 10 s: not counted against the SL
    ]
    with env.ctx.sessions.begin() as s:
        for i, (answered_after, outcome) in enumerate(rows):
            q = day + timedelta(minutes=i)
            early = outcome == "abandoned-early"
            s.add(Call(call_id=f"d{i}", uniqueid=f"d{i}", caller_number="1380000000",
                       dnis="95598", started_at=q - timedelta(seconds=30), queued_at=q,
                       answered_at=q + timedelta(seconds=answered_after)
                       if answered_after is not None else None,
                       ended_at=q + timedelta(seconds=10 if early else 30 if outcome else 200),
                       outcome="abandoned" if outcome else "transfer", ivr_path=[],
                       skill="general"))
        # yesterday's call does not count
        s.add(Call(call_id="y1", uniqueid="y1", caller_number="1", dnis="95598",
                   started_at=day - timedelta(days=1), queued_at=day - timedelta(days=1),
                   answered_at=None, ended_at=None, outcome="abandoned", ivr_path=[]))
    assert (await env.login("S01")).status_code == 200
    r = await env.client.get("/api/wallboard")
    assert r.status_code == 200, r.text
    today = r.json()["today"]
    # as the workload reports count (REPORTS.md): the caller who hung up within 20 s is a
    # short abandon, apart, in neither offered nor abandoned
    assert today == {"day": "2026-11-27", "offered": 5, "answered": 4, "abandoned": 1,
                     "abandoned_short": 1, "answered_in_20s": 3, "service_level": 0.6,
                     "answer_rate": 0.8, "abandon_rate": 0.2, "asa_s": 16.0, "aht_s": 184.0,
                     "deflected": 0}
    # one definition everywhere: the skill row says what the center tile says
    (general,) = [k for k in r.json()["skills"] if k["skill"] == "general"]
    assert {k: general[k] for k in today if k != "day"} == {
        k: v for k, v in today.items() if k != "day"}
    # the trend: every 15 minutes of the day so far, the calls in the interval they ended in
    trend = r.json()["trend"]
    assert len(trend) == 43 and trend[0]["at"].startswith("2026-11-27T00:00:00+08:00")
    assert trend[38]["at"].startswith("2026-11-27T09:30:00") and trend[38]["offered"] == 5
    assert sum(p["offered"] for p in trend) == 5
    assert r.json()["levels"] == {"longest_wait": "ok", "service_level": "red",
                                  "abandon_rate": "red", "agents_ready": "red"}
    assert r.json()["thresholds"]["service_level_red"] == 0.8
    assert {a["agent_id"] for a in r.json()["agents"]} >= {"A001", "A050"}
    r = await env.client.get("/api/queues")
    assert r.status_code == 200 and isinstance(r.json(), list)


async def test_queues_show_the_live_acd(env: Env) -> None:
    await _a_connected_call(env)
    r = await env.client.get("/api/queues")
    general = next(q for q in r.json() if q["skill"] == "general")
    assert general["agents_by_state"]["on_call"] == 1 and general["answered"] == 1
    assert general["service_level_20s"] == 1.0


async def test_errors_are_json_with_a_detail(env: Env) -> None:
    r = await env.client.get("/api/nothing-here")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    r = await env.client.get("/api/openapi.json")
    assert r.status_code == 401  # admins only (tests/contract/test_web_security.py)
    admin = await env.as_user("admin")
    r = await admin.get("/api/openapi.json")
    assert r.status_code == 200 and "/api/auth/login" in r.json()["paths"]
    r = await env.client.get("/api/health")
    assert r.json() == {"ok": True, "acd": True, "pbx": True}


async def test_the_agents_key_pad_sends_keys_to_the_far_end(env: Env) -> None:
    """Issue 14 §6: a DTMF pad for a party that is an IVR: each key a PlayDTMF on the caller's
    channel, in order; only telephone keys ever reach AMI; only the agent on the call."""
    cid = "1764210600.1"
    await _a_connected_call(env, cid)
    r = await env.client.post(f"/api/calls/{cid}/dtmf", json={"digits": "12#"})
    assert r.status_code == 200, r.text
    sent = [a for a in env.ami.sent if a["Action"] == "PlayDTMF"]
    assert [(a["Channel"], a["Digit"]) for a in sent] == [
        ("PJSIP/carrier-00000001", "1"), ("PJSIP/carrier-00000001", "2"),
        ("PJSIP/carrier-00000001", "#")]
    for digits in ("1\r\nAction: Hangup", "", "x", "1" * 33):
        r = await env.client.post(f"/api/calls/{cid}/dtmf", json={"digits": digits})
        assert r.status_code == 422, (digits, r.text)
    assert len([a for a in env.ami.sent if a["Action"] == "PlayDTMF"]) == 3
    other = await env.as_user("A002", "seat02")
    try:
        r = await other.post(f"/api/calls/{cid}/dtmf", json={"digits": "1"})
        assert r.status_code == 403
    finally:
        await other.aclose()


# ------------------------------------------------------------------------ survey report


@BOTH_DATABASES
async def test_the_survey_report_per_agent_and_per_skill_for_supervisors(env: Env) -> None:
    """GET /api/reports/surveys: the post-call surveys offered on the center's local days
    (today by default), per agent, per skill and in all."""
    from cti.db.calls import record_survey

    local = timedelta(hours=8)  # Asia/Shanghai: T0 is 10:30 on 2026-11-27 there
    rows = [("1764210700.1", T0, "A001", "general", 5), ("1764210700.2", T0, "A001", "general", 4),
            ("1764210700.3", T0, "A002", "repair", None),
            # 23:59 local the day before, and 00:00 local the day after: other days
            ("1764210700.4", T0 - timedelta(hours=10, minutes=31), "A002", "repair", 1),
            ("1764210700.5", T0 + timedelta(hours=13, minutes=30), "A002", "repair", 2)]
    with env.ctx.sessions.begin() as s:
        for cid, at, agent, skill, score in rows:
            record_call_start(s, call_id=cid, uniqueid=cid, caller_number="13800000001",
                              dnis="95598", now=at)
            record_survey(s, cid, at=at, agent_id=agent, skill=skill, score=score)
    assert (T0 + local).date().isoformat() == "2026-11-27"
    assert (await env.login("A001", "seat01")).status_code == 200
    assert (await env.client.get("/api/reports/surveys")).status_code == 403  # agents: no
    sup = await env.as_user("S01")
    try:
        r = await sup.get("/api/reports/surveys")
        assert r.status_code == 200, r.text
        doc = r.json()
        assert (doc["from"], doc["to"], doc["timezone"]) == ("2026-11-27", "2026-11-27",
                                                             "Asia/Shanghai")
        assert doc["total"] == {"offered": 3, "answered": 2, "average": 4.5,
                                "scores": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1}}
        assert [(a["agent_id"], bool(a["name"]), a["offered"], a["answered"], a["average"])
                for a in doc["by_agent"]] == [("A001", True, 2, 2, 4.5),
                                              ("A002", True, 1, 0, None)]
        assert [(k["skill"], k["offered"], k["answered"]) for k in doc["by_skill"]] == [
            ("general", 2, 2), ("repair", 1, 0)]
        # three days: the one before and the one after too
        r = await sup.get("/api/reports/surveys",
                          params={"from": "2026-11-26", "to": "2026-11-28"})
        assert r.json()["total"]["offered"] == 5
        assert [(k["skill"], k["offered"], k["average"]) for k in r.json()["by_skill"]] == [
            ("general", 2, 4.5), ("repair", 3, 1.5)]
        for bad in ({"from": "2026-11-28", "to": "2026-11-27"},
                    {"from": "2025-01-01", "to": "2026-11-27"},
                    {"from": "9999-12-31"}, {"from": "0001-01-01"}):  # found by the fuzzer
            assert (await sup.get("/api/reports/surveys", params=bad)).status_code == 400
        assert (await sup.get("/api/reports/surveys",
                              params={"from": "27/11/2026"})).status_code == 422
    finally:
        await sup.aclose()


# ---------------------------------------------------------------------- workload reports


@BOTH_DATABASES
async def test_the_workload_reports_and_their_exports_for_supervisors(env: Env) -> None:
    """GET /api/reports/workload and /workorders (issue 15 §4): counted by the aggregator,
    read from the report tables; CSV and XLSX exports of the same rows read back; agents 403;
    bad windows 400."""
    import csv
    import io

    from openpyxl import load_workbook

    from cti.db import reports, workorder_reports

    sec = timedelta(seconds=1)
    with env.ctx.sessions.begin() as s:
        for i, (wait, talk) in enumerate([(4, 100), (40, 200), (10, None), (50, None)]):
            q = T0 + i * 60 * sec
            s.add(Call(call_id=f"w{i}", uniqueid=f"w{i}", caller_number="1", dnis="95598",
                       ivr_path=[], started_at=q, queued_at=q, skill="general",
                       answered_at=q + wait * sec if talk else None,
                       agent_id="A001" if talk else None,
                       ended_at=q + (wait + (talk or 0)) * sec,
                       outcome="transfer" if talk else "abandoned"))
    tz = ZoneInfo("Asia/Shanghai")
    reports.run_pending(env.ctx.sessions, T0 + timedelta(hours=1), tz=tz)
    workorder_reports.run_pending(env.ctx.sessions, T0 + timedelta(days=1), tz=tz)
    assert (await env.login("A001", "seat01")).status_code == 200
    for path in ("/api/reports/workload", "/api/reports/workload.csv",
                 "/api/reports/workorders", "/api/reports/workorders.xlsx"):
        assert (await env.client.get(path)).status_code == 403, path  # agents: no
    sup = await env.as_user("S01")
    try:
        r = await sup.get("/api/reports/workload", params={"by": "skill"})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert (doc["from"], doc["interval"], doc["by"]) == ("2026-11-27", "day", "skill")
        [row] = [x for x in doc["rows"] if x["key"] == "general"]
        f = row["figures"]
        # the 10 s abandon is short (within 20 s): apart, not offered; SL 1 / (2 + 1)
        assert (f["offered"], f["answered"], f["abandoned"], f["abandoned_short"]) == (
            3, 2, 1, 1)
        assert (f["service_level"], f["asa_s"], f["avg_talk_s"]) == (0.3333, 22.0, 150.0)
        r = await sup.get("/api/reports/workload", params={"interval": "15"})
        assert r.status_code == 200 and r.json()["rows"][0]["period"].endswith("+08:00")
        r = await sup.get("/api/reports/workload.csv", params={"by": "skill"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        back = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert [(b["key"], b["offered"]) for b in back if b["key"] == "general"] == [
            ("general", "3")]
        r = await sup.get("/api/reports/workload.xlsx")
        assert r.status_code == 200, r.text
        sheet = load_workbook(io.BytesIO(r.content)).active
        assert sheet is not None
        values = list(sheet.iter_rows(values_only=True))
        assert values[1][list(values[0]).index("answered")] == 2
        r = await sup.get("/api/reports/workorders", params={"by": "type",
                                                             "interval": "month"})
        assert r.status_code == 200, r.text
        r = await sup.get("/api/reports/workorders.csv")
        assert r.status_code == 200 and r.content.decode("utf-8-sig").startswith("period,")
        for path, bad in (("/api/reports/workload", {"from": "2026-11-28", "to": "2026-11-27"}),
                          ("/api/reports/workload", {"from": "2026-10-01", "interval": "15",
                                                     "to": "2026-11-27"}),
                          ("/api/reports/workorders", {"from": "9999-12-31"}),
                          ("/api/reports/workload.xlsx", {"from": "0001-01-01"})):
            assert (await sup.get(path, params=bad)).status_code == 400, (path, bad)
        assert (await sup.get("/api/reports/workload",
                              params={"interval": "7"})).status_code == 422
        assert (await sup.get("/api/reports/workload.pdf")).status_code == 422
    finally:
        await sup.aclose()


async def test_an_outside_conference_the_agent_leaves_then_the_outside_party(env: Env) -> None:
    """三方 with an outside number: the outside party is a party (the supervisor sees it); the
    agent leaving hands the call out (the ACD ends it, the agent wraps up) and the caller and
    the outside party talk on; the outside party hanging up then ends the caller's leg."""
    cid = "1764210600.1"
    await _a_connected_call(env, cid)
    r = await env.client.post(f"/api/calls/{cid}/consult", json={"number": "01065550101"})
    assert r.status_code == 200, r.text
    assert r.json()["consult"]["outside"] == {"number": "01065550101", "name": "抢修调度"}
    env.ami.variables["BRIDGEPEER"] = "PJSIP/carrier-out-0000000a"
    r = await env.client.post(f"/api/calls/{cid}/conference")
    assert r.status_code == 200, r.text
    assert r.json()["consult"]["parties"] == ["A001", "01065550101"]
    assert [(a["Channel"], a["Context"], a["Exten"]) for a in env.ami.named("Redirect")[-2:]] \
        == [("PJSIP/carrier-00000001", "hotline-conf", "caller"),
            ("PJSIP/carrier-out-0000000a", "hotline-conf", "agent")]
    sup = await env.as_user("S01")
    try:
        live = (await sup.get("/api/calls", params={"live": "true"})).json()
        assert live[0]["consult"]["parties"] == ["A001", "01065550101"]
    finally:
        await sup.aclose()
    r = await env.client.post(f"/api/calls/{cid}/leave")
    assert r.status_code == 200, r.text
    assert env.ami.named("Hangup")[-1]["Channel"] == "PJSIP/seat01-00000007"
    await env.settle()
    assert cid not in env.service.engine.calls
    assert str(env.service.engine.agents["A001"].state) == "wrap_up"
    hangups = len(env.ami.named("Hangup"))

    async def events() -> AsyncIterator[dict[str, str]]:
        yield {"Event": "Hangup", "Channel": "PJSIP/carrier-out-0000000a",
               "Linkedid": cid}

    calls = env.ctx.calls
    async for _ in observed(events(), calls.observe):
        pass
    await asyncio.gather(*list(calls._tasks))
    assert [a["Channel"] for a in env.ami.named("Hangup")[hangups:]] == [
        "PJSIP/carrier-00000001"]
    assert calls.parties(cid) is None


async def test_an_outside_consult_back_to_the_caller_or_unanswered(env: Env) -> None:
    """Cancel: the agent's leg goes back to the caller (hotline-hold,resume), no agent of ours
    is released; an outside party that does not answer ends the consult by itself (the Dial
    returns, HotlineConsultEnded) and the caller waits on hold for the agent."""
    cid = "1764210600.1"
    await _a_connected_call(env, cid)
    r = await env.client.post(f"/api/calls/{cid}/consult", json={"number": "13900880001"})
    assert r.status_code == 200, r.text
    r = await env.client.post(f"/api/calls/{cid}/consult/cancel")
    assert r.status_code == 200, r.text
    assert env.ami.named("Redirect")[-1] == {
        "Action": "Redirect", "Channel": "PJSIP/seat01-00000007", "Context": "hotline-hold",
        "Exten": "resume", "Priority": "1"}
    doc = (await env.client.get(f"/api/calls/{cid}")).json()
    assert (doc["consult"], doc["held"], doc["agent_id"]) == (None, False, "A001")
    assert str(env.service.engine.agents["A001"].state) == "on_call"

    r = await env.client.post(f"/api/calls/{cid}/consult", json={"number": "13900880001"})
    assert r.status_code == 200, r.text

    async def events() -> AsyncIterator[dict[str, str]]:
        yield {"Event": "UserEvent", "UserEvent": "HotlineConsultEnded",
               "Context": "hotline-consult", "Channel": "PJSIP/seat01-00000007",
               "DialStatus": "NOANSWER", "Linkedid": cid}

    calls = env.ctx.calls
    async for _ in observed(events(), calls.observe):
        pass
    await asyncio.gather(*list(calls._tasks))
    doc = (await env.client.get(f"/api/calls/{cid}")).json()
    assert (doc["consult"], doc["held"], doc["agent_id"]) == (None, True, "A001")
    r = await env.client.post(f"/api/calls/{cid}/hold", json={"on": False})
    assert r.status_code == 200 and r.json()["held"] is False


async def test_the_outside_party_leaving_a_conference_the_agent_is_on(env: Env) -> None:
    """Any party may leave: the outside party hangs up, the agent and the caller talk on in the
    conference (the call stays the agent's); the agent leaving then ends the caller's leg."""
    cid = "1764210600.1"
    await _a_connected_call(env, cid)
    assert (await env.client.post(f"/api/calls/{cid}/consult",
                                  json={"number": "13900880001"})).status_code == 200
    env.ami.variables["BRIDGEPEER"] = "PJSIP/carrier-out-0000000a"
    assert (await env.client.post(f"/api/calls/{cid}/conference")).status_code == 200
    hangups = len(env.ami.named("Hangup"))

    async def events() -> AsyncIterator[dict[str, str]]:
        yield {"Event": "Hangup", "Channel": "PJSIP/carrier-out-0000000a", "Linkedid": cid}

    calls = env.ctx.calls
    async for _ in observed(events(), calls.observe):
        pass
    await asyncio.gather(*list(calls._tasks))
    assert len(env.ami.named("Hangup")) == hangups  # nobody else hung up
    doc = (await env.client.get(f"/api/calls/{cid}")).json()
    assert (doc["consult"]["state"], doc["consult"]["parties"]) == ("conference", ["A001"])
    assert str(env.service.engine.agents["A001"].state) == "on_call"
    r = await env.client.post(f"/api/calls/{cid}/leave")
    assert r.status_code == 200, r.text
    assert [a["Channel"] for a in env.ami.named("Hangup")[hangups:]] == [
        "PJSIP/seat01-00000007", "PJSIP/carrier-00000001"]
