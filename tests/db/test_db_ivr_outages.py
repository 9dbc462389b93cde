"""The IVR's outage lookups and its deflected call record on a real database (SQLite and
PostgreSQL), through DbIvrServices: outage-first by the caller's number (hostile caller ids
included), the outage menu by account (台区 scopes and categories), and the call record's
'deflected' outcome and outage_ids, written once however often the journal replays it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from callcenter.ivr_services import DbIvrServices
from callcenter.journal import DatabaseUnavailable, DurableWrites, FileJournal
from callcenter.outage_service import OutageService, Who
from cti.db import outages as store
from cti.db.models import Call
from ivr import say
from outages.announce import Announcement
from outages.scope import Cause

if TYPE_CHECKING:
    from conftest import World

H = timedelta(hours=1)
S = timedelta(seconds=1)
TZ = ZoneInfo("Asia/Shanghai")
SUP = Who("sup01", "supervisor")
PHONE = "13800000001"
TWO_PLACES = "13800000002"
TA = "泉城路1号台区"  # World.account's 台区


def _setup(world: World, session: Session, sf: sessionmaker[Session], now: datetime
           ) -> dict[str, object]:
    area, other = world.area(), world.area()
    feeder = world.feeder(area)
    mine = world.account(area, feeder, phones=[PHONE, TWO_PLACES])
    elsewhere = world.account(other, phones=[TWO_PLACES])
    quiet = world.account(world.area(), phones=["13800000003"])
    session.commit()
    svc = OutageService(sf)
    fault = svc.publish(store.NoticeDraft(Cause.FAULT, now - H, feeders=frozenset({feeder.id}),
                                          expected_restore_at=now + 2 * H,
                                          agent_text="10kV 1号线 跳闸, 树障"), SUP, now)
    storm = svc.publish(store.NoticeDraft(Cause.STORM_REPAIR, now - H,
                                          transformer_areas=frozenset({(other.id, TA)})),
                        SUP, now)
    return {"svc": svc, "mine": mine.account_no, "elsewhere": elsewhere.account_no,
            "quiet": quiet.account_no, "fault": fault, "storm": storm}


def _ask(ivr: DbIvrServices, kind: str, now: datetime, lang: str = "zh", **args: object
         ) -> object:
    return asyncio.run(ivr.query(kind, {**args, "lang": lang, "tz": TZ, "now": now}))


@pytest.mark.parametrize("caller", [PHONE, "+86 138-0000-0001", "008613800000001",
                                    "013800000001"],
                         ids=["plain", "plus86-dashes", "0086", "trunk-0"])
def test_outage_first_finds_the_caller_however_the_carrier_writes_the_number(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime, caller: str) -> None:
    w = _setup(world, session, session_factory, now)
    ivr = DbIvrServices(session_factory, outages=w["svc"])  # type: ignore[arg-type]

    told = _ask(ivr, "caller_outages", now, caller=caller)

    assert isinstance(told, Announcement)
    assert told.notice_ids == (w["fault"],)
    assert told.accounts == (w["mine"],)
    restore = (now + 2 * H).astimezone(TZ)
    assert told.prompts == ("outage.here", "outage.cause.fault", "outage.restore_at",
                            *say.say_datetime(restore, "zh", now=now.astimezone(TZ)),
                            "outage.hangup_hint")
    assert "跳闸" not in " ".join(told.prompts)  # the agents' text is never spoken


@pytest.mark.parametrize("caller", ["", "anonymous", "13800000009", "'; DROP TABLE calls; --",
                                    "1380000000%", "13800000001' OR '1'='1", "\x00\ufffd",
                                    "9" * 400],
                         ids=["empty", "anonymous", "unknown", "sql", "like", "sql-or",
                              "control", "long"])
def test_an_anonymous_unknown_or_hostile_caller_id_gets_the_plain_menu(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime, caller: str) -> None:
    w = _setup(world, session, session_factory, now)
    ivr = DbIvrServices(session_factory, outages=w["svc"])  # type: ignore[arg-type]

    assert _ask(ivr, "caller_outages", now, caller=caller) is None
    with session_factory() as s:  # and the tables are all still there
        assert s.scalar(select(func.count()).select_from(Call)) == 0


def test_a_number_on_accounts_in_two_places_hears_each_in_english(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    w = _setup(world, session, session_factory, now)
    ivr = DbIvrServices(session_factory, outages=w["svc"])  # type: ignore[arg-type]

    told = _ask(ivr, "caller_outages", now, lang="en", caller=TWO_PLACES)

    assert isinstance(told, Announcement)
    assert set(told.notice_ids) == {w["fault"], w["storm"]}
    assert told.prompts.count("outage.account_tail") == 2
    assert "outage.cause.storm_repair" in told.prompts
    assert all(".zh." not in p for p in told.prompts)


def test_a_caller_without_an_outage_gets_none(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    w = _setup(world, session, session_factory, now)
    ivr = DbIvrServices(session_factory, outages=w["svc"])  # type: ignore[arg-type]

    assert _ask(ivr, "caller_outages", now, caller="13800000003") is None


def test_the_outage_menu_hears_a_published_台区_notice_without_the_hang_up_hint(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    w = _setup(world, session, session_factory, now)
    ivr = DbIvrServices(session_factory)  # its own OutageService: the same notices

    told = _ask(ivr, "account_outages", now, account=w["elsewhere"])
    nothing = _ask(ivr, "account_outages", now, account=w["quiet"])
    unknown = _ask(ivr, "account_outages", now, account="3799999999")

    assert isinstance(told, Announcement)
    assert told.notice_ids == (w["storm"],)
    assert told.prompts == ("outage.here", "outage.cause.storm_repair",
                            "outage.restore_unknown")
    assert nothing == Announcement((), (), ())
    assert unknown is None  # the flow says the account is not found and asks again


def test_the_outage_menu_also_tells_planned_work_of_the_coming_week_outage_first_does_not(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    w = _setup(world, session, session_factory, now)
    svc: OutageService = w["svc"]  # type: ignore[assignment]
    ivr = DbIvrServices(session_factory, outages=svc)
    with session_factory() as s:
        place = store.place_of_account(s, str(w["quiet"]))
    assert place is not None
    soon = now + 72 * H
    planned = svc.publish(store.NoticeDraft(Cause.PLANNED, soon, areas=frozenset({place.area_id}),
                                            schedule_end_at=soon + 8 * H), SUP, now)
    svc.publish(store.NoticeDraft(Cause.PLANNED, now + 8 * 24 * H,  # past the 7-day window
                                  areas=frozenset({place.area_id}),
                                  schedule_end_at=now + 8 * 24 * H + 8 * H), SUP, now)

    told = _ask(ivr, "account_outages", now, account=w["quiet"])

    local = now.astimezone(TZ)
    assert isinstance(told, Announcement)
    assert told.notice_ids == (planned,)
    assert told.prompts == (
        "ivr.outage_planned", "ivr.outage_start",
        *say.say_datetime(soon.astimezone(TZ), "zh", now=local),
        "ivr.outage_restore", *say.say_datetime((soon + 8 * H).astimezone(TZ), "zh", now=local))
    # not yet an outage: nothing before the menu
    assert _ask(ivr, "caller_outages", now, caller="13800000003") is None


def test_a_notice_published_after_a_lookup_is_heard_by_the_next_one(
        world: World, session: Session, session_factory: sessionmaker[Session],
        now: datetime) -> None:
    w = _setup(world, session, session_factory, now)
    svc: OutageService = w["svc"]  # type: ignore[assignment]
    ivr = DbIvrServices(session_factory, outages=svc)
    assert _ask(ivr, "caller_outages", now, caller="13800000003") is None  # the index is cached
    with session_factory() as s:
        place = store.place_of_account(s, str(w["quiet"]))
    assert place is not None

    oid = svc.publish(store.NoticeDraft(Cause.UPSTREAM, now, areas=frozenset({place.area_id}),
                                        expected_restore_at=now + H), SUP, now)

    told = _ask(ivr, "caller_outages", now, caller="13800000003")
    assert isinstance(told, Announcement) and told.notice_ids == (oid,)
    svc.close(oid, SUP, now + S)
    assert _ask(ivr, "caller_outages", now + 2 * S, caller="13800000003") is None


# ------------------------------------------------------------------------- the call record


async def _deflected(ivr: DbIvrServices, call_id: str, now: datetime, ids: list[int]) -> None:
    await ivr.call_started(call_id=call_id, uniqueid=call_id, caller=PHONE, dnis="95598",
                           now=now)
    await ivr.ivr_finished(call_id=call_id, outcome="deflected",
                           path=[{"node": "outage_first_say", "said": "caller_notice"}],
                           lang="zh", account=None, skill=None, priority=None,
                           now=now + 9 * S, outage_ids=ids)


def _call(sf: sessionmaker[Session], call_id: str) -> Call:
    with sf() as s:
        return s.scalars(select(Call).where(Call.call_id == call_id)).one()


def test_a_deflected_call_is_recorded_with_the_notices_it_heard(
        session_factory: sessionmaker[Session], now: datetime) -> None:
    ivr = DbIvrServices(session_factory)

    asyncio.run(_deflected(ivr, "1764000001.1", now, [3, 7]))

    call = _call(session_factory, "1764000001.1")
    assert (call.outcome, call.outage_ids) == ("deflected", [3, 7])
    assert call.ended_at == now + 9 * S


def test_a_transferred_call_keeps_the_notices_it_heard_and_a_plain_one_none(
        session_factory: sessionmaker[Session], now: datetime) -> None:
    ivr = DbIvrServices(session_factory)

    async def calls() -> None:
        for call_id, ids in (("1764000001.2", [7]), ("1764000001.3", [])):
            await ivr.call_started(call_id=call_id, uniqueid=call_id, caller=PHONE,
                                   dnis="95598", now=now)
            await ivr.ivr_finished(call_id=call_id, outcome="transfer", path=[], lang="zh",
                                   account=None, skill="general", priority=0, now=now + S,
                                   outage_ids=ids)
    asyncio.run(calls())

    assert _call(session_factory, "1764000001.2").outage_ids == [7]
    assert _call(session_factory, "1764000001.3").outage_ids is None
    assert _call(session_factory, "1764000001.2").outcome == "transfer"


class _Db:
    """The real session factory, or an unreachable database while `down`."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.down = False

    def begin(self) -> object:
        if self.down:
            raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
        return self.sessions.begin()


