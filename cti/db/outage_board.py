"""What the outage board, the console's pickers and the screen-pop read about outage notices:
the customers in a notice's scope, the calls about it in the last minutes and how many were
deflected, its master repair order's SLA clock, the children linked into it, and the notices
covering given accounts.

Read-only; each function runs in the caller's session. A call is "about" a notice when the
caller heard it before the menu (calls.outage_ids holds its id) or when the call's account (the
one keyed in the IVR, calls.account_no) is inside its scope: the first counts the callers the
IVR recognised, the second those who reached the menu or an agent about an account in the dark
(a caller who heard nothing but keyed an account in a fresh outage). The deflection rate is
over the callers who heard it only: calls with outcome 'deflected' among those whose
outage_ids hold it, since only they had the chance to hang up after the notice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, selectinload, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from cti.db import outages as store
from cti.db.models import Account, Area, Call, Feeder, Outage, OutageArea, WorkOrder
from cti.db.models_workorders import WorkOrderClock
from outages.scope import CAUSES, Notice, NoticeIndex, Place, Scope

CALL_WINDOW = timedelta(minutes=15)
# the board keeps the calls of its window in memory to attribute them: a storm's 10x peak is
# about 5 calls a second, 4,500 in 15 minutes; past this many the oldest are left out
MAX_WINDOW_CALLS = 20_000
DEFLECTED = "deflected"


# ------------------------------------------------------------------------------ scopes in SQL


def _scope_filter(scope: Scope) -> ColumnElement[bool]:
    """The accounts inside a scope, as a WHERE clause on accounts."""
    parts: list[ColumnElement[bool]] = []
    if scope.areas:
        parts.append(Account.area_id.in_(sorted(scope.areas)))
    if scope.feeders:
        parts.append(Account.feeder_id.in_(sorted(scope.feeders)))
    for area_id, name in sorted(scope.transformer_areas):
        parts.append(and_(Account.area_id == area_id, Account.transformer_area == name))
    return or_(*parts)


def customers_in_scope(s: Session, scope: Scope) -> int:
    """How many accounts the scope covers (the customers affected)."""
    return int(s.scalar(select(func.count(Account.id)).where(_scope_filter(scope))) or 0)


# ------------------------------------------------------------------------------ notices by place


def _notices(s: Session, ids: Iterable[int]) -> list[Notice]:
    wanted = sorted(set(ids))
    if not wanted:
        return []
    rows = list(s.scalars(select(Outage).options(selectinload(Outage.areas))
                          .where(Outage.id.in_(wanted)).order_by(Outage.id)))
    # the store's own row -> Notice mapping, so the board and the IVR read notices alike
    masters = store._masters(s, rows)  # noqa: SLF001 - same package, one mapping
    out = []
    for o in rows:
        try:
            out.append(store._notice(o, masters.get(o.master_order_id or 0)))  # noqa: SLF001
        except ValueError:  # InvalidNotice included: an old row the domain refuses
            continue
    return out


def notices_for_places(s: Session, places: Mapping[str, Place], now: datetime
                       ) -> dict[str, tuple[Notice, ...]]:
    """The notices that count at `now` for each account (the screen-pop's): two queries, the
    scope rows that could match and their notices, whatever the number of notices."""
    if not places:
        return {}
    areas = {p.area_id for p in places.values()}
    feeders = {p.feeder_id for p in places.values() if p.feeder_id is not None}
    tas = {p.ta_key for p in places.values() if p.ta_key is not None}
    match: list[ColumnElement[bool]] = [
        and_(OutageArea.area_id.in_(sorted(areas)), OutageArea.feeder_id.is_(None),
             OutageArea.transformer_area.is_(None))]
    if feeders:
        match.append(OutageArea.feeder_id.in_(sorted(feeders)))
    for area_id, name in sorted(tas):
        match.append(and_(OutageArea.area_id == area_id, OutageArea.transformer_area == name))
    ids = s.scalars(select(OutageArea.outage_id).join(Outage, Outage.id == OutageArea.outage_id)
                    .where(Outage.restored_at.is_(None), or_(*match)).distinct())
    index = NoticeIndex(_notices(s, ids), 0)
    return {no: index.covering(place, now) for no, place in places.items()}


def notice_doc(n: Notice, area_names: Mapping[int, str] | None = None,
               feeder_names: Mapping[int, str] | None = None) -> dict[str, Any]:
    """A notice as the agent sees it (pop, desktop): category labels, scope, times, text."""
    info = CAUSES[n.cause]
    names = area_names or {}
    lines = feeder_names or {}
    return {
        "outage_id": n.id, "cause": n.cause.value, "cause_zh": info.label_zh,
        "cause_en": info.label_en, "kind": info.db_kind, "scheduled": info.scheduled,
        "agent_text": n.agent_text, "start_at": n.start_at,
        "expected_restore_at": n.restore_at, "schedule_end_at": n.schedule_end_at,
        "master_order": n.master_order,
        "areas": [{"id": a, "name": names.get(a, "")} for a in sorted(n.scope.areas)],
        "feeders": sorted(n.scope.feeders),
        "feeder_names": [lines.get(f, str(f)) for f in sorted(n.scope.feeders)],
        "transformer_areas": [{"area_id": a, "area_name": names.get(a, ""), "name": t}
                              for a, t in sorted(n.scope.transformer_areas)],
    }


def feeder_names(s: Session, notices: Iterable[Notice]) -> dict[int, str]:
    """'QY01-F1 10kV泉城线' by feeder id, for the feeders in these notices' scopes."""
    ids = {f for n in notices for f in n.scope.feeders}
    if not ids:
        return {}
    return {int(i): f"{c} {n}" for i, c, n in s.execute(
        select(Feeder.id, Feeder.code, Feeder.name).where(Feeder.id.in_(ids)))}


def area_names(s: Session, notices: Iterable[Notice]) -> dict[int, str]:
    ids = {a for n in notices for a in (*n.scope.areas, *(a for a, _ in n.scope.transformer_areas))}
    if not ids:
        return {}
    return {int(k): v for k, v in s.execute(select(Area.id, Area.name).where(Area.id.in_(ids)))}


# ------------------------------------------------------------------------------ the board


@dataclass(frozen=True, slots=True)
class WindowCall:
    account_no: str | None
    outage_ids: tuple[int, ...]
    deflected: bool


def _window_calls(s: Session, since: datetime) -> list[WindowCall]:
    rows = s.execute(select(Call.account_no, Call.outage_ids, Call.outcome)
                     .where(Call.started_at >= since)
                     .order_by(Call.started_at.desc()).limit(MAX_WINDOW_CALLS)).all()
    out = []
    for account_no, ids, outcome in rows:
        heard = tuple(int(i) for i in ids or () if isinstance(i, int | str) and str(i).isdigit())
        out.append(WindowCall(account_no, heard, outcome == DEFLECTED))
    return out


def _account_places(s: Session, account_nos: Iterable[str]) -> dict[str, Place]:
    wanted = sorted({a for a in account_nos if a})
    if not wanted:
        return {}
    rows = s.execute(select(Account.account_no, Account.area_id, Account.feeder_id,
                            Account.transformer_area).where(Account.account_no.in_(wanted)))
    return {no: Place(area, feeder, ta) for no, area, feeder, ta in rows}


def _master_clock(s: Session, numbers: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The master order's status and its SLA clock (the running one due first, else the
    last stopped), by order number."""
    wanted = sorted(set(numbers))
    if not wanted:
        return {}
    orders = {r.id: r for r in s.execute(
        select(WorkOrder.id, WorkOrder.number, WorkOrder.status, WorkOrder.created_at,
               WorkOrder.sla_due_at).where(WorkOrder.number.in_(wanted)))}
    clocks: dict[int, list[Any]] = {}
    if orders:
        for c in s.execute(select(WorkOrderClock.work_order_id, WorkOrderClock.name,
                                  WorkOrderClock.started_at, WorkOrderClock.due_at,
                                  WorkOrderClock.stopped_at)
                           .where(WorkOrderClock.work_order_id.in_(sorted(orders)))):
            clocks.setdefault(c.work_order_id, []).append(c)
    out: dict[str, dict[str, Any]] = {}
    for oid, o in orders.items():
        mine = clocks.get(oid, [])
        running = sorted((c for c in mine if c.stopped_at is None), key=lambda c: c.due_at)
        shown: Any = running[0] if running else (
            max(mine, key=lambda c: c.due_at) if mine else None)
        out[o.number] = {
            "number": o.number, "status": o.status, "created_at": o.created_at,
            "clock": None if shown is None else {
                "name": shown.name, "started_at": shown.started_at, "due_at": shown.due_at,
                "stopped_at": shown.stopped_at},
            "sla_due_at": o.sla_due_at,
        }
    return out


def _children(s: Session, outage_ids: Sequence[int]) -> dict[int, int]:
    if not outage_ids:
        return {}
    return {int(k): int(v) for k, v in s.execute(
        select(WorkOrder.outage_id, func.count(WorkOrder.id))
        .where(WorkOrder.outage_id.in_(sorted(outage_ids))).group_by(WorkOrder.outage_id))
        if k is not None}


def board(s: Session, active: Sequence[Notice], suspected: Sequence[Notice], now: datetime,
          *, window: timedelta = CALL_WINDOW) -> dict[str, Any]:
    """The outage board: per notice the customers affected, the calls about it in `window`,
    how many heard it and were deflected, its master order's clock and linked children."""
    notices = [*active, *suspected]
    calls = _window_calls(s, now - window)
    places = _account_places(s, (c.account_no for c in calls if c.account_no))
    names = area_names(s, notices)
    lines = feeder_names(s, notices)
    masters = _master_clock(s, (n.master_order for n in notices if n.master_order))
    children = _children(s, [n.id for n in notices])

    def figures(n: Notice) -> dict[str, Any]:
        about = heard = deflected = 0
        for c in calls:
            hit = n.id in c.outage_ids
            place = places.get(c.account_no or "")
            if hit or (place is not None and n.scope.covers(place)):
                about += 1
            if hit:
                heard += 1
                deflected += c.deflected
        return {**notice_doc(n, names, lines),
                "awaiting_confirmation": n.awaiting_confirmation,
                "customers": customers_in_scope(s, n.scope),
                "calls_window": about, "heard": heard, "deflected": deflected,
                "deflection_rate": round(deflected / heard, 4) if heard else None,
                "master": masters.get(n.master_order or ""),
                "children": children.get(n.id, 0)}

    rows = [figures(n) for n in active]
    rows.sort(key=lambda r: (-r["customers"], r["outage_id"]))
    waiting = sorted((figures(n) for n in suspected), key=lambda r: r["outage_id"])
    heard = sum(r["heard"] for r in rows)
    deflected = sum(r["deflected"] for r in rows)
    return {
        "at": now, "window_s": int(window.total_seconds()),
        "active": rows, "suspected": waiting,
        "totals": {"active": len(rows), "suspected": len(waiting),
                   "customers": sum(r["customers"] for r in rows),
                   "calls_window": len(calls),
                   "calls_about_outages": sum(1 for c in calls if c.outage_ids),
                   "heard": heard, "deflected": deflected,
                   "deflection_rate": round(deflected / heard, 4) if heard else None},
    }


# ------------------------------------------------------------------------------ pickers


def places(s: Session) -> dict[str, Any]:
    """Areas, feeders and the 台区 named in the accounts: what a notice's scope can name; and
    the causes with their labels and whether each needs a schedule."""
    areas = [{"id": i, "code": c, "name": n, "kind": k} for i, c, n, k in s.execute(
        select(Area.id, Area.code, Area.name, Area.kind).order_by(Area.code))]
    feeders = [{"id": i, "code": c, "name": n, "area_id": a} for i, c, n, a in s.execute(
        select(Feeder.id, Feeder.code, Feeder.name, Feeder.area_id).order_by(Feeder.code))]
    tas = [{"area_id": a, "name": t} for a, t in s.execute(
        select(Account.area_id, Account.transformer_area)
        .where(Account.transformer_area.is_not(None), Account.transformer_area != "")
        .distinct().order_by(Account.area_id, Account.transformer_area).limit(5000))]
    causes = [{"value": c.value, "zh": i.label_zh, "en": i.label_en, "scheduled": i.scheduled,
               "fault": i.fault} for c, i in CAUSES.items()]
    return {"areas": areas, "feeders": feeders, "transformer_areas": tas, "causes": causes}


# ------------------------------------------------------------------ units of work (the web app)


def _classify(rows: Sequence[store.NoticeRow], now: datetime) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"active": [], "suspected": [], "upcoming": [],
                                            "closed": []}
    for r in rows:
        n = r.notice
        if r.restored_at is not None:
            key = "closed"
        elif n.awaiting_confirmation:
            key = "suspected"
        elif n.counts_at(now):
            key = "active"
        else:  # not started yet, or a schedule that has ended and was never closed
            key = "upcoming"
        out[key].append({**r.to_dict(), "state": key})
    return out


