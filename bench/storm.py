"""`hotline bench storm` (B5): a storm day's load, 10x the 80/20 load of 50 agents, through the
real stack with storm mode on, outage-first notices, the storm queue cap and callbacks; against
Asterisk's app_queue with `maxlen` on the same callers, in the same run, at the same time.

The instance is bench/capacity.py's (its ports, SQLite database, agent phones that answer), with
the demo's 5,000 accounts, a carrier trunk for callbacks (a SIPp UAS that answers as the
customer) and 100 seats: seats 1-50 are our 50 agents, logged in to our ACD; seats 51-100 are the
members of the baseline queue. Both sides run at once, so they share the machine and the time:
- `ours`: the service number. The IVR over FastAGI, outage-first: a caller whose number is on an
  account inside a notice hears it before the menu. Storm mode is on (a supervisor's switch,
  through OutageService.set_storm, before the CTI starts), so the ACD's storm handling is in
  force: the tighter queue cap with the all-busy message naming the wait (HotlineBusy), the
  callback offered at a lower wait, EWT deflection.
- `app_queue`: extension 95570 (added to the instance's rendered config only): answer, the
  IVR's welcome, Queue() on `hotline-bench-storm`, app_queue at its best as `bench acd` has it
  (leastrecent, retry 1, no announcements, the same wrap-up), with `maxlen` = our storm cap; a
  caller the queue refuses (QUEUESTATUS FULL) hears the all-busy message and is hung up.

The callers (seeded, the same on both sides: arrival time, number, kind, patience): Poisson
arrivals at `multiple` x the 80/20 rate of 50 agents with a 180 s handle time (Erlang C), for
`minutes` (a compressed run scales the minutes, never the rate). Most numbers are phones of
accounts on feeders with a published storm-repair notice; the rest are on accounts in no notice.
Each caller, on our side, is one of (SIPp, bench/sipp/storm_caller.xml):
1. hears the notice and hangs up in its window (deflected);
2. hears it, presses 1 (other services) then 0 (an agent);
3. as 2, then presses the callback key while waiting;
4. no outage: 1 (Mandarin), 0 (an agent);
5. as 4, then the callback key.
On the baseline there is no notice and no callback: every caller waits for an agent (a caller
who would have hung up after the notice still wants to know about the outage). On both sides a
caller not answered within their patience (from joining the queue) hangs up: the bench hangs the
channel up over AMI, as `bench acd` does (SIPp cannot tell that the agent has answered).

Outcomes, per call (Asterisk's Linkedid), from the call records (ours) and the dialplan's and
app_queue's events: answered (a seat answered), deflected (the record's outcome), callback taken
(HotlineCallback), told the queue is full (HotlineBusy; the baseline's FULL), abandoned (any other
end). Exactly one per call, and they must add up to the calls offered; SIPp's own counts are the
cross-check. Memory and file descriptors of the CTI and Asterisk are sampled (bench/soak.py's
probe) before, during and after. Method and figures: bench/BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.ami_tap import AmiError, AmiTap, Event, tap_login, ts
from bench.capacity import (
    PHONES_MEDIA,
    PHONES_SIP,
    PORTS,
    RING_MS,
    WRAP_UP_S,
    Instance,
    agents_desk,
    max_erlangs,
    run_on_instance,
    service_level,
)
from bench.capacity import Options as CapacityOptions
from bench.sipp import scenario
from bench.sipp_load import start_phones, stop, write_silence_pcap, write_talk_times

log = logging.getLogger(__name__)

OURS, BASELINE = "ours", "app_queue"
BASELINE_SERVICE = "95570"
BASELINE_QUEUE = "hotline-bench-storm"
# SIPp ports: the capacity bench's range (35170-35191, media 35700-35899); its callers' pair and
# two more pairs (the baseline's callers, the carrier trunk's customer UAS)
SIP_PORT = {OURS: 35170, BASELINE: 35172}
MEDIA_PORT = {OURS: 35700, BASELINE: 35740}
TRUNK_SIP, TRUNK_MEDIA = 35174, 35860
HANDLE_S = 180.0  # the 95598 handle time the 80/20 load is computed with (bench/capacity.py)
TALK_RANGE_S = (120.0, 240.0)  # uniform: mean 180 s, and a run ends in bounded time
SL_WITHIN_S, SL_TARGET = 20.0, 0.8
OUTCOMES = ("answered", "deflected", "callback", "told_full", "abandoned")
# the IVR keys' timing (after the 200 OK): 1 for Mandarin during the welcome (it barges in),
# then for a caller who hears the notice, 1 (other services) during it and 0 at the menu
LEAD_MS, GAP_MS, NOTICE_MS = 1500, 300, 2500
# a deflected caller hangs up this long after the language key: the notice (about 12 s) and the
# hang-up hint, inside the notice's window
DEFLECT_MS = 13_500
CALLBACK_AFTER_MS = 25_000  # a callback taker presses the key this long after reaching the queue
LAUNCH_RATE = 50  # calls SIPp starts per second; each then pauses until its arrival
LEAD_S = 2.0 + 0.0  # the first arrival is this long after SIPp starts
DRAIN_S = 90.0  # after the callers: channels gone and callbacks dialled, within this
SAMPLE_S = 10.0
KINDS = {1: "deflects", 2: "notice_then_agent", 3: "notice_then_callback",
         4: "agent", 5: "agent_then_callback"}


# ------------------------------------------------------------------------- pure: the load


@dataclass(frozen=True)
class Mix:
    outage_share: float = 0.75  # callers whose number is on an account inside a notice
    deflect_share: float = 0.6  # of those, who hang up after the notice
    callback_share: float = 0.2  # of the callers who go on to an agent, who take a callback
    patience_s: tuple[float, float] = (30.0, 120.0)  # uniform, from joining the queue


@dataclass(frozen=True)
class Caller:
    index: int
    arrival_s: float
    kind: int  # KINDS
    patience_s: float

    @property
    def number(self) -> str:
        return caller_number(self.index)

    @property
    def on_outage(self) -> bool:
        return self.kind in (1, 2, 3)


def caller_number(index: int) -> str:
    """The caller's own number (a phone the bench adds to an account): unique per caller, so
    each call's events and record are its own, on both sides."""
    return f"188{index:08d}"


