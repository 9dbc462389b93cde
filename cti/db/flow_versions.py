"""Published IVR flow versions (issue 15 §2): each text of a flow file the console published,
who and when, and the audit line of each publish and rollback, in one unit of work with the
file's write (a write that fails leaves no version behind)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cti.db.models_web import FlowVersion
from cti.db.staff import Actor
from cti.db.web_audit import add as add_audit


class UnknownVersion(LookupError):
    """No such version of that flow file."""


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _doc(v: FlowVersion, *, text: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": v.id, "file": v.file, "flow_id": v.flow_id, "sha256": v.sha256,
                           "source": v.source, "rollback_of": v.rollback_of,
                           "published_by": v.published_by, "published_at": v.published_at}
    if text:
        doc["text"] = v.text
    return doc


def history(s: Session, file: str) -> list[dict[str, Any]]:
    """The file's versions, newest first (without their texts)."""
    rows = s.scalars(select(FlowVersion).where(FlowVersion.file == file)
                     .order_by(FlowVersion.id.desc()))
    return [_doc(v) for v in rows]


def get_version(s: Session, file: str, version_id: int) -> dict[str, Any]:
    v = s.get(FlowVersion, version_id)
    if v is None or v.file != file:
        raise UnknownVersion(f"no version {version_id} of {file}")
    return _doc(v, text=True)


def publish(s: Session, *, file: str, flow_id: str | None, text: str, live_text: str,
            now: datetime, actor: Actor, write: Callable[[], None],
            rollback_of: int | None = None) -> dict[str, Any]:
    """Record `text` as the file's new version (with the audit line), then `write` it; the live
    text is recorded first (source 'disk') when it is not the newest version kept, so that a
    file never published here, or edited on disk since, can be rolled back to."""
    newest = s.scalar(select(FlowVersion).where(FlowVersion.file == file)
                      .order_by(FlowVersion.id.desc()).limit(1))
    if newest is None or newest.sha256 != _sha(live_text):
        s.add(FlowVersion(file=file, flow_id=flow_id, text=live_text, sha256=_sha(live_text),
                          source="disk", published_by=actor.user_id[:64], published_at=now))
    version = FlowVersion(file=file, flow_id=flow_id, text=text, sha256=_sha(text),
                          source="publish" if rollback_of is None else "rollback",
                          rollback_of=rollback_of, published_by=actor.user_id[:64],
                          published_at=now)
    s.add(version)
    s.flush()
    action = "flow.publish" if rollback_of is None else "flow.rollback"
    add_audit(s, actor.entry(now, action, file, version=version.id, sha256=version.sha256,
                             previous_sha256=_sha(live_text), rollback_of=rollback_of))
    write()  # last: a failed write rolls the unit back, so no version claims a text not live
    return _doc(version)
