"""`hotline bench capacity` (B1): stepped SIPp load through the real Asterisk, with the CTI and
with Asterisk alone, in three modes; the highest call rate and the most concurrent calls held
with 99.9 % of the calls completing, CPU and memory per call, and what one machine carries in
agents' worth of 95598 traffic (Erlang C).

Two sides on the same private instance, the same SIPp callers and agent phones:
- `static`, the baseline: Asterisk alone, the CTI stopped. A static dialplan (added by this
  bench to the instance's rendered extensions.conf only) answers, plays the IVR's own prompts
  and, in the bridged modes, Dials the agent phones round robin; recorded: a bare MixMonitor.
- `cti`: the shipped path. The carrier call to the service number runs the IVR over FastAGI;
  in the bridged modes the caller presses 1 (Mandarin) and 0 (agent) by SIP INFO, waits in
  `hotline-wait` and our ACD Redirects it to a logged-in agent's seat. `recorded` is the
  shipped `hotline-connect` (every agent leg recorded by `hotline-record`); `bridged` is the
  same with the recording Gosub taken out (a bench-only switch, global BENCH_NOREC).

Modes: `ivr` (the caller stays in the IVR for the hold time, then hangs up), `bridged` and
`recorded` (the agent phone answers, echoes the caller's RTP for the hold time, hangs up).

Each side and mode is a ramp of steps: a step offers `rate` calls/s for `step_s` seconds (one
SIPp UAC, -r/-m), waits for every call to end (deadline), then judges it: a call completes when
SIPp counts it successful (no error, no early BYE, no timeout) and Asterisk's events show it
reached the mode's goal (no FastAGI fallback or failover; a seat answered; a recording file).
A step passes when at most 0.1 % of its calls did not complete. The ramp grows by `factor`
until a step fails, then bisects between the last pass and the first fail (`refine` steps).
Before a bridged or recorded step the seats are registered again when their REGISTER would
otherwise expire (both sides: the run outlasts it), and on the CTI side every agent is made
ready again, as at the start, and the step waits (deadline) until the CTI says so: the ACD
leaves an agent whose ring went unanswered not ready ('rona') for a person to undo. Each step
records who was not ready before it and at its start, by why (`agents`), and the seats'
registration age (`seats`).

A private instance of its own ports (SIP 35160, AMI 35138, FastAGI 34673, broker 31983, web
38198, RTP 50000-54999, SIPp 35170-35191 and 35700-35899): none is a test slot's
(tests/support/ports.py), `make up`'s or `bench acd`'s, so it runs beside all of them. Every
process it starts is stopped on the way out. Method and figures: bench/BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import math
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import tomllib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w

from bench.acd import BenchError
from bench.ami_tap import AmiError, AmiTap, Event, tap_login
from bench.sipp import info_keys, scenario
from bench.sipp_load import SippError, register_seats, start_phones, stop, write_silence_pcap
from config.settings import REPO_ROOT, Settings, load_settings
from hotline import stack, trim

log = logging.getLogger(__name__)

PORTS = {"sip": 35160, "ami": 35138, "fastagi": 34673, "mqtt": 31983, "web": 38198}
RTP_RANGE = (50000, 54999)  # not the test callers' SIPp media ports (42000-44399)
CALLER_SIP, CALLER_MEDIA = 35170, 35700
PHONES_SIP, PHONES_MEDIA = 35180, 35800
REGISTER_SIP = 35190
MODES = ("ivr", "bridged", "recorded")
SIDES = ("static", "cti")
STATIC_SERVICE = {"ivr": "95580", "bridged": "95581", "recorded": "95582"}
COMPLETION_PPM = 999_000  # 99.9 %: a step passes when at most 0.1 % of its calls fail
HANDLE_S = 180.0  # the 95598 handle time for the Erlang C estimate
SL_TARGET, SL_WITHIN_S = 0.8, 20.0  # 80 % answered within 20 s
DIGITS_LEAD_MS, DIGITS_GAP_MS = 1500, 300  # the caller presses 1 then 0 after the answer
IVR_ALLOWANCE_S = 30.0  # a bridged call may take this long before its agent answers
RING_MS = 500
WRAP_UP_S = 1
# the Expires of the seats' REGISTER (bench.sipp_load.register_seats; a unit test checks it):
# once a contact expires, Asterisk cannot ring that seat and the ACD makes its agent not ready
# ('phone_offline'). The whole bench runs longer than that (~63 min in the 2026-12-05 run,
# whose recorded ramp lost every seat in its last two steps), so the bridged modes register
# the seats again between steps (registration_due)
SEAT_REGISTRATION_S = 3600.0
READY_DEADLINE_S = 30.0  # for every agent to be ready again before a CTI step
CHANNELS_WAIT_S = 30.0  # run_step's wait for Asterisk to have no channel, before and after


# ------------------------------------------------------------------- pure: Erlang C


def erlang_b(servers: int, erlangs: float) -> float:
    """Blocking probability (Erlang B) by the stable recursion B(k) = A B(k-1) / (k + A B(k-1))."""
    if servers < 0 or erlangs < 0:
        raise ValueError("servers and erlangs must be >= 0")
    b = 1.0
    for k in range(1, servers + 1):
        b = erlangs * b / (k + erlangs * b)
    return b


def erlang_c(servers: int, erlangs: float) -> float:
    """Probability that a call waits (Erlang C, M/M/c); 1 when the load reaches the servers."""
    if servers <= 0 or erlangs >= servers:
        return 1.0
    if erlangs <= 0:
        return 0.0
    b = erlang_b(servers, erlangs)
    return servers * b / (servers - erlangs * (1 - b))


def service_level(servers: int, erlangs: float, handle_s: float, within_s: float) -> float:
    """Share of calls answered within `within_s` (M/M/c, no abandons)."""
    if erlangs >= servers:
        return 0.0
    return 1 - erlang_c(servers, erlangs) * math.exp(-(servers - erlangs) * within_s / handle_s)


def mean_waiting(servers: int, erlangs: float) -> float:
    """Mean number of callers waiting (Lq = C x A / (N - A))."""
    if erlangs >= servers:
        return math.inf
    return erlang_c(servers, erlangs) * erlangs / (servers - erlangs)


def max_erlangs(servers: int, handle_s: float = HANDLE_S, target: float = SL_TARGET,
                within_s: float = SL_WITHIN_S) -> float:
    """The most traffic (erlangs) `servers` agents take at the service level target."""
    if servers <= 0:
        return 0.0
    lo, hi = 0.0, float(servers)
    for _ in range(60):  # bisection: the service level falls as the load grows
        mid = (lo + hi) / 2
        if service_level(servers, mid, handle_s, within_s) >= target:
            lo = mid
        else:
            hi = mid
    return lo


def agents_worth(max_concurrent: float, max_rate_per_s: float | None,
                 handle_s: float = HANDLE_S, target: float = SL_TARGET,
                 within_s: float = SL_WITHIN_S, extra_s: float = 0.0) -> dict[str, Any]:
    """The most agents whose 95598 traffic (Erlang C at `handle_s`, staffed for the service
    level target) one machine carries: the calls it holds on average (talking A, waiting Lq,
    and arrivals x `extra_s` in the IVR) within `max_concurrent`, and the arrival rate within
    `max_rate_per_s` (None: no rate limit)."""
    def fits(n: int) -> bool:
        a = max_erlangs(n, handle_s, target, within_s)
        rate = a / handle_s
        held = a + mean_waiting(n, a) + rate * extra_s
        return held <= max_concurrent and (max_rate_per_s is None or rate <= max_rate_per_s)

    if max_concurrent <= 0 or not fits(1):
        return {"agents": 0, "erlangs": 0.0, "calls_per_hour": 0.0, "binding": None}
    lo, hi = 1, max(2, int(2 * max_concurrent) + 50)
    while lo + 1 < hi:  # fits() is monotone: more agents take more traffic
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    a = max_erlangs(lo, handle_s, target, within_s)
    rate = a / handle_s
    held = a + mean_waiting(lo, a) + rate * extra_s
    nxt = max_erlangs(lo + 1, handle_s, target, within_s)
    binding = ("rate" if max_rate_per_s is not None and nxt / handle_s > max_rate_per_s
               else "concurrency")
    return {"agents": lo, "erlangs": round(a, 2), "calls_per_hour": round(rate * 3600, 1),
            "calls_held_mean": round(held, 1),
            "service_level": round(service_level(lo, a, handle_s, within_s), 4),
            "binding": binding}


# --------------------------------------------------------- pure: judgement and ramp


@dataclass(frozen=True)
class Judgement:
    offered: int
    completed: int
    failed: int
    allowed_failures: int
    passed: bool

    @property
    def completion(self) -> float | None:
        return None if self.offered <= 0 else self.completed / self.offered


def allowed_failures(offered: int, completion_ppm: int = COMPLETION_PPM) -> int:
    """How many of `offered` calls may fail at the completion target (integer arithmetic: 0
    below 1000 calls at 99.9 %, 1 from 1000 to 1999, ...)."""
    return max(0, offered) * (1_000_000 - completion_ppm) // 1_000_000


def judge(offered: int, completed: int, completion_ppm: int = COMPLETION_PPM) -> Judgement:
    """A step passes when at least the target share of its offered calls completed (and it
    offered any). Completed beyond offered (a stray call) counts as offered."""
    done = max(0, min(completed, offered))
    failed = max(0, offered) - done
    allowed = allowed_failures(offered, completion_ppm)
    return Judgement(offered, done, failed, allowed, offered > 0 and failed <= allowed)


@dataclass(frozen=True)
class RampPlan:
    start: float  # calls/s of the first step
    factor: float  # growth while every step passes
    max_rate: float  # never offer more (the agents' limit in the bridged modes)
    max_steps: int
    refine: int  # steps after the first failure, bisecting between the last pass and it
    min_gap: float = 1.1  # stop refining when fail / pass is within this ratio
    min_rate: float = 0.1  # below this nothing is tried (the first steps all failed)


def next_rate(plan: RampPlan, history: Sequence[tuple[float, bool]]) -> float | None:
    """The next step's rate, or None: the search is over. `history`: (rate, passed) so far."""
    if len(history) >= plan.max_steps:
        return None
    if not history:
        return round(min(plan.start, plan.max_rate), 3)
    fails = [r for r, ok in history if not ok]
    if not fails:
        last = max(r for r, _ in history)
        if last >= plan.max_rate:
            return None  # the cap reached with every step passing
        return round(min(plan.max_rate, last * plan.factor), 3)
    first_fail = next(i for i, (_, ok) in enumerate(history) if not ok)
    hi = min(fails)
    below = [r for r, ok in history if ok and r < hi]
    if not below:  # nothing passed yet: step down, whatever the refine budget
        down = round(hi / plan.factor, 3)
        return down if down >= plan.min_rate else None
    if len(history) - first_fail - 1 >= plan.refine:
        return None
    lo = max(below)
    if hi / lo <= plan.min_gap:
        return None
    return round(math.sqrt(lo * hi), 3)