def storm_rate(agents: int, multiple: float, handle_s: float = HANDLE_S,
               target: float = SL_TARGET, within_s: float = SL_WITHIN_S) -> float:
    """Calls/s: `multiple` x the most traffic `agents` take at the service level target."""
    return multiple * max_erlangs(agents, handle_s, target, within_s) / handle_s


def make_callers(rate_per_s: float, minutes: float, seed: int, mix: Mix) -> list[Caller]:
    """Poisson arrivals (round(rate x horizon) uniform points, sorted), each with a kind and a
    patience, seeded: the same callers for both sides and every run with the same arguments."""
    rng = random.Random(f"bench-storm-{seed}")
    horizon = minutes * 60
    n = max(1, round(rate_per_s * horizon))
    arrivals = sorted(round(rng.uniform(0, horizon), 3) for _ in range(n))
    out = []
    for i, t in enumerate(arrivals):
        outage = rng.random() < mix.outage_share
        if outage and rng.random() < mix.deflect_share:
            kind = 1
        else:
            callback = rng.random() < mix.callback_share
            kind = (3 if callback else 2) if outage else (5 if callback else 4)
        out.append(Caller(i + 1, t, kind, round(rng.uniform(*mix.patience_s), 1)))
    return out


def talk_times_ms(n: int, seed: int, talk_range_s: tuple[float, float] = TALK_RANGE_S
                  ) -> list[int]:
    rng = random.Random(f"bench-storm-talk-{seed}")
    return [int(rng.uniform(*talk_range_s) * 1000) for _ in range(n)]


def injection_rows(callers: Sequence[Caller], launch_rate: int = LAUNCH_RATE,
                   lead_s: float = LEAD_S) -> str:
    """SIPp's injection file: caller i is started at about i / launch_rate s and pauses until
    its arrival; fields pause (ms), number, kind."""
    rows = ["SEQUENTIAL"]
    for i, c in enumerate(callers):
        pause_ms = max(0, round((lead_s + c.arrival_s - i / launch_rate) * 1000))
        rows.append(f"{pause_ms};{c.number};{c.kind};")
    return "\n".join(rows) + "\n"


# ------------------------------------------------------------------ pure: outcomes, figures


@dataclass
class CallFacts:
    """One caller's call on one side, from AMI events (and, ours, the call record)."""

    uid: str  # the caller channel's Uniqueid (= its Linkedid: the call id)
    channel: str
    number: str
    started: float
    joined: float | None = None  # first HotlineQueued / QueueCallerJoin
    answered: float | None = None  # a seat answered (DialEnd ANSWER to PJSIP/seat..)
    busy: bool = False  # HotlineBusy, or the baseline queue's FULL
    callback: bool = False  # HotlineCallback
    fell_back: bool = False  # HotlineFallback / HotlineFailover
    patience_hangup: bool = False  # the bench hung it up: patience ran out
    ended: float | None = None  # Hangup of the caller channel
    has_record: bool | None = None  # ours: a call record exists
    record_ended: bool | None = None  # ours: the record has its end
    record_outcome: str | None = None
    record_answered: bool | None = None


def classify(f: CallFacts) -> tuple[str | None, list[str]]:
    """The call's one outcome (OUTCOMES), or None when it has none or several; and what is
    wrong with it: not_ended (no Hangup: lost), no_record / record_open (ours: the call
    record missing or never closed), several_outcomes, fell_back (the FastAGI fallback or the
    failover queue took it), record_mismatch (the record's answer or deflection disagrees with
    Asterisk's events)."""
    problems: list[str] = []
    if f.ended is None:
        problems.append("not_ended")
    if f.has_record is False:
        problems.append("no_record")
    elif f.record_ended is False:
        problems.append("record_open")
    if f.fell_back:
        problems.append("fell_back")
    found = []
    if f.answered is not None:
        found.append("answered")
    if f.record_outcome == "deflected":
        found.append("deflected")
    if f.callback:
        found.append("callback")
    if f.busy:
        found.append("told_full")
    # a callback's record has its answer when the agent took the callback, on another channel
    if f.record_answered is not None and not f.callback \
            and f.record_answered != (f.answered is not None):
        problems.append("record_mismatch")
    if len(found) > 1:
        problems.append("several_outcomes")
        return None, problems
    return (found[0] if found else "abandoned"), problems


