"""Call control from the desktop over AMI: hold (music to the caller), transfer, hang up.

The caller's channel is the one the ACD knows (AcdService.channels). Hold moves both legs out of
their bridge at once (Redirect with ExtraChannel): the caller to music on hold, the agent's leg
to a silent wait, both in the `hotline-hold` context; taking the call off hold bridges them
again (AMI Bridge). A transfer first tells the call tracker that the caller is going back to
the agent side's start, so the next queue, offer and answer events count again; the ACD then
re-queues the call under the new skill (at the front) or rings the chosen agent's seat.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from acd import engine as acd
from cti.acd_service import AcdService, Command

log = logging.getLogger(__name__)

HOLD_CONTEXT = "hotline-hold"
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

    def _caller_channel(self, call_id: str) -> str:
        ch = self.service.channels.get(call_id)
        call = self.service.engine.calls.get(call_id)
        if ch is None or call is None:
            raise CallControlError(f"call {call_id} is not live in the ACD")
        return ch.channel

    def _connected(self, call_id: str) -> str:
        channel = self._caller_channel(call_id)
        if str(self.service.engine.calls[call_id].state) != "connected":
            raise CallControlError(f"call {call_id} is not connected to an agent")
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
            await self.ami.action({
                "Action": "Redirect", "Channel": caller, "Context": HOLD_CONTEXT,
                "Exten": "caller", "Priority": "1", "ExtraChannel": agent,
                "ExtraContext": HOLD_CONTEXT, "ExtraExten": "agent", "ExtraPriority": "1"},
                idempotent=False)
            self.held[call_id] = (caller, agent)
            log.info("call %s on hold (caller %s, agent %s)", call_id, caller, agent)
            return True
        pair = self.held.pop(call_id, None)
        if pair is None:
            return False
        await self.ami.action({"Action": "Bridge", "Channel1": pair[0], "Channel2": pair[1],
                               "Tone": "no"}, idempotent=False)
        log.info("call %s off hold", call_id)
        return False

    async def _drop_held_agent(self, call_id: str) -> None:
        pair = self.held.pop(call_id, None)
        if pair is not None:
            # the agent's leg waits in hotline-hold; nothing else would end it
            await self.ami.action({"Action": "Hangup", "Channel": pair[1], "Cause": "16"},
                                  idempotent=True)

    async def transfer(self, call_id: str, *, actor: str, skill: str | None = None,
                       agent_id: str | None = None) -> dict[str, Any]:
        """Blind transfer to a skill's queue or to a ready agent; the ACD decides the ring."""
        if (skill is None) == (agent_id is None):
            raise CallControlError("transfer to one skill or one agent")
        caller = self._connected(call_id)
        if agent_id is not None:
            target = self.service.engine.agents.get(agent_id)
            if target is None or str(target.state) != "ready":
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

    async def hangup(self, call_id: str) -> None:
        caller = self._caller_channel(call_id)
        await self.ami.action({"Action": "Hangup", "Channel": caller, "Cause": "16"},
                              idempotent=True)
        await self._drop_held_agent(call_id)
