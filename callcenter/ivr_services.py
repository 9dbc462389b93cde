"""The IVR's port to the database: lookups, fault orders and the call record, off the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.calendar import Calendar
from callcenter.journal import DatabaseUnavailable, DurableWrites
from callcenter.outage_service import OutageService
from cti.db import calendars, callers
from cti.db import calls as call_records
from cti.db import ivr_queries as q
from cti.db import outages as outage_store
from cti.db import outbound as outbound_store
from cti.db.models import Call, WorkOrder
from ivr import say
from outages.announce import Announcement, announcement
from outages.scope import Notice, PlaceGroup
from workorders import service as workorders
from workorders.lifecycle import SlaPolicy

log = logging.getLogger(__name__)

# the outbound job an after-hours callback request leaves (cti.db.outbound): due when the skill
# opens, kept `callback_hours` after that
CALLBACK_PURPOSE = "callback"


def _iso(now: datetime) -> str:
    return now.astimezone(UTC).isoformat()


def _when(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _tz(args: Mapping[str, Any]) -> tzinfo | None:
    tz = args.get("tz")
    return tz if isinstance(tz, tzinfo) else None


HANGUP_HINT = "outage.hangup_hint"
_NO_NOTICE = Announcement(prompts=(), notice_ids=(), accounts=())


def _planned_ahead(s: Session, account_no: str, now: datetime) -> list[Notice]:
    """Scheduled work on the account's place that starts within the notice window (planned
    outages are announced 7 days ahead, DOMAIN.md): told in the outage menu, which the caller
    chose, never before the menu. A read of the open notices, only for this menu."""
    place = outage_store.place_of_account(s, account_no)
    if place is None:
        return []
    until = now + q.PLANNED_NOTICE_WINDOW
    return sorted((n for n in outage_store.load_notices(s)
                   if n.info.scheduled and not n.awaiting_confirmation
                   and now < n.start_at <= until and n.scope.covers(place)),
                  key=lambda n: (n.start_at, n.id))


def _say_planned(n: Notice, lang: str, now: datetime, tz: tzinfo | None) -> list[str]:
    """"Planned outage in your area, starting <when>, power back <when>" (the IVR's own
    planned-outage sentences, ivr.yaml)."""
    def when(t: datetime) -> list[str]:
        return say.say_datetime(t.astimezone(tz) if tz else t, lang,
                                now=now.astimezone(tz) if tz else now)
    out = ["ivr.outage_planned", "ivr.outage_start", *when(n.start_at)]
    if n.restore_at is not None:
        out += ["ivr.outage_restore", *when(n.restore_at)]
    return out


def _call_start(s: Session, d: dict[str, Any]) -> None:
    call_records.record_call_start(s, call_id=d["call_id"], uniqueid=d["uniqueid"],
                                   caller_number=d["caller"], dnis=d["dnis"],
                                   now=_when(d["now"]))


def _outage_ids(d: dict[str, Any]) -> list[int] | None:
    """The notices the caller was told (None: none, or a journal entry from before them)."""
    ids = [int(i) for i in d.get("outage_ids") or ()]
    return ids or None


def _ivr_outcome(s: Session, d: dict[str, Any]) -> None:
    """Write the IVR path and outcome. A transferred call goes on, so it is not ended here.
    Idempotent (a journal replay may apply it twice): the same values again."""
    call_id, outcome = d["call_id"], d["outcome"]
    if outcome == "transfer":
        call = s.execute(select(Call).where(Call.call_id == call_id)
                         .with_for_update()).scalar_one_or_none()
        if call is None:
            log.warning("IVR outcome for unknown call %s", call_id)
            return
        call.ivr_path = list(d["path"])
        call.outcome, call.language = outcome, d["lang"]
        call.account_no, call.skill, call.priority = d["account"], d["skill"], d["priority"]
        call.outage_ids = _outage_ids(d)
        return
    call = s.execute(select(Call).where(Call.call_id == call_id)).scalar_one_or_none()
    if call is not None:
        call.ivr_path = list(d["path"])
    call_records.record_call_end(s, call_id, outcome=outcome, now=_when(d["now"]),
                                 language=d["lang"], account_no=d["account"],
                                 skill=d["skill"], priority=d["priority"],
                                 outage_ids=_outage_ids(d))


class DbIvrServices:
    """Each method is one unit of work in its own session, run in a worker thread.

    SQLAlchemy sessions are synchronous; running them in threads keeps one slow query from
    stalling every other caller's prompts on the event loop. With `durable` (the daemon's),
    lookups fail at once while the database is away (the flow apologises and transfers), and
    the call record and fault reports go to the journal (callcenter/journal.py) instead.
    """

    def __init__(self, sessions: sessionmaker[Session],
                 sla_minutes: Mapping[str, int] = q.DEFAULT_SLA_MINUTES,
                 policy: SlaPolicy | None = None,
                 durable: DurableWrites | None = None,
                 outages: OutageService | None = None) -> None:
        self.sessions = sessions
        # outage notices (issue 12): outage-first by caller number, the outage menu by account;
        # the daemon shares its OutageService (one index cache), others get their own
        self.outages = outages if outages is not None else OutageService(sessions)
        self.sla_minutes = dict(sla_minutes)
        self.policy = policy or SlaPolicy(arrival_minutes=MappingProxyType(self.sla_minutes))
        self.durable = durable
        if durable is not None:
            durable.register("call_start", _call_start)
            durable.register("ivr_outcome", _ivr_outcome)
            durable.register("workorder", self._fault_order)

    async def query(self, kind: str, args: dict[str, Any]) -> Any:
        if kind == "create_workorder" and self.durable is not None:
            now = args.get("now") or datetime.now(UTC)
            data = {"caller": str(args.get("caller") or "") or "anonymous",
                    "account": args.get("account"), "call_id": args.get("call_id"),
                    "now": _iso(now)}
            applied, order = await self.durable.run_write(
                "workorder", f"{args.get('call_id')}:workorder", data)
            if applied:
                return order
            # journalled: its number comes when the database is back (numbers are the
            # database's day counter, so none can be promised now); the flow says so
            return q.WorkOrderInfo(number="", sla_due_at=None, type="fault_repair",
                                   status="journalled")
        if self.durable is not None:
            return await self.durable.run_read(lambda s: self._lookup(s, kind, args))
        return await asyncio.to_thread(self._query, kind, args)

    def _query(self, kind: str, args: dict[str, Any]) -> Any:
        with self.sessions.begin() as s:
            if kind == "create_workorder":
                return self._fault_order(s, {
                    "caller": str(args.get("caller") or "") or "anonymous",
                    "account": args.get("account"), "call_id": args.get("call_id"),
                    "now": args.get("now") or datetime.now(UTC)})
            return self._lookup(s, kind, args)

    def _lookup(self, s: Session, kind: str, args: dict[str, Any]) -> Any:
        now = args.get("now") or datetime.now(UTC)
        if kind == "bill":
            return q.bill_info(s, str(args["account"]))
        if kind == "outages":
            return q.outages_for_account(s, str(args["account"]), now)
        if kind == "caller_outages":
            return self._caller_outages(s, args, now)
        if kind == "account_outages":
            return self._account_outages(s, args, now)
        if kind == "accounts_for_caller":
            return q.accounts_for_phone(s, str(args.get("caller") or "")) or None
        if kind == "create_workorder":
            raise DatabaseUnavailable("create_workorder is a write")  # never as a lookup
        raise ValueError(f"unknown IVR query {kind!r}")

    def _caller_outages(self, s: Session, args: dict[str, Any], now: datetime
                        ) -> Announcement | None:
        """Outage-first: what the caller's accounts' notices say, in their language; None (the
        plain menu) for an anonymous or unknown number, or when no notice covers them."""
        phone = q.normalize_phone(str(args.get("caller") or ""))
        if not phone:  # anonymous, or no digit at all: nothing to look up
            return None
        _places, groups = self.outages.for_caller(s, phone, now)
        return announcement(groups, str(args.get("lang") or "zh"), now, _tz(args))

    def _account_outages(self, s: Session, args: dict[str, Any], now: datetime
                         ) -> Announcement | None:
        """The outage menu: the notices covering the keyed account, as outage-first would say
        them without the hang-up hint (the menu after them says what to press), then the
        planned work announced for the coming days; an empty announcement when there is
        neither; None when the account does not exist."""
        account = str(args.get("account") or "")
        lang, tz = str(args.get("lang") or "zh"), _tz(args)
        notices = self.outages.for_account(s, account, now)
        if notices is None:
            return None
        said = announcement([PlaceGroup((account,), notices)], lang, now, tz)
        prompts = list(said.prompts if said is not None else ())
        if prompts[-1:] == [HANGUP_HINT]:
            prompts.pop()
        ids = list(said.notice_ids if said is not None else ())
        for n in _planned_ahead(s, account, now):
            prompts += _say_planned(n, lang, now, tz)
            ids.append(n.id)
        return Announcement(tuple(prompts), tuple(ids), (account,)) if ids else _NO_NOTICE

    def _fault_order(self, s: Session, d: dict[str, Any]) -> q.WorkOrderInfo:
        """The IVR's fault report, once per call: a journal replay, or a write that met the
        outage late and committed after all, finds the call's order and creates none."""
        call_id = d.get("call_id")
        if call_id:
            found = s.execute(select(WorkOrder).where(
                WorkOrder.call_id == call_id, WorkOrder.channel == "ivr",
                WorkOrder.type == "fault_repair").order_by(WorkOrder.id).limit(1)
            ).scalar_one_or_none()
            if found is not None:
                return self._order_info(s, found, _when(d["now"]))
        # through the work-order service: SLA clocks; a report from inside a known outage is
        # linked into it as a child of its master order (no new master), one in an area that
        # already has an open master order within the window is linked to that (子单), and
        # every report feeds incident detection (workorders.service.create)
        now = _when(d["now"])
        order = workorders.create(s, workorders.NewOrder(
            type="fault_repair", description=workorders.IVR_FAULT_DESCRIPTION,
            caller_number=d["caller"], account_no=d.get("account"), call_id=call_id,
            channel="ivr"), workorders.IVR, now, self.policy, outages=self.outages)
        return self._order_info(s, order, now)

    def _order_info(self, s: Session, order: WorkOrder, now: datetime) -> q.WorkOrderInfo:
        heard = (self.outages.heard_notice(s, order.outage_id, now)
                 if order.outage_id is not None else None)
        return q.WorkOrderInfo(number=order.number, sla_due_at=order.sla_due_at,
                               type=order.type, status=order.status, outage_id=order.outage_id,
                               in_outage=heard is not None,
                               restore_at=heard.restore_at if heard is not None else None)

    async def call_started(self, *, call_id: str, uniqueid: str, caller: str, dnis: str,
                           now: datetime) -> None:
        data = {"call_id": call_id, "uniqueid": uniqueid, "caller": caller, "dnis": dnis,
                "now": _iso(now)}
        if self.durable is not None:
            await self.durable.run_write("call_start", f"{call_id}:start", data)
            return

        def work() -> None:
            with self.sessions.begin() as s:
                _call_start(s, data)
        await asyncio.to_thread(work)

    async def caller_lists(self, caller: str) -> frozenset[str]:
        """The inbound lists the caller is on (cti.db.callers), read at every call: a change in
        the console is heard from the next call on."""
        return await asyncio.to_thread(callers.kinds_in, self.sessions, caller)

    async def calendars(self) -> Mapping[str, Calendar]:
        """The skills' service hours (cti.db.calendars), read at every transfer: a change in
        the console is heard from the next call on."""
        return await asyncio.to_thread(calendars.load, self.sessions)

    async def book_callback(self, *, call_id: str, caller: str, skill: str, at: datetime,
                            lang: str, valid_for: timedelta, now: datetime) -> int:
        """An after-hours callback: an outbound job for the caller's number, due when `skill`
        opens (`at`), kept for `valid_for` after. One open job per number (a second request is
        the first). Returns its id."""
        def work() -> int:
            with self.sessions.begin() as s:
                return outbound_store.schedule(
                    s, purpose=CALLBACK_PURPOSE, number=caller, lang=lang, now=now,
                    created_by=f"ivr:{skill}"[:64], not_before=at, expires_at=at + valid_for,
                    priority=1, skill=skill).job_id
        log.info("call %s: after-hours callback for %s at %s", call_id, skill, at.isoformat())
        return await asyncio.to_thread(work)

    async def ivr_finished(self, *, call_id: str, outcome: str, path: list[dict[str, Any]],
                           lang: str, account: str | None, skill: str | None,
                           priority: int | None, now: datetime,
                           outage_ids: Sequence[int] = ()) -> None:
        """Write the IVR path and outcome. A transferred call goes on, so it is not ended here."""
        data = {"call_id": call_id, "outcome": outcome, "path": list(path), "lang": lang,
                "account": account, "skill": skill, "priority": priority, "now": _iso(now),
                "outage_ids": [int(i) for i in outage_ids]}
        if self.durable is not None:
            await self.durable.run_write("ivr_outcome", f"{call_id}:ivr", data)
            return

        def work() -> None:
            with self.sessions.begin() as s:
                _ivr_outcome(s, data)
        await asyncio.to_thread(work)
