"""Call control from the desktop over AMI: hold (music to the caller), transfer, hang up.

The caller's channel is the one the ACD knows (its published view, AcdService.view.channels).
Hold Redirects the caller out of the bridge to music on hold in `hotline-hold`; the agent's leg
follows there by Dial's F() option and waits in silence; off hold, the agent's leg is
Redirected to bridge itself with the caller again (the Bridge() application).
Hang up ends the agent's leg of a connected call, as the agent's phone would (the caller may
then be asked to rate the call: the post-call survey), else the caller's channel.
A transfer first tells the call tracker that the caller is going back to the agent side's
start, so the next queue, offer and answer events count again; the ACD then re-queues the
call under the new skill (at the front) or rings the chosen agent's seat.

Consult (咨询转接, issue 14 §5): the caller goes on hold as above; the ACD takes the consulted
agent out of routing (acd ConsultStarted); the first agent's leg, waiting in hotline-hold, is
Redirected to `hotline-consult`, where it Dials the other seat itself. Dial from the agent's
own leg, rather than an Originated leg bridged to it, because the consulted seat's leg then
has the call's Linkedid (its recording, U(), is filed under the same call; the call tracker
knows it is no new call) and because the leg needs no AMI Bridge, which Asterisk fails to do
on a leg in Wait(). From there:
- back to the caller (cancel): the agent's leg is Redirected to hotline-hold,resume, which
  ends the Dial (and the other seat's leg) and bridges it with the caller, as off hold;
- complete: the other agent's leg is Redirected to hotline-hold,resume with the caller as its
  peer, so it is then exactly an agent leg after an off-hold (hold, transfer and hang-up work
  on it as on any); the first agent's leg, with no peer left, ends, and the ACD hands the
  call over (ConsultCompleted: wrap-up for the first agent, the call record names the other);
- conference (三方通话): caller and both agents go to one ConfBridge named after the call
  (`hotline-conf`, confbridge.conf): the caller and the other agent are Redirected there, the
  first agent's leg follows by its own dialplan when its Dial returns. Any agent may leave; the
  first agent leaving hands the call over as a completed transfer does, the last agent leaving
  ends the caller's leg; the caller leaving ends it for all (end_marked).
Click-to-call (拨打客户, issue 14 §5): `click_to_call` gives the call an id of its own (an
Asterisk id, `click_to_call_id`) and asks the ACD (ClickToCall), which reserves the agent and
has the seat Originated under that id (cti.ami.pbx click_to_call); the dialplan dials the
customer once the seat answers. Its only channel the CTI knows is the seat's, whose Uniqueid
is the call's id: hang up ends that leg (and with it the customer's); hold, transfer and
consult are refused, as for a queued callback (the customer is on a leg the seat's Dial owns).
Asterisk's own events (the legs' Hangup, HotlineConsultEnded) reach `tap`, which keeps this
and the ACD in step when a phone, not the desktop, ends a part.

An outside number (外线: the repair crew's dispatch, metering, a customer's other phone) is
consulted the same way, with the agent's leg Dialling it on the carrier trunk (`carrier-out`,
`hotline-consult,out`) instead of a seat; the ACD takes no agent for it. The number is checked
before anything happens ([call_control], config/call_control.py: national form, digits only,
the directory or the allowed pattern) and FILTERed again in the dialplan; the web layer audits
every outside consult. Then:
- cancel: as for an agent, the outside leg ends and the agent has the caller again;
- complete (转外线): the outside leg is Redirected to hotline-hold,resume with the caller as its
  peer (the caller and the outside party talk; the caller's post-call survey is dropped, as
  the agent is no longer on the call) and the call ends for the ACD (CallEnded: the agent goes
  to wrap-up, the call record ends now, as when the caller goes on to the survey). The two
  legs stay up in Asterisk until one hangs up; the outside leg is recorded under the call. A
  resync after a CTI restart finds no agent-side call there (the caller is in hotline-hold),
  which is what the ACD holds too;
- conference: the outside leg joins the call's ConfBridge as an agent's leg does (it ends
  with the caller: end_marked). The agent may leave: then the call ends for the ACD as on
  complete, and the caller and the outside party talk on; when the outside party hangs up
  the CTI ends the caller's leg (the caller alone in the bridge would hear music for ever).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from acd import engine as acd
from acd.model import CLICK_TO_CALL
from callcenter.acd_service import AcdService, Command
from config.call_control import NUMBER, OutsideNumber

log = logging.getLogger(__name__)

HOLD_CONTEXT = "hotline-hold"
HOLD_WAIT_PRIORITY = "2"  # hotline-hold,agent: the Wait() step
SETTLE_S, SETTLE_POLL_S = 3.0, 0.05
REPLY_TIMEOUT_S = 5.0
CONSULT_CONTEXT = "hotline-consult"
CONF_CONTEXT = "hotline-conf"
_SEAT = re.compile(r"seat[0-9]{1,6}")
# a seat phone's channel (PJSIP/seat07-0000001a): what a consulted leg must be
_SEAT_CHANNEL = re.compile(r"PJSIP/(seat[0-9]{1,6})-[0-9a-fA-F]+")
# the carrier trunk's channel (PJSIP/carrier-out-0000001b): what an outside leg must be
_TRUNK_CHANNEL = re.compile(r"PJSIP/carrier-out-[0-9a-fA-F]+")


# the sequence part of a click-to-call's id: far above any count of channels one Asterisk makes
# and below the outbound engine's attempts (callcenter.outbound_service OB_SEQ, 900_000_000)
C2C_SEQ = 800_000_000
C2C_SPAN = 100_000_000
# a customer's number as it may reach the dialplan: national form (outbound.dnc.national)
C2C_NUMBER = re.compile(r"[0-9]{5,20}")


def click_to_call_id(systemname: str, epoch: float, n: int) -> str:
    """A click-to-call's call id: an Asterisk Uniqueid in form (the seat leg's ChannelId)."""
    return f"{systemname}-{int(epoch)}.{C2C_SEQ + n % C2C_SPAN}"


class CallControlError(Exception):
    """The call cannot be controlled (not live, not connected, PBX refused); no HTTP detail."""


async def ask_acd(service: AcdService, inp: acd.Input, actor: str,
                  timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
    """Submit an input to the ACD's one writer and wait for its {"ok": ..., "error"?} reply."""
    done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def reply(doc: dict[str, Any]) -> None:
        if not done.done():
            done.set_result(doc)

    if not service.submit(Command(inp, actor=actor, reply=reply)):
        raise CallControlError("the ACD is busy; try again")
    try:
        async with asyncio.timeout(timeout):
            return await done
    except TimeoutError:
        raise CallControlError("the ACD did not answer in time") from None


