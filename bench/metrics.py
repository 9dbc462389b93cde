"""The figures of one side, computed from its recorded AMI events (pure: no I/O).

Identity follows Asterisk: a caller is the Uniqueid of the carrier channel that entered the
bench extension; a ring is a DialBegin from that channel to PJSIP/seatNN (DestUniqueid is the
seat leg). Times are Asterisk's event Timestamps.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.ami_tap import Event, ts

SEAT = re.compile(r"^PJSIP/(seat\d+)-")


@dataclass
class CallerRec:
    uid: str
    channel: str
    number: str
    created: float
    joined: float | None = None
    answered: float | None = None
    seat: str | None = None
    hangup: float | None = None
    dials: list[tuple[float, float]] = field(default_factory=list)  # (ring start, ring end)
    failed_over: bool = False


@dataclass
class SeatLeg:
    seat: str
    uid: str
    caller_uid: str
    begin: float
    end: float | None = None
    answered: bool = False
    hangup: float | None = None


@dataclass
class SideEvents:
    callers: dict[str, CallerRec]
    legs: list[SeatLeg]


def collect(events: Iterable[Event], service: str, join_event: str) -> SideEvents:
    """Callers and seat legs of one side; join_event: 'HotlineQueued' or 'QueueCallerJoin'."""
    callers: dict[str, CallerRec] = {}
    legs: dict[str, SeatLeg] = {}
    for ev in events:
        name = ev.get("Event")
        uid = ev.get("Uniqueid", "")
        if name == "Newchannel":
            if ev.get("Context") == "from-carrier" and ev.get("Exten") == service:
                callers[uid] = CallerRec(uid, ev.get("Channel", ""), ev.get("CallerIDNum", ""),
                                         ts(ev))
            continue
        if name == "UserEvent" and uid in callers:
            if ev.get("UserEvent") == join_event and callers[uid].joined is None:
                callers[uid].joined = ts(ev)
            elif ev.get("UserEvent") == "HotlineFailover":
                callers[uid].failed_over = True
        elif name == "QueueCallerJoin" and join_event == name and uid in callers:
            if callers[uid].joined is None:
                callers[uid].joined = ts(ev)
        elif name == "DialBegin" and uid in callers:
            m = SEAT.match(ev.get("DestChannel", ""))
            if m:
                dest = ev.get("DestUniqueid", "")
                legs[dest] = SeatLeg(m.group(1), dest, uid, ts(ev))
        elif name == "DialEnd" and uid in callers:
            leg = legs.get(ev.get("DestUniqueid", ""))
            if leg is None or leg.end is not None:
                continue
            leg.end = ts(ev)
            c = callers[uid]
            c.dials.append((leg.begin, leg.end))
            if ev.get("DialStatus") == "ANSWER":
                leg.answered = True
                if c.answered is None:
                    c.answered, c.seat = leg.end, leg.seat
        elif name == "Hangup":
            if uid in callers and callers[uid].hangup is None:
                callers[uid].hangup = ts(ev)
            elif uid in legs and legs[uid].hangup is None:
                legs[uid].hangup = ts(ev)
                if legs[uid].end is None:  # torn down while ringing, no DialEnd seen
                    legs[uid].end = ts(ev)
    return SideEvents(callers, sorted(legs.values(), key=lambda leg: leg.begin))


def percentile(values: Sequence[float], pct: int) -> float | None:
    """The pct-th percentile (1-99) by statistics.quantiles' 'inclusive' method: linear
    interpolation between closest ranks, numpy's default. None without values."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


