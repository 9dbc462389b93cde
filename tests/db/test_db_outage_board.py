"""The outage board's reads (cti/db/outage_board.py) and the daemon's outage watch
(callcenter/outage_watch.py), on both backends: customers in scope, calls about a notice in the
last 15 minutes, deflection, the master order's clock, notices by 台区, and the retained
messages sent when another process changed the notices or the storm switch."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from callcenter.outage_service import OutageService, Who
from callcenter.outage_watch import OutageWatch
from config.topics import OUTAGES_TOPIC, STORM_TOPIC
from cti.db import outage_board
from cti.db import outages as store
from cti.db.models import Call
from outages.scope import Cause, Place
from tests.support.fakes import FakeBus
from tests.support.orders import fault_report

if TYPE_CHECKING:
    from conftest import World

H = timedelta(hours=1)
MIN = timedelta(minutes=1)
SUP = Who("S01", "supervisor", "10.0.0.9")


def _call(s: Session, n: int, at: datetime, *, account: str | None = None,
          heard: list[int] | None = None, outcome: str | None = None) -> None:
    s.add(Call(call_id=f"17900000{n:02d}.1", uniqueid=f"17900000{n:02d}.1",
               caller_number="13800000009", dnis="95598", started_at=at, ivr_path=[],
               account_no=account, outage_ids=heard, outcome=outcome))


def test_the_board_counts_customers_calls_deflection_and_the_master_clock(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    area = world.area()
    f1, f2 = world.feeder(area), world.feeder(area)
    on_f1 = [world.account(area, f1) for _ in range(3)]
    on_f2 = world.account(area, f2)
    in_ta = world.account(area, None)
    in_ta.transformer_area = "泉城路9号台区"
    master = fault_report(session, now - 20 * MIN, on_f1[0].account_no)
    session.commit()
    svc = OutageService(session_factory)
    fault = svc.publish(store.NoticeDraft(Cause.FAULT, now - H, feeders=frozenset({f1.id}),
                                          expected_restore_at=now + H,
                                          master_order=master.number), SUP, now)
    ta = svc.publish(store.NoticeDraft(Cause.STORM_REPAIR, now - H, transformer_areas=frozenset(
        {(area.id, "泉城路9号台区")})), SUP, now)
    suspected = svc.publish(store.NoticeDraft(Cause.REPORTED, now - 5 * MIN,
                                              feeders=frozenset({f2.id}),
                                              awaiting_confirmation=True), SUP, now)
    # heard the fault notice: 3, 2 of them deflected; one keyed an account on f1 and heard
    # nothing (a caller the IVR did not recognise); one about f2; one too old to count
    _call(session, 1, now - 2 * MIN, heard=[fault], outcome="deflected")
    _call(session, 2, now - 3 * MIN, heard=[fault], outcome="deflected")
    _call(session, 3, now - 4 * MIN, heard=[fault], outcome="transfer")
    _call(session, 4, now - 5 * MIN, account=on_f1[1].account_no, outcome="transfer")
    _call(session, 5, now - 6 * MIN, account=on_f2.account_no)
    _call(session, 6, now - 20 * MIN, heard=[fault], outcome="deflected")
    session.commit()

    doc = outage_board.board_doc(session_factory, now)
    rows = {r["outage_id"]: r for r in doc["active"]}
    assert list(rows) == [fault, ta]  # the most customers first
    f = rows[fault]
    assert (f["customers"], f["calls_window"], f["heard"], f["deflected"],
            f["deflection_rate"]) == (3, 4, 3, 2, round(2 / 3, 4))
    assert f["master"]["number"] == master.number
    assert f["master"]["clock"]["name"] and f["master"]["clock"]["stopped_at"] is None
    assert (f["cause_zh"], f["kind"]) == ("故障停电", "fault")
    t = rows[ta]
    assert (t["customers"], t["calls_window"], t["deflection_rate"]) == (1, 0, None)
    assert t["transformer_areas"] == [{"area_id": area.id, "area_name": area.name,
                                       "name": "泉城路9号台区"}]
    [s] = doc["suspected"]
    assert (s["outage_id"], s["awaiting_confirmation"], s["customers"], s["calls_window"]) == (
        suspected, True, 1, 1)
    assert doc["totals"] == {"active": 2, "suspected": 1, "customers": 4, "calls_window": 5,
                             "calls_about_outages": 3, "heard": 3, "deflected": 2,
                             "deflection_rate": round(2 / 3, 4)}
    assert doc["storm"]["on"] is False


def test_notices_for_places_by_area_feeder_and_transformer_area(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    area, other = world.area(), world.area()
    f1 = world.feeder(area)
    session.commit()
    svc = OutageService(session_factory)
    whole = svc.publish(store.NoticeDraft(Cause.UPSTREAM, now - H, areas=frozenset({other.id})),
                        SUP, now)
    ta = svc.publish(store.NoticeDraft(Cause.FAULT, now - H, transformer_areas=frozenset(
        {(area.id, "一号台区")})), SUP, now)
    later = svc.publish(store.NoticeDraft(Cause.PLANNED, now + H, feeders=frozenset({f1.id}),
                                          schedule_end_at=now + 3 * H), SUP, now)
    places = {"a": Place(area.id, f1.id, "一号台区"), "b": Place(area.id, f1.id, "二号台区"),
              "c": Place(other.id)}
    with session_factory() as s:
        found = outage_board.notices_for_places(s, places, now)
        assert {k: [n.id for n in v] for k, v in found.items()} == {
            "a": [ta], "b": [], "c": [whole]}
        assert [n.id for n in outage_board.notices_for_places(s, places, now + 2 * H)["b"]] == [
            later]


def test_the_watch_sends_what_another_process_changed(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    area = world.area()
    session.commit()
    bus = FakeBus()
    watch = OutageWatch(session_factory, bus, clock=lambda: now)
    watch.step()  # at start: the current state of both, retained
    assert bus.on(OUTAGES_TOPIC)[-1]["active"] == 0 and bus.on(STORM_TOPIC)[-1]["on"] is False
    assert {(t, r) for t, _q, r in bus.options} == {(OUTAGES_TOPIC, True), (STORM_TOPIC, True)}
    watch.step()
    assert len(bus.sent) == 2  # nothing moved: nothing sent
    # the CLI's service has no bus: only the watch tells the desktops
    cli = OutageService(session_factory)
    cli.publish(store.NoticeDraft(Cause.FAULT, now - H, areas=frozenset({area.id})),
                Who("cli:ops", "admin"), now)
    watch.step()
    assert [m["active"] for m in bus.on(OUTAGES_TOPIC)] == [0, 1]
    assert len(bus.on(STORM_TOPIC)) == 1
    cli.set_storm(True, Who("cli:ops", "admin"), now)
    watch.step()
    storm = bus.on(STORM_TOPIC)[-1]
    assert (storm["on"], storm["by"], storm["trigger"]) == (True, "cli:ops", "manual")
    assert len(bus.on(OUTAGES_TOPIC)) == 2
