"""Fault reports and outages on both backends (issue 12): a report from inside a known outage
joins it (a child of its master order, or its master), and incident detection opens a suspected
outage on the N-th report of one 台区 or feeder within the window, links the cluster, alerts
supervisors after the commit, and keeps its memory in the database across a restart."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.outage_service import OutageService, Who
from cti.db import outages as store
from cti.db.models import Outage, WorkOrder
from cti.db.models_recordings import AuditLog
from cti.db.models_workorders import WorkOrderClock
from cti.notifier import SUPERVISOR_ALERTS_TOPIC, Notifier
from outages.incidents import DetectionSettings, Mode
from outages.scope import Cause
from tests.support.fakes import FakeBus
from workorders import service as wo
from workorders.lifecycle import Role, SlaPolicy
from workorders.service import Actor, NewOrder, WorkOrderService

if TYPE_CHECKING:
    from conftest import World

MIN = timedelta(minutes=1)
H = timedelta(hours=1)
AGENT = Actor("A007", Role.AGENT)
SUP = Who("sup01", "supervisor")
POLICY = SlaPolicy()


class Hotline:
    """The services as one CTI process builds them (hotline.wiring.build_services)."""

    def __init__(self, sf: sessionmaker[Session], mode: Mode = Mode.CONFIRM,
                 policy: SlaPolicy = POLICY, threshold: int = 5) -> None:
        self.bus = FakeBus()
        notifier = Notifier(self.bus)
        self.outages = OutageService(sf, notifier, detection=DetectionSettings(
            threshold=threshold, window=15 * MIN, mode=mode))
        self.orders = WorkOrderService(sf, policy, alerts=notifier, outages=self.outages)
        self.sf = sf

    def report(self, account_no: str, at: datetime, *, actor: Actor = AGENT,
               caller: str = "13800000001") -> dict[str, Any]:
        """An agent's fault report through the service (the desktop's path)."""
        return self.orders.create(NewOrder(type="fault_repair", description="家中无电",
                                           caller_number=caller, account_no=account_no),
                                  actor, now=at)

    def ivr_report(self, account_no: str, at: datetime, call_id: str) -> WorkOrder:
        """The IVR's fault report: in its own transaction, through create_in."""
        with self.sf.begin() as s:
            order = self.orders.create_in(s, NewOrder(
                type="fault_repair", description=wo.IVR_FAULT_DESCRIPTION,
                caller_number="13900000000", account_no=account_no, call_id=call_id,
                channel="ivr"), wo.IVR, at)
            s.expunge(order)
        return order

    def alerts(self) -> list[dict[str, Any]]:
        return [p for t, p in self.bus.sent
                if t == SUPERVISOR_ALERTS_TOPIC and p.get("kind") == "outage"]


def _order(sf: sessionmaker[Session], number: str) -> WorkOrder:
    with sf() as s:
        o = s.scalars(select(WorkOrder).where(WorkOrder.number == number)).one()
        s.expunge(o)
        return o


def _events(svc: Hotline, number: str) -> list[tuple[str, str, str | None]]:
    return [(e["step"], e["actor"], e["note"]) for e in svc.orders.get(number)["events"]]


def _outages(sf: sessionmaker[Session]) -> list[Outage]:
    with sf() as s:
        rows = list(s.scalars(select(Outage).order_by(Outage.id)))
        for r in rows:
            s.expunge(r)
        return rows


def _place(world: World, session: Session, *, feeders: int = 1) -> dict[str, Any]:
    area = world.area()
    fs = [world.feeder(area) for _ in range(feeders)]
    other = world.area()
    session.commit()
    return {"area": area, "feeders": fs, "other": other}


def _accounts(world: World, session: Session, area: Any, feeder: Any, ta: str | None,
              n: int) -> list[str]:
    out = []
    for _ in range(n):
        a = world.account(area, feeder)
        a.transformer_area = ta
        out.append(a.account_no)
    session.commit()
    return out


# ------------------------------------------------------------------ inside a known outage


