"""`python -m bench.reports`: the workload report over 90 days of a 50-seat center (issue 15 §4).

"A report over 90 days of a 50-seat center's calls (generate about 400,000 calls to test)
answers in under a second." This bench generates that history in a fresh database: 50 agents
working 08:00-20:00 (local) every day, each call with its agent state changes (reserved,
on_call, wrap_up, ready: about 1.6 million agent_state_log rows), abandoned and deflected calls
besides, over four skills. It then counts it all into the report tables with
`cti.db.reports.rebuild`, a day per transaction, as `hotline reports rebuild` does, and times
that once. Then it times the reports a supervisor asks for, each run `--repeat` times:

- the 90 days per day, center-wide, per skill and per agent, then per week and per month;
- 31 days in 15-minute intervals, center-wide.

The report is timed as the endpoint runs it (`workload_report_in` and `table_rows`: a unit of
work, the SQL roll-up and the derived figures), without HTTP. Results are printed and written as
JSON; bench/BENCHMARKS.md records them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, func, insert, make_url, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from cti.db import reports
from cti.db.models import Agent, AgentStateLog, Call
from cti.db.models_reports import ReportInterval
from hotline.wiring import database_at

TZ = ZoneInfo("Asia/Shanghai")
SKILLS = ("general", "repair", "billing", "english")
PG_DEFAULT = "postgresql+psycopg://hotline:hotline@127.0.0.1:5432/postgres"


def generate(sessions: sessionmaker[Session], *, first: date, days: int, agents: int,
             calls_per_day: int, seed: int = 95598) -> tuple[int, int]:
    """The history: returns (calls, state-log rows) written."""
    rnd = random.Random(seed)
    ids = [f"A{i:03d}" for i in range(1, agents + 1)]
    with sessions.begin() as s:
        s.execute(insert(Agent), [{"agent_id": a, "name": a, "role": "agent",
                                   "password_hash": "x", "skills": {}, "active": True,
                                   "created_at": datetime.now(UTC)} for a in ids])
    # answered calls share the agents' 12 hours; 8 % abandon, 3 % deflected on top
    answered_per_agent = int(calls_per_day * 0.89 / agents)
    cycle = 12 * 3600 / answered_per_agent
    n_calls = n_log = 0
    for d in range(days):
        day = first + timedelta(days=d)
        opening = datetime(day.year, day.month, day.day, 8, tzinfo=TZ).astimezone(UTC)
        calls: list[dict[str, Any]] = []
        log: list[dict[str, Any]] = []
        for agent in ids:
            t = opening + timedelta(seconds=rnd.uniform(0, 300))
            log.append({"agent_id": agent, "seat": agent, "state": "ready", "reason": None,
                        "at": t, "call_id": None, "actor": "acd"})
            for _ in range(answered_per_agent):
                talk = max(20.0, rnd.gauss(cycle * 0.7, cycle * 0.2))
                acw = rnd.uniform(5, 30)
                gap = max(1.0, cycle - talk - acw - 3)
                t += timedelta(seconds=rnd.uniform(0, gap))
                cid = f"b-{uuid.UUID(int=rnd.getrandbits(128)).hex[:20]}"
                wait = timedelta(seconds=rnd.expovariate(1 / 15))
                ring, tk = timedelta(seconds=3), timedelta(seconds=talk)
                calls.append({"call_id": cid, "uniqueid": cid, "caller_number": "13800000000",
                              "dnis": "95598", "started_at": t - wait - timedelta(seconds=25),
                              "queued_at": t - wait, "answered_at": t + ring,
                              "ended_at": t + ring + tk, "outcome": "transfer",
                              "skill": rnd.choice(SKILLS), "agent_id": agent, "seat": agent,
                              "ivr_path": []})
                for st, at in (("reserved", t), ("on_call", t + ring),
                               ("wrap_up", t + ring + tk),
                               ("ready", t + ring + tk + timedelta(seconds=acw))):
                    log.append({"agent_id": agent, "seat": agent, "state": st, "reason": None,
                                "at": at, "call_id": None if st == "ready" else cid,
                                "actor": "acd"})
                t += ring + tk + timedelta(seconds=acw)
            log.append({"agent_id": agent, "seat": agent, "state": "logged_out",
                        "reason": None, "at": t + timedelta(seconds=60), "call_id": None,
                        "actor": agent})
        for _ in range(int(calls_per_day * 0.11)):
            q = opening + timedelta(seconds=rnd.uniform(0, 12 * 3600))
            cid = f"b-{uuid.UUID(int=rnd.getrandbits(128)).hex[:20]}"
            deflected = rnd.random() < 0.27
            calls.append({"call_id": cid, "uniqueid": cid, "caller_number": "13800000000",
                          "dnis": "95598", "started_at": q,
                          "queued_at": None if deflected else q,
                          "answered_at": None,
                          "ended_at": q + timedelta(seconds=rnd.uniform(2, 180)),
                          "outcome": "deflected" if deflected else "abandoned",
                          "skill": None if deflected else rnd.choice(SKILLS),
                          "agent_id": None, "seat": None, "ivr_path": []})
        with sessions.begin() as s:
            s.execute(insert(Call), calls)
            s.execute(insert(AgentStateLog), log)
        n_calls += len(calls)
        n_log += len(log)
    return n_calls, n_log


def timed(fn: Any, repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_ms": round(statistics.median(times) * 1000, 1),
            "max_ms": round(max(times) * 1000, 1), "runs": repeat}


def run(url: str, *, days: int, agents: int, calls_per_day: int, repeat: int
        ) -> dict[str, Any]:
    last = date(2026, 12, 5)
    first = last - timedelta(days=days - 1)
    out: dict[str, Any] = {"url": make_url(url).render_as_string(hide_password=True),
                           "days": days, "agents": agents}
    with database_at(url) as sessions:
        t0 = time.perf_counter()
        n_calls, n_log = generate(sessions, first=first, days=days, agents=agents,
                                  calls_per_day=calls_per_day)
        out["generate_s"] = round(time.perf_counter() - t0, 1)
        out["calls"], out["state_log_rows"] = n_calls, n_log
        print(f"generated {n_calls} calls, {n_log} state changes in {out['generate_s']} s",
              flush=True)
        t0 = time.perf_counter()
        start = datetime(first.year, first.month, first.day, tzinfo=TZ)
        end = datetime(last.year, last.month, last.day, tzinfo=TZ) + timedelta(days=1)
        reports.rebuild(sessions, start, end, tz=TZ)
        out["aggregate_s"] = round(time.perf_counter() - t0, 1)
        with sessions() as s:
            out["report_rows"] = s.scalar(select(func.count()).select_from(ReportInterval))
        print(f"counted into {out['report_rows']} report rows in {out['aggregate_s']} s",
              flush=True)
        cases: dict[str, dict[str, float]] = {}
        for period, by, span in [("day", "center", days), ("day", "skill", days),
                                 ("day", "agent", days), ("week", "agent", days),
                                 ("month", "center", days), ("15", "center", 31)]:
            a = last - timedelta(days=span - 1)

            def one(a: date = a, period: str = period, by: str = by) -> None:
                reports.table_rows(reports.workload_report_in(
                    sessions, a, last, tz=TZ, period=period, by=by))
            name = f"{span} days, interval={period}, by={by}"
            cases[name] = timed(one, repeat)
            print(f"{name}: {cases[name]}", flush=True)
        out["reports"] = cases
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--pg-url", default=os.environ.get("HOTLINE_TEST_PG_URL", PG_DEFAULT))
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--calls-per-day", type=int, default=4500)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("bench/results/reports.json"))
    args = p.parse_args()
    machine = {"platform": platform.platform(), "python": platform.python_version(),
               "cpus": os.cpu_count(), "at": datetime.now(UTC).isoformat(timespec="seconds")}
    if args.backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            result = run(f"sqlite:///{tmp}/reports.db", days=args.days, agents=args.agents,
                         calls_per_day=args.calls_per_day, repeat=args.repeat)
    else:
        server = make_url(args.pg_url)
        name = f"hotline_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            result = run(server.set(database=name).render_as_string(hide_password=False),
                         days=args.days, agents=args.agents,
                         calls_per_day=args.calls_per_day, repeat=args.repeat)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    doc = {"machine": machine, "backend": args.backend, **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
    print(json.dumps(doc, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
