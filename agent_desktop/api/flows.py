"""IVR flows in the admin console (issue 15 §2): read a flow file, validate an edit with the
whole set (file:line errors), diff it against the live file, publish it, keep every published
version (cti.db.flow_versions) and roll back to one; preview a flow's prompts.

A publish writes the file in the flows folder in one rename, so that the registry's watch
reloads it exactly as an editor's save would (the whole set validates or the old set keeps
serving). It names the live text it started from (its sha256) and is refused (409) if the file
changed since: nobody overwrites another's publish unknowingly. Flows are addressed by their
file name in the folder listing, prompts by id and language in the prompt index: never a path.
Admins only; every publish and rollback is audited.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path as FsPath
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from agent_desktop.api.auth import client_ip
from agent_desktop.auth import User, ctx_of, require_role
from agent_desktop.context import WebContext
from cti.db import flow_versions, staff
from ivr import flow_edit
from ivr.schema import LANGUAGES, FlowValidationError, parse_flow, prompt_refs
from prompts.index import PromptIndex, PromptIndexError, UnknownPromptError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/admin", tags=["flows"])
admin_only = Depends(require_role("admin"))

FileName = Path(min_length=6, max_length=69, pattern=flow_edit.FILE_NAME_RE.pattern,
                examples=["main.yaml"])
VersionId = Path(ge=1, le=2**31 - 1)
PromptId = Path(min_length=1, max_length=64, pattern=r"^[a-z0-9_][a-z0-9_.]*$",
                examples=["ivr.welcome"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not logged in"}, 403: {"description": "not an admin"},
    404: {"description": "no such flow file, version or prompt"}}
PUBLISH_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS, 400: {"description": "the flow does not validate; the message lists file:line"},
    409: {"description": "the live file changed since the edit began, or the CTI may not "
                         "write the flows folder"}}
Sha = Field(pattern=r"^[0-9a-f]{64}$", description="the sha256 of the live text the edit "
                                                    "started from (FlowText.sha256)")
# one publish at a time in this process: the stale check and the write are one step
_publishing = threading.Lock()


class FlowSummary(BaseModel):
    file: str
    flow_id: str | None = Field(description="None: the file on disk does not parse")
    nodes: int
    sha256: str
    version: int | None = Field(description="the newest version kept, if it is the live text")


class ReloadOut(BaseModel):
    ok: bool
    at: str
    version: int
    errors: list[str]


class FlowList(BaseModel):
    flows: list[FlowSummary]
    reload: ReloadOut | None = Field(description="the registry's last reload (None: no CTI)")


class FlowText(BaseModel):
    file: str
    text: str
    sha256: str


# characters of a flow's text: main.yaml has ~16 000. Even JSON-escaped at 12 bytes a character
# (an astral one as two \uXXXX), a body stays under [web] max_body_bytes' 1 MiB (else a 413)
MAX_CHARS = 64 * 1024


class TextIn(BaseModel):
    text: str = Field(max_length=MAX_CHARS)


class PublishIn(TextIn):
    base_sha256: str = Sha


class RollbackIn(BaseModel):
    base_sha256: str = Sha


class ErrorOut(BaseModel):
    file: str
    line: int
    message: str


class ValidateOut(BaseModel):
    ok: bool
    errors: list[ErrorOut]


class DiffOut(BaseModel):
    diff: str
    live_sha256: str


class VersionOut(BaseModel):
    id: int
    file: str
    flow_id: str | None
    sha256: str
    source: Literal["publish", "rollback", "disk"]
    rollback_of: int | None
    published_by: str
    published_at: datetime


class VersionText(VersionOut):
    text: str


class PromptRef(BaseModel):
    node: str
    field: str
    prompt_id: str
    languages: list[str] = Field(description="the languages it is built in")


def _path(ctx: WebContext, name: str) -> FsPath:
    try:
        return flow_edit.flow_path(ctx.settings.ivr.flows_dir, name)
    except flow_edit.UnknownFlowFile as exc:
        raise HTTPException(404, str(exc)) from None


def _read(path: FsPath) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HTTPException(409, f"cannot read {path.name}: {exc}") from None


def _prompts(ctx: WebContext) -> PromptIndex | None:
    try:
        return PromptIndex.load(ctx.settings.prompts.cache_dir)
    except PromptIndexError as exc:
        log.warning("flow check without the prompt index: %s", exc)
        return None


def _check(ctx: WebContext, name: str, text: str) -> flow_edit.Check:
    """The registry's own check (its prompt index, the skills table) when the CTI runs here."""
    if ctx.flows is not None:
        has_prompt = ctx.flows.has_prompt
    else:
        index = _prompts(ctx)
        has_prompt = index.has if index is not None else None
    skills = staff.in_unit(ctx.sessions, staff.skill_names)
    return flow_edit.check_edit(ctx.settings.ivr.flows_dir, name, text,
                                entry_flow=ctx.settings.ivr.entry_flow, has_prompt=has_prompt,
                                skills=skills)


