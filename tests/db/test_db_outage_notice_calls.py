"""Planned-outage notice calls in the database (callcenter/outage_notices.py over
cti/db/notice_calls.py) on SQLite and PostgreSQL: a planned outage makes one job per affected
important customer's phone and lead, nobody else's; passes again (each tick, a restart) change
nothing; a moved outage moves its scheduled calls, a closed one cancels them; the unique index
refuses a second job for one notice; the console's list; the dial's prompt files."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from callcenter.outage_notices import OutageNotices
from callcenter.outage_service import OutageService, Who
from cti.db import notice_calls
from cti.db import outages as outage_store
from cti.db.models_outbound import OutboundJob
from hotline import stack
from outages.scope import Cause

if TYPE_CHECKING:
    from conftest import World

H = timedelta(hours=1)
D = timedelta(days=1)
SUP = Who("sup01", "supervisor")


def _jobs(sf: sessionmaker[Session]) -> list[tuple[str | None, int | None, str, str]]:
    with sf() as s:
        rows = s.scalars(select(OutboundJob).order_by(OutboundJob.account_no,
                                                      OutboundJob.lead_days)).all()
        return [(r.account_no, r.lead_days, r.state, r.purpose) for r in rows]


def _town(world: World, session: Session) -> dict[str, str | int]:
    area, elsewhere = world.area(), world.area()
    f1 = world.feeder(area)
    hospital = world.account(area, f1, important_kind="hospital", phones=["13800000001"])
    life = world.account(area, important_kind="life_support",
                         phones=["13800000002", "+86 138 0000 0003"])
    ordinary = world.account(area, f1, phones=["13800000004"])
    far = world.account(elsewhere, important_kind="hospital", phones=["13800000005"])
    session.commit()
    return {"area": area.id, "hospital": hospital.account_no, "life": life.account_no,
            "ordinary": ordinary.account_no, "far": far.account_no}


def _publish(svc: OutageService, area: int, start: datetime, now: datetime) -> int:
    return svc.publish(outage_store.NoticeDraft(
        Cause.PLANNED, start, areas=frozenset({area}), schedule_end_at=start + 9 * H,
        agent_text="10kV线路计划检修"), SUP, now)


def test_a_planned_outage_calls_exactly_its_important_customers_once_per_lead(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    t = _town(world, session)
    svc = OutageService(session_factory)
    notices = OutageNotices(session_factory, (7, 1))
    oid = _publish(svc, int(t["area"]), now + 3 * D, now)

    assert notices.sync(now) == {"created": 6, "moved": 0, "cancelled": 0}
    jobs = _jobs(session_factory)
    # the hospital's phone and both of the life-support customer's, at 7 and 1 days; the
    # ordinary customer in the area and the hospital elsewhere: no job at all
    assert sorted((a, d) for a, d, _, _ in jobs) == sorted(
        [(t["hospital"], 1), (t["hospital"], 7)] + [(t["life"], 1), (t["life"], 7)] * 2)
    assert {p for *_, p in jobs} == {"outage_notice"}
    # again, and as after a restart (a new scheduler): nothing more
    assert notices.sync(now + H) == {"created": 0, "moved": 0, "cancelled": 0}
    assert OutageNotices(session_factory, (7, 1)).sync(now + H)["created"] == 0
    assert len(_jobs(session_factory)) == 6

    with session_factory() as s:
        calls = notice_calls.calls_of_outage(s, oid)
        job = s.scalars(select(OutboundJob).where(OutboundJob.lead_days == 7)).first()
        assert job is not None
        # the 7-day call is due now (the outage is 3 days ahead) and over once the 1-day is due
        assert job.not_before is not None and job.not_before <= now
        assert job.expires_at == now + 2 * D
        # a second job for the same notice is refused by the database itself
        s.add(OutboundJob(purpose="outage_notice", number=job.number, state="scheduled",
                          attempts=0, priority=0, lang="zh", outage_id=oid,
                          account_no=job.account_no, lead_days=7, created_at=now,
                          created_by="test", updated_at=now))
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()
    assert {c["account_no"] for c in calls} == {t["hospital"], t["life"]}
    assert {(c["state"], c["heard"], c["repeats"]) for c in calls} == {("scheduled", None, None)}


def test_a_moved_outage_moves_its_calls_and_a_closed_one_cancels_them(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    t = _town(world, session)
    svc = OutageService(session_factory)
    notices = OutageNotices(session_factory, (7, 1))
    start = now + 3 * D
    oid = _publish(svc, int(t["area"]), start, now)
    notices.sync(now)
    later = start + 2 * D
    svc.update(oid, outage_store.NoticeDraft(
        Cause.PLANNED, later, areas=frozenset({int(t["area"])}), schedule_end_at=later + 9 * H),
        SUP, now)
    assert notices.sync(now)["moved"] == 6
    with session_factory() as s:
        assert {j.expires_at for j in s.scalars(select(OutboundJob))} == {later - D, later}
    svc.close(oid, SUP, now + H)   # cancelled before it began
    assert notices.sync(now + H)["cancelled"] == 6
    assert {state for _, _, state, _ in _jobs(session_factory)} == {"cancelled"}


def test_no_call_about_an_outage_begun_a_fault_or_one_awaiting_confirmation(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    t = _town(world, session)
    svc = OutageService(session_factory)
    _publish(svc, int(t["area"]), now - H, now)   # planned, in progress
    svc.publish(outage_store.NoticeDraft(Cause.FAULT, now, areas=frozenset({int(t["area"])}),
                                         expected_restore_at=now + H), SUP, now)
    assert OutageNotices(session_factory, (7, 1)).sync(now)["created"] == 0
    assert _jobs(session_factory) == []


def test_the_dial_says_the_notice_in_the_customers_language(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    t = _town(world, session)
    oid = _publish(OutageService(session_factory), int(t["area"]), now + 3 * D, now)
    notices = OutageNotices(session_factory, (1,))
    notices.sync(now)
    with session_factory() as s:
        job_id = s.scalars(select(OutboundJob.id).where(OutboundJob.outage_id == oid)).first()
    assert job_id is not None
    lang, ids = notices.prompt_ids(job_id, now)
    assert lang == "zh" and ids[0] == "notice.intro" and "notice.cause.planned" in ids
    assert "outage.account_tail" in ids and ids[-1] == "notice.prepare"


def test_the_ctis_task_schedules_on_a_change_and_cancels_on_the_next(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    """The daemon's task (OutageNotices.run): a pass at start, and one whenever the notices'
    revision moved (a close cancels the calls waiting within a check period)."""
    t = _town(world, session)
    svc = OutageService(session_factory)
    oid = _publish(svc, int(t["area"]), now + 3 * D, now)
    notices = OutageNotices(session_factory, (7, 1))

    async def until(what: str, cond: Callable[[], bool]) -> None:
        # the project's condition wait, with its deadline, off the loop the task runs on
        await asyncio.to_thread(stack.wait_until, cond, 10, what)

    async def scenario() -> None:
        task = asyncio.create_task(notices.run(lambda: now), name="outage-notices")
        try:
            await until("scheduled", lambda: len(_jobs(session_factory)) == 6)
            await asyncio.to_thread(svc.close, oid, SUP, now)
            await until("cancelled", lambda: {s for _, _, s, _ in _jobs(session_factory)}
                        == {"cancelled"})
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(scenario())
    assert {s for _, _, s, _ in _jobs(session_factory)} == {"cancelled"}
