"""The post-call survey on the call record (SQLite and PostgreSQL): offered, then scored, each
write idempotent (the first wins); the score's CHECK; the report per agent and per skill over a
window; and the survey service's writes through a database outage (journalled, replayed)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from callcenter.journal import DurableWrites, FileJournal
from callcenter.surveys import SurveyService
from cti.db.calls import record_call_start, record_survey
from cti.db.models import Agent, Call
from cti.db.surveys import survey_report
from tests.db.test_db_journal import Outage

S = timedelta(seconds=1)


def _calls(session: Session, now: datetime, *call_ids: str) -> None:
    for i, call_id in enumerate(call_ids):
        record_call_start(session, call_id=call_id, uniqueid=call_id,
                          caller_number=f"1380000{i:04d}", dnis="95598", now=now)


def _call(sf: sessionmaker[Session], call_id: str) -> Call:
    with sf() as s:
        return s.scalars(select(Call).where(Call.call_id == call_id)).one()


def test_offered_then_scored_and_the_first_write_wins(session_factory: sessionmaker[Session],
                                                      now: datetime) -> None:
    cid = "pbx1-1764210000.1"
    with session_factory.begin() as s:
        _calls(s, now, cid)
    with session_factory.begin() as s:
        assert record_survey(s, cid, at=now + 60 * S, agent_id="A001", skill="general")
    c = _call(session_factory, cid)
    assert (c.survey_at, c.survey_agent_id, c.survey_skill, c.satisfaction) == (
        now + 60 * S, "A001", "general", None)
    with session_factory.begin() as s:  # the offer again (a duplicate event): nothing changes
        assert not record_survey(s, cid, at=now + 61 * S, agent_id="A002", skill="repair")
    with session_factory.begin() as s:
        assert record_survey(s, cid, at=now + 70 * S, agent_id="A001", skill="general",
                             score=4)
    with session_factory.begin() as s:  # a replayed or repeated score keeps the first
        assert not record_survey(s, cid, at=now + 71 * S, agent_id="A001", skill="general",
                                 score=1)
    c = _call(session_factory, cid)
    assert (c.survey_at, c.survey_agent_id, c.survey_skill, c.satisfaction) == (
        now + 60 * S, "A001", "general", 4)


def test_a_score_without_its_offer_fills_it_in(session_factory: sessionmaker[Session],
                                               now: datetime) -> None:
    cid = "pbx1-1764210000.2"
    with session_factory.begin() as s:
        _calls(s, now, cid)
    with session_factory.begin() as s:
        assert record_survey(s, cid, at=now + 9 * S, agent_id=None, skill="repair", score=5)
        assert not record_survey(s, "pbx1-1764210000.99", at=now, agent_id="A001",
                                 skill="general", score=5)  # no such call: logged, no row
    c = _call(session_factory, cid)
    assert (c.survey_at, c.survey_agent_id, c.survey_skill, c.satisfaction) == (
        now + 9 * S, None, "repair", 5)
    with session_factory.begin() as s, pytest.raises(ValueError, match="score"):
        record_survey(s, cid, at=now, agent_id=None, skill="repair", score=6)


def test_the_database_refuses_a_score_out_of_range(session_factory: sessionmaker[Session],
                                                   now: datetime) -> None:
    cid = "pbx1-1764210000.3"
    with session_factory.begin() as s:
        _calls(s, now, cid)
    for bad in (0, 6):
        with pytest.raises(IntegrityError), session_factory.begin() as s:
            s.execute(update(Call).where(Call.call_id == cid).values(satisfaction=bad))


def _survey(s: Session, cid: str, at: datetime, agent: str | None, skill: str,
            score: int | None) -> None:
    record_survey(s, cid, at=at, agent_id=agent, skill=skill, score=score)


def test_the_report_per_agent_and_per_skill(session_factory: sessionmaker[Session],
                                            now: datetime) -> None:
    ids = [f"pbx1-1764210100.{i}" for i in range(1, 9)]
    with session_factory.begin() as s:
        _calls(s, now, *ids)
        s.add_all([Agent(agent_id=a, name=n, role="agent", password_hash="x", skills={},
                         created_at=now) for a, n in (("A001", "张三"), ("A002", "李四"))])
        _survey(s, ids[0], now, "A001", "general", 5)
        _survey(s, ids[1], now + S, "A001", "general", 4)
        _survey(s, ids[2], now + 2 * S, "A001", "repair", None)  # asked, no score
        _survey(s, ids[3], now + 3 * S, "A002", "repair", 1)
        _survey(s, ids[4], now + 4 * S, None, "general", 3)  # its agent was not known
        _survey(s, ids[5], now - S, "A002", "general", 5)  # before the window
        _survey(s, ids[6], now + 3600 * S, "A002", "general", 5)  # at its end: outside
        # ids[7]: no survey at all (the caller hung up first)
    r = survey_report_in(session_factory, now, now + 3600 * S)
    assert (r.total.offered, r.total.answered, r.total.average) == (5, 4, 3.25)
    assert r.total.scores == {1: 1, 2: 0, 3: 1, 4: 1, 5: 1}
    assert [(f.key, f.name, f.offered, f.answered, f.average) for f in r.by_agent] == [
        ("A001", "张三", 3, 2, 4.5), ("A002", "李四", 1, 1, 1.0), (None, None, 1, 1, 3.0)]
    assert [(f.key, f.offered, f.answered, f.average, f.scores[5]) for f in r.by_skill] == [
        ("general", 3, 3, 4.0, 1), ("repair", 2, 1, 1.0, 0)]
    empty = survey_report_in(session_factory, now + 7200 * S, now + 9000 * S)
    assert (empty.total.offered, empty.total.average, empty.by_agent, empty.by_skill) == (
        0, None, [], [])


def survey_report_in(sf: sessionmaker[Session], start: datetime, end: datetime) -> Any:
    with sf.begin() as s:
        return survey_report(s, start, end)


def _event(kind: str, call_id: str, **fields: str) -> dict[str, str]:
    return {"Event": "UserEvent", "UserEvent": kind, "Channel": "PJSIP/carrier-0000002a",
            "Context": "hotline-survey", "Linkedid": call_id, "Uniqueid": call_id,
            "Seat": "seat07", "Skill": "general", **fields}


def test_the_service_keeps_a_survey_answered_during_a_database_outage(
        session_factory: sessionmaker[Session], now: datetime, tmp_path: Path) -> None:
    cid, other = "pbx1-1764210200.1", "pbx1-1764210200.2"
    with session_factory.begin() as s:
        _calls(s, now, cid, other)
    db = Outage(session_factory)
    durable = DurableWrites(db, FileJournal(tmp_path / "j.jsonl"))  # type: ignore[arg-type]
    published: list[tuple[str, dict[str, Any]]] = []

    class Notifier:
        def call_event(self, call_id: str, event: str, **kw: Any) -> None:
            published.append((call_id, {"event": event, **kw}))

    times = iter([now.timestamp() + t for t in (10, 20, 30, 40)])
    svc = SurveyService(session_factory, agent_at={"seat07": "A007"}.get, durable=durable,
                        notifier=Notifier(), clock=lambda: next(times))

    async def scenario() -> None:
        task = asyncio.create_task(svc.consume())
        svc.offer(_event("HotlineSurveyOffered", cid))
        svc.offer({"Event": "Hangup", "Linkedid": cid})  # not the survey's: passes by
        await svc.drained()
        db.down = True
        svc.offer(_event("HotlineSurvey", cid, Key="3"))
        svc.offer(_event("HotlineSurveyOffered", other))
        svc.offer(_event("HotlineSurvey", other, Key="none"))
        await svc.drained()
        task.cancel()
    asyncio.run(scenario())
    # offered before the outage: on the record, and told; the rest waits in the journal
    assert _call(session_factory, cid).satisfaction is None
    assert [(c, d["event"], d["detail"]) for c, d in published] == [
        (cid, "survey", {"stage": "offered", "score": None})]
    assert len(durable.journal.pending()) == 3
    db.down = False
    assert durable.replay_once()
    c, o = _call(session_factory, cid), _call(session_factory, other)
    assert (c.survey_at, c.survey_agent_id, c.survey_skill, c.satisfaction) == (
        now + 10 * S, "A007", "general", 3)
    assert (o.survey_at, o.survey_agent_id, o.satisfaction) == (now + 30 * S, "A007", None)
    assert svc.counts == {"offered": 2, "answered": 1, "no_score": 1, "dropped": 0,
                          "recovered": 0}
    durable.close()


def test_recover_writes_what_the_dialplan_kept_while_no_cti_listened(
        session_factory: sessionmaker[Session], now: datetime) -> None:
    """AstDB's notes (hotline-rec/<UTC day>/sv/<call>): a survey answered while the CTI was
    down reaches the record, rated for the agent the record names; notes already written, out
    of shape or of unknown calls change nothing; a day without notes is no error."""
    from cti.db.agents import record_call_answered
    answered, offered, done = ("pbx1-1764210500.1", "pbx1-1764210500.2",
                               "pbx1-1764210500.3")
    with session_factory.begin() as s:
        _calls(s, now, answered, offered, done)
        for cid in (answered, offered, done):
            record_call_answered(s, cid, agent_id="A007", seat="seat07", now=now + 5 * S)
        record_survey(s, done, at=now + 50 * S, agent_id="A007", skill="general", score=5)
    day = now.strftime("%Y%m%d")
    t = int(now.timestamp()) + 60
    asked: list[dict[str, Any]] = []

    class Client:
        async def action(self, action: dict[str, Any], *, idempotent: bool) -> Any:
            asked.append(action)
            assert idempotent and action["Action"] == "DBGetTree"
            if not action["Family"].endswith(f"{day}/sv"):
                raise RuntimeError("Response: Error, Database entry not found")
            family = action["Family"]
            return [{"Response": "Success", "EventList": "start"}, *[
                {"Event": "DBGetTreeResponse", "Family": family, "Key": key, "Val": val}
                for key, val in ((answered, f"seat07|general|4|{t}"),
                                 (offered, f"seat07|general|-|{t}"),
                                 (done, f"seat07|general|1|{t}"),
                                 ("pbx1-1764219999.9", f"seat07|general|2|{t}"),  # no record
                                 ("x\r\nEvent: Forged", f"seat07|general|2|{t}"),
                                 (answered, "seat07|general|9|soon"))],
                {"Event": "DBGetTreeComplete"}]

    svc = SurveyService(session_factory, agent_at=lambda seat: None,
                        clock=lambda: now.timestamp())
    assert asyncio.run(svc.recover(Client())) == 3  # offered+answered, offered
    a, o, d = (_call(session_factory, c) for c in (answered, offered, done))
    assert (a.survey_at, a.survey_agent_id, a.survey_skill, a.satisfaction) == (
        datetime.fromtimestamp(t, now.tzinfo), "A007", "general", 4)
    assert (o.survey_agent_id, o.satisfaction) == ("A007", None) and o.survey_at is not None
    assert (d.survey_at, d.satisfaction) == (now + 50 * S, 5)  # the live write stands
    assert [q["Family"] for q in asked] == [
        f"hotline-rec/{(now - timedelta(days=1)).strftime('%Y%m%d')}/sv", f"hotline-rec/{day}/sv"]
    assert asyncio.run(svc.recover(Client())) == 0  # read again: nothing new
    assert svc.counts["recovered"] == 3
