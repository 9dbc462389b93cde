"""Work orders in the database: create, step, urge, link duplicates, search, SLA escalation.

Functions take an open SQLAlchemy Session and `now`; the caller owns the transaction (one unit of
work each). `WorkOrderService` wraps them for the CLI, the IVR, the REST API and the CTI's
escalation tick: one session per call, committed, supervisor alerts published after the commit.
The rules come from workorders.lifecycle; this module only reads, asks and writes.

Fault reports and outages (issue 12): given an `OutagePort` (the OutageService), `create` links
a fault report from inside a known outage into it (a child of the outage's master order, or its
master when it has none) and counts the others toward incident detection
(outages.incidents), which opens a suspected outage when N reports of one feeder or 台区
arrive within the window. The detector's memory is the database: each report replays the
window's fault orders not yet in an outage (on its feeder and 台区) into a fresh pure Detector,
so a restart, a standby's takeover, the CLI and a journal replay all see the same cluster.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session, aliased, selectinload, sessionmaker

from cti.db.ivr_queries import allocate_work_order_number, normalize_phone
from cti.db.jsonready import json_ready
from cti.db.models import (
    ACCOUNT_NO_RE,
    Account,
    Area,
    Call,
    Outage,
    WorkOrder,
    WorkOrderEvent,
)
from cti.db.models_workorders import WorkOrderClock, WorkOrderEscalation
from cti.db.upsert import insert_on_conflict
from outages.incidents import DetectionSettings, Detector, SuspectedOutage
from outages.scope import Notice, Place, ta_name
from workorders import lifecycle as lc
from workorders.lifecycle import (
    Department,
    InvalidWorkOrder,
    OrderType,
    Role,
    SlaPolicy,
    Status,
    WorkOrderError,
)

log = logging.getLogger(__name__)

NUMBER_LEN: Final = 11
MAX_PAGE: Final = 200
MAX_DESCRIPTION: Final = 4000
MAX_NOTE: Final = 2000
# work_order_events.step of an agent's click-to-call to the order's customer (note: call_id=...)
CALLED_STEP: Final = "called"
TICK_BATCH: Final = 200  # clocks per escalation transaction
# pg_advisory_xact_lock namespace for "linking fault reports of one area" (the CTI leader lock,
# cti/leader_lock.py, has its own namespace): two reports of one
# area arriving together must not both become masters.
_LINK_LOCK_NS: Final = 95598


class WorkOrderNotFound(WorkOrderError, LookupError):
    """No work order with that number."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who takes a step: an agent or supervisor id, a department's staff id, 'ivr', 'system'."""

    id: str
    role: Role
    department: Department | None = None

    def __post_init__(self) -> None:
        if not self.id or len(self.id) > 64:
            raise InvalidWorkOrder("actor id must be 1-64 characters")
        if self.role is Role.DEPARTMENT and self.department is None:
            raise InvalidWorkOrder("a department actor needs their department "
                                   "(repair, marketing or metering)")


@dataclass(frozen=True, slots=True)
class Visibility:
    """The orders an agent may see (defect 5 of issue 10): those they accepted, those of calls
    they answered (assigned to them by the ACD), and those of the calls they are on now, by call
    id or by the caller's number (the customer on the line urging an older order). None instead
    of a Visibility means every order: supervisors, admins, the CLI, the IVR."""

    agent_id: str
    current_calls: frozenset[str] = frozenset()
    current_callers: frozenset[str] = frozenset()
    other_live_calls: frozenset[str] = frozenset()  # in the ACD, not this agent's

    def where(self) -> ColumnElement[bool]:
        callers = {n for c in self.current_callers for n in (c, normalize_phone(c)) if n}
        return or_(
            WorkOrder.id.in_(select(WorkOrderEvent.work_order_id).where(
                WorkOrderEvent.step == Status.ACCEPTED.value,
                WorkOrderEvent.actor == self.agent_id)),
            WorkOrder.call_id.in_(select(Call.call_id).where(Call.agent_id == self.agent_id)),
            WorkOrder.call_id.in_(sorted(self.current_calls)),
            WorkOrder.caller_number.in_(sorted(callers)),
        )

    def may_use_call(self, session: Session, call_id: str) -> bool:
        """The agent is on this call now or answered it, or the call is nobody's (no record, not
        live: nothing to read from it). Another agent's call is refused."""
        if call_id in self.current_calls:
            return True
        if call_id in self.other_live_calls:
            return False
        owner = session.execute(select(Call.agent_id).where(Call.call_id == call_id)
                                ).one_or_none()
        return owner is None or owner.agent_id == self.agent_id


@dataclass(frozen=True, slots=True)
class DepartmentVisibility(Visibility):
    """The orders a department's user sees (issue 15 §1): those with their department now, at
    any step, so a resolved order stays in their history and a reopened one comes back.
    `agent_id` is the user's id; they use no calls."""

    department: Department = Department.REPAIR

    def where(self) -> ColumnElement[bool]:
        return WorkOrder.department == self.department.value

    def may_use_call(self, session: Session, call_id: str) -> bool:
        return False


def _check_visible(session: Session, number: str, visible: Visibility | None) -> None:
    # an order the agent may not see does not exist for them (no hint that it does)
    if visible is not None and session.scalar(
            select(func.count()).select_from(WorkOrder).where(
                WorkOrder.number == _check_number(number), visible.where())) == 0:
        raise WorkOrderNotFound(f"no work order {number}")


SYSTEM: Final = Actor("system", Role.SYSTEM)
# the description of a fault the caller reported in the IVR, as agents and departments read it
# (Mandarin, the center's language: it was the English "IVR fault report", issue 14 §6)
IVR_FAULT_DESCRIPTION: Final = "客户通过自助语音报修（IVR）"
IVR: Final = Actor("ivr", Role.SYSTEM)


@dataclass(frozen=True, slots=True)
class WorkOrderAlert:
    """What supervisors are told of an order (an SLA threshold crossed, or an urge): facts, read
    in the unit of work that marked them. The notifier (cti/notifier.py) makes the message."""

    kind: str  # sla | urge
    level: str  # warning (80%) | breach (100%) | urge
    number: str
    order_type: str
    status: str
    department: str | None
    area: str | None
    caller_number: str | None
    account_no: str | None
    clock: str | None  # the SLA clock's name; None for an urge
    percent: int | None  # the threshold crossed; None for an urge
    started_at: datetime | None
    due_at: datetime | None
    crossed_at: datetime | None
    urge_count: int
    note: str | None
    at: datetime  # when it was noticed


