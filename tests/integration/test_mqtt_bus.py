"""cti.mqtt on a real Mosquitto: delivery, LWT, bounded queues, reconnect, publish after commit.

Every broker here is the hotline's own (asterisk_conf/mosquitto.py: no anonymous access, a
password file, an ACL), never the machine's broker on 1883, with a test-only user (HARNESS_USER)
allowed to read and write the tests' topic prefixes and nothing else. Most tests share one that
stack.start_mosquitto starts on the slot's port (each test under its own topic prefix, retained
messages swept afterwards). The restart tests start their own, from the same renderer with
persistence added, on a free port, so they can stop, freeze and restart it. Nothing is
skipped: a missing broker fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import aiomqtt
import pytest
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from asterisk_conf.mosquitto import broker_folder, credential, write_broker
from config.settings import load_settings
from cti.db.session import make_engine, make_session_factory
from cti.mqtt import MqttBus, PublishAfterCommit
from hotline import stack
from tests.support.ports import port
from tests.support.settings import write_test_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HOST = "127.0.0.1"
SHARED_PORT = port(11885, 10)  # this slot's; the suite's CTI broker is on port(11883, 10)
MOSQUITTO = "/usr/sbin/mosquitto"
REPO = Path(__file__).resolve().parents[2]
# the tests' own broker user: reads and writes the topic prefixes below, nothing of hotline/#
HARNESS_USER = "hotline-test-bus"
HARNESS_ACL = ("topic readwrite test/mqttbus/#", "topic readwrite it/#")


@dataclass(frozen=True)
class Login:
    """Where a broker listens and the harness user's credential on it."""

    port: int
    username: str
    password: str


# ------------------------------------------------------------------------------------- helpers


def _port_open(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return False
    return True


def _harness_login(state: Path, port: int) -> Login:
    password = credential(state, HARNESS_USER)
    assert password, f"no credential for {HARNESS_USER} in {state}"
    return Login(port, HARNESS_USER, password)


@pytest.fixture(scope="session")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Login]:
    """The hotline's broker as `hotline up` starts it (stack.start_mosquitto), on this slot's
    port, with no staff and the harness user."""
    state = tmp_path_factory.mktemp("mqtt-bus-broker")
    settings = load_settings(write_test_settings(state / "hotline.toml", {
        "paths": {"state_dir": str(state)},
        "mqtt": {"host": HOST, "port": SHARED_PORT, "tls_port": 0}}), {})
    assert stack.start_mosquitto(settings, staff=[], extra={HARNESS_USER: list(HARNESS_ACL)}) \
        == "started by hotline"
    try:
        yield _harness_login(state, SHARED_PORT)
    finally:
        stack.stop_mosquitto(settings)
        shutil.rmtree(broker_folder(state), ignore_errors=True)


@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes
    retain: bool


