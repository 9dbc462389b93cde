"""The work-order lifecycle as pure rules: types, steps, who may do them, SLA clocks, escalation,
urging and duplicate-report linking. No I/O; every time is passed in.

The service layer (workorders.service) reads rows, asks these functions what is allowed or
due, and writes what they answer. Keeping the rules here lets the whole table be tested in
milliseconds, including with hypothesis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Final, TypeVar

# every type a work order (and a call's outcome) may have; retention and the DB name them
WORK_ORDER_TYPES: tuple[str, ...] = (
    "fault_repair",         # 故障报修
    "bill_query",           # 电费查询 / 电量查询
    "outage_query",         # 停电查询
    "consultation",         # 咨询
    "service_application",  # 业务受理
    "complaint",            # 投诉
    "report",               # 举报
    "suggestion",           # 意见建议
    "praise",               # 表扬
    "urging",               # 催办
)


class WorkOrderError(Exception):
    """Base of the domain errors; they carry no HTTP or database detail."""


class InvalidWorkOrder(WorkOrderError, ValueError):
    """Bad input: unknown type, subtype, department, an empty description ..."""


class TransitionNotAllowed(WorkOrderError):
    """The step cannot follow the order's current status (for its type)."""


class RoleNotAllowed(WorkOrderError):
    """The actor's role may not take this step."""


class UrgeNotAllowed(WorkOrderError):
    """The order cannot be urged (it is already resolved or closed)."""


class OrderType(StrEnum):
    FAULT_REPAIR = "fault_repair"                  # 故障报修
    COMPLAINT = "complaint"                        # 投诉
    REPORT = "report"                              # 举报
    CONSULTATION = "consultation"                  # 咨询
    SERVICE_APPLICATION = "service_application"    # 业务受理 / 业扩报装
    SUGGESTION = "suggestion"                      # 意见建议
    PRAISE = "praise"                              # 表扬
    # Older types the schema already allows; handled like a consultation.
    BILL_QUERY = "bill_query"                      # 电费查询
    OUTAGE_QUERY = "outage_query"                  # 停电查询
    URGING = "urging"                              # 催办 as a stand-alone record


class Status(StrEnum):
    ACCEPTED = "accepted"                          # 受理
    DISPATCHED = "dispatched"                      # 派发
    DEPARTMENT_ACCEPTED = "department_accepted"    # 接单
    ON_SITE = "on_site"                            # 到达现场
    RESOLVED = "resolved"                          # 处理完成 / 回单
    RETURN_VISIT = "return_visit"                  # 回访
    ARCHIVED = "archived"                          # 归档


class Role(StrEnum):
    AGENT = "agent"              # 坐席
    SUPERVISOR = "supervisor"    # 值长/班长
    ADMIN = "admin"              # may do what a supervisor may
    DEPARTMENT = "department"    # the receiving department's staff (crew, marketing, metering)
    SYSTEM = "system"            # the IVR and the CTI's own timers


class Department(StrEnum):
    REPAIR = "repair"            # 运检 / 抢修班组
    MARKETING = "marketing"      # 营销
    METERING = "metering"        # 计量


# Mandarin first, English available: labels for the UI and the CLI.
STATUS_LABELS: Final[Mapping[Status, tuple[str, str]]] = MappingProxyType({
    Status.ACCEPTED: ("受理", "accepted"),
    Status.DISPATCHED: ("派发", "dispatched"),
    Status.DEPARTMENT_ACCEPTED: ("接单", "accepted by department"),
    Status.ON_SITE: ("到达现场", "on site"),
    Status.RESOLVED: ("处理完成", "resolved"),
    Status.RETURN_VISIT: ("回访", "return visit"),
    Status.ARCHIVED: ("归档", "archived"),
})
TYPE_LABELS: Final[Mapping[OrderType, tuple[str, str]]] = MappingProxyType({
    OrderType.FAULT_REPAIR: ("故障报修", "fault repair"),
    OrderType.COMPLAINT: ("投诉", "complaint"),
    OrderType.REPORT: ("举报", "report"),
    OrderType.CONSULTATION: ("咨询", "consultation"),
    OrderType.SERVICE_APPLICATION: ("业务受理", "service application"),
    OrderType.SUGGESTION: ("意见建议", "suggestion"),
    OrderType.PRAISE: ("表扬", "praise"),
    OrderType.BILL_QUERY: ("电费查询", "bill query"),
    OrderType.OUTAGE_QUERY: ("停电查询", "outage query"),
    OrderType.URGING: ("催办", "urging"),
})