def test_a_deflected_call_journalled_in_an_outage_replays_once_however_often(
        session_factory: sessionmaker[Session], now: datetime, tmp_path: Path) -> None:
    db = _Db(session_factory)
    durable = DurableWrites(db, FileJournal(tmp_path / "j.jsonl"))  # type: ignore[arg-type]
    ivr = DbIvrServices(session_factory, durable=durable)
    db.down = True
    asyncio.run(_deflected(ivr, "1764000001.4", now, [5]))
    entries = durable.journal.pending()
    assert len(entries) == 2
    db.down = False

    assert durable.replay_once()
    for e in entries:  # the CTI died before its done marks: everything again
        durable.journal.append(e)
    again = DurableWrites(db, FileJournal(tmp_path / "j.jsonl"))  # type: ignore[arg-type]
    DbIvrServices(session_factory, durable=again)
    assert again.replay_once()

    call = _call(session_factory, "1764000001.4")
    assert (call.outcome, call.outage_ids, call.ended_at) == ("deflected", [5], now + 9 * S)
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Call)) == 1
    durable.close()
    again.close()


def test_outage_first_fails_at_once_while_the_database_is_away(
        session_factory: sessionmaker[Session], now: datetime, tmp_path: Path) -> None:
    """The flow then goes straight to the menu (on_error): no silence for the caller."""
    db = _Db(session_factory)
    durable = DurableWrites(db, FileJournal(tmp_path / "j.jsonl"))  # type: ignore[arg-type]
    ivr = DbIvrServices(session_factory, durable=durable)
    db.down = True
    asyncio.run(ivr.call_started(call_id="1764000001.5", uniqueid="u", caller=PHONE,
                                 dnis="95598", now=now))  # a write meets the outage

    with pytest.raises(DatabaseUnavailable):
        _ask(ivr, "caller_outages", now, caller=PHONE)
    durable.close()