def _errors(check: flow_edit.Check) -> list[ErrorOut]:
    return [ErrorOut(file=e.file, line=e.line, message=e.message) for e in check.errors]


def _summary(ctx: WebContext, name: str) -> FlowSummary:
    text = _read(ctx.settings.ivr.flows_dir / name)
    sha = flow_edit.digest(text)
    try:
        flow = parse_flow(text, name)
        flow_id, nodes = flow.id, len(flow.nodes)
    except FlowValidationError:
        flow_id, nodes = None, 0
    kept = staff.in_unit(ctx.sessions, flow_versions.history, name)
    version = kept[0]["id"] if kept and kept[0]["sha256"] == sha else None
    return FlowSummary(file=name, flow_id=flow_id, nodes=nodes, sha256=sha, version=version)


@router.get("/flows", response_model=FlowList, responses=ERRORS)
def list_flows(request: Request, user: User = admin_only) -> FlowList:
    """The flow files in the flows folder, with the registry's last reload."""
    ctx = ctx_of(request)
    names = flow_edit.flow_files(ctx.settings.ivr.flows_dir)
    last = getattr(ctx.flows, "last", None)
    reload = None if last is None else ReloadOut(ok=last.ok, at=last.at, version=last.version,
                                                 errors=list(last.errors))
    return FlowList(flows=[_summary(ctx, n) for n in names], reload=reload)


@router.get("/flows/{file}", response_model=FlowText, responses=ERRORS)
def get_flow(request: Request, file: str = FileName, user: User = admin_only) -> FlowText:
    """A flow file's live text and its sha256 (what a publish names as its base)."""
    text = _read(_path(ctx_of(request), file))
    return FlowText(file=file, text=text, sha256=flow_edit.digest(text))


@router.post("/flows/{file}/validate", response_model=ValidateOut, responses=ERRORS)
def validate_flow(body: TextIn, request: Request, file: str = FileName,
                  user: User = admin_only) -> ValidateOut:
    """Check an edit as the registry would, with the rest of the folder: each error with its
    file and line. Nothing is saved."""
    ctx = ctx_of(request)
    _path(ctx, file)
    check = _check(ctx, file, body.text)
    return ValidateOut(ok=check.ok, errors=_errors(check))


@router.post("/flows/{file}/diff", response_model=DiffOut, responses=ERRORS)
def diff_flow(body: TextIn, request: Request, file: str = FileName,
              user: User = admin_only) -> DiffOut:
    """The edit against the live file, as a unified diff ('' when the same)."""
    live = _read(_path(ctx_of(request), file))
    return DiffOut(diff=flow_edit.unified_diff(file, live, body.text),
                   live_sha256=flow_edit.digest(live))


def _publish(ctx: WebContext, request: Request, user: User, file: str, text: str, base: str,
             rollback_of: int | None = None) -> VersionOut:
    path = _path(ctx, file)
    check = _check(ctx, file, text)
    if not check.ok:
        raise HTTPException(400, "the flow does not validate: " + "; ".join(
            f"{e.file}:{e.line}: {e.message}" for e in check.errors))
    actor = staff.Actor(user.user_id, user.role, client_ip(request))
    with _publishing:
        live = _read(path)
        if flow_edit.digest(live) != base:
            raise HTTPException(409, f"{file} changed since this edit began (someone published "
                                     "or saved it): reload it, then edit again")
        if live == text:
            raise HTTPException(409, f"{file} is already live with this text: nothing to "
                                     "publish")
        try:
            doc = staff.in_unit(ctx.sessions, flow_versions.publish, file=file,
                                flow_id=check.flow.id if check.flow else None, text=text,
                                live_text=live, now=ctx.clock(), actor=actor,
                                write=lambda: flow_edit.write_atomic(path, text),
                                rollback_of=rollback_of)
        except PermissionError as exc:
            raise HTTPException(409, f"the CTI may not write the flows folder "
                                     f"({exc.strerror}: {path.parent}); see README "
                                     "'Administration'") from None
    log.info("flow %s %s as version %d by %s", file,
             "rolled back" if rollback_of else "published", doc["id"], user.user_id)
    return VersionOut(**doc)