# The order of the steps; a clock that stops "at on_site" also stops at any later step.
STEP_ORDER: Final[tuple[Status, ...]] = tuple(Status)
STEP_INDEX: Final[Mapping[Status, int]] = MappingProxyType(
    {s: i for i, s in enumerate(STEP_ORDER)})
# The center still owes the customer something while an order is in one of these.
OPEN_STATUSES: Final[frozenset[Status]] = frozenset(
    {Status.ACCEPTED, Status.DISPATCHED, Status.DEPARTMENT_ACCEPTED, Status.ON_SITE})
CLOSED_STATUSES: Final[frozenset[Status]] = frozenset(set(Status) - OPEN_STATUSES)

SUBTYPES: Final[Mapping[OrderType, frozenset[str]]] = MappingProxyType({
    # a single household's meter (计量故障) has its own 8 h restore commitment
    OrderType.FAULT_REPAIR: frozenset({"line", "meter", "other"}),
    # 新装, 增容, 变更用电
    OrderType.SERVICE_APPLICATION: frozenset({"new_connection", "capacity_change", "change"}),
})
METER_FAULT = "meter"

# Where an order goes when the dispatcher names no department.
DEFAULT_DEPARTMENT: Final[Mapping[OrderType, Department]] = MappingProxyType({
    OrderType.FAULT_REPAIR: Department.REPAIR,
    OrderType.SERVICE_APPLICATION: Department.MARKETING,
    OrderType.COMPLAINT: Department.MARKETING,
    OrderType.REPORT: Department.MARKETING,
    OrderType.SUGGESTION: Department.MARKETING,
    OrderType.PRAISE: Department.MARKETING,
    OrderType.CONSULTATION: Department.MARKETING,
    OrderType.BILL_QUERY: Department.MARKETING,
    OrderType.OUTAGE_QUERY: Department.REPAIR,
    OrderType.URGING: Department.MARKETING,
})

# Complaints and repairs get a return visit (DOMAIN.md); these others may have one.
RETURN_VISIT_REQUIRED: Final[frozenset[OrderType]] = frozenset(
    {OrderType.FAULT_REPAIR, OrderType.COMPLAINT})
RETURN_VISIT_OPTIONAL: Final[frozenset[OrderType]] = frozenset(
    {OrderType.SERVICE_APPLICATION, OrderType.REPORT})

# ------------------------------------------------------------------------------ the transitions

_CENTER: Final = frozenset({Role.AGENT, Role.SUPERVISOR})
_DEPT: Final = frozenset({Role.DEPARTMENT, Role.SUPERVISOR})
_SUP: Final = frozenset({Role.SUPERVISOR})
# the return visit (回访) is an agent's call, or the outbound engine's (issue 14: the system
# records the score the customer keyed, and an unsatisfied customer's order goes back to its
# department at once, where a supervisor sees it reopened)
_VISIT: Final = _CENTER | {Role.SYSTEM}
_REOPEN: Final = _SUP | {Role.SYSTEM}

Edges = Mapping[Status, Mapping[Status, frozenset[Role]]]


def _edges(spec: dict[Status, dict[Status, frozenset[Role]]]) -> Edges:
    return MappingProxyType({k: MappingProxyType(v) for k, v in spec.items()})


