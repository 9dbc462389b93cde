"""The ACD's Store and Directory ports over the database: a unit of work per call, in a thread."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from acd.model import Agent, AgentState
from callcenter.acd_service import CallData, Principal
from callcenter.journal import DurableWrites
from cti.db import agents as db_agents
from cti.db import callers
from cti.db import calls as db_calls
from cti.db.ivr_queries import normalize_phone
from cti.db.models import Account, Call, Customer, WorkOrder
from cti.db.screen_pop import CLOSED_WORK_ORDER_STATUSES, screen_pop

log = logging.getLogger(__name__)
T = TypeVar("T")


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _failed_pop(call_id: str, caller: str) -> dict[str, Any]:
    # a pop without data still tells the agent who is calling; never hold the ring
    return {"call_id": call_id, "caller_number": caller, "accounts": [],
            "error": "lookup_failed"}


def _flags(s: Session, caller: str, account: str | None) -> frozenset[str]:
    """Routing flags: an important customer (hospital, life support, government), a number on
    the VIP list, or a repeat caller whose fault-repair order is still open, goes ahead of the
    queue."""
    flags: set[str] = set()
    if caller and "vip" in callers.kinds_of(s, caller):
        flags.add("vip")
    if account:
        important = s.execute(
            select(Customer.important).join(Account)
            .where(Account.account_no == account)).scalar_one_or_none()
        if important:
            flags.add("important")
    matches = [WorkOrder.caller_number == normalize_phone(caller)] if caller else []
    if account:
        matches.append(WorkOrder.account_id.in_(
            select(Account.id).where(Account.account_no == account)))
    if matches and s.execute(
            select(WorkOrder.id).where(or_(*matches), WorkOrder.type == "fault_repair",
                                       WorkOrder.status.not_in(CLOSED_WORK_ORDER_STATUSES))
            .limit(1)).first():
        flags.add("repeat_fault")
    return frozenset(flags)


def _call_queued(s: Session, d: dict[str, Any]) -> None:
    db_agents.record_call_queued(s, d["call_id"], now=_dt(d["at"]), caller=d.get("caller"))


def _call_answered(s: Session, d: dict[str, Any]) -> None:
    db_agents.record_call_answered(s, d["call_id"], agent_id=d["agent_id"], seat=d["seat"],
                                   now=_dt(d["at"]))


def _call_handed_over(s: Session, d: dict[str, Any]) -> None:
    """A consult completed (咨询转接): the call record names the agent who has the call now;
    when it was first answered stays as it was."""
    call = s.execute(select(Call).where(Call.call_id == d["call_id"])
                     .with_for_update()).scalar_one_or_none()
    if call is None:
        log.warning("handed over: unknown call call_id=%s", d["call_id"])
        return
    call.agent_id, call.seat = d["agent_id"], d["seat"]


def _callback_requested(s: Session, d: dict[str, Any]) -> None:
    db_calls.record_callback_requested(s, d["call_id"], now=_dt(d["at"]))


def _call_placed(s: Session, d: dict[str, Any]) -> None:
    """An agent's click-to-call: its record from the click (a repeat is a no-op)."""
    db_calls.record_call_placed(s, call_id=d["call_id"], agent_id=d["agent_id"],
                                seat=d["seat"], number=d["number"], now=_dt(d["at"]))


def _call_ended(s: Session, d: dict[str, Any]) -> None:
    """The call record's end: the caller left the agent side (answered and done, or gave up
    waiting: outcome 'abandoned'). A repeat (a journal replay) finds it ended: a no-op."""
    call = s.execute(select(Call).where(Call.call_id == d["call_id"])
                     .with_for_update()).scalar_one_or_none()
    if call is None or call.ended_at is not None:
        return
    call.ended_at = _dt(d["at"])
    if d["abandoned"] and call.answered_at is None:
        call.outcome = "abandoned"
    elif call.outcome is None and call.dnis != db_calls.CLICK_TO_CALL_DNIS:
        # it reached the agent side with no IVR outcome: the IVR died before
        # writing one and the dialplan's fallback queued the caller
        call.outcome = "fallback"


# the call-record writes by kind: applied at once, or by the journal's replay
_APPLIERS: dict[str, Callable[[Session, dict[str, Any]], None]] = {
    "call_queued": _call_queued, "call_answered": _call_answered,
    "call_handed_over": _call_handed_over, "call_end": _call_ended,
    "call_placed": _call_placed, "callback_requested": _callback_requested}