def tally(facts: Iterable[CallFacts], offered: int) -> dict[str, Any]:
    """The outcome table of one side: each outcome's count, the calls with a problem (by
    problem), the calls offered that Asterisk never saw, and whether the outcomes add up to the
    calls offered with every call in exactly one."""
    counts: Counter[str] = Counter()
    problems: Counter[str] = Counter()
    seen = 0
    for f in facts:
        seen += 1
        outcome, wrong = classify(f)
        if outcome is not None:
            counts[outcome] += 1
        problems.update(wrong)
    table = {k: counts.get(k, 0) for k in OUTCOMES}
    total = sum(table.values())
    lost = problems.get("not_ended", 0) + max(0, offered - seen)
    return {"offered": offered, "seen_by_asterisk": seen, "outcomes": table,
            "outcomes_total": total, "adds_up": total == offered and seen == offered,
            "exactly_one_each": problems.get("several_outcomes", 0) == 0,
            "lost": lost, "problems": dict(sorted(problems.items()))}


def _pct(xs: Sequence[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(q * len(s)))], 1)


def service_figures(facts: Iterable[CallFacts], within_s: float = SL_WITHIN_S
                    ) -> dict[str, Any]:
    """The service level for the callers who did need an agent (every caller but the
    deflected): answered within `within_s` of joining the queue / those callers. Also among
    the callers who joined the queue, and the answered callers' waits."""
    needed = answered_in = joined = answered = 0
    waits: list[float] = []
    for f in facts:
        outcome, _ = classify(f)
        if outcome == "deflected":
            continue
        needed += 1
        if f.joined is not None:
            joined += 1
        if f.answered is not None:
            answered += 1
            wait = f.answered - (f.joined if f.joined is not None else f.started)
            waits.append(max(0.0, wait))
            if wait <= within_s:
                answered_in += 1
    return {
        "needed_agent": needed, "joined_queue": joined, "answered": answered,
        "answered_within_s": within_s, "answered_within": answered_in,
        "service_level_needed": None if not needed else round(answered_in / needed, 4),
        "service_level_joined": None if not joined else round(answered_in / joined, 4),
        "answered_share_needed": None if not needed else round(answered / needed, 4),
        "wait_s_p50": _pct(waits, 0.5), "wait_s_p90": _pct(waits, 0.9),
        "wait_s_max": None if not waits else round(max(waits), 1),
    }


def agents_needed(erlangs: float, handle_s: float = HANDLE_S, target: float = SL_TARGET,
                  within_s: float = SL_WITHIN_S) -> int:
    """The fewest agents that answer `erlangs` of traffic at the service level (Erlang C)."""
    n = max(1, int(erlangs))
    while service_level(n, erlangs, handle_s, within_s) < target:  # ends: SL -> 1 as n grows
        n += 1
    return n


def deflection_saving(deflected: int, offered: int, arrivals_s: float,
                      handle_s: float = HANDLE_S) -> dict[str, Any]:
    """What the deflected calls would have cost: their work in agents busy all the time
    (deflected x handle / the arrivals' span), and the agents Erlang C would staff at 80/20
    for all the calls against the calls less the deflected."""
    if arrivals_s <= 0 or offered <= 0:
        return {"agents_of_work": None, "agents_staffed_all": None,
                "agents_staffed_without_deflected": None, "agents_staffed_saved": None}
    work = deflected * handle_s / arrivals_s
    all_a = offered * handle_s / arrivals_s
    rest_a = (offered - deflected) * handle_s / arrivals_s
    n_all, n_rest = agents_needed(all_a, handle_s), agents_needed(rest_a, handle_s)
    return {"agents_of_work": round(work, 1), "handle_s": handle_s,
            "agents_staffed_all": n_all, "agents_staffed_without_deflected": n_rest,
            "agents_staffed_saved": n_all - n_rest}


def sipp_cross_check(table: Mapping[str, Any], sipp: Mapping[str, int]) -> dict[str, Any]:
    """SIPp's own counts against the outcome table: every call SIPp created ended without a
    SIPp failure (a BYE either way), and SIPp created as many as Asterisk saw."""
    created, ok, failed = sipp.get("created", 0), sipp.get("completed", 0), sipp.get("failed", 0)
    return {"sipp_created": created, "sipp_successful": ok, "sipp_failed": failed,
            "sipp_in_progress": sipp.get("live", 0),
            "agrees": (created == table["offered"] == ok + failed and failed == 0
                       and table["seen_by_asterisk"] == created)}


def verdict(ours: Mapping[str, Any], crashed: Sequence[str], flat: Mapping[str, Any]
            ) -> dict[str, Any]:
    """Pass: no crash, no lost call, every call in exactly one outcome, the outcomes add up to
    the calls offered, SIPp agrees, no call fell back, the stack drained and its file
    descriptors back where they were."""
    t = ours["table"]
    checks = {
        "no_crash": not crashed,
        "no_lost_call": t["lost"] == 0 and not t["problems"].get("record_open")
        and not t["problems"].get("no_record"),
        "exactly_one_outcome_each": t["exactly_one_each"],
        "outcomes_add_up": t["adds_up"],
        "sipp_agrees": ours["sipp"]["agrees"],
        "no_fallback": not t["problems"].get("fell_back"),
        "drained_and_flat": flat.get("verdict") == "pass",
    }
    return {"passed": all(checks.values()), "checks": checks, "crashed": list(crashed)}


