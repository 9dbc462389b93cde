"""workorders.lifecycle: transition table, roles, SLA clocks, escalation, urging, linking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.workorders import workorder_settings
from workorders import lifecycle as lc
from workorders.lifecycle import (
    ClockView,
    Department,
    MasterCandidate,
    OrderType,
    Role,
    SlaPolicy,
    Status,
)

T0 = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
MIN = timedelta(minutes=1)
POLICY = SlaPolicy()
REPAIR_PATH = [
    (Status.DISPATCHED, Role.AGENT),
    (Status.DEPARTMENT_ACCEPTED, Role.DEPARTMENT),
    (Status.ON_SITE, Role.DEPARTMENT),
    (Status.RESOLVED, Role.DEPARTMENT),
    (Status.RETURN_VISIT, Role.AGENT),
    (Status.ARCHIVED, Role.SUPERVISOR),
]


# ------------------------------------------------------------------------------ transitions


def test_repair_goes_through_every_step_with_the_right_roles() -> None:
    status = Status.ACCEPTED
    for to, role in REPAIR_PATH:
        t = lc.decide_transition(OrderType.FAULT_REPAIR, status, to, role)
        assert (t.frm, t.to) == (status, to)
        status = to
    assert status is Status.ARCHIVED
    assert lc.allowed_steps(OrderType.FAULT_REPAIR, Status.ARCHIVED, Role.SUPERVISOR) == []


@pytest.mark.parametrize(("frm", "to"), [
    (Status.ACCEPTED, Status.RESOLVED),          # no skipping the crew
    (Status.DISPATCHED, Status.ON_SITE),
    (Status.DEPARTMENT_ACCEPTED, Status.RESOLVED),
    (Status.RESOLVED, Status.ARCHIVED),          # the return visit is mandatory
    (Status.ARCHIVED, Status.DISPATCHED),
])
def test_repair_cannot_skip_a_step(frm: Status, to: Status) -> None:
    with pytest.raises(lc.TransitionNotAllowed, match="next:"):
        lc.decide_transition(OrderType.FAULT_REPAIR, frm, to, Role.SUPERVISOR)


@pytest.mark.parametrize("t", [OrderType.CONSULTATION, OrderType.PRAISE, OrderType.SUGGESTION])
def test_consultation_and_praise_are_resolved_at_once_by_the_agent(t: OrderType) -> None:
    assert lc.decide_transition(t, Status.ACCEPTED, Status.RESOLVED, Role.AGENT).to is \
        Status.RESOLVED
    assert lc.decide_transition(t, Status.RESOLVED, Status.ARCHIVED, Role.AGENT).to is \
        Status.ARCHIVED


@pytest.mark.parametrize(("frm", "to", "role"), [
    (Status.DISPATCHED, Status.DEPARTMENT_ACCEPTED, Role.AGENT),    # 接单 is the department's
    (Status.ON_SITE, Status.RESOLVED, Role.AGENT),
    (Status.ACCEPTED, Status.DISPATCHED, Role.DEPARTMENT),          # 派单 is the center's
    (Status.RETURN_VISIT, Status.ARCHIVED, Role.AGENT),             # 归档 is the supervisor's
    (Status.RESOLVED, Status.RETURN_VISIT, Role.DEPARTMENT),        # 回访 is the center's
    (Status.RETURN_VISIT, Status.DISPATCHED, Role.AGENT),           # reopening is not an agent's
])
def test_who_may_take_a_step(frm: Status, to: Status, role: Role) -> None:
    with pytest.raises(lc.RoleNotAllowed, match="allowed:"):
        lc.decide_transition(OrderType.FAULT_REPAIR, frm, to, role)


@pytest.mark.parametrize("t", [OrderType.FAULT_REPAIR, OrderType.COMPLAINT])
def test_the_outbound_engine_records_a_return_visit(t: OrderType) -> None:
    """Issue 14: the system places the return visit and records the customer's key."""
    assert lc.decide_transition(t, Status.RESOLVED, Status.RETURN_VISIT, Role.SYSTEM).to is \
        Status.RETURN_VISIT


def test_admin_may_do_what_a_supervisor_may() -> None:
    assert lc.decide_transition(OrderType.COMPLAINT, Status.RETURN_VISIT, Status.ARCHIVED,
                                Role.ADMIN).to is Status.ARCHIVED
    assert lc.allowed_steps(OrderType.FAULT_REPAIR, Status.DISPATCHED, Role.ADMIN) == \
        lc.allowed_steps(OrderType.FAULT_REPAIR, Status.DISPATCHED, Role.SUPERVISOR)


