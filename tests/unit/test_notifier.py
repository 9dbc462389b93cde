"""cti.notifier: every topic and payload the CTI sends, to MQTT and to in-process listeners."""

from __future__ import annotations

import ast
import asyncio
import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from acd.model import Agent, AgentState, QueueStats
from config import topics
from config.recorder import RecorderSettings
from cti.notifier import LOCAL_FILTERS, SUPERVISOR_ALERTS_TOPIC, Message, Notifier, classify
from recorder import service as recorder_service
from recorder.naming import IN_CHROOT_DIR
from recorder.service import RecorderService
from tests.support.fakes import FakeBus
from workorders.service import WorkOrderAlert

ROOT = Path(__file__).resolve().parents[2]
AT = 1795791347.21


def _agent() -> Agent:
    return Agent(agent_id="A001", seat="seat07", skills={"general": 3}, state=AgentState.ON_CALL,
                 state_since=AT, call_id="1795791338.0")


def _stats() -> QueueStats:
    return QueueStats(skill="repair", waiting=7, callbacks_waiting=1, longest_wait_s=84.31,
                      agents={"ready": 2, "on_call": 11}, service_level=0.8125, answered=412,
                      answered_in_sl=335, abandoned=19, abandoned_after_sl=10,
                      callbacks_requested=3, callbacks_after_sl=0, callbacks_connected=2,
                      overflowed=0, aht_s=183.24)


def test_every_message_on_its_topic_with_its_documented_payload() -> None:
    bus = FakeBus()
    n = Notifier(bus)
    n.agent_state(_agent(), wrap_up_s=15)
    n.screen_pop("A001", {"call_id": "1795791338.0", "caller_number": "13022690332",
                          "accounts": []}, seat="seat07", skill="general", attempt=1)
    n.call_event("1795791338.0", "offered", at=AT, agent_id="A001", seat="seat07",
                 skill="general", detail={"attempt": 1})
    n.queue_stats(_stats(), at=AT)
    n.reply("agents", "A001", {"ok": True, "request_id": "r1"})
    n.supervision("5f0c6c1b", {"session_id": "5f0c6c1b", "event": "started"})
    assert [t for t, _ in bus.sent] == [
        "hotline/agents/A001/state", "hotline/agents/A001/pop",
        "hotline/calls/1795791338.0/events", "hotline/queues/repair/stats",
        "hotline/agents/A001/reply", "hotline/supervision/5f0c6c1b"]
    state, pop, event, stats = (p for _, p in bus.sent[:4])
    assert state == {"agent_id": "A001", "seat": "seat07", "state": "on_call", "reason": None,
                     "since": AT, "call_id": "1795791338.0", "wrap_up_s": 15}
    assert pop == {"call_id": "1795791338.0", "caller_number": "13022690332", "accounts": [],
                   "seat": "seat07", "skill": "general", "attempt": 1}
    assert event == {"call_id": "1795791338.0", "event": "offered",
                     "at": "2026-11-27T14:55:47.210+00:00", "skill": "general",
                     "agent_id": "A001", "seat": "seat07", "reason": None,
                     "detail": {"attempt": 1}}
    assert stats["agents"] == {"logged_out": 0, "not_ready": 0, "on_call": 11, "ready": 2,
                               "reserved": 0, "wrap_up": 0}
    assert (stats["longest_wait_s"], stats["aht_s"], stats["at"]) == (
        84.3, 183.2, "2026-11-27T14:55:47.210+00:00")


def test_state_is_retained_and_events_are_not() -> None:
    bus = FakeBus()
    n = Notifier(bus)
    n.agent_state(_agent(), wrap_up_s=15)
    n.queue_stats(_stats(), at=AT)
    n.screen_pop("A001", {"call_id": "c.1"}, seat="seat07", attempt=1)
    n.call_event("c.1", "failover", at=AT)
    assert {qos for _t, qos, _r in bus.options} == {1}
    assert {t.split("/")[-1]: retain for t, _q, retain in bus.options} == {
        "state": True, "stats": True, "pop": False, "events": False}


