"""The ACD's Pbx port over AMI: ring a seat, announce, overflow, call back, heartbeat."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from callcenter.acd_service import PbxRefused, PbxUnreachable
from cti.ami.protocol import AmiActionError, AmiNotConnected
from cti.ami.translate import QUEUE_NAME
from prompts.index import PromptIndex


class Ami(Protocol):
    async def action(self, action: Mapping[str, str | Sequence[str]], *,
                     timeout: float | None = None, idempotent: bool) -> Any: ...


class AmiPbx:
    """Every action has a timeout (the client's); Redirect is never retried blindly."""

    def __init__(self, ami: Ami, prompts: PromptIndex) -> None:
        self.ami = ami
        self.prompts = prompts

    async def ring_seat(self, channel: str, seat: str) -> None:
        # the caller's channel leaves the wait loop for hotline-connect, which Dials the seat
        try:
            await self.ami.action({"Action": "Redirect", "Channel": channel,
                                   "Context": "hotline-connect", "Exten": seat, "Priority": "1"},
                                  idempotent=False)
        except AmiActionError as exc:  # Response: Error, so the Redirect did not happen
            raise PbxRefused(str(exc)) from exc
        except AmiNotConnected as exc:  # no session to send it on: it was not sent
            raise PbxUnreachable(str(exc)) from exc

    async def ivr_fallback(self, channel: str) -> bool:
        """Take a caller out of a FastAGI session the IVR gave up on (its path too slow) to the
        dialplan's fallback (apology, then the queue), over AMI: res_agi waits for the next
        command for ever, and what the IVR sends on the slow path arrives late. Not when the IVR
        already committed its exit (HOTLINE_NEXT set). Returns whether the caller was moved."""
        try:
            got = await self.ami.action({"Action": "Getvar", "Channel": channel,
                                         "Variable": "HOTLINE_NEXT"}, idempotent=True, timeout=2)
            if hasattr(got, "get") and str(got.get("Value") or ""):
                return False
            await self.ami.action({"Action": "Redirect", "Channel": channel,
                                   "Context": "hotline-next", "Exten": "fallback",
                                   "Priority": "1"}, idempotent=False, timeout=2)
        except AmiActionError:  # Response: Error: the channel is gone
            return False
        return True

    async def announce(self, channel: str, prompt_ids: list[str], lang: str) -> None:
        files = "&".join(self.prompts.asterisk_path(p, lang) for p in prompt_ids)
        await self.ami.action({"Action": "Setvar", "Channel": channel,
                               "Variable": "HOTLINE_ANNOUNCE", "Value": files}, idempotent=True)

    async def overflow(self, channel: str, target: str, prompt_ids: Sequence[str] = (),
                       lang: str = "zh") -> None:
        if prompt_ids:
            # the all-busy message naming the wait (hotline-wait,busy plays it instead of its
            # own): prompt files from the index, nothing a caller typed
            files = "&".join(self.prompts.asterisk_path(p, lang) for p in prompt_ids)
            await self.ami.action({"Action": "Setvar", "Channel": channel,
                                   "Variable": "HOTLINE_BUSY", "Value": files}, idempotent=True)
        await self.ami.action({"Action": "Redirect", "Channel": channel,
                               "Context": "hotline-wait", "Exten": "busy", "Priority": "1"},
                              idempotent=False)

    async def callback(self, seat: str, call_id: str, number: str, ring_s: float) -> None:
        """A queued callback's turn: ring the reserved agent's seat; once the agent answers, the
        dialplan (hotline-callback) dials the customer. Originate is never re-sent."""
        await self.ami.action({
            "Action": "Originate", "Channel": f"PJSIP/{seat}", "Context": "hotline-callback",
            "Exten": "s", "Priority": "1", "Timeout": str(int(ring_s * 1000)), "Async": "true",
            # the agent's phone shows the customer's number
            "CallerID": f"Callback <{number}>",
            "Variable": [f"HOTLINE_CALLBACK_OF={call_id}", f"HOTLINE_CALLBACK_NUMBER={number}",
                         f"HOTLINE_SEAT={seat}"]}, idempotent=False)

    async def click_to_call(self, seat: str, call_id: str, number: str, ring_s: float) -> None:
        """An agent's click-to-call: ring the agent's seat under the call's own id (ChannelId:
        the seat leg's Uniqueid and so the call's Linkedid, which names its recording); once
        the agent answers, the dialplan (hotline-click-to-call) records the leg and dials the
        customer. Originate is never re-sent."""
        await self.ami.action({
            "Action": "Originate", "Channel": f"PJSIP/{seat}", "Context": "hotline-click-to-call",
            "Exten": "s", "Priority": "1", "Timeout": str(int(ring_s * 1000)), "Async": "true",
            "ChannelId": call_id,
            "CallerID": f"95598 <{number}>",
            "Variable": [f"HOTLINE_CALLBACK_OF={call_id}", f"HOTLINE_CALLBACK_NUMBER={number}",
                         f"HOTLINE_SEAT={seat}"]}, idempotent=False)

    async def failover_member(self, seat: str, member: bool) -> None:
        """Pause (or unpause) the seat in the failover app_queue: only seats with an agent
        logged in ring when callers fail over while the CTI is down."""
        await self.ami.action({"Action": "QueuePause", "Queue": QUEUE_NAME,
                               "Interface": f"PJSIP/{seat}",
                               "Paused": "false" if member else "true",
                               "Reason": "agent logged in" if member else "no agent logged in"},
                              idempotent=True)

    async def heartbeat(self) -> None:
        """The global HOTLINE_HEARTBEAT (epoch s), which the dialplan's wait loop checks: a
        Setvar without a channel (class call), not AstDB's DBPut, which needs AMI's `system`
        class and with it GetConfig (every SIP password)."""
        await self.ami.action({"Action": "Setvar", "Variable": "HOTLINE_HEARTBEAT",
                               "Value": str(int(time.time()))}, idempotent=True, timeout=2.0)
