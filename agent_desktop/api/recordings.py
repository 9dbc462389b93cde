"""Recordings over the web API: search (by transcript text too), the audio itself (HTTP Range, so
a player can seek), the transcript, and play-to-phone; supervisors and admins only.

The role is checked here rather than by a router dependency so that a refused attempt is on
the audit trail too: every access and every refusal writes one audit_log line (who, what,
when, from where).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from agent_desktop.api.auth import client_ip
from agent_desktop.audit import audit, entry
from agent_desktop.auth import User, ctx_of, current_user
from agent_desktop.context import WebContext
from cti.db import web_queries
from cti.db.web_queries import RecordingRef

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/recordings", tags=["recordings"])
FORBIDDEN = "only supervisors and admins may search or play recordings"
# ids and offsets fit the database's 32-bit integers: a larger one is a 422, not an
# OverflowError from the driver (a 500)
MAX_INT = 2**31 - 1
RecordingId = Annotated[int, Path(ge=1, le=MAX_INT)]


class PlayOut(BaseModel):
    recording_id: int
    call_id: str
    endpoint: str
    status: str  # ringing: the supervisor's phone rings, the recording plays when answered


def _audit(ctx: WebContext, request: Request, user: User, action: str, target: str | None,
           allowed: bool, **detail: Any) -> None:
    audit(ctx.sessions, at=ctx.clock(), user=user, action=action, target=target,
          allowed=allowed, client_ip=client_ip(request), **detail)


def _supervisor(ctx: WebContext, request: Request, user: User, action: str,
                target: str | None) -> None:
    if not user.is_supervisor:
        _audit(ctx, request, user, action, target, False, reason="role")
        log.info("recording access refused: %s (%s) %s %s", user.user_id, user.role, action,
                 target)
        raise HTTPException(403, FORBIDDEN)


def _recording(ctx: WebContext, request: Request, user: User, action: str,
               recording_id: int) -> RecordingRef:
    rec = web_queries.recording_ref(ctx.sessions, recording_id)
    if rec is None or rec.deleted_at is not None:
        _audit(ctx, request, user, action, str(recording_id), False,
               reason="deleted" if rec is not None else "not_found")
        raise HTTPException(404, "no such recording" if rec is None else
                            "this recording was deleted under the retention rules")
    return rec


@router.get("")
def search_recordings(
    request: Request,
    from_: datetime | None = Query(None, alias="from",  # noqa: B008 - FastAPI style
                                   description="started at or after (ISO 8601 with zone)"),
    to: datetime | None = Query(None, description="started before"),  # noqa: B008
    agent_id: str | None = Query(None, max_length=16),  # noqa: B008
    caller: str | None = Query(None, max_length=32),  # noqa: B008
    account: str | None = Query(None, max_length=10),  # noqa: B008
    work_order: str | None = Query(None, max_length=11),  # noqa: B008
    queue: str | None = Query(None, max_length=32),  # noqa: B008
    min_duration: float | None = Query(None, ge=0),  # noqa: B008
    max_duration: float | None = Query(None, ge=0),  # noqa: B008
    text: str | None = Query(None, max_length=200,  # noqa: B008
                             description="words in the transcript (a substring; spaces "
                             "ignored)"),
    limit: int = Query(100, ge=1, le=500),  # noqa: B008
    offset: int = Query(0, ge=0, le=MAX_INT),  # noqa: B008
    user: User = Depends(current_user),  # noqa: B008
) -> list[dict[str, Any]]:
    """Recordings matching every filter given, newest first (supervisors)."""
    from cti.db.recordings import RecordingQuery

    ctx = ctx_of(request)
    filters = {k: v for k, v in {
        "from": from_.isoformat() if from_ else None, "to": to.isoformat() if to else None,
        "agent_id": agent_id, "caller": caller, "account": account, "work_order": work_order,
        "queue": queue, "min_duration": min_duration, "max_duration": max_duration,
        "text": text,
    }.items() if v is not None}
    _supervisor(ctx, request, user, "recording.search", None)
    try:
        q = RecordingQuery(start=from_, end=to, agent_id=agent_id, caller=caller,
                           account=account, work_order=work_order, queue=queue,
                           min_duration=min_duration, max_duration=max_duration, text=text,
                           limit=limit, offset=offset)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    # the search and its audit line (with how many it found) in one unit of work
    return web_queries.search_recordings(
        ctx.sessions, q, entry(at=ctx.clock(), user=user, action="recording.search",
                               target=None, allowed=True, client_ip=client_ip(request),
                               filters=filters))


@router.get("/{recording_id}")
def get_recording(recording_id: RecordingId, request: Request,
                  user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """One recording's index entry, with its call and work orders (supervisors)."""
    ctx = ctx_of(request)
    _supervisor(ctx, request, user, "recording.view", str(recording_id))
    rec = _recording(ctx, request, user, "recording.view", recording_id)
    doc = web_queries.recording_doc(
        ctx.sessions, rec.id, entry(at=ctx.clock(), user=user, action="recording.view",
                                    target=str(rec.id), allowed=True,
                                    client_ip=client_ip(request), call_id=rec.call_id))
    assert doc is not None  # _recording found it
    return doc


