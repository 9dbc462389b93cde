"""The CTI's SLA escalation task: runs WorkOrderService.escalation_tick every tick interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workorders.service import WorkOrderAlert

log = logging.getLogger(__name__)


async def escalation_ticks(tick: Callable[[], Sequence[WorkOrderAlert]], interval_s: float, *,
                           ticks: int | None = None) -> None:
    """Call `tick` (WorkOrderService.escalation_tick: one unit of work, alerts published after
    its commit) in a worker thread every `interval_s`, so a slow database never stalls the
    event loop. A failed tick is logged and retried at the next interval: the marks make a
    retry emit exactly what the failed tick did not. `ticks` bounds the loop (tests)."""
    done = 0
    while ticks is None or done < ticks:
        try:
            alerts = await asyncio.to_thread(tick)
            for a in alerts:
                log.warning("SLA %s: work order %s %s %s%% (due %s)", a.level, a.number,
                            a.clock, a.percent, _iso(a.due_at))
        except Exception:
            log.exception("work-order escalation tick failed; retrying in %.0f s", interval_s)
        done += 1
        if ticks is None or done < ticks:
            await asyncio.sleep(interval_s)


def _iso(value: datetime | None) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
