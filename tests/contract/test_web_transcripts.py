"""The transcript and keyword-alert web API (agent_desktop/api/recordings.py, alerts.py) over
the ASGI transport on a seeded SQLite database: search by transcript text with each item's
transcript status and keywords, the transcript with word timings, the alert list, the
prefilled complaint form, the complaint order and the dismissal; agents are refused and every
access and refusal is audited; odd input is a 4xx, never a 5xx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from agent_desktop.app import create_app
from agent_desktop.auth import start_session
from agent_desktop.context import WebContext
from config.recorder import RecorderSettings
from config.settings import WebSettings, load_settings
from cti.db import transcripts as store
from cti.db.calls import record_call_start
from cti.db.models_recordings import AuditLog
from cti.db.recordings import RecordingFacts, index_recording
from cti.db.session import make_engine, make_session_factory
from hotline.wiring import build_services
from tests.support.seeded_db import SeededDb

T0 = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
CALL = "1764210600.7"
REL = f"20261127/{CALL}_1764210612.9_seat07.wav"
REL2 = f"20261127/{CALL}_1764210612.10_seat08.wav"


@dataclass
class Env:
    client: httpx.AsyncClient
    ctx: WebContext
    heard: int       # a recording transcribed, with a keyword alert
    silent: int      # one without a job

    def as_user(self, user_id: str, role: str) -> dict[str, str]:
        with self.ctx.sessions.begin() as s:
            token, _ = start_session(s, self.ctx, user_id=user_id, role=role, seat=None,
                                     lang="zh", now=T0)
        return {"authorization": f"Bearer {token}"}

    def audit(self, prefix: str) -> list[tuple[str, bool, str | None]]:
        with self.ctx.sessions() as s:
            return [(a.action, a.allowed, a.target) for a in s.scalars(
                select(AuditLog).where(AuditLog.action.like(f"{prefix}%"))
                .order_by(AuditLog.id))]


@pytest.fixture
async def env(seeded_db: SeededDb, tmp_path: Path) -> AsyncIterator[Env]:
    engine = make_engine(seeded_db(tmp_path))
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        record_call_start(s, call_id=CALL, uniqueid=CALL, caller_number="13900001111",
                          dnis="95598", now=T0 - timedelta(hours=1))
        ids = []
        for rel in (REL, REL2):
            ids.append(index_recording(s, RecordingFacts(
                rel_path=rel, started_at=T0 - timedelta(hours=1), duration_s=3.0, size=48044,
                sha256="ab" * 32, indexed_by="event", caller_number="13900001111"), T0).id)
        store.enqueue(s, ids[0], T0)
        job = store.claim_next(s, T0, 3)
        assert job is not None
        store.finish(s, job, lang="ko", model="/m/ko", text="저는 변호사 를 부를 거예요",
                     words=[{"w": "저는", "s": 0.5, "e": 0.9, "c": 0.8},
                            {"w": "변호사", "s": 1.0, "e": 1.6, "c": 0.9}],
                     hits=[{"word": "변호사", "start": 1.0}], excerpt="저는 변호사", now=T0)
    settings = replace(load_settings(env={}), state_dir=tmp_path, web=WebSettings(),
                       recorder=RecorderSettings(storage_dir=tmp_path / "recordings"))
    ctx = build_services(settings, sessions, clock=lambda: T0).web_context()
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://desk") as client:
        yield Env(client, ctx, ids[0], ids[1])
    engine.dispose()


async def test_search_by_transcript_text_and_the_transcript(env: Env) -> None:
    h = env.as_user("S01", "supervisor")
    r = await env.client.get("/api/recordings", headers=h)
    assert r.status_code == 200, r.text
    by_id = {d["id"]: d for d in r.json()}
    assert by_id[env.heard]["transcript_status"] == "done"
    assert by_id[env.heard]["keywords"] == ["변호사"]
    assert (by_id[env.silent]["transcript_status"], by_id[env.silent]["keywords"]) == \
        ("none", [])
    r = await env.client.get("/api/recordings", params={"text": "변호사를"}, headers=h)
    assert [d["id"] for d in r.json()] == [env.heard]  # "변호사 를" as heard
    r = await env.client.get("/api/recordings", params={"text": "停电"}, headers=h)
    assert r.json() == []

    r = await env.client.get(f"/api/recordings/{env.heard}/transcript", headers=h)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["recording_id"], doc["status"], doc["lang"]) == (env.heard, "done", "ko")
    assert doc["words"][1] == {"w": "변호사", "s": 1.0, "e": 1.6, "c": 0.9}
    assert doc["keywords"] == [{"word": "변호사", "start": 1.0}]
    assert doc["text"].startswith("저는 변호사")
    r = await env.client.get(f"/api/recordings/{env.silent}/transcript", headers=h)
    assert (r.json()["status"], r.json()["words"], r.json()["keywords"]) == ("none", [], [])
    r = await env.client.get("/api/recordings/999999/transcript", headers=h)
    assert r.status_code == 404
    assert ("recording.transcript", True, str(env.heard)) in env.audit("recording.transcript")
    assert ("recording.transcript", False, "999999") in env.audit("recording.transcript")


async def test_agents_are_refused_and_the_refusal_is_audited(env: Env) -> None:
    h = env.as_user("A001", "agent")
    for method, url in (("get", f"/api/recordings/{env.heard}/transcript"),
                        ("get", "/api/alerts/keywords"),
                        ("get", "/api/alerts/keywords/1/prefill"),
                        ("post", "/api/alerts/keywords/1/complaint"),
                        ("post", "/api/alerts/keywords/1/dismiss")):
        r = await getattr(env.client, method)(url, headers=h)
        assert r.status_code == 403, (url, r.text)
    refused = [a for a in env.audit("keyword_alert.") if not a[1]]
    assert len(refused) == 4
    assert ("recording.transcript", False, str(env.heard)) in env.audit("recording.transcript")
    r = await env.client.get("/api/alerts/keywords")
    assert r.status_code == 401


async def test_an_alert_is_listed_prefilled_and_becomes_a_complaint_order(env: Env) -> None:
    h = env.as_user("S01", "supervisor")
    r = await env.client.get("/api/alerts/keywords", params={"status": "open"}, headers=h)
    assert r.status_code == 200, r.text
    [alert] = r.json()
    assert (alert["recording_id"], alert["call_id"], alert["seat"], alert["status"]) == \
        (env.heard, CALL, "seat07", "open")
    assert alert["keywords"] == [{"word": "변호사", "start": 1.0}]
    r = await env.client.get(f"/api/alerts/keywords/{alert['id']}/prefill", headers=h)
    form = r.json()
    assert (form["type"], form["caller_number"], form["call_id"]) == \
        ("complaint", "13900001111", CALL)
    assert "변호사" in form["description"]

    r = await env.client.post(f"/api/alerts/keywords/{alert['id']}/complaint",
                              json={"description": "客户提到律师，要求回电"}, headers=h)
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    assert (order["type"], order["call_id"], order["caller_number"]) == \
        ("complaint", CALL, "13900001111")
    assert order["description"] == "客户提到律师，要求回电"
    r = await env.client.post(f"/api/alerts/keywords/{alert['id']}/complaint", headers=h)
    assert r.status_code == 409
    r = await env.client.post(f"/api/alerts/keywords/{alert['id']}/dismiss", headers=h)
    assert r.status_code == 409
    r = await env.client.get("/api/alerts/keywords", params={"status": "order_created"},
                             headers=h)
    [done] = r.json()
    assert done["work_order_number"] == order["number"] and done["handled_by"] == "S01"
    r = await env.client.get(f"/api/workorders/{order['number']}", headers=h)
    assert r.status_code == 200 and r.json()["call_id"] == CALL
    assert ("keyword_alert.complaint", True, str(alert["id"])) in \
        env.audit("keyword_alert.complaint")
    assert ("keyword_alert.complaint", False, str(alert["id"])) in \
        env.audit("keyword_alert.complaint")


async def test_dismiss_and_odd_input_is_never_a_server_error(env: Env) -> None:
    h = env.as_user("S01", "supervisor")
    [alert] = (await env.client.get("/api/alerts/keywords", headers=h)).json()
    r = await env.client.post(f"/api/alerts/keywords/{alert['id']}/dismiss", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    assert (await env.client.get("/api/alerts/keywords", headers=h)).json() == []
    r = await env.client.get("/api/alerts/keywords", params={"status": "all"}, headers=h)
    assert [a["status"] for a in r.json()] == ["dismissed"]
    odd = [("get", "/api/alerts/keywords", {"status": "closed"}, None),
           ("get", "/api/alerts/keywords", {"limit": "0"}, None),
           ("get", "/api/alerts/keywords", {"offset": str(2**40)}, None),
           ("get", "/api/alerts/keywords/0/prefill", None, None),
           ("get", f"/api/alerts/keywords/{2**40}/prefill", None, None),
           ("get", "/api/alerts/keywords/abc/prefill", None, None),
           ("get", "/api/alerts/keywords/424242/prefill", None, None),
           ("post", "/api/alerts/keywords/424242/complaint", None, {}),
           ("post", "/api/alerts/keywords/424242/dismiss", None, None),
           ("post", f"/api/alerts/keywords/{alert['id']}/complaint", None,
            {"description": "x" * 5000}),
           ("post", f"/api/alerts/keywords/{alert['id']}/complaint", None, [1, 2]),
           ("get", "/api/recordings", {"text": "%_\\'\"; drop table x"}, None),
           ("get", "/api/recordings", {"text": "x" * 201}, None),
           ("get", "/api/recordings", {"text": "\u0000"}, None),
           ("get", f"/api/recordings/{2**40}/transcript", None, None)]
    for method, url, params, body in odd:
        kw: dict[str, Any] = {"headers": h, "params": params}
        if method == "post" and body is not None:
            kw["json"] = body
        r = await getattr(env.client, method)(url, **kw)
        assert r.status_code < 500, (url, params, r.status_code, r.text)
        if url == "/api/recordings" and r.status_code == 200:  # a text like any other
            assert r.json() == [] or params == {"text": "\u0000"}  # NUL: no text at all
            continue
        assert r.status_code >= 400, (url, params, r.status_code, r.text)
        assert isinstance(r.json()["detail"], str)
