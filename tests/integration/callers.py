"""Helpers for integration tests that place one call and wait on its events."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from config.settings import Settings
from hotline import stack
from tests.support.ami import AmiRecorder, Event, send_action
from tests.support.sipp import Caller, SippResult, place_call


class CallInProgress:
    """A SIPp caller running in a thread while the test waits on AMI events."""

    def __init__(self, caller: Caller, settings: Settings, workdir: Path) -> None:
        self.caller = caller
        self.result: SippResult | None = None
        target = f"{settings.pbx.bind_ip}:{settings.pbx.sip_port}"

        def run() -> None:
            self.result = asyncio.run(place_call(caller, target, workdir=workdir,
                                                 timeout_s=120))

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def finish(self, timeout: float = 60) -> SippResult:
        self.thread.join(timeout)
        assert self.result is not None, "the SIPp caller did not finish"
        return self.result


def is_event(name: str, number: str, **headers: str) -> Callable[[Event], bool]:
    def pred(e: Event) -> bool:
        return (e.get("Event") == name and e.get("CallerIDNum") == number
                and all(e.get(k) == v for k, v in headers.items()))
    return pred


def call_story(ami: AmiRecorder, number: str, since: int, settings: Settings | None = None,
               log_lines: int = 40) -> str:
    """What happened to a caller's number since `since`, for a failure message: its events
    (name, UserEvent, context/exten, dial status, seat) and, given the settings, the CTI log's
    last lines."""
    steps = []
    for e in ami.events()[since:]:
        if e.get("CallerIDNum") != number and e.get("ConnectedLineNum") != number:
            continue
        bits = [str(e.get("Event"))] + [f"{k}={e[k]}" for k in (
            "UserEvent", "Context", "Exten", "DialStatus", "Seat", "Queue", "Cause")
            if e.get(k)]
        steps.append(" ".join(bits))
    story = f"events of {number}: " + ("; ".join(steps[-60:]) or "none")
    if settings is not None:
        log = settings.state_dir / "log" / "cti.log"
        try:
            tail = log.read_text(errors="replace").splitlines()[-log_lines:]
        except OSError as exc:
            tail = [f"({exc})"]
        story += "\ncti.log:\n" + "\n".join(tail)
    return story


def seat_answered(number: str, seat: str) -> Callable[[Event], bool]:
    """Dial's DialEnd ANSWER for the caller's number at that seat's phone (app_queue reports
    its member's answer the same way)."""
    answered = is_event("DialEnd", number, DialStatus="ANSWER")
    return lambda e: answered(e) and e.get("DestChannel", "").startswith(f"PJSIP/{seat}-")


def hang_up(ami: AmiRecorder, channel_event: Event) -> None:
    send_action(ami, {"Action": "Hangup", "Channel": channel_event["Channel"]})


def ts(e: Event) -> float:
    return float(e.get("Timestamp") or e["_received"])


# ------------------------------------------------------------------------- the web desktop

DEMO_PASSWORD = "95598"  # the demo staff's password (hotline/demo_seed.py)


def web_login(base: str, user: str, seat: str) -> httpx.Client:
    """An HTTP client logged in to the desktop as `user` at `seat` (the CTI logs the agent in
    to the ACD, as the desktop's login does)."""
    c = httpx.Client(base_url=base, timeout=15)
    r = c.post("/api/auth/login", json={"user_id": user, "password": DEMO_PASSWORD,
                                        "seat": seat})
    assert r.status_code == 200, r.text
    return c


def wait_agent_state(c: httpx.Client, agent: str, want: str,
                     timeout: float = 20) -> dict[str, Any]:
    """Until the API says `agent` is in state `want` (deadline); the agent's document."""
    found: dict[str, Any] = {}

    def reached() -> bool:
        found.update(c.get(f"/api/agents/{agent}").json())
        return found.get("state") == want

    try:
        stack.wait_until(reached, timeout, f"{agent} {want}")
    except stack.StackError as exc:
        raise AssertionError(f"{exc}; last seen {found}") from None
    return found
