"""IVR flows in the admin console's API (issue 15 §2), over the ASGI transport on a copy of the
shipped flows folder: admins only; a bad edit is reported at its line and never saved; a skill
or prompt that does not exist refused; a publish from a stale base refused (409); a publish
writes the file (the registry's reload is a file edit: tests/unit/test_flow_registry.py) and is
kept as a version with who and when; a rollback publishes an old version again; every publish
and rollback audited; a path instead of a file name refused."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from cti.db.models_recordings import AuditLog
from ivr.registry import FlowRegistry
from prompts.index import PromptIndex
from tests.contract import test_web_api as web
from tests.contract.test_staff_api import _client
from tests.contract.test_web_api import BOTH_DATABASES, Env

backend, db_url, env, pg_template = web.backend, web.db_url, web.env, web.pg_template
REPO = Path(__file__).resolve().parents[2]
WELCOME = "prompt: [ivr.welcome]"


@pytest.fixture
def flows(env: Env, tmp_path: Path) -> Path:
    """The shipped flows, copied: the app under test edits this folder, never the repo's."""
    folder = tmp_path / "flows"
    shutil.copytree(REPO / "ivr" / "flows", folder)
    s = env.ctx.settings
    env.ctx.settings = replace(s, ivr=replace(s.ivr, flows_dir=folder))
    return folder


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _line_of(text: str, needle: str) -> int:
    return text[:text.index(needle)].count("\n") + 1


async def _admin(env: Env) -> httpx.AsyncClient:
    c, r = await _client(env, "admin")
    assert r.status_code == 200, r.text
    return c


def _audit(env: Env) -> list[tuple[str, str, str | None, dict[str, object]]]:
    with env.ctx.sessions() as s:
        rows = s.execute(select(AuditLog.actor, AuditLog.action, AuditLog.target,
                                AuditLog.detail).where(AuditLog.action.startswith("flow."))
                         .order_by(AuditLog.id)).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_only_admins_reach_the_flows(env: Env, flows: Path) -> None:
    anon = httpx.AsyncClient(transport=env.client._transport, base_url="http://desk")
    assert (await anon.get("/api/admin/flows")).status_code == 401
    for user, seat in (("S01", None), ("A001", "seat01")):
        c, r = await _client(env, user, seat=seat)
        assert r.status_code == 200, r.text
        for method, url, body in (
                ("GET", "/api/admin/flows", None),
                ("GET", "/api/admin/flows/main.yaml", None),
                ("POST", "/api/admin/flows/main.yaml/validate", {"text": "x"}),
                ("POST", "/api/admin/flows/main.yaml/publish",
                 {"text": "x", "base_sha256": "0" * 64}),
                ("GET", "/api/admin/flows/main.yaml/versions", None),
                ("GET", "/api/admin/prompts/ivr.welcome/zh", None)):
            r = await c.request(method, url, json=body)
            assert r.status_code == 403, (user, url, r.text)
    assert _audit(env) == []


