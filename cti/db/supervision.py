"""Supervision's audit trail in the database: sessions, refusals and mode periods.

Each function is one step of a unit of work on the caller's Session (the caller commits).
Every row is also mirrored into the general audit_log (cti.db.models_recordings.AuditLog) as
`supervision.<what>`, so one query shows all sensitive access (recordings and supervision).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cti.db.models_supervision import SupervisionMode, SupervisionSession

VIA = ("mqtt", "web")


def _clip(value: object, n: int) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text[:n]


def _audit(s: Session, at: datetime, actor: str, role: str, action: str, target: str | None,
           allowed: bool, detail: dict[str, Any]) -> None:
    from cti.db.models_recordings import AuditLog

    s.add(AuditLog(at=at, actor=actor[:64], role=role[:16], action=action, target=target,
                   allowed=allowed, client_ip=None, detail=detail))


def record_refusal(s: Session, *, session_id: str, supervisor_id: str, role: str,
                   call_id: object, agent_id: str | None, mode: object, reason: str,
                   via: str, at: datetime) -> SupervisionSession:
    """A refused request: on record with who asked, for what, and why it was refused."""
    row = SupervisionSession(
        session_id=session_id, supervisor_id=supervisor_id[:16], supervisor_role=role[:16],
        endpoint=None, call_id=_clip(call_id, 64), agent_id=agent_id, seat=None,
        mode=_clip(mode, 16), outcome="refused", refusal=reason[:32], via=via,
        requested_at=at, answered_at=None, ended_at=at, end_reason="refused")
    s.add(row)
    _audit(s, at, supervisor_id, role, "supervision.refused", _clip(call_id, 128), False,
           {"session_id": session_id, "agent_id": agent_id, "mode": _clip(mode, 16),
            "reason": reason, "via": via})
    s.flush()
    return row


def record_control_refusal(s: Session, *, session_id: str, actor: str, role: str,
                           action: str, reason: str, at: datetime) -> None:
    """A refused change or stop of a session (someone else's, or by an agent)."""
    _audit(s, at, actor, role, "supervision.refused", _clip(session_id, 128), False,
           {"session_id": _clip(session_id, 64), "action": action, "reason": reason})
    s.flush()


def record_start(s: Session, *, session_id: str, supervisor_id: str, role: str, endpoint: str,
                 call_id: str, agent_id: str, seat: str, mode: str, via: str,
                 at: datetime) -> SupervisionSession:
    row = SupervisionSession(
        session_id=session_id, supervisor_id=supervisor_id, supervisor_role=role,
        endpoint=endpoint, call_id=call_id, agent_id=agent_id, seat=seat, mode=mode,
        outcome="allowed", refusal=None, via=via, requested_at=at)
    s.add(row)
    _audit(s, at, supervisor_id, role, "supervision.start", call_id, True,
           {"session_id": session_id, "agent_id": agent_id, "seat": seat, "mode": mode,
            "endpoint": endpoint, "via": via})
    s.flush()
    return row


def record_mode(s: Session, *, session_id: str, mode: str, begin: bool, at: datetime,
                answered: bool = False) -> None:
    """A mode period begins (a new row) or ends (the open row of that mode gets ended_at)."""
    if begin:
        s.add(SupervisionMode(session_id=session_id, mode=mode, started_at=at, ended_at=None))
        if answered:
            s.execute(update(SupervisionSession)
                      .where(SupervisionSession.session_id == session_id,
                             SupervisionSession.answered_at.is_(None))
                      .values(answered_at=at))
    else:
        s.execute(update(SupervisionMode)
                  .where(SupervisionMode.session_id == session_id, SupervisionMode.mode == mode,
                         SupervisionMode.ended_at.is_(None))
                  .values(ended_at=at))
    s.flush()


def record_end(s: Session, *, session_id: str, reason: str, at: datetime) -> None:
    row = s.scalars(select(SupervisionSession)
                    .where(SupervisionSession.session_id == session_id)).one_or_none()
    if row is None or row.ended_at is not None:
        return
    row.ended_at = at
    row.end_reason = reason[:32]
    # a period left open (the CTI lost an event) ends with the session
    s.execute(update(SupervisionMode)
              .where(SupervisionMode.session_id == session_id,
                     SupervisionMode.ended_at.is_(None))
              .values(ended_at=at))
    _audit(s, at, row.supervisor_id, row.supervisor_role, "supervision.end", row.call_id, True,
           {"session_id": session_id, "agent_id": row.agent_id, "reason": reason})
    s.flush()


def end_open_sessions(s: Session, at: datetime, reason: str = "cti_restart") -> int:
    """Sessions a previous CTI left open: their spy channels are gone with it (or will be
    hung up), so they end now. Returns how many."""
    ids = s.scalars(select(SupervisionSession.session_id)
                    .where(SupervisionSession.outcome == "allowed",
                           SupervisionSession.ended_at.is_(None))).all()
    for sid in ids:
        record_end(s, session_id=sid, reason=reason, at=at)
    return len(ids)


def session_doc(s: Session, session_id: str) -> dict[str, Any] | None:
    """A session with its mode periods, for the API and the tests."""
    row = s.scalars(select(SupervisionSession)
                    .where(SupervisionSession.session_id == session_id)).one_or_none()
    if row is None:
        return None
    modes = s.scalars(select(SupervisionMode).where(SupervisionMode.session_id == session_id)
                      .order_by(SupervisionMode.started_at, SupervisionMode.id)).all()
    return {
        "session_id": row.session_id, "supervisor_id": row.supervisor_id,
        "supervisor_role": row.supervisor_role, "endpoint": row.endpoint,
        "call_id": row.call_id, "agent_id": row.agent_id, "seat": row.seat, "mode": row.mode,
        "outcome": row.outcome, "refusal": row.refusal, "via": row.via,
        "requested_at": row.requested_at, "answered_at": row.answered_at,
        "ended_at": row.ended_at, "end_reason": row.end_reason,
        "modes": [{"mode": m.mode, "started_at": m.started_at, "ended_at": m.ended_at}
                  for m in modes],
    }