class OutagePort(Protocol):
    """What `create` needs of outage notices and incident detection, in its transaction
    (callcenter.outage_service.OutageService)."""

    detection: DetectionSettings | None  # None: reports are not counted (still linked)

    def notice_for_report(self, s: Session, place: Place, now: datetime
                          ) -> Notice | None: ...

    def report_became_master(self, s: Session, outage_id: int, order_id: int,
                             now: datetime) -> None: ...

    def open_suspected(self, s: Session, suspected: SuspectedOutage, *, master_number: str,
                       first_report_at: datetime, now: datetime) -> int: ...


class AlertOutbox(Protocol):
    """Where alerts go; each is held until `session` commits and dropped if it rolls back
    (cti.notifier.Notifier in the CTI)."""

    def work_order_alert(self, session: Session, alert: WorkOrderAlert) -> None: ...


# ----------------------------------------------------------------------------------- helpers


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware datetime")
    return now.astimezone(UTC)


# stored text is shown on desks, in logs, on the bus and in CSV exports: no control characters
# (NUL, ESC's terminal sequences, CR/LF that forge log lines) and no bidi overrides or isolates
# (which make "A001" read as something else)
_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\x85\u2028\u2029]+")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_text(value: str) -> str:
    """value with line breaks as single spaces and other control and bidi characters removed."""
    return _UNSAFE.sub("", _LINE_BREAKS.sub(" ", value))


def _text(value: str | None, what: str, limit: int, *, required: bool = False) -> str | None:
    if value is not None:
        value = clean_text(value)
    if value is None or not value.strip():
        if required:
            raise InvalidWorkOrder(f"{what} must not be empty")
        return None
    value = value.strip()
    if len(value) > limit:
        raise InvalidWorkOrder(f"{what} is longer than {limit} characters")
    return value


def _check_number(number: str) -> str:
    if not isinstance(number, str) or len(number) != NUMBER_LEN or not number.isdigit():
        raise InvalidWorkOrder(f"work-order number must be {NUMBER_LEN} digits, got {number!r}")
    return number