def test_dispatch_names_a_department_or_takes_the_types_default() -> None:
    t = lc.decide_transition(OrderType.FAULT_REPAIR, Status.ACCEPTED, Status.DISPATCHED,
                             Role.AGENT)
    assert t.department is Department.REPAIR
    t = lc.decide_transition(OrderType.FAULT_REPAIR, Status.ACCEPTED, Status.DISPATCHED,
                             Role.AGENT, department=Department.METERING)
    assert t.department is Department.METERING
    t = lc.decide_transition(OrderType.SERVICE_APPLICATION, Status.ACCEPTED,
                             Status.DISPATCHED, Role.AGENT)
    assert t.department is Department.MARKETING
    with pytest.raises(lc.InvalidWorkOrder, match="only given when dispatching"):
        lc.decide_transition(OrderType.FAULT_REPAIR, Status.DISPATCHED,
                             Status.DEPARTMENT_ACCEPTED, Role.DEPARTMENT,
                             department=Department.REPAIR)


def test_unsatisfied_return_visit_reopens_by_redispatch() -> None:
    t = lc.decide_transition(OrderType.COMPLAINT, Status.RETURN_VISIT, Status.DISPATCHED,
                             Role.SUPERVISOR, current_department=Department.MARKETING)
    assert t.reopened and t.department is Department.MARKETING


def test_a_redispatch_names_another_department() -> None:
    """Issue 15 §5: `advance … dispatched` twice recorded two dispatches to the same place."""
    with pytest.raises(lc.TransitionNotAllowed, match="already dispatched to repair"):
        lc.decide_transition(OrderType.FAULT_REPAIR, Status.DISPATCHED, Status.DISPATCHED,
                             Role.AGENT, current_department=Department.REPAIR)
    with pytest.raises(lc.TransitionNotAllowed, match="already dispatched to metering"):
        lc.decide_transition(OrderType.FAULT_REPAIR, Status.DISPATCHED, Status.DISPATCHED,
                             Role.AGENT, department=Department.METERING,
                             current_department=Department.METERING)
    t = lc.decide_transition(OrderType.FAULT_REPAIR, Status.DISPATCHED, Status.DISPATCHED,
                             Role.AGENT, department=Department.METERING,
                             current_department=Department.REPAIR)
    assert t.department is Department.METERING and not t.reopened
    # reopening after the return visit goes back to the same department: that is no repeat
    t = lc.decide_transition(OrderType.FAULT_REPAIR, Status.RETURN_VISIT, Status.DISPATCHED,
                             Role.SUPERVISOR, current_department=Department.REPAIR)
    assert t.reopened and t.department is Department.REPAIR


def test_an_unsatisfied_return_visit_is_reopened_not_archived() -> None:
    with pytest.raises(lc.TransitionNotAllowed, match="not satisfied"):
        lc.decide_transition(OrderType.COMPLAINT, Status.RETURN_VISIT, Status.ARCHIVED,
                             Role.SUPERVISOR, satisfaction="unsatisfied")
    for verdict in ("satisfied", None):  # None: a visit recorded without a verdict
        assert lc.decide_transition(OrderType.COMPLAINT, Status.RETURN_VISIT, Status.ARCHIVED,
                                    Role.SUPERVISOR, satisfaction=verdict).to is Status.ARCHIVED


def test_a_linked_child_follows_its_master() -> None:
    with pytest.raises(lc.TransitionNotAllowed, match="master"):
        lc.decide_transition(OrderType.FAULT_REPAIR, Status.ACCEPTED, Status.DISPATCHED,
                             Role.SUPERVISOR, linked_to_master=True)
    # once resolved with the master, the child gets its own return visit
    assert lc.decide_transition(OrderType.FAULT_REPAIR, Status.RESOLVED, Status.RETURN_VISIT,
                                Role.AGENT, linked_to_master=True).to is Status.RETURN_VISIT
    assert lc.follows_master(Status.ACCEPTED, Status.RESOLVED)
    assert not lc.follows_master(Status.ACCEPTED, Status.ON_SITE)
    assert not lc.follows_master(Status.ARCHIVED, Status.RESOLVED)