class DbAcdStore:
    """With `durable` (the daemon's): the call-record writes go to the journal while the
    database is away (callcenter/journal.py), and lookups fail at once then."""

    def __init__(self, sessions: sessionmaker[Session],
                 durable: DurableWrites | None = None) -> None:
        self.sessions = sessions
        self.durable = durable
        if durable is not None:
            for kind, applier in _APPLIERS.items():
                durable.register(kind, applier)

    async def _write(self, kind: str, key: str, data: dict[str, Any]) -> None:
        if self.durable is not None:
            await self.durable.run_write(kind, key, data)
            return
        applier = _APPLIERS[kind]

        def work() -> None:
            with self.sessions.begin() as s:
                applier(s, data)
        await asyncio.to_thread(work)

    async def lookup(self, call_id: str, caller: str, account: str | None) -> CallData:
        """A queued call's routing flags and screen-pop, in one unit of work: fetched while the
        call waits, so the ring needs no query. Either part that fails degrades alone."""
        durable = self.durable
        if durable is not None and durable.down:  # at once: the caller waits on music
            log.warning("call %s: database unavailable; routed without its data", call_id)
            return CallData(frozenset(), _failed_pop(call_id, caller))

        def unit(fn: Callable[[Session], T]) -> T:
            if durable is not None:  # its short lock wait, and an outage seen is noted
                return durable.read(fn)
            with self.sessions.begin() as s:
                return fn(s)

        def work() -> CallData:
            try:
                flags = unit(lambda s: _flags(s, caller, account))
            except Exception:
                log.exception("routing flags for %s/%s failed; routing without them",
                              caller, account)
                flags = frozenset()
            try:
                pop = unit(lambda s: screen_pop(s, call_id=call_id, caller_number=caller,
                                                account_no=account, now=datetime.now(UTC)))
            except Exception:
                log.exception("screen-pop for %s failed", call_id)
                pop = _failed_pop(call_id, caller)
            return CallData(flags, pop)
        return await asyncio.to_thread(work)

    async def agent_state(self, agent: Agent, actor: str) -> None:
        def work() -> None:
            now = _dt(agent.state_since)
            with self.sessions.begin() as s:
                if agent.state == AgentState.LOGGED_OUT:
                    try:
                        db_agents.close_session(s, agent.agent_id, now, actor)
                    except db_agents.NotLoggedIn:
                        pass
                    return
                # the agent's own session row only: reading every open session here was a
                # tenth of the CTI's CPU per call under load (RELIABILITY.md, the profile)
                try:
                    record = db_agents.record_state
                    record(s, agent_id=agent.agent_id, state=str(agent.state),
                           reason=agent.reason, call_id=agent.call_id, now=now, actor=actor)
                except db_agents.NotLoggedIn:  # nothing was written: open it, then the state
                    db_agents.open_session(s, agent_id=agent.agent_id, seat=agent.seat, now=now)
                    record(s, agent_id=agent.agent_id, state=str(agent.state),
                           reason=agent.reason, call_id=agent.call_id, now=now, actor=actor)
        await asyncio.to_thread(work)

    async def call_queued(self, call_id: str, skill: str, at: float,
                          caller: str | None = None) -> None:
        await self._write("call_queued", f"{call_id}:queued",
                          {"call_id": call_id, "skill": skill, "at": at, "caller": caller})

    async def call_ended(self, call_id: str, at: float, abandoned: bool) -> None:
        """The call record's end (_call_ended)."""
        await self._write("call_end", f"{call_id}:end",
                          {"call_id": call_id, "at": at, "abandoned": abandoned})

    async def callback_requested(self, call_id: str, at: float) -> None:
        """The caller asked to be called back (_callback_requested)."""
        await self._write("callback_requested", f"{call_id}:callback",
                          {"call_id": call_id, "at": at})

    async def call_answered(self, call_id: str, agent_id: str, seat: str, at: float) -> None:
        await self._write("call_answered", f"{call_id}:answered",
                          {"call_id": call_id, "agent_id": agent_id, "seat": seat, "at": at})

    async def call_placed(self, call_id: str, agent_id: str, seat: str, number: str,
                          at: float) -> None:
        await self._write("call_placed", f"{call_id}:placed",
                          {"call_id": call_id, "agent_id": agent_id, "seat": seat,
                           "number": number, "at": at})

    async def call_handed_over(self, call_id: str, agent_id: str, seat: str,
                               at: float) -> None:
        await self._write("call_handed_over", f"{call_id}:handover:{agent_id}:{at}",
                          {"call_id": call_id, "agent_id": agent_id, "seat": seat, "at": at})

    async def save_snapshot(self, data: dict[str, Any]) -> None:
        def work() -> None:
            with self.sessions.begin() as s:
                db_agents.save_acd_snapshot(s, data, datetime.now(UTC))
        await asyncio.to_thread(work)

    async def load_snapshot(self) -> dict[str, Any] | None:
        def work() -> dict[str, Any] | None:
            with self.sessions.begin() as s:
                return db_agents.load_acd_snapshot(s)
        return await asyncio.to_thread(work)

    async def verify(self, user_id: str, password: str) -> Principal | None:
        def work() -> Principal | None:
            with self.sessions.begin() as s:
                info = db_agents.verify_login(s, user_id, password)
                if info is None or not info.active:
                    return None
                return Principal(info.agent_id, info.role, dict(info.skills))
        return await asyncio.to_thread(work)
