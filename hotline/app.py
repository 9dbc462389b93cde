"""The CTI daemon: build everything through hotline.wiring, then run its tasks in one TaskGroup."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from agent_desktop.server import WebBindError
from callcenter.leadership import (
    LeaderLock,
    LeadershipLost,
    Sleep,
    hold_leadership,
    wait_for_leadership,
)
from config.settings import Settings, load_settings
from hotline.wiring import (
    WiringError,
    build_daemon,
    leader_lock,
    standby_path,
    warm_imports,
)
from ivr.schema import FlowValidationError
from recorder.service import RecorderError

log = logging.getLogger(__name__)

def _say_standby(path: Path, what: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "lock": what,
                               "since": datetime.now(UTC).isoformat(timespec="seconds")}),
                   encoding="utf-8")
    tmp.replace(path)


def _no_longer_standby(path: Path) -> None:
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


async def run(settings: Settings, *, lock: LeaderLock | None = None,
              sleep: Sleep = asyncio.sleep) -> None:
    """Wait for the leadership lock (a standby binds no port and opens no AMI session before it
    holds it), then start everything, fail fast on bad config, and serve until cancelled or
    until the lock can no longer be proved held (LeadershipLost: the CTI stops)."""
    lock = lock if lock is not None else leader_lock(settings)
    marker = standby_path(settings)

    def standing_by() -> None:
        warm_imports()  # the takeover then starts at once, not with a second of imports
        _say_standby(marker, lock.what)

    try:
        await wait_for_leadership(lock, on_standby=standing_by, sleep=sleep)
        _no_longer_standby(marker)
        daemon = await build_daemon(settings)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(hold_leadership(lock, sleep=sleep), name="leadership")
                for name, start in daemon.tasks.items():
                    tg.create_task(start(), name=name)
        except* LeadershipLost as lost:
            raise lost.exceptions[0] from None
        finally:
            daemon.close()
    finally:
        _no_longer_standby(marker)
        await lock.release()


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
    except LeadershipLost as exc:  # another CTI may hold the lock now: never run beside it
        print(f"hotline: CTI stopping, leadership lost: {exc}", file=sys.stderr)
        sys.exit(3)
    finally:
        loop.close()


if __name__ == "__main__":
    main()
