"""The supervision web API (agent_desktop/api/supervision.py) over the ASGI transport, on a
seeded SQLite database, with the real SupervisionService and fakes only at the ports (AMI, the
MQTT bus, the ACD's live calls): who may start, the statuses, and that refusals are audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from agent_desktop.app import create_app
from agent_desktop.auth import start_session
from agent_desktop.context import WebContext
from config.settings import WebSettings, load_settings
from cti.db.models_recordings import AuditLog
from cti.db.models_supervision import SupervisionSession
from cti.db.recorder_store import DbSupervisionAudit
from cti.db.session import make_engine, make_session_factory
from cti.notifier import Notifier
from hotline.wiring import build_services
from recorder.supervision import SupervisionService
from recorder.supervision_policy import LiveCall
from tests.support.fakes import FakeAmi, FakeBus, LiveCalls
from tests.support.seeded_db import SeededDb

T0 = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
CALL = LiveCall("1751333405.42", "connected", "A001", "seat07")


@dataclass
class Env:
    client: httpx.AsyncClient
    ctx: WebContext
    ami: FakeAmi
    service: SupervisionService | None

    def as_user(self, user_id: str, role: str, seat: str | None = None) -> dict[str, str]:
        with self.ctx.sessions.begin() as s:
            token, _ = start_session(s, self.ctx, user_id=user_id, role=role, seat=seat,
                                     lang="zh", now=T0)
        return {"authorization": f"Bearer {token}"}


async def _env(seeded_db: SeededDb, tmp_path: Path, running: bool) -> AsyncIterator[Env]:
    engine = make_engine(seeded_db(tmp_path))
    sessions = make_session_factory(engine)
    ami = FakeAmi()
    service = SupervisionService(ami, Notifier(FakeBus()), DbSupervisionAudit(sessions),
                                 LiveCalls(CALL),
                                 {f"sup{i:02d}" for i in range(1, 6)}) if running else None
    settings = replace(load_settings(env={}), state_dir=tmp_path, web=WebSettings())
    ctx = build_services(settings, sessions, clock=lambda: T0).web_context(supervision=service)
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://desk") as client:
        yield Env(client, ctx, ami, service)
    engine.dispose()


@pytest.fixture
async def env(seeded_db: SeededDb, tmp_path: Path) -> AsyncIterator[Env]:
    async for e in _env(seeded_db, tmp_path, running=True):
        yield e


@pytest.fixture
async def offline(seeded_db: SeededDb, tmp_path: Path) -> AsyncIterator[Env]:
    async for e in _env(seeded_db, tmp_path, running=False):
        yield e


async def test_supervisor_listens_switches_and_stops(env: Env) -> None:
    h = env.as_user("S02", "supervisor")
    r = await env.client.post("/api/supervision", json={"call_id": CALL.call_id,
                                                        "mode": "listen"}, headers=h)
    assert r.status_code == 201, r.text
    doc = r.json()
    sid = doc["session_id"]
    assert (doc["endpoint"], doc["agent_id"], doc["seat"], doc["state"]) == (
        "sup02", "A001", "seat07", "dialing")
    assert env.ami.sent[0]["Action"] == "Originate"
    assert env.ami.sent[0]["Channel"] == "PJSIP/sup02"
    # before the phone answers there is nothing to switch
    r = await env.client.post(f"/api/supervision/{sid}/mode", json={"mode": "barge"},
                              headers=h)
    assert r.status_code == 409 and "answered" in r.json()["detail"]
    assert env.service is not None
    env.service.on_ami_event({"Event": "ChanSpyStart", "SpyerUniqueid": f"hotline-spy-{sid}"})
    async with env.service._lock:
        await env.service._ami_event(env.service.inbox.get_nowait())
    r = await env.client.post(f"/api/supervision/{sid}/mode", json={"mode": "whisper"},
                              headers=h)
    assert r.status_code == 200 and r.json()["mode"] == "whisper"
    # ChanSpy runs: the mode's key, received on the supervisor's channel; never a Redirect
    assert [a["Action"] for a in env.ami.sent[-3:]] == ["Setvar", "Setvar", "PlayDTMF"]
    assert (env.ami.sent[-1]["Digit"], env.ami.sent[-1]["Receive"]) == ("5", "yes")
    assert not [a for a in env.ami.sent if a["Action"] == "Redirect"]
    r = await env.client.get("/api/supervision", headers=h)
    assert [s["session_id"] for s in r.json()] == [sid]
    # another supervisor may not stop it; the attempt is on record
    other = env.as_user("S03", "supervisor")
    r = await env.client.delete(f"/api/supervision/{sid}", headers=other)
    assert r.status_code == 403
    r = await env.client.delete(f"/api/supervision/{sid}", headers=h)
    assert r.status_code == 200 and r.json()["state"] == "ended"
    assert env.ami.sent[-1]["Action"] == "Hangup"
    r = await env.client.delete(f"/api/supervision/{sid}", headers=h)
    assert r.status_code == 404
    with env.ctx.sessions() as s:
        refusals = s.scalars(select(AuditLog).where(AuditLog.action == "supervision.refused")
                             ).all()
    assert [(a.actor, a.detail["action"]) for a in refusals] == [("S03", "stop")]


@pytest.mark.parametrize(("body", "status"), [
    ({"call_id": "9.9", "mode": "listen"}, 404),
    ({"call_id": CALL.call_id, "mode": "shout"}, 422),
    ({"call_id": "bad id;", "mode": "listen"}, 422),
])
async def test_bad_requests(env: Env, body: dict[str, str], status: int) -> None:
    r = await env.client.post("/api/supervision", json=body,
                              headers=env.as_user("S01", "supervisor"))
    assert r.status_code == status and r.json()["detail"], r.text
    assert not env.ami.sent


async def test_agent_refused_and_audited(env: Env) -> None:
    r = await env.client.post("/api/supervision", json={"call_id": CALL.call_id,
                                                        "mode": "barge"},
                              headers=env.as_user("A002", "agent", seat="seat02"))
    assert r.status_code == 403 and "supervisors" in r.json()["detail"]
    assert not env.ami.sent
    with env.ctx.sessions() as s:
        row = s.scalars(select(SupervisionSession)).one()
    assert (row.supervisor_id, row.outcome, row.refusal, row.mode, row.via) == (
        "A002", "refused", "forbidden", "barge", "web")


async def test_logged_out_is_401(env: Env) -> None:
    r = await env.client.post("/api/supervision", json={"call_id": CALL.call_id,
                                                        "mode": "listen"})
    assert r.status_code == 401


async def test_without_cti_agent_still_refused_and_audited(offline: Env) -> None:
    r = await offline.client.post("/api/supervision", json={"call_id": CALL.call_id,
                                                            "mode": "listen"},
                                  headers=offline.as_user("A002", "agent", seat="seat02"))
    assert r.status_code == 403
    r = await offline.client.post("/api/supervision", json={"call_id": CALL.call_id,
                                                            "mode": "listen"},
                                  headers=offline.as_user("S01", "supervisor"))
    assert r.status_code == 409 and "not running" in r.json()["detail"]
    with offline.ctx.sessions() as s:
        assert s.scalars(select(SupervisionSession.refusal)).all() == ["forbidden"]