def test_every_type_has_a_complete_table() -> None:
    assert set(lc.TRANSITIONS) == set(OrderType)
    for t, edges in lc.TRANSITIONS.items():
        assert set(edges) == set(Status), t
        # every type can be resolved and archived from accepted
        reach = {Status.ACCEPTED}
        frontier = [Status.ACCEPTED]
        while frontier:
            s = frontier.pop()
            for nxt in edges[s]:
                if nxt not in reach:
                    reach.add(nxt)
                    frontier.append(nxt)
        assert {Status.RESOLVED, Status.ARCHIVED} <= reach, t


def test_parsers_give_clear_errors() -> None:
    with pytest.raises(lc.InvalidWorkOrder, match="unknown work-order type 'fault'"):
        lc.parse_type("fault")
    with pytest.raises(lc.InvalidWorkOrder, match="unknown work-order step"):
        lc.parse_status("done")
    with pytest.raises(lc.InvalidWorkOrder, match="unknown department"):
        lc.parse_department("police")
    with pytest.raises(lc.InvalidWorkOrder, match="does not fit complaint"):
        lc.check_subtype(OrderType.COMPLAINT, "meter")
    assert lc.check_subtype(OrderType.FAULT_REPAIR, "meter") == "meter"
    assert lc.check_subtype(OrderType.SERVICE_APPLICATION, "capacity_change")


_steps = st.lists(st.tuples(st.sampled_from(list(Status)), st.sampled_from(list(Role))),
                  max_size=40)


@settings(max_examples=300, deadline=None)
@given(order_type=st.sampled_from(list(OrderType)), steps=_steps)
def test_any_walk_through_the_table_keeps_the_invariants(order_type: OrderType,
                                                        steps: list[tuple[Status, Role]]) -> None:
    """Random steps by random roles: only table edges are taken; archived is final; the
    system only records a return visit and reopens an unsatisfied one; only reopening goes
    backwards; a repair or complaint is never archived without its return
    visit and never resolved without its department having accepted it."""
    status = Status.ACCEPTED
    seen = [status]
    for to, role in steps:
        try:
            t = lc.decide_transition(order_type, status, to, role)
        except (lc.TransitionNotAllowed, lc.RoleNotAllowed):
            assert (to not in lc.TRANSITIONS[order_type][status]
                    or lc.effective_role(role)
                    not in lc.TRANSITIONS[order_type][status][to])
            continue
        assert status is not Status.ARCHIVED
        # the system takes two steps only: the return visit it placed, and the reopening
        # when the customer keyed "not satisfied" (issue 14)
        assert role is not Role.SYSTEM or (status, to) in (
            (Status.RESOLVED, Status.RETURN_VISIT), (Status.RETURN_VISIT, Status.DISPATCHED))
        if lc.STEP_INDEX[to] < lc.STEP_INDEX[status]:
            assert t.reopened and role in (Role.SUPERVISOR, Role.ADMIN, Role.SYSTEM)
        if to is Status.DISPATCHED:
            assert t.department is not None
        status = to
        seen.append(status)
    if order_type in (OrderType.FAULT_REPAIR, OrderType.COMPLAINT):
        if Status.ARCHIVED in seen:
            assert seen.index(Status.RETURN_VISIT) < seen.index(Status.ARCHIVED)
        if Status.RESOLVED in seen:
            assert seen.index(Status.DEPARTMENT_ACCEPTED) < seen.index(Status.RESOLVED)
    if order_type is OrderType.FAULT_REPAIR and Status.RESOLVED in seen:
        assert seen.index(Status.ON_SITE) < seen.index(Status.RESOLVED)


# ------------------------------------------------------------------------------ SLA clocks


@pytest.mark.parametrize(("kind", "minutes"), [("urban", 45), ("rural", 90), ("remote", 120),
                                                (None, 45), ("unknown", 45)])
def test_arrival_clock_by_area_kind(kind: str | None, minutes: int) -> None:
    (clock,) = lc.plan_clocks(POLICY, OrderType.FAULT_REPAIR, "line", kind, T0)
    assert (clock.name, clock.due_at, clock.stops_at) == ("arrival", T0 + minutes * MIN,
                                                          Status.ON_SITE)


def test_meter_fault_also_has_an_8_hour_restore_clock() -> None:
    arrival, restore = lc.plan_clocks(POLICY, OrderType.FAULT_REPAIR, "meter", "rural", T0)
    assert arrival.due_at == T0 + 90 * MIN
    assert (restore.name, restore.due_at, restore.stops_at) == (
        "restore", T0 + timedelta(hours=8), Status.RESOLVED)
    assert lc.plan_clocks(POLICY, OrderType.COMPLAINT, None, "urban", T0) == []