def test_a_report_inside_a_known_outage_is_a_child_of_its_master(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    p = _place(world, session)
    f1 = p["feeders"][0]
    on_f1 = _accounts(world, session, p["area"], f1, "泉城路1号台区", 2)
    svc = Hotline(session_factory)
    master = svc.report(on_f1[0], now - H)["number"]  # the crew's order, before the notice
    oid = svc.outages.publish(store.NoticeDraft(
        Cause.FAULT, now - H, feeders=frozenset({f1.id}), expected_restore_at=now + 2 * H,
        master_order=master), SUP, now - H)
    doc = svc.report(on_f1[1], now)
    child = _order(session_factory, doc["number"])
    assert (child.outage_id, child.master_id) == (oid, _order(session_factory, master).id)
    assert doc["master_number"] == master and doc["outage_id"] == oid
    assert doc["clocks"] == []  # the master's clocks carry the commitment
    assert ("linked", "A007", f"linked into outage {oid}: 子单 of master {master}") in \
        _events(svc, doc["number"])
    assert ("child_linked", "A007", f"子单 {doc['number']} linked into outage {oid}") in \
        _events(svc, master)
    with session_factory() as s:  # no new master: the outage keeps its order
        assert store.get_notice(s, oid).notice.master_order == master
        assert svc.outages.restore_time(s, oid, now) == now + 2 * H
    assert svc.alerts() == []  # linked into a notice: not counted, nothing detected


def test_the_first_report_in_an_outage_without_a_master_becomes_its_master(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    p = _place(world, session)
    accts = _accounts(world, session, p["area"], None, None, 2)
    svc = Hotline(session_factory)
    oid = svc.outages.publish(store.NoticeDraft(
        Cause.STORM_REPAIR, now - H, areas=frozenset({p["area"].id}),
        expected_restore_at=now + 3 * H), SUP, now - H)
    first = svc.ivr_report(accts[0], now, "1764210000.1")
    assert (first.outage_id, first.master_id) == (oid, None)
    with session_factory() as s:
        assert store.get_notice(s, oid).notice.master_order == first.number
        audit = s.execute(select(AuditLog.actor, AuditLog.action).where(
            AuditLog.target == f"outage:{oid}").order_by(AuditLog.id)).all()
        assert [tuple(a) for a in audit] == [("sup01", "outage.publish"),
                                             ("system", "outage.master")]
        assert len(s.scalars(select(WorkOrderClock).where(
            WorkOrderClock.work_order_id == first.id)).all()) == 1  # a master: its clock runs
    assert ("outage_linked", "ivr",
            f"linked into outage {oid}: master order (主单) of the outage") in \
        _events(svc, first.number)
    second = svc.ivr_report(accts[1], now + MIN, "1764210000.2")
    assert (second.outage_id, second.master_id) == (oid, first.id)


def test_a_closed_master_hands_the_outage_to_the_next_report(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    p = _place(world, session)
    accts = _accounts(world, session, p["area"], None, None, 2)
    svc = Hotline(session_factory)
    oid = svc.outages.publish(store.NoticeDraft(
        Cause.FAULT, now - H, areas=frozenset({p["area"].id})), SUP, now - H)
    first = svc.report(accts[0], now)["number"]
    sup = Actor("S01", Role.SUPERVISOR)
    for step in ("dispatched", "department_accepted", "on_site", "resolved"):
        svc.orders.transition(first, step, sup, department="repair"
                              if step == "dispatched" else None, now=now + MIN)
    second = svc.report(accts[1], now + 2 * MIN)["number"]
    assert _order(session_factory, second).master_id is None
    with session_factory() as s:
        assert store.get_notice(s, oid).notice.master_order == second


# ------------------------------------------------------------------------ incident detection


def test_five_reports_on_one_transformer_area_open_a_suspected_outage(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    p = _place(world, session)
    f1 = p["feeders"][0]
    accts = _accounts(world, session, p["area"], f1, "泉城路1号台区", 6)
    svc = Hotline(session_factory, Mode.CONFIRM)
    numbers = [svc.report(a, now + i * MIN)["number"] for i, a in enumerate(accts[:4])]
    assert _outages(session_factory) == [] and svc.alerts() == []
    numbers.append(svc.report(accts[4], now + 4 * MIN)["number"])
    [o] = _outages(session_factory)
    assert (o.category, o.awaiting_confirmation, o.created_by) == ("reported", True, "system")
    with session_factory() as s:
        notice = store.get_notice(s, o.id).notice
        # the 台区 opens before its feeder (the narrower fault), with the first report master
        assert notice.scope.transformer_areas == frozenset({(p["area"].id, "泉城路1号台区")})
        assert not notice.scope.feeders and notice.master_order == numbers[0]
        # confirm mode: callers do not hear it yet
        assert svc.outages.for_account(s, accts[0], now + 5 * MIN) == ()
        assert svc.outages.heard_notice(s, o.id, now + 5 * MIN) is None
    orders = [_order(session_factory, n) for n in numbers]
    assert [x.outage_id for x in orders] == [o.id] * 5
    assert [x.master_id for x in orders] == [None] + [orders[0].id] * 4
    opened = f"master order (主单) of suspected outage {o.id}: 5 fault reports"
    assert any(step == "outage_linked" and (note or "").startswith(opened)
               for step, _a, note in _events(svc, numbers[0]))
    [alert] = svc.alerts()
    assert {k: alert[k] for k in ("kind", "level", "outage_id", "scope", "area_id",
                                  "transformer_area", "reports", "master_number")} == {
        "kind": "outage", "level": "suspected", "outage_id": o.id,
        "scope": "transformer_area", "area_id": p["area"].id,
        "transformer_area": "泉城路1号台区", "reports": 5, "master_number": numbers[0]}
    # a later report on that 台区 joins it while it waits for confirmation
    later = svc.report(accts[5], now + 6 * MIN)
    assert (later["outage_id"], later["master_number"]) == (o.id, numbers[0])
    svc.outages.confirm(o.id, SUP, now + 7 * MIN)
    with session_factory() as s:
        heard = svc.outages.for_account(s, accts[5], now + 8 * MIN)
        assert heard is not None and [n.id for n in heard] == [o.id]
    assert len(_outages(session_factory)) == 1 and len(svc.alerts()) == 1


def test_auto_mode_announces_at_once_and_links_reports_that_area_linking_left_alone(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    p = _place(world, session)
    accts = _accounts(world, session, p["area"], None, "历山路2号台区", 5)
    # reports 2 minutes apart with a 1-minute duplicate window: each is its own master first
    svc = Hotline(session_factory, Mode.AUTO, SlaPolicy(duplicate_window=MIN))
    numbers = [svc.ivr_report(a, now + 2 * i * MIN, f"1764210000.{i}").number
               for i, a in enumerate(accts)]
    [o] = _outages(session_factory)
    assert o.awaiting_confirmation is False
    orders = [_order(session_factory, n) for n in numbers]
    assert [x.master_id for x in orders] == [None] + [orders[0].id] * 4
    with session_factory() as s:
        heard = svc.outages.for_account(s, accts[2], now + 9 * MIN)
        assert heard is not None and [n.id for n in heard] == [o.id]
        # the children's clocks stopped as they were linked; the master's still runs
        clocks = {c.work_order_id: c.stopped_by for c in s.scalars(select(WorkOrderClock))}
    assert clocks == {orders[0].id: None, **{x.id: "linked" for x in orders[1:]}}
    assert ("linked", "system", f"linked into outage {o.id}: 子单 of master {numbers[0]}") in \
        _events(svc, numbers[3])
    [alert] = svc.alerts()
    assert (alert["level"], alert["reports"]) == ("announced", 5)


def test_reports_on_different_transformer_areas_or_outside_the_window_open_nothing(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    p = _place(world, session)
    spread = [_accounts(world, session, p["area"], None, f"{i}号台区", 1)[0] for i in range(5)]
    same = _accounts(world, session, p["area"], None, "泉城路1号台区", 7)
    # a 30-second duplicate window: area linking leaves these reports apart
    svc = Hotline(session_factory, Mode.AUTO, SlaPolicy(duplicate_window=MIN / 2))
    for i, a in enumerate(spread):
        svc.report(a, now + i * MIN)
    assert _outages(session_factory) == []
    # four within the window, the fifth 16 minutes after the first: the first fell out
    t0 = now + H
    for i, a in enumerate(same[:4]):
        svc.report(a, t0 + i * MIN)
    svc.report(same[4], t0 + 16 * MIN)
    assert _outages(session_factory) == [] and svc.alerts() == []
    # one more inside the window of the last four: five again, the oldest in it the master
    svc.report(same[5], t0 + 16 * MIN)
    [o] = _outages(session_factory)
    with session_factory() as s:
        notice = store.get_notice(s, o.id).notice
    first, second = (svc.orders.search(wo.SearchQuery(account=a))["items"][0]["number"]
                     for a in same[:2])
    assert notice.master_order == second  # the oldest report inside the window
    assert _order(session_factory, first).outage_id is None  # outside the window
    assert [_order(session_factory, n).outage_id
            for n in (second, *(svc.orders.search(wo.SearchQuery(account=a))["items"][0]
                                ["number"] for a in same[2:6]))] == [o.id] * 5


def test_five_reports_on_one_feeder_across_transformer_areas_open_it_on_the_feeder(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    p = _place(world, session, feeders=2)
    f1, f2 = p["feeders"]
    on_f1 = [_accounts(world, session, p["area"], f1, f"{i}号台区", 1)[0] for i in range(5)]
    on_f2 = _accounts(world, session, p["area"], f2, "9号台区", 1)
    svc = Hotline(session_factory, Mode.AUTO)
    for i, a in enumerate(on_f1):
        svc.report(a, now + i * MIN)
    [o] = _outages(session_factory)
    with session_factory() as s:
        assert store.get_notice(s, o.id).notice.scope.feeders == frozenset({f1.id})
    assert svc.alerts()[0]["scope"] == "feeder" and svc.alerts()[0]["feeder_id"] == f1.id
    assert svc.report(on_f2[0], now + 5 * MIN)["outage_id"] is None  # another feeder


def test_a_restart_keeps_the_cluster_in_progress(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    p = _place(world, session)
    accts = _accounts(world, session, p["area"], None, "泉城路1号台区", 5)
    before = Hotline(session_factory)
    numbers = [before.report(a, now + i * MIN)["number"] for i, a in enumerate(accts[:3])]
    after = Hotline(session_factory)  # a new CTI process: nothing in memory
    numbers += [after.report(a, now + (3 + i) * MIN)["number"]
                for i, a in enumerate(accts[3:])]
    [o] = _outages(session_factory)
    assert [_order(session_factory, n).outage_id for n in numbers] == [o.id] * 5
    with session_factory() as s:
        assert store.get_notice(s, o.id).notice.master_order == numbers[0]
    assert len(after.alerts()) == 1 and before.alerts() == []


def test_a_rolled_back_report_opens_nothing_and_alerts_nobody(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    p = _place(world, session)
    accts = _accounts(world, session, p["area"], None, "泉城路1号台区", 5)
    svc = Hotline(session_factory)
    for i, a in enumerate(accts[:4]):
        svc.report(a, now + i * MIN)
    with session_factory() as s:
        svc.orders.create_in(s, NewOrder(type="fault_repair", description="x",
                                         caller_number="13800000009", account_no=accts[4]),
                             AGENT, now + 4 * MIN)
        assert s.scalar(select(Outage.id)) is not None  # opened inside the transaction
        s.rollback()
    assert _outages(session_factory) == [] and svc.alerts() == []
    svc.report(accts[4], now + 5 * MIN)
    assert len(_outages(session_factory)) == 1 and len(svc.alerts()) == 1


def test_without_an_outage_port_a_report_is_linked_by_area_only(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    p = _place(world, session)
    accts = _accounts(world, session, p["area"], None, "泉城路1号台区", 5)
    svc = Hotline(session_factory)
    svc.outages.publish(store.NoticeDraft(Cause.FAULT, now - H,
                                          areas=frozenset({p["area"].id})), SUP, now - H)
    with session_factory.begin() as s:
        orders = [wo.create(s, NewOrder(type="fault_repair", description="x",
                                        caller_number="13800000009", account_no=a),
                            AGENT, now + i * MIN, POLICY) for i, a in enumerate(accts)]
        assert [o.outage_id for o in orders] == [None] * 5
        assert [o.master_id for o in orders] == [None] + [orders[0].id] * 4


@pytest.mark.parametrize("subtype", ["meter"])
def test_a_meter_fault_is_neither_linked_into_an_outage_nor_counted(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime, subtype: str) -> None:
    p = _place(world, session)
    accts = _accounts(world, session, p["area"], None, "泉城路1号台区", 5)
    svc = Hotline(session_factory, threshold=2)
    for i, a in enumerate(accts):
        doc = svc.orders.create(NewOrder(type="fault_repair", description="电表坏了",
                                         caller_number="13800000009", account_no=a,
                                         subtype=subtype), AGENT, now=now + i * MIN)
        assert doc["outage_id"] is None
    assert _outages(session_factory) == []


def test_a_cluster_already_under_an_older_order_of_the_area_keeps_that_master(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    p = _place(world, session)
    elsewhere = _accounts(world, session, p["area"], None, "1号台区", 1)
    cluster = _accounts(world, session, p["area"], None, "2号台区", 5)
    svc = Hotline(session_factory)
    older = svc.report(elsewhere[0], now)["number"]  # the area's open master (area linking)
    numbers = [svc.report(a, now + (1 + i) * MIN)["number"] for i, a in enumerate(cluster)]
    [o] = _outages(session_factory)
    with session_factory() as s:
        # that order carries the work and its clock: it is the outage's master too, and no
        # 子单 is moved under a 子单
        assert store.get_notice(s, o.id).notice.master_order == older
    master = _order(session_factory, older)
    assert master.outage_id == o.id
    assert [(x.outage_id, x.master_id) for x in (_order(session_factory, n) for n in numbers)
            ] == [(o.id, master.id)] * 5


def test_two_fifth_reports_at_once_open_one_suspected_outage(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    p = _place(world, session)
    accts = _accounts(world, session, p["area"], None, "泉城路1号台区", 6)
    svc = Hotline(session_factory)
    for i, a in enumerate(accts[:4]):
        svc.report(a, now + i * MIN)
    barrier = threading.Barrier(2)

    def fifth(account_no: str) -> str:
        barrier.wait(timeout=10)
        return str(svc.report(account_no, now + 5 * MIN)["number"])

    with ThreadPoolExecutor(2) as pool:
        numbers = list(pool.map(fifth, accts[4:]))
    [o] = _outages(session_factory)
    assert [_order(session_factory, n).outage_id for n in numbers] == [o.id] * 2
    assert len(svc.alerts()) == 1


def test_with_detection_off_reports_still_join_published_notices_but_are_not_counted(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    p = _place(world, session)
    accts = _accounts(world, session, p["area"], None, "泉城路1号台区", 5)
    other = _accounts(world, session, p["other"], None, "泉城路1号台区", 1)
    svc = Hotline(session_factory)
    svc.outages.detection = None  # [outages] detect = false
    oid = svc.outages.publish(store.NoticeDraft(Cause.FAULT, now - H,
                                                areas=frozenset({p["other"].id})), SUP, now)
    for i, a in enumerate(accts):
        svc.report(a, now + i * MIN)
    assert [o.id for o in _outages(session_factory)] == [oid]  # nothing detected
    assert svc.report(other[0], now + 6 * MIN)["outage_id"] == oid


def test_two_first_reports_at_once_from_two_areas_of_one_notice_make_one_master(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    p = _place(world, session)
    a = _accounts(world, session, p["area"], None, None, 1)[0]
    b = _accounts(world, session, p["other"], None, None, 1)[0]
    svc = Hotline(session_factory)
    oid = svc.outages.publish(store.NoticeDraft(
        Cause.STORM_REPAIR, now - H, areas=frozenset({p["area"].id, p["other"].id})),
        SUP, now - H)
    barrier = threading.Barrier(2)

    def first(account_no: str) -> dict[str, Any]:
        barrier.wait(timeout=10)
        return svc.report(account_no, now)

    with ThreadPoolExecutor(2) as pool:
        docs = list(pool.map(first, (a, b)))
    with session_factory() as s:
        master = store.get_notice(s, oid).notice.master_order
    assert sorted(d["master_number"] or "" for d in docs) == ["", master]
    assert [d["outage_id"] for d in docs] == [oid, oid]
