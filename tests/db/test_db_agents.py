"""Agents: logins, one open session per agent and seat, state log, ACD snapshot, call columns."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

import cti.db.agents as agents_mod
from cti.db.agents import (
    PASSWORD_HASHER,
    AgentExists,
    AgentSessionInfo,
    AlreadyLoggedIn,
    NotLoggedIn,
    SeatTaken,
    UnknownAgent,
    close_session,
    create_agent,
    get_agent,
    list_agents,
    load_acd_snapshot,
    open_session,
    open_sessions,
    record_call_answered,
    record_call_queued,
    record_state,
    save_acd_snapshot,
    verify_login,
)
from cti.db.calls import record_call_start
from cti.db.models import Agent, AgentSession, AgentStateLog, Call
from cti.db.session import make_engine, make_session_factory

# The cheapest argon2id the library accepts: tests need the behaviour, not the cost.
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
S = timedelta(seconds=1)
SKILLS = {"general": 4, "billing": 3}


def _agent(session: Session, agent_id: str = "A001", *, role: str = "agent",
           password: str = "95598", name: str = "王芳", now: datetime | None = None,
           skills: dict[str, int] | None = None) -> None:
    create_agent(session, agent_id=agent_id, name=name, role=role, password=password,
                 skills=SKILLS if skills is None else skills, now=now, hasher=FAST)


def _log(session: Session) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in session.execute(
        select(AgentStateLog.agent_id, AgentStateLog.seat, AgentStateLog.state,
               AgentStateLog.reason, AgentStateLog.call_id, AgentStateLog.at,
               AgentStateLog.actor).order_by(AgentStateLog.id))]


# ------------------------------------------------------------------------------------ login


def test_login_ok_wrong_password_unknown_agent(session: Session, now: datetime) -> None:
    _agent(session, now=now)
    session.commit()
    info = verify_login(session, "A001", "95598", hasher=FAST)
    assert info is not None
    assert (info.agent_id, info.name, info.role, dict(info.skills), info.active,
            info.created_at) == ("A001", "王芳", "agent", SKILLS, True, now)
    assert verify_login(session, "A001", "95599", hasher=FAST) is None
    assert verify_login(session, "A001", "", hasher=FAST) is None
    assert verify_login(session, "A999", "95598", hasher=FAST) is None
    assert get_agent(session, "A001") == info
    assert get_agent(session, "A999") is None


def test_password_is_stored_as_argon2id(session: Session, now: datetime) -> None:
    create_agent(session, agent_id="A001", name="王芳", role="agent", password="95598",
                 skills=SKILLS, now=now)
    stored = session.scalars(select(Agent.password_hash)).one()
    assert stored.startswith("$argon2id$") and "95598" not in stored
    assert verify_login(session, "A001", "95598") is not None


def test_old_parameters_are_rehashed_on_login(session: Session, now: datetime) -> None:
    _agent(session, now=now)  # made with FAST, weaker than the default
    before = session.scalars(select(Agent.password_hash)).one()
    assert verify_login(session, "A001", "95599") is None
    assert session.scalars(select(Agent.password_hash)).one() == before
    assert verify_login(session, "A001", "95598") is not None
    after = session.scalars(select(Agent.password_hash)).one()
    assert after != before and not PASSWORD_HASHER.check_needs_rehash(after)
    assert verify_login(session, "A001", "95598") is not None


def test_unknown_agent_costs_a_verification(session: Session,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    verified: list[str] = []
    real_verify = PasswordHasher.verify

    def spy(self: PasswordHasher, hash: str, password: str) -> bool:
        verified.append(hash)
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    assert verify_login(session, "NOBODY", "95598", hasher=FAST) is None
    assert len(verified) == 1 and verified[0].startswith("$argon2id$")


def test_inactive_agent_cannot_log_in(session: Session, now: datetime) -> None:
    _agent(session, now=now)
    session.execute(update(Agent).values(active=False))
    assert verify_login(session, "A001", "95598", hasher=FAST) is None
    with pytest.raises(UnknownAgent):
        open_session(session, agent_id="A001", seat="seat01", now=now)


def test_create_agent_checks_its_input(session: Session, now: datetime) -> None:
    _agent(session, now=now)
    with pytest.raises(AgentExists):
        _agent(session, now=now)
    bad: list[dict[str, Any]] = [
        {"agent_id": "A 2"}, {"agent_id": ""}, {"role": "boss"}, {"password": ""},
        {"name": ""}, {"skills": {"general": 0}}, {"skills": {"general": 6}},
        {"skills": {"general": True}}, {"skills": {"general": 2.5}}, {"skills": {"": 3}},
    ]
    for kw in bad:
        args: dict[str, Any] = {"agent_id": "A002", "name": "李强", "role": "agent",
                                "password": "x", "skills": SKILLS, **kw}
        with pytest.raises(ValueError):
            create_agent(session, **args, now=now, hasher=FAST)
    assert session.scalars(select(Agent.agent_id)).all() == ["A001"]


def test_list_agents_is_json_ready_without_hashes(session: Session, now: datetime) -> None:
    _agent(session, "A002", name="李强", now=now)
    _agent(session, "S01", role="supervisor", name="张伟", now=now,
           skills={"general": 5, "repair": 4})
    open_session(session, agent_id="A002", seat="seat02", now=now)
    listed = list_agents(session)
    assert json.loads(json.dumps(listed)) == listed
    assert "hash" not in json.dumps(listed) and "argon2" not in json.dumps(listed)
    assert listed == [
        {"agent_id": "A002", "name": "李强", "role": "agent", "skills": SKILLS, "active": True,
         "created_at": now.isoformat(),
         "session": {"seat": "seat02", "login_at": now.isoformat(), "state": "not_ready",
                     "reason": "login", "state_since": now.isoformat(), "call_id": None}},
        {"agent_id": "S01", "name": "张伟", "role": "supervisor",
         "skills": {"general": 5, "repair": 4}, "active": True, "created_at": now.isoformat(),
         "session": None},
    ]


# --------------------------------------------------------------------------------- sessions


def test_one_open_session_per_agent_and_per_seat(session: Session, now: datetime) -> None:
    for agent_id in ("A001", "A002"):
        _agent(session, agent_id, now=now)
    info = open_session(session, agent_id="A001", seat="seat07", now=now)
    assert info == AgentSessionInfo(
        agent_id="A001", name="王芳", role="agent", skills=info.skills, seat="seat07",
        login_at=now, logout_at=None, state="not_ready", reason="login", state_since=now,
        call_id=None)
    assert dict(info.skills) == SKILLS
    with pytest.raises(SeatTaken) as taken:
        open_session(session, agent_id="A002", seat="seat07", now=now + S)
    assert (taken.value.seat, taken.value.agent_id) == ("seat07", "A001")
    with pytest.raises(AlreadyLoggedIn) as already:
        open_session(session, agent_id="A001", seat="seat08", now=now + S)
    assert already.value.seat == "seat07"
    with pytest.raises(AlreadyLoggedIn):
        open_session(session, agent_id="A001", seat="seat07", now=now + S)
    with pytest.raises(UnknownAgent):
        open_session(session, agent_id="A404", seat="seat09", now=now)

    # After the logout both the agent and the seat are free again, and history stays.
    assert close_session(session, "A001", now + 60 * S, "A001") is not None
    open_session(session, agent_id="A002", seat="seat07", now=now + 61 * S)
    open_session(session, agent_id="A001", seat="seat08", now=now + 62 * S)
    session.commit()
    assert session.scalars(select(AgentSession.seat).order_by(AgentSession.id)).all() == [
        "seat07", "seat07", "seat08"]
    assert [(s.agent_id, s.seat) for s in open_sessions(session)] == [
        ("A002", "seat07"), ("A001", "seat08")]


def test_partial_indexes_enforce_it_in_the_database(session: Session, now: datetime) -> None:
    # Below the Python checks: the constraint itself, as a racing second login would meet it.
    for agent_id in ("A001", "A002"):
        _agent(session, agent_id, now=now)
    row = {"login_at": now, "state": "ready", "state_since": now}
    session.execute(insert(AgentSession), [
        {**row, "agent_id": "A001", "seat": "seat01", "logout_at": now + S},
        {**row, "agent_id": "A001", "seat": "seat01", "logout_at": now + 2 * S},
        {**row, "agent_id": "A001", "seat": "seat01", "logout_at": None},
    ])
    for clash in ({"agent_id": "A001", "seat": "seat02"}, {"agent_id": "A002", "seat": "seat01"}):
        with pytest.raises(IntegrityError), session.begin_nested():
            session.execute(insert(AgentSession), [{**row, **clash, "logout_at": None}])
    with session.begin_nested():
        session.execute(insert(AgentSession), [
            {**row, "agent_id": "A002", "seat": "seat02", "logout_at": None}])


def _two_logins(factory: sessionmaker[Session], now: datetime,
                logins: list[tuple[str, str]]) -> list[object]:
    """Both logins start together; each holds its transaction a moment before committing, so
    the other one runs into it (on PostgreSQL, into the uncommitted row of the unique index)."""
    barrier = threading.Barrier(len(logins))

    def work(login: tuple[str, str]) -> object:
        agent_id, seat = login
        with factory() as s:
            barrier.wait()
            try:
                info = open_session(s, agent_id=agent_id, seat=seat, now=now)
            except (SeatTaken, AlreadyLoggedIn) as exc:
                return type(exc)
            time.sleep(0.2)
            s.commit()
            return info.agent_id, info.seat

    with ThreadPoolExecutor(len(logins)) as pool:
        return list(pool.map(work, logins))


def test_concurrent_logins_to_one_seat(session_factory: sessionmaker[Session],
                                       now: datetime) -> None:
    with session_factory() as s:
        for agent_id in ("A001", "A002"):
            _agent(s, agent_id, now=now)
        s.commit()
    results = _two_logins(session_factory, now, [("A001", "seat07"), ("A002", "seat07")])
    assert results.count(SeatTaken) == 1
    assert [r for r in results if r is not SeatTaken][0] in {("A001", "seat07"),
                                                              ("A002", "seat07")}
    with session_factory() as s:
        assert len(open_sessions(s)) == 1


def test_concurrent_logins_of_one_agent(session_factory: sessionmaker[Session],
                                        now: datetime) -> None:
    with session_factory() as s:
        _agent(s, "A001", now=now)
        s.commit()
    results = _two_logins(session_factory, now, [("A001", "seat07"), ("A001", "seat08")])
    assert results.count(AlreadyLoggedIn) == 1
    with session_factory() as s:
        assert [x.agent_id for x in open_sessions(s)] == ["A001"]


def test_losing_a_race_gives_the_domain_error(session: Session, now: datetime,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Force the path where the check passes and the unique index refuses the insert.
    for agent_id in ("A001", "A002"):
        _agent(session, agent_id, now=now)
    open_session(session, agent_id="A001", seat="seat07", now=now)
    real = agents_mod._raise_if_taken
    calls: list[str] = []

    def first_check_misses(s: Session, agent_id: str, seat: str) -> None:
        calls.append(seat)
        if len(calls) % 2 == 0:  # the check after the refused insert is the real one
            real(s, agent_id, seat)

    monkeypatch.setattr(agents_mod, "_raise_if_taken", first_check_misses)
    with pytest.raises(SeatTaken):
        open_session(session, agent_id="A002", seat="seat07", now=now + S)
    with pytest.raises(AlreadyLoggedIn):
        open_session(session, agent_id="A001", seat="seat09", now=now + S)
    assert len(calls) == 4
    # The transaction survived the refused inserts.
    session.commit()
    assert [(x.agent_id, x.seat) for x in open_sessions(session)] == [("A001", "seat07")]


# -------------------------------------------------------------------------------- state log


def test_state_log_appends_and_names_the_actor(session: Session, now: datetime) -> None:
    _agent(session, "A001", now=now)
    _agent(session, "S01", role="supervisor", name="张伟", now=now)
    open_session(session, agent_id="A001", seat="seat07", now=now)
    record_state(session, agent_id="A001", state="ready", reason=None, call_id=None,
                 now=now + S, actor="A001")
    record_state(session, agent_id="A001", state="reserved", reason=None, call_id="c1",
                 now=now + 2 * S, actor="acd")
    record_state(session, agent_id="A001", state="on_call", reason=None, call_id="c1",
                 now=now + 5 * S, actor="acd")
    # A repeat (Asterisk sends some events twice) changes and logs nothing.
    again = record_state(session, agent_id="A001", state="on_call", reason=None, call_id="c1",
                         now=now + 6 * S, actor="acd")
    assert again.state_since == now + 5 * S
    record_state(session, agent_id="A001", state="wrap_up", reason=None, call_id="c1",
                 now=now + 65 * S, actor="acd")
    # The supervisor forces the agent to a break, then logs the agent out.
    forced = record_state(session, agent_id="A001", state="not_ready", reason="break",
                          call_id=None, now=now + 70 * S, actor="S01")
    assert (forced.state, forced.reason, forced.state_since) == ("not_ready", "break",
                                                                 now + 70 * S)
    closed = close_session(session, "A001", now + 80 * S, "S01", reason="forced")
    assert closed is not None and closed.logout_at == now + 80 * S
    assert close_session(session, "A001", now + 81 * S, "S01") is None  # a repeat
    session.commit()
    session.expunge_all()
    assert _log(session) == [
        ("A001", "seat07", "not_ready", "login", None, now, "A001"),
        ("A001", "seat07", "ready", None, None, now + S, "A001"),
        ("A001", "seat07", "reserved", None, "c1", now + 2 * S, "acd"),
        ("A001", "seat07", "on_call", None, "c1", now + 5 * S, "acd"),
        ("A001", "seat07", "wrap_up", None, "c1", now + 65 * S, "acd"),
        ("A001", "seat07", "not_ready", "break", None, now + 70 * S, "S01"),
        ("A001", "seat07", "logged_out", "forced", None, now + 80 * S, "S01"),
    ]
    forced_changes = session.execute(
        select(AgentStateLog.state, AgentStateLog.actor)
        .where(AgentStateLog.actor != AgentStateLog.agent_id, AgentStateLog.actor != "acd")
    ).all()
    assert [tuple(r) for r in forced_changes] == [("not_ready", "S01"), ("logged_out", "S01")]


def test_state_changes_need_an_open_session(session: Session, now: datetime) -> None:
    _agent(session, now=now)
    with pytest.raises(NotLoggedIn):
        record_state(session, agent_id="A001", state="ready", reason=None, call_id=None,
                     now=now, actor="A001")
    open_session(session, agent_id="A001", seat="seat01", now=now)
    for state in ("logged_out", "busy", ""):
        with pytest.raises(ValueError):
            record_state(session, agent_id="A001", state=state, reason=None, call_id=None,
                         now=now, actor="A001")
    with pytest.raises(ValueError, match="naive"):
        record_state(session, agent_id="A001", state="ready", reason=None, call_id=None,
                     now=now.replace(tzinfo=None), actor="A001")
    # The ACD core says "" for no reason.
    info = record_state(session, agent_id="A001", state="ready", reason="", call_id=None,
                        now=now + S, actor="A001")
    assert info.reason is None


def test_open_sessions_after_a_restart(session_factory: sessionmaker[Session], db_url: str,
                                       now: datetime) -> None:
    with session_factory() as s:
        for n in range(1, 5):
            _agent(s, f"A00{n}", now=now)
        for n in range(1, 5):
            open_session(s, agent_id=f"A00{n}", seat=f"seat{n:02d}", now=now)
        record_state(s, agent_id="A001", state="on_call", reason=None, call_id="1764210000.9",
                     now=now + 30 * S, actor="acd")
        record_state(s, agent_id="A002", state="ready", reason=None, call_id=None,
                     now=now + 10 * S, actor="A002")
        record_state(s, agent_id="A003", state="not_ready", reason="lunch", call_id=None,
                     now=now + 20 * S, actor="A003")
        close_session(s, "A004", now + 40 * S, "A004")
        s.commit()

    # The CTI restarts: a new engine, nothing in memory.
    restarted: Engine = make_engine(db_url)
    try:
        with make_session_factory(restarted)() as s:
            reloaded = open_sessions(s)
    finally:
        restarted.dispose()
    assert [(x.agent_id, x.seat, x.state, x.reason, x.state_since, x.call_id, x.login_at,
             x.logout_at, dict(x.skills)) for x in reloaded] == [
        ("A001", "seat01", "on_call", None, now + 30 * S, "1764210000.9", now, None, SKILLS),
        ("A002", "seat02", "ready", None, now + 10 * S, None, now, None, SKILLS),
        ("A003", "seat03", "not_ready", "lunch", now + 20 * S, None, now, None, SKILLS),
    ]


def test_info_is_read_only(session: Session, now: datetime) -> None:
    _agent(session, now=now)
    info = open_session(session, agent_id="A001", seat="seat01", now=now)
    with pytest.raises(AttributeError):
        info.state = "ready"  # type: ignore[misc]
    with pytest.raises(TypeError):
        info.skills["repair"] = 5  # type: ignore[index]


# ----------------------------------------------------------------------------- ACD snapshot


def test_snapshot_round_trip_and_latest_wins(session_factory: sessionmaker[Session],
                                             now: datetime) -> None:
    data: dict[str, Any] = {
        "version": 1,
        "aht_s": {"general": 183.25, "repair": 240.0},
        "calls": [{"call_id": "1764210000.5", "skill": "repair", "enqueued_at": 1764210000.125,
                   "account": "3700000001", "flags": ["important"]}],
        "agents": [], "note": "泉阳市",
    }
    with session_factory() as s:
        assert load_acd_snapshot(s) is None
        assert save_acd_snapshot(s, data, now) is True
        s.commit()
    with session_factory() as s:
        assert load_acd_snapshot(s) == data
        newer = {**data, "calls": []}
        assert save_acd_snapshot(s, newer, now + 10 * S) is True
        # A late write from before must not undo the newer state.
        assert save_acd_snapshot(s, data, now + 5 * S) is False
        s.commit()
    with session_factory() as s:
        assert load_acd_snapshot(s) == newer
        with pytest.raises(ValueError):
            save_acd_snapshot(s, {"aht_s": {"general": float("nan")}}, now + 20 * S)
        with pytest.raises(TypeError):
            save_acd_snapshot(s, {"at": now}, now + 20 * S)
        assert load_acd_snapshot(s) == newer


# ------------------------------------------------------------------------------- call record


def _call(factory: sessionmaker[Session]) -> Call:
    with factory() as s:
        return s.scalars(select(Call)).one()


def test_call_queued_and_answered_are_idempotent(session_factory: sessionmaker[Session],
                                                  now: datetime) -> None:
    with session_factory() as s:
        record_call_start(s, call_id="c1", uniqueid="c1", caller_number="13800000001",
                          dnis="95598", now=now)
        s.commit()
    steps: list[Callable[[Session], None]] = [
        lambda s: record_call_queued(s, "c1", now=now + 20 * S, skill="repair"),
        # The restored ACD queues the call again: the original enqueue time stays.
        lambda s: record_call_queued(s, "c1", now=now + 90 * S, skill="general"),
        lambda s: record_call_answered(s, "c1", agent_id="A007", seat="seat07",
                                       now=now + 35 * S),
        lambda s: record_call_answered(s, "c1", agent_id="A008", seat="seat08",
                                       now=now + 40 * S),
        lambda s: record_call_queued(s, "unknown", now=now),
        lambda s: record_call_answered(s, "unknown", agent_id="A007", seat="seat07", now=now),
    ]
    for step in steps:
        with session_factory() as s:
            step(s)
            s.commit()
    c = _call(session_factory)
    assert (c.queued_at, c.skill, c.answered_at, c.agent_id, c.seat) == (
        now + 20 * S, "repair", now + 35 * S, "A007", "seat07")


def test_queued_keeps_the_ivr_skill(session: Session, now: datetime) -> None:
    session.add(Call(call_id="c2", uniqueid="c2", caller_number="1", dnis="95598",
                     started_at=now, skill="general", ivr_path=[]))
    record_call_queued(session, "c2", now=now, skill="repair")
    assert session.scalars(select(Call.skill)).one() == "general"


def test_queued_creates_the_record_the_ivr_never_wrote(session_factory: sessionmaker[Session],
                                                       now: datetime) -> None:
    """A caller whose IVR start write was lost (or whose IVR never ran) still gets exactly one
    record once queued: the fault harness found an answered call with none."""
    for at in (now, now + 5 * S):  # a restored ACD queues it again: still one record
        with session_factory.begin() as s:
            record_call_queued(s, "lost1", now=at, skill="general", caller="13900000001")
    with session_factory.begin() as s:
        record_call_answered(s, "lost1", agent_id="A007", seat="seat07", now=now + 9 * S)
    c = _call(session_factory)
    assert (c.call_id, c.caller_number, c.dnis, c.started_at, c.queued_at, c.skill,
            c.agent_id) == ("lost1", "13900000001", "", now, now, "general", "A007")
