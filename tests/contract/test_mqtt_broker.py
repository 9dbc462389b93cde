"""The hotline's own broker (issue 10, defect 2), against a real Debian mosquitto started by
hotline/stack.py on files rendered by asterisk_conf/mosquitto.py: no anonymous client, a
credential per client, an ACL that keeps each desktop to its own topics, TLS on its own port.

Mosquitto denies a subscription or a publish the ACL does not grant *silently* (the message is
just not delivered), so each denial is shown as a non-delivery within a deadline that starts
after a positive control message, sent the same way, has arrived.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import stat
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import pytest

from asterisk_conf import mosquitto as broker
from config.settings import Settings, load_settings
from hotline import doctor, stack
from tests.support.ports import port
from tests.support.settings import write_test_settings

PORT = port(11983, 10)
TLS_PORT = port(11984, 10)
STAFF = [broker.Staff("A001", "agent"), broker.Staff("A002", "agent"),
         broker.Staff("S01", "supervisor"), broker.Staff("admin", "admin")]
DEADLINE_S = 1.5  # how long a denied message is waited for after the control one arrived


@pytest.fixture(scope="module")
def hotline_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    state = tmp_path_factory.mktemp("mqtt-broker")
    path = write_test_settings(state / "hotline.toml", {
        "paths": {"state_dir": str(state)},
        "mqtt": {"host": "127.0.0.1", "port": PORT, "tls_port": TLS_PORT}})
    settings = load_settings(path, {})
    assert stack.start_mosquitto(settings, staff=STAFF) == "started by hotline"
    yield settings
    stack.stop_mosquitto(settings)


def creds(settings: Settings, user: str) -> dict[str, str]:
    password = broker.credential(settings.state_dir, user)
    assert password, f"no credential for {user}"
    return {"username": user, "password": password}


@asynccontextmanager
async def client(settings: Settings, user: str | None, **kw: object
                 ) -> AsyncIterator[aiomqtt.Client]:
    login = creds(settings, user) if user else {}
    port = int(kw.pop("port", settings.mqtt.port))  # type: ignore[call-overload]
    async with aiomqtt.Client("127.0.0.1", port,
                              identifier=f"t-{user}-{uuid.uuid4().hex[:6]}", timeout=5,
                              **login, **kw) as c:  # type: ignore[arg-type]
        yield c


async def _next(c: aiomqtt.Client, topics: set[str], timeout: float) -> set[str]:
    """The topics among `topics` that arrive on c within timeout (stops when all are in)."""
    seen: set[str] = set()
    try:
        async with asyncio.timeout(timeout):
            async for m in c.messages:
                if str(m.topic) in topics:
                    seen.add(str(m.topic))
                    if seen == topics:
                        break
    except TimeoutError:
        pass
    return seen


def test_an_anonymous_client_is_refused(hotline_broker: Settings) -> None:
    check = doctor.check_mqtt_anonymous("127.0.0.1", hotline_broker.mqtt.port)
    assert check.status == doctor.PASS, check
    assert doctor.mqtt_connack("127.0.0.1", hotline_broker.mqtt.port) == 5  # not authorised

    async def wrong_password() -> None:
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", hotline_broker.mqtt.port, username="A001",
                                      password="95598", timeout=5):
                pass

    asyncio.run(wrong_password())


def test_an_agent_reads_only_its_own_pop_and_reply(hotline_broker: Settings) -> None:
    s = hotline_broker

    async def run() -> None:
        async with client(s, "A001") as a1, client(s, broker.CTI_USER) as cti:
            for t in ("hotline/agents/A001/pop", "hotline/agents/A002/pop",
                      "hotline/agents/A002/reply", "hotline/agents/A002/state",
                      "hotline/cmd/agents/A002"):
                await a1.subscribe(t, qos=1)
            for t in ("hotline/agents/A002/pop", "hotline/agents/A002/reply",
                      "hotline/agents/A002/state", "hotline/agents/A001/pop"):
                await cti.publish(t, b"{}", qos=1)
            # the control (its own pop) arrives; the others' never do
            assert await _next(a1, {"hotline/agents/A001/pop"}, 10) == {"hotline/agents/A001/pop"}
            stolen = await _next(a1, {"hotline/agents/A002/pop", "hotline/agents/A002/reply",
                                      "hotline/agents/A002/state"}, DEADLINE_S)
            assert stolen == set()

    asyncio.run(run())


def test_an_agent_cannot_command_another_or_publish_state_or_pops(
        hotline_broker: Settings) -> None:
    s = hotline_broker

    async def run() -> None:
        async with client(s, "A001") as a1, client(s, broker.CTI_USER) as cti:
            await cti.subscribe("hotline/#", qos=1)
            await a1.publish("hotline/cmd/agents/A001", b'{"action":"ready"}', qos=1)
            assert await _next(cti, {"hotline/cmd/agents/A001"}, 10) == {
                "hotline/cmd/agents/A001"}
            forged = {"hotline/cmd/agents/A002", "hotline/cmd/supervisors/S01",
                      "hotline/agents/A001/state", "hotline/agents/A002/pop",
                      "hotline/calls/1.2/events", "hotline/supervisors/alerts",
                      "hotline/cti/status", "hotline/queues/general/stats"}
            for t in sorted(forged):
                await a1.publish(t, b'{"forged":true}', qos=1)
            await a1.publish("hotline/cmd/agents/A001", b'{"action":"after"}', qos=1)
            got = await _next(cti, forged | {"hotline/cmd/agents/A001"}, DEADLINE_S + 3)
            assert got == {"hotline/cmd/agents/A001"}, f"forged and delivered: {got}"

    asyncio.run(run())


def test_a_supervisor_reads_state_and_alerts_but_no_pops(hotline_broker: Settings) -> None:
    s = hotline_broker

    async def run() -> None:
        async with client(s, "S01") as sup, client(s, broker.OBSERVER_USER) as obs, \
                client(s, broker.CTI_USER) as cti:
            for c in (sup, obs):
                await c.subscribe("hotline/#", qos=1)
            await cti.publish("hotline/agents/A001/pop", b"{}", qos=1)
            await cti.publish("hotline/agents/A001/reply", b"{}", qos=1)
            await cti.publish("hotline/cmd/agents/A001", b"{}", qos=1)
            await cti.publish("hotline/supervisors/S01/reply", b"{}", qos=1)
            await cti.publish("hotline/agents/A001/state", b"{}", qos=1)
            await cti.publish("hotline/supervisors/alerts", b"{}", qos=1)
            public = {"hotline/agents/A001/state", "hotline/supervisors/alerts"}
            private = {"hotline/agents/A001/pop", "hotline/agents/A001/reply",
                       "hotline/cmd/agents/A001"}
            assert await _next(sup, public | {"hotline/supervisors/S01/reply"}, 10) == \
                public | {"hotline/supervisors/S01/reply"}
            assert await _next(obs, public, 10) == public
            assert await _next(sup, private, DEADLINE_S) == set()
            assert await _next(obs, private | {"hotline/supervisors/S01/reply"},
                               DEADLINE_S) == set()
            # the observer publishes nothing
            await obs.publish("hotline/agents/A002/state", b"{}", qos=1)
            await cti.subscribe("hotline/agents/A002/state", qos=1)
            assert await _next(cti, {"hotline/agents/A002/state"}, DEADLINE_S) == set()

    asyncio.run(run())


def test_the_tls_listener_takes_a_client_that_trusts_the_ca(hotline_broker: Settings) -> None:
    s = hotline_broker
    ca = broker.tls_ca(s.state_dir)
    assert ca.is_file()

    async def run() -> None:
        ctx = ssl.create_default_context(cafile=str(ca))
        async with client(s, "A001", port=s.mqtt.tls_port, tls_context=ctx) as a1, \
                client(s, broker.CTI_USER) as cti:
            await a1.subscribe("hotline/agents/A001/pop", qos=1)
            await cti.publish("hotline/agents/A001/pop", b"{}", qos=1)
            assert await _next(a1, {"hotline/agents/A001/pop"}, 10) == {
                "hotline/agents/A001/pop"}
        with pytest.raises(aiomqtt.MqttError):  # a client that trusts nothing is refused
            async with client(s, "A001", port=s.mqtt.tls_port,
                              tls_context=ssl.create_default_context()):
                pass

    asyncio.run(run())
    # the plain port still refuses anonymous clients
    assert doctor.mqtt_connack("127.0.0.1", s.mqtt.port) == 5


def test_files_are_private_hashed_and_the_broker_is_unprivileged(
        hotline_broker: Settings) -> None:
    s = hotline_broker
    folder = broker.broker_folder(s.state_dir)
    creds_file = broker.credentials_path(s.state_dir)
    assert stat.S_IMODE(creds_file.stat().st_mode) & 0o037 == 0
    doc = json.loads(creds_file.read_text())
    assert set(doc) == {broker.CTI_USER, broker.OBSERVER_USER, "A001", "A002", "S01", "admin"}
    passwords = (folder / "passwords").read_text()
    for user, pw in doc.items():
        assert f"{user}:$7$" in passwords and pw not in passwords  # hashed (PBKDF2-SHA512)
    conf = (folder / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and f"listener {PORT} 127.0.0.1" in conf
    for p in (folder / "passwords", folder / "acl", folder / "mosquitto.conf",
              folder / "tls" / "key.pem"):
        assert stat.S_IMODE(p.stat().st_mode) & 0o027 == 0, p
    pid = stack.pid_alive(stack.paths(s).mosquitto_pid)
    assert pid
    uid = next(int(ln.split()[1]) for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
               if ln.startswith("Uid:"))
    if os.geteuid() == 0:
        import pwd

        assert uid == pwd.getpwnam("mosquitto").pw_uid  # dropped root


def test_hotline_up_never_reuses_another_broker(tmp_path: Path,
                                                hotline_broker: Settings) -> None:
    """A second deployment configured onto the port the first one's broker holds refuses to
    start rather than use it; a running broker of its own is reloaded (make up is
    idempotent)."""
    other = load_settings(write_test_settings(tmp_path / "hotline.toml", {
        "paths": {"state_dir": str(tmp_path)},
        "mqtt": {"host": "127.0.0.1", "port": PORT}}), {})
    with pytest.raises(stack.StackError, match="taken by another process"):
        stack.start_mosquitto(other, staff=STAFF)
    assert stack.start_mosquitto(hotline_broker, staff=STAFF) == "reloaded its users"
