"""Fakes at the ports, one definition each: the AMI, the PBX, the MQTT bus, the ACD's live
calls, a bill as the IVR's database port hands it back and a clock the test moves. They record
what reached them and answer as the real port would; tests assert on those outcomes, never on
mock calls."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from cti.ami.client import NEVER_IDEMPOTENT, AmiActionError
from recorder.supervision_policy import LiveCall


class FakeAmi:
    """The AMI port: records every action and answers Success. Getvar reads `variables`;
    DBGet, DBPut and DBDel work on `astdb` ("family/key" -> value), DBGet of a missing key
    fails as Asterisk's does. An action the client never re-sends (Originate, Redirect, ...)
    marked idempotent fails the test."""

    def __init__(self, *, variables: Mapping[str, str] | None = None,
                 astdb: Mapping[str, str] | None = None) -> None:
        self.variables = dict(variables or {})
        self.astdb = dict(astdb or {})
        self.sent: list[dict[str, Any]] = []
        self.idempotent: list[bool] = []  # as each action of `sent` was marked

    async def action(self, action: Mapping[str, Any], *, timeout: float | None = None,
                     idempotent: bool, as_list: bool | None = None) -> Any:
        name = action["Action"]
        assert not (idempotent and name.lower() in NEVER_IDEMPOTENT), \
            f"{name} must never be retried"
        self.sent.append(dict(action))
        self.idempotent.append(idempotent)
        key = f"{action.get('Family')}/{action.get('Key')}"
        if name == "Getvar":
            return {"Response": "Success", "Value": self.variables[action["Variable"]]}
        if name == "DBGet":
            if key not in self.astdb:
                raise AmiActionError("DBGet", {"Response": "Error",
                                               "Message": "Database entry not found"})
            return [{"Response": "Success"},
                    {"Event": "DBGetResponse", "Family": action["Family"],
                     "Key": action["Key"], "Val": self.astdb[key]},
                    {"Event": "DBGetComplete"}]
        if name == "DBPut":
            self.astdb[key] = str(action.get("Val", ""))
        if name == "DBDel":
            self.astdb.pop(key, None)
        return {"Response": "Success"}

    def named(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.sent if a["Action"] == name]


class FakePbx:
    """The ACD's PBX port (callcenter.acd_service.Pbx): records the seats it was told to ring,
    the callbacks it dialled and each seat's failover-queue membership."""

    def __init__(self) -> None:
        self.rung: list[tuple[str, str]] = []
        self.callbacks: list[tuple[str, str, str]] = []  # (seat, call_id, number)
        self.clicked: list[tuple[str, str, str]] = []  # click-to-calls: (seat, call_id, number)
        self.failover_members: dict[str, bool] = {}
        self.overflowed: list[tuple[str, list[str]]] = []  # (channel, all-busy prompt ids)

    async def ring_seat(self, channel: str, seat: str) -> None:
        self.rung.append((channel, seat))

    async def announce(self, channel: str, prompt_ids: list[str], lang: str) -> None:
        pass

    async def overflow(self, channel: str, target: str, prompt_ids: Sequence[str] = (),
                       lang: str = "zh") -> None:
        self.overflowed.append((channel, list(prompt_ids)))

    async def heartbeat(self) -> None:
        pass

    async def callback(self, seat: str, call_id: str, number: str, ring_s: float) -> None:
        self.callbacks.append((seat, call_id, number))

    async def click_to_call(self, seat: str, call_id: str, number: str, ring_s: float) -> None:
        self.clicked.append((seat, call_id, number))

    async def failover_member(self, seat: str, member: bool) -> None:
        self.failover_members[seat] = member


@dataclass(frozen=True)
class Bill:
    """A bill as the IVR reads it from its database port's "bill" query (the fields of
    cti.db.ivr_queries.BillInfo that the flows use)."""

    account_no: str
    amount_due: Decimal
    due_date: date | None
    last_payment_amount: Decimal | None
    last_payment_at: datetime | None


def _decoded(payload: Any) -> Any:
    if isinstance(payload, Mapping):
        return dict(payload)
    try:
        return json.loads(payload)
    except ValueError:  # a plain status word such as b"online"
        return payload.decode() if isinstance(payload, bytes) else payload


class FakeBus:
    """The MQTT port: records what was published, as (topic, payload decoded from JSON), with
    the payload as given in `raw` and (topic, qos, retain) in `options`; keeps subscribed
    handlers so a test can deliver a message as the broker would. Thread-safe: the outbox
    publishes from worker threads too."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.raw: list[tuple[str, Any]] = []
        self.options: list[tuple[str, int, bool]] = []
        self.handlers: dict[str, Callable[..., Any]] = {}
        self._lock = threading.Lock()

    def publish(self, topic: str, payload: Any, *, qos: int = 1, retain: bool = False) -> None:
        with self._lock:
            self.raw.append((topic, payload))
            self.options.append((topic, qos, retain))
            self.sent.append((topic, _decoded(payload)))

    def subscribe(self, topic_filter: str, handler: Callable[..., Any], *, qos: int = 1) -> None:
        self.handlers[topic_filter] = handler

    def on(self, topic: str) -> list[Any]:
        """The decoded payloads published on `topic`, in order."""
        with self._lock:
            return [p for t, p in self.sent if t == topic]


class LiveCalls:
    """The ACD's view of the calls up now, for supervision."""

    def __init__(self, *calls: LiveCall) -> None:
        self.calls = {c.call_id: c for c in calls}

    def live_call(self, call_id: str) -> LiveCall | None:
        return self.calls.get(call_id)


class Clock:
    """A clock the test moves: clock() is `now`, which moves by `step` after each reading
    (for code that needs every reading to differ). `epoch` reads it as time.time() would."""

    def __init__(self, now: datetime, step: timedelta = timedelta(0)) -> None:
        self.now = now
        self.step = step

    def __call__(self) -> datetime:
        now = self.now
        self.now += self.step
        return now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now

    def epoch(self) -> float:
        return self().timestamp()
