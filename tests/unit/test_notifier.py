"""cti.notifier: every topic and payload the CTI sends, to MQTT and to in-process listeners."""

from __future__ import annotations

import ast
import asyncio
import threading
from pathlib import Path

from acd.model import Agent, AgentState, QueueStats
from cti.notifier import LOCAL_FILTERS, Message, Notifier, classify
from tests.support.fakes import FakeBus

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


def _hand_written_topics(source: str, name: str) -> list[str]:
    """String literals (f-strings too) that start a 'hotline/...' topic, docstrings aside."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                                | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            first = node.values[0] if node.values else None
            if isinstance(first, ast.Constant) and str(first.value).startswith("hotline/"):
                found.append(f"{name}:{node.lineno}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith("hotline/") and id(node) not in docstrings:
            found.append(f"{name}:{node.lineno}")
    return sorted(set(found))  # an f-string's head is a Constant too


def test_the_walk_finds_constants_and_f_strings_but_not_docstrings() -> None:
    source = ('"""hotline/agents/{id}/state is documented here."""\n'
              'A = "hotline/cti/status"\n'
              'def f(x):\n    """hotline/x"""\n    return f"hotline/agents/{x}/pop"\n')
    assert _hand_written_topics(source, "m.py") == ["m.py:2", "m.py:5"]


def test_no_topic_is_written_by_hand_outside_the_notifier() -> None:
    allowed = {"cti/mqtt/topics.py", "cti/notifier.py"}
    found = []
    for pkg in ("callcenter", "cti", "agent_desktop", "recorder", "workorders", "hotline", "ivr",
                "bench"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if rel not in allowed and "migrations" not in path.parts:
                found += _hand_written_topics(path.read_text(encoding="utf-8"), rel)
    assert not found, found
