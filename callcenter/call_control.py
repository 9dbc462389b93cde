"""Call control from the desktop over AMI: hold (music to the caller), transfer, hang up.

The caller's channel is the one the ACD knows (its published view, AcdService.view.channels).
Hold Redirects the caller out of the bridge to music on hold in `hotline-hold`; the agent's leg
follows there by Dial's F() option and waits in silence; off hold, the agent's leg is
Redirected to bridge itself with the caller again (the Bridge() application).
A transfer first tells the call tracker that the caller is going back to the agent side's
start, so the next queue, offer and answer events count again; the ACD then re-queues the
call under the new skill (at the front) or rings the chosen agent's seat.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from acd import engine as acd
from callcenter.acd_service import AcdService, Command

log = logging.getLogger(__name__)

HOLD_CONTEXT = "hotline-hold"
HOLD_WAIT_PRIORITY = "2"  # hotline-hold,agent: the Wait() step
SETTLE_S, SETTLE_POLL_S = 3.0, 0.05
REPLY_TIMEOUT_S = 5.0


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
class CallControl:
    ami: Ami
    service: AcdService
    tracker: Tracker | None = None
    held: dict[str, tuple[str, str]] = field(default_factory=dict)  # call_id -> (caller, agent)
    # calls taken off hold: the agent's leg runs Bridge() in hotline-hold now; a transfer ends
    # it explicitly rather than rely on the dialplan after the bridge
    resumed: dict[str, str] = field(default_factory=dict)  # call_id -> agent's channel

    def _caller_channel(self, call_id: str) -> str:
        view = self.service.view
        ch = view.channels.get(call_id)
        if ch is None or call_id not in view.calls:
            raise CallControlError(f"call {call_id} is not live in the ACD")
        return ch.channel

    def _connected(self, call_id: str) -> str:
        view = self.service.view
        ch, call = view.channels.get(call_id), view.calls.get(call_id)
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
        if call_id in self.held:
            raise CallControlError("the call is on hold; take it off hold first")
        for digit in digits:
            await self.ami.action({"Action": "PlayDTMF", "Channel": caller, "Digit": digit,
                                   "Duration": "120"}, idempotent=False)

    async def hangup(self, call_id: str) -> None:
        caller = self._caller_channel(call_id)
        await self.ami.action({"Action": "Hangup", "Channel": caller, "Cause": "16"},
                              idempotent=True)
        await self._drop_held_agent(call_id)