@router.post("/flows/{file}/publish", response_model=VersionOut, status_code=201,
             responses=PUBLISH_ERRORS)
async def publish_flow(body: PublishIn, request: Request, file: str = FileName,
                       user: User = admin_only) -> VersionOut:
    """Validate the whole set with this text, then save the file (one rename): the registry
    reloads it for the next calls, as after a file edit. Kept as a new version, audited."""
    return await run_in_threadpool(_publish, ctx_of(request), request, user, file, body.text,
                                   body.base_sha256)


@router.get("/flows/{file}/versions", response_model=list[VersionOut], responses=ERRORS)
def list_versions(request: Request, file: str = FileName,
                  user: User = admin_only) -> list[VersionOut]:
    """Every version kept of the file, newest first, with who published it and when."""
    ctx = ctx_of(request)
    _path(ctx, file)
    return [VersionOut(**d) for d in staff.in_unit(ctx.sessions, flow_versions.history, file)]


def _version(ctx: WebContext, file: str, version_id: int) -> dict[str, Any]:
    try:
        return staff.in_unit(ctx.sessions, flow_versions.get_version, file, version_id)
    except flow_versions.UnknownVersion as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/flows/{file}/versions/{version_id}", response_model=VersionText,
            responses=ERRORS)
def get_version(request: Request, file: str = FileName, version_id: int = VersionId,
                user: User = admin_only) -> VersionText:
    """One version's text."""
    ctx = ctx_of(request)
    _path(ctx, file)
    return VersionText(**_version(ctx, file, version_id))


@router.post("/flows/{file}/versions/{version_id}/rollback", response_model=VersionOut,
             status_code=201, responses=PUBLISH_ERRORS)
async def rollback_flow(body: RollbackIn, request: Request, file: str = FileName,
                        version_id: int = VersionId, user: User = admin_only) -> VersionOut:
    """Publish an old version's text again, as a new version (validated like any publish)."""
    ctx = ctx_of(request)
    _path(ctx, file)
    old = await run_in_threadpool(_version, ctx, file, version_id)
    return await run_in_threadpool(_publish, ctx, request, user, file, old["text"],
                                   body.base_sha256, version_id)


@router.get("/flows/{file}/prompts", response_model=list[PromptRef], responses=ERRORS)
def flow_prompts(request: Request, file: str = FileName,
                 user: User = admin_only) -> list[PromptRef]:
    """The prompts the live flow plays, node by node, with the languages each is built in."""
    ctx = ctx_of(request)
    text = _read(_path(ctx, file))
    try:
        flow = parse_flow(text, file)
    except FlowValidationError as exc:
        raise HTTPException(409, f"{file} on disk does not parse: {exc.errors[0]}") from None
    index = _prompts(ctx)
    return [PromptRef(node=nid, field=field, prompt_id=pid,
                      languages=[lang for lang in LANGUAGES
                                 if index is not None and index.has(pid, lang)])
            for nid, field, pid in prompt_refs(flow)]


@router.get("/prompts/{prompt_id}/{lang}", response_class=FileResponse,
            responses={**ERRORS, 200: {"content": {"audio/wav": {}}}})
def prompt_audio(request: Request, prompt_id: str = PromptId,
                 lang: Literal["zh", "en"] = Path(), user: User = admin_only) -> FileResponse:
    """A built prompt's recording (wav), by prompt id and language in the prompt index."""
    index = _prompts(ctx_of(request))
    if index is None:
        raise HTTPException(409, "the prompts are not built (hotline prompts build)")
    try:
        wav = index.local_file(prompt_id, lang)
    except UnknownPromptError as exc:
        raise HTTPException(404, str(exc)) from None
    if not wav.is_file():
        raise HTTPException(404, f"prompt {prompt_id} ({lang}) is indexed but its file is "
                                 "missing: rebuild the prompts")
    return FileResponse(wav, media_type="audio/wav",
                        headers={"Cache-Control": "private, max-age=300"})