def flatness(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
             fd_slack: int = 5) -> dict[str, Any]:
    """The stack idle after the storm against idle before it: file descriptors within
    `fd_slack`, no channel, the outboxes and the ACD's queues and per-call maps empty, no
    connection checked out (bench/soak.py's drained checks); RSS growth reported."""
    before, after = before or {}, after or {}

    def delta(k: str) -> int | None:
        a, b = before.get(k), after.get(k)
        return None if a is None or b is None else int(b) - int(a)

    fds = {k: delta(k) for k in ("fds_cti", "fds_asterisk")}
    rss = {k: delta(k) for k in ("rss_cti_kib", "rss_asterisk_kib")}
    empty = {k: after.get(k) for k in ("channels", "mqtt_outbox", "acd_queues",
                                       "acd_call_maps", "db_checked_out")}
    bad = [k for k, v in fds.items() if v is None or abs(v) > fd_slack]
    bad += [k for k, v in empty.items() if v != 0]
    return {"fds_delta": fds, "rss_kib_delta": rss, "after_idle": empty,
            "fd_slack": fd_slack, "verdict": "pass" if not bad else "fail", "not_flat": bad}


# --------------------------------------------------------------------------- the instance


def baseline_conf(seats: Sequence[str], cap: int, wrap_up_s: int) -> str:
    """app_queue at its best (bench/acd.py's best queue) over `seats`, with maxlen = `cap`."""
    from bench.acd import BEST_QUEUE, best_queue_conf

    members = "\n".join(f"member => PJSIP/{s},0,{s},PJSIP/{s}" for s in seats)
    conf = best_queue_conf(members, wrap_up_s)
    head = f"[{BEST_QUEUE}]"
    if conf.count(head) != 1:
        raise ValueError("bench.acd.best_queue_conf changed its section")
    return (conf.replace("app_queue at its best (bench/acd.py)",
                         "the storm baseline (bench/storm.py): app_queue at its best, maxlen")
            .replace(head, f"[{BASELINE_QUEUE}]\nmaxlen = {cap}"))


def baseline_extension(welcome: str) -> str:
    return "\n".join([
        "; ---- bench only (bench/storm.py): the baseline, app_queue with maxlen",
        f"exten => {BASELINE_SERVICE},1,Gosub(hotline-sanitise,s,1)",
        " same => n,Set(TIMEOUT(absolute)=${MAXCALL})",
        " same => n,Set(CHANNEL(language)=zh)",
        " same => n,Answer()",
        f" same => n,Playback({welcome})",
        f" same => n,Queue({BASELINE_QUEUE},,,,${{QUEUE_MAX_WAIT}})",
        " same => n,UserEvent(BenchQueueResult,Status: ${QUEUESTATUS})",
        " same => n,Playback(${BUSY_ZH})",
        " same => n,Hangup(17)",
        "", ""])


def patch_baseline(etc: Path, seats: Sequence[str], cap: int, welcome: str) -> None:
    queues = etc / "queues.conf"
    queues.write_text(queues.read_text(encoding="utf-8") + baseline_conf(seats, cap, WRAP_UP_S),
                      encoding="utf-8")
    ext = etc / "extensions.conf"
    text = ext.read_text(encoding="utf-8")
    if text.count("[from-carrier]\n") != 1:
        raise ValueError("the rendered extensions.conf has no single [from-carrier]")
    ext.write_text(text.replace("[from-carrier]\n", "[from-carrier]\n"
                                + baseline_extension(welcome)), encoding="utf-8")