def ring_after_free(side: SideEvents, free_at: Mapping[str, float],
                    seats: Sequence[str]) -> tuple[list[float], int, int]:
    """Samples (ms) from a seat becoming free to its next ring, counted only when, at that
    moment, more callers were waiting (joined, not answered, not hung up, not being rung) than
    other seats were idle: so a caller was there for this very seat.

    `free_at`: seat-leg Uniqueid -> when that seat became free again after the answered call.
    Returns (samples, free moments considered, moments with no next ring in the run).
    """
    by_seat: dict[str, list[SeatLeg]] = {s: [] for s in seats}
    for leg in side.legs:
        by_seat.setdefault(leg.seat, []).append(leg)
    # busy intervals per seat: from the ring until free (answered) or the ring's end
    busy: dict[str, list[tuple[float, float]]] = {}
    for seat, legs in by_seat.items():
        spans = []
        for leg in legs:
            if leg.answered and leg.uid in free_at:
                spans.append((leg.begin, free_at[leg.uid]))
            else:
                spans.append((leg.begin, leg.end if leg.end is not None else leg.begin))
        busy[seat] = spans
    callers = [c for c in side.callers.values() if c.joined is not None]

    def waiting(t: float) -> int:
        n = 0
        for c in callers:
            assert c.joined is not None
            if c.joined > t or (c.answered is not None and c.answered <= t):
                continue
            if c.hangup is not None and c.hangup <= t:
                continue
            if any(b <= t < e for b, e in c.dials):
                continue
            n += 1
        return n

    def idle_others(seat: str, t: float) -> int:
        return sum(1 for s, spans in busy.items()
                   if s != seat and not any(b <= t < e for b, e in spans))

    samples: list[float] = []
    considered = missing = 0
    for seat, legs in by_seat.items():
        for i, leg in enumerate(legs):
            if not leg.answered or leg.uid not in free_at or leg.hangup is None:
                continue
            f = free_at[leg.uid]
            if waiting(f) <= idle_others(seat, f):
                continue
            considered += 1
            nxt = next((n for n in legs[i + 1:] if n.begin > leg.hangup), None)
            if nxt is None:
                missing += 1
                continue
            samples.append((nxt.begin - f) * 1000)
    return samples, considered, missing