S = Status
# 故障报修: every step. A return visit is mandatory; an unsatisfied customer (不满意) makes the
# supervisor send the order back to a department (re-dispatch).
_REPAIR = _edges({
    S.ACCEPTED: {S.DISPATCHED: _CENTER},
    S.DISPATCHED: {S.DEPARTMENT_ACCEPTED: _DEPT, S.DISPATCHED: _CENTER},
    S.DEPARTMENT_ACCEPTED: {S.ON_SITE: _DEPT},
    S.ON_SITE: {S.RESOLVED: _DEPT},
    S.RESOLVED: {S.RETURN_VISIT: _VISIT},
    S.RETURN_VISIT: {S.ARCHIVED: _SUP, S.DISPATCHED: _REOPEN},
    S.ARCHIVED: {},
})
# 投诉: supervised; the department may resolve without a site visit; return visit mandatory.
_COMPLAINT = _edges({
    S.ACCEPTED: {S.DISPATCHED: _CENTER},
    S.DISPATCHED: {S.DEPARTMENT_ACCEPTED: _DEPT, S.DISPATCHED: _CENTER},
    S.DEPARTMENT_ACCEPTED: {S.ON_SITE: _DEPT, S.RESOLVED: _DEPT},
    S.ON_SITE: {S.RESOLVED: _DEPT},
    S.RESOLVED: {S.RETURN_VISIT: _VISIT},
    S.RETURN_VISIT: {S.ARCHIVED: _SUP, S.DISPATCHED: _REOPEN},
    S.ARCHIVED: {},
})
# 业务受理, 举报: dispatched work, a site visit when needed, a return visit when useful.
_DEPARTMENT_WORK = _edges({
    S.ACCEPTED: {S.DISPATCHED: _CENTER},
    S.DISPATCHED: {S.DEPARTMENT_ACCEPTED: _DEPT, S.DISPATCHED: _CENTER},
    S.DEPARTMENT_ACCEPTED: {S.ON_SITE: _DEPT, S.RESOLVED: _DEPT},
    S.ON_SITE: {S.RESOLVED: _DEPT},
    S.RESOLVED: {S.RETURN_VISIT: _VISIT, S.ARCHIVED: _SUP},
    S.RETURN_VISIT: {S.ARCHIVED: _SUP, S.DISPATCHED: _REOPEN},
    S.ARCHIVED: {},
})
# 咨询, 表扬, 意见建议 (and the query types): the agent may answer at once (受理 -> 处理完成),
# or forward it to a department.
_QUICK = _edges({
    S.ACCEPTED: {S.RESOLVED: _CENTER, S.DISPATCHED: _CENTER},
    S.DISPATCHED: {S.DEPARTMENT_ACCEPTED: _DEPT, S.DISPATCHED: _CENTER},
    S.DEPARTMENT_ACCEPTED: {S.RESOLVED: _DEPT},
    S.ON_SITE: {},
    S.RESOLVED: {S.ARCHIVED: _CENTER},
    S.RETURN_VISIT: {},
    S.ARCHIVED: {},
})
del S

TRANSITIONS: Final[Mapping[OrderType, Edges]] = MappingProxyType({
    OrderType.FAULT_REPAIR: _REPAIR,
    OrderType.COMPLAINT: _COMPLAINT,
    OrderType.SERVICE_APPLICATION: _DEPARTMENT_WORK,
    OrderType.REPORT: _DEPARTMENT_WORK,
    OrderType.CONSULTATION: _QUICK,
    OrderType.SUGGESTION: _QUICK,
    OrderType.PRAISE: _QUICK,
    OrderType.BILL_QUERY: _QUICK,
    OrderType.OUTAGE_QUERY: _QUICK,
    OrderType.URGING: _QUICK,
})


_E = TypeVar("_E", bound=StrEnum)