def test_listeners_get_the_acds_messages_as_mqtt_subscribers_decode_them() -> None:
    bus = FakeBus()
    n = Notifier(bus)
    got: list[Message] = []
    n.listen(got.append)
    n.agent_state(_agent(), wrap_up_s=15)
    n.screen_pop("A001", {"call_id": "c.1", "caller_number": "1"}, seat="seat07", attempt=2)
    n.reply("agents", "A001", {"ok": True})  # a reply is for MQTT only
    assert [(m.kind, m.subject, m.retain) for m in got] == [
        ("agent_state", "A001", True), ("pop", "A001", False)]
    assert [dict(m.data) for m in got] == [p for _, p in bus.sent[:2]]
    assert all(classify(m.topic) == (m.kind, m.subject) for m in got)
    assert {"hotline/agents/+/pop", "hotline/agents/+/state"} <= LOCAL_FILTERS


async def test_a_listener_is_called_on_its_own_loop_when_a_thread_sends() -> None:
    n = Notifier(None)
    seen: list[tuple[str, int]] = []
    done = asyncio.Event()

    def listener(msg: Message) -> None:
        seen.append((msg.kind, threading.get_ident()))
        done.set()

    n.listen(listener)
    await asyncio.to_thread(n.call_event, "c.1", "failover", at=AT)
    await asyncio.wait_for(done.wait(), 2)
    assert seen == [("call_event", threading.get_ident())]


def _documented(heading: str) -> dict:
    """The JSON example under a heading of docs/mqtt.md."""
    text = (ROOT / "docs" / "mqtt.md").read_text(encoding="utf-8")
    section = text[text.index(heading):]
    start = section.index("```json") + len("```json")
    return json.loads(section[start:section.index("```", start)])


def test_a_work_order_alert_is_the_documented_payload_and_waits_for_the_commit() -> None:
    doc = _documented("### Work-order alerts")

    def at(key: str) -> datetime:
        return datetime.fromisoformat(doc[key])

    alert = WorkOrderAlert(
        kind=doc["kind"], level=doc["level"], number=doc["number"], order_type=doc["type"],
        status=doc["status"], department=doc["department"], area=doc["area"],
        caller_number=doc["caller_number"], account_no=doc["account_no"], clock=doc["clock"],
        percent=doc["percent"], started_at=at("started_at"), due_at=at("due_at"),
        crossed_at=at("crossed_at"), urge_count=doc["urge_count"], note=doc["note"],
        at=at("at"))
    bus = FakeBus()
    n = Notifier(bus)
    engine = create_engine("sqlite://")  # a real Session for the outbox; no table is needed
    with Session(engine) as s:
        n.work_order_alert(s, alert)
        assert bus.sent == []  # held by the outbox: the marks are not committed yet
        s.commit()
    assert bus.sent == [(SUPERVISOR_ALERTS_TOPIC, doc)]
    assert bus.options == [(SUPERVISOR_ALERTS_TOPIC, 1, False)]
    with Session(engine) as s:
        n.work_order_alert(s, alert)
        s.rollback()
    engine.dispose()
    assert len(bus.sent) == 1  # a rolled-back alert never leaves
    with pytest.raises(ValueError, match="work-order alert"):  # an SLA alert is no urge
        topics.work_order_alert_payload(**{**_alert_kwargs(alert), "level": "urge"})


def _alert_kwargs(alert: WorkOrderAlert) -> dict:
    return {f: getattr(alert, f) for f in alert.__dataclass_fields__}


async def test_the_recorders_facts_become_the_recording_alerts_it_always_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """recorder.service hands over facts; the payloads are the ones it built itself before."""
    now = datetime(2026, 11, 27, 2, 30, 5, 123456, tzinfo=UTC)
    free = [0]
    monkeypatch.setattr(recorder_service, "free_bytes", lambda _path: free[0])
    bus = FakeBus()
    rec = RecorderService(RecorderSettings(storage_dir=tmp_path, min_free_mb=1.0,
                                           index_wait_s=0.01), _NoIndex(),  # type: ignore[arg-type]
                          clock=lambda: now)
    rec.alerts = Notifier(bus)
    assert rec.check_disk() is True
    rel = "20261127/1764210600.7_1764210612.9_seat07.wav"
    await rec.index_event({"File": f"{IN_CHROOT_DIR}/{rel}", "CallId": "1764210600.7",
                           "Seat": "seat07", "StartEpoch": "1764210600",
                           "EndEpoch": "1764210612"})
    free[0] = 3 * 1024 * 1024
    assert rec.check_disk() is False
    assert [t for t, _ in bus.sent] == [SUPERVISOR_ALERTS_TOPIC] * 3
    assert {(t, q, r) for t, q, r in bus.options} == {(SUPERVISOR_ALERTS_TOPIC, 1, False)}
    full, leg, ok = (p for _, p in bus.sent)
    assert full == {"kind": "recording", "level": "disk_full", "free_bytes": 0,
                    "min_free_bytes": 1048576, "at": "2026-11-27T02:30:05.123456+00:00"}
    assert ok == {**full, "level": "disk_ok", "free_bytes": 3145728}
    assert list(leg) == ["kind", "level", "call_id", "leg", "seat", "file", "reason", "detail",
                         "at"]
    assert {k: leg[k] for k in ("kind", "level", "call_id", "leg", "seat", "file", "reason",
                                "at")} == {
        "kind": "recording", "level": "unrecorded", "call_id": "1764210600.7",
        "leg": "1764210612.9", "seat": "seat07", "file": rel, "reason": "disk_full",
        "at": "2026-11-27T02:30:05.123456+00:00"}
    assert leg["detail"].startswith("no file; the disk was full")


