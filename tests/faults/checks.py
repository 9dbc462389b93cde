"""What every fault test of the harness checks after its fault, shared by the fault modules:
the call records and recordings, the longest silence, agent state against Asterisk, offers to
talking seats, and the report row (printed as `FAULT ROW`, and appended to
$HOTLINE_FAULTS_REPORT when set)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from cti.db.models import CALL_OUTCOMES, Call
from cti.db.models_recordings import AuditLog, Recording
from cti.db.recorder_store import UNRECORDED_ACTION
from hotline import stack
from tests.faults.calls import CallBook, CallerView
from tests.faults.conftest import Hotline

SILENCE_MAX_S = 3.0  # the longest a caller may hear nothing once waiting for an agent
CONVERGE_MAX_S = 2.0


def report(row: dict[str, Any]) -> None:
    line = json.dumps(row, ensure_ascii=False)
    print(f"FAULT ROW {line}")
    out = os.environ.get("HOTLINE_FAULTS_REPORT")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def rows_of(h: Hotline, model: Any, uids: Iterable[str]) -> dict[str, list[Any]]:
    ids = list(uids)
    with h.sessions() as s:
        found = list(s.scalars(select(model).where(model.call_id.in_(ids))))
    out: dict[str, list[Any]] = {u: [] for u in ids}
    for r in found:
        out[r.call_id].append(r)
    return out


def unrecorded_reasons(h: Hotline, uids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The recorder's logged reasons (audit_log, recording.unrecorded) by call id."""
    ids = list(uids)
    with h.sessions() as s:
        found = list(s.scalars(select(AuditLog).where(AuditLog.action == UNRECORDED_ACTION,
                                                      AuditLog.target.in_(ids))))
    out: dict[str, list[dict[str, Any]]] = {u: [] for u in ids}
    for r in found:
        out[str(r.target)].append(dict(r.detail))
    return out


def outcomes_and_recordings(h: Hotline, calls: list[CallerView], timeout: float = 30, *,
                            reason_will_do: bool = False) -> dict[str, Any]:
    """Every ended call has exactly one closed call record with an outcome that agrees with
    what Asterisk did; every answered one a recording (the reconciler may index it late), or,
    with reason_will_do (a fault that stops recording), a logged reason for its missing one."""
    uids = {c.uid for c in calls}
    answered = {c.uid for c in calls if c.answered}
    problems: dict[str, str] = {}
    excused: set[str] = set()

    def settled() -> bool:
        problems.clear()
        excused.clear()
        recs = rows_of(h, Call, uids)
        files = rows_of(h, Recording, answered)
        reasons = unrecorded_reasons(h, answered) if reason_will_do else {}
        for c in calls:
            rows = recs[c.uid]
            if len(rows) != 1:
                problems[c.uid] = f"{len(rows)} call records"
            elif rows[0].ended_at is None or rows[0].outcome not in CALL_OUTCOMES:
                problems[c.uid] = f"not closed: ended_at={rows[0].ended_at} " \
                                  f"outcome={rows[0].outcome}"
            elif c.answered and (rows[0].outcome == "abandoned" or rows[0].answered_at is None):
                problems[c.uid] = (f"answered at {c.seat} but recorded as {rows[0].outcome}, "
                                   f"answered_at={rows[0].answered_at}")
            elif c.uid in answered and not files[c.uid]:
                if reasons.get(c.uid):
                    excused.add(c.uid)
                else:
                    problems[c.uid] = "answered, no recording" + (
                        " and no logged reason" if reason_will_do else "")
        return not problems

    try:
        stack.wait_until(settled, timeout, "call records and recordings", interval=0.5)
    except Exception:  # noqa: BLE001 - the assertion below says which calls and why
        pass
    assert not problems, f"{len(problems)} of {len(calls)} calls: {problems}"
    out: dict[str, Any] = {"records": len(calls), "recorded": len(answered) - len(excused)}
    if reason_will_do:
        out["unrecorded_with_reason"] = len(excused)
    return out


def silence(calls: Iterable[CallerView]) -> tuple[float, CallerView | None]:
    worst = max(calls, key=lambda c: c.max_silence_s, default=None)
    return (worst.max_silence_s if worst else 0.0), worst


def latest_states(h: Hotline, since: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for m in h.mqtt.messages()[since:]:
        parts = m.topic.split("/")
        if len(parts) == 4 and parts[:2] == ["hotline", "agents"] and parts[3] == "state" \
                and isinstance(m.payload, dict):
            out[parts[2]] = m.payload
    return out


def agents_agree_with_asterisk(h: Hotline, since: int) -> list[str]:
    """Agents whose latest published state (since the mark) disagrees with their seat in
    Asterisk: a seat talking (its channel Up and bridged) must be on_call with that call's
    Linkedid, or not_ready `failover_call` (a call the native failover queue connected while
    the CTI was away, which the CTI leaves alone: README, agents and the ACD); a seat with no
    channel must not be on_call."""
    states = latest_states(h, since)
    talking: dict[str, str] = {}
    for ch in h.channels():
        name = str(ch.get("Channel", ""))
        if name.startswith("PJSIP/seat") and ch.get("ChannelStateDesc") == "Up" \
                and ch.get("BridgeId"):
            talking[name.removeprefix("PJSIP/").split("-", 1)[0]] = str(ch.get("Linkedid"))
    wrong = []
    for agent, seat in h.agents.items():
        st = states.get(agent)
        if st is None:
            wrong.append(f"{agent}: no state published")
        elif seat in talking:
            if (st.get("state"), st.get("call_id")) != ("on_call", talking[seat]) \
                    and (st.get("state"), st.get("reason")) != ("not_ready", "failover_call"):
                wrong.append(f"{agent}@{seat}: {st.get('state')} {st.get('call_id')}, "
                             f"Asterisk: talking {talking[seat]}")
        elif st.get("state") == "on_call":
            wrong.append(f"{agent}@{seat}: on_call {st.get('call_id')}, Asterisk: no call")
    return wrong


def offers_to_talking_seats(events: list[dict[str, Any]]) -> list[str]:
    """HotlineOffers for a seat while a call it answered is still up there (its phone would
    take a second call: a real agent cannot)."""
    up: dict[str, str] = {}  # seat channel -> seat, from its answer to its hangup
    bad = []
    for e in events:
        name = e.get("Event")
        if name == "DialEnd" and e.get("DialStatus") == "ANSWER":
            dest = str(e.get("DestChannel", ""))
            if dest.startswith("PJSIP/seat"):
                up[dest] = dest.removeprefix("PJSIP/").split("-", 1)[0]
        elif name == "Hangup":
            up.pop(str(e.get("Channel", "")), None)
        elif name == "UserEvent" and e.get("UserEvent") == "HotlineOffer" \
                and e.get("Seat") in up.values():
            bad.append(f"{e.get('Seat')} offered {e.get('Linkedid')}")
    return bad


def in_flight_split(book: CallBook, t: float) -> tuple[list[CallerView], list[CallerView]]:
    live = book.in_flight(t)
    return ([c for c in live if c.answered and c.answered <= t],
            [c for c in live if c.queued and c.queued <= t and not (c.answered
                                                                     and c.answered <= t)])


