"""`python -m bench.outage_lookup`: what outage-first adds before the menu (issue 12).

"A caller with no outage hears the normal menu with no added delay; measure it." After the
language choice the IVR asks the database about the caller's number (the `caller_outages`
lookup of ivr/flows/main.yaml) before it plays the menu. This bench times, in one run and on
one database, the two ways from the caller's language key to the menu's Read:

- **plain**: the engine with outage-first taken out of the flow (the language goes straight to
  the menu): one `Engine.step`;
- **outage-first**: `Engine.step`, the lookup as the daemon runs it (`AgiIvrSession.query`,
  the daemon's `DbIvrServices` with its `DurableWrites` reader and the shared
  `OutageService`: a revision read, the caller's accounts, dict gets in the cached index,
  `outages.announce`), then `Engine.step` with its answer.

The two run interleaved, per caller, so both see the same machine; the added time is their
difference per caller. The database is a temp SQLite file with the demo city (5,000 accounts)
and notices published through `OutageService.publish` until 500 count (台区, feeders and whole
areas in half the city, every cause). Callers are numbers of accounts in no notice (the
figure asked for), unknown numbers, and numbers of accounts inside notices (who hear the
notice, so a few ms matter less). Also timed: the first lookup after a change (the index
rebuilt from the 500 notices), once per change.

No Asterisk and no AGI socket: the AGI round trips are the same on both paths (outage-first
adds no AGI command when nothing is found), so they are left out. Results are printed and
written as JSON; bench/BENCHMARKS.md records them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.ivr_services import DbIvrServices
from callcenter.outage_service import OutageService, Who
from config.settings import REPO_ROOT
from cti.db import outages as store
from cti.db.models import Account, AccountPhone, Feeder
from hotline.demo_seed import seed_demo
from hotline.wiring import database_at, ivr_services
from ivr import engine as e
from ivr.agi_session import AgiIvrSession, IvrContext
from ivr.schema import FlowSet, load_flow_dir, parse_flow
from outages.scope import CAUSES, Cause

TZ = ZoneInfo("Asia/Shanghai")
FLOWS = REPO_ROOT / "ivr" / "flows"
WHO = Who("bench", "supervisor")
NOTICES = 500
ACCOUNTS = 5000


class _NoAgi:
    """The AGI channel of AgiIvrSession.query: only its music commands, never sent here (a
    lookup slower than max_silence_s would send them, and fail the bench loudly)."""

    headers: dict[str, str] = {}

    async def command(self, cmd: str, timeout: float) -> dict[str, Any]:
        raise RuntimeError(f"the lookup was slower than the silence budget ({cmd})")


class _NoPrompts:
    def asterisk_path(self, prompt_id: str, lang: str) -> str:
        return prompt_id


def _flows() -> tuple[FlowSet, FlowSet]:
    """The shipped flows, and the same with outage-first taken out (the plain path)."""
    shipped = load_flow_dir(FLOWS)
    text = (FLOWS / "main.yaml").read_text(encoding="utf-8")
    plain_text = text.replace("next: outage_first\n", "next: main_menu\n")
    assert plain_text.count("next: main_menu\n") >= 2, "lang_zh/lang_en no longer go there"
    plain = parse_flow(plain_text, "main-plain.yaml")
    return shipped, FlowSet({**shipped.flows, "main": plain})


def _publish(sessions: sessionmaker[Session], svc: OutageService, now: datetime,
             rng: random.Random) -> int:
    """Notices until NOTICES count at `now`, in half the city's areas; returns how many."""
    with sessions() as s:
        already = len(svc.active(s, now))
        areas = sorted(set(s.scalars(select(Account.area_id))))
        storm = areas[: len(areas) // 2]
        tas = sorted(set(s.execute(select(Account.area_id, Account.transformer_area)
                                   .where(Account.area_id.in_(storm),
                                          Account.transformer_area.is_not(None))).all()))
        feeders = sorted(s.scalars(select(Feeder.id).where(Feeder.area_id.in_(storm))))
    causes = list(Cause)
    todo = NOTICES - already
    for i in range(todo):
        cause = causes[i % len(causes)]
        start = now - timedelta(minutes=rng.randint(5, 600))
        if i < 20:
            scope: dict[str, Any] = {"areas": frozenset({storm[i % len(storm)]})}
        elif i < 80:
            scope = {"feeders": frozenset({feeders[i % len(feeders)]})}
        else:
            scope = {"transformer_areas": frozenset({tas[i % len(tas)]})}
        scheduled = CAUSES[cause].scheduled
        draft = store.NoticeDraft(
            cause, start, expected_restore_at=None if cause is Cause.REPORTED
            else now + timedelta(hours=rng.randint(1, 8)),
            schedule_end_at=now + timedelta(hours=9) if scheduled else None,
            master_order=None, agent_text=f"bench notice {i}", **scope)
        svc.publish(draft, WHO, now)
    with sessions() as s:
        count = len(svc.active(s, now))
    assert count == NOTICES, f"{count} notices count, not {NOTICES}"
    return count


@dataclass
class Callers:
    quiet: list[str]      # numbers of accounts in no notice
    unknown: list[str]    # numbers nobody has
    in_outage: list[str]  # numbers of accounts inside a notice


def _callers(sessions: sessionmaker[Session], svc: OutageService, now: datetime) -> Callers:
    covered: dict[str, bool] = {}  # a number is quiet when none of its accounts is covered
    with sessions() as s:
        rows = s.execute(select(AccountPhone.phone, Account.account_no)
                         .join(Account, Account.id == AccountPhone.account_id)
                         .order_by(AccountPhone.phone)).all()
        for phone, account_no in rows:
            covered[phone] = covered.get(phone, False) or bool(
                svc.for_account(s, account_no, now))
    quiet = [p for p, c in covered.items() if not c]
    inside = [p for p, c in covered.items() if c]
    known = set(covered)
    unknown = [n for n in (str(19900000000 + i) for i in range(2000)) if n not in known]
    return Callers(quiet, unknown, inside)


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _summary(values_s: Sequence[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "p50_ms": round(_pct(ms, 50), 3), "p99_ms": round(_pct(ms, 99), 3),
            "max_ms": round(max(ms), 3), "mean_ms": round(statistics.fmean(ms), 3)}


class Timer:
    def __init__(self, services: DbIvrServices, now: datetime) -> None:
        shipped, plain = _flows()
        self.outage_first = e.Engine(shipped, "main", TZ)
        self.plain = e.Engine(plain, "main", TZ)
        self.now = now
        ctx = IvrContext(engine_factory=lambda: self.outage_first, prompts=_NoPrompts(),
                         services=services, clock=lambda: now, max_silence_s=2.0)
        self.adapter = AgiIvrSession(_NoAgi(), ctx)  # type: ignore[arg-type]

    def _at_language(self, engine: e.Engine, caller: str) -> e.Session:
        s, _ = engine.start(e.Start(caller=caller, call_id="bench", now=self.now))
        s, acts = engine.step(s, e.Played(None))
        assert isinstance(acts[-1], e.Collect), acts
        return s

    def plain_path(self, caller: str) -> float:
        s = self._at_language(self.plain, caller)
        t0 = time.perf_counter()
        s, acts = self.plain.step(s, e.Collected("1"))
        took = time.perf_counter() - t0
        assert isinstance(acts[-1], e.Collect) and acts[-1].prompts[0].id == "ivr.main_menu"
        return took

    async def outage_path(self, caller: str, expect_notice: bool) -> float:
        s = self._at_language(self.outage_first, caller)
        t0 = time.perf_counter()
        s, acts = self.outage_first.step(s, e.Collected("1"))
        query = acts[-1]
        assert isinstance(query, e.Query) and query.kind == "caller_outages", acts
        answer = await self.adapter.query(query)
        s, acts = self.outage_first.step(s, answer)
        took = time.perf_counter() - t0
        assert answer.error is None, answer
        first = acts[-1].prompts[0].id  # type: ignore[union-attr]
        assert first == ("outage.here" if expect_notice else "ivr.main_menu") or (
            expect_notice and first == "outage.account_tail"), (caller, acts[-1])
        return took


async def _pairs(timer: Timer, callers: Sequence[str], n: int, notice: bool,
                 rng: random.Random) -> dict[str, Any]:
    plain, first, added = [], [], []
    for i in range(n):
        caller = rng.choice(callers)
        if i % 2:  # interleaved, alternating which goes first
            a = timer.plain_path(caller)
            b = await timer.outage_path(caller, notice)
        else:
            b = await timer.outage_path(caller, notice)
            a = timer.plain_path(caller)
        plain.append(a)
        first.append(b)
        added.append(b - a)
    return {"plain": _summary(plain), "outage_first": _summary(first),
            "added": _summary(added)}


async def _after_change(timer: Timer, svc: OutageService, caller: str, n: int
                        ) -> dict[str, Any]:
    """The first lookup after a notice changes: the revision moved, the index is rebuilt."""
    took = []
    with svc.sessions() as s:
        oid = svc.active(s, timer.now)[-1].id
        row = store.get_notice(s, oid).notice
    draft = store.NoticeDraft(row.cause, row.start_at, row.scope.areas, row.scope.feeders,
                              row.scope.transformer_areas, row.expected_restore_at,
                              row.schedule_end_at, "bench update")
    for _ in range(n):
        svc.update(oid, draft, WHO, timer.now)
        took.append(await timer.outage_path(caller, False))
    return _summary(took)


def _machine() -> dict[str, Any]:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                  .splitlines() if ln.startswith("model name")), platform.processor())
    mem_kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                  if ln.startswith("MemTotal"))
    return {"cpus": os.cpu_count(), "cpu": model, "mem_gib": round(mem_kb / 2**20, 1),
            "python": platform.python_version(), "load_avg": os.getloadavg()}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


