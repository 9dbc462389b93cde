"""The `hotline bench` commands: benchmarks against a private Asterisk, CTI and SIPp load."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from config.settings import REPO_ROOT


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def _run_and_print(bench_run: Callable[[], dict[str, Any]], json_path: Path | None) -> None:
    """Run a bench; its figures as JSON on stdout (and to `json_path`); a BenchError as the
    command's error."""
    from bench.acd import BenchError

    try:
        doc = bench_run()
    except BenchError as exc:
        raise click.ClickException(str(exc)) from None
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    if json_path is not None:
        json_path.write_text(text + "\n", encoding="utf-8")
    click.echo(text)


@click.group()
def bench() -> None:
    """Benchmarks (a private instance on other ports; loopback only)."""


@bench.command("acd")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the figures here as JSON.")
@click.option("--minutes", default=3.0, show_default=True,
              help="Minutes of arrivals per side (each side then drains for up to the patience).")
@click.option("--occupancy", default=0.9, show_default=True,
              help="Target agent occupancy: arrival rate x mean handle time / agents.")
@click.option("--seed", default=95598, show_default=True, help="Seed of arrivals and talk times.")
@click.option("--side", "sides", multiple=True,
              type=click.Choice(["ours", "app_queue", "app_queue_best"]),
              help="Run only this side (repeatable); default all three, in this order: ours, "
                   "app_queue (the shipped failover queue), app_queue_best (no announcements, "
                   "retry 1).")
@click.option("--keep-workdir", is_flag=True, help="Keep the temp dir (logs, AMI events, SIPp).")
def bench_acd(json_path: Path | None, minutes: float, occupancy: float, seed: int,
              sides: tuple[str, ...], keep_workdir: bool) -> None:
    """Our ACD, the shipped app_queue and app_queue at its best, one after the other, on the
    same seeded SIPp load (50 agents)."""
    if not 0 < occupancy < 1:
        raise click.BadParameter("must be between 0 and 1", param_hint="--occupancy")
    if not 0 < minutes <= 30:
        raise click.BadParameter("must be in (0, 30]", param_hint="--minutes")
    # bench/ is a top-level folder of the repo, not part of the installed packages
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from bench.acd import Options, run

    opts = Options(minutes=minutes, occupancy=occupancy, seed=seed,
                   sides=sides or ("ours", "app_queue", "app_queue_best"),
                   keep_workdir=keep_workdir)
    _run_and_print(lambda: run(opts, say=_say), json_path)


@bench.command("events")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the figures here as JSON.")
@click.option("--minutes", default=2.0, show_default=True, help="Minutes of arrivals per variant.")
@click.option("--rate", default=50.0, show_default=True, help="Calls per minute (Poisson).")
@click.option("--agents", default=15, show_default=True,
              help="Agents logged in through the web API, each with its own /ws.")
@click.option("--filter", "filters", multiple=True, type=click.Choice(["shipped", "none"]),
              help="AMI event filtering of the private instance's manager.conf (repeatable): "
                   "shipped = as rendered, none = no disabledevents/eventfilter; default both.")
@click.option("--seed", default=95598, show_default=True)
@click.option("--keep-workdir", is_flag=True, help="Keep the temp dirs (logs, AMI events, SIPp).")
def bench_events(json_path: Path | None, minutes: float, rate: float, agents: int,
                 filters: tuple[str, ...], seed: int, keep_workdir: bool) -> None:
    """Screen-pop latency from the seat's ring to /ws and to MQTT, with and without AMI event
    filtering, and the AMI events per second the CTI gets."""
    if not 0 < minutes <= 30:
        raise click.BadParameter("must be in (0, 30]", param_hint="--minutes")
    if not 0 < rate <= 600:
        raise click.BadParameter("must be in (0, 600]", param_hint="--rate")
    if not 1 <= agents <= 50:
        raise click.BadParameter("must be in [1, 50]", param_hint="--agents")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from bench.events import FILTERS, EventsOptions, run

    opts = EventsOptions(minutes=minutes, calls_per_minute=rate, agents=agents, seed=seed,
                         filters=filters or FILTERS, keep_workdir=keep_workdir)
    _run_and_print(lambda: run(opts, say=_say), json_path)


