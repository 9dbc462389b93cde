"""Pacing: how many outbound calls may start now.

Never more than the purpose's own limit at once, never more than the trunk's free channels
(less those kept for inbound callers), nothing while storm mode or an operator pauses it, and
a call that needs an agent only from agents no inbound caller is waiting for: outbound never
takes an agent an inbound caller could have.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capacity:
    """What the service reads off the live state before it launches."""
    active: int            # this purpose's calls in progress (dialing or connected)
    channels_free: int     # trunk channels not in use now (inbound and outbound)
    ready_agents: int = 0  # agents ready now, for purposes that need one
    waiting_inbound: int = 0  # inbound callers waiting for an agent now


@dataclass(frozen=True)
class Pacing:
    max_concurrent: int = 4
    # trunk channels outbound leaves free for inbound callers (95598 is an inbound line first)
    reserve_channels: int = 2

    def __post_init__(self) -> None:
        if self.max_concurrent < 0 or self.reserve_channels < 0:
            raise ValueError("max_concurrent and reserve_channels are 0 or more")

    def launches(self, due: int, cap: Capacity, *, needs_agent: bool = False,
                 paused: bool = False) -> int:
        """How many of `due` jobs to start now (0 or more)."""
        if paused or due <= 0:
            return 0
        room = min(due, self.max_concurrent - cap.active,
                   cap.channels_free - self.reserve_channels)
        if needs_agent:
            room = min(room, cap.ready_agents - cap.waiting_inbound)
        return max(room, 0)
