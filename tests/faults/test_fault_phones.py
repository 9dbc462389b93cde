"""All agents' phones unregister at once, under the harness's steady load (issue 11, section 1).

The ten seats send REGISTER with Expires: 0 together and come back 20 s later. What must hold:
- every agent not on a call is not_ready 'phone_offline' within OFFLINE_MAX_S of its seat's
  death (Asterisk's PeerStatus Unreachable for it); an agent on a call (or answering one that
  was already ringing) stays on it and is not_ready 'phone_offline' when it ends, with no
  wrap-up that would end in ready;
- no seat is offered a call while its phone is gone. An offer counts as *in flight at the
  fault*, and is allowed, when the ACD decided it before it took the seat out of routing: its
  `offered` call event (hotline/calls/<id>/events, `at` = the ACD writer's clock at that ring)
  is older than the `since` of the agent's not_ready 'phone_offline' state (the writer's clock
  at the input that took the seat out). From AMI, an offer to a dead seat is a HotlineOffer
  for that seat between its PeerStatus Unreachable and its PeerStatus Reachable again;
- waiting callers keep hearing something (music, announcements) and nobody is lost. With the
  harness's settings they neither fail over nor hear the all-busy message: the CTI is alive, so
  its heartbeat stays fresh and the dialplan's failover (cti_stale_s = 3) never fires, and the
  all-busy path comes only after QUEUE_MAX_WAIT (900 s) of waiting; the test asserts both, so a
  change shows;
- every call ends in exactly one outcome, every answered call has a recording;
- once the phones register again, every agent is back in routing (ready, or already offered a
  waiting caller) within READY_MAX_S of its seat's PeerStatus Reachable, and calls are
  answered again; except one who chose a break while the phone was gone: that is the agent's
  reason, and it stays.
The fault is injected while at least one agent is in wrap-up (the rest are mostly talking), so
both paths to phone_offline are taken.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from hotline import stack
from tests.faults.calls import CallerView, Event, ts
from tests.faults.checks import (
    SILENCE_MAX_S,
    in_flight_split,
    latest_states,
    offers_to_talking_seats,
    outcomes_and_recordings,
    report,
    silence,
)
from tests.faults.conftest import TALK_MS, Hotline
from tests.support.mqtt import Msg

pytestmark = pytest.mark.integration

FAULT_S = 20.0  # the phones stay away this long: longer than a call (12 s) and its ring
OFFLINE_MAX_S = 2.0  # seat dead (or its call over) -> its agent not_ready 'phone_offline'
READY_MAX_S = 2.0  # seat registered again -> its agent ready
ROUTING = frozenset({"ready", "reserved", "on_call"})  # an agent the ACD routes to again


def _peer_status(h: Hotline, since: int, status: str, seats: set[str], timeout: float
                 ) -> dict[str, float]:
    """Each seat's first PeerStatus `status` since the AMI mark, by Asterisk's timestamp."""
    found: dict[str, float] = {}

    def seen(e: Event) -> bool:
        peer = str(e.get("Peer", "")).removeprefix("PJSIP/")
        if e.get("Event") == "PeerStatus" and e.get("PeerStatus") == status and peer in seats:
            found.setdefault(peer, ts(e))
        return set(found) == seats

    for e in h.ami.events()[since:]:
        seen(e)
    if set(found) != seats:
        h.ami.wait_for(seen, timeout, f"PeerStatus {status} for every seat", since=since)
    return found


def _states(msgs: list[Msg], agent: str) -> list[Msg]:
    return [m for m in msgs if m.topic == f"hotline/agents/{agent}/state"
            and isinstance(m.payload, dict)]


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_all_phones_unregister_agents_phone_offline_nobody_rings_a_dead_seat(
        hotline: Hotline) -> None:
    h = hotline
    h.steady()
    # one agent or more in wrap-up at the fault: not on a call, about to be ready
    stack.wait_until(lambda: any(st.get("state") == "wrap_up"
                                 for st in latest_states(h, 0).values()), 30,
                     "an agent in wrap-up", interval=0.05)
    seat_of = dict(h.agents)
    agent_at = {s: a for a, s in seat_of.items()}
    seats = set(agent_at)
    a0, m0 = len(h.ami.events()), h.mqtt.mark()
    t_fault = time.time()
    book = h.catch_up()
    talking, waiting = in_flight_split(book, t_fault)
    in_flight = book.in_flight(t_fault)
    h.register(0)  # the fault: every seat's REGISTER with Expires: 0
    dead = _peer_status(h, a0, "Unreachable", seats, 30)
    stack.wait_until(lambda: all((st.get("state"), st.get("reason")) == ("not_ready",
                                                                          "phone_offline")
                                 for st in latest_states(h, m0).values())
                     and len(latest_states(h, m0)) == len(seat_of),
                     t_fault + FAULT_S - time.time(), "every agent phone_offline",
                     interval=0.1)
    # one agent takes a break meanwhile: their own reason, which the phone's return keeps
    choosy = sorted(seat_of)[0]
    assert h.mqtt.command("agents", choosy, {"action": "not_ready", "reason": "break"})["ok"]
    h.through(t_fault + FAULT_S, f"{FAULT_S:g} s without phones")
    a_back, m_back, t_back = len(h.ami.events()), h.mqtt.mark(), time.time()
    h.register(3600)
    back = _peer_status(h, a_back, "Reachable", seats, 30)
    others = [a for a in seat_of if a != choosy]
    # back in routing: ready, or already offered a caller (with callers waiting the ACD
    # offers one in the same step that makes the agent ready, and only the offer is published)
    stack.wait_until(lambda: all(any(m.payload.get("state") in ROUTING for m in
                                     _states(h.mqtt.messages()[m_back:], a))
                                 for a in others), 30, "every agent back in routing",
                     interval=0.1)
    # the agent on a break is still on it (and was offered nothing); then back to work
    kept = latest_states(h, m0)[choosy]
    assert (kept.get("state"), kept.get("reason")) == ("not_ready", "break"), kept
    assert h.mqtt.command("agents", choosy, {"action": "ready"})["ok"]
    t_last_back = max(back.values())
    h.until(lambda b: any(c.answered and c.answered > t_last_back for c in b.calls.values()),
            60, "a call answered after the phones came back")
    # every caller on the line at the fault, or arriving during it, ends (by the agent's BYE)
    during = [c for c in h.catch_up().calls.values() if t_fault <= c.created < t_back]
    everyone = {c.uid: c for c in [*in_flight, *during]}
    book = h.ended(set(everyone), 240, "the calls of the fault to end")
    calls = [book.calls[u] for u in everyone]
    events = h.ami.events()[a0:]
    msgs = h.mqtt.messages()[m0:]

    # --- agents: phone_offline at once, or when their call ends; never ready while dead
    problems: list[str] = []
    offline_s: list[float] = []
    after_call_s: list[float] = []
    offline_since: dict[str, float] = {}
    for agent, seat in seat_of.items():
        mine = _states(msgs, agent)
        gone = [m for m in mine if (m.payload["state"], m.payload.get("reason"))
                == ("not_ready", "phone_offline")]
        if not gone:
            problems.append(f"{agent}@{seat}: never not_ready phone_offline")
            continue
        first = gone[0]
        offline_since[agent] = float(first.payload["since"])
        # the call the seat had at its death (talking, or ringing and answered after)
        fault_calls = [c for c in book.calls.values() if c.seat == seat and c.answered
                       and c.answered < back[seat] and c.ended and c.ended > dead[seat]]
        if fault_calls:
            end = max(c.ended for c in fault_calls if c.ended)
            lag = offline_since[agent] - end
            after_call_s.append(lag)
            if not -0.5 <= lag <= OFFLINE_MAX_S:
                problems.append(f"{agent}@{seat}: phone_offline {lag:+.2f}s after its call "
                                "ended")
        else:
            lag = first.at - dead[seat]
            offline_s.append(lag)
            if lag > OFFLINE_MAX_S:
                problems.append(f"{agent}@{seat}: phone_offline {lag:.2f}s after the seat died")
        allowed = {("not_ready", "phone_offline")} | (
            {("not_ready", "break")} if agent == choosy else set())
        for m in mine:
            if m.at > first.at and m.at < t_back and (
                    m.payload["state"], m.payload.get("reason")) not in allowed:
                problems.append(f"{agent}@{seat}: {m.payload['state']} while its phone was "
                                "gone")
    ready_s = []
    for agent, seat in seat_of.items():
        if agent == choosy:
            continue
        again = [m for m in _states(h.mqtt.messages()[m_back:], agent)
                 if m.payload["state"] in ROUTING]
        ready_s.append(again[0].at - back[seat])

    # --- offers to dead seats: only those the ACD had decided before it took the seat out
    decided: dict[tuple[str, str], float] = {}  # (call_id, seat) -> the ring's decision time
    for m in msgs:
        p = m.payload
        if m.topic.startswith("hotline/calls/") and isinstance(p, dict) \
                and p.get("event") == "offered" and p.get("seat"):
            decided.setdefault((str(p["call_id"]), str(p["seat"])), _epoch(str(p["at"])))
    to_dead, in_flight_offers, forbidden = 0, [], []
    for e in events:
        if e.get("Event") != "UserEvent" or e.get("UserEvent") != "HotlineOffer":
            continue
        seat, call_id = str(e.get("Seat")), str(e.get("Linkedid"))
        if seat not in seats or not dead[seat] <= ts(e) < back[seat]:
            continue
        to_dead += 1
        at = decided.get((call_id, seat))
        agent = agent_at[seat]
        if at is not None and agent in offline_since and at < offline_since[agent]:
            in_flight_offers.append(f"{seat} {call_id}")
        else:
            forbidden.append(f"{seat} {call_id} (decided {at}, seat out at "
                             f"{offline_since.get(agent)})")

    # --- callers
    def all_busy(c: CallerView) -> bool:
        return any(e.get("Uniqueid") == c.uid and e.get("Context") == "hotline-wait"
                   and e.get("Exten") == "busy" for e in events)

    waited = [book.calls[c.uid] for c in waiting]
    failed_over = [c.number for c in calls if c.failed_over]
    busy = [c.number for c in calls if all_busy(c)]
    lost = [c.number for c in calls if not c.answered]
    cut = [c.number for c in talking if c.ended and c.answered
           and c.ended - c.answered < TALK_MS / 1000 - 1]
    worst, who = silence(calls)
    double = offers_to_talking_seats(events)
    row: dict[str, Any] = {
        "fault": "all 10 phones unregister at once (REGISTER Expires: 0), back 20 s later",
        "calls_in_flight": len(in_flight), "talking": len(talking), "waiting": len(waiting),
        "calls_during_fault": len(during), "offers_to_dead_seats": to_dead,
        "offers_in_flight_at_fault": len(in_flight_offers),
        "offers_forbidden": len(forbidden),
        # seconds from the seat's death (Asterisk's timestamp) to the state's arrival here
        "phone_offline_s": [round(x, 3) for x in sorted(offline_s)],
        # seconds from the call's end (Asterisk's Hangup) to the state's `since` (the ACD's)
        "phone_offline_after_call_s": [round(x, 3) for x in sorted(after_call_s)],
        "agents_idle_at_fault": len(offline_s), "agents_on_call_at_fault": len(after_call_s),
        "ready_again_s_max": round(max(ready_s, default=0.0), 3),
        "break_kept_after_phone_back": True,
        "failed_over": len(failed_over), "all_busy": len(busy), "calls_lost": len(lost),
        "talking_cut": len(cut), "offers_to_talking_seats": len(double),
        "waiting_answered_after": len([c for c in waited if c.answered]),
        "max_silence_s": round(worst, 2)}
    try:
        row.update(outcomes_and_recordings(h, calls))
    finally:
        report(row)
    assert not problems, problems
    assert not forbidden, f"seats offered a call while their phone was gone: {forbidden}"
    assert not double, f"seats offered a call while talking: {double}"
    assert max(ready_s) <= READY_MAX_S, f"agents ready again after {ready_s}"
    assert not failed_over and not busy, (failed_over, busy)
    assert not lost, f"callers who never reached an agent: {lost}"
    assert not cut, f"talking calls cut: {cut}"
    assert worst <= SILENCE_MAX_S, f"{who and who.number} heard {worst:.1f}s of silence"
