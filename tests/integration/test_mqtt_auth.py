"""MQTT logins and forces against the real CTI on the hotline's broker (issue 10, defect 2): a
password on the bus is refused unread, logins share the web logins' limiter and are audited,
supervisor forces are audited, and a desktop's own credential (GET /api/auth/mqtt) reaches only
its own topics.

The audit rows are read by this (root) process from the database the CTI (user hotline) writes:
on SQLite that needs stack.secure_cti_files to leave this process's WAL locks alone
(tests/contract/test_cti_files_sqlite.py)."""

from __future__ import annotations

import asyncio
import json

import aiomqtt
import httpx
from sqlalchemy import select

from cti.db.models_recordings import AuditLog
from hotline import stack
from tests.integration.conftest import Backend, CtiProcess
from tests.support.mqtt import MqttWatcher

PASSWORD = "95598"  # the demo password: only ever sent to the web API here


def _audit(backend: Backend, action: str, actor: str, at_least: int = 1) -> list[AuditLog]:
    """The audit rows of actor's action, once there are at_least of them (10 s deadline)."""
    rows: list[AuditLog] = []

    def enough() -> bool:
        nonlocal rows
        with backend.sessions() as s:
            rows = list(s.scalars(select(AuditLog).where(AuditLog.action == action,
                                                         AuditLog.actor == actor)
                                  .order_by(AuditLog.id)))
        return len(rows) >= at_least

    try:
        stack.wait_until(enough, 10, f"{at_least} audit rows {action} by {actor}")
    except stack.StackError:
        pass
    return rows


def test_a_password_on_the_bus_is_refused_limited_and_audited(
        cti: CtiProcess, mqtt: MqttWatcher, backend: Backend) -> None:
    mqtt.cti_online()
    agent = "A041"
    r = mqtt.command("agents", agent, {"action": "login", "seat": "seat41", "password": PASSWORD})
    assert r["ok"] is False and r["error"] == "password_refused", r
    assert "web API" in r["message"] and PASSWORD not in json.dumps(r)
    rows = _audit(backend, "mqtt.login", agent)
    assert rows and rows[-1].allowed is False
    assert rows[-1].detail.get("error") == "password_refused"
    assert PASSWORD not in json.dumps(rows[-1].detail)
    # the limiter counts them per account, as for web logins: a few more and the account waits
    errors = [mqtt.command("agents", agent, {"action": "login", "password": "x"})["error"]
              for _ in range(6)]
    assert errors[-1] == "rate_limited", errors
    # a login without a password is admitted again only once the block is over; the block
    # is bounded by [web] login_backoff_max_s: forgive it for the tests after this one
    from cti.db.login_limits import forgive

    with backend.sessions.begin() as s:
        forgive(s, f"user:{agent}")
    ok = mqtt.command("agents", agent, {"action": "login", "seat": "seat41"})
    assert ok["ok"] is True and "token" not in ok, ok
    assert _audit(backend, "mqtt.login", agent)[-1].allowed is True
    assert mqtt.command("agents", agent, {"action": "logout"})["ok"]


def test_supervisor_forces_over_mqtt_are_audited(cti: CtiProcess, mqtt: MqttWatcher,
                                                 backend: Backend) -> None:
    mqtt.cti_online()
    agent, sup = "A042", "S02"
    assert mqtt.command("agents", agent, {"action": "login", "seat": "seat42"})["ok"]
    r = mqtt.command("supervisors", sup, {"action": "force", "agent_id": agent,
                                          "state": "logged_out"})
    assert r["ok"], r
    row = _audit(backend, "agent.force_state", sup)[-1]
    assert row.allowed is True and row.target == agent and row.detail["via"] == "mqtt"
    # a supervisor never forces a supervisor or the admin: refused and audited
    r = mqtt.command("supervisors", sup, {"action": "force", "agent_id": "admin",
                                          "state": "not_ready"})
    assert r == {"ok": False, "error": "forbidden", "request_id": r["request_id"]}
    row = _audit(backend, "agent.force_state", sup)[-1]
    assert row.allowed is False and row.target == "admin"


def test_a_desktop_gets_its_own_credential_and_reaches_only_its_topics(
        cti: CtiProcess, mqtt: MqttWatcher, web: str) -> None:
    """What the endpoint hands out (own credential only, every role, 401 anonymous) is
    tests/contract/test_web_mqtt_credential.py; here the credential a desktop gets from the
    running CTI works on the running broker, and only for its own topics."""
    mqtt.cti_online()
    with httpx.Client(base_url=web, timeout=15) as c:
        login = c.post("/api/auth/login", json={"user_id": "A043", "password": PASSWORD,
                                                "seat": "seat43"})
        assert login.status_code == 200, login.text
        r = c.get("/api/auth/mqtt")
        assert r.status_code == 200, r.text
        cred = r.json()
        assert cred["username"] == "A043" and cred["port"] == cti.settings.mqtt.port
        assert c.post("/api/auth/logout").status_code == 204

    async def run() -> None:
        async with aiomqtt.Client("127.0.0.1", cred["port"], username=cred["username"],
                                  password=cred["password"], timeout=5) as desk:
            await desk.subscribe("hotline/agents/A043/reply", qos=1)
            await desk.subscribe("hotline/agents/A044/reply", qos=1)
            # its own command is taken (the reply comes back); another agent's never arrives
            await desk.publish("hotline/cmd/agents/A044",
                               json.dumps({"action": "logout", "request_id": "x"}), qos=1)
            await desk.publish("hotline/cmd/agents/A043",
                               json.dumps({"action": "logout", "request_id": "own"}), qos=1)
            async with asyncio.timeout(15):
                async for m in desk.messages:
                    assert str(m.topic) == "hotline/agents/A043/reply", m.topic
                    if json.loads(m.payload).get("request_id") == "own":  # type: ignore[arg-type]
                        break

    asyncio.run(run())
    assert not [m for m in mqtt.messages() if m.topic == "hotline/agents/A044/reply"
                and isinstance(m.payload, dict) and m.payload.get("request_id") == "x"]
