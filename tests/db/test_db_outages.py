"""Outage notices in the database (cti/db/outages.py) through the service
(callcenter/outage_service.py): publish, update, confirm, close, the caller lookup, the revision
that invalidates the index, the audit trail and the storm switch, on both backends."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.outage_service import OutageService, Who
from cti.db import outages as store
from cti.db.models import OUTAGE_CATEGORIES, Outage
from cti.db.models_recordings import AuditLog
from outages.scope import Cause, InvalidNotice

if TYPE_CHECKING:
    from conftest import World

H = timedelta(hours=1)
SUP = Who("sup01", "supervisor", "10.0.0.9")


def test_the_database_knows_every_cause() -> None:
    assert set(OUTAGE_CATEGORIES) == {c.value for c in Cause}


def _world(world: World, session: Session) -> dict[str, object]:
    area = world.area()
    f1, f2 = world.feeder(area), world.feeder(area)
    on_f1 = world.account(area, f1, phones=["13800000001"])
    on_f2 = world.account(area, f2, phones=["13800000002"])
    other_area = world.area()
    elsewhere = world.account(other_area, phones=["13800000002"])  # the same phone, 2 places
    session.commit()
    return {"area": area.id, "f1": f1.id, "f2": f2.id, "other": other_area.id,
            "on_f1": on_f1.account_no, "on_f2": on_f2.account_no,
            "elsewhere": elsewhere.account_no}


def _heard(svc: OutageService, sf: sessionmaker[Session], phone: str, now: datetime
           ) -> list[tuple[tuple[str, ...], tuple[int, ...]]]:
    with sf() as s:
        _, groups = svc.for_caller(s, phone, now)
    return [(g.accounts, tuple(n.id for n in g.notices)) for g in groups]


def test_a_published_notice_is_heard_by_the_next_lookup_and_closing_ends_it(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    w = _world(world, session)
    svc = OutageService(session_factory)
    assert _heard(svc, session_factory, "13800000001", now) == []
    oid = svc.publish(store.NoticeDraft(Cause.FAULT, now - H, feeders=frozenset({w["f1"]}),
                                        expected_restore_at=now + 2 * H,
                                        agent_text="10kV 1号线 跳闸"), SUP, now)
    assert _heard(svc, session_factory, "13800000001", now) == [((w["on_f1"],), (oid,))]
    assert _heard(svc, session_factory, "13800000002", now) == []  # the other feeder
    svc.close(oid, SUP, now + H)
    assert _heard(svc, session_factory, "13800000001", now + H) == []
    with pytest.raises(store.NoticeNotFound):
        svc.close(oid, SUP, now + H)


def test_a_caller_with_accounts_in_two_places_hears_each(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    w = _world(world, session)
    svc = OutageService(session_factory)
    a = svc.publish(store.NoticeDraft(Cause.STORM_REPAIR, now - H,
                                      areas=frozenset({w["area"]})), SUP, now)
    b = svc.publish(store.NoticeDraft(Cause.PLANNED, now - H, areas=frozenset({w["other"]}),
                                      schedule_end_at=now + 3 * H), SUP, now)
    heard = _heard(svc, session_factory, "13800000002", now)
    assert sorted(heard) == sorted([((w["on_f2"],), (a,)), ((w["elsewhere"],), (b,))])


def test_a_transformer_area_scope_covers_only_its_accounts(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    w = _world(world, session)  # World's accounts are all in 泉城路1号台区
    svc = OutageService(session_factory)
    oid = svc.publish(store.NoticeDraft(Cause.FAULT, now - H, transformer_areas=frozenset(
        {(w["area"], "泉城路1号台区")})), SUP, now)
    assert _heard(svc, session_factory, "13800000001", now) == [((w["on_f1"],), (oid,))]
    svc.publish(store.NoticeDraft(Cause.FAULT, now - H, transformer_areas=frozenset(
        {(w["other"], "别的台区")})), SUP, now)
    assert [g for g in _heard(svc, session_factory, "13800000002", now)
            if w["elsewhere"] in g[0]] == []


def test_a_suspected_notice_is_heard_only_once_confirmed(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    w = _world(world, session)
    svc = OutageService(session_factory)
    oid = svc.publish(store.NoticeDraft(Cause.REPORTED, now - H, feeders=frozenset({w["f1"]}),
                                        awaiting_confirmation=True), Who("system", "system"),
                      now)
    assert _heard(svc, session_factory, "13800000001", now) == []
    svc.confirm(oid, SUP, now)
    assert _heard(svc, session_factory, "13800000001", now) == [((w["on_f1"],), (oid,))]
    with session_factory() as s:
        row = store.get_notice(s, oid)
    assert row.confirmed_by == "sup01" and row.notice.expected_restore_at is None


def test_an_update_takes_effect_and_moves_the_revision(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    w = _world(world, session)
    svc = OutageService(session_factory)
    oid = svc.publish(store.NoticeDraft(Cause.FAULT, now - H, feeders=frozenset({w["f1"]})),
                      SUP, now)
    with session_factory() as s:
        before = store.version(s)
    svc.update(oid, store.NoticeDraft(Cause.FAULT, now - H, feeders=frozenset({w["f2"]}),
                                      expected_restore_at=now + H), SUP, now)
    with session_factory() as s:
        assert store.version(s) == before + 1
    assert _heard(svc, session_factory, "13800000001", now) == []
    assert _heard(svc, session_factory, "13800000002", now)[0][1] == (oid,)


@pytest.mark.parametrize("draft, problem", [
    (lambda w, now: store.NoticeDraft(Cause.FAULT, now), "needs a scope"),
    (lambda w, now: store.NoticeDraft(Cause.FAULT, now, feeders=frozenset({99999})),
     "no such feeder: 99999"),
    (lambda w, now: store.NoticeDraft(Cause.FAULT, now, areas=frozenset({99998})),
     "no such area: 99998"),
    (lambda w, now: store.NoticeDraft(Cause.PLANNED, now, areas=frozenset({w["area"]})),
     "needs a schedule"),
    (lambda w, now: store.NoticeDraft(Cause.FAULT, now, areas=frozenset({w["area"]}),
                                      expected_restore_at=now - H), "before its start"),
    (lambda w, now: store.NoticeDraft(Cause.FAULT, now, areas=frozenset({w["area"]}),
                                      master_order="26120599999"), "no such work order"),
])
def test_a_bad_notice_is_refused_with_the_reason_and_nothing_is_written(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime, draft: object, problem: str) -> None:
    w = _world(world, session)
    svc = OutageService(session_factory)
    with pytest.raises(InvalidNotice, match=problem):
        svc.publish(draft(w, now), SUP, now)  # type: ignore[operator]
    with session_factory() as s:
        assert s.scalars(select(Outage)).all() == []
        assert s.scalars(select(AuditLog)).all() == []


def test_every_change_and_storm_switch_is_audited_with_who(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    w = _world(world, session)
    svc = OutageService(session_factory)
    oid = svc.publish(store.NoticeDraft(Cause.FAULT, now, areas=frozenset({w["area"]})), SUP,
                      now)
    svc.close(oid, Who("cli:root", "admin"), now + H)
    assert svc.set_storm(True, SUP, now) is True
    assert svc.set_storm(True, SUP, now) is False  # already on: nothing more written
    assert svc.set_storm(False, Who("system", "system"), now + H, trigger="auto",
                         detail="inflow 0.8 of capacity") is True
    with session_factory() as s:
        rows = [(a.action, a.actor, a.target) for a in s.scalars(
            select(AuditLog).order_by(AuditLog.id))]
        assert rows == [("outage.publish", "sup01", f"outage:{oid}"),
                        ("outage.close", "cli:root", f"outage:{oid}"),
                        ("storm.on", "sup01", "storm"), ("storm.off", "system", "storm")]
        state = store.storm(s)
    assert (state.on, state.by, state.trigger) == (False, "system", "auto")