def prepare_storm(url: str, callers: Sequence[Caller], feeders: int, now: datetime
                  ) -> dict[str, Any]:
    """Before the CTI starts: storm-repair notices on `feeders` feeders with no notice yet,
    storm mode on (a supervisor's switch), and each caller's number added as a phone of an
    account: on a noticed feeder for outage callers, in no notice for the others. Checks that
    the outage-first lookup (OutageService.for_caller) finds a notice for exactly the first."""
    from sqlalchemy import func, select

    from callcenter.outage_service import OutageService, Who
    from cti.db.models import Account, AccountPhone
    from cti.db.outages import NoticeDraft
    from hotline.wiring import database_at
    from outages.scope import Cause

    who = Who("bench-storm", "supervisor")
    with database_at(url) as sessions:
        svc = OutageService(sessions)
        with sessions() as s:
            by_size = s.execute(
                select(Account.feeder_id, func.min(Account.account_no), func.count())
                .where(Account.feeder_id.is_not(None)).group_by(Account.feeder_id)
                .order_by(func.count().desc(), Account.feeder_id)).all()
            chosen = [int(fid) for fid, acct, _ in by_size
                      if fid is not None and svc.for_account(s, acct, now) == ()]
            chosen = chosen[:feeders]
        ids = [svc.publish(NoticeDraft(
            cause=Cause.STORM_REPAIR, start_at=now - timedelta(minutes=40),
            feeders=frozenset({fid}), expected_restore_at=now + timedelta(hours=3),
            agent_text="台风过境, 线路受损, 抢修中 (bench storm)"), who, now) for fid in chosen]
        svc.set_storm(True, who, now, detail="bench storm")
        with sessions() as s:
            on = [a for a, in s.execute(select(Account.id).where(
                Account.feeder_id.in_(chosen)).order_by(Account.id))]
            plain = [a for a, no in s.execute(select(Account.id, Account.account_no)
                                              .order_by(Account.id))
                     if svc.for_account(s, no, now) == ()][:500]
            taken = set(s.scalars(select(AccountPhone.phone)
                                  .where(AccountPhone.phone.like("188%"))))
        clash = [c.number for c in callers if c.number in taken]
        if clash or not on or not plain:
            raise ValueError(f"cannot give the callers numbers: {len(clash)} taken, "
                             f"{len(on)} accounts on the noticed feeders, {len(plain)} plain")
        with sessions.begin() as s:
            s.add_all(AccountPhone(account_id=(on if c.on_outage else plain)[
                c.index % len(on if c.on_outage else plain)], phone=c.number) for c in callers)
        wrong = []
        with sessions() as s:
            for c in callers[:200]:
                _, groups = svc.for_caller(s, c.number, now)
                if any(g.notices for g in groups) != c.on_outage:
                    wrong.append(c.number)
        if wrong:
            raise ValueError(f"the outage lookup disagrees for {len(wrong)} callers: {wrong[:5]}")
    return {"notices": ids, "feeders": chosen, "accounts_on_noticed_feeders": len(on),
            "plain_accounts_used": len(plain), "storm": "on (supervisor, before the CTI)"}


def read_records(url: str, uids: Iterable[str]) -> dict[str, tuple[bool, str | None, bool]]:
    """call_id -> (ended, outcome, answered) from the call records."""
    from sqlalchemy import select

    from cti.db.models import Call
    from hotline.wiring import database_at

    wanted = list(uids)
    out: dict[str, tuple[bool, str | None, bool]] = {}
    with database_at(url) as sessions, sessions() as s:
        for i in range(0, len(wanted), 500):
            for cid, ended, outcome, answered in s.execute(
                    select(Call.call_id, Call.ended_at, Call.outcome, Call.answered_at)
                    .where(Call.call_id.in_(wanted[i:i + 500]))):
                out[cid] = (ended is not None, outcome, answered is not None)
    return out


# -------------------------------------------------------------------------------- the run


