"""The desktop's data functions (cti/db/web_sessions.py, web_queries.py, web_audit.py) on
SQLite and PostgreSQL: each is one unit of work on a session factory, and what must be written
together (an action and its audit line) is."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from cti.db import reports, web_audit, web_queries, web_sessions
from cti.db.agents import AgentInfo, create_agent, record_call_answered, record_call_queued
from cti.db.calls import record_call_end, record_call_start, record_callback_requested, record_hold
from cti.db.login_limits import LoginPolicy
from cti.db.models_recordings import AuditLog
from cti.db.models_reports import ReportInterval
from cti.db.models_supervision import SupervisionSession
from cti.db.models_web import WebLoginAttempt, WebSession
from cti.db.recordings import RecordingFacts, RecordingQuery, index_recording
from cti.db.web_audit import AuditEntry

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
POLICY = LoginPolicy(free_failures=3, ip_free_failures=20, backoff_max_s=60, window_s=300)
IDLE = timedelta(minutes=30)
SHANGHAI = ZoneInfo("Asia/Shanghai")
Sessions = sessionmaker[Session]


def _entry(now: datetime, action: str = "x.y", **detail: object) -> AuditEntry:
    return AuditEntry(at=now, actor="S01", role="supervisor", action=action, target="A001",
                      allowed=True, client_ip="127.0.0.1", detail=dict(detail))


def _audit(sessions: Sessions) -> list[AuditLog]:
    with sessions() as s:
        return list(s.scalars(select(AuditLog).order_by(AuditLog.id)))


@pytest.fixture
def staff(session_factory: Sessions, now: datetime) -> Sessions:
    with session_factory.begin() as s:
        for agent_id, role in (("A001", "agent"), ("A002", "agent"), ("S01", "supervisor")):
            create_agent(s, agent_id=agent_id, name=f"name-{agent_id}", role=role,
                         password="pw-" + agent_id, skills={"general": 3},
                         now=now - timedelta(days=1), hasher=FAST)
    return session_factory


# ------------------------------------------------------------------------------ sessions


def _open(sessions: Sessions, now: datetime, user_id: str = "A001", hash_: str = "h1") -> str:
    return web_sessions.open_session(sessions, token_hash=hash_, user_id=user_id, role="agent",
                                     seat="seat01", lang="en", now=now,
                                     expires_at=now + timedelta(hours=8))


def test_a_session_is_found_touched_and_ended(staff: Sessions, now: datetime) -> None:
    assert _open(staff, now) == "name-A001"
    user = web_sessions.session_user(staff, "h1", lambda: now + timedelta(minutes=1),
                                     idle=IDLE, touch_every=timedelta(seconds=30))
    assert user == web_sessions.SessionUser(user_id="A001", role="agent", name="name-A001",
                                            seat="seat01", lang="en")
    with staff() as s:
        assert s.scalars(select(WebSession.last_seen)).one() == now + timedelta(minutes=1)
    # not touched: idle 29 min after the touch is still live, 31 min is not
    later = now + timedelta(minutes=30)
    assert web_sessions.session_user(staff, "h1", lambda: later, idle=IDLE,
                                     touch_every=None) is not None
    assert web_sessions.session_user(staff, "h1", lambda: later + timedelta(minutes=2),
                                     idle=IDLE, touch_every=None) is None
    assert web_sessions.session_user(staff, "nope", lambda: now, idle=IDLE,
                                     touch_every=None) is None
    assert web_sessions.end_session(staff, "h1", now + timedelta(minutes=2))
    assert not web_sessions.end_session(staff, "h1", now + timedelta(minutes=3))
    assert web_sessions.session_user(staff, "h1", lambda: now + timedelta(minutes=2),
                                     idle=IDLE, touch_every=None) is None


def test_a_session_ends_at_its_absolute_end(staff: Sessions, now: datetime) -> None:
    _open(staff, now)
    at_end = now + timedelta(hours=8)
    with staff.begin() as s:  # keep it from idling out
        s.scalars(select(WebSession)).one().last_seen = at_end - timedelta(minutes=1)
    assert web_sessions.session_user(staff, "h1", lambda: at_end, idle=IDLE,
                                     touch_every=None) is None


def test_ending_someones_sessions_writes_the_audit_line_with_it(staff: Sessions,
                                                                 now: datetime) -> None:
    _open(staff, now, hash_="h1")
    _open(staff, now, hash_="h2")
    _open(staff, now, user_id="A002", hash_="h3")
    assert web_sessions.end_sessions_of(staff, "A001", now, audit=_entry(now, "agent.logout",
                                                                         error=None)) == 2
    assert web_sessions.end_sessions_of(staff, "A001", now) == 0
    with staff() as s:
        open_ = s.scalars(select(WebSession.token_hash).where(WebSession.ended_at.is_(None)))
        assert list(open_) == ["h3"]
    [line] = _audit(staff)
    assert (line.actor, line.action, line.target, line.detail) == \
        ("S01", "agent.logout", "A001", {})


def test_logins_are_counted_recorded_and_limited(staff: Sessions, now: datetime) -> None:
    def attempt(password: str, at: datetime = now) -> AgentInfo | int | None:
        return web_sessions.attempt_login(staff, user_id="A001", password=password,
                                          client_ip="10.0.0.1", now=at, policy=POLICY)

    assert attempt("wrong") is None
    info = attempt("pw-A001")
    assert info is not None and not isinstance(info, int) and info.agent_id == "A001"
    assert [attempt("wrong") for _ in range(3)] == [None, None, None]
    wait = attempt("pw-A001")  # blocked: the right password does not get through
    assert isinstance(wait, int) and wait > 0
    with staff() as s:
        oks = list(s.scalars(select(WebLoginAttempt.ok).order_by(WebLoginAttempt.id)))
    assert oks == [False, True, False, False, False, False]


def test_login_housekeeping_drops_old_sessions_and_attempts(staff: Sessions,
                                                            now: datetime) -> None:
    old = now - timedelta(days=100)
    _open(staff, old, hash_="old")
    with staff.begin() as s:
        s.add(WebLoginAttempt(user_id="A001", client_ip="10.0.0.1", at=old, ok=True))
    _open(staff, now, hash_="new")
    web_sessions.attempt_login(staff, user_id="A002", password="pw-A002", client_ip="10.0.0.2",
                               now=now, policy=POLICY)
    with staff() as s:
        assert list(s.scalars(select(WebSession.token_hash))) == ["new"]
        assert s.scalar(select(func.count()).select_from(WebLoginAttempt)) == 1


# ---------------------------------------------------------------------------------- audit


def test_audit_lines_are_clipped_and_drop_empty_detail(session_factory: Sessions,
                                                       now: datetime) -> None:
    web_audit.record(session_factory, AuditEntry(
        at=now, actor="x" * 100, role="r" * 20, action="a" * 60, target="t" * 200,
        allowed=False, client_ip="i" * 80, detail={"keep": 1, "drop": None}))
    [line] = _audit(session_factory)
    assert (len(line.actor), len(line.role or ""), len(line.action), len(line.target or ""),
            len(line.client_ip or "")) == (64, 16, 48, 128, 64)
    assert line.allowed is False and line.detail == {"keep": 1}


# ---------------------------------------------------------------------------------- calls


@pytest.fixture
def calls(staff: Sessions, now: datetime) -> Sessions:
    """c1 answered by A001 in 10 s, c2 abandoned after 30 s, c3 still in the IVR, c0 of
    yesterday (local time) answered by A002."""
    with staff.begin() as s:
        for i, cid in enumerate(("c0", "c1", "c2", "c3")):
            start = now - timedelta(days=1) if cid == "c0" else now + timedelta(minutes=i)
            record_call_start(s, call_id=cid, uniqueid=cid, caller_number=f"1390000000{i}",
                              dnis="95598", now=start)
        record_call_queued(s, "c0", now=now - timedelta(days=1), skill="general")
        record_call_answered(s, "c0", agent_id="A002", seat="seat02",
                             now=now - timedelta(days=1) + timedelta(seconds=5))
        record_call_queued(s, "c1", now=now + timedelta(minutes=1), skill="general")
        record_call_answered(s, "c1", agent_id="A001", seat="seat01",
                             now=now + timedelta(minutes=1, seconds=10))
        record_call_queued(s, "c2", now=now + timedelta(minutes=2), skill="general")
        record_call_end(s, "c2", outcome="abandoned", now=now + timedelta(minutes=2, seconds=30))
    return staff


def test_call_records_filter_and_order(calls: Sessions, now: datetime) -> None:
    one = web_queries.call_record(calls, "c1")
    assert one is not None and (one.agent_id, one.seat, one.ivr_path) == ("A001", "seat01", [])
    assert web_queries.call_record(calls, "nope") is None
    assert sorted(web_queries.call_records_by_id(calls, ["c1", "c3", "nope"])) == ["c1", "c3"]

    def ids(**kw: object) -> list[str]:
        args: dict[str, object] = {"agent_id": None, "start": None, "end": None, "offset": 0,
                                   "limit": 100, **kw}
        return [c.call_id for c in web_queries.call_records(calls, **args)]  # type: ignore[arg-type]

    assert ids() == ["c3", "c2", "c1", "c0"]
    assert ids(agent_id="A001") == ["c1"]
    assert ids(start=now, end=now + timedelta(minutes=3)) == ["c2", "c1"]
    assert ids(offset=1, limit=2) == ["c2", "c1"]


def test_the_wallboards_today_counts_the_local_days_calls_as_the_reports_do(
        calls: Sessions, now: datetime) -> None:
    # c1 is answered and still talking: answered already, its talk (AHT) to come
    today = reports.today_live_in(calls, now + timedelta(minutes=2, seconds=45), tz=SHANGHAI,
                                  service_level_s=20.0)
    assert today.day == now.astimezone(SHANGHAI).date()
    f = today.center.figures()
    assert (f["offered"], f["answered"], f["abandoned"], f["service_level"]) == (2, 1, 1, 0.5)
    assert (f["talk_s"], f["aht_s"]) == (0.0, 0.0)
    with calls.begin() as s:
        record_call_end(s, "c1", outcome="transfer", now=now + timedelta(minutes=3))
    f = reports.today_live_in(calls, now + timedelta(minutes=4), tz=SHANGHAI).center.figures()
    assert (f["offered"], f["answered"], f["answered_in_sl"], f["abandoned"]) == (2, 1, 1, 1)
    assert (f["service_level"], f["answer_rate"], f["asa_s"]) == (0.5, 0.5, 10.0)
    f = reports.today_live_in(calls, now + timedelta(minutes=4), tz=SHANGHAI,
                              service_level_s=5.0).center.figures()
    assert f["answered_in_sl"] == 0
    # per skill, and the intervals from local midnight to now (the trend line)
    live = reports.today_live_in(calls, now + timedelta(minutes=4), tz=SHANGHAI)
    assert [r.key for r in live.skills] == ["general"]
    assert sum(r.sums["offered"] for r in live.intervals) == 2
    assert live.intervals[0].period.time() == datetime.min.time()
    assert live.intervals[-1].period <= now + timedelta(minutes=4) < (
        live.intervals[-1].period + reports.INTERVAL)


def test_the_wallboards_today_reads_the_counted_intervals_and_counts_only_the_rest(
        calls: Sessions, now: datetime) -> None:
    with calls.begin() as s:
        record_call_end(s, "c1", outcome="transfer", now=now + timedelta(minutes=3))
    later = now + timedelta(hours=2)
    raw = reports.today_live_in(calls, later, tz=SHANGHAI).center.sums
    # the aggregator counts the intervals up to an hour later; today then reads those from
    # report_intervals and counts only the raw rows after the mark, to the same figures
    reports.run_pending(calls, now + timedelta(hours=1), tz=SHANGHAI)
    assert reports.mark_in(calls) is not None
    with calls.begin() as s:  # a counted interval is read, not recounted: make it tell
        s.execute(update(ReportInterval).values(deflected=ReportInterval.deflected + 7))
    mixed = reports.today_live_in(calls, later, tz=SHANGHAI).center.sums
    rows = len(reports.today_live_in(calls, later, tz=SHANGHAI).intervals)
    assert rows >= 8
    assert {k: v for k, v in mixed.items() if k != "deflected"} == {
        k: v for k, v in raw.items() if k != "deflected"}
    assert mixed["deflected"] > raw["deflected"]


def test_the_wallboard_counts_a_callback_from_its_request_as_the_acd_does(
        calls: Sessions, now: datetime) -> None:
    """c3 waited 30 s, asked to be called back and hung up: from the request it is offered,
    a callback asked for after the SL (a miss, as the ACD counts it) and not abandoned; once
    an agent takes the callback it is connected, and when it ends the reports count it the
    same way, with its time on hold apart from its talk."""
    at = now + timedelta(minutes=3)
    with calls.begin() as s:
        record_call_queued(s, "c3", now=at, skill="general")
        record_callback_requested(s, "c3", now=at + timedelta(seconds=30))
    f = reports.today_live_in(calls, now + timedelta(minutes=5), tz=SHANGHAI).center.figures()
    assert (f["offered"], f["answered"], f["abandoned"]) == (3, 1, 1)
    assert (f["callbacks_requested"], f["callbacks_after_sl"], f["callbacks_connected"]) == (
        1, 1, 0)
    assert f["service_level"] == pytest.approx(1 / 3, abs=1e-4)  # c1 in SL, c2 and c3 missed
    with calls.begin() as s:
        record_call_answered(s, "c3", agent_id="A002", seat="seat02",
                             now=at + timedelta(minutes=5))
    f = reports.today_live_in(calls, now + timedelta(minutes=9), tz=SHANGHAI).center.figures()
    assert (f["callbacks_connected"], f["answered"], f["handled"]) == (1, 1, 2)
    with calls.begin() as s:
        record_hold(s, "c3", started_at=at + timedelta(minutes=6),
                    ended_at=at + timedelta(minutes=6, seconds=40))
        record_call_end(s, "c3", outcome="transfer", now=at + timedelta(minutes=8))
        record_call_end(s, "c1", outcome="transfer", now=at + timedelta(minutes=8))
    later = now + timedelta(hours=2)
    live = reports.today_live_in(calls, later, tz=SHANGHAI).center.figures()
    reports.run_pending(calls, later, tz=SHANGHAI)
    day = reports.workload_report_in(calls, later.astimezone(SHANGHAI).date(),
                                     later.astimezone(SHANGHAI).date(), tz=SHANGHAI,
                                     period="day", by="center")[0].figures()
    for f in (live, day):
        assert (f["offered"], f["callbacks_requested"], f["callbacks_connected"]) == (3, 1, 1)
        # c1: 590 s talking; c3: 180 s answered, 40 of them on hold
        assert (f["holds"], f["hold_s"], f["talk_s"]) == (1, 40.0, 590.0 + 140.0)
        assert f["aht_s"] == pytest.approx((f["talk_s"] + 40 + f["acw_s"]) / 2, abs=0.05)


def test_today_counts_the_callers_an_outage_notice_deflected(
        calls: Sessions, now: datetime) -> None:
    with calls.begin() as s:
        for cid, start in (("d1", now + timedelta(minutes=4)), ("d0", now - timedelta(days=1))):
            record_call_start(s, call_id=cid, uniqueid=cid, caller_number="13900000009",
                              dnis="95598", now=start)
            record_call_end(s, cid, outcome="deflected", now=start + timedelta(seconds=20))
    f = reports.today_live_in(calls, now + timedelta(minutes=5), tz=SHANGHAI).center.figures()
    # today's one, not yesterday's; never offered to an agent, so the rest is unchanged
    assert (f["deflected"], f["offered"], f["abandoned"]) == (1, 2, 1)


def test_the_screen_pop_in_its_own_unit(calls: Sessions, now: datetime) -> None:
    pop = web_queries.screen_pop(calls, call_id="c1", caller_number="13900000001",
                                 account_no=None, now=now)
    assert pop["call_id"] == "c1"


def test_agents(staff: Sessions) -> None:
    assert [a["agent_id"] for a in web_queries.list_agents(staff)] == ["A001", "A002", "S01"]
    info = web_queries.get_agent(staff, "S01")
    assert info is not None and info.role == "supervisor"
    assert web_queries.get_agent(staff, "nope") is None


# ----------------------------------------------------------------------------- recordings


def test_recordings_are_read_with_their_audit_line(staff: Sessions, now: datetime) -> None:
    calls = staff
    with calls.begin() as s:
        rec_id = index_recording(s, RecordingFacts(
            rel_path="20261127/100.1_100.2_seat01.wav", started_at=now, duration_s=30.0,
            size=480044, sha256="ab" * 32, indexed_by="event"), now).id
    ref = web_queries.recording_ref(calls, rec_id)
    assert ref is not None and (ref.seat, ref.kind, ref.deleted_at) == ("seat01", "agent", None)
    assert web_queries.recording_ref(calls, rec_id + 1) is None

    rows = web_queries.search_recordings(calls, RecordingQuery(limit=10),
                                         _entry(now, "recording.search", filters={}))
    assert [r["id"] for r in rows] == [rec_id]
    doc = web_queries.recording_doc(calls, rec_id, _entry(now, "recording.view", call_id="100.1"))
    assert doc is not None and doc["id"] == rec_id
    assert web_queries.recording_doc(calls, rec_id + 1, _entry(now, "recording.view")) is None
    assert [(a.action, a.detail) for a in _audit(calls)] == [
        ("recording.search", {"filters": {}, "results": 1}),
        ("recording.view", {"call_id": "100.1"})]


def test_a_supervision_refusal_is_on_record(staff: Sessions, now: datetime) -> None:
    web_queries.record_supervision_refusal(
        staff, session_id="s" * 32, supervisor_id="A001", role="agent", call_id="c1",
        agent_id=None, mode="listen", reason="forbidden", via="web", at=now)
    with staff() as s:
        row = s.scalars(select(SupervisionSession)).one()
    assert (row.outcome, row.refusal, row.via) == ("refused", "forbidden", "web")
    assert [a.action for a in _audit(staff)] == ["supervision.refused"]