class _NoIndex:
    """The recorder's index, never reached here (no leg has a file)."""


# ------------------------------------------------------------------ no topic written by hand

# production code: every top-level package of the repository but tests/
PACKAGES = tuple(sorted(p.name for p in ROOT.iterdir()
                        if (p / "__init__.py").is_file() and p.name != "tests"))
TOPICS_MODULES = {"config/topics.py", "cti/mqtt/topics.py"}  # the one module and its re-export
# the topic prefix followed by a topic level, a wildcard, a pattern's %u or an f-string's
# value, anywhere in the string; not a path such as /etc/hotline/x or hotline-rec/...
_TOPIC = re.compile(rf"(?<![\w./-]){re.escape(topics.PREFIX)}/[\w+#%{{]")


def _hand_written_topics(source: str, name: str) -> list[str]:
    """String constants and f-strings (bytes too) with a 'hotline/...' topic anywhere in them,
    docstrings aside (comments are not in the tree)."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                                | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):  # its values in place, as "{}"
            text = "".join(str(v.value) if isinstance(v, ast.Constant) else "{}"
                           for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes) \
                and id(node) not in docstrings:
            value = node.value
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        else:
            continue
        if _TOPIC.search(text):
            found.add(node.lineno)  # an f-string's pieces are Constants too: one line once
    return [f"{name}:{line}" for line in sorted(found)]


def test_the_walk_finds_constants_and_f_strings_but_not_docstrings() -> None:
    source = ('"""hotline/agents/{id}/state is documented here."""\n'
              'A = "hotline/cti/status"\n'
              'def f(x):\n    """hotline/x"""\n    return f"hotline/agents/{x}/pop"\n'
              'ACL = ("topic read hotline/x", "pattern read hotline/agents/%u/#")\n'
              'G = f"topic write hotline/cmd/supervisors/{x}"\n'
              'H = f"hotline/{x}/reply"\n'
              'B = b"hotline/cti/status"\n'
              'L = ("topic read "\n     "hotline/queues/+/stats")\n'
              'M = "anyone reads hotline/# here"\n'
              'OK = ("/etc/hotline/x", "hotline-rec/20261127/c_l", "hotline", "the hotline",\n'
              '      "var/hotline/cti.json", f"{P}/agents/{x}/state", "hotline-cti")\n'
              '# "hotline/in/a/comment"\n')
    assert _hand_written_topics(source, "m.py") == [
        "m.py:2", "m.py:5", "m.py:6", "m.py:7", "m.py:8", "m.py:9", "m.py:10", "m.py:12"]


def test_every_production_package_is_walked() -> None:
    assert set(PACKAGES) >= {"acd", "agent_desktop", "asterisk_conf", "bench", "callcenter",
                             "config", "cti", "hotline", "ivr", "prompts", "recorder",
                             "workorders"}


def test_no_topic_is_written_by_hand_outside_the_topics_module() -> None:
    """Topics, filters, ACL lines and payloads come from config/topics.py (cti/notifier.py
    builds the CTI's messages with it, asterisk_conf/mosquitto.py the broker's ACL)."""
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in TOPICS_MODULES:
                found += _hand_written_topics(path.read_text(encoding="utf-8"), rel)
    assert not found, found