def listing(sessions: sessionmaker[Session], now: datetime, *, closed: int = 50,
            everything: bool = True) -> dict[str, Any]:
    """The notices for the console, newest first: active (heard now), suspected (waiting for a
    supervisor), upcoming (open, not counting now) and the last `closed` closed ones; with
    `everything` False, the active ones only (what an agent may read)."""
    with sessions() as s:
        version = store.version(s)
        rows = store.list_notices(s, include_closed=False, limit=1000)
        if everything and closed > 0:
            rows += [r for r in store.list_notices(s, include_closed=True, limit=closed + len(rows))
                     if r.restored_at is not None][:closed]
    doc: dict[str, Any] = {"version": version, "at": now, **_classify(rows, now)}
    if not everything:
        doc = {"version": version, "at": now, "active": doc["active"]}
    return doc


def notice_by_id(sessions: sessionmaker[Session], outage_id: int, now: datetime
                 ) -> dict[str, Any]:
    """One notice as the console shows it; store.NoticeNotFound when there is none."""
    with sessions() as s:
        row = store.get_notice(s, outage_id)
        names = area_names(s, [row.notice])
    row = store.NoticeRow(row.notice, row.created_by, row.confirmed_by, row.updated_at,
                          row.restored_at, names)
    [(state, [doc])] = [(k, v) for k, v in _classify([row], now).items() if v]
    return {**doc, "state": state}


