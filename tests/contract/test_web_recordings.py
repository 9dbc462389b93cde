"""The recordings web API (agent_desktop/api/recordings.py) over the ASGI transport, on a seeded
SQLite database with a real wav on disk and a fake AMI: search, the audio with Range (206),
play-to-phone, and that every access and every refusal is audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from agent_desktop.app import create_app
from agent_desktop.auth import start_session
from agent_desktop.context import WebContext
from config.recorder import RecorderSettings
from config.settings import WebSettings, load_settings
from cti.db.models_recordings import AuditLog
from cti.db.recordings import RecordingFacts, index_recording
from cti.db.session import make_engine, make_session_factory
from hotline.wiring import build_services
from recorder.audio import inspect
from tests.support.fakes import FakeAmi
from tests.support.seeded_db import SeededDb
from tests.support.wav import write_tone_wav

T0 = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
REL = "20261127/1764210600.7_1764210612.9_seat07.wav"


@dataclass
class Env:
    client: httpx.AsyncClient
    ctx: WebContext
    ami: FakeAmi
    rec_id: int
    wav: bytes

    def as_user(self, user_id: str, role: str, seat: str | None = None) -> dict[str, str]:
        with self.ctx.sessions.begin() as s:
            token, _ = start_session(s, self.ctx, user_id=user_id, role=role, seat=seat,
                                     lang="zh", now=T0)
        return {"authorization": f"Bearer {token}"}

    def audit(self) -> list[AuditLog]:
        with self.ctx.sessions() as s:
            return list(s.scalars(select(AuditLog).where(AuditLog.action.like("recording.%"))
                                  .order_by(AuditLog.id)))


@pytest.fixture
async def env(seeded_db: SeededDb, tmp_path: Path) -> AsyncIterator[Env]:
    engine = make_engine(seeded_db(tmp_path))
    sessions = make_session_factory(engine)
    storage = tmp_path / "recordings"
    write_tone_wav(storage / REL, 3.0, amplitude=6000)
    facts = inspect(storage / REL)
    with sessions.begin() as s:
        rec = index_recording(s, RecordingFacts(
            rel_path=REL, started_at=T0 - timedelta(hours=1), duration_s=facts.duration_s,
            size=facts.size, sha256=facts.sha256, indexed_by="event", queue="general",
            caller_number="13900001111"), T0)
        rec_id = rec.id
    ami = FakeAmi()
    settings = replace(load_settings(env={}), state_dir=tmp_path, web=WebSettings(),
                       recorder=RecorderSettings(storage_dir=storage))
    ctx = build_services(settings, sessions, clock=lambda: T0).web_context(pbx=ami)
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://desk") as client:
        yield Env(client, ctx, ami, rec_id, (storage / REL).read_bytes())
    engine.dispose()


async def test_supervisor_searches_and_every_search_is_audited(env: Env) -> None:
    h = env.as_user("S01", "supervisor")
    r = await env.client.get("/api/recordings", params={"caller": "13900001111",
                                                        "queue": "general"}, headers=h)
    assert r.status_code == 200, r.text
    [doc] = r.json()
    assert (doc["id"], doc["call_id"], doc["seat"], doc["file"]) == (
        env.rec_id, "1764210600.7", "seat07", REL)
    assert doc["duration_s"] == pytest.approx(3.0)
    r = await env.client.get("/api/recordings", params={"min_duration": 10}, headers=h)
    assert r.json() == []
    r = await env.client.get("/api/recordings", params={"min_duration": 5, "max_duration": 1},
                             headers=h)
    assert r.status_code == 400 and "min_duration" in r.json()["detail"]
    r = await env.client.get("/api/recordings", params={"from": "yesterday"}, headers=h)
    assert r.status_code == 422
    rows = env.audit()
    assert [(a.actor, a.action, a.allowed) for a in rows] == [
        ("S01", "recording.search", True), ("S01", "recording.search", True)]
    assert rows[0].detail["filters"] == {"caller": "13900001111", "queue": "general"}
    assert rows[0].detail["results"] == 1 and rows[0].at == T0


async def test_audio_whole_and_by_range_so_a_player_can_seek(env: Env) -> None:
    h = env.as_user("S01", "supervisor")
    url = f"/api/recordings/{env.rec_id}/audio"
    r = await env.client.get(url, headers=h)
    assert r.status_code == 200
    assert r.headers["content-type"] == "audio/wav"
    assert r.headers["accept-ranges"] == "bytes"
    assert r.content == env.wav
    r = await env.client.get(url, headers={**h, "range": "bytes=1000-1999"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 1000-1999/{len(env.wav)}"
    assert r.content == env.wav[1000:2000]
    r = await env.client.get(url, headers={**h, "range": f"bytes={len(env.wav) + 10}-"})
    assert r.status_code == 416
    ranges = [a.detail.get("range") for a in env.audit() if a.action == "recording.audio"]
    assert ranges[:2] == [None, "bytes=1000-1999"]


async def test_agents_are_refused_everything_and_each_refusal_is_audited(env: Env) -> None:
    h = env.as_user("A001", "agent", "seat01")
    for method, url in (("GET", "/api/recordings"),
                        ("GET", f"/api/recordings/{env.rec_id}"),
                        ("GET", f"/api/recordings/{env.rec_id}/audio"),
                        ("POST", f"/api/recordings/{env.rec_id}/play-to-phone")):
        r = await env.client.request(method, url, headers=h)
        assert r.status_code == 403, (url, r.text)
        assert "supervisors" in r.json()["detail"]
    refused = env.audit()
    assert [(a.actor, a.role, a.action, a.allowed, a.detail["reason"]) for a in refused] == [
        ("A001", "agent", "recording.search", False, "role"),
        ("A001", "agent", "recording.view", False, "role"),
        ("A001", "agent", "recording.audio", False, "role"),
        ("A001", "agent", "recording.play_to_phone", False, "role")]
    assert env.ami.sent == []
    r = await env.client.get("/api/recordings")
    assert r.status_code == 401


async def test_play_to_phone_rings_the_supervisors_own_phone_once(env: Env) -> None:
    h = env.as_user("S02", "supervisor")
    r = await env.client.post(f"/api/recordings/{env.rec_id}/play-to-phone", headers=h)
    assert r.status_code == 202, r.text
    assert r.json() == {"recording_id": env.rec_id, "call_id": "1764210600.7",
                        "endpoint": "sup02", "status": "ringing"}
    [orig] = env.ami.sent
    assert orig["Action"] == "Originate" and orig["Channel"] == "PJSIP/sup02"
    assert orig["Application"] == "Playback"
    assert orig["Data"] == "/var/lib/hotline/recordings/" + REL.removesuffix(".wav")
    assert env.ami.idempotent == [False]  # never re-sent after a reconnect
    [a] = env.audit()
    assert (a.actor, a.action, a.target, a.allowed, a.detail["endpoint"]) == (
        "S02", "recording.play_to_phone", str(env.rec_id), True, "sup02")


async def test_play_to_phone_without_a_pbx_or_a_phone_is_a_clear_409(env: Env) -> None:
    settings = env.ctx.settings
    # a center with one supervisor phone (sup01): S03 has none of their own
    env.ctx.settings = replace(settings, pbx=replace(settings.pbx, supervisors=1))
    h = env.as_user("S03", "supervisor")
    r = await env.client.post(f"/api/recordings/{env.rec_id}/play-to-phone", headers=h)
    assert r.status_code == 409 and "supervisor phone" in r.json()["detail"]
    env.ctx.settings = settings
    env.ctx.pbx = None
    h = env.as_user("S01", "supervisor")
    r = await env.client.post(f"/api/recordings/{env.rec_id}/play-to-phone", headers=h)
    assert r.status_code == 409 and "PBX" in r.json()["detail"]
    assert [(a.actor, a.allowed, a.detail["reason"]) for a in env.audit()] == [
        ("S03", False, "no_phone"), ("S01", False, "pbx_unavailable")]


async def test_unknown_or_missing_recordings_are_404_and_audited(env: Env) -> None:
    h = env.as_user("S01", "supervisor")
    r = await env.client.get("/api/recordings/999999/audio", headers=h)
    assert r.status_code == 404 and r.json()["detail"] == "no such recording"
    (env.ctx.settings.recorder.storage_dir / REL).unlink()
    r = await env.client.get(f"/api/recordings/{env.rec_id}/audio", headers=h)
    assert r.status_code == 404 and "missing" in r.json()["detail"]
    assert [(a.target, a.allowed, a.detail["reason"]) for a in env.audit()] == [
        ("999999", False, "not_found"), (str(env.rec_id), False, "file_missing")]
