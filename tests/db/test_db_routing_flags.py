"""Routing flags the ACD gets from the database: important customers and repeat fault callers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from cti.db.acd_store import DbAcdStore
from hotline.demo_seed import demo_accounts, seed_demo
from tests.support.orders import fault_report

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def test_important_customer_and_repeat_fault_caller_are_flagged(
        session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as s:
        seed_demo(s, now=NOW, n_accounts=300)
        demo = {d["purpose"]: d for d in demo_accounts(s, NOW)}
    store = DbAcdStore(session_factory)

    def flags(caller: str, account: str | None) -> frozenset[str]:
        # the flags the ACD routes with come with the call's pop, looked up as it queues
        return asyncio.run(store.lookup("1764210600.9", caller, account)).flags

    important, plain = demo["important_customer"]["account_no"], demo["no_outage"]["account_no"]
    assert flags("13000000001", important) == {"important"}
    assert flags("13000000001", plain) == frozenset()
    with session_factory.begin() as s:
        fault_report(s, NOW, plain, caller="13000000002")
    # the same caller again, by number alone, or anyone calling about that account
    assert flags("13000000002", None) == {"repeat_fault"}
    assert flags("+8613000000002", None) == {"repeat_fault"}
    assert flags("13000000009", plain) == {"repeat_fault"}
    assert flags("13000000009", None) == frozenset()


def test_the_acds_agent_states_open_record_and_close_the_agents_own_session(
        session_factory: sessionmaker[Session]) -> None:
    """DbAcdStore.agent_state: the first state opens the agent's session at its seat, later
    ones are recorded on it, logged_out closes it; another agent's session is left alone."""
    from acd.model import Agent, AgentState
    from cti.db.agents import create_agent, open_sessions

    with session_factory.begin() as s:
        for agent_id in ("A901", "A902"):
            create_agent(s, agent_id=agent_id, name=agent_id, role="agent",
                         password="95598-test", skills={"general": 3}, now=NOW)
    store = DbAcdStore(session_factory)
    at = NOW.timestamp()

    def state(agent_id: str, seat: str, st: AgentState, reason: str = "",
              call_id: str | None = None, dt: float = 0.0) -> None:
        asyncio.run(store.agent_state(Agent(agent_id, seat=seat, state=st, reason=reason,
                                            state_since=at + dt, call_id=call_id), "acd"))

    def sessions() -> dict[str, tuple[str, str, str | None, str | None]]:
        with session_factory.begin() as s:
            return {x.agent_id: (x.seat, x.state, x.reason, x.call_id) for x in open_sessions(s)}

    state("A901", "seat01", AgentState.NOT_READY, "login")
    state("A902", "seat02", AgentState.READY, dt=1)
    assert sessions() == {"A901": ("seat01", "not_ready", "login", None),
                          "A902": ("seat02", "ready", None, None)}
    state("A901", "seat01", AgentState.ON_CALL, call_id="1764210600.7", dt=2)
    assert sessions()["A901"] == ("seat01", "on_call", None, "1764210600.7")
    state("A901", "seat01", AgentState.LOGGED_OUT, dt=3)
    assert sessions() == {"A902": ("seat02", "ready", None, None)}
    state("A901", "seat03", AgentState.READY, dt=4)  # back, at another seat: a new session
    assert sessions()["A901"] == ("seat03", "ready", None, None)