def board_doc(sessions: sessionmaker[Session], now: datetime) -> dict[str, Any]:
    """The outage board (board()) with the storm switch, in one read-only unit of work."""
    with sessions() as s:
        notices = store.load_notices(s)
        active = [n for n in notices if n.counts_at(now)]
        suspected = [n for n in notices if n.awaiting_confirmation and n.closed_at is None]
        doc = board(s, active, suspected, now)
        doc["storm"] = store.storm(s).to_dict()
        doc["version"] = store.version(s)
    return doc


def account_notices(sessions: sessionmaker[Session], account_no: str, now: datetime
                    ) -> list[dict[str, Any]] | None:
    """The notices covering one account now, as the agent sees them; None: no such account."""
    with sessions() as s:
        place = store.place_of_account(s, account_no)
        if place is None:
            return None
        found = notices_for_places(s, {account_no: place}, now)[account_no]
        names, lines = area_names(s, found), feeder_names(s, found)
    return [notice_doc(n, names, lines) for n in found]


def caller_accounts(sessions: sessionmaker[Session], phone: str) -> set[str]:
    """The account numbers registered for a caller's phone."""
    with sessions() as s:
        return set(store.places_for_phone(s, phone))


def scope_places(sessions: sessionmaker[Session]) -> dict[str, Any]:
    with sessions() as s:
        return places(s)


def storm_state(sessions: sessionmaker[Session]) -> dict[str, Any]:
    with sessions() as s:
        return store.storm(s).to_dict()


def audit_history(sessions: sessionmaker[Session], target: str, limit: int = 50
                  ) -> list[dict[str, Any]]:
    """Who changed a notice (target 'outage:<id>') or the storm switch ('storm') and when:
    the audit lines the changes wrote, newest first."""
    from cti.db.models_recordings import AuditLog

    with sessions() as s:
        rows = s.scalars(select(AuditLog).where(AuditLog.target == target)
                         .order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit))
        return [{"at": r.at, "actor": r.actor, "role": r.role, "action": r.action,
                 "allowed": r.allowed, "client_ip": r.client_ip, "detail": r.detail}
                for r in rows]
