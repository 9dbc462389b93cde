"""Watches MQTT for tests (aiomqtt in a background thread) and sends commands like a desktop."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt

from tests.support.inbox import Inbox

# the suite's own broker user (tests/integration/conftest.py adds it, like the AMI harness user
# of tests/support/ami_users.py): reads and writes hotline/#, never a user of a deployment
HARNESS_USER = "hotline-test"
HARNESS_ACL = ("topic readwrite hotline/#",)


@dataclass(frozen=True)
class Msg:
    topic: str
    payload: Any
    at: float  # wall clock when it arrived here


class MqttWatcher:
    def __init__(self, host: str, port: int, topic_filter: str = "hotline/#", *,
                 username: str | None = None, password: str | None = None) -> None:
        """username/password: the broker's credential (the suite's harness user, HARNESS_USER,
        reads and writes hotline/#; the hotline's broker has no anonymous access)."""
        self.host, self.port, self.filter = host, port, topic_filter
        self.username, self.password = username, password
        self._msgs: Inbox[Msg] = Inbox("MQTT message")
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._client: aiomqtt.Client | None = None
        self._thread = threading.Thread(target=self._run, name="mqtt-watcher", daemon=True)

    def start(self, timeout: float = 10) -> MqttWatcher:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise AssertionError(f"no MQTT broker on {self.host}:{self.port}")
        return self

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        except asyncio.CancelledError:
            pass  # stop() cancels the watcher

    async def _main(self) -> None:
        async with aiomqtt.Client(self.host, self.port, username=self.username,
                                  password=self.password,
                                  identifier=f"test-{uuid.uuid4().hex[:8]}") as client:
            self._client = client
            await client.subscribe(self.filter, qos=1)
            self._ready.set()
            async for m in client.messages:
                raw = bytes(m.payload) if isinstance(m.payload, bytes | bytearray) else m.payload
                try:
                    payload = json.loads(raw) if isinstance(raw, bytes) else raw
                except ValueError:
                    payload = raw
                self._msgs.add(Msg(str(m.topic), payload, time.time()))

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        assert self._client is not None
        fut = asyncio.run_coroutine_threadsafe(
            self._client.publish(topic, json.dumps(payload), qos=1), self._loop)
        fut.result(10)

    def mark(self) -> int:
        return self._msgs.mark()

    def messages(self) -> list[Msg]:
        return self._msgs.items()

    def wait_for(self, pred: Callable[[Msg], bool], timeout: float, what: str = "",
                 since: int = 0) -> Msg:
        return self._msgs.wait_for(pred, timeout, what, since)

    def cti_online(self, timeout: float = 30, since: int = 0) -> Msg:
        """The CTI's retained "online": it is published after every command subscription is
        in place, so a command sent after it is never lost to a CTI still starting."""
        msgs = self._msgs.items()  # a CTI that stopped before (another backend's) said "offline"
        for i in range(len(msgs) - 1, since - 1, -1):
            m = msgs[i]
            if m.topic == "hotline/cti/status" and m.payload in (b"offline", "offline"):
                since = i + 1
                break
        return self.wait_for(lambda m: m.topic == "hotline/cti/status"
                             and m.payload in (b"online", "online"), timeout, "CTI online",
                             since=since)

    def command(self, kind: str, user_id: str, payload: dict[str, Any],
                timeout: float = 15) -> dict[str, Any]:
        """Send a command and wait for its reply (matched by request_id)."""
        rid = uuid.uuid4().hex
        mark = self.mark()
        self.publish(f"hotline/cmd/{kind}/{user_id}", {**payload, "request_id": rid})
        reply = self.wait_for(lambda m: m.topic == f"hotline/{kind}/{user_id}/reply"
                              and isinstance(m.payload, dict)
                              and m.payload.get("request_id") == rid, timeout,
                              f"reply to {payload.get('action')} for {user_id}", since=mark)
        return dict(reply.payload)

    def stop(self) -> None:
        for task in asyncio.all_tasks(self._loop):
            self._loop.call_soon_threadsafe(task.cancel)
        self._thread.join(5)


def demo_staff() -> list[Any]:
    """The demo seed's staff (hotline/demo_seed.py) as broker users: A001..A050, S01..S05 and
    admin, for a broker started before the database is seeded."""
    from asterisk_conf.mosquitto import Staff
    from hotline.demo_seed import DEMO_AGENTS, DEMO_SUPERVISORS

    return ([Staff(f"A{i:03d}", "agent") for i in range(1, DEMO_AGENTS + 1)]
            + [Staff(f"S{i:02d}", "supervisor") for i in range(1, DEMO_SUPERVISORS + 1)]
            + [Staff("admin", "admin")])