def summarize(side: SideEvents, *, seats: Sequence[str], sl_s: float, wrap_up_s: float,
              free_at: Mapping[str, float] | None, patience_hangups: set[str]
              ) -> dict[str, Any]:
    """The side's figures. `free_at` None: a seat is free at its leg's Hangup + wrap_up_s."""
    joined = [c for c in side.callers.values() if c.joined is not None]
    answered = [c for c in joined if c.answered is not None]
    waits = [c.answered - c.joined for c in answered  # type: ignore[operator]
             if c.answered is not None and c.joined is not None]
    unanswered = [c for c in joined if c.answered is None]
    abandoned_late = [c for c in unanswered
                      if c.hangup is not None and c.joined is not None
                      and c.hangup - c.joined > sl_s]
    in_sl = sum(1 for w in waits if w <= sl_s)
    sl_den = len(answered) + len(abandoned_late)
    per_seat = {s: 0 for s in seats}
    for c in answered:
        if c.seat is not None:
            per_seat[c.seat] = per_seat.get(c.seat, 0) + 1
    nominal = {leg.uid: leg.hangup + wrap_up_s for leg in side.legs
               if leg.answered and leg.hangup is not None}
    own = nominal if free_at is None else dict(free_at)
    samples, considered, missing = ring_after_free(side, own, seats)
    nom_samples, nom_considered, nom_missing = ring_after_free(side, nominal, seats)
    # the effective wrap-up: only where the side reports when a seat is actually free (ours);
    # app_queue's is not observable over AMI, so it would only echo the nominal one
    wrap_effective = ([] if free_at is None else
                      [free_at[leg.uid] - leg.hangup for leg in side.legs
                       if leg.uid in free_at and leg.hangup is not None])
    wrap_mean = statistics.fmean(wrap_effective) if wrap_effective else None
    rings = len(side.legs)
    return {
        # the headline: from the nominal free moment (seat hangup + configured wrap-up), the
        # one method identical on every side
        "ring_after_nominal_free_ms_p50": _r(percentile(nom_samples, 50), 1),
        "ring_after_nominal_free_ms_p99": _r(percentile(nom_samples, 99), 1),
        "ring_after_nominal_free_ms_max": _r(max(nom_samples, default=None), 1),
        "ring_after_nominal_free_samples": len(nom_samples),
        "ring_after_nominal_free_no_next_ring": nom_missing,
        "nominal_free_moments_with_waiting_caller": nom_considered,
        "effective_wrap_up_s_mean": _r(wrap_mean),
        "effective_wrap_up_s_p50": _r(percentile(wrap_effective, 50)),
        "effective_wrap_up_s_p99": _r(percentile(wrap_effective, 99)),
        "effective_wrap_up_excess_ms_mean": _r(None if wrap_mean is None
                                               else (wrap_mean - wrap_up_s) * 1000, 1),
        "effective_wrap_up_s_max": _r(max(wrap_effective, default=None)),
        "effective_wrap_up_samples": len(wrap_effective),
        # a ready that came a second or more late: a stalled writer, or a state message lost
        "effective_wrap_up_late_1s": sum(1 for w in wrap_effective if w >= wrap_up_s + 1),
        "ring_after_free_definition": ("the ACD's own ready (the since of the agent's "
                                       "ready state)" if free_at is not None else
                                       "nominal: seat hangup + wrapuptime (not observable)"),
        "ring_after_free_ms_p50": _r(percentile(samples, 50), 1),
        "ring_after_free_ms_p99": _r(percentile(samples, 99), 1),
        "ring_after_free_ms_max": _r(max(samples, default=None), 1),
        "ring_after_free_samples": len(samples),
        "ring_after_free_no_next_ring": missing,
        "service_level_20s": _r(in_sl / sl_den if sl_den else None, 4),
        "asa_s": _r(statistics.fmean(waits) if waits else None),
        "wait_s_p90": _r(percentile(waits, 90)),
        "wait_s_max": _r(max(waits, default=None)),
        "abandoned": len(unanswered),
        "abandoned_by_patience": sum(1 for c in unanswered if c.uid in patience_hangups),
        "calls_per_agent_stdev": _r(statistics.pstdev(per_seat.values()) if per_seat else None),
        "calls_per_agent_min": min(per_seat.values(), default=0),
        "calls_per_agent_max": max(per_seat.values(), default=0),
        "offered": len(side.callers),
        "joined": len(joined),
        "answered": len(answered),
        "answered_within_20s": in_sl,
        "rings": rings,
        "rings_not_answered": sum(1 for leg in side.legs if not leg.answered),
        "failed_over": sum(1 for c in side.callers.values() if c.failed_over),
        "free_moments_with_waiting_caller": considered,
    }


def headline(sides: Mapping[str, Mapping[str, Any] | None], wrap_up_s: float) -> dict[str, Any]:
    """The figures to read first: ring after nominal free on every side, our effective
    wrap-up against the configured one."""
    ring = {name: {"p50_ms": doc.get("ring_after_nominal_free_ms_p50"),
                   "p99_ms": doc.get("ring_after_nominal_free_ms_p99"),
                   "samples": doc.get("ring_after_nominal_free_samples")}
            for name, doc in sides.items() if doc}
    ours = sides.get("ours") or {}
    return {
        "ring_after_nominal_free": ring,
        "ring_after_nominal_free_definition": (
            "ms from the seat leg's Hangup + the configured wrap-up to the seat's next "
            "DialBegin, when more callers waited than other seats were idle; Asterisk "
            "Timestamps, the same method on every side"),
        "ours_effective_wrap_up": {
            "configured_s": wrap_up_s,
            "mean_s": ours.get("effective_wrap_up_s_mean"),
            "p50_s": ours.get("effective_wrap_up_s_p50"),
            "p99_s": ours.get("effective_wrap_up_s_p99"),
            "max_s": ours.get("effective_wrap_up_s_max"),
            "late_1s": ours.get("effective_wrap_up_late_1s"),
            "excess_ms_mean": ours.get("effective_wrap_up_excess_ms_mean"),
            "target_excess_ms": 50,
        },
    }
