"""GET /api/auth/mqtt (issue 10, defect 2; docs/mqtt.md "Who may publish what"): a logged-in
desktop gets its own broker credential, never another's, whatever its role; anonymous callers
get 401; each hand-out is audited and never cached. Over the ASGI transport on a seeded SQLite
database with the real ACD service in the same loop, and credentials rendered the way
`hotline up` renders them (asterisk_conf/mosquitto.py) into the test's state dir. Whether the
credential then reaches only its own topics is shown against a real broker and CTI
(tests/contract/test_mqtt_broker.py, tests/integration/test_mqtt_auth.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from acd.model import AcdConfig
from agent_desktop.app import create_app
from agent_desktop.context import WebContext
from asterisk_conf.mosquitto import (
    CTI_USER,
    OBSERVER_USER,
    credentials_path,
    load_or_create_credentials,
)
from callcenter.acd_service import AcdService
from callcenter.agent_commands import AgentCommands
from callcenter.call_control import CallControl
from config.settings import load_settings
from cti.ami.translate import CallTracker
from cti.db.acd_store import DbAcdStore
from cti.db.login_limits import LoginPolicy
from cti.db.models_recordings import AuditLog
from cti.db.mqtt_logins import DbMqttDirectory
from cti.db.session import make_engine, make_session_factory
from hotline.wiring import build_services
from tests.support.fakes import FakeAmi, FakeBus, FakePbx
from tests.support.seeded_db import SeededDb

PASSWORD = "95598"  # the demo seed's
SEATS = {f"seat{i:02d}" for i in range(1, 51)}
BASE = "http://desk"
POLICY = LoginPolicy(free_failures=5, ip_free_failures=20, backoff_max_s=60, window_s=900)
# who has a broker user (as `hotline up` makes one per active staff member); A050 has none yet
WITH_CREDENTIAL = ["A001", "A002", "S01", "S02", "admin"]


@dataclass
class Env:
    transport: httpx.ASGITransport
    ctx: WebContext
    creds: dict[str, str]

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport, base_url=BASE)

    @staticmethod
    async def login(c: httpx.AsyncClient, user: str, seat: str | None = None) -> None:
        r = await c.post("/api/auth/login", json={"user_id": user, "password": PASSWORD,
                                                   **({"seat": seat} if seat else {})})
        assert r.status_code == 200, r.text

    def audits(self, actor: str) -> list[AuditLog]:
        with self.ctx.sessions() as s:
            return list(s.scalars(select(AuditLog).where(AuditLog.action == "mqtt.credential",
                                                         AuditLog.actor == actor)
                                  .order_by(AuditLog.id)))


@pytest.fixture
async def env(seeded_db: SeededDb, tmp_path: Path) -> AsyncIterator[Env]:
    engine = make_engine(seeded_db(tmp_path))
    sessions = make_session_factory(engine)
    creds = load_or_create_credentials(credentials_path(tmp_path),
                                       [CTI_USER, OBSERVER_USER, *WITH_CREDENTIAL])
    pbx, bus, ami = FakePbx(), FakeBus(), FakeAmi()
    store = DbAcdStore(sessions)
    service = AcdService.create(AcdConfig(wrap_up_s=15), pbx, bus, store)
    base = load_settings(env={})
    settings = replace(base, state_dir=tmp_path,
                       mqtt=replace(base.mqtt, port=18840, tls_port=18841))
    ctx = build_services(settings, sessions, bus=bus).web_context(
        acd=service, pbx=ami, bus=bus,
        agent_commands=AgentCommands(service, bus, DbMqttDirectory(sessions, POLICY), SEATS),
        calls=CallControl(ami, service, CallTracker()))
    writer = asyncio.create_task(service.run(), name="acd")
    yield Env(httpx.ASGITransport(app=create_app(ctx)), ctx, creds)
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    engine.dispose()


async def test_anonymous_callers_get_401_and_nothing_else(env: Env) -> None:
    async with env.client() as c:
        r = await c.get("/api/auth/mqtt")
        assert r.status_code == 401
        assert not any(p in r.text for p in env.creds.values())
        r = await c.get("/api/auth/mqtt", headers={"authorization": "Bearer not-a-session"})
        assert r.status_code == 401
    with env.ctx.sessions() as s:
        assert not list(s.scalars(select(AuditLog).where(AuditLog.action == "mqtt.credential")))


@pytest.mark.parametrize(("user", "seat"), [("A001", "seat01"), ("S01", None), ("admin", None)],
                         ids=["agent", "supervisor", "admin"])
async def test_every_role_gets_its_own_credential_and_only_its_own(
        env: Env, user: str, seat: str | None) -> None:
    async with env.client() as c:
        await env.login(c, user, seat)
        r = await c.get("/api/auth/mqtt")
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        assert r.json() == {"username": user, "password": env.creds[user],
                            "host": env.ctx.settings.mqtt.host, "port": 18840,
                            "tls_port": 18841}
        # asking for someone else's changes nothing: the session says who you are
        for ask in ({"user_id": "A002"}, {"username": "S02"}, {"user": CTI_USER}):
            other = await c.get("/api/auth/mqtt", params=ask)
            assert other.status_code == 200 and other.json()["username"] == user, ask
        for name, password in env.creds.items():
            if name != user:
                assert password not in r.text and password not in other.text, name
    rows = env.audits(user)
    assert len(rows) == 4 and all(row.allowed and row.target == user for row in rows)
    assert not any(env.creds[user] in str(row.detail) for row in rows)


async def test_staff_without_a_broker_user_yet_get_503_audited(env: Env) -> None:
    async with env.client() as c:
        await env.login(c, "A050", "seat50")
        r = await c.get("/api/auth/mqtt")
        assert r.status_code == 503 and "hotline up" in r.json()["detail"]
        assert not any(p in r.text for p in env.creds.values())
    [row] = env.audits("A050")
    assert row.allowed is False and row.target == "A050"
