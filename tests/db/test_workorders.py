"""Work-order service on SQLite and PostgreSQL: lifecycle with actors and times, SLA escalation
with a controllable clock (each alert once, after commit), duplicate linking, urging, search,
return visits, at-risk, the IVR path and the 0003_workorders migration."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from callcenter.ivr_services import DbIvrServices
from cti.db.calls import record_call_end, record_call_start
from cti.db.migrate import migrating, upgrade
from cti.db.models import WorkOrder
from cti.db.models_workorders import WorkOrderClock, WorkOrderEscalation
from cti.notifier import SUPERVISOR_ALERTS_TOPIC, Notifier
from tests.support.fakes import Clock, FakeBus
from workorders import service as wo
from workorders.lifecycle import (
    Department,
    InvalidWorkOrder,
    Role,
    RoleNotAllowed,
    SlaPolicy,
    TransitionNotAllowed,
    UrgeNotAllowed,
)
from workorders.service import Actor, NewOrder, SearchQuery, WorkOrderAlert, WorkOrderService

if TYPE_CHECKING:
    from conftest import World

MIN = timedelta(minutes=1)
POLICY = SlaPolicy()
AGENT = Actor("A007", Role.AGENT)
SUP = Actor("S01", Role.SUPERVISOR)
CREW = Actor("crew-li", Role.DEPARTMENT, Department.REPAIR)
METERING = Actor("meter-wang", Role.DEPARTMENT, Department.METERING)


def _repair(s: Session, now: datetime, account_no: str | None = None, *,
            caller: str = "13800000001", subtype: str | None = None,
            link: bool = True, actor: Actor = AGENT) -> WorkOrder:
    return wo.create(s, NewOrder(type="fault_repair", description="家中无电",
                                 caller_number=caller, account_no=account_no, subtype=subtype),
                     actor, now, POLICY, link_duplicates=link)


# ------------------------------------------------------------------------------ lifecycle


def test_repair_lifecycle_records_every_step_with_time_and_actor(
        world: World, session: Session, now: datetime) -> None:
    acct = world.account(world.area("rural"))
    order = _repair(session, now, acct.account_no)
    steps = [("dispatched", AGENT, 2), ("department_accepted", CREW, 5), ("on_site", CREW, 70),
             ("resolved", CREW, 150), ("return_visit", SUP, 600), ("archived", SUP, 601)]
    for to, actor, minute in steps:
        wo.transition(session, order.number, to, actor, now + minute * MIN,
                      note=f"{to} note", satisfied=True if to == "return_visit" else None)
    session.commit()
    doc = wo.get(session, order.number, now + 700 * MIN, POLICY)
    assert doc["status"] == "archived" and doc["department"] == "repair"
    assert doc["status_label"] == {"zh": "归档", "en": "archived"}
    assert [(e["step"], e["actor"], e["at"]) for e in doc["events"]] == [
        ("accepted", "A007", now.isoformat())] + [
        (to, actor.id, (now + minute * MIN).isoformat()) for to, actor, minute in steps]
    assert doc["events"][1]["note"] == "→ repair: dispatched note"
    assert doc["events"][5]["note"].startswith("满意 satisfied")
    assert doc["satisfaction"] == "satisfied"
    assert doc["resolved_at"] == (now + 150 * MIN).isoformat()
    (clock,) = doc["clocks"]
    # rural: 90 minutes to arrive; on site after 70
    assert (clock["name"], clock["due_at"], clock["stopped_at"], clock["stopped_by"],
            clock["met"]) == ("arrival", (now + 90 * MIN).isoformat(),
                              (now + 70 * MIN).isoformat(), "on_site", True)
    assert doc["next_steps"] == {"agent": [], "supervisor": [], "department": []}


def test_refused_steps_change_nothing(world: World, session: Session, now: datetime) -> None:
    order = _repair(session, now)
    with pytest.raises(TransitionNotAllowed):
        wo.transition(session, order.number, "resolved", SUP, now)
    with pytest.raises(RoleNotAllowed):
        wo.transition(session, order.number, "dispatched", CREW, now)
    wo.transition(session, order.number, "dispatched", AGENT, now, department="repair")
    with pytest.raises(RoleNotAllowed, match="with repair, not metering"):
        wo.transition(session, order.number, "department_accepted", METERING, now)
    with pytest.raises(InvalidWorkOrder, match="unknown work-order step"):
        wo.transition(session, order.number, "done", SUP, now)
    with pytest.raises(wo.WorkOrderNotFound):
        wo.transition(session, "26112799999", "dispatched", SUP, now)
    with pytest.raises(InvalidWorkOrder, match="11 digits"):
        wo.get(session, "x", now, POLICY)
    session.commit()
    doc = wo.get(session, order.number, now, POLICY)
    assert doc["status"] == "dispatched"
    assert [e["step"] for e in doc["events"]] == ["accepted", "dispatched"]


def test_consultation_is_resolved_by_the_agent_at_once(session: Session, now: datetime) -> None:
    order = wo.create(session, NewOrder(type="consultation", description="电价咨询",
                                        caller_number="13800000002"), AGENT, now, POLICY)
    wo.transition(session, order.number, "resolved", AGENT, now + MIN)
    wo.transition(session, order.number, "archived", AGENT, now + 2 * MIN)
    doc = wo.get(session, order.number, now, POLICY)
    assert [e["step"] for e in doc["events"]] == ["accepted", "resolved", "archived"]
    assert doc["clocks"] == [] and doc["sla_due_at"] is None


def test_create_validates_and_prefills_from_the_call(world: World, session: Session,
                                                     now: datetime) -> None:
    acct = world.account(world.area("remote"))
    record_call_start(session, call_id="1764210000.9", uniqueid="1764210000.9",
                      caller_number="13911112222", dnis="95598", now=now)
    record_call_end(session, "1764210000.9", outcome="transfer", now=now,
                    account_no=acct.account_no)
    order = wo.create(session, NewOrder(type="fault_repair", description="线路打火",
                                        call_id="1764210000.9"), AGENT, now, POLICY)
    assert (order.caller_number, order.account_id, order.area_id, order.call_id) == (
        "13911112222", acct.id, acct.area_id, "1764210000.9")
    assert order.sla_due_at == now + 120 * MIN  # remote
    for bad, match in [
        (NewOrder(type="repair", description="x", caller_number="1"), "unknown work-order type"),
        (NewOrder(type="complaint", description="  ", caller_number="1"), "description"),
        (NewOrder(type="complaint", description="x"), "caller_number is required"),
        (NewOrder(type="complaint", description="x", caller_number="1", subtype="meter"),
         "does not fit"),
        (NewOrder(type="complaint", description="x", caller_number="1", department="police"),
         "unknown department"),
    ]:
        with pytest.raises(InvalidWorkOrder, match=match):
            wo.create(session, bad, AGENT, now, POLICY)
    with pytest.raises(RoleNotAllowed):
        wo.create(session, NewOrder(type="complaint", description="x", caller_number="1"),
                  CREW, now, POLICY)


# ------------------------------------------------------------------------------ escalation


def test_escalation_at_80_and_100_percent_once_each_published_after_commit(
        world: World, session_factory: sessionmaker[Session], now: datetime) -> None:
    with session_factory.begin() as s:
        acct = world.__class__(s).account(world.__class__(s).area("urban"))
        number = _repair(s, now, acct.account_no).number
    bus = FakeBus()
    clock = Clock(now)
    svc = WorkOrderService(session_factory, POLICY, clock, Notifier(bus))
    ticks = {}
    for minute in (10, 35, 36, 37, 44, 45, 46, 120):
        clock.now = now + minute * MIN
        ticks[minute] = [(a.level, a.percent) for a in svc.escalation_tick()]
    assert ticks == {10: [], 35: [], 36: [("warning", 80)], 37: [], 44: [],
                     45: [("breach", 100)], 46: [], 120: []}
    assert [t for t, _ in bus.sent] == [SUPERVISOR_ALERTS_TOPIC] * 2
    assert all(isinstance(p, bytes) for _t, p in bus.raw)  # the outbox sends JSON bytes
    warning = bus.sent[0][1]
    assert {k: warning[k] for k in ("kind", "level", "number", "clock", "percent", "status",
                                    "account_no")} == {
        "kind": "sla", "level": "warning", "number": number, "clock": "arrival",
        "percent": 80, "status": "accepted", "account_no": acct.account_no}
    assert warning["due_at"] == (now + 45 * MIN).isoformat(timespec="milliseconds")
    assert warning["crossed_at"] == (now + 36 * MIN).isoformat(timespec="milliseconds")
    doc = svc.get(number)
    assert [(e["step"], e["actor"]) for e in doc["events"]] == [
        ("accepted", "A007"), ("escalated", "system"), ("escalated", "system")]
    assert [e["percent"] for e in doc["clocks"][0]["escalations"]] == [80, 100]


def test_a_rolled_back_tick_publishes_nothing_and_marks_nothing(
        session_factory: sessionmaker[Session], now: datetime) -> None:
    with session_factory.begin() as s:
        _repair(s, now)
    bus = FakeBus()
    notifier = Notifier(bus)
    with session_factory() as s:
        alerts = wo.escalation_tick(s, now + 40 * MIN, POLICY)
        for a in alerts:
            notifier.work_order_alert(s, a)
        s.rollback()
    assert len(alerts) == 1 and bus.sent == []
    svc = WorkOrderService(session_factory, POLICY, Clock(now + 40 * MIN), notifier)
    assert len(svc.escalation_tick()) == 1 and len(bus.sent) == 1


def test_concurrent_ticks_alert_each_crossing_once(session_factory: sessionmaker[Session],
                                                   now: datetime) -> None:
    with session_factory.begin() as s:
        for i in range(5):
            _repair(s, now, caller=f"1380000000{i}", link=False)
    barrier = threading.Barrier(4)

    def tick(_: int) -> list[WorkOrderAlert]:
        svc = WorkOrderService(session_factory, POLICY, Clock(now + 50 * MIN))
        barrier.wait()
        return svc.escalation_tick()

    with ThreadPoolExecutor(4) as pool:
        alerts = [a for chunk in pool.map(tick, range(4)) for a in chunk]
    assert sorted((a.number, a.percent) for a in alerts) == sorted(
        (n, p) for n in {a.number for a in alerts} for p in (80, 100))
    assert len(alerts) == 10
    with session_factory() as s:
        assert len(s.scalars(select(WorkOrderEscalation)).all()) == 10


def test_a_backlog_is_escalated_in_batches_each_committed(
        session_factory: sessionmaker[Session], now: datetime,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with session_factory.begin() as s:
        numbers = {_repair(s, now, caller=f"1380000000{i}", link=False).number
                   for i in range(5)}
    monkeypatch.setattr(wo, "TICK_BATCH", 2)
    bus = FakeBus()
    svc = WorkOrderService(session_factory, POLICY, Clock(now + 50 * MIN),
                           Notifier(bus))
    alerts = svc.escalation_tick()
    assert sorted((a.number, a.percent) for a in alerts) == sorted(
        (n, p) for n in numbers for p in (80, 100))
    assert len(bus.sent) == 10 and svc.escalation_tick() == []


def test_stopped_clock_does_not_escalate_but_meter_restore_does(
        world: World, session: Session, now: datetime) -> None:
    acct = world.account(world.area("urban"))
    line = _repair(session, now, acct.account_no, link=False)
    meter = _repair(session, now, acct.account_no, subtype="meter", caller="13800000002")
    for number in (line.number, meter.number):
        wo.transition(session, number, "dispatched", AGENT, now + MIN,
                      department="metering" if number == meter.number else None)
    wo.transition(session, line.number, "department_accepted", CREW, now + 2 * MIN)
    wo.transition(session, line.number, "on_site", CREW, now + 30 * MIN)
    wo.transition(session, meter.number, "department_accepted", METERING, now + 2 * MIN)
    wo.transition(session, meter.number, "on_site", METERING, now + 40 * MIN)
    # at 7 h: the line's arrival stopped in time; the meter's arrival too; restore is at 87%
    alerts = wo.escalation_tick(session, now + 7 * 60 * MIN, POLICY)
    assert [(a.number, a.clock, a.percent) for a in alerts] == [
        (meter.number, "restore", 80)]
    risky = wo.at_risk(session, now + 7 * 60 * MIN, POLICY)
    assert [(r["number"], r["percent_used"]) for r in risky] == [(meter.number, 87.5)]
    wo.transition(session, meter.number, "resolved", METERING, now + 7 * 60 * MIN)
    assert wo.escalation_tick(session, now + 9 * 60 * MIN, POLICY) == []
    assert wo.at_risk(session, now + 9 * 60 * MIN, POLICY) == []


def test_at_risk_lists_orders_past_80_percent_most_used_first(
        world: World, session: Session, now: datetime) -> None:
    urban = world.account(world.area("urban"))
    rural = world.account(world.area("rural"))
    a = _repair(session, now, urban.account_no)
    b = _repair(session, now, rural.account_no, caller="13800000002")
    assert wo.at_risk(session, now + 35 * MIN, POLICY) == []
    assert [r["number"] for r in wo.at_risk(session, now + 40 * MIN, POLICY)] == [a.number]
    late = wo.at_risk(session, now + 80 * MIN, POLICY)
    assert [(r["number"], r["percent_used"]) for r in late] == [
        (a.number, round(80 / 45 * 100, 1)), (b.number, round(80 / 90 * 100, 1))]


# ------------------------------------------------------------------------ duplicate linking


def test_fault_reports_of_one_area_within_the_window_link_to_one_master(
        world: World, session: Session, now: datetime) -> None:
    area, other_area = world.area("urban"), world.area("urban")
    accts = [world.account(area) for _ in range(4)]
    elsewhere = world.account(other_area)
    master = _repair(session, now, accts[0].account_no)
    c1 = _repair(session, now + 10 * MIN, accts[1].account_no, caller="13800000002")
    c2 = _repair(session, now + 29 * MIN, accts[2].account_no, caller="13800000003")
    other = _repair(session, now + 12 * MIN, elsewhere.account_no, caller="13800000004")
    meter = _repair(session, now + 13 * MIN, accts[3].account_no, caller="13800000005",
                    subtype="meter")
    unknown = _repair(session, now + 14 * MIN, None, caller="13800000006")
    late = _repair(session, now + 31 * MIN, accts[3].account_no, caller="13800000007")
    assert (c1.master_id, c2.master_id) == (master.id, master.id)
    assert (other.master_id, meter.master_id, unknown.master_id, late.master_id) == (
        None, None, None, None)
    session.commit()
    doc = wo.get(session, master.number, now, POLICY)
    assert doc["children"] == [c1.number, c2.number]
    assert [e["step"] for e in doc["events"]] == ["accepted", "child_linked", "child_linked"]
    child = wo.get(session, c1.number, now, POLICY)
    assert child["master_number"] == master.number and child["clocks"] == []
    assert [e["step"] for e in child["events"]] == ["accepted", "linked"]
    # the child follows the master; it cannot be dispatched on its own
    with pytest.raises(TransitionNotAllowed, match="master"):
        wo.transition(session, c1.number, "dispatched", SUP, now)
    # children of a master are not escalated on their own: only the master's clock runs
    alerts = wo.escalation_tick(session, now + 37 * MIN, POLICY)
    assert master.number in {a.number for a in alerts}
    assert not {c1.number, c2.number} & {a.number for a in alerts}

    for to, actor in [("dispatched", AGENT), ("department_accepted", CREW),
                      ("on_site", CREW), ("resolved", CREW)]:
        wo.transition(session, master.number, to, actor, now + 40 * MIN)
    session.commit()
    for c in (c1, c2):
        doc = wo.get(session, c.number, now, POLICY)
        assert doc["status"] == "resolved"
        assert doc["events"][-1]["note"] == f"follows master {master.number}"
        assert doc["events"][-1]["actor"] == CREW.id
    visits = [r["number"] for r in wo.return_visit_list(session)]
    assert visits == [master.number, c1.number, c2.number]
    wo.transition(session, c1.number, "return_visit", AGENT, now + 50 * MIN, satisfied=False)
    assert wo.get(session, c1.number, now, POLICY)["satisfaction"] == "unsatisfied"


def test_a_supervisor_links_a_duplicate_by_hand(world: World, session: Session,
                                                now: datetime) -> None:
    a = _repair(session, now, None)
    b = _repair(session, now + MIN, None, caller="13800000002")
    assert b.master_id is None  # no known area: not linked automatically
    with pytest.raises(RoleNotAllowed):
        wo.link(session, b.number, a.number, AGENT, now)
    wo.link(session, b.number, a.number, SUP, now + 2 * MIN)
    clock = session.scalars(select(WorkOrderClock).where(
        WorkOrderClock.work_order_id == b.id)).one()
    assert (clock.stopped_by, b.master_id) == ("linked", a.id)
    with pytest.raises(TransitionNotAllowed):
        wo.link(session, a.number, b.number, SUP, now)


def test_linking_is_safe_under_concurrent_reports(world: World,
                                                  session_factory: sessionmaker[Session],
                                                  now: datetime) -> None:
    with session_factory.begin() as s:
        w = world.__class__(s)
        area = w.area("urban")
        accts = [w.account(area).account_no for _ in range(6)]
    barrier = threading.Barrier(6)

    def report(i: int) -> str:
        barrier.wait()
        with session_factory.begin() as s:
            return _repair(s, now, accts[i], caller=f"1390000000{i}").number

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(report, range(6)))
    with session_factory() as s:
        masters = s.scalars(select(WorkOrder).where(WorkOrder.master_id.is_(None))).all()
        assert len(masters) == 1


# ------------------------------------------------------------------------------ urging


def test_urging(world: World, session: Session, now: datetime) -> None:
    area = world.area()
    master = _repair(session, now, world.account(area).account_no)
    child = _repair(session, now + MIN, world.account(area).account_no, caller="13800000002")
    target, alert = wo.urge(session, master.number, AGENT, now + 20 * MIN, POLICY, "还没人来")
    assert target is master and alert is not None
    assert (alert.kind, alert.level, alert.urge_count, alert.note) == (
        "urge", "urge", 1, "还没人来")
    # a repeat minutes later is counted, not alerted again
    target, alert = wo.urge(session, master.number, AGENT, now + 25 * MIN, POLICY)
    assert alert is None and master.urge_count == 2
    # urging a child urges its master
    target, alert = wo.urge(session, child.number, AGENT, now + 40 * MIN, POLICY)
    assert target is master and alert is not None and master.urge_count == 3
    assert child.urge_count == 1
    doc = wo.get(session, master.number, now, POLICY)
    assert [(e["step"], e["actor"]) for e in doc["events"] if e["step"] == "urged"] == [
        ("urged", "A007")] * 3
    assert doc["events"][-1]["note"] == f"via 子单 {child.number}"
    done = wo.create(session, NewOrder(type="consultation", description="x",
                                       caller_number="1"), AGENT, now, POLICY)
    wo.transition(session, done.number, "resolved", AGENT, now)
    with pytest.raises(UrgeNotAllowed):
        wo.urge(session, done.number, AGENT, now, POLICY)


def test_service_urge_publishes_the_alert_after_commit(session_factory: sessionmaker[Session],
                                                       now: datetime) -> None:
    bus = FakeBus()
    svc = WorkOrderService(session_factory, POLICY, Clock(now), Notifier(bus))
    doc = svc.create(NewOrder(type="complaint", description="抄表员态度差",
                              caller_number="13800000001"), AGENT)
    assert doc["status"] == "accepted" and doc["number"]
    out = svc.urge(doc["number"], AGENT, "请尽快处理")
    assert out["urge_count"] == 1 and out["urge_alerted"] is True
    assert [(t, p["kind"], p["number"]) for t, p in bus.sent] == [
        (SUPERVISOR_ALERTS_TOPIC, "urge", doc["number"])]


# ------------------------------------------------------------------ search and return visits


def test_search_filters_and_pages(world: World, session: Session, now: datetime) -> None:
    acct = world.account(world.area(), phones=["13800000001"])
    orders = [
        _repair(session, now, acct.account_no, link=False),
        wo.create(session, NewOrder(type="complaint", description="营业厅排队太久",
                                    caller_number="+8613800000001"), AGENT,
                  now + 60 * MIN, POLICY),
        wo.create(session, NewOrder(type="consultation", description="阶梯电价 100%_discount",
                                    caller_number="13900000000"), AGENT,
                  now + 120 * MIN, POLICY),
    ]
    wo.transition(session, orders[0].number, "dispatched", AGENT, now + MIN)
    session.commit()

    def numbers(**kw: Any) -> list[str]:
        return [r["number"] for r in wo.search(session, SearchQuery(**kw))["items"]]

    n0, n1, n2 = (o.number for o in orders)
    assert numbers() == [n2, n1, n0]
    assert numbers(status="dispatched") == [n0]
    assert numbers(type="complaint") == [n1]
    assert numbers(text="排队") == [n1]
    assert numbers(text="100%_") == [n2] and numbers(text="%") == [n2]
    assert numbers(text=n0[-5:]) == [n0]
    assert numbers(account=acct.account_no) == [n0]
    assert numbers(caller="+86 138 0000 0001") == [n1, n0]
    assert numbers(date_from=now + 30 * MIN) == [n2, n1]
    assert numbers(date_from=now, date_to=now + 60 * MIN) == [n0]
    page = wo.search(session, SearchQuery(limit=2, offset=2))
    assert (page["total"], [r["number"] for r in page["items"]]) == (3, [n0])
    for bad in (SearchQuery(limit=0), SearchQuery(limit=201), SearchQuery(offset=-1),
                SearchQuery(status="open"), SearchQuery(type="x"),
                SearchQuery(date_from=now, date_to=now)):
        with pytest.raises(InvalidWorkOrder):
            wo.search(session, bad)


def test_return_visit_list(session: Session, now: datetime) -> None:
    def resolved(t: str, minute: int) -> str:
        o = wo.create(session, NewOrder(type=t, description="x", caller_number="1"), AGENT,
                      now, POLICY)
        if t != "consultation":
            wo.transition(session, o.number, "dispatched", AGENT, now)
            wo.transition(session, o.number, "department_accepted", SUP, now)
        wo.transition(session, o.number, "resolved", SUP, now + minute * MIN)
        return o.number

    complaint = resolved("complaint", 30)
    application = resolved("service_application", 10)
    resolved("consultation", 5)
    rows = wo.return_visit_list(session)
    assert [(r["number"], r["return_visit_required"]) for r in rows] == [
        (application, False), (complaint, True)]
    wo.transition(session, complaint, "return_visit", SUP, now + 40 * MIN, satisfied=False)
    assert [r["number"] for r in wo.return_visit_list(session)] == [application]
    # 不满意: the supervisor sends it back to the department
    wo.transition(session, complaint, "dispatched", SUP, now + 41 * MIN, note="客户不满意")
    doc = wo.get(session, complaint, now, POLICY)
    assert doc["status"] == "dispatched"
    assert doc["events"][-1]["note"] == "reopened after return visit: 客户不满意"


# ------------------------------------------------------------------------------ IVR path


def test_ivr_fault_reports_go_through_the_service_and_link(
        world: World, session_factory: sessionmaker[Session], now: datetime) -> None:
    with session_factory.begin() as s:
        w = world.__class__(s)
        area = w.area("rural")
        a1, a2 = w.account(area).account_no, w.account(area).account_no
    ivr = DbIvrServices(session_factory, policy=POLICY)

    def report(account: str, minute: int, call_id: str) -> Any:
        return asyncio.run(ivr.query("create_workorder", {
            "order_type": "fault_repair", "account": account, "caller": "13800000001",
            "call_id": call_id, "now": now + minute * MIN}))

    first, second = report(a1, 0, "c.1"), report(a2, 5, "c.2")
    assert (first.type, first.status, first.sla_due_at) == ("fault_repair", "accepted",
                                                            now + 90 * MIN)
    with session_factory() as s:
        doc = wo.get(s, second.number, now, POLICY)
        assert (doc["master_number"], doc["channel"], doc["events"][0]["actor"]) == (
            first.number, "ivr", "ivr")
        assert wo.get(s, first.number, now, POLICY)["clocks"][0]["name"] == "arrival"


# ------------------------------------------------------------------------------ migration


def test_0003_workorders_downgrades_and_upgrades_keeping_orders(
        db_url: str, engine: Engine, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    with session_factory.begin() as s:
        open_number = _repair(s, now, caller="1", link=False).number
    with migrating(db_url) as cfg:
        # this branch only (the other features' revisions stay): undo the merge of the
        # feature branches (a relative step from the merge is an ambiguous walk), then
        # 0004, then 0003
        command.downgrade(cfg, "0004_workorder_alerts")
        command.downgrade(cfg, "0004_workorder_alerts@-1")
        command.downgrade(cfg, "0003_workorders@-1")
    inspector = inspect(engine)
    assert "work_order_clocks" not in inspector.get_table_names()
    assert "urge_count" not in {c["name"] for c in inspector.get_columns("work_orders")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT number FROM work_orders")).scalars().all() == [
            open_number]
        # SQLite rebuilds work_orders here; its history must survive (ON DELETE CASCADE)
        assert conn.execute(text("SELECT step FROM work_order_events")).scalars().all() == [
            "accepted"]
    upgrade(db_url)
    with session_factory() as s:
        order = s.scalars(select(WorkOrder)).one()
        assert (order.number, order.urge_count) == (open_number, 0)
        assert [e.step for e in order.events] == ["accepted"]
        # the open repair order got back its arrival clock from sla_due_at
        clock = s.scalars(select(WorkOrderClock)).one()
        assert (clock.work_order_id, clock.name, clock.due_at, clock.stopped_at) == (
            order.id, "arrival", now + 45 * MIN, None)
        # 0004 gave it its alert times: 80% of 45 minutes
        assert (clock.warn_at, clock.next_alert_at) == (now + 36 * MIN, now + 36 * MIN)
        assert len(wo.escalation_tick(s, now + 40 * MIN, POLICY)) == 1


def test_0004_fills_in_alert_times_of_existing_clocks(
        db_url: str, engine: Engine, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    with session_factory.begin() as s:
        warned = _repair(s, now, link=False)
        fresh = _repair(s, now + 10 * MIN, caller="13800000002", link=False)
        wo.escalation_tick(s, now + 40 * MIN, POLICY)  # warned: 80% marked
        wo.transition(s, fresh.number, "dispatched", AGENT, now + 41 * MIN)
    with migrating(db_url) as cfg:
        command.downgrade(cfg, "0004_workorder_alerts")  # undo the merge revision only
        command.downgrade(cfg, "0004_workorder_alerts@-1")
    assert "next_alert_at" not in {c["name"] for c in inspect(engine).get_columns(
        "work_order_clocks")}
    upgrade(db_url)
    with session_factory() as s:
        times = {n: (w, a) for n, w, a in s.execute(
            select(WorkOrder.number, WorkOrderClock.warn_at, WorkOrderClock.next_alert_at)
            .join(WorkOrderClock, WorkOrderClock.work_order_id == WorkOrder.id))}
        assert times == {warned.number: (now + 36 * MIN, now + 45 * MIN),
                         fresh.number: (now + 46 * MIN, now + 46 * MIN)}
        alerts = wo.escalation_tick(s, now + 46 * MIN, POLICY)
        assert sorted((a.number, a.percent) for a in alerts) == [
            (warned.number, 100), (fresh.number, 80)]
        assert wo.escalation_tick(s, now + 47 * MIN, POLICY) == []