async def run(samples: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-outage-") as tmp, \
            database_at(f"sqlite:///{tmp}/bench.db") as sessions:
        with sessions.begin() as s:
            seed_demo(s, now=now, n_accounts=ACCOUNTS)
        svc = OutageService(sessions)
        active = _publish(sessions, svc, now, rng)
        callers = _callers(sessions, svc, now)
        # the daemon's own: a reader that fails fast, the shared OutageService's index
        services, durable = ivr_services(sessions, f"sqlite:///{tmp}/bench.db",
                                         Path(tmp) / "journal.jsonl", svc)
        timer = Timer(services, now)
        try:
            for _ in range(50):  # warm: the index built, the connections open
                await timer.outage_path(rng.choice(callers.quiet), False)
                timer.plain_path(rng.choice(callers.quiet))
            result = {
                "quiet": await _pairs(timer, callers.quiet, samples, False, rng),
                "unknown": await _pairs(timer, callers.unknown, samples // 2, False, rng),
                "in_outage": await _pairs(timer, callers.in_outage, samples // 2, True, rng),
                "after_change": await _after_change(timer, svc, callers.quiet[0], 50),
            }
        finally:
            durable.close()
    return {"bench": "outage_lookup", "when": now.isoformat(timespec="seconds"),
            "seconds": round(time.time() - started, 1), "commit": _commit(),
            "machine": _machine(), "database": "sqlite (temp file)", "accounts": ACCOUNTS,
            "active_notices": active, "callers": {"quiet": len(callers.quiet),
                                                  "unknown": len(callers.unknown),
                                                  "in_outage": len(callers.in_outage)},
            "samples": samples, "seed": seed, **result}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.outage_lookup", description=__doc__
                                 .split("\n")[0])
    ap.add_argument("--samples", type=int, default=4000,
                    help="caller pairs (plain, outage-first) for callers in no outage")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    if args.samples < 100:
        ap.error("--samples must be at least 100 (a p99 needs them)")
    out = asyncio.run(run(args.samples, args.seed))
    text = json.dumps(out, indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