class Ami(Protocol):
    async def action(self, action: dict[str, str], *, timeout: float | None = None,
                     idempotent: bool) -> Any: ...


class Tracker(Protocol):
    def transferred(self, call_id: str) -> bool: ...


@dataclass
class Consult:
    """One call's consult, from the ask to its end (callcenter state; the ACD keeps its own)."""

    call_id: str
    first_agent: str  # who asked: the call's agent
    agent_id: str  # the consulted agent ("" for an outside number)
    seat: str  # the consulted agent's seat ("" for an outside number)
    caller: str  # the caller's channel
    agent_leg: str  # the first agent's channel
    other_leg: str | None = None  # the consulted seat's (or trunk's) channel, once answered
    conference: bool = False
    # the agents on the conference now (agent_id -> their channel)
    parties: dict[str, str] = field(default_factory=dict)
    outside: OutsideNumber | None = None  # the outside number consulted, if it is one
    # the call went to the outside party (completed, or the last agent left the conference):
    # the ACD has ended it; kept only to end the caller's leg when the outside party leaves
    handed_out: bool = False

    def doc(self) -> dict[str, Any]:
        parties = sorted(self.parties) if self.conference else []
        if self.conference and self.outside is not None and self.other_leg is not None:
            parties.append(self.outside.number)  # the outside party, while on the conference
        return {"agent_id": self.agent_id or None, "first_agent": self.first_agent,
                "state": "conference" if self.conference else "consult",
                "answered": self.other_leg is not None,
                "outside": None if self.outside is None else
                {"number": self.outside.number, "name": self.outside.name},
                "parties": parties}