def _locked(session: Session, number: str) -> WorkOrder:
    # FOR UPDATE on PostgreSQL (SQLite's BEGIN IMMEDIATE already serializes writers), so two
    # desks stepping one order cannot both pass the transition check.
    order = session.scalars(
        select(WorkOrder).where(WorkOrder.number == _check_number(number)).with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if order is None:
        raise WorkOrderNotFound(f"no work order {number}")
    return order


def _event(order: WorkOrder, step: str, now: datetime, actor: str, note: str | None) -> None:
    order.events.append(WorkOrderEvent(step=step, at=now, actor=actor, note=note))


def _add_event(session: Session, order: WorkOrder, step: str, now: datetime, actor: str,
               note: str | None) -> None:
    """Like _event for an order whose history need not be loaded: a master with many children
    would otherwise load all its events for every new child."""
    if "events" in order.__dict__:
        _event(order, step, now, actor, note)
    else:
        session.add(WorkOrderEvent(work_order_id=order.id, step=step, at=now, actor=actor,
                                   note=note))


def _running_clocks(session: Session, order_id: int) -> list[WorkOrderClock]:
    return list(session.scalars(
        select(WorkOrderClock)
        .where(WorkOrderClock.work_order_id == order_id, WorkOrderClock.stopped_at.is_(None))))


def _stop_clocks(session: Session, order: WorkOrder, to: Status, now: datetime) -> None:
    for clock in _running_clocks(session, order.id):
        if lc.clock_stops(Status(clock.stops_at), to):
            clock.stopped_at, clock.stopped_by = now, to.value


# ------------------------------------------------------------------------------------ create


@dataclass(frozen=True, slots=True)
class NewOrder:
    """What an agent (or the IVR) knows when accepting (受理) an order. Missing caller number
    and account are prefilled from the call record when call_id is given (the screen-pop)."""

    type: str
    description: str
    caller_number: str | None = None
    account_no: str | None = None
    call_id: str | None = None
    subtype: str | None = None
    department: str | None = None
    channel: str = "agent"


def create(session: Session, new: NewOrder, actor: Actor, now: datetime, policy: SlaPolicy,
           *, link_duplicates: bool = True, visible: Visibility | None = None,
           outages: OutagePort | None = None) -> WorkOrder:
    """Accept (受理) an order: number, SLA clocks, the accepted event. A fault report is linked
    (unless `link_duplicates` is false), in this order of precedence:

    - from inside a known outage (`outages`: a counting notice covering the account's area,
      feeder or 台区, or a suspected outage still waiting for confirmation): `outage_id` is set
      and it becomes a child (子单) of the outage's master order, or, when the outage has none
      (or its master is no longer open), its master (OutageService.report_became_master);
    - else, of an area that already has an open master order within the duplicate window: its
      child (子单);
    - and, when not inside an outage, it counts toward incident detection; the N-th report of
      one feeder or 台区 within the window opens a suspected outage (_detect).

    Each link is an event on both orders ("linked into outage N"). The caller commits."""
    now = _aware(now)
    order_type = lc.parse_type(new.type)
    subtype = lc.check_subtype(order_type, _text(new.subtype, "subtype", 32))
    department = lc.parse_department(new.department) if new.department else None
    description = _text(new.description, "description", MAX_DESCRIPTION, required=True)
    assert description is not None
    if new.channel not in ("ivr", "agent"):
        raise InvalidWorkOrder(f"channel must be ivr or agent, got {new.channel!r}")
    if actor.role is Role.DEPARTMENT:
        raise lc.RoleNotAllowed("orders are accepted by the center (agents, supervisors, IVR)")
    call_id = _text(new.call_id, "call_id", 64)
    caller = _text(new.caller_number, "caller_number", 32)
    account_no = _text(new.account_no, "account_no", 64)
    if call_id is not None and visible is not None and not visible.may_use_call(session, call_id):
        # another agent's call: its caller and account are not this agent's to read
        raise lc.RoleNotAllowed(f"call {call_id} is not yours")
    if call_id is not None and (caller is None or account_no is None):
        call = session.execute(select(Call.caller_number, Call.account_no)
                               .where(Call.call_id == call_id)).one_or_none()
        if call is not None:
            caller = caller or call.caller_number
            account_no = account_no or call.account_no
    if caller is None:
        raise InvalidWorkOrder("caller_number is required (or a call_id of a recorded call)")
    # one form per number (13800000001, not +86 138 …), so search and the screen-pop find it;
    # a withheld caller ('anonymous') stays as delivered
    caller = normalize_phone(caller) or caller
    account = None
    if account_no is not None and ACCOUNT_NO_RE.fullmatch(account_no):
        account = session.execute(
            select(Account.id, Account.area_id, Area.kind, Account.feeder_id,
                   Account.transformer_area)
            .join(Area, Area.id == Account.area_id)
            .where(Account.account_no == account_no)).one_or_none()
    if account_no is not None and account is None:
        # keep what the caller gave: the crew may still find the address from it
        description = f"{description} (account {account_no} not found)"[:MAX_DESCRIPTION]
    area_id = account.area_id if account is not None else None
    place = (Place(account.area_id, account.feeder_id, account.transformer_area)
             if account is not None else None)
    plans = lc.plan_clocks(policy, order_type, subtype,
                           account.kind if account is not None else None, now)

    master: WorkOrder | None = None
    notice: Notice | None = None
    linking = link_duplicates and lc.linkable(order_type, subtype, area_id)
    if linking:
        assert area_id is not None
        # a feeder and a 台区 lie inside one area: this lock also orders detection's count
        if session.get_bind().dialect.name == "postgresql":
            session.execute(select(func.pg_advisory_xact_lock(_LINK_LOCK_NS, area_id)))
        if outages is not None and place is not None:
            notice = outages.notice_for_report(session, place, now)
    if notice is not None:
        master = _outage_master(session, notice)
    elif linking:
        rows = session.scalars(
            select(WorkOrder).where(
                WorkOrder.area_id == area_id, WorkOrder.type == order_type.value,
                WorkOrder.master_id.is_(None),
                WorkOrder.status.in_([s.value for s in lc.OPEN_STATUSES]),
                WorkOrder.created_at >= now - policy.duplicate_window,
                WorkOrder.created_at <= now)).all()
        pick = lc.pick_master(order_type, subtype, area_id, now, [
            lc.MasterCandidate(id=r.id, type=OrderType(r.type), subtype=r.subtype,
                               area_id=r.area_id, status=Status(r.status),
                               created_at=r.created_at, master_id=r.master_id)
            for r in rows], policy.duplicate_window)
        master = next((r for r in rows if pick is not None and r.id == pick.id), None)

    arrival = next((p.due_at for p in plans if p.name == "arrival"), None)
    order = WorkOrder(
        number=allocate_work_order_number(session, now), type=order_type.value,
        subtype=subtype, status=Status.ACCEPTED.value, caller_number=caller,
        account_id=account.id if account is not None else None, area_id=area_id,
        description=description, channel=new.channel, call_id=call_id, created_at=now,
        sla_due_at=arrival, master_id=master.id if master is not None else None,
        department=department.value if department else None, urge_count=0,
        outage_id=notice.id if notice is not None else None)
    _event(order, Status.ACCEPTED.value, now, actor.id, f"{new.channel}: {caller}")
    session.add(order)
    session.flush()
    inside = f"linked into outage {notice.id}: " if notice is not None else ""
    if master is not None:
        # the master's clocks carry the commitment; the child follows its resolution
        _event(order, "linked", now, actor.id, f"{inside}子单 of master {master.number}")
        _add_event(session, master, "child_linked", now, actor.id,
                   f"子单 {order.number}" + (f" linked into outage {notice.id}"
                                            if notice is not None else ""))
    else:
        for p in plans:
            session.add(WorkOrderClock.start(order.id, p.name, p.started_at, p.due_at,
                                             p.stops_at.value, policy.thresholds))
        if notice is not None:
            assert outages is not None
            outages.report_became_master(session, notice.id, order.id, now)
            _event(order, "outage_linked", now, actor.id,
                   f"{inside}master order (主单) of the outage")
    session.flush()
    if (linking and notice is None and outages is not None and place is not None
            and outages.detection is not None):  # None: [outages] detect = false
        _detect(session, order, outages, outages.detection, now)
    log.info("work order %s (%s) accepted by %s call_id=%s master=%s outage=%s", order.number,
             order.type, actor.id, call_id, master.number if master else None, order.outage_id)
    return order


def _outage_master(session: Session, notice: Notice) -> WorkOrder | None:
    """The open order that carries an outage's work: its master order (or that order's own
    master, should someone have linked it by hand); None when it has none or it is closed, so
    the new report becomes the outage's master. Read under the outage row's lock: two first
    reports from two areas of one notice (two area locks) must not both become its master."""
    master_id = session.scalar(select(Outage.master_order_id).where(Outage.id == notice.id)
                               .with_for_update())
    if master_id is None:
        return None
    m = session.get(WorkOrder, master_id)
    if m is not None and m.master_id is not None:
        m = session.get(WorkOrder, m.master_id)
    if m is None or Status(m.status) not in lc.OPEN_STATUSES:
        return None
    return m


def _detect(session: Session, order: WorkOrder, outages: OutagePort,
            settings: DetectionSettings, now: datetime) -> None:
    """Incident detection for the fault report `order` (flushed, in no outage): replay the
    window's fault reports in no outage on its feeder and 台区, oldest first, into a fresh
    Detector; a cluster that reaches the threshold opens a suspected outage (the Detector's
    rules: the 台区 before the feeder, the oldest report's order its master) and its reports
    join it. The database is the detector's memory, so nothing is lost to a restart."""
    account = session.get(Account, order.account_id) if order.account_id is not None else None
    if account is None:
        return
    ta = ta_name(account.transformer_area)
    near: list[ColumnElement[bool]] = []
    if account.feeder_id is not None:
        near.append(Account.feeder_id == account.feeder_id)
    if ta is not None:
        near.append(and_(Account.area_id == account.area_id,
                         func.trim(Account.transformer_area) == ta))
    if not near:
        return  # neither feeder nor 台区 known: only notices link it
    rows = session.execute(
        select(WorkOrder.id, WorkOrder.number, WorkOrder.created_at, Account.area_id,
               Account.feeder_id, Account.transformer_area)
        .join(Account, Account.id == WorkOrder.account_id)
        .where(WorkOrder.type == OrderType.FAULT_REPAIR.value, WorkOrder.outage_id.is_(None),
               or_(WorkOrder.subtype.is_(None), WorkOrder.subtype != lc.METER_FAULT),
               WorkOrder.created_at >= now - settings.window, WorkOrder.created_at <= now,
               or_(*near))
        .order_by(WorkOrder.created_at, WorkOrder.id)).all()
    detector = Detector(settings)
    opened: list[SuspectedOutage] = []
    joins: set[int] = set()  # the seq of the suspected outage the new report links to
    for r in rows:
        out = detector.report(r.created_at, Place(r.area_id, r.feeder_id, r.transformer_area),
                              r.number)
        if out.opened is not None:
            opened.append(out.opened)
        if r.id == order.id and out.link is not None and out.link.suspected_seq is not None:
            joins.add(out.link.suspected_seq)
    for suspected in opened:
        _open_suspected(session, suspected, outages, settings, now,
                        late=order if suspected.seq in joins
                        and order.number not in suspected.reports else None)


def _open_suspected(session: Session, suspected: SuspectedOutage, outages: OutagePort,
                    settings: DetectionSettings, now: datetime, late: WorkOrder | None) -> None:
    """Publish a suspected outage and link its reports (and `late`, a report that came after
    the cluster had already reached the threshold in the replay) into it."""
    orders = {o.number: o for o in session.scalars(
        select(WorkOrder).where(WorkOrder.number.in_(suspected.reports)).with_for_update())}
    first = orders[suspected.master_report]
    root = first
    if first.master_id is not None:
        # today's area linking already put the cluster under an older open order of the area:
        # that order carries the work (and its clocks), so it is the outage's master too
        above = session.get(WorkOrder, first.master_id)
        if above is not None and Status(above.status) in lc.OPEN_STATUSES:
            root = above
    outage_id = outages.open_suspected(
        session, suspected, master_number=root.number,
        first_report_at=min(o.created_at for o in orders.values()), now=now)
    what = (f"台区 {suspected.scope.transformer_area}"
            if suspected.scope.kind == "transformer_area"
            else f"feeder {suspected.scope.feeder_id}")
    minutes = settings.window.total_seconds() / 60
    why = (f"suspected outage {outage_id}: {len(suspected.reports)} fault reports on {what} "
           f"within {minutes:g} min")
    if root.number not in orders:
        if root.outage_id is None:
            root.outage_id = outage_id
        _add_event(session, root, "outage_linked", now, SYSTEM.id,
                   f"master order (主单) of {why}")
    members = [orders[n] for n in suspected.reports] + ([late] if late is not None else [])
    for o in members:
        _join_outage(session, o, root, outage_id, why, now)
    session.flush()


def _join_outage(session: Session, o: WorkOrder, root: WorkOrder, outage_id: int, why: str,
                 now: datetime) -> None:
    o.outage_id = outage_id
    if o.id == root.id:
        _add_event(session, o, "outage_linked", now, SYSTEM.id, f"master order (主单) of {why}")
        return
    into = f"linked into outage {outage_id}"
    if o.master_id == root.id:
        _add_event(session, o, "outage_linked", now, SYSTEM.id,
                   f"{into}: 子单 of master {root.number}")
        return
    has_children = session.scalar(select(func.count()).select_from(WorkOrder)
                                  .where(WorkOrder.master_id == o.id))
    if o.master_id is None and not has_children and Status(o.status) in lc.OPEN_STATUSES:
        o.master_id = root.id
        for clock in _running_clocks(session, o.id):
            clock.stopped_at, clock.stopped_by = now, "linked"
        _add_event(session, o, "linked", now, SYSTEM.id, f"{into}: 子单 of master {root.number}")
        _add_event(session, root, "child_linked", now, SYSTEM.id,
                   f"子单 {o.number} {into}")
        return
    # a closed report, a master of other children, or a child of another order: it stays
    # where it is (no 子单 of a 子单), and the outage is recorded on it
    _add_event(session, o, "outage_linked", now, SYSTEM.id, f"{into} (its links unchanged)")


# -------------------------------------------------------------------------------- transitions


def transition(session: Session, number: str, to: str, actor: Actor, now: datetime, *,
               department: str | None = None, note: str | None = None,
               satisfied: bool | None = None, reopen: bool = False) -> WorkOrder:
    """Take one lifecycle step, recorded with time and actor. Resolving a master resolves its
    open children (they follow the master's resolution). `reopen`: the step must be the
    reopening of an order at its return visit (`hotline workorders reopen`), nothing else.
    The caller commits."""
    now = _aware(now)
    target = lc.parse_status(to)
    note = _text(note, "note", MAX_NOTE)
    order = _locked(session, number)
    order_type, status = OrderType(order.type), Status(order.status)
    current_dept = Department(order.department) if order.department else None
    if reopen and (status is not Status.RETURN_VISIT or target is not Status.DISPATCHED):
        raise lc.TransitionNotAllowed(
            f"order {number} is {status.value}: only an order at its return visit is reopened")
    decision = lc.decide_transition(
        order_type, status, target, actor.role,
        department=lc.parse_department(department) if department else None,
        current_department=current_dept, linked_to_master=order.master_id is not None,
        satisfaction=order.satisfaction)
    if (actor.role is Role.DEPARTMENT and actor.department is not None
            and current_dept is not None and actor.department is not current_dept):
        raise lc.RoleNotAllowed(
            f"the order is with {current_dept.value}, not {actor.department.value}")
    if satisfied is not None and target is not Status.RETURN_VISIT:
        raise InvalidWorkOrder("satisfied is only given with the return visit")
    order.status = target.value
    if decision.department is not None:
        order.department = decision.department.value
    if target is Status.RESOLVED:
        order.resolved_at = now
    if target is Status.RETURN_VISIT and satisfied is not None:
        order.satisfaction = "satisfied" if satisfied else "unsatisfied"
    text = note
    if decision.department is not None:
        text = f"→ {decision.department.value}" + (f": {note}" if note else "")
    if decision.reopened:
        text = "reopened after return visit" + (f": {note}" if note else "")
    if target is Status.RETURN_VISIT and satisfied is not None:
        text = ("满意 satisfied" if satisfied else "不满意 unsatisfied") + (
            f": {note}" if note else "")
    _event(order, target.value, now, actor.id, text)
    _stop_clocks(session, order, target, now)
    if target is Status.RESOLVED:
        children = session.scalars(
            select(WorkOrder).where(WorkOrder.master_id == order.id).with_for_update()).all()
        for child in children:
            if lc.follows_master(Status(child.status), target):
                child.status, child.resolved_at = target.value, now
                _event(child, target.value, now, actor.id, f"follows master {order.number}")
                _stop_clocks(session, child, target, now)
    session.flush()
    log.info("work order %s %s -> %s by %s", order.number, status.value, target.value, actor.id)
    return order


def link(session: Session, number: str, master_number: str, actor: Actor,
         now: datetime) -> WorkOrder:
    """A supervisor links a duplicate by hand: `number` becomes a child of `master_number`."""
    now = _aware(now)
    if lc.effective_role(actor.role) is not Role.SUPERVISOR:
        raise lc.RoleNotAllowed("only a supervisor links orders by hand")
    if number == master_number:
        raise InvalidWorkOrder("an order cannot be its own master")
    child, master = _locked(session, number), _locked(session, master_number)
    if master.master_id is not None:
        raise lc.TransitionNotAllowed(f"{master_number} is itself a child of another order")
    if session.scalar(select(func.count()).where(WorkOrder.master_id == child.id)):
        raise lc.TransitionNotAllowed(f"{number} is a master with children of its own")
    if Status(child.status) not in lc.OPEN_STATUSES or Status(
            master.status) not in lc.OPEN_STATUSES:
        raise lc.TransitionNotAllowed("only open orders are linked")
    child.master_id = master.id
    for clock in _running_clocks(session, child.id):
        clock.stopped_at, clock.stopped_by = now, "linked"
    _event(child, "linked", now, actor.id, f"子单 of master {master.number}")
    _add_event(session, master, "child_linked", now, actor.id, f"子单 {child.number}")
    session.flush()
    return child


# ------------------------------------------------------------------------------------- urging


def urge(session: Session, number: str, actor: Actor, now: datetime, policy: SlaPolicy,
         note: str | None = None) -> tuple[WorkOrder, WorkOrderAlert | None]:
    """A caller urges (催办) an open order: counted and recorded; it escalates to the
    supervisors (the returned alert, to publish after commit) unless it repeats an urge made
    moments ago. Urging a child urges its master, which carries the work."""
    now = _aware(now)
    note = _text(note, "note", MAX_NOTE)
    order = _locked(session, number)
    target = order
    if order.master_id is not None:
        target = session.scalars(select(WorkOrder).where(WorkOrder.id == order.master_id)
                                 .with_for_update()).one()
    decision = lc.decide_urge(Status(target.status), target.urge_count, target.last_urged_at,
                              now, policy)
    target.urge_count, target.last_urged_at = decision.count, now
    _event(target, "urged", now, actor.id,
           note if target is order else f"via 子单 {order.number}" + (f": {note}" if note else ""))
    if target is not order:
        order.urge_count, order.last_urged_at = order.urge_count + 1, now
        _event(order, "urged", now, actor.id, f"forwarded to master {target.number}")
    session.flush()
    alert = None
    if decision.alert:
        alert = _alert(session, target, kind="urge", level="urge", now=now, note=note)
    return target, alert


# --------------------------------------------------------------------------------- escalation


def _alert(session: Session, order: WorkOrder, *, kind: str, level: str, now: datetime,
           clock: WorkOrderClock | None = None, percent: int | None = None,
           crossed_at: datetime | None = None, note: str | None = None) -> WorkOrderAlert:
    """The facts of a supervisor alert (docs/mqtt.md), read while the session is open."""
    return WorkOrderAlert(
        kind=kind, level=level, number=order.number, order_type=order.type,
        status=order.status, department=order.department,
        area=order.area.name if order.area is not None else None,
        caller_number=order.caller_number,
        account_no=order.account.account_no if order.account is not None else None,
        clock=clock.name if clock else None, percent=percent,
        started_at=clock.started_at if clock else None,
        due_at=clock.due_at if clock else order.sla_due_at,
        crossed_at=crossed_at, urge_count=order.urge_count, note=note, at=now)


def escalation_tick(session: Session, now: datetime, policy: SlaPolicy) -> list[WorkOrderAlert]:
    """Every alert due now, in the caller's transaction (see escalation_batch)."""
    return escalation_batch(session, now, policy)[0]


def escalation_batch(session: Session, now: datetime, policy: SlaPolicy,
                     limit: int | None = None) -> tuple[list[WorkOrderAlert], bool]:
    """Mark the thresholds the running clocks have crossed (at most `limit` clocks, those due
    first) and return one alert per new mark, and whether clocks may be left for another batch.

    Idempotent: a mark is an INSERT … ON CONFLICT DO NOTHING on (clock, percent), so a
    repeated tick, a second CTI or a tick racing another marks and returns each crossing once.
    The caller commits, then publishes (publish after commit)."""
    now = _aware(now)
    # only the clocks with an alert due (next_alert_at, indexed), not every running one
    clocks = session.scalars(
        select(WorkOrderClock).where(WorkOrderClock.stopped_at.is_(None),
                                     WorkOrderClock.next_alert_at <= now)
        .options(selectinload(WorkOrderClock.escalations),
                 selectinload(WorkOrderClock.work_order).selectinload(WorkOrder.account),
                 selectinload(WorkOrderClock.work_order).selectinload(WorkOrder.area))
        .order_by(WorkOrderClock.next_alert_at, WorkOrderClock.id).limit(limit)).all()
    alerts: list[WorkOrderAlert] = []
    for clock in clocks:
        marked = {e.percent for e in clock.escalations}
        view = lc.ClockView(clock.name, clock.started_at, clock.due_at, clock.stopped_at,
                            frozenset(p / 100 for p in marked))
        for esc in lc.due_escalations(view, policy.thresholds, now):
            percent = round(esc.threshold * 100)
            marked.add(percent)  # by this tick or, when the insert finds it, by another
            inserted = session.execute(
                insert_on_conflict(session, WorkOrderEscalation).values(
                    clock_id=clock.id, percent=percent, level=esc.level,
                    crossed_at=esc.crossed_at, alerted_at=now)
                .on_conflict_do_nothing(index_elements=["clock_id", "percent"])
                .returning(WorkOrderEscalation.id)).scalar_one_or_none()
            if inserted is None:
                continue  # another tick marked it first; it publishes, not us
            order = clock.work_order
            _add_event(session, order, "escalated", now, SYSTEM.id,
                   f"{clock.name} {percent}% ({esc.level}), due {clock.due_at.isoformat()}")
            alerts.append(_alert(session, order, kind="sla", level=esc.level, now=now,
                                 clock=clock, percent=percent, crossed_at=esc.crossed_at))
        clock.next_alert_at = lc.next_alert_at(
            lc.ClockView(clock.name, clock.started_at, clock.due_at, None,
                         frozenset(p / 100 for p in marked)), policy.thresholds)
    session.flush()
    if alerts:
        log.info("escalation tick: %d new alert(s)", len(alerts))
    return alerts, limit is not None and len(clocks) == limit


# ------------------------------------------------------------------------------------ reading


def _clock_doc(clock: WorkOrderClock, policy: SlaPolicy, now: datetime) -> dict[str, Any]:
    view = lc.ClockView(clock.name, clock.started_at, clock.due_at, clock.stopped_at)
    end = clock.stopped_at or now
    return {
        "name": clock.name, "started_at": clock.started_at, "due_at": clock.due_at,
        "stops_at": clock.stops_at, "stopped_at": clock.stopped_at,
        "stopped_by": clock.stopped_by,
        "percent_used": round(lc.fraction_used(view, end) * 100, 1),
        "met": None if clock.stopped_at is None or clock.stopped_by == "linked"
        else clock.stopped_at <= clock.due_at,
        "escalations": [{"percent": e.percent, "level": e.level, "crossed_at": e.crossed_at,
                         "alerted_at": e.alerted_at} for e in clock.escalations],
    }


def _summary(order: WorkOrder, account_no: str | None, area: str | None,
             master_number: str | None) -> dict[str, Any]:
    status, otype = Status(order.status), OrderType(order.type)
    return {
        "number": order.number, "type": order.type,
        "type_label": dict(zip(("zh", "en"), lc.TYPE_LABELS[otype], strict=True)),
        "subtype": order.subtype, "status": order.status,
        "status_label": dict(zip(("zh", "en"), lc.STATUS_LABELS[status], strict=True)),
        "department": order.department, "caller_number": order.caller_number,
        "account_no": account_no, "area": area, "description": order.description,
        "channel": order.channel, "call_id": order.call_id, "created_at": order.created_at,
        "sla_due_at": order.sla_due_at, "resolved_at": order.resolved_at,
        "master_number": master_number, "outage_id": order.outage_id,
        "urge_count": order.urge_count,
        "last_urged_at": order.last_urged_at, "satisfaction": order.satisfaction,
    }


def _rows(session: Session, where: Iterable[ColumnElement[bool]], *, order_by: Any,
          limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
    master = aliased(WorkOrder)
    stmt = (select(WorkOrder, Account.account_no, Area.name, master.number)
            .outerjoin(Account, Account.id == WorkOrder.account_id)
            .outerjoin(Area, Area.id == WorkOrder.area_id)
            .outerjoin(master, master.id == WorkOrder.master_id)
            .where(*where).order_by(*order_by).offset(offset))
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_summary(wo, acct, area, mnum) for wo, acct, area, mnum in session.execute(stmt)]


def get(session: Session, number: str, now: datetime, policy: SlaPolicy,
        visible: Visibility | None = None) -> dict[str, Any]:
    """One order with its full history (every step with time, actor, note), clocks and links."""
    now = _aware(now)
    where = [WorkOrder.number == _check_number(number)]
    if visible is not None:
        where.append(visible.where())
    rows = _rows(session, where, order_by=[WorkOrder.id])
    if not rows:
        raise WorkOrderNotFound(f"no work order {number}")
    doc = rows[0]
    order = session.scalars(select(WorkOrder).where(WorkOrder.number == number)
                            .options(selectinload(WorkOrder.events))).one()
    clocks = session.scalars(select(WorkOrderClock).where(
        WorkOrderClock.work_order_id == order.id).order_by(WorkOrderClock.id)
        .options(selectinload(WorkOrderClock.escalations))).all()
    status, otype = Status(order.status), OrderType(order.type)
    doc.update({
        "events": [{"step": e.step, "at": e.at, "actor": e.actor, "note": e.note}
                   for e in order.events],
        "clocks": [_clock_doc(c, policy, now) for c in clocks],
        "children": list(session.scalars(select(WorkOrder.number).where(
            WorkOrder.master_id == order.id).order_by(WorkOrder.id))),
        "next_steps": {r.value: [s.value for s in lc.allowed_steps(otype, status, r)]
                       for r in (Role.AGENT, Role.SUPERVISOR, Role.DEPARTMENT)}
        if order.master_id is None or status not in lc.OPEN_STATUSES else
        {r.value: [] for r in (Role.AGENT, Role.SUPERVISOR, Role.DEPARTMENT)},
        "return_visit_required": lc.needs_return_visit(otype),
    })
    return json_ready(doc)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    status: str | None = None
    type: str | None = None
    text: str | None = None          # in the number or the description
    account: str | None = None
    caller: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None  # exclusive
    limit: int = 50
    offset: int = 0
    statuses: tuple[str, ...] = ()   # any of these (with status: both hold)
    with_events: bool = False        # each item with its history (the CLI listing)
    visible: Visibility | None = None  # an agent's view; None: every order


def search(session: Session, q: SearchQuery) -> dict[str, Any]:
    """Orders matching every given filter, newest first, a page at a time, with the total."""
    if not 1 <= q.limit <= MAX_PAGE:
        raise InvalidWorkOrder(f"limit must be 1..{MAX_PAGE}, got {q.limit}")
    if q.offset < 0:
        raise InvalidWorkOrder(f"offset must be >= 0, got {q.offset}")
    where: list[ColumnElement[bool]] = []
    if q.visible is not None:
        where.append(q.visible.where())
    if q.status:
        where.append(WorkOrder.status == lc.parse_status(q.status).value)
    if q.statuses:
        where.append(WorkOrder.status.in_([lc.parse_status(x).value for x in q.statuses]))
    if q.type:
        where.append(WorkOrder.type == lc.parse_type(q.type).value)
    text = _text(q.text, "text", 200)
    if text:
        where.append(or_(WorkOrder.number.contains(text, autoescape=True),
                         func.lower(WorkOrder.description).contains(text.lower(),
                                                                    autoescape=True)))
    if q.account:
        where.append(WorkOrder.account_id.in_(
            select(Account.id).where(Account.account_no == q.account.strip())))
    if q.caller:
        numbers = {q.caller.strip(), normalize_phone(q.caller)} - {""}
        where.append(WorkOrder.caller_number.in_(sorted(numbers)))
    if q.date_from is not None:
        where.append(WorkOrder.created_at >= _aware(q.date_from))
    if q.date_to is not None:
        where.append(WorkOrder.created_at < _aware(q.date_to))
    if q.date_from is not None and q.date_to is not None and q.date_to <= q.date_from:
        raise InvalidWorkOrder("the date range is empty (to <= from)")
    total = session.scalar(select(func.count()).select_from(WorkOrder).where(*where)) or 0
    items = _rows(session, where, order_by=[WorkOrder.created_at.desc(), WorkOrder.id.desc()],
                  limit=q.limit, offset=q.offset)
    if q.with_events and items:
        history: dict[str, list[dict[str, Any]]] = {}
        for number, step, at, actor, note in session.execute(
                select(WorkOrder.number, WorkOrderEvent.step, WorkOrderEvent.at,
                       WorkOrderEvent.actor, WorkOrderEvent.note)
                .join(WorkOrder, WorkOrder.id == WorkOrderEvent.work_order_id)
                .where(WorkOrder.number.in_([i["number"] for i in items]))
                .order_by(WorkOrderEvent.id)):
            history.setdefault(number, []).append(
                {"step": step, "at": at, "actor": actor, "note": note})
        for item in items:
            item["events"] = history.get(item["number"], [])
    return json_ready({"total": total, "limit": q.limit, "offset": q.offset, "items": items})


def return_visit_list(session: Session, limit: int = 100,
                      visible: Visibility | None = None) -> list[dict[str, Any]]:
    """Resolved orders waiting for their return visit (回访), longest waiting first; complaints
    and repairs must have one, service applications and reports usually get one."""
    if not 1 <= limit <= 1000:
        raise InvalidWorkOrder(f"limit must be 1..1000, got {limit}")
    types = [t.value for t in OrderType if lc.return_visit_expected(t)]
    where = [WorkOrder.status == Status.RESOLVED.value, WorkOrder.type.in_(types)]
    if visible is not None:
        where.append(visible.where())
    rows = _rows(session, where, order_by=[WorkOrder.resolved_at, WorkOrder.id], limit=limit)
    for r in rows:
        r["return_visit_required"] = lc.needs_return_visit(OrderType(r["type"]))
    return json_ready(rows)


def at_risk(session: Session, now: datetime, policy: SlaPolicy) -> list[dict[str, Any]]:
    """Orders with a running clock past the first threshold (80%), the most used first."""
    now = _aware(now)
    clocks = session.scalars(
        select(WorkOrderClock).where(WorkOrderClock.stopped_at.is_(None),
                                     WorkOrderClock.warn_at <= now)
        .options(selectinload(WorkOrderClock.escalations))).all()
    risky: dict[int, list[WorkOrderClock]] = {}
    for c in clocks:
        risky.setdefault(c.work_order_id, []).append(c)
    if not risky:
        return []
    rows = _rows(session, [WorkOrder.id.in_(sorted(risky))], order_by=[WorkOrder.id])
    ids = dict(session.execute(select(WorkOrder.number, WorkOrder.id)
                               .where(WorkOrder.id.in_(sorted(risky)))).all())
    out = []
    for r in rows:
        r["clocks"] = [_clock_doc(c, policy, now) for c in risky[ids[r["number"]]]]
        r["percent_used"] = max(c["percent_used"] for c in r["clocks"])
        out.append(r)
    out.sort(key=lambda r: (-r["percent_used"], r["number"]))
    return json_ready(out)


def open_children_of(session: Session, number: str) -> list[str]:
    master = aliased(WorkOrder)
    return list(session.scalars(
        select(WorkOrder.number).join(master, and_(master.id == WorkOrder.master_id,
                                                   master.number == number))
        .where(WorkOrder.status.in_([s.value for s in lc.OPEN_STATUSES]))))


# ---------------------------------------------------------------------- the unit-of-work facade


class ReturnVisitPort(Protocol):
    def resolved(self, session: Session, order: WorkOrder, now: datetime) -> None:
        """A repair or complaint was resolved: schedule its return visit in this unit of
        work (callcenter.return_visits)."""

    def call_now(self, session: Session, order: WorkOrder, now: datetime, by: str) -> int:
        """Dial the order's return visit at once (an agent's click); the job's id."""

    def calls(self, session: Session, numbers: list[str]) -> dict[str, dict[str, Any]]:
        """Each of these orders' latest return-visit call (state, attempts, last outcome)."""


class NoOutbound(WorkOrderError):
    """Return visits cannot be called: no outbound trunk is configured."""


class WorkOrderService:
    """One session and commit per call; supervisor alerts are published after the commit
    when `alerts` (cti.notifier.Notifier, which holds them in its outbox) is given."""

    def __init__(self, sessions: sessionmaker[Session], policy: SlaPolicy,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 alerts: AlertOutbox | None = None, *,
                 outages: OutagePort | None = None,
                 return_visits: ReturnVisitPort | None = None) -> None:
        self.sessions = sessions
        self.policy = policy
        self.clock = clock
        self.alerts = alerts
        # fault reports are linked into known outages and counted by incident detection
        self.outages = outages
        # a resolved repair or complaint gets its return visit call (issue 14's outbound
        # engine); without one, it waits in return_visit_list for an agent
        self.return_visits = return_visits

    def _publish(self, s: Session, alerts: Iterable[WorkOrderAlert]) -> None:
        if self.alerts is None:
            return
        for alert in alerts:
            self.alerts.work_order_alert(s, alert)

    def create(self, new: NewOrder, actor: Actor, *, link_duplicates: bool = True,
               now: datetime | None = None,
               visible: Visibility | None = None) -> dict[str, Any]:
        now = now or self.clock()
        with self.sessions.begin() as s:
            order = create(s, new, actor, now, self.policy, link_duplicates=link_duplicates,
                           visible=visible, outages=self.outages)
            return get(s, order.number, now, self.policy)

    def create_in(self, s: Session, new: NewOrder, actor: Actor, now: datetime, *,
                  link_duplicates: bool = True) -> WorkOrder:
        """`create` in the caller's transaction (the IVR's fault report, journalled and replayed
        by its DurableWrites), with this service's policy and outage linking. The returned
        order has `outage_id` (the outage it was linked into) and `master_id` (its master
        order) set; OutageService.restore_time gives the outage's expected restoration."""
        return create(s, new, actor, now, self.policy, link_duplicates=link_duplicates,
                      outages=self.outages)

    def transition(self, number: str, to: str, actor: Actor, *, department: str | None = None,
                   note: str | None = None, satisfied: bool | None = None,
                   now: datetime | None = None, visible: Visibility | None = None,
                   reopen: bool = False) -> dict[str, Any]:
        now = now or self.clock()
        with self.sessions.begin() as s:
            _check_visible(s, number, visible)
            order = transition(s, number, to, actor, now, department=department, note=note,
                               satisfied=satisfied, reopen=reopen)
            if (self.return_visits is not None and order.status == Status.RESOLVED.value
                    and lc.needs_return_visit(OrderType(order.type))):
                self.return_visits.resolved(s, order, now)
            return get(s, number, now, self.policy)

    def call_return_visit(self, number: str, actor: Actor, *, now: datetime | None = None,
                          visible: Visibility | None = None) -> dict[str, Any]:
        """Dial a resolved order's return visit now (one click in the desktop)."""
        if self.return_visits is None:
            raise NoOutbound("return visits are not called here: no outbound trunk "
                             "([pbx] outbound_trunk); call the customer and record the visit")
        now = now or self.clock()
        with self.sessions.begin() as s:
            _check_visible(s, number, visible)
            order = _locked(s, number)
            if order.status != Status.RESOLVED.value:
                raise lc.TransitionNotAllowed(
                    f"order {number} is {order.status}: only a resolved order is visited")
            if not order.caller_number:
                raise InvalidWorkOrder(f"order {number} has no number to call")
            job = self.return_visits.call_now(s, order, now, actor.id)
            return {"number": number, "job_id": job, "requested_at": now.isoformat()}

    def urge(self, number: str, actor: Actor, note: str | None = None, *,
             now: datetime | None = None,
             visible: Visibility | None = None) -> dict[str, Any]:
        now = now or self.clock()
        with self.sessions.begin() as s:
            _check_visible(s, number, visible)
            target, alert = urge(s, number, actor, now, self.policy, note)
            self._publish(s, [alert] if alert else [])
            doc = get(s, number, now, self.policy)
            doc["urge_alerted"] = alert is not None
            doc["urged_number"] = target.number
            return doc

    def link(self, number: str, master_number: str, actor: Actor, *,
             now: datetime | None = None) -> dict[str, Any]:
        now = now or self.clock()
        with self.sessions.begin() as s:
            link(s, number, master_number, actor, now)
            return get(s, number, now, self.policy)

    def record_call(self, number: str, actor: Actor, call_id: str, *,
                    now: datetime | None = None, visible: Visibility | None = None) -> None:
        """The agent called the order's customer (click-to-call): an event `called` on the
        order's history, its note the call's id (the call, its record and its recording)."""
        now = now or self.clock()
        with self.sessions.begin() as s:
            _check_visible(s, number, visible)
            order = _locked(s, number)
            _add_event(s, order, CALLED_STEP, now, actor.id, f"call_id={call_id}")

    def get(self, number: str, *, now: datetime | None = None,
            visible: Visibility | None = None) -> dict[str, Any]:
        with self.sessions.begin() as s:
            return get(s, number, now or self.clock(), self.policy, visible)

    def search(self, q: SearchQuery) -> dict[str, Any]:
        with self.sessions.begin() as s:
            return search(s, q)

    def return_visit_list(self, limit: int = 100,
                          visible: Visibility | None = None) -> list[dict[str, Any]]:
        with self.sessions.begin() as s:
            rows = return_visit_list(s, limit, visible)
            calls = (self.return_visits.calls(s, [r["number"] for r in rows])
                     if self.return_visits is not None else {})
            for r in rows:
                r["return_visit_call"] = json_ready(calls.get(r["number"]))
            return rows

    def at_risk(self, *, now: datetime | None = None) -> list[dict[str, Any]]:
        with self.sessions.begin() as s:
            return at_risk(s, now or self.clock(), self.policy)

    def escalation_tick(self, now: datetime | None = None) -> list[WorkOrderAlert]:
        """Persist new escalations and publish them after the commit; returns them. A backlog
        (the CTI was down) goes in batches of TICK_BATCH clocks, one transaction each, so no
        transaction holds SQLite's write lock for long."""
        now = now or self.clock()
        out: list[WorkOrderAlert] = []
        more = True
        while more:
            with self.sessions.begin() as s:
                alerts, more = escalation_batch(s, now, self.policy, TICK_BATCH)
                self._publish(s, alerts)
            out.extend(alerts)
        return out