@router.get("/{recording_id}/transcript")
def recording_transcript(recording_id: RecordingId, request: Request,
                         user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    """What was said (post-call transcription): {recording_id, status, lang, text, words:
    [{w, s, e, c}], keywords: [{word, start}]}; status none, queued, running, done or failed
    (words empty until done). Supervisors."""
    ctx = ctx_of(request)
    _supervisor(ctx, request, user, "recording.transcript", str(recording_id))
    rec = _recording(ctx, request, user, "recording.transcript", recording_id)
    return web_queries.transcript_doc(
        ctx.sessions, rec.id, entry(at=ctx.clock(), user=user, action="recording.transcript",
                                    target=str(rec.id), allowed=True,
                                    client_ip=client_ip(request), call_id=rec.call_id))


@router.get("/{recording_id}/audio", response_class=FileResponse,
            responses={200: {"content": {"audio/wav": {}}},
                       206: {"content": {"audio/wav": {}}, "description": "a byte range"}})
def recording_audio(recording_id: RecordingId, request: Request,
                    user: User = Depends(current_user)) -> FileResponse:  # noqa: B008
    """The wav itself; send `Range: bytes=a-b` for part of it (206), as players do to seek."""
    from recorder.naming import resolve

    ctx = ctx_of(request)
    _supervisor(ctx, request, user, "recording.audio", str(recording_id))
    rec = _recording(ctx, request, user, "recording.audio", recording_id)
    path = resolve(ctx.settings.recorder.storage_dir, rec.rel_path)
    if not path.is_file():
        _audit(ctx, request, user, "recording.audio", str(rec.id), False, reason="file_missing",
               call_id=rec.call_id)
        raise HTTPException(404, "the recording's file is missing (the reconciler reports it)")
    _audit(ctx, request, user, "recording.audio", str(rec.id), True, call_id=rec.call_id,
           range=request.headers.get("range"))
    return FileResponse(path, media_type="audio/wav",
                        filename=f"{rec.call_id}_{rec.seat or rec.kind}.wav",
                        content_disposition_type="inline")


@router.post("/{recording_id}/play-to-phone", status_code=202)
async def play_to_phone(recording_id: RecordingId, request: Request,
                        user: User = Depends(current_user)) -> PlayOut:  # noqa: B008
    """Ring the supervisor's own phone (sup01..sup05) and play the recording on it."""
    from asterisk_conf.render import phone_names
    from recorder.service import RecorderService
    from recorder.supervision_policy import supervisor_endpoint

    ctx = ctx_of(request)
    action = "recording.play_to_phone"
    await run_in_threadpool(_supervisor, ctx, request, user, action, str(recording_id))
    rec = await run_in_threadpool(_recording, ctx, request, user, action, recording_id)
    sups = [n for n, _ext, role in phone_names(ctx.settings) if role == "supervisor"]
    endpoint = supervisor_endpoint(user.user_id, user.seat, sups)
    if endpoint is None:
        await run_in_threadpool(_audit, ctx, request, user, action, str(rec.id), False,
                                reason="no_phone")
        raise HTTPException(409, "you have no supervisor phone (log in with seat "
                                 "sup01..sup05)")
    if ctx.pbx is None:
        await run_in_threadpool(_audit, ctx, request, user, action, str(rec.id), False,
                                reason="pbx_unavailable", endpoint=endpoint)
        raise HTTPException(409, "the PBX is not running; nothing was rung")
    try:
        await RecorderService.play_to_phone(ctx.pbx, rec.rel_path, endpoint)
    except Exception as exc:  # AMI down or refused: the phone was not rung
        log.warning("play-to-phone failed recording=%s endpoint=%s: %s", rec.id, endpoint, exc)
        await run_in_threadpool(_audit, ctx, request, user, action, str(rec.id), False,
                                reason="pbx_error", endpoint=endpoint)
        raise HTTPException(409, "the PBX did not ring your phone; try again") from None
    await run_in_threadpool(_audit, ctx, request, user, action, str(rec.id), True,
                            endpoint=endpoint, call_id=rec.call_id)
    return PlayOut(recording_id=rec.id, call_id=rec.call_id, endpoint=endpoint,
                   status="ringing")