def test_clocks_stop_at_their_step_or_later() -> None:
    assert not lc.clock_stops(Status.ON_SITE, Status.DEPARTMENT_ACCEPTED)
    assert lc.clock_stops(Status.ON_SITE, Status.ON_SITE)
    assert lc.clock_stops(Status.ON_SITE, Status.RESOLVED)
    assert not lc.clock_stops(Status.RESOLVED, Status.ON_SITE)


def test_configured_policy_changes_the_clocks() -> None:
    s = workorder_settings({"arrival_minutes": {"urban": 30, "rural": 60, "remote": 90},
                            "meter_restore_hours": 4, "escalation_thresholds": [0.5, 0.9, 1.0]})
    policy = s.policy()
    arrival, restore = lc.plan_clocks(policy, OrderType.FAULT_REPAIR, "meter", "urban", T0)
    assert (arrival.due_at, restore.due_at) == (T0 + 30 * MIN, T0 + timedelta(hours=4))
    assert policy.thresholds == (0.5, 0.9, 1.0)


@pytest.mark.parametrize(("raw", "match"), [
    ({"escalation_thresholds": [1.0, 0.8]}, "increasing"),
    ({"arrival_minutes": {"rural": 90}}, "urban"),
    ({"arrival_minutes": {"urban": 0}}, "positive"),
    ({"duplicate_window_min": 0}, "positive"),
    ({"tick_interval_s": 0}, "positive"),
    ({"sla": 3}, "unknown setting"),
])
def test_bad_settings_are_refused(raw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        workorder_settings(raw)


# ------------------------------------------------------------------------------ escalation


def _clock(alerted: frozenset[float] = frozenset(), stopped: datetime | None = None) -> ClockView:
    return ClockView("arrival", T0, T0 + 45 * MIN, stopped, alerted)


def test_escalation_at_80_and_100_percent() -> None:
    thresholds = POLICY.thresholds
    assert lc.due_escalations(_clock(), thresholds, T0 + 35 * MIN) == []
    (warn,) = lc.due_escalations(_clock(), thresholds, T0 + 36 * MIN)  # 80% of 45 min
    assert (warn.threshold, warn.level, warn.crossed_at) == (0.8, "warning", T0 + 36 * MIN)
    assert lc.due_escalations(_clock(frozenset({0.8})), thresholds, T0 + 44 * MIN) == []
    (breach,) = lc.due_escalations(_clock(frozenset({0.8})), thresholds, T0 + 45 * MIN)
    assert (breach.level, breach.crossed_at) == ("breach", T0 + 45 * MIN)
    assert lc.due_escalations(_clock(frozenset({0.8, 1.0})), thresholds, T0 + 600 * MIN) == []


def test_a_late_tick_emits_every_missed_threshold_once_in_order() -> None:
    late = lc.due_escalations(_clock(), POLICY.thresholds, T0 + 50 * MIN)
    assert [(e.threshold, e.level) for e in late] == [(0.8, "warning"), (1.0, "breach")]


def test_a_stopped_clock_never_escalates() -> None:
    assert lc.due_escalations(_clock(stopped=T0 + 20 * MIN), POLICY.thresholds,
                              T0 + 90 * MIN) == []
    assert not lc.at_risk(_clock(stopped=T0 + 20 * MIN), POLICY.thresholds, T0 + 90 * MIN)
    assert lc.at_risk(_clock(), POLICY.thresholds, T0 + 36 * MIN)
    assert not lc.at_risk(_clock(), POLICY.thresholds, T0 + 35 * MIN)


@settings(max_examples=200, deadline=None)
@given(ticks=st.lists(st.integers(min_value=0, max_value=200), max_size=30)
       .flatmap(st.permutations))
def test_ticks_in_any_order_emit_each_threshold_exactly_once(ticks: list[int]) -> None:
    """Ticks come late, early and out of order (a slow worker, a clock step): each threshold
    is emitted once, at the first tick at or past its time, crossed at that time."""
    alerted: set[float] = set()
    emitted: list[tuple[float, int, datetime]] = []
    for i, minute in enumerate(ticks):
        for e in lc.due_escalations(_clock(frozenset(alerted)), POLICY.thresholds,
                                    T0 + minute * MIN):
            emitted.append((e.threshold, i, e.crossed_at))
            alerted.add(e.threshold)
    expected = []
    for t in sorted(POLICY.thresholds):
        first = next((i for i, minute in enumerate(ticks) if minute >= 45 * t), None)
        if first is not None:
            expected.append((t, first, T0 + 45 * t * MIN))
    assert sorted(emitted, key=lambda x: (x[1], x[0])) == emitted  # lowest first in a tick
    assert sorted(emitted) == sorted(expected)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        lc.due_escalations(_clock(), POLICY.thresholds, datetime(2026, 11, 27))


# ------------------------------------------------------------------------------ urging


def test_urging_counts_and_alerts_but_not_twice_in_a_row() -> None:
    first = lc.decide_urge(Status.DISPATCHED, 0, None, T0, POLICY)
    assert (first.count, first.alert) == (1, True)
    again = lc.decide_urge(Status.DISPATCHED, 1, T0, T0 + 5 * MIN, POLICY)
    assert (again.count, again.alert) == (2, False)
    later = lc.decide_urge(Status.ON_SITE, 2, T0, T0 + 10 * MIN, POLICY)
    assert (later.count, later.alert) == (3, True)


@pytest.mark.parametrize("status", [Status.RESOLVED, Status.RETURN_VISIT, Status.ARCHIVED])
def test_closed_orders_cannot_be_urged(status: Status) -> None:
    with pytest.raises(lc.UrgeNotAllowed, match="only open orders"):
        lc.decide_urge(status, 0, None, T0, POLICY)


# ------------------------------------------------------------------------ duplicate linking


def _cand(id_: int, *, area: int | None = 7, at: datetime = T0, status: Status = Status.ACCEPTED,
          subtype: str | None = None, master: int | None = None,
          type_: OrderType = OrderType.FAULT_REPAIR) -> MasterCandidate:
    return MasterCandidate(id_, type_, subtype, area, status, at, master)


def test_a_fault_report_joins_the_oldest_open_master_of_its_area_within_the_window() -> None:
    now = T0 + 29 * MIN
    cands = [_cand(2, at=T0 + 5 * MIN), _cand(1, at=T0), _cand(3, at=T0 + 1 * MIN, master=1)]
    assert lc.pick_master(OrderType.FAULT_REPAIR, None, 7, now, cands,
                          POLICY.duplicate_window).id == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("cand", [
    _cand(1, area=8),                                   # another area
    _cand(1, at=T0 - 31 * MIN),                         # outside the window
    _cand(1, status=Status.RESOLVED),                   # no longer open
    _cand(1, subtype="meter"),                          # one household's meter
    _cand(1, type_=OrderType.COMPLAINT),
    _cand(1, master=9),                                 # a child is never a master
])
def test_what_is_not_a_master(cand: MasterCandidate) -> None:
    assert lc.pick_master(OrderType.FAULT_REPAIR, None, 7, T0, [cand],
                          POLICY.duplicate_window) is None


def test_meter_faults_and_unknown_areas_are_never_linked() -> None:
    assert lc.pick_master(OrderType.FAULT_REPAIR, "meter", 7, T0, [_cand(1)],
                          POLICY.duplicate_window) is None
    assert lc.pick_master(OrderType.FAULT_REPAIR, None, None, T0, [_cand(1, area=None)],
                          POLICY.duplicate_window) is None
    assert lc.pick_master(OrderType.COMPLAINT, None, 7, T0, [_cand(1)],
                          POLICY.duplicate_window) is None


def test_return_visit_rules() -> None:
    assert lc.needs_return_visit(OrderType.COMPLAINT)
    assert lc.needs_return_visit(OrderType.FAULT_REPAIR)
    assert not lc.needs_return_visit(OrderType.CONSULTATION)
    assert lc.return_visit_expected(OrderType.SERVICE_APPLICATION)
    assert not lc.return_visit_expected(OrderType.PRAISE)


def test_next_alert_time_is_the_lowest_threshold_not_yet_alerted() -> None:
    assert lc.next_alert_at(_clock(), POLICY.thresholds) == T0 + 36 * MIN
    assert lc.next_alert_at(_clock(frozenset({0.8})), POLICY.thresholds) == T0 + 45 * MIN
    assert lc.next_alert_at(_clock(frozenset({0.8, 1.0})), POLICY.thresholds) is None
    assert lc.next_alert_at(_clock(stopped=T0), POLICY.thresholds) is None