class Observer:
    """Another MQTT client (a desktop): subscribes, or resumes a persistent session, and records
    everything it receives."""

    def __init__(self, login: Login, topic_filter: str | None = None, *,
                 client_id: str | None = None, clean_session: bool = True) -> None:
        self.login = login
        self.topic_filter = topic_filter
        self.client_id = client_id or f"obs-{uuid.uuid4().hex[:10]}"
        self.clean_session = clean_session
        self.seen: list[Seen] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Observer:
        self.client = aiomqtt.Client(HOST, self.login.port, identifier=self.client_id,
                                     clean_session=self.clean_session,
                                     username=self.login.username,
                                     password=self.login.password)
        await self.client.__aenter__()
        if self.topic_filter:
            await self.client.subscribe(self.topic_filter, qos=1)
        self._task = asyncio.create_task(self._collect(), name="observer")
        return self

    async def _collect(self) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for m in self.client.messages:
                data = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                self.seen.append(Seen(m.topic.value, data, m.retain))
                self._changed.set()

    def payloads(self, topic: str) -> list[bytes]:
        return [s.payload for s in self.seen if s.topic == topic]

    async def wait_for(self, pred: Callable[[list[Seen]], bool], what: str,
                       timeout: float = 5.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not pred(self.seen):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            pytest.fail(f"{self.client_id}: no {what} within {timeout} s; seen {self.seen}")

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(aiomqtt.MqttError):
            await self.client.__aexit__(None, None, None)


async def eventually(pred: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll a condition that has no event of its own (process state, counters)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout} s")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(bus: MqttBus, *, connect: bool = True) -> AsyncIterator[MqttBus]:
    """Run the bus as the app would (a task in a group); on exit cancel it, surfacing a crash."""
    task = asyncio.create_task(bus.run(), name="mqtt-bus-under-test")
    try:
        if connect and not await bus.wait_subscribed(10):
            pytest.fail(f"bus did not connect and subscribe to {bus.host}:{bus.port}: "
                        f"{bus.stats()}")
        yield bus
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def prefix(shared_broker: Login) -> AsyncIterator[str]:
    """A topic prefix of this test's own on the shared broker; its retained messages are
    cleared afterwards (the broker persists them)."""
    p = f"test/mqttbus/{uuid.uuid4().hex[:12]}"
    yield p
    async with Observer(shared_broker, f"{p}/#") as sweep:
        # retained messages are sent on SUBSCRIBE, before a marker we publish afterwards
        await sweep.client.publish(f"{p}/_sweep", b"x", qos=1)
        await sweep.wait_for(lambda seen: any(s.topic == f"{p}/_sweep" for s in seen), "sweep")
        for s in sweep.seen:
            if s.retain:
                await sweep.client.publish(s.topic, b"", qos=1, retain=True)


def new_bus(login: Login, prefix: str, **kw: object) -> MqttBus:
    return MqttBus(HOST, login.port, f"cti-{uuid.uuid4().hex[:10]}",
                   status_topic=f"{prefix}/cti/status", username=login.username,
                   password=login.password, **kw)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- own mosquitto


class Broker:
    """A mosquitto of the test's own on a fixed free port, to stop, freeze and restart: the
    hotline's config (asterisk_conf/mosquitto.write_broker: no anonymous access, the password
    file, the ACL, the drop to user mosquitto) with the harness user.

    Persistence is on (a folder of the mosquitto user's inside the broker's) so an observer's
    persistent session, and what the broker queued for it while it was away, survive the
    restart: then what the bus sent after the restart is recorded whether the observer
    reconnects before or after the bus does."""

    def __init__(self, state: Path) -> None:
        with socket.socket() as s:
            s.bind((HOST, 0))
            self.port: int = s.getsockname()[1]
        settings = load_settings(write_test_settings(state / "hotline.toml", {
            "paths": {"state_dir": str(state)},
            "mqtt": {"host": HOST, "port": self.port, "tls_port": 0}}), {})
        files = write_broker(settings.mqtt, state, [], extra={HARNESS_USER: list(HARNESS_ACL)})
        self.folder = files.folder
        self.login = _harness_login(state, self.port)
        store = files.folder / "persistence"
        store.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:  # the broker drops to mosquitto before it writes there
            shutil.chown(store, "mosquitto", "mosquitto")
        rendered = files.conf.read_text(encoding="utf-8")
        assert "persistence false\n" in rendered and "allow_anonymous false\n" in rendered
        self.conf = files.folder / "mosquitto-persistent.conf"
        self.conf.write_text(rendered.replace(
            "persistence false\n", f"persistence true\npersistence_location {store}/\n"),
            encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert os.path.exists(MOSQUITTO), f"{MOSQUITTO} is not installed (Debian: mosquitto)"
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not _port_open(self.port):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                pytest.fail(f"mosquitto exited with {self.proc.returncode}: {err}")
            if time.monotonic() > deadline:
                pytest.fail(f"mosquitto did not listen on {self.port} within 10 s")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its persistence file
            self.proc.wait(10)
        self.proc = None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    try:
        b.start()
        yield b
        if b.proc is not None and b.proc.poll() is None:
            b.proc.send_signal(signal.SIGCONT)
        b.stop()
    finally:
        shutil.rmtree(b.folder, ignore_errors=True)


# ------------------------------------------------------------------- shared broker: delivery


async def test_the_shared_broker_is_the_hotlines_closed_one(shared_broker: Login,
                                                            prefix: str) -> None:
    """Not the machine's 1883: anonymous clients are refused, and the harness user reaches its
    test prefixes only (a message on hotline/# never arrives, after a positive control)."""
    from hotline.doctor import mqtt_connack

    assert shared_broker.port != 1883
    assert mqtt_connack(HOST, shared_broker.port) == 5  # not authorised
    async with Observer(shared_broker, "hotline/#") as spy, \
            Observer(shared_broker, f"{prefix}/#") as desk:
        await desk.client.publish("hotline/agents/A001/pop", b"forged", qos=1)
        await desk.client.publish(f"{prefix}/control", b"ok", qos=1)
        await desk.wait_for(lambda seen: any(s.topic == f"{prefix}/control" for s in seen),
                            "the positive control")
        await spy.client.publish(f"{prefix}/after", b"ok", qos=1)  # ordered after the forgery
        await desk.wait_for(lambda seen: any(s.topic == f"{prefix}/after" for s in seen),
                            "the spy's own message")
        assert spy.seen == []


async def test_publish_delivers_json_text_and_bytes(shared_broker: Login, prefix: str) -> None:
    bus = new_bus(shared_broker, prefix)
    at = datetime(2026, 7, 1, 1, 30, tzinfo=UTC)
    async with Observer(shared_broker, f"{prefix}/#") as desk, running(bus):
        bus.publish(f"{prefix}/agents/A001/state", {"state": "ready", "since": at,
                                                    "arrears": Decimal("12.30"), "name": "张三"},
                    retain=True)
        bus.publish(f"{prefix}/text", "在线", qos=0)
        bus.publish(f"{prefix}/raw", b"\x00\xff")
        assert await bus.wait_published(5)
        await desk.wait_for(lambda seen: len([s for s in seen if "/cti/" not in s.topic]) == 3,
                            "three messages")
        state = desk.payloads(f"{prefix}/agents/A001/state")
        assert [json.loads(p) for p in state] == [{"state": "ready",
                                                   "since": "2026-07-01T01:30:00.000+00:00",
                                                   "arrears": "12.30", "name": "张三"}]
        assert "张三".encode() in state[0]
        assert desk.payloads(f"{prefix}/text") == ["在线".encode()]
        assert desk.payloads(f"{prefix}/raw") == [b"\x00\xff"]
        stats = bus.stats()
        assert stats["published"] == 3 and stats["dropped"] == 0 and stats["queued"] == 0
        assert stats["connected"] is True

    # a desktop that (re)connects later gets the retained state at once
    async with Observer(shared_broker, f"{prefix}/agents/+/state") as late:
        await late.wait_for(lambda seen: len(seen) == 1, "retained state")
        assert late.seen[0].retain is True


async def test_cti_status_online_then_offline_on_clean_stop(shared_broker: Login,
                                                            prefix: str) -> None:
    bus = new_bus(shared_broker, prefix)
    status = f"{prefix}/cti/status"
    async with Observer(shared_broker, status) as desk:
        async with running(bus):
            await desk.wait_for(lambda seen: desk.payloads(status)[-1:] == [b"online"], "online")
        await desk.wait_for(lambda seen: desk.payloads(status)[-1:] == [b"offline"], "offline")
    async with Observer(shared_broker, status) as late:
        await late.wait_for(lambda seen: len(seen) == 1, "retained status")
        assert late.seen == [Seen(status, b"offline", True)]


async def test_lwt_offline_when_the_bus_process_dies(shared_broker: Login, prefix: str) -> None:
    status = f"{prefix}/cti/status"
    script = ("import asyncio, os, sys\n"
              "from cti.mqtt.bus import MqttBus\n"
              "asyncio.run(MqttBus('127.0.0.1', int(sys.argv[1]), sys.argv[2],"
              " status_topic=sys.argv[3], username=sys.argv[4],"
              " password=os.environ['TEST_MQTT_PASSWORD']).run())\n")
    async with Observer(shared_broker, status) as desk:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, str(shared_broker.port),
            f"cti-{uuid.uuid4().hex[:8]}", status, shared_broker.username, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO),
                 "TEST_MQTT_PASSWORD": shared_broker.password})
        try:
            await desk.wait_for(lambda seen: desk.payloads(status)[-1:] == [b"online"],
                                "online from the CTI process", timeout=15)
            proc.kill()  # SIGKILL: no DISCONNECT is sent, so only the will can tell
            async with asyncio.timeout(5):
                await proc.wait()
            await desk.wait_for(lambda seen: desk.payloads(status)[-1:] == [b"offline"],
                                "the last will")
        finally:
            if proc.returncode is None:
                proc.kill()
                async with asyncio.timeout(5):
                    await proc.wait()
    async with Observer(shared_broker, status) as late:
        await late.wait_for(lambda seen: len(seen) == 1, "retained status")
        assert late.seen == [Seen(status, b"offline", True)]