async def test_a_flow_is_named_by_its_file_in_the_listing_never_a_path(
        env: Env, flows: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.yaml").write_text("flow: x\n")
    (flows / "linked.yaml").symlink_to(tmp_path / "secret.yaml")
    admin = await _admin(env)
    listed = (await admin.get("/api/admin/flows")).json()
    assert [f["file"] for f in listed["flows"]] == ["main.yaml"]
    assert listed["flows"][0]["flow_id"] == "main" and listed["flows"][0]["nodes"] > 20
    for name in ("..%2Fsecret.yaml", "linked.yaml", "secret.yaml", "main.yml", "MAIN.yaml",
                 "%2Fetc%2Fpasswd", "main.yaml%00", ".main.yaml"):
        r = await admin.get(f"/api/admin/flows/{name}")
        assert r.status_code in (404, 405, 422), (name, r.status_code, r.text)
        r = await admin.post(f"/api/admin/flows/{name}/validate", json={"text": "flow: x"})
        assert r.status_code in (404, 405, 422), (name, r.status_code, r.text)
    for pid, lang in (("..%2F..%2Fetc%2Fpasswd", "zh"), ("ivr.welcome", "fr"),
                      ("ivr.no_such_prompt", "zh"), ("ivr.welcome", "..")):
        r = await admin.get(f"/api/admin/prompts/{pid}/{lang}")
        assert r.status_code in (404, 422), (pid, lang, r.status_code, r.text)


@BOTH_DATABASES
async def test_a_bad_edit_is_refused_at_its_line_and_never_saved(env: Env, flows: Path
                                                                  ) -> None:
    admin = await _admin(env)
    live = (await admin.get("/api/admin/flows/main.yaml")).json()
    text, sha = live["text"], live["sha256"]
    assert text == (flows / "main.yaml").read_text(encoding="utf-8")
    cases = [
        # (kind, old, new, what the error says, the line it names)
        ("YAML syntax", "    next: language\n", "    next: [language\n", "YAML syntax error",
         "    next: language\n"),
        ("unknown node", "next: bill_lookup\n", "next: bill_lookupp\n",
         "unknown node 'bill_lookupp'", "next: bill_lookup\n"),
        ("missing prompt", WELCOME, "prompt: [ivr.welcome_v2]",
         "missing prompt 'ivr.welcome_v2'", WELCOME),
        ("unknown skill", "skill: repair", "skill: astrology", "astrology", "skill: repair"),
        ("flow id", "flow: main\n", "flow: mainline\n", "no flow with id 'main'", None),
    ]
    for kind, old, new, says, anchor in cases:
        assert old in text, kind
        r = await admin.post("/api/admin/flows/main.yaml/validate",
                             json={"text": text.replace(old, new, 1)})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["ok"] is False, kind
        hit = [e for e in doc["errors"] if says in e["message"]]
        assert hit, (kind, doc["errors"])
        if anchor is not None:
            assert hit[0] == {"file": "main.yaml", "line": _line_of(text, anchor),
                              "message": hit[0]["message"]}, kind
        r = await admin.post("/api/admin/flows/main.yaml/publish",
                             json={"text": text.replace(old, new, 1), "base_sha256": sha})
        assert r.status_code == 400 and says in r.json()["detail"], (kind, r.text)
    assert (flows / "main.yaml").read_text(encoding="utf-8") == text
    assert (await admin.get("/api/admin/flows/main.yaml/versions")).json() == []
    assert _audit(env) == []
    r = await admin.post("/api/admin/flows/main.yaml/validate", json={"text": text})
    assert r.json() == {"ok": True, "errors": []}
    r = await admin.post("/api/admin/flows/main.yaml/validate",
                         content=b'{"text": "flow: main\\ud800"}',
                         headers={"content-type": "application/json"})
    assert r.status_code == 422 and "valid string" in r.json()["detail"], r.text  # a lone surrogate


@BOTH_DATABASES
async def test_publish_keeps_versions_refuses_a_stale_base_and_rolls_back(
        env: Env, flows: Path) -> None:
    admin = await _admin(env)
    path = flows / "main.yaml"
    original = path.read_text(encoding="utf-8")
    base = (await admin.get("/api/admin/flows/main.yaml")).json()["sha256"]
    edited = original.replace(WELCOME, "prompt: [ivr.outage_apology]", 1)
    r = await admin.post("/api/admin/flows/main.yaml/diff", json={"text": edited})
    diff = r.json()["diff"]
    assert "-    prompt: [ivr.welcome]\n+    prompt: [ivr.outage_apology]\n" in diff, diff
    assert diff.startswith("--- live/main.yaml\n+++ edited/main.yaml\n")

    r = await admin.post("/api/admin/flows/main.yaml/publish",
                         json={"text": edited, "base_sha256": base})
    assert r.status_code == 201, r.text
    published = r.json()
    assert path.read_text(encoding="utf-8") == edited
    assert _names(flows) == ["main.yaml"], "a temporary file left behind"
    # a registry over the folder loads the published text as it would a file edit
    index = PromptIndex.load(env.ctx.settings.prompts.cache_dir)
    reg = FlowRegistry(flows, "main", index.has)
    assert reg.load().ok and reg.current.get("main").nodes["welcome"].prompt == [
        "ivr.outage_apology"]

    # a second admin who began from the original is refused, and nothing is written
    again = original.replace(WELCOME, "prompt: [ivr.invalid]", 1)
    r = await admin.post("/api/admin/flows/main.yaml/publish",
                         json={"text": again, "base_sha256": base})
    assert r.status_code == 409 and "changed since" in r.json()["detail"], r.text
    assert path.read_text(encoding="utf-8") == edited

    versions = (await admin.get("/api/admin/flows/main.yaml/versions")).json()
    assert [(v["source"], v["published_by"]) for v in versions] == [
        ("publish", "admin"), ("disk", "admin")]
    assert versions[0]["id"] == published["id"]
    first = versions[1]
    r = await admin.get(f"/api/admin/flows/main.yaml/versions/{first['id']}")
    assert r.json()["text"] == original
    listed = (await admin.get("/api/admin/flows")).json()["flows"][0]
    assert listed["version"] == published["id"]

    live = (await admin.get("/api/admin/flows/main.yaml")).json()["sha256"]
    r = await admin.post(f"/api/admin/flows/main.yaml/versions/{first['id']}/rollback",
                         json={"base_sha256": base})
    assert r.status_code == 409, r.text  # a rollback names its base too
    r = await admin.post(f"/api/admin/flows/main.yaml/versions/{first['id']}/rollback",
                         json={"base_sha256": live})
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "rollback" and r.json()["rollback_of"] == first["id"]
    assert path.read_text(encoding="utf-8") == original
    assert (await admin.post("/api/admin/flows/main.yaml/versions/99999/rollback",
                             json={"base_sha256": live})).status_code == 404
    audit = _audit(env)
    assert [(a, act, t) for a, act, t, _d in audit] == [
        ("admin", "flow.publish", "main.yaml"), ("admin", "flow.rollback", "main.yaml")]
    assert audit[1][3]["rollback_of"] == first["id"]


async def test_the_preview_lists_each_nodes_prompts_and_serves_their_audio(
        env: Env, flows: Path) -> None:
    admin = await _admin(env)
    refs = (await admin.get("/api/admin/flows/main.yaml/prompts")).json()
    welcome = [r for r in refs if r["node"] == "welcome"]
    assert welcome == [{"node": "welcome", "field": "prompt", "prompt_id": "ivr.welcome",
                        "languages": ["zh", "en"]}]
    index = PromptIndex.load(env.ctx.settings.prompts.cache_dir)
    for lang in ("zh", "en"):
        r = await admin.get(f"/api/admin/prompts/ivr.welcome/{lang}")
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        assert r.content == index.local_file("ivr.welcome", lang).read_bytes()