@dataclass
class CallControl:
    ami: Ami
    service: AcdService
    tracker: Tracker | None = None
    held: dict[str, tuple[str, str]] = field(default_factory=dict)  # call_id -> (caller, agent)
    # calls taken off hold: the agent's leg runs Bridge() in hotline-hold now; a transfer ends
    # it explicitly rather than rely on the dialplan after the bridge
    resumed: dict[str, str] = field(default_factory=dict)  # call_id -> agent's channel
    consults: dict[str, Consult] = field(default_factory=dict)  # call_id -> its consult
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def _caller_channel(self, call_id: str) -> str:
        view = self.service.view
        ch = view.channels.get(call_id)
        if ch is None or call_id not in view.calls:
            raise CallControlError(f"call {call_id} is not live in the ACD")
        return ch.channel

    def _connected(self, call_id: str) -> str:
        view = self.service.view
        ch, call = view.channels.get(call_id), view.calls.get(call_id)
        if call is not None and CLICK_TO_CALL in call.flags:
            raise CallControlError(f"call {call_id} is a click-to-call: hold, transfer and "
                                   "consult are not available on it; hang up is")
        if ch is None or call is None:
            raise CallControlError(f"call {call_id} is not live in the ACD")
        channel = ch.channel
        if str(call.state) != "connected":
            raise CallControlError(f"call {call_id} is not connected to an agent")
        if call.callback_number is not None:
            # the customer is on the callback's outbound leg, not on the channel we know
            raise CallControlError(f"call {call_id} is a callback; use the phone")
        return channel

    async def _peer(self, channel: str) -> str:
        msg = await self.ami.action({"Action": "Getvar", "Channel": channel,
                                     "Variable": "BRIDGEPEER"}, idempotent=True)
        peer = str(msg.get("Value") or "") if hasattr(msg, "get") else ""
        if not peer:
            raise CallControlError("the caller is not bridged to an agent")
        return peer

    async def hold(self, call_id: str, on: bool) -> bool:
        """Music on hold for the caller (on) or back to the agent (off); returns whether the
        call is now held. A repeat is a no-op."""
        caller = self._connected(call_id)
        self._not_consulting(call_id)
        if on:
            if call_id in self.held:
                return True
            agent = await self._peer(caller)
            for ch, peer in ((caller, agent), (agent, caller)):
                await self.ami.action({"Action": "Setvar", "Channel": ch,
                                       "Variable": "HOTLINE_HOLD_PEER", "Value": peer},
                                      idempotent=True)
            # the agent's leg follows by itself (Dial's F() in hotline-connect): redirecting
            # both legs of the bridge at once makes Asterisk swap in surrogates and hang up
            await self.ami.action({"Action": "Redirect", "Channel": caller,
                                   "Context": HOLD_CONTEXT, "Exten": "caller", "Priority": "1"},
                                  idempotent=False)
            self.held[call_id] = (caller, agent)
            log.info("call %s on hold (caller %s, agent %s)", call_id, caller, agent)
            return True
        pair = self.held.get(call_id)
        if pair is None:
            return False
        await self._waiting_on_hold(pair[1])
        del self.held[call_id]
        # the agent's leg bridges itself with the caller (hotline-hold,resume): an AMI Bridge
        # would have to yank the agent's leg out of its Wait(), which Asterisk fails to do
        await self.ami.action({"Action": "Setvar", "Channel": pair[0],
                               "Variable": "HOTLINE_HOLD_PEER", "Value": ""}, idempotent=True)
        await self.ami.action({"Action": "Redirect", "Channel": pair[1],
                               "Context": HOLD_CONTEXT, "Exten": "resume", "Priority": "1"},
                              idempotent=False)
        self.resumed[call_id] = pair[1]
        log.info("call %s off hold", call_id)
        return False

    async def _waiting_on_hold(self, agent: str) -> None:
        """Until the agent's leg waits in hotline-hold (Dial's F() takes it there a moment
        after the caller left): bridging it while it is still on its way drops the call."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_S
        while True:
            where = []
            for var in ("CONTEXT", "PRIORITY"):
                msg = await self.ami.action({"Action": "Getvar", "Channel": agent,
                                             "Variable": var}, idempotent=True)
                where.append(str(msg.get("Value") or "") if hasattr(msg, "get") else "")
            if where == [HOLD_CONTEXT, HOLD_WAIT_PRIORITY]:
                return
            if loop.time() >= deadline:
                raise CallControlError("the agent's phone is not on hold yet; try again")
            await asyncio.sleep(SETTLE_POLL_S)

    async def _drop_held_agent(self, call_id: str) -> None:
        """End the agent's leg where only we can: waiting in hotline-hold, or in our bridge."""
        pair = self.held.pop(call_id, None)
        leg = pair[1] if pair is not None else self.resumed.pop(call_id, None)
        self.resumed.pop(call_id, None)
        if leg is None:
            return
        try:
            await self.ami.action({"Action": "Hangup", "Channel": leg, "Cause": "16"},
                                  idempotent=True)
        except Exception as exc:  # already gone with its peer: nothing to end
            log.debug("call %s: agent leg %s not hung up: %s", call_id, leg, exc)

    async def transfer(self, call_id: str, *, actor: str, skill: str | None = None,
                       agent_id: str | None = None) -> dict[str, Any]:
        """Blind transfer to a skill's queue or to a ready agent; the ACD decides the ring."""
        if (skill is None) == (agent_id is None):
            raise CallControlError("transfer to one skill or one agent")
        caller = self._connected(call_id)
        self._not_consulting(call_id)
        if agent_id is not None:
            target = self.service.view.agents.get(agent_id)
            if target is None:  # it read "not ready", as for a busy agent (issue 14 §6)
                raise CallControlError(f"no agent {agent_id} is logged in")
            if str(target.state) != "ready":
                raise CallControlError(f"agent {agent_id} is not ready")
        if self.tracker is not None:
            self.tracker.transferred(call_id)
        if skill is not None:
            # the caller waits again in Asterisk first, so the ACD's ring for the new skill
            # (which may come at once) finds the caller there
            await self.ami.action({"Action": "Setvar", "Channel": caller,
                                   "Variable": "HOTLINE_SKILL", "Value": skill},
                                  idempotent=True)
            await self.ami.action({"Action": "Redirect", "Channel": caller,
                                   "Context": "hotline-wait", "Exten": "s", "Priority": "1"},
                                  idempotent=False)
        doc = await ask_acd(self.service, acd.CallTransferred(call_id=call_id, skill=skill,
                                                              agent_id=agent_id), actor)
        if not doc.get("ok"):
            raise CallControlError(f"transfer refused: {doc.get('error')}")
        # to an agent: the ACD's RingAgent Redirects the caller to the new seat
        await self._drop_held_agent(call_id)
        log.info("call %s transferred to %s by %s", call_id, skill or agent_id, actor)
        return doc

    async def dtmf(self, call_id: str, digits: str) -> None:
        """Keys to the far end of a connected call (the agent's pad, for a party that is an
        IVR): AMI PlayDTMF on the caller's channel, one digit at a time, in order. `digits`
        is checked by the caller (0-9 * # A-D only); a call on hold takes none."""
        caller = self._connected(call_id)
        self._not_consulting(call_id)
        if call_id in self.held:
            raise CallControlError("the call is on hold; take it off hold first")
        for digit in digits:
            await self.ami.action({"Action": "PlayDTMF", "Channel": caller, "Digit": digit,
                                   "Duration": "120"}, idempotent=False)

    async def hangup(self, call_id: str) -> None:
        """The agent side ends the call. A call connected to an agent (not on hold, in no
        consult or conference) ends as if the agent had hung up their phone: the agent's leg
        is hung up, and the dialplan does what it does then (the post-call survey where the
        call's skill has one, else it hangs the caller up too). Any other call, or one whose
        agent leg is not found: the caller's channel is hung up. A click-to-call: the seat's
        leg (its Uniqueid is the call's id), which ends the customer's."""
        call = self.service.view.calls.get(call_id)
        if call is not None and CLICK_TO_CALL in call.flags:
            await self.ami.action({"Action": "Hangup", "Channel": call_id, "Cause": "16"},
                                  idempotent=True)
            return
        caller = self._caller_channel(call_id)
        agent = await self._agent_leg(call_id, caller)
        await self.ami.action({"Action": "Hangup", "Channel": agent or caller, "Cause": "16"},
                              idempotent=True)
        consult = self.consults.pop(call_id, None)
        if consult is not None and consult.conference:
            self.held.pop(call_id, None)  # the agents leave with the caller (end_marked)
            return
        # in a consult, the caller's hangup ends the first agent's leg (hotline-hold's h), and
        # with it the consulted seat's; the ACD frees the consulted agent as the call ends
        await self._drop_held_agent(call_id)

    async def click_to_call(self, agent_id: str, number: str, *, systemname: str,
                            account: str | None = None, actor: str | None = None) -> str:
        """Ring the agent's seat, then the customer's `number` (national form, checked here
        again: digits only); the new call's id. The ACD refuses an agent on a call or a ring,
        on a consult, or at a dead phone (CallControlError, its reason)."""
        if not C2C_NUMBER.fullmatch(number):
            raise CallControlError(f"{number!r} is not a number to dial")
        call_id = click_to_call_id(systemname, time.time(), secrets.randbelow(C2C_SPAN))
        doc = await ask_acd(self.service, acd.ClickToCall(call_id=call_id, agent_id=agent_id,
                                                          number=number, account=account),
                            actor or agent_id)
        if not doc.get("ok"):
            raise CallControlError(f"not dialled: {doc.get('error')}")
        log.info("click-to-call %s: agent %s dials %s", call_id, agent_id, number)
        return call_id

    async def _agent_leg(self, call_id: str, caller: str) -> str | None:
        """The seat's channel bridged with the caller of a connected call that is not on hold
        and in no consult or conference, or None."""
        call = self.service.view.calls.get(call_id)
        if call is None or str(call.state) != "connected" or call_id in self.held \
                or call_id in self.consults or call.callback_number is not None:
            return None
        try:
            peer = await self._peer(caller)
        except Exception as exc:  # not bridged at this moment: the caller's channel, then
            log.debug("call %s: no agent leg to hang up (%s)", call_id, exc)
            return None
        return peer if _SEAT_CHANNEL.fullmatch(peer) else None

    # ------------------------------------------------------------------------ consults

    def _not_consulting(self, call_id: str) -> None:
        consult = self.consults.get(call_id)
        if consult is not None:
            what = "a conference" if consult.conference else "in a consult"
            raise CallControlError(f"the call is {what}; finish it first")

    def _consult(self, call_id: str, *, conference: bool = False) -> Consult:
        consult = self.consults.get(call_id)
        if consult is None:
            raise CallControlError(f"call {call_id} has no consult")
        if consult.conference != conference:
            raise CallControlError("the call is a conference now" if consult.conference
                                   else "the call is not a conference")
        return consult

    def parties(self, call_id: str) -> dict[str, Any] | None:
        """The consult or conference on the call, for the desktop; None: none."""
        consult = self.consults.get(call_id)
        return consult.doc() if consult is not None else None

    async def consult(self, call_id: str, agent_id: str | None = None, *, actor: str,
                      skill: str | None = None, outside: OutsideNumber | None = None
                      ) -> Consult:
        """Hold the caller and ring a ready agent's seat from the first agent's leg: the agent
        named, or the one the ACD chooses among the skill's ready agents; or an outside number
        (checked by the caller against [call_control]: CallControlSettings.outside)."""
        if [agent_id, skill, outside].count(None) != 2:
            raise CallControlError("consult one agent, one skill or one outside number")
        self._connected(call_id)
        self._not_consulting(call_id)
        if outside is not None:
            return await self._consult_outside(call_id, outside)
        view = self.service.view
        call = view.calls[call_id]
        if agent_id is not None:
            target = view.agents.get(agent_id)
            if target is None:
                raise CallControlError(f"no agent {agent_id} is logged in")
            if str(target.state) != "ready":
                raise CallControlError(f"agent {agent_id} is not ready")
        assert call.offered_to is not None  # connected
        doc = await ask_acd(self.service, acd.ConsultStarted(
            call_id=call_id, agent_id=agent_id, skill=skill), actor)
        if not doc.get("ok"):
            raise CallControlError(f"consult refused: {doc.get('error')}")
        view = self.service.view
        chosen = view.consults.get(call_id)
        target = view.agents.get(chosen) if chosen is not None else None
        if target is None or not _SEAT.fullmatch(target.seat):
            await ask_acd(self.service, acd.ConsultEnded(call_id=call_id), actor)
            raise CallControlError("the consulted agent has no seat to ring")
        agent_id = target.agent_id
        try:
            consult = await self._start_consult(
                call_id, ("HOTLINE_CONSULT_SEAT", target.seat), "s", agent_id=agent_id,
                seat=target.seat)
        except Exception:
            await ask_acd(self.service, acd.ConsultEnded(call_id=call_id), actor)
            raise
        log.info("call %s: %s consults %s at %s", call_id, consult.first_agent, agent_id,
                 target.seat)
        return consult

    async def _consult_outside(self, call_id: str, outside: OutsideNumber) -> Consult:
        """The first agent's leg dials the outside number on the carrier trunk; no agent of
        ours is taken, so the ACD is not asked."""
        if not NUMBER.fullmatch(outside.number):  # checked before; never past here unchecked
            raise CallControlError("not a number to dial")
        consult = await self._start_consult(
            call_id, ("HOTLINE_CONSULT_NUMBER", outside.number), "out", agent_id="", seat="",
            outside=outside)
        log.info("call %s: %s consults the outside number %s (%s)", call_id,
                 consult.first_agent, outside.number, outside.name or "by pattern")
        return consult

    async def _start_consult(self, call_id: str, dial: tuple[str, str], exten: str,
                             **target: Any) -> Consult:
        """Hold the caller; the agent's leg, waiting on hold, gets `dial` (the variable
        hotline-consult,`exten` dials) and goes there. `target`: the Consult's own fields."""
        call = self.service.view.calls[call_id]
        assert call.offered_to is not None  # connected
        try:
            await self.hold(call_id, True)
            caller, agent_leg = self.held[call_id]
            await self._waiting_on_hold(agent_leg)
            for var, value in (dial, ("HOTLINE_CONF", "")):
                await self.ami.action({"Action": "Setvar", "Channel": agent_leg,
                                       "Variable": var, "Value": value}, idempotent=True)
            consult = Consult(call_id=call_id, first_agent=call.offered_to, caller=caller,
                              agent_leg=agent_leg, **target)
            self.consults[call_id] = consult
            await self.ami.action({"Action": "Redirect", "Channel": agent_leg,
                                   "Context": CONSULT_CONTEXT, "Exten": exten,
                                   "Priority": "1"}, idempotent=False)
        except Exception:
            self.consults.pop(call_id, None)
            raise
        return consult

    def _who(self, consult: Consult) -> str:
        return consult.agent_id or (consult.outside.number if consult.outside else "?")

    async def _answered_leg(self, consult: Consult) -> str:
        """The consulted seat's (or the trunk's) channel, once it answered (the first agent's
        bridge peer)."""
        msg = await self.ami.action({"Action": "Getvar", "Channel": consult.agent_leg,
                                     "Variable": "BRIDGEPEER"}, idempotent=True)
        peer = str(msg.get("Value") or "") if hasattr(msg, "get") else ""
        if consult.outside is not None:
            if not _TRUNK_CHANNEL.fullmatch(peer):
                raise CallControlError(f"{consult.outside.number} has not answered yet")
            consult.other_leg = peer
            return peer
        m = _SEAT_CHANNEL.fullmatch(peer)
        if m is None or m.group(1) != consult.seat:
            raise CallControlError(f"agent {consult.agent_id} has not answered yet")
        consult.other_leg = peer
        return peer

    async def cancel_consult(self, call_id: str, *, actor: str) -> None:
        """Back to the caller: the consulted seat's leg (ringing or talking) ends."""
        consult = self._consult(call_id)
        del self.consults[call_id]
        # as off hold: the caller's hold peer goes first (its hotline-hold h would end the
        # agent's leg as resume takes the caller out of its music); the first agent's leg
        # still has the caller as its peer, and resume bridges them
        await self.ami.action({"Action": "Setvar", "Channel": consult.caller,
                               "Variable": "HOTLINE_HOLD_PEER", "Value": ""}, idempotent=True)
        await self.ami.action({"Action": "Redirect", "Channel": consult.agent_leg,
                               "Context": HOLD_CONTEXT, "Exten": "resume", "Priority": "1"},
                              idempotent=False)
        self.held.pop(call_id, None)
        self.resumed[call_id] = consult.agent_leg
        if consult.outside is None:
            await ask_acd(self.service, acd.ConsultEnded(call_id=call_id), actor)
        log.info("call %s: consult with %s cancelled by %s", call_id, self._who(consult),
                 actor)

    async def complete_consult(self, call_id: str, *, actor: str) -> None:
        """The consulted agent takes the caller; the first agent's leg ends."""
        consult = self._consult(call_id)
        other = await self._answered_leg(consult)
        if consult.outside is not None:
            return await self._complete_outside(consult, other, actor)
        doc = await ask_acd(self.service, acd.ConsultCompleted(call_id=call_id), actor)
        if not doc.get("ok"):
            raise CallControlError(f"transfer refused: {doc.get('error')}")
        del self.consults[call_id]
        # the first agent's leg ends once its Dial returns (no peer); the caller's hold peer
        # goes, as off hold (its hotline-hold h would end the new agent's leg)
        for ch, peer in ((consult.agent_leg, ""), (other, consult.caller), (consult.caller, "")):
            await self.ami.action({"Action": "Setvar", "Channel": ch,
                                   "Variable": "HOTLINE_HOLD_PEER", "Value": peer},
                                  idempotent=True)
        # the other agent's leg bridges itself with the caller, as any leg off hold; the
        # first agent's Dial returns with no peer to go back to, and that leg ends
        await self.ami.action({"Action": "Redirect", "Channel": other,
                               "Context": HOLD_CONTEXT, "Exten": "resume", "Priority": "1"},
                              idempotent=False)
        self.held.pop(call_id, None)
        self.resumed[call_id] = other
        log.info("call %s: transferred to %s after a consult, by %s", call_id,
                 consult.agent_id, actor)

    async def _complete_outside(self, consult: Consult, other: str, actor: str) -> None:
        """The caller goes to the outside party; the call ends for the ACD (transferred out):
        the agent wraps up, the two legs talk on in Asterisk."""
        call_id = consult.call_id
        del self.consults[call_id]
        # as for an agent (complete_consult), and no post-call survey: the caller would rate
        # the outside leg when it hangs up
        for ch, var, value in ((consult.agent_leg, "HOTLINE_HOLD_PEER", ""),
                               (other, "HOTLINE_HOLD_PEER", consult.caller),
                               (consult.caller, "HOTLINE_HOLD_PEER", ""),
                               (consult.caller, "HOTLINE_SURVEY_SEAT", "")):
            await self.ami.action({"Action": "Setvar", "Channel": ch, "Variable": var,
                                   "Value": value}, idempotent=True)
        await self.ami.action({"Action": "Redirect", "Channel": other,
                               "Context": HOLD_CONTEXT, "Exten": "resume", "Priority": "1"},
                              idempotent=False)
        self.held.pop(call_id, None)
        self.resumed.pop(call_id, None)
        await self._hand_out(consult, actor, "complete")

    async def _hand_out(self, consult: Consult, actor: str, how: str) -> None:
        """The call is over for the ACD (the agent wraps up, the record ends now); the
        supervisors' lists hear of it (call event transferred_out)."""
        assert consult.outside is not None
        doc = await ask_acd(self.service, acd.CallEnded(call_id=consult.call_id), actor)
        if not doc.get("ok"):  # the caller hung up meanwhile: ended already
            log.info("call %s: not handed out (%s)", consult.call_id, doc.get("error"))
            return
        self.service.notifier.call_event(
            consult.call_id, "transferred_out", at=self.service.clock(),
            agent_id=consult.first_agent, detail={"number": consult.outside.number, "how": how})
        log.info("call %s: handed to the outside number %s by %s (ended for the ACD)",
                 consult.call_id, consult.outside.number, actor)

    async def conference(self, call_id: str, *, actor: str) -> Consult:
        """All three in one conference (ConfBridge named after the call)."""
        consult = self._consult(call_id)
        other = await self._answered_leg(consult)
        name = f"hotline-{call_id}"  # an Asterisk id: [a-z0-9.-] only
        for ch in (consult.agent_leg, other, consult.caller):
            await self.ami.action({"Action": "Setvar", "Channel": ch, "Variable": "HOTLINE_CONF",
                                   "Value": name}, idempotent=True)
        await self.ami.action({"Action": "Setvar", "Channel": consult.caller,
                               "Variable": "HOTLINE_HOLD_PEER", "Value": ""}, idempotent=True)
        consult.conference = True
        consult.parties = {consult.first_agent: consult.agent_leg}
        if consult.outside is None:
            consult.parties[consult.agent_id] = other
        # the caller first, so the agents find them there; the first agent's leg follows the
        # other's by its own dialplan (HOTLINE_CONF) when its Dial returns: no Redirect of
        # both legs of one bridge at once
        await self.ami.action({"Action": "Redirect", "Channel": consult.caller,
                               "Context": CONF_CONTEXT, "Exten": "caller", "Priority": "1"},
                              idempotent=False)
        await self.ami.action({"Action": "Redirect", "Channel": other,
                               "Context": CONF_CONTEXT, "Exten": "agent", "Priority": "1"},
                              idempotent=False)
        self.held.pop(call_id, None)
        log.info("call %s: conference of %s, %s and the caller, by %s", call_id,
                 consult.first_agent, self._who(consult), actor)
        return consult

    async def leave(self, call_id: str, agent_id: str, *, actor: str) -> None:
        """An agent leaves the conference: their leg ends (the rest follows from its Hangup,
        as when they hang up their phone: `_party_left`)."""
        consult = self._consult(call_id, conference=True)
        leg = consult.parties.get(agent_id)
        if leg is None:
            raise CallControlError(f"agent {agent_id} is not on the conference")
        await self.ami.action({"Action": "Hangup", "Channel": leg, "Cause": "16"},
                              idempotent=True)
        await self._party_left(consult, agent_id, actor)

    async def _party_left(self, consult: Consult, agent_id: str, actor: str) -> None:
        if consult.parties.pop(agent_id, None) is None:
            return  # told already (the desktop's leave, then its Hangup event)
        call_id = consult.call_id
        if not consult.parties and consult.outside is not None and consult.other_leg:
            # the agent left the caller with the outside party: handed out, as on complete
            consult.handed_out = True
            await self._hand_out(consult, actor, "conference")
            return
        if not consult.parties:
            # nobody left to talk to the caller
            self.consults.pop(call_id, None)
            await self.ami.action({"Action": "Hangup", "Channel": consult.caller,
                                   "Cause": "16"}, idempotent=True)
            return
        if agent_id == consult.first_agent:
            # the call's agent left: the consulted agent has the call now
            await ask_acd(self.service, acd.ConsultCompleted(call_id=call_id), actor)
            consult.first_agent = consult.agent_id
        else:
            await ask_acd(self.service, acd.ConsultEnded(call_id=call_id), actor)
        log.info("call %s: %s left the conference", call_id, agent_id)

    # --------------------------------------------------------------- Asterisk's side

    def observe(self, event: Any) -> None:
        """An AMI event on its way to the feed (hotline.wiring.observed): a consult's legs
        ending by Asterisk's doing (no answer, a phone hung up) reach the consult's state and
        the ACD. Never awaited here: each is handled in a task of its own."""
        if self.consults and hasattr(event, "get"):
            self._observe(event)

    def _observe(self, event: Any) -> None:
        name, channel = event.get("Event"), str(event.get("Channel") or "")
        for consult in list(self.consults.values()):
            work = None
            if consult.conference and name == "Hangup" and consult.outside is not None \
                    and channel == consult.other_leg:
                work = self._outside_left(consult)
            elif consult.conference and name == "Hangup":
                gone = [a for a, leg in consult.parties.items() if leg == channel]
                if gone:
                    work = self._party_left(consult, gone[0], "pbx")
                elif channel == consult.caller:
                    self.consults.pop(consult.call_id, None)
            elif consult.conference and name == "UserEvent" \
                    and event.get("UserEvent") == "HotlineConfLeft" \
                    and event.get("Result") == "ENDMARKED" \
                    and channel in consult.parties.values():
                # the caller left and the conference ended for the agents: the call is
                # over (its CallEnded settles the ACD), no agent left on their own
                self.consults.pop(consult.call_id, None)
            elif not consult.conference and channel == consult.agent_leg \
                    and name == "DialEnd" and event.get("DialStatus") == "ANSWER":
                dest = str(event.get("DestChannel") or "")
                m = _SEAT_CHANNEL.fullmatch(dest)
                if consult.outside is not None and _TRUNK_CHANNEL.fullmatch(dest):
                    consult.other_leg = dest
                elif consult.outside is None and m is not None and m.group(1) == consult.seat:
                    consult.other_leg = m.group(0)  # answered: the desktop may complete now
            elif not consult.conference and channel == consult.agent_leg and (
                    name == "Hangup" or (name == "UserEvent"
                                         and event.get("UserEvent") == "HotlineConsultEnded"
                                         and event.get("Context") == CONSULT_CONTEXT)):
                work = self._consult_over(consult)
            if work is not None:
                task = asyncio.get_running_loop().create_task(_logged(work),
                                                              name="consult-event")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _outside_left(self, consult: Consult) -> None:
        """The outside party hung up in a conference: the agent talks on with the caller;
        with no agent left (handed out), the caller's leg ends too."""
        consult.other_leg = None
        if consult.handed_out or not consult.parties:
            self.consults.pop(consult.call_id, None)
            try:
                await self.ami.action({"Action": "Hangup", "Channel": consult.caller,
                                       "Cause": "16"}, idempotent=True)
            except Exception as exc:  # the caller left first (end_marked took the party)
                log.debug("call %s: caller %s not hung up: %s", consult.call_id,
                          consult.caller, exc)
        log.info("call %s: the outside party left the conference", consult.call_id)

    async def _consult_over(self, consult: Consult) -> None:
        """The first agent's Dial ended by itself (the other seat did not answer or hung up:
        the leg waits on hold again, and the desktop takes the caller off hold) or the leg is
        gone: the consult is over."""
        if self.consults.get(consult.call_id) is not consult or consult.conference:
            return  # the desktop ended it first (cancel, complete) or made it a conference
        del self.consults[consult.call_id]
        if consult.outside is None:
            try:
                await ask_acd(self.service, acd.ConsultEnded(call_id=consult.call_id), "pbx")
            except CallControlError as exc:
                log.warning("call %s: consult end not told to the ACD: %s", consult.call_id,
                            exc)
        log.info("call %s: consult with %s over (its leg ended)", consult.call_id,
                 self._who(consult))


async def _logged(work: Any) -> None:
    try:
        await work
    except Exception:  # a leg already gone, the ACD busy: the call's own end settles it
        log.exception("consult: handling an Asterisk event failed")
