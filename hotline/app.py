"""The CTI daemon: build everything through hotline.wiring, then run its tasks in one TaskGroup."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from agent_desktop.server import WebBindError
from config.settings import Settings, load_settings
from hotline.wiring import WiringError, build_daemon
from ivr.schema import FlowValidationError
from recorder.service import RecorderError

log = logging.getLogger(__name__)

async def run(settings: Settings) -> None:
    """Start everything, fail fast on bad config, then serve until cancelled."""
    daemon = await build_daemon(settings)
    try:
        async with asyncio.TaskGroup() as tg:
            for name, start in daemon.tasks.items():
                tg.create_task(start(), name=name)
    finally:
        daemon.close()


def main() -> None:
    logging.basicConfig(level=os.environ.get("HOTLINE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    loop = asyncio.new_event_loop()
    task = loop.create_task(run(settings), name="cti")
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        log.info("CTI stopped")
    except (FlowValidationError, RecorderError, WebBindError, WiringError) as exc:
        what = "invalid IVR flows, not starting:\n" if isinstance(exc, FlowValidationError) else ""
        print(f"hotline: {what}{exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        loop.close()


if __name__ == "__main__":
    main()
