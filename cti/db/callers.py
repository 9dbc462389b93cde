"""The inbound caller lists (issue 15 §3): the nuisance list and the VIP list, and the agents'
nuisance reports. Numbers are kept in national form (outbound.dnc.national), so "+86 138 0013
8000" and "13800138000" are one number. The IVR and the ACD ask `kinds_of` at every call, so a
change is heard from the next call on, without a restart; each change from the console or the
CLI is one unit of work with its audit line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from cti.db import web_audit
from cti.db.models import Call
from cti.db.models_callers import LIST_KINDS, CallerListEntry, NuisanceReport
from cti.db.upsert import insert_on_conflict
from cti.db.web_audit import AuditEntry
from outbound.dnc import BadNumber, national

SYSTEM = "system"  # added_by of a number the nuisance reports put on the list


class AlreadyListed(ValueError):
    """The number is on that list already (its first entry is kept)."""


class NotListed(LookupError):
    """The number is not on that list."""


class AlreadyReported(ValueError):
    """That call has been reported as a nuisance already."""


class UnknownCall(LookupError):
    """No call record with that id (or one without a caller number)."""


def _kind(kind: str) -> str:
    if kind not in LIST_KINDS:
        raise ValueError(f"unknown caller list {kind!r}: one of {', '.join(LIST_KINDS)}")
    return kind


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("naive datetime")
    return now.astimezone(UTC)


def kinds_of(s: Session, caller: str) -> frozenset[str]:
    """The lists the caller's number is on (none for a number that is not one: anonymous,
    withheld)."""
    try:
        nat = national(caller)
    except BadNumber:
        return frozenset()
    return frozenset(s.scalars(select(CallerListEntry.kind)
                               .where(CallerListEntry.number == nat)))


def add(s: Session, kind: str, number: str, *, reason: str, by: str, now: datetime) -> str:
    """Put a number (any spelling) on a list; AlreadyListed when it is on it. Returns the
    national form."""
    nat = national(number)
    added = s.scalar(insert_on_conflict(s, CallerListEntry).values(
        kind=_kind(kind), number=nat, reason=reason[:200], added_by=by[:64],
        added_at=_aware(now)).on_conflict_do_nothing(index_elements=["kind", "number"])
        .returning(CallerListEntry.number))
    if added is None:
        raise AlreadyListed(f"{nat} is on the {kind} list already")
    return nat


def remove(s: Session, kind: str, number: str) -> str:
    """Take a number off a list; NotListed when it is not on it."""
    nat = national(number)
    res = s.execute(delete(CallerListEntry).where(CallerListEntry.kind == _kind(kind),
                                                  CallerListEntry.number == nat))
    if not res.rowcount:  # type: ignore[attr-defined]
        raise NotListed(f"{nat} is not on the {kind} list")
    return nat


def entries(sessions: sessionmaker[Session], kind: str) -> list[dict[str, Any]]:
    """A list, newest first, with each number's reason, who added it and when, and (for the
    nuisance list) how many reports it has."""
    with sessions() as s:
        rows = s.scalars(select(CallerListEntry).where(CallerListEntry.kind == _kind(kind))
                         .order_by(CallerListEntry.added_at.desc(),
                                   CallerListEntry.number)).all()
        reports = dict(s.execute(
            select(NuisanceReport.number, func.count()).where(
                NuisanceReport.number.in_([r.number for r in rows]))
            .group_by(NuisanceReport.number)).all()) if kind == "nuisance" and rows else {}
        return [{"kind": r.kind, "number": r.number, "reason": r.reason,
                 "added_by": r.added_by, "added_at": r.added_at,
                 "reports": int(reports.get(r.number, 0))} for r in rows]


def add_audited(sessions: sessionmaker[Session], kind: str, number: str, *, reason: str,
                audit: Callable[[str], AuditEntry], now: datetime) -> str:
    """add and its audit line (`audit(national form)`) in one unit of work."""
    with sessions.begin() as s:
        entry = audit(national(number))
        nat = add(s, kind, number, reason=reason, by=entry.actor, now=now)
        web_audit.add(s, entry)
    return nat


def remove_audited(sessions: sessionmaker[Session], kind: str, number: str, *,
                   audit: Callable[[str], AuditEntry]) -> str:
    """remove and its audit line in one unit of work."""
    with sessions.begin() as s:
        nat = remove(s, kind, number)
        web_audit.add(s, audit(nat))
    return nat


def report_nuisance(s: Session, call_id: str, *, by: str, now: datetime, after: int,
                    window: timedelta) -> tuple[str, bool]:
    """An agent reports a call as abusive. With `after` reports of the number within `window`
    (this one included) the number joins the nuisance list (added by "system"). Returns the
    number and whether it joined now. UnknownCall, AlreadyReported."""
    caller = s.scalar(select(Call.caller_number).where(Call.call_id == call_id))
    if not caller:
        raise UnknownCall(f"no call {call_id}")
    try:
        nat = national(caller)
    except BadNumber:
        raise UnknownCall(f"call {call_id} has no caller number to report") from None
    at = _aware(now)
    added = s.scalar(insert_on_conflict(s, NuisanceReport).values(
        call_id=call_id, number=nat, reported_by=by[:16], reported_at=at)
        .on_conflict_do_nothing(index_elements=["call_id"]).returning(NuisanceReport.id))
    if added is None:
        raise AlreadyReported(f"call {call_id} has been reported already")
    n = s.scalar(select(func.count()).select_from(NuisanceReport).where(
        NuisanceReport.number == nat, NuisanceReport.reported_at > at - window)) or 0
    if n < after or "nuisance" in kinds_of(s, nat):
        return nat, False
    add(s, "nuisance", nat, reason=f"{n} 次骚扰来电报告 / {n} nuisance reports", by=SYSTEM,
        now=now)
    return nat, True


def report_nuisance_audited(sessions: sessionmaker[Session], call_id: str, *,
                            audit: Callable[[str], AuditEntry], now: datetime, after: int,
                            window: timedelta) -> tuple[str, bool]:
    """report_nuisance and its audit line (`audit(number)`) in one unit of work."""
    with sessions.begin() as s:
        entry = audit(call_id)
        number, listed = report_nuisance(s, call_id, by=entry.actor, now=now, after=after,
                                         window=window)
        web_audit.add(s, entry)
    return number, listed


def kinds_in(sessions: sessionmaker[Session], caller: str) -> frozenset[str]:
    """kinds_of in a unit of work of its own (the IVR's way in, on a worker thread)."""
    with sessions() as s:
        return kinds_of(s, caller)
