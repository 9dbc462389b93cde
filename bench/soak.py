"""`hotline bench soak`: a compressed soak at a high steady call rate through the real stack,
sampled over time, judged for growth in memory, file descriptors, Asterisk channels, database
connections and the outboxes.

The stack is bench/capacity.py's private instance (its ports, its SQLite database, its agent
phones): one SIPp UAC offers `rate` calls/s for `minutes`; each caller runs the shipped IVR
over FastAGI (presses 1, then 0 for an agent), waits in `hotline-wait`, our ACD rings a
logged-in agent's seat, the SIPp phone answers, talks `talk_s` and hangs up, and the agent leg
is recorded (`hotline-connect`). Every `sample_s` the bench samples:

- memory: VmRSS of the CTI and of Asterisk (/proc);
- file descriptors: /proc/<pid>/fd of the CTI and of Asterisk;
- Asterisk channels: CoreShowChannels over AMI (and, at the end, the channels left once the
  callers are gone, without hanging anything up);
- database connections: the CTI's pool checked-out count (cti.status.json, db_pool) and the
  CTI's open handles on the SQLite database files (the instance is SQLite; PostgreSQL's
  pg_stat_activity is not sampled: the capacity instance has no PostgreSQL);
- the outboxes (cti.status.json, outbox): the MQTT bus's queue of pops and states waiting for
  the broker (MqttBus.stats()['queued']), the ACD's bounded queues (inbox, DB jobs, lookups,
  replies held behind lookups) and its per-call maps, which must empty as calls end.

Memory is trimmed as in service (hotline/trim.py): the CTI gives glibc's kept pages back every
`[memory] trim_every_s` by itself, and, since the soak runs no watchdog, the soak has Asterisk do
the same on the same period (`malloc trim`, as the watchdog does). `--trim-every 0` turns both
off, to measure the stack without them; each Asterisk trim is in the results (`trims`), and the
CTI's count and last trim in the samples.

Judgement: over the second half of the load (the first half is warm-up), a least-squares line
per metric against calls completed; growth per 10k calls and per hour, with the slope's 95 %
interval (samples are autocorrelated, so the interval is if anything too narrow). A metric
passes when its growth per 10k calls is at most its threshold, fails when even the interval's
lower end is above it, and is inconclusive in between. After the load, the drained stack must
hold no channel, nothing in the outboxes and no checked-out connection.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import smaps_diff
from bench.ami_tap import AmiError, AmiTap, tap_login
from bench.capacity import (
    IVR_ALLOWANCE_S,
    Instance,
    LiveCallers,
    agents_desk,
    caller_scenario,
    proc_tree,
    recorded_calls,
    register_all_seats,
    registration_due,
    rss_kib,
    run_on_instance,
    start_agent_phones,
    start_step_callers,
    wait_no_channels,
)
from bench.capacity import Options as CapacityOptions
from bench.sipp_load import stop, write_silence_pcap
from hotline import stack, trim

log = logging.getLogger(__name__)

Sample = dict[str, Any]
Z95 = 1.96
PER_CALLS = 10_000  # growth is judged per this many calls completed
DRAIN_S = 60.0  # after the last caller ends, channels must be gone within this, unforced


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    threshold_per_10k: float  # the most growth per 10k calls that passes


# A call that leaked one object (a dict of its data, a few strings) would cost a Python CTI
# 1-2 KB: 10-20 MB per 10k calls. 1 MiB per 10k calls (about 100 bytes a call) catches that and
# stays above the allocator's noise. Counts (fds, channels, connections, queue lengths) move
# with the calls in flight; one left behind per 1000 calls fails.
METRICS: tuple[Metric, ...] = (
    Metric("rss_cti_kib", "CTI RSS", "KiB", 1024),
    Metric("rss_asterisk_kib", "Asterisk RSS", "KiB", 1024),
    Metric("fds_cti", "CTI open file descriptors", "fds", 10),
    Metric("fds_asterisk", "Asterisk open file descriptors", "fds", 10),
    Metric("channels", "Asterisk channels (CoreShowChannels)", "channels", 10),
    Metric("db_checked_out", "DB pool: connections checked out", "connections", 10),
    Metric("db_handles", "CTI handles on the SQLite db files", "fds", 10),
    Metric("mqtt_outbox", "MQTT outbox (pops/states queued)", "messages", 10),
    Metric("acd_queues", "ACD queues (inbox, DB jobs, lookups, held)", "items", 10),
    Metric("acd_call_maps", "ACD per-call maps (calls, channels, timers..)", "entries", 10),
)
CONTEXT = ("t_s", "phase", "calls_completed", "calls_failed", "live_calls")
# Sampled, not judged: where the CTI's memory sits, to explain a growth in its RSS. From
# /proc/<pid>/smaps: the main arena's brk heap, the anonymous mappings (thread arenas,
# pymalloc's arenas, large allocations); from cti.status.json: Python's allocated blocks and
# the threads (each may own a glibc malloc arena), what the C heap holds in use and has
# mapped (mallinfo2) and SQLite's share of it (its page caches, capped); Asterisk's AstDB file
# (the recordings' notes, kept by day: a part of Asterisk's memory is its SQLite page cache).
DIAGNOSTICS = ("cti_brk_heap_kib", "cti_anon_kib", "cti_python_blocks", "cti_threads",
               "cti_heap_in_use_kib", "cti_heap_mapped_kib", "cti_sqlite_kib",
               "cti_trims", "cti_trim_freed_kib", "asterisk_astdb_kib",
               "asterisk_brk_heap_kib", "asterisk_anon_kib", "asterisk_threads")
METRIC_KEYS = frozenset(m.key for m in METRICS) | {"live_calls"}
COLUMNS = CONTEXT + tuple(m.key for m in METRICS) + DIAGNOSTICS
ACD_QUEUES = ("inbox", "db_jobs", "lookups", "held_replies")


# ------------------------------------------------------------------- pure: parsing


def parse_sipp_stat(text: str) -> dict[str, int]:
    """The last line of a SIPp statistics CSV (-trace_stat): calls completed (SuccessfulCall),
    failed (FailedCall), in progress (CurrentCall), created (TotalCallCreated); 0 when absent."""
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=";") if r]
    names = {"completed": "SuccessfulCall(C)", "failed": "FailedCall(C)",
             "live": "CurrentCall", "created": "TotalCallCreated"}
    if len(rows) < 2:
        return dict.fromkeys(names, 0)
    head, last = rows[0], rows[-1]
    out: dict[str, int] = {}
    for key, col in names.items():
        try:
            out[key] = int(last[head.index(col)])
        except (ValueError, IndexError):
            out[key] = 0
    return out


def parse_status(doc: Mapping[str, Any] | None) -> dict[str, int | None]:
    """The soak's figures from the CTI's cti.status.json (None for what it does not say)."""
    doc = doc or {}
    outbox = doc.get("outbox") or {}
    mqtt = outbox.get("mqtt") or {}
    acd = outbox.get("acd") or {}
    pool = doc.get("db_pool") or {}
    memory = doc.get("memory") or {}

    def num(v: Any) -> int | None:
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    queues = [num(acd.get(k)) for k in ACD_QUEUES]
    maps = [num(v) for k, v in acd.items() if k not in ACD_QUEUES]
    return {
        "mqtt_outbox": num(mqtt.get("queued")),
        "acd_queues": None if not acd or None in queues else sum(q or 0 for q in queues),
        "acd_call_maps": None if not maps or None in maps else sum(m or 0 for m in maps),
        "db_checked_out": num(pool.get("checked_out")),
        "cti_python_blocks": num(memory.get("python_blocks")),
        "cti_threads": num(memory.get("threads")),
        "cti_heap_in_use_kib": num(memory.get("heap_in_use_kib")),
        "cti_heap_mapped_kib": num(memory.get("heap_mapped_kib")),
        "cti_sqlite_kib": num(memory.get("sqlite_kib")),
        "cti_trims": num(memory.get("trims")),
        "cti_trim_freed_kib": num(memory.get("trim_freed_kib")),
    }


def parse_smaps(text: str) -> dict[str, int]:
    """Resident KiB of a /proc/<pid>/smaps by kind: the brk heap ([heap]) and anonymous
    mappings (no path, or [anon:...]); stacks, vdso and files are left out."""
    maps = smaps_diff.parse(text)
    return {"brk_heap_kib": sum(m["rss"] for m in maps if m["name"] == "[heap]"),
            "anon_kib": sum(m["rss"] for m in maps
                            if m["name"] == "" or m["name"].startswith("[anon"))}


def count_handles(targets: Sequence[str], db_path: str) -> int:
    """Open files (readlink of /proc/<pid>/fd/*) on the database or its -wal/-shm/-journal."""
    return sum(1 for t in targets if t == db_path or t.startswith(db_path + "-"))


# ------------------------------------------------------------------- pure: judgement


@dataclass(frozen=True)
class Fit:
    slope: float
    intercept: float
    stderr: float  # of the slope
    n: int


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> Fit | None:
    """Least squares y = a + b x; None with fewer than 3 points or no spread in x."""
    n = len(xs)
    if n != len(ys) or n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    b = sxy / sxx
    a = my - b * mx
    ssr = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys, strict=True))
    return Fit(b, a, math.sqrt(ssr / (n - 2) / sxx), n)


def verdict(slope: float, stderr: float, threshold: float) -> str:
    """pass: growth at most the threshold; fail: even the 95 % interval's lower end is above
    it; inconclusive: above it, but within noise."""
    if slope <= threshold:
        return "pass"
    if slope - Z95 * stderr > threshold:
        return "fail"
    return "inconclusive"


def steady_window(samples: Sequence[Sample]) -> list[Sample]:
    """The second half (by time) of the samples taken under load: the first half is warm-up."""
    load = [s for s in samples if s.get("phase") == "load"]
    if not load:
        return []
    t0, t1 = load[0]["t_s"], load[-1]["t_s"]
    mid = (t0 + t1) / 2
    return [s for s in load if s["t_s"] >= mid]


def judge_metric(metric: Metric, samples: Sequence[Sample]) -> dict[str, Any]:
    """One metric over the steady window: first/last/min/max under load, slope per 10k calls
    (the verdict) and per hour."""
    load = [s for s in samples if s.get("phase") == "load" and s.get(metric.key) is not None]
    win = [s for s in steady_window(samples) if s.get(metric.key) is not None]
    out: dict[str, Any] = {
        "label": metric.label, "unit": metric.unit,
        "threshold_per_10k_calls": metric.threshold_per_10k,
        "start": load[0][metric.key] if load else None,
        "end": load[-1][metric.key] if load else None,
        "min": min((s[metric.key] for s in load), default=None),
        "max": max((s[metric.key] for s in load), default=None),
        "window_start": win[0][metric.key] if win else None,
        "window_end": win[-1][metric.key] if win else None,
        "window_samples": len(win),
    }
    ys = [float(s[metric.key]) for s in win]
    by_calls = fit_line([float(s["calls_completed"]) for s in win], ys)
    by_time = fit_line([float(s["t_s"]) for s in win], ys)
    if by_calls is None or by_time is None:
        return {**out, "per_10k_calls": None, "per_10k_calls_ci95": None, "per_hour": None,
                "verdict": "no data"}
    per10k = by_calls.slope * PER_CALLS
    half = Z95 * by_calls.stderr * PER_CALLS
    return {**out, "per_10k_calls": round(per10k, 3),
            "per_10k_calls_ci95": [round(per10k - half, 3), round(per10k + half, 3)],
            "per_hour": round(by_time.slope * 3600, 3),
            "fit_per_call": {"slope": by_calls.slope, "intercept": by_calls.intercept},
            "verdict": verdict(per10k, by_calls.stderr * PER_CALLS, metric.threshold_per_10k)}


def judge_drained(after: Mapping[str, Any] | None, channels_left: int | None) -> dict[str, Any]:
    """Once every caller is gone: no channel left (unforced), the outboxes and the ACD's queues
    and per-call maps empty, no connection checked out."""
    after = after or {}
    checks = {
        "channels_left": channels_left,
        "mqtt_outbox": after.get("mqtt_outbox"),
        "acd_queues": after.get("acd_queues"),
        "acd_call_maps": after.get("acd_call_maps"),
        "db_checked_out": after.get("db_checked_out"),
    }
    failed = [k for k, v in checks.items() if v != 0]
    return {**checks, "verdict": "pass" if not failed else "fail", "not_zero": failed}


def overall(metrics: Mapping[str, Mapping[str, Any]], drained: Mapping[str, Any]) -> str:
    verdicts = [m["verdict"] for m in metrics.values()] + [drained["verdict"]]
    if "fail" in verdicts or "no data" in verdicts:
        return "fail"
    return "inconclusive" if "inconclusive" in verdicts else "pass"


def samples_csv(samples: Sequence[Sample]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for s in samples:
        w.writerow({k: ("" if s.get(k) is None else s.get(k)) for k in COLUMNS})
    return buf.getvalue()


def read_samples_csv(text: str) -> list[Sample]:
    """The CSV back (for re-plotting or re-judging a run): numbers as numbers, '' as None."""
    out: list[Sample] = []
    for row in csv.DictReader(io.StringIO(text)):
        s: Sample = {}
        for k, v in row.items():
            if k == "phase":
                s[k] = v
            elif v == "" or v is None:
                s[k] = None
            else:
                f = float(v)
                s[k] = int(f) if f.is_integer() and k != "t_s" else f
        out.append(s)
    return out


# ------------------------------------------------------------------------------ plot


def plot(samples: Sequence[Sample], judged: Mapping[str, Mapping[str, Any]], path: Path,
         title: str) -> None:
    """One panel per metric against time (bottom axis) and calls completed (top axis), the
    steady window's fitted line over it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    t = np.array([s["t_s"] / 60 for s in samples], dtype=float)
    calls = np.array([s["calls_completed"] or 0 for s in samples], dtype=float)
    t_load = [s["t_s"] / 60 for s in samples if s.get("phase") == "load"]
    win = steady_window(samples)
    panels = [*METRICS, Metric("live_calls", "Calls in progress (SIPp)", "calls", 0),
              Metric("cti_anon_kib", "CTI anonymous mappings (not judged)", "KiB", 0),
              Metric("cti_brk_heap_kib", "CTI brk heap (not judged)", "KiB", 0),
              Metric("cti_python_blocks", "CTI Python blocks (not judged)", "blocks", 0),
              Metric("cti_heap_in_use_kib", "CTI C heap in use (not judged)", "KiB", 0),
              Metric("cti_sqlite_kib", "CTI SQLite caches (not judged)", "KiB", 0),
              Metric("asterisk_astdb_kib", "Asterisk's AstDB file (not judged)", "KiB", 0)]
    panels = [m for m in panels if m.key in METRIC_KEYS or any(s.get(m.key) is not None
                                                                 for s in samples)]
    cols = 3
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(15, 3.1 * rows), squeeze=False)

    def to_calls(x: Any) -> Any:
        return np.interp(x, t, calls)

    def to_time(c: Any) -> Any:
        # calls completed never decrease; a small ramp makes the inverse well defined
        return np.interp(c, calls + np.arange(len(calls)) * 1e-6, t)

    for ax, m in zip(axes.flat, panels, strict=False):
        ys = [s.get(m.key) for s in samples]
        pts = [(x, y) for x, y in zip(t, ys, strict=True) if y is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1, color="tab:blue")
        if t_load:
            ax.axvspan(t_load[0], t_load[-1], color="0.93", zorder=0)
        if win:
            ax.axvline(win[0]["t_s"] / 60, color="0.6", ls=":", lw=1)
        j = judged.get(m.key) or {}
        fitp = j.get("fit_per_call")
        if fitp and win:
            xs = np.array([s["t_s"] / 60 for s in win])
            cs = np.array([s["calls_completed"] for s in win], dtype=float)
            ax.plot(xs, fitp["intercept"] + fitp["slope"] * cs, color="tab:red", lw=1.2)
        name = m.label
        if j.get("per_10k_calls") is not None:
            name += (f"\n{j['per_10k_calls']:+.3g} {m.unit}/10k calls "
                     f"({j['per_hour']:+.3g}/h): {j['verdict']}")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.set_xlabel("minutes", fontsize=8)
        if len(t) > 1 and calls[-1] > calls[0]:
            top = ax.secondary_xaxis("top", functions=(to_calls, to_time))
            top.tick_params(labelsize=7)
            top.set_xlabel("calls completed", fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


# --------------------------------------------------------------------- the sampler


@dataclass(frozen=True)
class Options:
    minutes: float = 30.0
    rate: float = 2.0  # calls/s offered
    agents: int = 30
    talk_s: float = 4.0
    sample_s: float = 10.0
    record: bool = True  # False: the agent legs are not recorded (BENCH_NOREC, a diagnostic)
    keep_workdir: bool = False
    trim_every_s: float | None = None  # None: hotline.toml's [memory]; 0: no trims


def _fds(pids: Sequence[int]) -> tuple[int | None, list[str]]:
    """Open descriptors of the processes and what they point to."""
    n, targets, seen = 0, [], False
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        seen = True
        n += len(names)
        for name in names:
            try:
                targets.append(os.readlink(f"/proc/{pid}/fd/{name}"))
            except OSError:
                continue
    return (n if seen else None), targets


def _kib_of(folder: Path, name: str) -> int | None:
    """KiB of a SQLite file and its -wal/-journal (None when the file is not there)."""
    sizes = []
    for suffix in ("", "-wal", "-journal"):
        try:
            sizes.append((folder / (name + suffix)).stat().st_size)
        except OSError:
            if not suffix:
                return None
    return sum(sizes) // 1024


def _threads(pid: int) -> int | None:
    m = re.search(r"^Threads:\s+(\d+)", _read_text(Path(f"/proc/{pid}/status")), re.M)
    return int(m.group(1)) if m else None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""


@dataclass
class Probe:
    inst: Instance
    tap: AmiTap
    stat: Path | None = None
    t0: float = 0.0

    async def sample(self, phase: str) -> Sample:
        s = self.inst.settings
        ast = proc_tree(stack.pid_alive(stack.paths(s).asterisk_pid))
        cti = proc_tree(stack.pid_alive(stack.paths(s).cti_pid))
        fds_cti, targets = _fds(cti)
        smaps = parse_smaps(_read_text(Path(f"/proc/{cti[0]}/smaps"))) if cti else {}
        ast_smaps = parse_smaps(_read_text(Path(f"/proc/{ast[0]}/smaps"))) if ast else {}
        fds_ast, _ = _fds(ast)
        db = str(self.inst.workdir / "bench.db")
        sipp = parse_sipp_stat(_read_text(self.stat)) if self.stat else \
            {"completed": 0, "failed": 0, "live": 0}
        try:
            channels: int | None = len(await self.tap.channels())
        except AmiError as exc:
            log.warning("CoreShowChannels: %s", exc)
            channels = None
        self.tap.events.clear()  # the soak needs no event history; keep the bench's memory flat
        return {
            "t_s": round(time.time() - self.t0, 1), "phase": phase,
            "calls_completed": sipp["completed"], "calls_failed": sipp["failed"],
            "live_calls": sipp["live"],
            "rss_cti_kib": rss_kib(cti) if cti else None,
            "rss_asterisk_kib": rss_kib(ast) if ast else None,
            "fds_cti": fds_cti, "fds_asterisk": fds_ast, "channels": channels,
            "db_handles": count_handles(targets, db) if cti else None,
            "cti_brk_heap_kib": smaps.get("brk_heap_kib"), "cti_anon_kib": smaps.get("anon_kib"),
            "asterisk_brk_heap_kib": ast_smaps.get("brk_heap_kib"),
            "asterisk_anon_kib": ast_smaps.get("anon_kib"),
            "asterisk_threads": _threads(ast[0]) if ast else None,
            "asterisk_astdb_kib": _kib_of(self.inst.workdir / "asterisk" / "astdb",
                                          "astdb.sqlite3"),
            **parse_status(stack.read_json(s.state_dir / "cti.status.json")),
        }


async def _trim_asterisk(settings: Any, last: Sample) -> dict[str, Any]:
    """Asterisk's `malloc trim`, as the watchdog runs it; what it gave back, for the results."""
    at = {"t_s": last.get("t_s"), "calls_completed": last.get("calls_completed")}
    try:
        t = await asyncio.to_thread(stack.trim_asterisk, settings)
    except stack.StackError as exc:
        return {**at, "error": str(exc)}
    if t is None:
        return {**at, "error": "asterisk not running"}
    return {**at, "freed_kib": t.freed_kib, "ms": round(t.ms, 1),
            "rss_before_kib": t.rss_before_kib, "rss_after_kib": t.rss_after_kib}


async def _drive(inst: Instance, opts: Options, say: Callable[[str], None]) -> dict[str, Any]:
    s = inst.settings
    tap = AmiTap(s.ami.host, s.ami.port, *tap_login(s.ami, Path(s.asterisk_etc)))
    pcap = inst.workdir / "caller-silence.pcap"
    call_max_s = IVR_ALLOWANCE_S + opts.talk_s + 15
    write_silence_pcap(pcap, int(call_max_s + 45))
    await start_agent_phones(inst, opts.talk_s)
    n = max(1, round(opts.rate * opts.minutes * 60))
    service = s.pbx.service_number
    view = LiveCallers(service)
    samples: list[Sample] = []
    probe = Probe(inst, tap)
    trim_due = trim.Every(s.memory.trim_every_s)  # the watchdog's trim of Asterisk
    trims: list[dict[str, Any]] = []
    async with asyncio.TaskGroup() as tg:
        ami_task = tg.create_task(tap.run(), name="soak-ami-tap")
        try:
            await tap.wait_ready(15)
            say("starting the CTI")
            await asyncio.to_thread(stack.start_cti, s, env=inst.env)
            if not opts.record:  # hotline-connect's Dial without the recording Gosub
                await asyncio.to_thread(stack.asterisk_cli, s,
                                        "dialplan set global BENCH_NOREC 1")
            async with agents_desk(inst, say):
                tap.on_event(view.feed)
                probe.t0 = time.time()
                idle_before = await probe.sample("idle")
                samples.append(idle_before)
                sdir = inst.workdir / "soak"
                sdir.mkdir()
                scen = sdir / "caller.xml"
                scen.write_text(caller_scenario("cti", "recorded", opts.talk_s, pcap),
                                encoding="ascii")
                probe.stat = sdir / "caller.stat.csv"
                say(f"soak: {opts.rate:g} calls/s for {opts.minutes:g} min = {n} calls, "
                    f"sampled every {opts.sample_s:g} s")
                load_t0 = time.time()
                arrivals_s = n / opts.rate
                proc = start_step_callers(sdir, scen, service, opts.rate, n, call_max_s,
                                          probe.stat, total_s=arrivals_s + call_max_s * 3)
                inst.procs.append(proc)
                arrivals_end = load_t0 + arrivals_s
                deadline = arrivals_end + call_max_s * 3 + 30
                next_say = load_t0 + 60
                registrations = 0
                while proc.poll() is None and time.time() < deadline:  # bounded by deadline
                    await asyncio.sleep(max(0.0, probe.t0 + len(samples) * opts.sample_s
                                            - time.time()))
                    phase = "load" if time.time() <= arrivals_end else "drain"
                    samples.append(await probe.sample(phase))
                    if trim_due.due(time.monotonic()):
                        trims.append(await _trim_asterisk(s, samples[-1]))
                    # a soak past the seats' registration (an hour) would lose every seat:
                    # refresh it well before (the phones keep running; the contact is theirs)
                    if registration_due(time.monotonic() - inst.registered_at,
                                        opts.sample_s * 3):
                        await asyncio.to_thread(register_all_seats, inst)
                        registrations += 1
                    if time.time() >= next_say:
                        last = samples[-1]
                        say(f"  {(time.time() - load_t0) / 60:4.1f} min: "
                            f"{last['calls_completed']} completed, {last['calls_failed']} "
                            f"failed, {last['live_calls']} in progress, CTI RSS "
                            f"{last['rss_cti_kib']} KiB, Asterisk RSS "
                            f"{last['rss_asterisk_kib']} KiB, {last['channels']} channels")
                        next_say += 60
                timed_out = proc.poll() is None
                stop(proc, 10)
                inst.procs.remove(proc)
                # the callers are gone: Asterisk must clear every channel by itself
                drain_t0 = time.time()
                left = len(await tap.channels())
                while left and time.time() < drain_t0 + DRAIN_S:  # bounded
                    await asyncio.sleep(1)
                    left = len(await tap.channels())
                drained_in = round(time.time() - drain_t0, 1)
                await asyncio.sleep(max(3.0, s.acd.wrap_up_s + 2))  # wrap-ups end, jobs flush
                idle_after = await probe.sample("idle")
                samples.append(idle_after)
                forced_left = await wait_no_channels(tap, 30) if left else 0
                recorded = recorded_calls(inst.recordings)
                tap.off_event(view.feed)
                final = parse_sipp_stat(_read_text(probe.stat))
        finally:
            ami_task.cancel()
    judged = {m.key: judge_metric(m, samples) for m in METRICS}
    drained = judge_drained(idle_after, left)
    drained.update({"seconds_to_no_channels": drained_in if not left else None,
                    "left_after_forced_hangup": forced_left})
    calls = {
        "offered": n, "sipp_completed": final["completed"], "sipp_failed": final["failed"],
        "asterisk_callers_seen": len(view.seen), "seat_answered": len(view.answered),
        "fell_back": len(view.fell_back), "recorded": len(recorded & view.seen),
        "reached_agent_and_recorded": view.goal_reached("recorded", recorded),
        "timed_out": timed_out, "seat_registrations_renewed": registrations,
    }
    return {"verdict": overall(judged, drained), "calls": calls, "metrics": judged,
            "drained": drained,
            "trims": {"every_s": s.memory.trim_every_s, "asterisk": trims},
            "idle": {"before": idle_before, "after": idle_after},
            "samples": samples}


def run(opts: Options, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole soak; SIGTERM stops it like Ctrl-C, every process stopped on the way out."""
    say(f"soak bench: {opts.minutes:g} min at {opts.rate:g} calls/s, {opts.agents} agents")
    extra = ({} if opts.trim_every_s is None
             else {"memory": {"trim_every_s": opts.trim_every_s}})
    doc, common = run_on_instance(
        CapacityOptions(agents=opts.agents, keep_workdir=opts.keep_workdir,
                        settings_extra=extra),
        lambda inst: _drive(inst, opts, say), say)
    doc["run"] = {
        "started_at": common["started_at"], "duration_s": common["duration_s"],
        "options": asdict(opts),
        "path": "SIPp caller -> IVR (FastAGI, keys 1 then 0) -> hotline-wait -> our ACD "
                "-> seat rings, SIPp phone answers, talks, hangs up; agent leg "
                + ("recorded" if opts.record else "NOT recorded (--no-record)"),
        "database": "sqlite (the capacity instance's)",
        "host": common["host"],
    }
    return doc


def write_outputs(doc: Mapping[str, Any], prefix: Path) -> dict[str, str]:
    """<prefix>.csv (the samples), <prefix>.json (everything else), <prefix>.png (the plot)."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = {k: prefix.with_name(prefix.name + "." + k) for k in ("csv", "json", "png")}
    samples = doc["samples"]
    paths["csv"].write_text(samples_csv(samples), encoding="utf-8")
    summary = {k: v for k, v in doc.items() if k != "samples"}
    summary["metrics"] = {k: {kk: vv for kk, vv in m.items() if kk != "fit_per_call"}
                          for k, m in doc["metrics"].items()}
    summary["samples_csv"] = paths["csv"].name
    summary["thresholds"] = {
        "rule": "growth per 10k calls completed, least squares over the second half of the "
                "load; pass <= threshold, fail when the 95 % interval's lower end is above it, "
                "else inconclusive; drained: every figure 0",
        **{m.key: f"{m.threshold_per_10k:g} {m.unit} per 10k calls" for m in METRICS}}
    paths["json"].write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n",
                             encoding="utf-8")
    o = doc.get("run", {}).get("options", {})
    plot(samples, doc["metrics"], paths["png"],
         f"hotline bench soak: {o.get('minutes', '?')} min at {o.get('rate', '?')} calls/s, "
         f"{doc['calls']['sipp_completed']} calls completed; verdict {doc['verdict']}")
    return {k: str(v) for k, v in paths.items()}