class SideCalls:
    """One side's callers from AMI: CallFacts by Uniqueid."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.calls: dict[str, CallFacts] = {}
        self.callbacks_answered: set[str] = set()  # HotlineCallbackAnswered: the agent took it
        self.callbacks_ended: Counter[str] = Counter()  # HotlineCallbackEnded by DialStatus
        self.callbacks_failed = 0

    def feed(self, ev: Event) -> None:
        name, uid = ev.get("Event"), ev.get("Uniqueid", "")
        if name == "Newchannel":
            if ev.get("Context") == "from-carrier" and ev.get("Exten") == self.service:
                self.calls[uid] = CallFacts(uid, str(ev.get("Channel", "")),
                                            str(ev.get("CallerIDNum", "")), ts(ev))
            return
        user = ev.get("UserEvent") if name == "UserEvent" else None
        if user in ("HotlineCallbackAnswered", "HotlineCallbackEnded", "HotlineCallbackFailed"):
            if self.service != BASELINE_SERVICE:
                if user == "HotlineCallbackAnswered":
                    self.callbacks_answered.add(str(ev.get("CallId", "")))
                elif user == "HotlineCallbackEnded":
                    self.callbacks_ended[str(ev.get("DialStatus", ""))] += 1
                else:
                    self.callbacks_failed += 1
            return
        f = self.calls.get(uid)
        if f is None:
            return
        if name == "Hangup":
            f.ended = ts(ev)
        elif name == "DialEnd":
            if ev.get("DialStatus") == "ANSWER" and f.answered is None \
                    and str(ev.get("DestChannel", "")).startswith("PJSIP/seat"):
                f.answered = ts(ev)
        elif name == "QueueCallerJoin":
            f.joined = f.joined if f.joined is not None else ts(ev)
        elif user == "HotlineQueued":
            f.joined = f.joined if f.joined is not None else ts(ev)
        elif user == "HotlineBusy":
            f.busy = True
        elif user == "BenchQueueResult" and ev.get("Status") == "FULL":
            f.busy = True
        elif user == "HotlineCallback":
            f.callback = True
        elif user in ("HotlineFallback", "HotlineFailover"):
            f.fell_back = True

    def impatient(self, now: float, patience: Mapping[str, float]) -> list[CallFacts]:
        """Callers waiting longer than their patience: in the queue, not answered, not told
        full, no callback, not yet hung up."""
        return [f for f in self.calls.values()
                if f.ended is None and f.joined is not None and f.answered is None
                and not f.busy and not f.callback and not f.patience_hangup
                and now - f.joined >= patience.get(f.number, 1e9)]

    def live(self) -> int:
        return sum(1 for f in self.calls.values() if f.ended is None)

    def answered(self) -> int:
        return sum(1 for f in self.calls.values() if f.answered is not None)


@dataclass(frozen=True)
class Options:
    minutes: float = 3.0
    multiple: float = 10.0
    agents: int = 50
    seed: int = 95598
    feeders: int = 6
    mix: Mix = field(default_factory=Mix)
    sample_s: float = SAMPLE_S
    keep_workdir: bool = False

    @property
    def rate_per_s(self) -> float:
        return storm_rate(self.agents, self.multiple)


def storm_caller_xml(pcap: Path, callback_key: str) -> str:
    number = "[field1]"

    def info(digit: str, cseq: int) -> str:
        return scenario("caller_info", number=number, digit=digit, cseq=cseq)

    return scenario(
        "storm_caller", invite=scenario("caller_invite", number=number), pcap=pcap,
        lead_ms=LEAD_MS, gap_ms=GAP_MS, notice_ms=NOTICE_MS, deflect_ms=DEFLECT_MS,
        callback_ms=CALLBACK_AFTER_MS, lang=info("1", 2), agent_plain=info("0", 3),
        other_services=info("1", 3), agent_notice=info("0", 4),
        callback_key=info(callback_key, 5), awaits_bye=scenario("caller_awaits_bye"),
        bye=scenario("caller_bye", number=number, cseq=3))


def baseline_caller_xml(pcap: Path) -> str:
    return scenario("bench_caller", invite=scenario("caller_invite", number="[field1]"),
                    pcap=pcap, awaits_bye=scenario("caller_awaits_bye"))


def start_uac(workdir: Path, side: str, service: str, xml: str, callers_csv: Path, n: int,
              max_s: int, recv_s: int) -> tuple[subprocess.Popen[bytes], Path]:
    scen = workdir / f"{side}-caller.xml"
    scen.write_text(xml, encoding="ascii")
    stat = workdir / f"{side}-caller.stat.csv"
    port = SIP_PORT[side]
    proc = subprocess.Popen(
        ["sipp", f"127.0.0.1:{PORTS['sip']}", "-sf", str(scen), "-inf", str(callers_csv),
         "-s", service, "-m", str(n), "-l", str(n + 10), "-r", str(LAUNCH_RATE),
         "-rp", "1000", "-i", "127.0.0.1", "-p", str(port), "-mp", str(MEDIA_PORT[side]),
         "-cp", str(port + 1), "-recv_timeout", str(recv_s * 1000), "-timeout", f"{max_s}s",
         "-nostdin", "-watchdog_minor_maxtriggers", "1000000000",
         "-watchdog_major_maxtriggers", "1000000000",
         "-trace_err", "-error_file", str(workdir / f"{side}-caller.err"),
         "-trace_stat", "-stf", str(stat), "-fd", "5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        cwd=workdir)
    return proc, stat


async def _wait_port(port: int, what: str) -> None:
    from hotline import stack

    await asyncio.to_thread(stack.wait_until,
                            lambda: stack.port_open("127.0.0.1", port, udp=True), 10, what)


async def _drive(inst: Instance, opts: Options, callers: Sequence[Caller],
                 say: Callable[[str], None]) -> dict[str, Any]:
    from bench.soak import METRICS, Probe, _read_text, judge_metric, parse_sipp_stat
    from hotline import stack

    s = inst.settings
    url = inst.env["HOTLINE_DB_URL"]
    now = datetime.now(UTC)
    say(f"storm: notices on {opts.feeders} feeders, storm mode on, {len(callers)} callers' "
        "numbers")
    storm = await asyncio.to_thread(prepare_storm, url, callers, opts.feeders, now)
    say(f"  notices {storm['notices']} on feeders {storm['feeders']} "
        f"({storm['accounts_on_noticed_feeders']} accounts)")
    tap = AmiTap(s.ami.host, s.ami.port, *tap_login(s.ami, Path(s.asterisk_etc)))
    horizon = opts.minutes * 60
    recv_s = int(60 + opts.mix.patience_s[1] + TALK_RANGE_S[1] + 60)
    max_s = int(LEAD_S + len(callers) / LAUNCH_RATE + horizon + recv_s + 60)
    pcap = inst.workdir / "caller-silence.pcap"
    write_silence_pcap(pcap, recv_s + 30)
    talk = inst.workdir / "talk.csv"
    write_talk_times(talk, talk_times_ms(2 * len(callers) + 200, opts.seed))
    inst.procs.append(start_phones(inst.workdir, PHONES_SIP, PHONES_MEDIA, talk, RING_MS))
    await _wait_port(PHONES_SIP, "the agent phones (SIPp UAS)")
    customer = inst.workdir / "customer.csv"
    customer.write_text("SEQUENTIAL\n" + "900000;\n" * 10, encoding="ascii")  # the agent ends it
    inst.procs.append(start_phones(inst.workdir, TRUNK_SIP, TRUNK_MEDIA, customer, RING_MS))
    await _wait_port(TRUNK_SIP, "the customers behind the carrier trunk (SIPp UAS)")
    csv_path = inst.workdir / "callers.csv"
    csv_path.write_text(injection_rows(callers), encoding="ascii")
    patience = {c.number: c.patience_s for c in callers}
    sides = {OURS: SideCalls(s.pbx.service_number), BASELINE: SideCalls(BASELINE_SERVICE)}
    ours_inst = dataclasses.replace(inst, agents=inst.agents[:opts.agents])
    samples: list[dict[str, Any]] = []
    crashed: list[str] = []
    async with asyncio.TaskGroup() as tg:
        ami_task = tg.create_task(tap.run(), name="storm-ami-tap")
        try:
            await tap.wait_ready(15)
            say("starting the CTI")
            await asyncio.to_thread(stack.start_cti, s, env=inst.env)
            cti_pid = stack.pid_alive(stack.paths(s).cti_pid)
            ast_pid = stack.pid_alive(stack.paths(s).asterisk_pid)
            async with agents_desk(ours_inst, say):
                # the storm watch feeds the ACD the storm handling within its period
                await asyncio.sleep(s.storm.watch_every_s + 2)
                for side in sides.values():
                    tap.on_event(side.feed)
                probe = Probe(inst, tap)
                probe.t0 = time.time()
                idle_before = await probe.sample("idle")
                samples.append(idle_before)
                procs = {}
                stats = {}
                for name, service, xml in (
                        (OURS, s.pbx.service_number,
                         storm_caller_xml(pcap, s.acd.callback_key)),
                        (BASELINE, BASELINE_SERVICE, baseline_caller_xml(pcap))):
                    procs[name], stats[name] = start_uac(inst.workdir, name, service, xml,
                                                         csv_path, len(callers), max_s, recv_s)
                    inst.procs.append(procs[name])
                probe.stat = stats[OURS]
                t0 = time.time()
                arrivals_end = t0 + LEAD_S + horizon
                deadline = t0 + max_s + 15
                next_sample, next_say = t0 + opts.sample_s, t0 + 60
                hangups = 0
                say(f"storm load: {opts.rate_per_s:.3f} calls/s ({opts.multiple:g}x the 80/20 "
                    f"load of {opts.agents} agents) for {opts.minutes:g} min = {len(callers)} "
                    "callers on each side")
                while any(p.poll() is None for p in procs.values()) and time.time() < deadline:
                    now_s = time.time()
                    for side in sides.values():
                        for f in side.impatient(now_s, patience):
                            f.patience_hangup = True
                            hangups += 1
                            try:
                                await tap.action({"Action": "Hangup", "Channel": f.channel},
                                                 timeout=3)
                            except (AmiError, TimeoutError) as exc:
                                log.debug("patience hangup of %s: %s", f.channel, exc)
                    if now_s >= next_sample:
                        samples.append(await probe.sample(
                            "load" if now_s <= arrivals_end else "drain"))
                        next_sample += opts.sample_s
                    if now_s >= next_say:
                        o, b = sides[OURS], sides[BASELINE]
                        last = samples[-1]
                        say(f"  {(now_s - t0) / 60:4.1f} min: ours {len(o.calls)} calls, "
                            f"{o.live()} live, {o.answered()} answered; app_queue "
                            f"{len(b.calls)} calls, {b.live()} live, {b.answered()} answered; "
                            f"CTI RSS {last.get('rss_cti_kib')} KiB, fds {last.get('fds_cti')}")
                        next_say += 60
                    if not stack.pid_alive(stack.paths(s).cti_pid):
                        crashed.append("cti")
                        break
                    await asyncio.sleep(0.5)
                timed_out = [n for n, p in procs.items() if p.poll() is None]
                for p in procs.values():
                    stop(p, 10)
                    inst.procs.remove(p)
                # the callers are gone: the callbacks still to dial, then Asterisk empties
                o = sides[OURS]
                drain_t0 = time.time()

                def pending() -> int:
                    taken = sum(f.callback for f in o.calls.values())
                    return max(0, taken - sum(o.callbacks_ended.values()))
                left = len(await tap.channels())
                while (left or pending()) and time.time() < drain_t0 + DRAIN_S \
                        + TALK_RANGE_S[1] * (1 if pending() else 0):
                    await asyncio.sleep(1)
                    left = len(await tap.channels())
                drained_in = round(time.time() - drain_t0, 1)
                await asyncio.sleep(max(3.0, s.acd.wrap_up_s + 2))
                idle_after = await probe.sample("idle")
                samples.append(idle_after)
                for name, pid in (("cti", cti_pid), ("asterisk", ast_pid)):
                    if not pid or stack.pid_alive(stack.paths(s).cti_pid if name == "cti"
                                                  else stack.paths(s).asterisk_pid) != pid:
                        crashed.append(name)
                for side in sides.values():
                    tap.off_event(side.feed)
                sipp = {n: parse_sipp_stat(_read_text(st)) for n, st in stats.items()}
        finally:
            ami_task.cancel()
    records = await asyncio.to_thread(read_records, url, list(sides[OURS].calls))
    for uid, f in sides[OURS].calls.items():
        rec = records.get(uid)
        f.has_record = rec is not None
        if rec is not None:
            f.record_ended, f.record_outcome, f.record_answered = rec
    out_sides: dict[str, Any] = {}
    record_outcomes = Counter(str(r[1]) for r in records.values())
    for name, side in sides.items():
        facts = list(side.calls.values())
        table = tally(facts, len(callers))
        by_kind: dict[str, Counter[str]] = {}
        kind_of = {c.number: KINDS[c.kind] for c in callers}
        for f in facts:
            outcome, _ = classify(f)
            by_kind.setdefault(kind_of.get(f.number, "?"), Counter())[str(outcome)] += 1
        out_sides[name] = {
            "table": table,
            "sipp": sipp_cross_check(table, sipp[name]),
            "service": service_figures(facts),
            "by_caller_kind": {k: dict(sorted(v.items())) for k, v in sorted(by_kind.items())},
            "patience_hangups": sum(f.patience_hangup for f in facts),
            "timed_out": name in timed_out,
        }
    out_sides[OURS]["record_outcomes"] = dict(sorted(record_outcomes.items()))
    out_sides[OURS]["callbacks"] = {
        "taken": sum(f.callback for f in sides[OURS].calls.values()),
        "agent_answered": len(sides[OURS].callbacks_answered),
        "ended_by_dial_status": dict(sides[OURS].callbacks_ended),
        "seat_never_answered": sides[OURS].callbacks_failed}
    deflected = out_sides[OURS]["table"]["outcomes"]["deflected"]
    flat = flatness(idle_before, idle_after)
    flat.update({"seconds_to_drain": drained_in, "channels_left": left})
    judged = {m.key: judge_metric(m, samples) for m in METRICS}
    return {
        "verdict": verdict(out_sides[OURS], crashed, flat),
        "sides": out_sides,
        "deflection_saved": deflection_saving(deflected, len(callers), horizon),
        "storm": storm,
        "memory_and_fds": {"idle_before_vs_after": flat,
                           "under_load_per_10k_calls": {
                               k: {kk: v.get(kk) for kk in ("start", "end", "max",
                                                            "per_10k_calls", "verdict")}
                               for k, v in judged.items()}},
        "ami": {"reconnects": tap.reconnects, "dropped_events": tap.dropped},
        "samples": samples,
    }


def run(opts: Options, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole bench; SIGTERM stops it like Ctrl-C, every process stopped on the way out."""
    import tomllib

    from config.storm import storm_settings
    from prompts.index import PromptIndex

    callers = make_callers(opts.rate_per_s, opts.minutes, opts.seed, opts.mix)
    seats = [f"seat{i:02d}" for i in range(opts.agents + 1, 2 * opts.agents + 1)]
    cap_holder: dict[str, Any] = {}

    def patch(etc: Path) -> None:
        # the instance's own hotline.toml (bench/capacity.py writes it above its etc folder)
        toml = next(d / "hotline.toml" for d in etc.parents if (d / "hotline.toml").exists())
        raw = tomllib.loads(toml.read_text(encoding="utf-8"))
        storm = storm_settings(raw.get("storm", {}))
        cap = min(storm.storm.queue_cap, int(raw.get("acd", {}).get("max_queue", 10**6)))
        cap_holder["cap"] = cap
        index = PromptIndex.load(Path(raw["prompts"]["cache_dir"]))
        patch_baseline(etc, seats, cap, index.asterisk_path("ivr.welcome", "zh"))

    cap_opts = CapacityOptions(
        agents=2 * opts.agents, accounts=5000, keep_workdir=opts.keep_workdir,
        settings_extra={"pbx": {"outbound_trunk": f"127.0.0.1:{TRUNK_SIP}"}},
        patch_config=patch)
    say(f"storm bench: {opts.multiple:g}x the 80/20 load of {opts.agents} agents "
        f"({opts.rate_per_s:.3f} calls/s) for {opts.minutes:g} min, {len(callers)} callers "
        "per side, ours and app_queue (maxlen) at once")
    doc, common = run_on_instance(cap_opts, lambda inst: _drive(inst, opts, callers, say), say)
    kinds = Counter(KINDS[c.kind] for c in callers)
    doc["run"] = {
        "started_at": common["started_at"], "duration_s": common["duration_s"],
        "options": {**dataclasses.asdict(opts), "rate_per_s": round(opts.rate_per_s, 4)},
        "callers": len(callers), "callers_by_kind": dict(sorted(kinds.items())),
        "handle_s": HANDLE_S, "talk_s_uniform": TALK_RANGE_S, "ring_ms": RING_MS,
        "wrap_up_s": WRAP_UP_S, "queue_cap_both_sides": cap_holder.get("cap"),
        "callback_trunk": f"127.0.0.1:{TRUNK_SIP} (a SIPp UAS answering as the customer)",
        "database": "sqlite (the capacity instance's), the demo's 5,000 accounts",
        "host": common["host"],
    }
    return doc


def write_outputs(doc: Mapping[str, Any], prefix: Path) -> dict[str, str]:
    """<prefix>.json (everything but the samples) and <prefix>.csv (the samples)."""
    from bench.soak import samples_csv

    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = {k: prefix.with_name(prefix.name + "." + k) for k in ("json", "csv")}
    paths["csv"].write_text(samples_csv(doc["samples"]), encoding="utf-8")
    summary = {k: v for k, v in doc.items() if k != "samples"}
    summary["samples_csv"] = paths["csv"].name
    paths["json"].write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n",
                             encoding="utf-8")
    return {k: str(v) for k, v in paths.items()}