async def test_slow_handler_blocks_neither_network_nor_publishing(shared_broker: Login,
                                                                  prefix: str) -> None:
    bus = new_bus(shared_broker, prefix, max_queue=5)
    release = asyncio.Event()
    handled: list[bytes] = []

    async def slow(topic: str, payload: bytes) -> None:
        handled.append(payload)
        if payload == b"boom":
            raise RuntimeError("handler bug")
        await release.wait()

    bus.subscribe(f"{prefix}/cmd/#", slow)
    async with running(bus), Observer(shared_broker, f"{prefix}/out") as desk:
        for i in range(20):
            await desk.client.publish(f"{prefix}/cmd/x", str(i).encode(), qos=1)
        # message 0 is in the handler; 1..19 arrive while it waits: the inbox keeps the newest 5
        await eventually(lambda: bus.stats()["inbound_dropped"] == 14, "inbound drops")
        bus.publish(f"{prefix}/out", b"still publishing")
        await desk.wait_for(lambda seen: len(seen) == 1, "a publish while a handler is stuck")
        release.set()
        await eventually(lambda: len(handled) == 6, "the kept messages handled")
        assert handled == [b"0", b"15", b"16", b"17", b"18", b"19"]
        await desk.client.publish(f"{prefix}/cmd/x", b"boom", qos=1)
        await desk.client.publish(f"{prefix}/cmd/x", b"after", qos=1)
        await eventually(lambda: handled[-1:] == [b"after"], "a message after a handler error")
        assert bus.stats()["handler_errors"] == 1


