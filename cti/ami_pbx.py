"""The ACD's Pbx port over AMI: ring a seat, announce, overflow, heartbeat."""

from __future__ import annotations

import time
from typing import Any, Protocol

from prompts.index import PromptIndex


class Ami(Protocol):
    async def action(self, action: dict[str, str], *, timeout: float | None = None,
                     idempotent: bool) -> Any: ...


class AmiPbx:
    """Every action has a timeout (the client's); Redirect is never retried blindly."""

    def __init__(self, ami: Ami, prompts: PromptIndex) -> None:
        self.ami = ami
        self.prompts = prompts

    async def ring_seat(self, channel: str, seat: str) -> None:
        # the caller's channel leaves the wait loop for hotline-connect, which Dials the seat
        await self.ami.action({"Action": "Redirect", "Channel": channel,
                               "Context": "hotline-connect", "Exten": seat, "Priority": "1"},
                              idempotent=False)

    async def announce(self, channel: str, prompt_ids: list[str], lang: str) -> None:
        files = "&".join(self.prompts.asterisk_path(p, lang) for p in prompt_ids)
        await self.ami.action({"Action": "Setvar", "Channel": channel,
                               "Variable": "HOTLINE_ANNOUNCE", "Value": files}, idempotent=True)

    async def overflow(self, channel: str, target: str) -> None:
        await self.ami.action({"Action": "Redirect", "Channel": channel,
                               "Context": "hotline-wait", "Exten": "busy", "Priority": "1"},
                              idempotent=False)

    async def heartbeat(self) -> None:
        await self.ami.action({"Action": "DBPut", "Family": "hotline", "Key": "heartbeat",
                               "Val": str(int(time.time()))}, idempotent=True, timeout=2.0)
