"""Feeds the ACD service from AMI (via the call tracker) and restores it after a restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from acd import engine as acd
from acd.model import AgentState, call_node
from callcenter.acd_service import AcdService
from config.settings import SEAT_REACHABILITY
from cti.ami import translate as t
from cti.ami.resync import callbacks_in_progress, rebuild, snapshot

log = logging.getLogger(__name__)

FAILOVER_CALL = "failover_call"  # not_ready reason: on a call the native failover queue connected
# not_ready reason: the seat was in use when an offer got to it (t.SeatBusy); the agent is
# ready again when the failover call there ends, or SEAT_BUSY_RETRY_S later (then a seat
# still busy bounces the next offer the same way: nothing rings a seat in use)
SEAT_BUSY = "seat_busy"
SEAT_BUSY_RETRY_S = 5.0
# An agent whose call died with the PBX (an Asterisk restart) is ready again at once, not in
# wrap-up: wrap-up is the after-call work of a conversation the agent finished; this one was
# cut, its record says why (calls.end_reason), and the callers it dropped ring again right
# after the restart, when every talking agent would otherwise sit in wrap-up at once.
PBX_CUT_AGENT_STATE = AgentState.READY

# [pbx] seat_reachability (config.settings.SEAT_REACHABILITY): who knows whether a seat's
# phone can be rung. "asterisk": its PJSIP registrations (contact and device states, and the
# failover queue's member states at a resync) take a dead phone's agent out of routing.
# "registrar": the phones register elsewhere (a SIP proxy such as Kamailio), so Asterisk sees
# no contact for any seat and says nothing about them: the feed drops those inputs, and only
# a ring-no-answer takes an agent out.
SEAT_REACHABILITY_ASTERISK, SEAT_REACHABILITY_REGISTRAR = SEAT_REACHABILITY


class AcdFeed:
    """AMI -> CoreEvents (idempotent, per call) -> ACD inputs, for one PBX node: the events and
    the resyncs of that node's AMI session (its own tracker). Several nodes mean one feed each
    over the one ACD service; a call is on the node its id names (acd.model.call_node, ids
    without a prefix on the service's default node). Runs in the CTI's event loop."""

    def __init__(self, service: AcdService,
                 pbx_cut: Callable[[str, float], Awaitable[list[str]]] | None = None, *,
                 node: str | None = None,
                 seat_reachability: str = SEAT_REACHABILITY_ASTERISK) -> None:
        if seat_reachability not in SEAT_REACHABILITY:
            raise ValueError(f"seat_reachability {seat_reachability!r}: one of "
                             f"{list(SEAT_REACHABILITY)}")
        self.service = service
        self.default_node = service.view.config.default_node
        # this feed's node (its Asterisk systemname); default: the service's default node
        self.node = self.default_node if node is None else node
        self.seat_reachability = seat_reachability
        # after an Asterisk restart: close the records of the calls that died with it, with
        # the reason (cti.db.calls.record_pbx_cut); (reason, lost_at) -> the call_ids marked
        self.pbx_cut = pbx_cut
        self.tracker = t.CallTracker()
        self.resyncs = 0
        # calls the native failover queue connected to a seat (the CTI was down or stale):
        # call_id -> the agent there, set not_ready('failover_call') until that call ends
        self.failover_talks: dict[str, str] = {}
        self.failed_over: set[str] = set()  # calls in (or through) the failover queue

    def owns(self, call_id: str) -> bool:
        """The call is on this feed's node."""
        return call_node(call_id, self.default_node) == self.node

    def _agent_at(self, seat: str) -> str | None:
        a = self.service.view.agent_at(seat)
        return a.agent_id if a is not None else None

    def core(self, ev: t.CoreEvent) -> None:
        s = self.service
        if isinstance(ev, t.CallQueued):
            if not self.owns(ev.call_id):
                log.error("call %s came from PBX node %s but its id names another node: that "
                          "Asterisk's systemname is not its [[pbx.nodes]] name", ev.call_id,
                          self.node or "-")
            s.call_waiting(ev.call_id, ev.channel, ev.caller, ev.skill or "general",
                           ev.priority, ev.account)
        elif isinstance(ev, t.AgentAnswered):
            agent = self._agent_at(ev.seat)
            if agent is None:
                return
            view = s.view  # the ACD as its writer last published it
            call = view.calls.get(ev.call_id)
            if call is None and ev.call_id not in self.failover_talks:
                # app_queue connected a caller the ACD let go of (failover): the agent is busy
                # with it, so take them out of routing until that call ends
                self.failover_talks[ev.call_id] = agent
                s.failover_call(ev.call_id, agent_id=agent, seat=ev.seat)
                # not only a ready agent: after a restart the agent may still be in the
                # wrap-up (or on the call) the snapshot holds, and would go ready at its end
                # and be offered a call at a seat that talks (the fault harness saw it);
                # the writer applies this after the resync's end of that older call
                if view.agents[agent].state not in (AgentState.NOT_READY,
                                                    AgentState.LOGGED_OUT):
                    s.submit(acd.AgentNotReady(agent_id=agent, reason=FAILOVER_CALL))
                return
            s.submit(acd.AgentAnswered(agent_id=agent, call_id=ev.call_id))
        elif isinstance(ev, t.SeatBusy):
            agent = self._agent_at(ev.seat)
            if agent is None:
                return
            # no ring-no-answer (the agent did nothing wrong, the seat was taken), and not
            # ready again at once either, or the ACD would offer the same seat the same call
            # straight away: one step takes the offer back (the caller in front of their
            # queue) and the agent out, as a supervisor's force does
            if s.view.agents[agent].state not in (AgentState.NOT_READY, AgentState.LOGGED_OUT):
                s.submit(acd.SupervisorForce(agent_id=agent, state=AgentState.NOT_READY,
                                             reason=SEAT_BUSY))
            log.warning("seat %s was in use when agent %s's call %s got there: not rung; the "
                        "agent is not_ready (%s) until it is free", ev.seat, agent, ev.call_id,
                        SEAT_BUSY)
            self._retry_seat_busy(agent)
        elif isinstance(ev, t.RingNoAnswer):
            agent = self._agent_at(ev.seat)
            if agent is not None:
                s.submit(acd.RingTimeout(agent_id=agent, call_id=ev.call_id))
        elif isinstance(ev, t.CallEnded):
            s.submit(acd.CallEnded(call_id=ev.call_id))
            agent = self.failover_talks.pop(ev.call_id, None)
            if agent is not None or ev.call_id in self.failed_over:
                # the ACD let go of it (or never had it): close its record here
                self.failed_over.discard(ev.call_id)
                s.failover_call(ev.call_id, ended=True)
            a = s.view.agents.get(agent or "")
            if a is not None and a.state == AgentState.NOT_READY \
                    and a.reason in (FAILOVER_CALL, SEAT_BUSY):
                s.submit(acd.AgentReady(agent_id=a.agent_id))  # back as the failover found them
        elif isinstance(ev, t.CallerAbandoned):
            s.submit(acd.CallAbandoned(call_id=ev.call_id))
            if ev.call_id in self.failed_over:  # left the failover queue unanswered
                self.failed_over.discard(ev.call_id)
                s.failover_call(ev.call_id, ended=True)
        elif isinstance(ev, t.CallFailedOver):
            # the native queue has the caller now; the ACD lets go of it, not abandoned
            self.failed_over.add(ev.call_id)
            s.failed_over(ev.call_id)
            s.notifier.call_event(ev.call_id, "failover", at=s.clock())
        elif isinstance(ev, t.CallbackRequested):
            s.submit(acd.CallbackRequested(call_id=ev.call_id, number=ev.number))
        elif isinstance(ev, t.SeatReachable):
            # the ACD keeps every seat's reachability, agent or not: it never offers a call at
            # a dead phone, and its agent is not_ready 'phone_offline' until it is back
            # (acd.agent_fsm); a ring under way ends by Dial's own answer or failure.
            # Not when the phones register elsewhere: Asterisk's word on them means nothing
            if self.seat_reachability == SEAT_REACHABILITY_ASTERISK:
                s.submit(acd.SeatReachability(seat=ev.seat, reachable=ev.reachable))
        # CallOffered needs no ACD input: the ACD chose the seat itself

    def _retry_seat_busy(self, agent: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a test driving the feed by hand): the failover call's end does it
        loop.call_later(SEAT_BUSY_RETRY_S, self._seat_busy_over, agent)

    def _seat_busy_over(self, agent: str) -> None:
        if agent in self.failover_talks.values():
            return  # still on the failover call: its end makes the agent ready
        a = self.service.view.agents.get(agent)
        if a is not None and a.state == AgentState.NOT_READY and a.reason == SEAT_BUSY:
            self.service.submit(acd.AgentReady(agent_id=agent))

    def callback_leg(self, msg: Any) -> bool:
        """The legs of a queued callback (dialplan context hotline-callback). They are channels
        the CTI Originated, with a Linkedid of their own, so the callback's events name the
        waiting call they serve (CallId) and bypass the per-Linkedid tracker."""
        if msg.get("Event") != "UserEvent":
            return False
        kind = msg.get("UserEvent", "")
        if kind not in ("HotlineCallbackAnswered", "HotlineCallbackFailed",
                        "HotlineCallbackEnded"):
            return False
        call_id, seat = msg.get("CallId", ""), msg.get("Seat", "")
        agent = self._agent_at(seat)
        s = self.service
        if not call_id:
            return True
        if kind == "HotlineCallbackAnswered" and agent is not None:
            s.submit(acd.AgentAnswered(agent_id=agent, call_id=call_id))
        elif kind == "HotlineCallbackFailed" and agent is not None:
            s.submit(acd.RingTimeout(agent_id=agent, call_id=call_id))
        elif kind == "HotlineCallbackEnded":
            s.submit(acd.CallEnded(call_id=call_id))
            s.notifier.call_event(call_id, "callback_ended", at=s.clock(), seat=seat,
                                  detail={"dial_status": msg.get("DialStatus", "")})
        return True

    async def consume(self, events: Any) -> None:
        """The AMI event stream, for ever."""
        async for msg in events:
            try:
                if self.callback_leg(msg):
                    continue
                for ev in self.tracker.feed(msg):
                    self.core(ev)
            except Exception:
                log.exception("AMI event not handled: %r", msg)

    async def _pbx_cut(self, reason: str, lost_at: float, live: set[str],
                       agents: Any) -> None:
        """The calls that died with Asterisk: their records closed with `reason`; each agent
        on one (talking, or in the wrap-up its end began) to PBX_CUT_AGENT_STATE, after the
        CallEnded the resync queued for it."""
        cut: set[str] = set()
        if self.pbx_cut is not None:
            try:
                cut = set(await self.pbx_cut(reason, lost_at))
            except Exception:
                log.exception("records of the calls cut by the PBX (%s) not written", reason)
        for a in agents.values():
            if a.call_id is None or a.call_id in live or not self.owns(a.call_id):
                continue  # a call on another node did not die with this one
            if PBX_CUT_AGENT_STATE is AgentState.READY and (
                    a.state == AgentState.ON_CALL
                    or (a.state == AgentState.WRAP_UP and a.call_id in cut)):
                self.service.submit(acd.AgentReady(agent_id=a.agent_id))
        log.warning("Asterisk restarted (%s): %d call records closed as cut", reason, len(cut))

    async def resync(self, client: Any) -> None:
        """After every AMI (re)connect to this feed's node: that node's truth first, then the
        ACD acts again on its calls. Only this node's calls are compared with the snapshot;
        the other nodes' calls are theirs to resync. After an Asterisk restart
        (client.pbx_restart) the calls it held are gone: their records get their end and
        reason, and their agents are ready again."""
        restart = getattr(client, "pbx_restart", None)
        if restart is not None:
            # a restarted Asterisk has no HOTLINE_HEARTBEAT, and its wait loop fails every
            # new caller over to the native queue until it has one: set it first
            try:
                await self.service.nodes.of(self.node).heartbeat()
            except Exception as exc:  # noqa: BLE001 - the heartbeat task sets it a second on
                log.warning("heartbeat not set at the resync of %s: %s", self.node or "-", exc)
        agents_before = self.service.view.agents
        snap = await snapshot(client)
        rebuilt = rebuild(snap)
        live = {ev.call_id for ev in rebuilt if hasattr(ev, "call_id")}
        # a caller in (or talking through) the native failover queue stays there: queuing them
        # in the ACD again would Redirect them out of a call with an agent
        failed_over = {ev.call_id for ev in rebuilt if isinstance(ev, t.CallFailedOver)}
        # every seat's reachability as Asterisk has it now, not only what changed since the
        # tracker last heard: the ACD may hold a picture from its snapshot, or from before a
        # lost input (it takes repeats as no-ops)
        for ev in rebuilt:
            if isinstance(ev, t.SeatReachable):
                self.core(ev)
        if self.seat_reachability == SEAT_REACHABILITY_REGISTRAR:
            # seats the ACD holds dead from before (a snapshot taken under "asterisk"): no
            # one here will ever say they are back
            for seat in self.service.view.snapshot.unreachable_seats:
                self.service.submit(acd.SeatReachability(seat=seat, reachable=True))
        for ev in self.tracker.resync(rebuilt):
            if isinstance(ev, t.CallQueued) and ev.call_id in failed_over \
                    or isinstance(ev, t.SeatReachable):
                continue
            self.core(ev)
        # a callback being connected lives on in channels of its own: the call goes on
        for call_id, (seat, answered) in callbacks_in_progress(snap).items():
            live.add(call_id)
            agent = self._agent_at(seat)
            call = self.service.view.calls.get(call_id)
            if answered and agent is not None and call is not None \
                    and str(call.state) == "offered":
                self.service.submit(acd.AgentAnswered(agent_id=agent, call_id=call_id))
        # this node's calls the ACD remembers (from its snapshot) that it no longer has
        for call_id, call in self.service.view.calls.items():
            if not self.owns(call_id):
                continue
            if call_id not in live and str(call.state) != "callback":  # callbacks hung up
                ended = str(call.state) in ("connected", "offered")
                self.service.submit(acd.CallEnded(call_id=call_id) if ended
                                    else acd.CallAbandoned(call_id=call_id))
        if restart is not None:
            await self._pbx_cut(restart.reason, restart.lost_at, live, agents_before)
        self.resyncs += 1
        # the node's picture is in: routing of its calls may go on (it paused when the link
        # was lost)
        self.service.submit(acd.PbxLink(up=True, node=self.node))
        self.service.submit(("publish_agents", None))
        log.info("resync %d of %s: %d channels, %d calls on the agent side", self.resyncs,
                 self.node or "-", len(snap.channels), len(live))