def capacity_of(history: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """The highest passing rate below every failing one. bound: `measured` (a higher step
    failed), `at_least` (nothing failed: the cap or the step budget ended the ramp), `none`
    (no step passed)."""
    fails = [r for r, ok in history if not ok]
    ceiling = min(fails, default=math.inf)
    ok = [r for r, passed in history if passed and r < ceiling]
    if not ok:
        return {"rate_per_s": None, "bound": "none", "first_failing_rate_per_s":
                None if not fails else ceiling}
    return {"rate_per_s": max(ok), "bound": "measured" if fails else "at_least",
            "first_failing_rate_per_s": None if not fails else ceiling}


def plan_steps_bound(plan: RampPlan) -> int:
    """The most steps a ramp can take (for the time estimate)."""
    n, r = 1, plan.start
    while r < plan.max_rate and n < plan.max_steps:
        r *= plan.factor
        n += 1
    return min(plan.max_steps, n + plan.refine)


# ---------------------------------------------------------------- pure: the report


def _ratio(cti: float | None, static: float | None) -> float | None:
    if cti is None or not static:
        return None
    return round(cti / static, 3)


def summarize_ramp(steps: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A ramp's capacity from its steps: the rate, the calls held at that rate and below
    (peak and mean of the live callers), and the per-call costs measured at it."""
    history = [(float(s["rate_per_s"]), bool(s["passed"])) for s in steps]
    cap = capacity_of(history)
    rate = cap["rate_per_s"]
    ok_steps = [s for s in steps if s["passed"] and rate is not None and s["rate_per_s"] <= rate]
    at = next((s for s in steps if s["passed"] and s["rate_per_s"] == rate), None)
    return {
        **cap,
        "concurrent_calls_peak": max((s.get("callers_peak") or 0 for s in ok_steps),
                                     default=None),
        "concurrent_calls_mean": max((s.get("callers_mean") or 0.0 for s in ok_steps),
                                     default=None),
        "per_call_at_capacity": None if at is None else at.get("per_call"),
        "steps": len(steps),
    }


def report(ramps: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The headline: per mode, CTI-driven capacity / Asterisk-alone capacity (rate and calls
    held), the CTI's cost (1 - ratio) and whether it is under 10 %, and what one machine
    carries in agents (Erlang C, the `recorded` mode's CTI capacity: the production path).

    `ramps`: mode -> side ('cti', 'static') -> summarize_ramp(...)."""
    modes: dict[str, Any] = {}
    for mode, sides in ramps.items():
        cti, static = sides.get("cti") or {}, sides.get("static") or {}
        rate_ratio = _ratio(cti.get("rate_per_s"), static.get("rate_per_s"))
        held_ratio = _ratio(cti.get("concurrent_calls_peak"), static.get("concurrent_calls_peak"))
        both_capped = cti.get("bound") == "at_least" and static.get("bound") == "at_least"
        exact = cti.get("bound") == "measured" and static.get("bound") == "measured"
        if both_capped:
            verdict = "not separated: no step failed on either side (cap or step budget reached)"
        elif cti.get("bound") == "none" and static.get("rate_per_s") is not None:
            verdict = "not met: no CTI step passed"
        elif rate_ratio is None:
            verdict = "not measured"
        elif rate_ratio >= 0.9:
            verdict = "met" if exact or static.get("bound") == "at_least" else "met (lower bound)"
        else:
            verdict = "not met"
        if both_capped:  # equal by construction, not by measurement: no ratio to read
            rate_ratio = held_ratio = None
        modes[mode] = {
            "cti_rate_per_s": cti.get("rate_per_s"), "cti_bound": cti.get("bound"),
            "static_rate_per_s": static.get("rate_per_s"), "static_bound": static.get("bound"),
            "rate_ratio": rate_ratio,
            "cti_cost": None if rate_ratio is None else round(1 - rate_ratio, 3),
            "cti_concurrent_peak": cti.get("concurrent_calls_peak"),
            "static_concurrent_peak": static.get("concurrent_calls_peak"),
            "concurrent_ratio": held_ratio,
            "moonshot_cti_cost_under_10pct": verdict,
            "cti_per_call": cti.get("per_call_at_capacity"),
            "static_per_call": static.get("per_call_at_capacity"),
        }
    machine = None
    rec = (ramps.get("recorded") or {}).get("cti") or {}
    if rec.get("concurrent_calls_mean"):
        machine = {
            "basis": "the recorded mode's CTI capacity: mean calls held and the call rate at "
                     "the highest passing step (a lower bound when its bound is at_least)",
            "bound": rec.get("bound"),
            **agents_worth(float(rec["concurrent_calls_mean"]), rec.get("rate_per_s")),
            "handle_s": HANDLE_S, "service_level_target": f"{SL_TARGET:.0%} in {SL_WITHIN_S:g} s",
        }
    return {"modes": modes, "one_machine_carries": machine}


def per_call(cpu_s: Mapping[str, float | None], rss_growth_kib: Mapping[str, float | None],
             completed: int, peak_callers: int) -> dict[str, Any]:
    """CPU ms per completed call and memory KiB per concurrent call, by process."""
    out: dict[str, Any] = {}
    for name, cpu in cpu_s.items():
        out[f"cpu_ms_{name}"] = (None if cpu is None or completed <= 0
                                 else round(cpu * 1000 / completed, 2))
    for name, grow in rss_growth_kib.items():
        out[f"rss_kib_{name}"] = (None if grow is None or peak_callers <= 0
                                  else round(grow / peak_callers, 1))
    return out


# ------------------------------------------------------------------------- /proc


def proc_tree(pid: int | None) -> list[int]:
    """`pid` and its descendants (Asterisk and the CTI are one process each today)."""
    if not pid:
        return []
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return out


def cpu_s(pids: Sequence[int]) -> float | None:
    total, seen = 0.0, False
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
            seen = True
        except (OSError, ValueError, IndexError):
            continue
    return total if seen else None


def rss_kib(pids: Sequence[int]) -> float | None:
    """The pids' VmRSS summed (KiB), read by hotline.trim's reader; None when none is read."""
    read = [kib for kib in map(trim.rss_kib, pids) if kib is not None]
    return float(sum(read)) if read else None


# ------------------------------------------------- pure: the seats and agents between steps


def registration_due(age_s: float, bound_s: float,
                     expires_s: float = SEAT_REGISTRATION_S) -> bool:
    """Register the seats again before a step: by the step's end (at most `bound_s` from now)
    their registration (`age_s` old) would be past half its lifetime."""
    return age_s + bound_s > expires_s / 2


def fold_states(latest: dict[str, Mapping[str, Any]], states: Sequence[Mapping[str, Any]],
                start: int = 0) -> int:
    """Fold the agents' state messages (bench.acd.Desk.states, in the order received) from
    index `start` on into `latest` (agent id -> its newest message); the index to go on from."""
    for doc in states[start:]:
        agent = doc.get("agent_id")
        if isinstance(agent, str):
            latest[agent] = doc
    return len(states)


def not_ready_by_reason(latest: Mapping[str, Mapping[str, Any]],
                        agents: Sequence[str]) -> dict[str, int]:
    """How many of `agents` the CTI last reported not ready, by why: 'not_ready:<reason>'
    (rona, phone_offline, login, ...), the state they are in (reserved, on_call, wrap_up,
    logged_out), or 'unknown' (no state message seen). Empty when all are ready."""
    out: Counter[str] = Counter()
    for agent in agents:
        doc = latest.get(agent)
        state = str(doc.get("state") or "unknown") if doc else "unknown"
        if state == "ready":
            continue
        if state == "not_ready":
            state = f"not_ready:{doc.get('reason') or '-'}" if doc else state
        out[state] += 1
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    modes: tuple[str, ...] = MODES
    agents: int = 300
    hold_s: float = 15.0
    step_s: float = 45.0
    ivr_plan: RampPlan = RampPlan(start=4.0, factor=1.5, max_rate=60.0, max_steps=9, refine=2)
    bridged_plan: RampPlan = RampPlan(start=2.0, factor=1.5, max_rate=50.0, max_steps=8,
                                      refine=2)
    keep_workdir: bool = False
    quick: bool = False
    # one unjudged step at the ramp's first rate before it: Asterisk's and the CTI's first
    # calls of a mode allocate what later calls reuse, which would count as memory per call
    warmup: bool = True
    # for other benches on this instance (bench/storm.py): the demo's accounts, settings
    # over the bench's own ({section: {key: value}}), and a change to the rendered config
    # (its etc dir) before Asterisk starts
    accounts: int = 200
    settings_extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    patch_config: Callable[[Path], None] | None = None

    def plan(self, mode: str) -> RampPlan:
        if mode == "ivr":
            return self.ivr_plan
        # the agents bound the bridged modes: a call takes an agent for the digits, the IVR,
        # the ring, the hold and the wrap-up; keep them at most 80 % busy so nobody queues
        busy_s = DIGITS_LEAD_MS / 1000 + 4 + RING_MS / 1000 + self.hold_s + WRAP_UP_S
        cap = round(0.8 * self.agents / busy_s, 3)
        p = self.bridged_plan
        return RampPlan(min(p.start, cap), p.factor, min(p.max_rate, cap), p.max_steps,
                        p.refine, p.min_gap, p.min_rate)

    @property
    def call_max_s(self) -> float:
        """The longest a step's call may take (SIPp's -recv_timeout)."""
        return IVR_ALLOWANCE_S + self.hold_s + 15

    def step_bound_s(self) -> float:
        """The longest a step may take from its readying of the agents to its end (run_step:
        the agents, the calls' deadline, stopping SIPp, the wait for no channels)."""
        return READY_DEADLINE_S + self.step_s + self.call_max_s + 15 + 10 + CHANNELS_WAIT_S

    def estimate_s(self) -> float:
        per_step = self.step_s + self.hold_s + 15
        steps = sum(2 * (plan_steps_bound(self.plan(m)) + self.warmup) for m in self.modes)
        return 40 + steps * per_step


QUICK = Options(agents=20, hold_s=2.0, step_s=5.0,
                ivr_plan=RampPlan(start=2.0, factor=2.0, max_rate=60.0, max_steps=2, refine=0),
                bridged_plan=RampPlan(start=1.0, factor=2.0, max_rate=50.0, max_steps=2,
                                      refine=0),
                quick=True, warmup=False)


# --------------------------------------------------------------------- the instance


def write_settings(path: Path, state: Path, seats: int,
                   extra: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """hotline.toml with the bench's ports, paths, seats and a short wrap-up (and `extra`)."""
    raw = tomllib.loads((REPO_ROOT / "hotline.toml").read_text(encoding="utf-8"))
    overrides: dict[str, dict[str, Any]] = {
        "paths": {"state_dir": str(state)},
        "pbx": {"sip_port": PORTS["sip"], "rtp_start": RTP_RANGE[0], "rtp_end": RTP_RANGE[1],
                "seats": seats},
        "ami": {"port": PORTS["ami"]},
        "fastagi": {"port": PORTS["fastagi"]},
        "mqtt": {"port": PORTS["mqtt"]},
        "web": {"port": PORTS["web"]},
        # no post-call survey: the bench's phones hang up first, and its callers would stay
        # on to rate the call (the survey is not what the bench measures)
        "acd": {"wrap_up_s": WRAP_UP_S, "max_queue": 1000, "survey_skills": []},
        "ivr": {"flows_dir": str(REPO_ROOT / "ivr" / "flows")},
        "prompts": {"catalog_dir": str(REPO_ROOT / "prompts" / "catalog"),
                    "cache_dir": str(REPO_ROOT / "prompts" / "cache")},
    }
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    for section, more in (extra or {}).items():
        raw.setdefault(section, {}).update(more)
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return path


def static_dialplan(seats: int, prompts: Mapping[str, str]) -> tuple[str, str]:
    """Asterisk alone (the baseline): the from-carrier extensions and the recording context.
    `prompts`: welcome, language_menu, main_menu (Asterisk paths of the IVR's own prompts)."""
    head = "\n".join([
        "; ---- bench only (bench/capacity.py): Asterisk alone, no FastAGI, no CTI",
        f"exten => {STATIC_SERVICE['ivr']},1,Gosub(hotline-sanitise,s,1)",
        " same => n,Set(TIMEOUT(absolute)=${MAXCALL})",
        " same => n,Set(CHANNEL(language)=zh)",
        " same => n,Answer()",
        f" same => n,Playback({prompts['welcome']})",
        f" same => n(menu),Read(BENCH_KEY,{prompts['language_menu']},1,,1,4)",
        f" same => n,Read(BENCH_KEY,{prompts['main_menu']},1,,1,6)",
        " same => n,Goto(menu)",
        "",
    ])
    for mode, opts in (("bridged", "m(default)"), ("recorded", "m(default)U(bench-static-rec)")):
        head += "\n".join([
            f"exten => {STATIC_SERVICE[mode]},1,Gosub(hotline-sanitise,s,1)",
            " same => n,Set(TIMEOUT(absolute)=${MAXCALL})",
            " same => n,Set(CHANNEL(language)=zh)",
            " same => n,Answer()",
            f" same => n,Playback({prompts['welcome']})",
            f" same => n,Set(GLOBAL(BENCH_RR)=$[${{GLOBAL(BENCH_RR)}} % {seats} + 1])",
            " same => n,Set(BENCH_SEAT=${GLOBAL(BENCH_RR)})",
            " same => n,Dial(PJSIP/seat${IF($[${BENCH_SEAT} < 10]?0:)}${BENCH_SEAT},"
            f"${{RING_TIMEOUT}},{opts})",
            " same => n,Hangup()",
            "",
        ])
    rec = "\n".join([
        "", "; ---- bench only: the baseline's recording, a bare MixMonitor on the agent leg",
        "[bench-static-rec]",
        "exten => s,1,MixMonitor(${RECDIR}/${STRFTIME(${EPOCH},UTC,%Y%m%d)}/"
        "${CHANNEL(linkedid)}_${UNIQUEID}_${CHANNEL(endpoint)}.wav)",
        " same => n,Return()", ""])
    return head + "\n", rec


REC_DIAL_OPT = "U(hotline-record^${HOTLINE_SKILL})"


def patch_extensions(text: str, seats: int, prompts: Mapping[str, str]) -> str:
    """The instance's rendered extensions.conf with the baseline's extensions and the CTI
    side's recording switch (BENCH_NOREC=1: hotline-connect's Dial without the recording)."""
    for anchor in ("[globals]\n", "[from-carrier]\n", "[hotline-connect]\n"):
        if text.count(anchor) != 1:
            raise BenchError(f"the rendered extensions.conf has no single {anchor.strip()}")
    head, rec = static_dialplan(seats, prompts)
    text = text.replace("[globals]\n", "[globals]\nBENCH_RR = 0\nBENCH_NOREC = 0\n")
    text = text.replace("[from-carrier]\n", "[from-carrier]\n" + head)
    start = text.index("[hotline-connect]\n")
    end = text.find("\n[", start + 1)
    block = text[start:end if end >= 0 else len(text)]
    lines = block.split("\n")
    dials = [i for i, ln in enumerate(lines) if "Dial(" in ln and REC_DIAL_OPT in ln]
    if len(dials) != 1:
        raise BenchError("hotline-connect has no single Dial with the recording Gosub")
    i = dials[0]
    dial = lines[i]
    lines[i:i + 1] = [
        " same => n,GotoIf($[0${GLOBAL(BENCH_NOREC)}]?benchnorec)",
        dial,
        " same => n,Goto(benchdialled)",
        dial.replace(" same => n,", " same => n(benchnorec),").replace(REC_DIAL_OPT, ""),
        " same => n(benchdialled),NoOp(bench: dialled)",
    ]
    return text[:start] + "\n".join(lines) + text[start + len(block):] + rec


@dataclass
class Instance:
    workdir: Path
    settings: Settings
    env: dict[str, str]
    agents: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    registered_at: float = 0.0  # time.monotonic() of the seats' last REGISTER

    @property
    def seats(self) -> list[str]:
        return [f"seat{i:02d}" for i in range(1, len(self.agents) + 1)]

    @property
    def recordings(self) -> Path:
        return Path(self.settings.recorder.storage_dir)


def _seed_db(url: str, n_agents: int, n_accounts: int = 200) -> list[str]:
    """The demo database, plus bench agents B051.. beyond the demo's 50; everyone general."""
    from sqlalchemy import select

    from cti.db.models import Agent
    from hotline.demo_seed import seed_demo
    from hotline.wiring import database_at

    now = datetime.now(UTC)
    with database_at(url) as sessions, sessions.begin() as s:
        seed_demo(s, now=now, n_accounts=n_accounts)
        rows = list(s.execute(select(Agent).where(Agent.role == "agent")
                              .order_by(Agent.agent_id)).scalars().all())
        for i in range(len(rows) + 1, n_agents + 1):
            a = Agent(agent_id=f"B{i:03d}", name=f"bench {i}", role="agent", password_hash="!",
                      skills={"general": 3}, active=True, created_at=now)
            s.add(a)
            rows.append(a)
        for a in rows[:n_agents]:
            a.skills = {**a.skills, "general": a.skills.get("general", 3)}
        return [a.agent_id for a in rows[:n_agents]]


def _prompt_paths(settings: Settings) -> dict[str, str]:
    from prompts.index import PromptIndex

    index = PromptIndex.load(settings.prompts.cache_dir)
    return {name: index.asterisk_path(f"ivr.{name}", "zh")
            for name in ("welcome", "language_menu", "main_menu")}


@contextmanager
def instance(opts: Options) -> Iterator[Instance]:
    """Asterisk, the broker and the agent phones of the bench's own (the CTI is started by
    the CTI side); all stopped on the way out."""
    from bench.acd import BENCH_ACL, BENCH_USER
    from hotline.wiring import build_prompts, render_config

    for tool in ("sipp", "/usr/sbin/mosquitto"):
        if not shutil.which(tool):
            raise BenchError(f"{tool} is not installed: run `make up`")
    for name, port in PORTS.items():
        if stack.port_open("127.0.0.1", port, udp=name == "sip"):
            raise BenchError(f"port {port} ({name}) is taken: is another capacity bench running?")
    workdir = Path(tempfile.mkdtemp(prefix="hotline-capacity-"))
    os.chmod(workdir, 0o755)  # Asterisk (its own user, in the chroot) reads its config below
    env = {**os.environ, "HOTLINE_SETTINGS": str(workdir / "hotline.toml"),
           "HOTLINE_AMI_SECRET": secrets.token_urlsafe(16),
           "HOTLINE_DB_URL": f"sqlite:///{workdir / 'bench.db'}"}
    env.pop("HOTLINE_STATE_DIR", None)
    write_settings(workdir / "hotline.toml", workdir, opts.agents, opts.settings_extra)
    settings = load_settings(workdir / "hotline.toml", env)
    inst = Instance(workdir, settings, env)
    ok = False
    try:
        build_prompts(settings)
        etc = Path(render_config(settings))
        ext = etc / "extensions.conf"
        ext.write_text(patch_extensions(ext.read_text(encoding="utf-8"), opts.agents,
                                        _prompt_paths(settings)), encoding="utf-8")
        if opts.patch_config is not None:
            opts.patch_config(etc)
        inst.agents = _seed_db(env["HOTLINE_DB_URL"], opts.agents, opts.accounts)
        stack.start_mosquitto(settings, extra={BENCH_USER: list(BENCH_ACL)})
        stack.start_asterisk(settings)
        register_all_seats(inst)
        yield inst
        ok = True
    finally:
        for p in inst.procs:
            stop(p)
        stack.stop_cti(settings)
        stack.stop_asterisk(settings)
        stack.stop_mosquitto(settings)
        from asterisk_conf.mosquitto import broker_folder
        shutil.rmtree(broker_folder(workdir), ignore_errors=True)
        if ok and not opts.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log.warning("bench files kept in %s", workdir)


def register_all_seats(inst: Instance) -> None:
    """REGISTER every seat with its Contact on the agent phones' port; remembers when."""
    doc = json.loads((inst.workdir / "secrets.json").read_text(encoding="utf-8"))
    register_seats({s: doc[s] for s in inst.seats}, f"127.0.0.1:{PORTS['sip']}",
                   PHONES_SIP, inst.workdir, REGISTER_SIP)
    inst.registered_at = time.monotonic()


# ------------------------------------------------------------------------ one step


class LiveCallers:
    """The step's callers from AMI: live count, and whether each reached the mode's goal."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.live: set[str] = set()
        self.seen: set[str] = set()
        self.answered: set[str] = set()  # a seat answered (DialEnd ANSWER to PJSIP/seat..)
        self.fell_back: set[str] = set()  # HotlineFallback / HotlineFailover

    def feed(self, ev: Event) -> None:
        name, uid = ev.get("Event"), ev.get("Uniqueid", "")
        if name == "Newchannel":
            if ev.get("Context") == "from-carrier" and ev.get("Exten") == self.service:
                self.live.add(uid)
                self.seen.add(uid)
            return
        if uid not in self.seen:
            return
        if name == "Hangup":
            self.live.discard(uid)
        elif name == "DialEnd" and ev.get("DialStatus") == "ANSWER" \
                and str(ev.get("DestChannel", "")).startswith("PJSIP/seat"):
            self.answered.add(uid)
        elif name == "UserEvent" and ev.get("UserEvent") in ("HotlineFallback",
                                                             "HotlineFailover"):
            self.fell_back.add(uid)

    def goal_reached(self, mode: str, recorded: set[str]) -> int:
        ok = self.seen - self.fell_back
        if mode in ("bridged", "recorded"):
            ok &= self.answered
        if mode == "recorded":
            ok &= recorded
        return len(ok)


def sipp_counts(stat_csv: Path) -> dict[str, int]:
    """SuccessfulCall(C) and FailedCall(C) from SIPp's last statistics line."""
    try:
        rows = list(csv.reader(stat_csv.read_text(encoding="ascii", errors="replace")
                               .splitlines(), delimiter=";"))
    except OSError:
        return {"successful": 0, "failed": 0}
    if len(rows) < 2:
        return {"successful": 0, "failed": 0}
    head, last = rows[0], rows[-1]

    def col(name: str) -> int:
        try:
            return int(last[head.index(name)])
        except (ValueError, IndexError):
            return 0
    return {"successful": col("SuccessfulCall(C)"), "failed": col("FailedCall(C)")}


def recorded_calls(folder: Path) -> set[str]:
    """Linkedids with a non-empty recording (file names start with the call's Linkedid)."""
    out: set[str] = set()
    if folder.exists():
        for f in folder.rglob("*.wav"):
            try:
                if f.stat().st_size > 44:  # more than the WAV header
                    out.add(f.name.split("_", 1)[0])
            except OSError:
                continue
    return out


def _clear_recordings(folder: Path) -> None:
    if folder.exists():
        for f in folder.rglob("*.wav"):
            f.unlink(missing_ok=True)


async def wait_no_channels(tap: AmiTap, timeout: float) -> int:
    """Hang up whatever is left and wait until Asterisk has no channel; the count left."""
    deadline = time.monotonic() + timeout
    left = await tap.channels()
    while left and time.monotonic() < deadline:
        try:
            await tap.action({"Action": "Hangup", "Channel": "/^PJSIP\\//"})
        except Exception as exc:  # noqa: BLE001 - "no such channel" when they just went away
            log.debug("hangup all: %s", exc)
        await asyncio.sleep(0.5)
        left = await tap.channels()
    return len(left)


def caller_scenario(side: str, mode: str, hold_s: float, pcap: Path) -> str:
    number = "1395[call_number]"
    invite = scenario("caller_invite", number=number)
    digits = ""
    cseq = 2
    if mode != "ivr":
        # the IVR's keys: 1 Mandarin, 0 agent (the static dialplan ignores them)
        digits, cseq = info_keys(number, [(DIGITS_LEAD_MS, "1"), (DIGITS_GAP_MS, "0")], cseq)
        digits += f'  <pause milliseconds="{DIGITS_GAP_MS}"/>\n'
    if mode == "ivr":
        end = (f'  <pause milliseconds="{int(hold_s * 1000)}"/>\n'
               + scenario("caller_bye", number=number, cseq=cseq))
    else:
        end = scenario("caller_awaits_bye")
    return scenario("capacity_caller", invite=invite, digits=digits, pcap=pcap, end=end)


@dataclass
class Run:
    inst: Instance
    opts: Options
    tap: AmiTap
    pcap: Path
    say: Any
    ast_pid: int | None = None
    cti_pid: int | None = None
    phones: subprocess.Popen[bytes] | None = None
    desk: Any = None  # bench.acd.Desk with every agent logged in (the CTI side, bridged modes)


def start_step_callers(sdir: Path, scen: Path, service: str, rate: float, n: int,
                       call_max_s: float, stat: Path,
                       total_s: float | None = None) -> subprocess.Popen[bytes]:
    """One SIPp UAC: `n` calls at `rate` calls/s (SIPp paces them: rate x 1000 per 1000 s).
    SIPp stops after `total_s` in all (default 3 x call_max_s, a step's bound)."""
    total = int(total_s if total_s is not None else call_max_s * 3)
    return subprocess.Popen(
        ["sipp", f"127.0.0.1:{PORTS['sip']}", "-sf", str(scen), "-s", service,
         "-r", str(round(rate * 1000)), "-rp", "1000000", "-m", str(n),
         "-l", str(n + 10), "-i", "127.0.0.1", "-p", str(CALLER_SIP), "-mp",
         str(CALLER_MEDIA), "-cp", str(CALLER_SIP + 1),
         "-recv_timeout", str(int(call_max_s * 1000)), "-timeout", f"{total}s",
         "-nostdin", "-trace_err", "-error_file", str(sdir / "caller.err"),
         "-trace_stat", "-stf", str(stat), "-fd", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        cwd=sdir)


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else max(0.0, b - a)


async def ready_agents(desk: Any, agents: Sequence[str], seats: Sequence[str],
                       deadline_s: float = READY_DEADLINE_S) -> dict[str, Any]:
    """Make every agent ready again the way the bench first did (bench.acd.Desk over MQTT: a
    `ready`, or login and ready for one logged out), then wait, until `deadline_s`, for the
    CTI's state messages to say every agent is ready. The ACD itself never makes an agent
    ready again after a ring-no-answer (not_ready 'rona', acd/agent_fsm.py), as a person at
    a desk would. Returns who was not ready before (by why), the commands refused (by error),
    who is still not ready at the deadline (by why) and how long it took."""
    latest: dict[str, Mapping[str, Any]] = {}
    seen = fold_states(latest, desk.states)
    before = not_ready_by_reason(latest, agents)
    refused: Counter[str] = Counter()
    gate = asyncio.Semaphore(10)

    async def one(agent: str, seat: str) -> None:
        async with gate:
            try:
                if (latest.get(agent) or {}).get("state") == "logged_out":
                    await desk.login_ready(agent, seat)
                    return
                r = await desk.command(agent, {"action": "ready"})
            except BenchError:
                refused["login"] += 1
                return
            except TimeoutError:
                refused["no_reply"] += 1
                return
            if not r.get("ok"):
                refused[str(r.get("error") or "refused")] += 1

    t0 = time.monotonic()
    try:
        async with asyncio.timeout(deadline_s), asyncio.TaskGroup() as tg:
            for agent, seat in zip(agents, seats, strict=True):
                tg.create_task(one(agent, seat), name=f"ready-{agent}")
    except TimeoutError:
        refused["deadline"] += 1  # some commands were still on their way
    seen = fold_states(latest, desk.states, seen)
    still = not_ready_by_reason(latest, agents)
    while still and time.monotonic() < t0 + deadline_s:  # bounded by the deadline
        await asyncio.sleep(0.2)
        seen = fold_states(latest, desk.states, seen)
        still = not_ready_by_reason(latest, agents)
    return {"not_ready_before": sum(before.values()), "not_ready_before_by_reason": before,
            "refused": dict(sorted(refused.items())),
            "not_ready_at_start": sum(still.values()), "not_ready_at_start_by_reason": still,
            "ready_s": round(time.monotonic() - t0, 1)}


async def prepare_seats_and_agents(run: Run, side: str, mode: str, label: str
                                   ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Before a bridged or recorded step, on both sides: the seats registered again when
    due (registration_due). On the CTI side: every agent made ready again (ready_agents)."""
    inst = run.inst
    seats: dict[str, Any] = {
        "registration_age_s": round(time.monotonic() - inst.registered_at, 1),
        "registered_again": False}
    if registration_due(time.monotonic() - inst.registered_at, run.opts.step_bound_s()):
        await asyncio.to_thread(register_all_seats, inst)
        seats["registered_again"] = True
        run.say(f"  the seats registered again before {side}/{mode} {label} "
                f"(the last REGISTER was {seats['registration_age_s']:.0f}s ago)")
    if side != "cti" or run.desk is None:
        return seats, None
    agents = await ready_agents(run.desk, inst.agents, inst.seats)
    if agents["not_ready_before"] or agents["refused"]:
        run.say(f"  {agents['not_ready_before']} agents not ready before {side}/{mode} "
                f"{label} {agents['not_ready_before_by_reason']}; commands refused "
                f"{agents['refused']}; made ready in {agents['ready_s']}s")
    if agents["not_ready_at_start"]:
        run.say(f"  {agents['not_ready_at_start']} agents still not ready after "
                f"{READY_DEADLINE_S:g}s: {agents['not_ready_at_start_by_reason']}")
    return seats, agents


async def run_step(run: Run, side: str, mode: str, rate: float, index: int) -> dict[str, Any]:
    inst, opts, tap = run.inst, run.opts, run.tap
    label = "warm-up" if index == 0 else f"step {index}"
    left_before = await wait_no_channels(tap, CHANNELS_WAIT_S)
    if left_before:
        raise BenchError(f"{left_before} channels still up before {side}/{mode} step {index}")
    if mode != "ivr" and run.phones is not None and run.phones.poll() is not None:
        # an overloaded step can starve the phones' SIPp; a step without them measures nothing
        run.say(f"  the agent phones had exited ({run.phones.returncode}): started again")
        inst.procs.remove(run.phones)
        run.phones = await start_agent_phones(inst, opts.hold_s)
    seats: dict[str, Any] | None = None
    agents: dict[str, Any] | None = None
    if mode != "ivr":
        seats, agents = await prepare_seats_and_agents(run, side, mode, label)
    _clear_recordings(inst.recordings)
    service = inst.settings.pbx.service_number if side == "cti" else STATIC_SERVICE[mode]
    n = max(1, round(rate * opts.step_s))
    sdir = inst.workdir / f"{side}-{mode}-{index:02d}"
    sdir.mkdir()
    scen = sdir / "caller.xml"
    scen.write_text(caller_scenario(side, mode, opts.hold_s, run.pcap), encoding="ascii")
    call_max_s = opts.call_max_s
    view = LiveCallers(service)
    tap.on_event(view.feed)
    ast = proc_tree(run.ast_pid)
    cti = proc_tree(run.cti_pid) if side == "cti" else []
    rss0 = {"asterisk": rss_kib(ast), "cti": rss_kib(cti) if cti else None}
    rss_max = dict(rss0)
    cpu0 = {"asterisk": cpu_s(ast), "cti": cpu_s(cti) if cti else None}
    load0 = os.getloadavg()
    stat = sdir / "caller.stat.csv"
    t0 = time.time()
    proc = start_step_callers(sdir, scen, service, rate, n, call_max_s, stat)
    inst.procs.append(proc)
    sipp_cpu0 = cpu_s([proc.pid]) or 0.0
    sipp_cpu = sipp_cpu0
    deadline = t0 + opts.step_s + call_max_s + 15
    samples: list[tuple[float, int]] = []
    while proc.poll() is None and time.time() < deadline:  # bounded by the deadline
        samples.append((time.time() - t0, len(view.live)))
        for name, pids in (("asterisk", ast), ("cti", cti)):
            r = rss_kib(pids) if pids else None
            if r is not None and (rss_max[name] is None or r > (rss_max[name] or 0)):
                rss_max[name] = r
        sipp_cpu = cpu_s([proc.pid]) or sipp_cpu
        await asyncio.sleep(0.5)
    timed_out = proc.poll() is None
    t_end = time.time()
    cpu1 = {"asterisk": cpu_s(ast), "cti": cpu_s(cti) if cti else None}
    stop(proc, 10)
    inst.procs.remove(proc)
    left = await wait_no_channels(tap, CHANNELS_WAIT_S)
    tap.off_event(view.feed)
    recorded = recorded_calls(inst.recordings) if mode == "recorded" else set()
    counts = sipp_counts(stat)
    goal = view.goal_reached(mode, recorded)
    completed = min(counts["successful"], goal)
    verdict = judge(n, completed)
    # the steady part: after the first calls could end, until the last arrival
    lead = opts.hold_s + (0 if mode == "ivr" else 5)
    steady = [c for t, c in samples if lead <= t <= opts.step_s] or [c for _, c in samples]
    peak = max((c for _, c in samples), default=0)
    cpu = {k: _delta(cpu0[k], cpu1[k]) for k in cpu0}
    growth = {k: _delta(rss0[k], rss_max[k]) for k in rss0}
    wall = max(0.001, t_end - t0)
    doc = {
        "side": side, "mode": mode, "index": index, "rate_per_s": rate, "offered": n,
        "completed": completed, "failed": verdict.failed,
        "allowed_failures": verdict.allowed_failures, "passed": verdict.passed,
        "sipp_successful": counts["successful"], "sipp_failed": counts["failed"],
        "asterisk_callers_seen": len(view.seen), "goal_reached": goal,
        "fell_back": len(view.fell_back),
        "seat_answered": len(view.answered) if mode != "ivr" else None,
        "recorded": len(recorded & view.seen) if mode == "recorded" else None,
        "timed_out": timed_out, "channels_left": left,
        "callers_peak": peak,
        "callers_mean": round(sum(steady) / len(steady), 1) if steady else 0.0,
        "wall_s": round(wall, 1),
        "cpu_s": {k: None if v is None else round(v, 2) for k, v in cpu.items()},
        "cpu_util_pct": {k: None if v is None else round(100 * v / wall, 1)
                         for k, v in cpu.items()},
        "cpu_s_sipp_callers": round(sipp_cpu - sipp_cpu0, 2),
        "rss_kib_start": rss0, "rss_kib_max": rss_max,
        "per_call": per_call(cpu, growth, completed, peak),
        "loadavg_start": [round(x, 2) for x in load0],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        # bridged modes: the seats' registration (both sides) and, on the CTI side, the
        # agents not ready when the step began, by why (ready_agents)
        "seats": seats, "agents": agents,
    }
    run.say(f"  {side}/{mode} {label}: {rate:g}/s x {opts.step_s:g}s = {n} calls, "
            f"{completed} completed, peak {peak} held, "
            f"{'PASS' if verdict.passed else 'FAIL'} ({wall:.0f}s)")
    return doc


async def run_ramp(run: Run, side: str, mode: str) -> dict[str, Any]:
    plan = run.opts.plan(mode)
    steps: list[dict[str, Any]] = []
    history: list[tuple[float, bool]] = []
    warmup = None
    if run.opts.warmup:
        warmup = await run_step(run, side, mode, next_rate(plan, []) or plan.start, 0)
    while (rate := next_rate(plan, history)) is not None:  # bounded by plan.max_steps
        doc = await run_step(run, side, mode, rate, len(steps) + 1)
        steps.append(doc)
        history.append((rate, bool(doc["passed"])))
    return {"plan": plan.__dict__, "summary": summarize_ramp(steps), "steps": steps,
            "warmup": warmup}


# ---------------------------------------------------------------------------- main


async def start_agent_phones(inst: Instance, talk_s: float) -> subprocess.Popen[bytes]:
    """The agent phones (one SIPp UAS for every seat): answer after RING_MS, talk `talk_s`,
    hang up; listed in inst.procs (stopped on the way out)."""
    talk = inst.workdir / "talk.csv"
    talk.write_text("SEQUENTIAL\n" + f"{int(talk_s * 1000)};\n" * 10, encoding="ascii")
    phones = start_phones(inst.workdir, PHONES_SIP, PHONES_MEDIA, talk, RING_MS)
    inst.procs.append(phones)
    await asyncio.to_thread(stack.wait_until,
                            lambda: stack.port_open("127.0.0.1", PHONES_SIP, udp=True), 10,
                            "the agent phones (SIPp UAS)")
    return phones


def cti_bus_connected(inst: Instance) -> bool:
    """The CTI's status file says its MQTT bus is connected, subscribed and online."""
    try:
        doc = json.loads((inst.settings.state_dir / "cti.status.json").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return bool(((doc.get("outbox") or {}).get("mqtt") or {}).get("connected"))


@asynccontextmanager
async def agents_desk(inst: Instance, say: Any, login: bool = True) -> AsyncIterator[Any]:
    """The bench's desktops over MQTT (bench.acd.Desk) on the running CTI; with `login`, every
    agent logged in at its seat and ready first."""
    import aiomqtt

    from asterisk_conf.mosquitto import credential
    from bench.acd import BENCH_USER, Desk

    mqtt_log = logging.getLogger("bench.mqtt")
    mqtt_log.setLevel(logging.ERROR)
    async with aiomqtt.Client("127.0.0.1", PORTS["mqtt"], logger=mqtt_log,
                              identifier=f"capacity-{uuid.uuid4().hex[:8]}",
                              username=BENCH_USER,
                              password=credential(inst.workdir, BENCH_USER)) as client:
        desk = Desk(client)
        desk_task = asyncio.create_task(desk.run(), name="capacity-desk")
        try:
            await asyncio.sleep(0.2)  # subscriptions before the first command
            if login:
                # a command sent before the CTI has subscribed is lost (QoS 1, no session):
                # wait for its bus to say connected and subscribed (cti.status.json)
                await asyncio.to_thread(stack.wait_until, lambda: cti_bus_connected(inst), 30,
                                        "the CTI's MQTT bus connected and subscribed")
                gate = asyncio.Semaphore(10)

                async def login_one(agent: str, seat: str) -> None:
                    async with gate:
                        await desk.login_ready(agent, seat)
                async with asyncio.TaskGroup() as logins:
                    for agent, seat in zip(inst.agents, inst.seats, strict=True):
                        logins.create_task(login_one(agent, seat), name=f"login-{agent}")
                say(f"{len(inst.agents)} agents ready")
            yield desk
        finally:
            desk_task.cancel()


async def _drive(inst: Instance, opts: Options, say: Any) -> dict[str, Any]:
    s = inst.settings
    run = Run(inst, opts, AmiTap(s.ami.host, s.ami.port, *tap_login(s.ami, Path(s.asterisk_etc))),
              inst.workdir / "caller-silence.pcap", say)
    write_silence_pcap(run.pcap, int(IVR_ALLOWANCE_S + opts.hold_s + 60))
    run.phones = await start_agent_phones(inst, opts.hold_s)
    run.ast_pid = stack.pid_alive(stack.paths(s).asterisk_pid)
    ramps: dict[str, dict[str, Any]] = {m: {} for m in opts.modes}
    async with asyncio.TaskGroup() as tg:
        ami_task = tg.create_task(run.tap.run(), name="capacity-ami-tap")
        try:
            await run.tap.wait_ready(15)
            # Asterisk alone first: the CTI has never run on this Asterisk yet
            for mode in opts.modes:
                say(f"static (Asterisk alone) / {mode}")
                ramps[mode]["static"] = await run_ramp(run, "static", mode)
            say("starting the CTI")
            await asyncio.to_thread(stack.start_cti, s, env=inst.env)
            run.cti_pid = stack.pid_alive(stack.paths(s).cti_pid)
            need_agents = any(m != "ivr" for m in opts.modes)
            async with agents_desk(inst, say, login=need_agents) as desk:
                run.desk = desk if need_agents else None
                for mode in opts.modes:
                    norec = "1" if mode == "bridged" else "0"
                    await asyncio.to_thread(stack.asterisk_cli, s,
                                            f"dialplan set global BENCH_NOREC {norec}")
                    say(f"cti / {mode}")
                    ramps[mode]["cti"] = await run_ramp(run, "cti", mode)
        finally:
            ami_task.cancel()
    summaries = {m: {side: r["summary"] for side, r in sides.items()}
                 for m, sides in ramps.items()}
    return {"headline": report(summaries), "ramps": ramps}


Driver = Callable[["Instance"], Coroutine[Any, Any, dict[str, Any]]]


def run_on_instance(opts: Options, drive: Driver, say: Any = print
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A bench's run on the private instance (this bench's and `bench soak`'s): SIGTERM stops
    it like Ctrl-C, every process stopped on the way out. Returns what `drive` returned and the
    run's common fields (start, duration, host with its load averages at start and end)."""
    from bench.acd import host_info, raise_plainly

    def on_term(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    started = time.time()
    host0 = host_info()
    try:
        with instance(opts) as inst:
            say(f"bench instance up in {time.time() - started:.0f}s ({inst.workdir})")
            doc = asyncio.run(drive(inst))
    except (stack.StackError, SippError, AmiError) as exc:
        raise BenchError(str(exc)) from exc
    except BaseExceptionGroup as group:
        raise_plainly(group)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    host1 = host_info()
    return doc, {
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "host": {**{k: v for k, v in host1.items() if k != "loadavg"},
                 "loadavg_at_start": host0["loadavg"], "loadavg_at_end": host1["loadavg"]},
    }


def run(opts: Options, say: Any = print) -> dict[str, Any]:
    """The whole bench; SIGTERM stops it like Ctrl-C, every process stopped on the way out."""
    say(f"capacity bench: modes {', '.join(opts.modes)}; at most about "
        f"{opts.estimate_s() / 60:.0f} min")
    doc, common = run_on_instance(opts, lambda inst: _drive(inst, opts, say), say)
    doc["run"] = {
        "started_at": common["started_at"], "duration_s": common["duration_s"],
        "quick": opts.quick, "modes": list(opts.modes), "agents": opts.agents,
        "hold_s": opts.hold_s, "step_s": opts.step_s, "wrap_up_s": WRAP_UP_S,
        "ring_ms": RING_MS, "completion_target": COMPLETION_PPM / 1_000_000,
        "host": common["host"],
    }
    return doc