async def test_subscription_added_while_connected(shared_broker: Login, prefix: str) -> None:
    bus = new_bus(shared_broker, prefix)
    got: list[tuple[str, bytes]] = []

    async def handler(topic: str, payload: bytes) -> None:
        got.append((topic, payload))

    async with running(bus), Observer(shared_broker) as other:
        bus.subscribe(f"{prefix}/late/+", handler)
        assert await bus.wait_subscribed(5)
        await other.client.publish(f"{prefix}/late/a", b"hi", qos=1)
        await other.client.publish(f"{prefix}/not/matched", b"no", qos=1)
        await eventually(lambda: got == [(f"{prefix}/late/a", b"hi")], "the late subscription")
        assert bus.stats()["subscriptions"] == 1


# --------------------------------------------------------------- shared broker: after commit


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(32), default="")


async def test_publish_after_commit_on_sqlite(shared_broker: Login, prefix: str,
                                              tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    Base.metadata.create_all(engine)
    sessions = make_session_factory(engine)
    bus = new_bus(shared_broker, prefix)
    outbox = PublishAfterCommit(bus)
    seen: list[tuple[int, bool]] = []

    async def desktop(topic: str, payload: bytes) -> None:
        # what a desktop would do on a pop: look the row up. It must be there already.
        note_id = json.loads(payload)["id"]
        with sessions() as s:
            seen.append((note_id, s.get(Note, note_id) is not None))

    def note(s: object, i: int) -> None:
        s.add(Note(id=i, text=f"n{i}"))  # type: ignore[attr-defined]
        outbox.add(s, f"{prefix}/notes/{i}", {"id": i})  # type: ignore[arg-type]

    bus.subscribe(f"{prefix}/notes/+", desktop)
    async with running(bus):
        with sessions.begin() as s:
            note(s, 1)
            assert outbox.pending(s) == 1 and bus.stats()["queued"] == 0  # held, not queued
        assert bus.stats()["queued"] == 1  # handed to the bus by the commit
        with sessions() as s:
            note(s, 2)
            s.flush()
            s.rollback()
        with pytest.raises(RuntimeError), sessions.begin() as s:
            note(s, 3)
            raise RuntimeError("the unit of work fails")
        s = sessions()
        note(s, 4)
        s.close()  # never committed
        queued = bus.stats()["queued"]
        with sessions.begin() as s:
            note(s, 5)
            savepoint = s.begin_nested()
            note(s, 6)
            savepoint.rollback()
            savepoint = s.begin_nested()
            note(s, 7)
            savepoint.commit()  # a released savepoint is not a commit: still held
            assert outbox.pending(s) == 2 and bus.stats()["queued"] == queued

        def in_worker_thread() -> None:  # how callcenter.ivr_services commits
            with sessions.begin() as s:
                note(s, 8)

        await asyncio.to_thread(in_worker_thread)
        # the bus keeps publish order, so once 8 is handled every earlier message was too
        await eventually(lambda: any(i == 8 for i, _ in seen), "the last committed message")
        assert seen == [(1, True), (5, True), (7, True), (8, True)]
    engine.dispose()


# -------------------------------------------------------------- own broker: down and restart


async def test_subscriptions_are_restored_after_broker_restart(broker: Broker) -> None:
    prefix = "it"
    bus = new_bus(broker.login, prefix, reconnect_min_s=0.05, reconnect_max_s=0.3)
    got: list[bytes] = []

    async def handler(topic: str, payload: bytes) -> None:
        got.append(payload)

    bus.subscribe(f"{prefix}/cmd/#", handler)
    async with running(bus):
        async with Observer(broker.login) as other:
            await other.client.publish(f"{prefix}/cmd/a", b"before", qos=1)
            await eventually(lambda: got == [b"before"], "a command before the restart")
        broker.stop()
        await eventually(lambda: not bus.connected.is_set(), "the bus noticing the broker left")
        broker.start()
        assert await bus.wait_subscribed(10), bus.stats()
        # the bus's session is clean, so the restarted broker knew nothing of its subscription
        async with Observer(broker.login) as other:
            await other.client.publish(f"{prefix}/cmd/b", b"after", qos=1)
            await eventually(lambda: got == [b"before", b"after"], "a command after the restart")
        assert bus.stats()["reconnects"] == 1


async def test_outbox_while_broker_down_is_bounded_and_coalesced(broker: Broker) -> None:
    prefix = "it"
    bus = new_bus(broker.login, prefix, max_queue=5, reconnect_min_s=0.05, reconnect_max_s=0.3)
    desk_id = f"desk-{uuid.uuid4().hex[:8]}"
    out = f"{prefix}/out"
    async with running(bus):
        async with Observer(broker.login, f"{out}/#", client_id=desk_id,
                            clean_session=False) as desk:
            bus.publish(f"{out}/pre", b"pre")
            await desk.wait_for(lambda seen: len(seen) == 1, "a message before the outage")
        broker.stop()
        await eventually(lambda: not bus.connected.is_set(), "the bus noticing the broker left")

        started = time.perf_counter()
        for i in range(20):
            bus.publish(f"{out}/fifo", f"f{i}")  # 20 events into a FIFO of 5
        for i in range(10):
            bus.publish(f"{out}/state", f"s{i}", retain=True)  # state: only s9 may go out
        bus.publish(f"{out}/state2", "x", retain=True)
        bus.publish(f"{out}/marker", "end")
        assert time.perf_counter() - started < 0.5  # never blocks, never raised
        stats = bus.stats()
        assert (stats["dropped"], stats["coalesced"], stats["queued"]) == (16, 9, 7)
        assert not await bus.wait_published(0.05)  # nothing can leave while the broker is down

        published_before = stats["published"]
        broker.start()
        assert await bus.wait_published(10), bus.stats()
        # the desktop's persistent session got everything the bus sent after the restart
        async with Observer(broker.login, client_id=desk_id, clean_session=False) as desk:
            await desk.wait_for(lambda seen: any(s.topic == f"{out}/marker" for s in seen),
                                "the marker")
            assert [(s.topic.removeprefix(f"{out}/"), s.payload) for s in desk.seen] == [
                ("fifo", b"f16"), ("fifo", b"f17"), ("fifo", b"f18"), ("fifo", b"f19"),
                ("state", b"s9"), ("state2", b"x"), ("marker", b"end")]
        assert bus.stats()["published"] - published_before == 7
        assert bus.stats()["reconnects"] == 1


async def test_broker_absent_at_start_then_up(broker: Broker) -> None:
    broker.stop()
    bus = new_bus(broker.login, "it", reconnect_min_s=0.05, reconnect_max_s=0.3)
    async with running(bus, connect=False):
        bus.publish("it/agents/A001/state", {"state": "ready"}, retain=True)
        assert not await bus.wait_published(0.2)
        assert bus.stats()["connected"] is False and bus.stats()["queued"] == 1
        broker.start()
        assert await bus.wait_published(10), bus.stats()
        async with Observer(broker.login, "it/agents/+/state") as desk:
            await desk.wait_for(lambda seen: len(seen) == 1, "the retained state")
        assert bus.stats()["reconnects"] == 0  # a first connection is not a reconnect


async def test_frozen_broker_times_out_and_recovers(broker: Broker) -> None:
    bus = new_bus(broker.login, "it", publish_timeout_s=0.5, reconnect_min_s=0.05,
                  reconnect_max_s=0.3)
    async with running(bus), Observer(broker.login, "it/out") as desk:
        broker.signal(signal.SIGSTOP)  # the socket stays open; no PUBACK ever comes
        bus.publish("it/out", b"while frozen")
        await eventually(lambda: not bus.connected.is_set(), "the publish deadline")
        assert bus.stats()["queued"] == 1  # the message went back to the outbox
        broker.signal(signal.SIGCONT)
        assert await bus.wait_published(10), bus.stats()
        # QoS 1 is at least once: the broker may also forward the first, unacknowledged copy
        await desk.wait_for(lambda seen: len(seen) >= 1, "the message after the thaw")
        assert set(desk.payloads("it/out")) == {b"while frozen"}
        await eventually(bus.connected.is_set, "the bus connected again")