@bench.command("capacity")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the figures here as JSON.")
@click.option("--quick", is_flag=True,
              help="Two short steps per mode and side, 20 agents, 2 s holds: proves the bench "
                   "end to end in under 3 minutes; its figures are not capacity figures.")
@click.option("--mode", "modes", multiple=True, type=click.Choice(["ivr", "bridged", "recorded"]),
              help="Run only this mode (repeatable); default all three.")
@click.option("--agents", type=int, help="Seats and agents (default 300; --quick 20).")
@click.option("--hold", "hold_s", type=float,
              help="Seconds a call is held: in the IVR, or talking (default 15).")
@click.option("--step-seconds", "step_s", type=float,
              help="Seconds of arrivals per step (default 45).")
@click.option("--keep-workdir", is_flag=True, help="Keep the temp dir (logs, SIPp files).")
def bench_capacity(json_path: Path | None, quick: bool, modes: tuple[str, ...],
                   agents: int | None, hold_s: float | None, step_s: float | None,
                   keep_workdir: bool) -> None:
    """B1: stepped SIPp load in three modes (IVR only; bridged; bridged and recorded), with
    the CTI and with Asterisk alone (a static dialplan): the highest call rate and the most
    calls held with 99.9 % completing, CPU and memory per call, and the agents one machine
    carries (Erlang C, 180 s handle time)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from dataclasses import replace

    from bench.capacity import MODES, QUICK, Options, run

    opts = QUICK if quick else Options()
    changes: dict[str, object] = {"keep_workdir": keep_workdir, "modes": modes or MODES}
    if agents is not None:
        if not 1 <= agents <= 500:
            raise click.BadParameter("must be in [1, 500]", param_hint="--agents")
        changes["agents"] = agents
    if hold_s is not None:
        if not 1 <= hold_s <= 300:
            raise click.BadParameter("must be in [1, 300]", param_hint="--hold")
        changes["hold_s"] = hold_s
    if step_s is not None:
        if not 2 <= step_s <= 600:
            raise click.BadParameter("must be in [2, 600]", param_hint="--step-seconds")
        changes["step_s"] = step_s
    opts = replace(opts, **changes)  # type: ignore[arg-type]
    _run_and_print(lambda: run(opts, say=_say), json_path)


@bench.command("soak")
@click.option("--minutes", default=30.0, show_default=True, help="Minutes of arrivals.")
@click.option("--rate", default=2.0, show_default=True, help="Calls per second offered.")
@click.option("--agents", default=30, show_default=True, help="Agents logged in (seats).")
@click.option("--talk", "talk_s", default=4.0, show_default=True,
              help="Seconds an agent phone talks before it hangs up.")
@click.option("--sample-seconds", "sample_s", default=10.0, show_default=True)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Path prefix of the results: <out>.json, <out>.csv, <out>.png "
                   "(default bench/results/<date>-soak-<minutes>min).")
@click.option("--no-record", is_flag=True,
              help="Agent legs not recorded (the capacity bench's BENCH_NOREC switch): a "
                   "diagnostic, to see how much of a growth recording is.")
@click.option("--keep-workdir", is_flag=True, help="Keep the temp dir (logs, SIPp files).")
@click.option("--trim-every", "trim_every_s", type=float, default=None,
              help="Seconds between the CTI's and Asterisk's malloc trims (default: "
                   "hotline.toml's [memory] trim_every_s; 0: none, to measure without them).")
def bench_soak(minutes: float, rate: float, agents: int, talk_s: float, sample_s: float,
               out: Path | None, no_record: bool, keep_workdir: bool,
               trim_every_s: float | None) -> None:
    """A compressed soak: real SIPp callers through the IVR, the queue and our ACD to agents
    who answer, talk and are recorded, at a steady rate; memory, file descriptors, Asterisk
    channels, DB connections and the outboxes sampled over time and judged for growth over
    the second half. Exit status 1 when a metric fails."""
    if not 1 <= minutes <= 24 * 60:
        raise click.BadParameter("must be in [1, 1440]", param_hint="--minutes")
    if not 0 < rate <= 50:
        raise click.BadParameter("must be in (0, 50]", param_hint="--rate")
    if not 1 <= agents <= 500:
        raise click.BadParameter("must be in [1, 500]", param_hint="--agents")
    if not 1 <= talk_s <= 300:
        raise click.BadParameter("must be in [1, 300]", param_hint="--talk")
    if not 1 <= sample_s <= 300:
        raise click.BadParameter("must be in [1, 300]", param_hint="--sample-seconds")
    if trim_every_s is not None and not (trim_every_s == 0 or 10 <= trim_every_s <= 86400):
        raise click.BadParameter("must be 0 or in [10, 86400]", param_hint="--trim-every")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from datetime import date

    from bench.acd import BenchError
    from bench.soak import Options, run, write_outputs

    prefix = out or (REPO_ROOT / "bench" / "results"
                     / f"{date.today().isoformat()}-soak-{minutes:g}min")
    opts = Options(minutes=minutes, rate=rate, agents=agents, talk_s=talk_s, sample_s=sample_s,
                   record=not no_record, keep_workdir=keep_workdir, trim_every_s=trim_every_s)
    try:
        doc = run(opts, say=lambda msg: click.echo(msg, err=True))
    except BenchError as exc:
        raise click.ClickException(str(exc)) from None
    paths = write_outputs(doc, prefix)
    summary = {"verdict": doc["verdict"], "calls": doc["calls"], "drained": doc["drained"],
               "metrics": {k: {kk: m.get(kk) for kk in ("start", "end", "per_10k_calls",
                                                        "per_10k_calls_ci95", "per_hour",
                                                        "threshold_per_10k_calls", "verdict")}
                           for k, m in doc["metrics"].items()},
               "files": paths}
    click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
    if doc["verdict"] == "fail":
        sys.exit(1)


@bench.command("storm")
@click.option("--minutes", default=3.0, show_default=True,
              help="Minutes of arrivals (a compressed storm scales the minutes, not the rate).")
@click.option("--multiple", default=10.0, show_default=True,
              help="Times the 80/20 load of the agents (180 s handle time, Erlang C).")
@click.option("--agents", default=50, show_default=True,
              help="Our agents; the baseline queue has as many seats of its own.")
@click.option("--feeders", default=6, show_default=True,
              help="Feeders given a storm-repair notice before the run.")
@click.option("--seed", default=95598, show_default=True, help="Seed of the callers.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Path prefix of the results: <out>.json, <out>.csv "
                   "(default bench/results/<date>-storm-<multiple>x-<minutes>min).")
@click.option("--keep-workdir", is_flag=True, help="Keep the temp dir (logs, SIPp files).")
def bench_storm(minutes: float, multiple: float, agents: int, feeders: int, seed: int,
                out: Path | None, keep_workdir: bool) -> None:
    """B5: a storm day. `multiple` x the 80/20 load of `agents` agents, most callers on
    feeders with an outage notice, through the IVR (outage-first), storm mode's queue cap and
    callbacks and our ACD; and at the same time the same callers into app_queue with maxlen.
    Outcome tables of both sides, the service level for callers who needed an agent, the
    agents' worth of work deflection saved, memory and file descriptors. Exit status 1 when
    the pass criteria fail."""
    if not 0.5 <= minutes <= 120:
        raise click.BadParameter("must be in [0.5, 120]", param_hint="--minutes")
    if not 0 < multiple <= 20:
        raise click.BadParameter("must be in (0, 20]", param_hint="--multiple")
    if not 1 <= agents <= 100:
        raise click.BadParameter("must be in [1, 100]", param_hint="--agents")
    if not 1 <= feeders <= 20:
        raise click.BadParameter("must be in [1, 20]", param_hint="--feeders")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from datetime import date

    from bench.acd import BenchError
    from bench.storm import Options, run, write_outputs

    prefix = out or (REPO_ROOT / "bench" / "results"
                     / f"{date.today().isoformat()}-storm-{multiple:g}x-{minutes:g}min")
    opts = Options(minutes=minutes, multiple=multiple, agents=agents, feeders=feeders,
                   seed=seed, keep_workdir=keep_workdir)
    try:
        doc = run(opts, say=lambda msg: click.echo(msg, err=True))
    except BenchError as exc:
        raise click.ClickException(str(exc)) from None
    paths = write_outputs(doc, prefix)
    summary = {"verdict": doc["verdict"], "deflection_saved": doc["deflection_saved"],
               "sides": {k: {"outcomes": v["table"]["outcomes"], "lost": v["table"]["lost"],
                             "adds_up": v["table"]["adds_up"], "sipp": v["sipp"],
                             "service": v["service"]} for k, v in doc["sides"].items()},
               "memory_and_fds": doc["memory_and_fds"]["idle_before_vs_after"],
               "files": paths}
    click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
    if not doc["verdict"]["passed"]:
        sys.exit(1)

@bench.command("ivr")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the figures here as JSON.")
@click.option("--calls", default=300, show_default=True, help="Concurrent callers per side.")
@click.option("--rate", default=20.0, show_default=True, help="Calls started per second.")
@click.option("--keys", default=16, show_default=True,
              help="Keys each caller presses (the language key, then 3, 9, 3, ...).")
@click.option("--side", "sides", multiple=True, type=click.Choice(["dialplan", "fastagi"]),
              help="Run only this side (repeatable); default both, the dialplan first.")
@click.option("--speech-steps", default="1,2,4,6,8,10,12,16,20,24,32,40,48", show_default=True,
              help="Speaking callers at once, step by step, until a step does not hold; "
                   "'' for none.")
@click.option("--keep-workdir", is_flag=True,
              help="Keep the temp dir (SIPp files, the AMI events of each side as JSONL).")
def bench_ivr(json_path: Path | None, calls: int, rate: float, keys: int,
              sides: tuple[str, ...], speech_steps: str, keep_workdir: bool) -> None:
    """B3: key-to-next-prompt latency (p50, p99) at `calls` concurrent SIPp callers, through
    the FastAGI IVR and through a plain-dialplan menu in the same run, from Asterisk's own
    events; then speaking callers (Korean, vosk over AudioSocket), step by step, for the
    concurrent recognisers the machine holds."""
    if not 1 <= calls <= 500:
        raise click.BadParameter("must be in [1, 500]", param_hint="--calls")
    if not 0 < rate <= 100:
        raise click.BadParameter("must be in (0, 100]", param_hint="--rate")
    if not 2 <= keys <= 100:
        raise click.BadParameter("must be in [2, 100]", param_hint="--keys")
    try:
        steps = tuple(int(x) for x in speech_steps.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter("a list of whole numbers", param_hint="--speech-steps") from None
    if any(not 1 <= n <= 100 for n in steps):
        raise click.BadParameter("each in [1, 100]", param_hint="--speech-steps")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from bench.ivr import SIDES, Options, run

    opts = Options(calls=calls, rate=rate, keys=keys, sides=sides or SIDES, speech_steps=steps,
                   keep_workdir=keep_workdir)
    _run_and_print(lambda: run(opts, say=_say), json_path)


if __name__ == "__main__":  # `python -m hotline.cli_bench acd ...`
    bench()
