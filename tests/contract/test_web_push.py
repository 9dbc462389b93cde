"""WebSocket push (/ws): the CTI's MQTT events relayed to desktops, filtered per user on the
server; cookie auth, same-origin check, session end. Starlette's test client, no broker: the
hub's MQTT handler is called as the bus would call it."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

with warnings.catch_warnings():
    # starlette would rather have httpx2 for its test client; httpx is what we pin
    warnings.simplefilter("ignore", DeprecationWarning)
    from starlette.testclient import TestClient

from agent_desktop import push
from agent_desktop.app import create_app
from config.settings import load_settings
from cti.db.session import make_engine, make_session_factory
from hotline.wiring import build_services
from tests.support.fakes import Clock, FakeBus
from tests.support.seeded_db import SeededDb

PASSWORD = "95598"
T0 = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def db(seeded_db: SeededDb, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    engine = make_engine(seeded_db(tmp_path_factory.mktemp("push"), now=T0))
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def app(db: Any, tmp_path: Path) -> Iterator[tuple[TestClient, FakeBus, Clock]]:
    bus, clock = FakeBus(), Clock(T0)
    settings = replace(load_settings(env={}), state_dir=tmp_path)
    application = create_app(build_services(settings, db, bus=bus, clock=clock)
                             .web_context(bus=bus))
    with TestClient(application) as client:  # http://testserver, as its websockets use
        yield client, bus, clock


def login(client: TestClient, user: str, seat: str | None = None) -> None:
    r = client.post("/api/auth/login", json={"user_id": user, "password": PASSWORD,
                                             **({"seat": seat} if seat else {})})
    assert r.status_code == 200, r.text


def sender(client: TestClient, bus: FakeBus) -> Callable[[str, dict[str, Any]], None]:
    def send(topic: str, payload: dict[str, Any]) -> None:
        handler = next(h for f, h in bus.handlers.items()
                       if f.split("/")[:2] == topic.split("/")[:2])
        client.portal.call(handler, topic, json.dumps(payload).encode())  # type: ignore[union-attr]
    return send


def test_the_hub_subscribes_to_the_ctis_topics(app: tuple[TestClient, FakeBus, Clock]) -> None:
    _client, bus, _ = app
    assert set(bus.handlers) == set(push.FILTERS)


def test_an_agent_gets_only_their_own_state_and_pops_and_the_queue_figures(
        app: tuple[TestClient, FakeBus, Clock]) -> None:
    client, bus, _ = app
    send = sender(client, bus)
    login(client, "A001", "seat01")
    with client.websocket_connect("/ws") as ws:
        send("hotline/agents/A002/state", {"agent_id": "A002", "state": "ready"})
        send("hotline/agents/A001/state", {"agent_id": "A001", "state": "ready"})
        assert ws.receive_json() == {"type": "agent_state",
                                     "data": {"agent_id": "A001", "state": "ready"}}
        send("hotline/agents/A002/pop", {"call_id": "c2"})
        send("hotline/calls/c2/events", {"event": "offered"})
        send("hotline/supervisors/alerts", {"number": "20261127001"})
        send("hotline/agents/A001/pop", {"call_id": "c1", "caller_number": "13800000001"})
        assert ws.receive_json() == {"type": "pop", "data": {
            "call_id": "c1", "caller_number": "13800000001"}}
        send("hotline/queues/general/stats", {"skill": "general", "waiting": 3})
        assert ws.receive_json()["type"] == "queue_stats"
        ws.send_text("ping")
        assert ws.receive_json() == {"type": "pong", "data": {}}


def test_a_supervisor_gets_everything_and_the_current_states_on_connect(
        app: tuple[TestClient, FakeBus, Clock]) -> None:
    client, bus, _ = app
    send = sender(client, bus)
    send("hotline/agents/A007/state", {"agent_id": "A007", "state": "on_call"})
    send("hotline/queues/repair/stats", {"skill": "repair", "waiting": 1})
    login(client, "S01")
    with client.websocket_connect("/ws") as ws:
        first = [ws.receive_json(), ws.receive_json()]
        assert {m["type"] for m in first} == {"agent_state", "queue_stats"}
        for topic, kind in [("hotline/agents/A009/pop", "pop"),
                            ("hotline/calls/c9/events", "call_event"),
                            ("hotline/supervisors/alerts", "sla_alert")]:
            send(topic, {"x": 1})
            assert ws.receive_json() == {"type": kind, "data": {"x": 1}}


def test_no_session_or_another_sites_page_is_refused(
        app: tuple[TestClient, FakeBus, Clock]) -> None:
    client, _, _ = app
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws"):
        pass
    assert refused.value.code == push.CLOSE_UNAUTHORIZED
    login(client, "S01")
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(
            "/ws", headers={"origin": "http://evil.example"}):
        pass
    assert refused.value.code == push.CLOSE_UNAUTHORIZED
    with client.websocket_connect("/ws", headers={"origin": "http://testserver"}) as ws:
        ws.send_text("ping")
        assert ws.receive_json()["type"] == "pong"


def test_the_socket_closes_when_the_session_ends(app: tuple[TestClient, FakeBus, Clock],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    client, _, clock = app
    monkeypatch.setattr(push, "RECHECK_SESSION_S", 0.2)
    login(client, "S02")
    with client.websocket_connect("/ws") as ws:
        clock.now += timedelta(hours=13)  # past the absolute limit
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == push.CLOSE_UNAUTHORIZED


def test_the_storm_day_state_reaches_agents_and_is_kept_for_late_desktops(
        app: tuple[TestClient, FakeBus, Clock]) -> None:
    """hotline/outages and hotline/storm are retained state: every desktop gets them, and one
    that connects later gets the last of each at once (the storm banner)."""
    client, bus, _ = app
    send = sender(client, bus)
    send("hotline/storm", {"on": True, "by": "S01", "since": "2026-11-27T02:30:00.000+00:00"})
    login(client, "A001", "seat01")
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"type": "storm", "data": {
            "on": True, "by": "S01", "since": "2026-11-27T02:30:00.000+00:00"}}
        send("hotline/outages", {"version": 7, "active": 3, "suspected": 1})
        assert ws.receive_json() == {"type": "outages", "data": {
            "version": 7, "active": 3, "suspected": 1}}
        send("hotline/storm", {"on": False, "by": "S01"})
        assert ws.receive_json()["data"]["on"] is False
