"""SupervisionService: a supervisor listens to, whispers to or barges into a live call.

The decisions are `recorder.supervision_policy`'s (pure); this module runs them:

- start: the ACD names the call's agent and seat; the supervisor's own phone (PJSIP/supNN) is
  Originated into the `hotline-spy` context with ChannelId `hotline-spy-<session>`, and the
  dialplan runs `ChanSpy(PJSIP/seatNN-,<options>)` once it answers;
- mode: Setvar the new options on that channel (for a ChanSpy the dialplan restarts), then the
  mode's key (4 listen, 5 whisper, 6 barge) received on it (PlayDTMF, Receive): the running
  ChanSpy switches without restarting, and Asterisk's DTMFEnd confirms it. A key from the
  supervisor's own keypad switches too, and is audited the same way;
- stop: Hangup of that channel.

The Originate is never re-sent (the AMI client refuses to retry them); a
start whose Originate got no answer stays `dialing` until an AMI event says what happened, or
its deadline hangs the channel up (a Hangup is safe to repeat). A spy channel that this CTI
does not know (a previous CTI's, or one whose Originate answer was lost) is hung up as soon as
it is seen: no one listens unaudited.

Every request, allowed or refused, is written to the database before anything is published or
done in Asterisk (the SupervisionAudit port; cti.db.recorder_store.DbSupervisionAudit in the
CTI); events go out through the notifier (MQTT `hotline/supervision/{session_id}`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from recorder import supervision_policy as sp
from recorder.ports import AmiActions, AuditTrail, SupervisionAudit, is_refusal
from recorder.supervision_policy import Actor, LiveCall, Mode, SessionState, SpySession

log = logging.getLogger(__name__)

INBOX_SIZE = 1000
TICK_S = 1.0


Ami = AmiActions  # the name this module used before the ports


class Bus(Protocol):
    """Where supervision events go (cti.notifier.Notifier: it owns the topic and the delivery)."""

    def supervision(self, session_id: str, doc: Mapping[str, Any]) -> None: ...


class CallDirectory(Protocol):
    """Live calls as the ACD knows them (callcenter.acd_service.AcdService fits via acd_calls)."""

    def live_call(self, call_id: str) -> LiveCall | None: ...


class SupervisionError(Exception):
    """A refused or impossible request; `reason` is a short code (see REASON_STATUS)."""

    def __init__(self, reason: str, session_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.session_id = session_id


# how the web API answers each reason (the MQTT reply carries the reason itself)
REASON_STATUS: Mapping[str, int] = {
    "forbidden": 403, "bad_mode": 422, "no_such_call": 404, "no_such_session": 404,
    "not_connected": 409, "no_phone": 409, "busy": 409, "self": 409, "not_answered": 409,
    "ended": 409, "pbx_unavailable": 409,
}


@dataclass
class AcdCalls:
    """CallDirectory over the running ACD: reads its published view, never the engine."""

    acd: Any  # callcenter.acd_service.AcdService

    def live_call(self, call_id: str) -> LiveCall | None:
        view = self.acd.view  # the immutable view the ACD's writer published last
        call = view.calls.get(call_id)
        if call is None:
            return None
        agent = view.agents.get(call.offered_to) if call.offered_to else None
        return LiveCall(call_id, str(call.state), call.offered_to,
                        agent.seat if agent is not None and agent.seat else None)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else _utc(ts).isoformat(timespec="milliseconds")


def session_view(s: SpySession) -> dict[str, Any]:
    return {"session_id": s.session_id, "supervisor_id": s.supervisor_id,
            "endpoint": s.endpoint, "call_id": s.call_id, "agent_id": s.agent_id,
            "seat": s.seat, "mode": str(s.mode), "state": str(s.state),
            "requested_at": _iso(s.requested_at), "answered_at": _iso(s.answered_at),
            "ended_at": _iso(s.ended_at), "end_reason": s.end_reason}


class SupervisionService:
    """One writer: requests and AMI events take `_lock`, so a session changes in one place."""

    def __init__(self, ami: AmiActions, bus: Bus, audit: SupervisionAudit,
                 calls: CallDirectory, endpoints: Iterable[str], *,
                 ring_timeout_s: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self.ami = ami
        self.bus = bus
        self.audit = audit
        self.calls = calls
        self.endpoints = frozenset(endpoints)
        self.ring_timeout_s = ring_timeout_s
        self.clock = clock
        self.live: dict[str, SpySession] = {}
        self.inbox: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue(INBOX_SIZE)
        self.dropped = 0
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------------- requests

    async def start(self, actor: Actor, call_id: str, mode: object, *, via: str
                    ) -> dict[str, Any]:
        """Ring the supervisor's phone to supervise call_id; the session's view. Raises
        SupervisionError (after auditing the refusal) when refused."""
        async with self._lock:
            now = self.clock()
            sid = uuid.uuid4().hex
            call = self.calls.live_call(str(call_id)) if isinstance(call_id, str) else None
            decision: sp.Allowed | sp.Refused = sp.decide_start(
                actor, call, mode, self.endpoints, self.live.values(), sid, now)
            ready = getattr(self.ami, "ready", None)
            if isinstance(decision, sp.Allowed) and ready is not None and not ready.is_set():
                # AMI is down: the Originate could not be sent (and is never queued for later)
                decision = sp.Refused("pbx_unavailable", decision.session.agent_id)
            if isinstance(decision, sp.Refused):
                await self._refused(actor, sid, call_id, decision.agent_id, mode,
                                    decision.reason, via, now)
                raise SupervisionError(decision.reason, sid)
            s = decision.session
            await self._db(lambda db: db.record_start(
                session_id=sid, supervisor_id=actor.user_id, role=actor.role,
                endpoint=s.endpoint, call_id=s.call_id, agent_id=s.agent_id, seat=s.seat,
                mode=str(s.mode), via=via, at=_utc(now)))
            self.live[sid] = s
            log.info("supervision %s: %s (%s) %s call %s of %s at %s via %s", sid,
                     actor.user_id, actor.role, s.mode, s.call_id, s.agent_id, s.seat, via)
            await self._run(s, sp.start(s))
            current = self.live.get(sid)
            if current is None:  # Asterisk refused the Originate: ended, on record
                raise SupervisionError("pbx_unavailable", sid)
            return session_view(current)

    async def set_mode(self, actor: Actor, session_id: str, mode: object) -> dict[str, Any]:
        async with self._lock:
            s = await self._controlled(actor, session_id, "mode")
            try:
                m = sp.parse_mode(mode)
            except ValueError:
                raise SupervisionError("bad_mode", session_id) from None
            return session_view(await self._event(sp.ModeRequested(session_id, m)) or s)

    async def stop(self, actor: Actor, session_id: str) -> dict[str, Any]:
        async with self._lock:
            s = await self._controlled(actor, session_id, "stop")
            return session_view(await self._event(sp.StopRequested(session_id)) or s)

    def get(self, session_id: str) -> SpySession | None:
        return self.live.get(session_id)

    async def _controlled(self, actor: Actor, session_id: str, action: str) -> SpySession:
        s = self.live.get(session_id)
        if s is None:
            why: str | None = ("forbidden" if actor.role not in sp.SUPERVISE_ROLES
                               else "no_such_session")
        else:
            why = sp.may_control(actor, s)
        if why is None and s is not None:
            return s
        assert why is not None
        if why == "forbidden":  # someone else's session, or an agent: on record
            log.warning("supervision refused (%s): %s (%s) tried to %s session %r", why,
                        actor.user_id, actor.role, action, session_id)
            now = self.clock()
            await self._db(lambda db: db.record_control_refusal(
                session_id=str(session_id), actor=actor.user_id, role=actor.role,
                action=action, reason=why, at=_utc(now)))
        raise SupervisionError(why, session_id)

    async def _refused(self, actor: Actor, sid: str, call_id: object, agent_id: str | None,
                       mode: object, reason: str, via: str, now: float) -> None:
        log.warning("supervision refused (%s): %s (%s) asked to %r call %r via %s", reason,
                    actor.user_id, actor.role, mode, call_id, via)
        await self._db(lambda db: db.record_refusal(
            session_id=sid, supervisor_id=actor.user_id, role=actor.role, call_id=call_id,
            agent_id=agent_id, mode=mode, reason=reason, via=via, at=_utc(now)))
        self.bus.supervision(sid, {
            "session_id": sid, "event": "refused", "at": _iso(now),
            "supervisor_id": actor.user_id, "call_id": str(call_id)[:64], "agent_id": agent_id,
            "seat": None, "mode": str(mode)[:16], "endpoint": None, "reason": reason})

    # --------------------------------------------------------------------------- events

    def on_ami_event(self, msg: Mapping[str, Any]) -> None:
        """Called for every AMI event (cheap filter, never blocks); work happens in run()."""
        name = msg.get("Event")
        if name not in ("ChanSpyStart", "ChanSpyStop", "UserEvent", "Hangup",
                        "OriginateResponse", "DTMFEnd"):
            return
        if name == "DTMFEnd" and not str(msg.get("Uniqueid", "")).startswith(
                sp.CHANNEL_ID_PREFIX):  # a caller's key in the IVR: not ours
            return
        if name == "UserEvent" and msg.get("UserEvent") != "HotlineSpy":
            return
        try:
            self.inbox.put_nowait(msg)
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("supervision inbox full: AMI event dropped (%d so far)", self.dropped)

    async def run(self) -> None:
        """The AMI events, for ever (a named task in the CTI's TaskGroup)."""
        while True:
            msg = await self.inbox.get()
            try:
                async with self._lock:
                    await self._ami_event(msg)
            except Exception:
                log.exception("supervision: AMI event not handled: %r", msg)

    async def ticker(self) -> None:
        """Ends sessions whose phone never answered and no event said so."""
        while True:
            await asyncio.sleep(TICK_S)
            try:
                async with self._lock:
                    now = self.clock()
                    for s in list(self.live.values()):
                        if s.state == SessionState.DIALING and \
                                now > s.requested_at + self.ring_timeout_s + 10:
                            log.warning("supervision %s: no answer and no event; ending it",
                                        s.session_id)
                            await self._event(sp.StopRequested(s.session_id), "no_answer")
            except Exception:
                log.exception("supervision tick failed")

    async def resync(self, ami: AmiActions) -> None:
        """After an AMI (re)connect: spy channels Asterisk has that we do not know are hung
        up; sessions whose channel is gone have ended."""
        listing = await ami.action({"Action": "CoreShowChannels"}, idempotent=True)
        present: set[str] = set()
        for ev in listing if isinstance(listing, list) else []:
            sid = sp.session_of_channel_id(str(ev.get("Uniqueid", "")))
            if sid is not None:
                present.add(sid)
        async with self._lock:
            for sid in present - set(self.live):
                log.warning("supervision: spy channel of unknown session %s; hanging up", sid)
                await self._hangup(sp.channel_id(sid))
            for sid, s in list(self.live.items()):
                if sid not in present and s.state == SessionState.ACTIVE:
                    await self._event(sp.ChannelGone(sid, "lost"))

    async def _ami_event(self, msg: Mapping[str, Any]) -> None:
        if msg.get("Event") == "Hangup":
            # the agent's leg of the supervised call (same Linkedid): the call is over. A
            # late Hangup of the seat's previous call has another Linkedid and ends nothing
            channel, linkedid = str(msg.get("Channel", "")), str(msg.get("Linkedid", ""))
            for s in list(self.live.values()):
                if s.state != SessionState.ENDED and channel.startswith(s.target) \
                        and linkedid in ("", s.call_id):
                    await self._event(sp.CallGone(s.call_id), session_id=s.session_id)
        ev = sp.translate(msg)
        if ev is None:
            return
        sid = ev.session_id  # type: ignore[union-attr]
        if sid not in self.live:
            if isinstance(ev, sp.Answered | sp.SpyStarted):
                log.warning("supervision: unknown spy session %s is listening; hanging up", sid)
                await self._hangup(sp.channel_id(sid))
            return
        await self._event(ev)

    async def _event(self, ev: sp.Event, end_reason: str | None = None, *,
                     session_id: str | None = None) -> SpySession | None:
        """Apply one event to its session; the session after it (None if unknown)."""
        sid = session_id or ev.session_id  # type: ignore[union-attr]
        s = self.live.get(sid)
        if s is None:
            return None
        try:
            nxt, effects = sp.step(s, ev, self.clock())
        except sp.Rejected as exc:
            raise SupervisionError(exc.reason, sid) from None
        if end_reason and nxt.state == SessionState.ENDED:
            nxt = replace(nxt, end_reason=end_reason)
            effects = [_with_session(e, nxt) for e in effects]
        self.live[sid] = nxt
        await self._run(nxt, effects)
        if nxt.state == SessionState.ENDED:
            self.live.pop(sid, None)
        return nxt

    # -------------------------------------------------------------------------- effects

    async def _run(self, s: SpySession, effects: list[sp.Effect]) -> None:
        # the audit rows first, in one unit of work: nothing happens unrecorded
        rows = [e for e in effects if isinstance(e, sp.AuditMode | sp.AuditEnd)]
        if rows:
            def write(db: AuditTrail) -> None:
                for e in rows:
                    if isinstance(e, sp.AuditMode):
                        db.record_mode(session_id=e.session.session_id, mode=str(e.mode),
                                       begin=e.begin, at=_utc(e.at), answered=e.begin)
                    else:
                        assert e.session.ended_at is not None
                        db.record_end(session_id=e.session.session_id,
                                      reason=e.session.end_reason or "ended",
                                      at=_utc(e.session.ended_at))
            await self._db(write)
        for e in effects:
            try:
                if isinstance(e, sp.Originate):
                    await self._originate(e.session)
                elif isinstance(e, sp.SwitchMode):
                    await self._switch(e.session, e.key)
                elif isinstance(e, sp.HangupSpy):
                    await self._hangup(e.session.channel)
                elif isinstance(e, sp.Announce):
                    self._announce(e.session, e.event)
            except Exception:
                log.exception("supervision %s: effect failed: %r", s.session_id, e)

    async def _originate(self, s: SpySession) -> None:
        ext = s.seat.removeprefix("seat")
        try:
            await self.ami.action({
                "Action": "Originate", "Channel": f"PJSIP/{s.endpoint}",
                "Context": sp.SPY_CONTEXT, "Exten": "s", "Priority": "1",
                "Timeout": str(int(self.ring_timeout_s * 1000)), "Async": "true",
                "ChannelId": s.channel, "CallerID": f'"{s.mode} {s.agent_id}" <{ext}>',
                "Variable": [f"SPY_SESSION={s.session_id}", f"SPY_TARGET={s.target}",
                             f"SPY_OPTS={s.options}", f"SPY_MODE={s.mode}"],
            }, idempotent=False)
        except Exception as exc:
            if is_refusal(exc):
                # Asterisk refused it outright: nothing rings
                log.error("supervision %s: Originate refused: %s", s.session_id, exc)
                await self._event(sp.ChannelGone(s.session_id, "failed"))
                raise
            # no answer or connection lost: it may ring all the same. Never re-sent; the
            # events (or the dialing deadline) settle it
            log.warning("supervision %s: Originate's answer lost (%s); waiting for events",
                        s.session_id, exc)

    async def _switch(self, s: SpySession, key: str | None) -> None:
        for var, value in (("SPY_OPTS", s.options), ("SPY_MODE", str(s.mode))):
            await self.ami.action({"Action": "Setvar", "Channel": s.channel, "Variable": var,
                                   "Value": value}, idempotent=True)
        if key is not None:
            # the key as if the supervisor's phone had sent it: the running ChanSpy reads it
            # and switches (its `d` option). Idempotent: the same key twice is the same mode
            await self.ami.action({"Action": "PlayDTMF", "Channel": s.channel, "Digit": key,
                                   "Duration": "100", "Receive": "yes"}, idempotent=True)

    async def _hangup(self, channel: str) -> None:
        try:
            await self.ami.action({"Action": "Hangup", "Channel": channel, "Cause": "16"},
                                  idempotent=True)
        except Exception as exc:
            if not is_refusal(exc):
                raise
            # already gone

    def _announce(self, s: SpySession, event: str) -> None:
        at = {"requested": s.requested_at, "started": s.answered_at,
              "ended": s.ended_at}.get(event) or self.clock()
        self.bus.supervision(s.session_id, {
            "session_id": s.session_id, "event": event, "at": _iso(at),
            "supervisor_id": s.supervisor_id, "call_id": s.call_id, "agent_id": s.agent_id,
            "seat": s.seat, "mode": str(s.mode), "endpoint": s.endpoint,
            "reason": s.end_reason})

    async def _db(self, work: Callable[[AuditTrail], Any]) -> None:
        def unit() -> None:
            with self.audit.transaction() as db:
                work(db)
        await asyncio.to_thread(unit)

    async def close_stale(self) -> int:
        """At startup: sessions a previous CTI left open end now (cti_restart)."""
        def unit() -> int:
            with self.audit.transaction() as db:
                return db.end_open_sessions(_utc(self.clock()))
        return await asyncio.to_thread(unit)


def _with_session(e: sp.Effect, s: SpySession) -> sp.Effect:
    return replace(e, session=s)  # type: ignore[type-var]


__all__ = ["AcdCalls", "REASON_STATUS", "SupervisionError",
           "SupervisionService", "Mode", "session_view"]