def _parse(kind: type[_E], value: str, what: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        # the echo is bounded and repr-escaped: the value is a client's, of any length
        raise InvalidWorkOrder(
            f"unknown {what} {value[:24]!r}; one of {', '.join(kind)}") from None


def parse_type(value: str) -> OrderType:
    return _parse(OrderType, value, "work-order type")


def parse_status(value: str) -> Status:
    return _parse(Status, value, "work-order step")


def parse_department(value: str) -> Department:
    return _parse(Department, value, "department")


def check_subtype(order_type: OrderType, subtype: str | None) -> str | None:
    """The subtype if the type allows it (None is always fine), else InvalidWorkOrder."""
    if subtype is None:
        return None
    allowed = SUBTYPES.get(order_type, frozenset())
    if subtype not in allowed:
        raise InvalidWorkOrder(
            f"subtype {subtype!r} does not fit {order_type.value}"
            + (f"; one of {', '.join(sorted(allowed))}" if allowed else " (it has none)"))
    return subtype


def effective_role(role: Role) -> Role:
    return Role.SUPERVISOR if role is Role.ADMIN else role


def allowed_steps(order_type: OrderType, status: Status, role: Role) -> list[Status]:
    """The steps `role` may take next, in lifecycle order (for the UI's buttons)."""
    edges = TRANSITIONS[order_type].get(status, {})
    r = effective_role(role)
    return [to for to in STEP_ORDER if to in edges and r in edges[to]]


@dataclass(frozen=True, slots=True)
class Transition:
    """What the service must write for one accepted step."""

    frm: Status
    to: Status
    department: Department | None   # set on (re-)dispatch
    reopened: bool                  # a return visit sent the order back to a department


def decide_transition(
    order_type: OrderType, status: Status, to: Status, role: Role, *,
    department: Department | None = None, current_department: Department | None = None,
    linked_to_master: bool = False, satisfaction: str | None = None,
) -> Transition:
    """May `role` take the order from `status` to `to`? Raises, or says what to record.

    A linked child order (子单) is handled through its master (主单) until the master is
    resolved, so its own steps before that are refused. A re-dispatch (派发 again) must send
    the order to another department: the same step twice would record a second dispatch that
    changes nothing. An order whose customer was not satisfied at the return visit
    (`satisfaction` "unsatisfied") is reopened, never archived.
    """
    edges = TRANSITIONS[order_type]
    targets = edges.get(status, {})
    if linked_to_master and status in OPEN_STATUSES:
        raise TransitionNotAllowed(
            "this order is linked to a master order and follows its resolution")
    if to not in targets:
        nxt = ", ".join(t.value for t in STEP_ORDER if t in targets) or "none (closed)"
        raise TransitionNotAllowed(
            f"{order_type.value}: {status.value} -> {to.value} is not a step; next: {nxt}")
    if effective_role(role) not in targets[to]:
        who = ", ".join(sorted(r.value for r in targets[to]))
        raise RoleNotAllowed(f"{role.value} may not take {status.value} -> {to.value}; "
                             f"allowed: {who}")
    dept: Department | None = None
    if to is Status.DISPATCHED:
        dept = department or current_department or DEFAULT_DEPARTMENT[order_type]
        if status is Status.DISPATCHED and dept is current_department:
            raise TransitionNotAllowed(
                f"already dispatched to {dept.value}; a re-dispatch names another department")
    elif department is not None:
        raise InvalidWorkOrder("a department is only given when dispatching")
    if to is Status.ARCHIVED and status is Status.RETURN_VISIT and satisfaction == "unsatisfied":
        raise TransitionNotAllowed("the customer was not satisfied at the return visit: "
                                   "reopen the order (dispatched), do not archive it")
    return Transition(frm=status, to=to, department=dept,
                      reopened=to is Status.DISPATCHED and status is Status.RETURN_VISIT)


def follows_master(child_status: Status, master_to: Status) -> bool:
    """A child (子单) is resolved with its master; other master steps leave it alone."""
    return master_to is Status.RESOLVED and child_status in OPEN_STATUSES


# ------------------------------------------------------------------------------ SLA clocks


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """The committed times (configurable, [workorders] in hotline.toml)."""

    # repair crews arrive on site within these minutes, by area kind (城区/农村/特殊边远)
    arrival_minutes: Mapping[str, int] = field(default_factory=lambda: MappingProxyType(
        {"urban": 45, "rural": 90, "remote": 120}))
    # a single household's meter fault is restored within these hours
    meter_restore_hours: float = 8.0
    # supervisors are alerted when a clock has used these fractions of its time
    thresholds: tuple[float, ...] = (0.8, 1.0)
    # fault reports from one area within this window are linked to one master order
    duplicate_window: timedelta = timedelta(minutes=30)
    # an urge sooner than this after the last one is recorded but does not alert again
    urge_realert_after: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if not self.arrival_minutes or any(m <= 0 for m in self.arrival_minutes.values()):
            raise InvalidWorkOrder("arrival minutes must be positive, one per area kind")
        if "urban" not in self.arrival_minutes:
            # an order without a known area is held to the strictest (urban) commitment
            raise InvalidWorkOrder("arrival minutes need an 'urban' entry")
        if self.meter_restore_hours <= 0:
            raise InvalidWorkOrder("meter_restore_hours must be positive")
        ts = self.thresholds
        if not ts or any(not 0 < t <= 10 for t in ts) or list(ts) != sorted(set(ts)):
            raise InvalidWorkOrder(f"thresholds must be increasing fractions > 0, got {ts}")
        if self.duplicate_window <= timedelta(0):
            raise InvalidWorkOrder("duplicate_window must be positive")


@dataclass(frozen=True, slots=True)
class ClockPlan:
    """A clock to start for a new order."""

    name: str             # "arrival" | "restore"
    started_at: datetime
    due_at: datetime
    stops_at: Status      # the clock stops when the order reaches this step (or a later one)


def plan_clocks(policy: SlaPolicy, order_type: OrderType, subtype: str | None,
                area_kind: str | None, now: datetime) -> list[ClockPlan]:
    """The SLA clocks of a new order. Repairs: arrival (stops on site) by area kind, the
    strictest when the area is unknown; a meter fault also has restore (stops when resolved)."""
    _aware(now)
    if order_type is not OrderType.FAULT_REPAIR:
        return []
    kind = area_kind if area_kind is not None and area_kind in policy.arrival_minutes \
        else "urban"
    clocks = [ClockPlan("arrival", now, now + timedelta(minutes=policy.arrival_minutes[kind]),
                        Status.ON_SITE)]
    if subtype == METER_FAULT:
        clocks.append(ClockPlan("restore", now,
                                now + timedelta(hours=policy.meter_restore_hours),
                                Status.RESOLVED))
    return clocks


def clock_stops(stops_at: Status, new_status: Status) -> bool:
    """A running clock stops once the order reaches its stop step or goes beyond it."""
    return STEP_INDEX[new_status] >= STEP_INDEX[stops_at]


@dataclass(frozen=True, slots=True)
class ClockView:
    """A running or stopped clock as the service read it, with the thresholds already alerted."""

    name: str
    started_at: datetime
    due_at: datetime
    stopped_at: datetime | None = None
    alerted: frozenset[float] = frozenset()


@dataclass(frozen=True, slots=True)
class Escalation:
    """One threshold crossed by one clock: alert the supervisors (once)."""

    clock: str
    threshold: float
    level: str            # "warning" (< 100%) or "breach" (>= 100%)
    crossed_at: datetime  # when the threshold was reached (not when it was noticed)
    due_at: datetime


def fraction_used(clock: ClockView, now: datetime) -> float:
    """How much of the committed time has gone: 0.0 at start, 1.0 at the deadline."""
    total = (clock.due_at - clock.started_at).total_seconds()
    if total <= 0:
        return float("inf")
    return (now - clock.started_at).total_seconds() / total


def threshold_time(clock: ClockView, threshold: float) -> datetime:
    return clock.started_at + (clock.due_at - clock.started_at) * threshold


def due_escalations(clock: ClockView, thresholds: Iterable[float],
                    now: datetime) -> list[Escalation]:
    """Thresholds this running clock has reached and not yet alerted, lowest first. A stopped
    clock alerts nothing more; a tick that comes late emits every threshold it missed."""
    _aware(now)
    if clock.stopped_at is not None:
        return []
    out = []
    for t in sorted(thresholds):
        if t in clock.alerted:
            continue
        at = threshold_time(clock, t)
        if at <= now:
            out.append(Escalation(clock=clock.name, threshold=t,
                                  level="breach" if t >= 1.0 else "warning",
                                  crossed_at=at, due_at=clock.due_at))
    return out


def next_alert_at(clock: ClockView, thresholds: Iterable[float]) -> datetime | None:
    """When the lowest threshold not yet alerted is reached; None when all are (or stopped).
    The service stores it so each tick reads only the clocks with an alert due."""
    if clock.stopped_at is not None:
        return None
    pending = [t for t in sorted(thresholds) if t not in clock.alerted]
    return threshold_time(clock, pending[0]) if pending else None


def at_risk(clock: ClockView, thresholds: Iterable[float], now: datetime) -> bool:
    """A running clock past the first threshold (80% by default)."""
    first = min(thresholds)
    return clock.stopped_at is None and fraction_used(clock, now) >= first


# ------------------------------------------------------------------------------ urging (催办)


@dataclass(frozen=True, slots=True)
class UrgeDecision:
    count: int     # the order's urge count after this one
    alert: bool    # tell the supervisors (an urge escalates the order)


def decide_urge(status: Status, urge_count: int, last_urged_at: datetime | None,
                now: datetime, policy: SlaPolicy) -> UrgeDecision:
    """A caller urges an open order: it is counted and escalates to the supervisors, except
    that repeated urges within `urge_realert_after` are counted without alerting again.
    A resolved or closed order is not urged: a new complaint or order is the right tool."""
    _aware(now)
    if status not in OPEN_STATUSES:
        raise UrgeNotAllowed(f"the order is {status.value}; only open orders can be urged")
    alert = last_urged_at is None or now - last_urged_at >= policy.urge_realert_after
    return UrgeDecision(count=urge_count + 1, alert=alert)


# ------------------------------------------------------------------------ duplicate reports


@dataclass(frozen=True, slots=True)
class MasterCandidate:
    """An existing order that a new fault report might be linked to."""

    id: int
    type: OrderType
    subtype: str | None
    area_id: int | None
    status: Status
    created_at: datetime
    master_id: int | None


def linkable(order_type: OrderType, subtype: str | None, area_id: int | None) -> bool:
    """Only area-wide fault reports are linked: a meter fault is one household's, and an order
    without a known area cannot be matched to anything."""
    return (order_type is OrderType.FAULT_REPAIR and subtype != METER_FAULT
            and area_id is not None)


def pick_master(order_type: OrderType, subtype: str | None, area_id: int | None,
                now: datetime, candidates: Iterable[MasterCandidate],
                window: timedelta) -> MasterCandidate | None:
    """The master (主单) a new fault report joins as a child (子单): the oldest open, unlinked
    fault-repair order of the same area created within `window` before now; None otherwise."""
    _aware(now)
    if not linkable(order_type, subtype, area_id):
        return None
    fits = [c for c in candidates
            if c.master_id is None and c.area_id == area_id
            and linkable(c.type, c.subtype, c.area_id)
            and c.status in OPEN_STATUSES and now - window <= c.created_at <= now]
    return min(fits, key=lambda c: (c.created_at, c.id), default=None)


def needs_return_visit(order_type: OrderType) -> bool:
    return order_type in RETURN_VISIT_REQUIRED


def return_visit_expected(order_type: OrderType) -> bool:
    """Listed for a return visit once resolved (mandatory or customary)."""
    return order_type in RETURN_VISIT_REQUIRED | RETURN_VISIT_OPTIONAL


def _aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware datetime")
