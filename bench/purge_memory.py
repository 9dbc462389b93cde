"""What the daily retention purge costs in memory, against how it used to read the index.

The fifteenth soak (RELIABILITY.md) saw the CTI's RSS step up 9.6 MB at the daily purge (03:00
in the center's time zone) with some 10,000 recordings in the index: the purge read every live
recording as an ORM object at once, so its peak grew with the index, once a day, for ever (a
center keeps six months of recordings and more). It now reads only the recordings older than
the shortest retention, 500 at a time (cti/db/recordings.purge).

This bench seeds `--recordings` rows into a fresh SQLite database (one recording each,
spread from `--days` days ago to a day ago) and runs, each in a fresh process so that peak RSS
(ru_maxrss) is the purge's own:
- **baseline**: the old read (every live recording, as ORM objects, and their work orders),
  kept here as it was;
- **purge**: `cti.db.recordings.purge`, dry run (nothing changes between the two).

Both under the shipped policy ([recorder.retention], 180 days by default), so that in the
first case nothing has run out (the usual day: the index is full of recordings kept), and
with `--expired`, a policy under which every recording has run out (the worst day: both read
everything, and the new one a batch at a time).

    python -m bench.purge_memory --recordings 50000 [--expired] [--out f.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cti.db.models import WorkOrder
from cti.db.models_recordings import Recording
from recorder.retention import RetentionPolicy

SHIPPED = RetentionPolicy(180, {"complaint": 730, "consultation": 90})
EVERYTHING = RetentionPolicy(1, {})


def seed(url: str, n: int, days: int, now: datetime) -> None:
    from hotline.wiring import database_at

    with database_at(url) as sessions, sessions.begin() as s:
        step = timedelta(days=days - 1) / max(1, n)  # the newest a day old
        rows = []
        for i in range(n):
            at = now - timedelta(days=days) + step * i
            rows.append({"call_id": f"pbx1-{i}.1", "leg_id": f"pbx1-{i}.2",
                         "rel_path": f"{at:%Y%m%d}/pbx1-{i}.1_pbx1-{i}.2_seat01.wav",
                         "kind": "agent", "seat": "seat01", "agent_id": "A001",
                         "queue": "general", "caller_number": "13900000001", "started_at": at,
                         "duration_s": 120.0, "size_bytes": 1_920_044, "sha256": "ab" * 32,
                         "indexed_at": at, "indexed_by": "event"})
            if len(rows) == 5000:
                s.execute(insert(Recording), rows)
                rows = []
        if rows:
            s.execute(insert(Recording), rows)


def baseline_read(s: Session) -> int:
    """The purge's read before the fix: every live recording at once, and their orders."""
    live = s.scalars(select(Recording).where(Recording.deleted_at.is_(None))
                     .order_by(Recording.started_at)).all()
    cats: dict[str, set[str]] = {}
    ids = sorted({r.call_id for r in live})
    for i in range(0, len(ids), 500):
        for call_id, kind in s.execute(select(WorkOrder.call_id, WorkOrder.type)
                                       .where(WorkOrder.call_id.in_(ids[i:i + 500]))):
            if call_id is not None:
                cats.setdefault(call_id, set()).add(kind)
    return len(live)


def measure(url: str, which: str, expired: bool, now: datetime) -> dict[str, Any]:
    """In this process: RSS before, the read, peak RSS (KiB) and seconds."""
    from cti.db.recordings import purge
    from hotline.wiring import database_at

    policy = EVERYTHING if expired else SHIPPED
    with database_at(url, migrate=False) as sessions:
        with sessions() as s:  # the engine and the ORM warmed up, as in the running CTI
            s.scalar(select(Recording.id).limit(1))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        with sessions.begin() as s:
            if which == "baseline":
                read = baseline_read(s)
                found = None
            else:
                found = len(purge(s, policy, now, "bench", dry_run=True))
                read = None
        secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"which": which, "peak_rss_kib": peak, "rss_before_kib": before,
            "added_kib": peak - before, "seconds": round(secs, 3), "rows_read": read,
            "would_delete": found}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recordings", type=int, default=50_000)
    ap.add_argument("--days", type=int, default=170)
    ap.add_argument("--expired", action="store_true",
                    help="a policy under which every recording has run out")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", nargs=3, metavar=("URL", "WHICH", "NOW"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        url, which, now = a.child
        print(json.dumps(measure(url, which, a.expired, datetime.fromisoformat(now))))
        return 0
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="purge-bench-") as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        seed(url, a.recordings, a.days, now)
        runs = []
        for which in ("baseline", "purge", "baseline", "purge"):  # interleaved, twice
            cmd = [sys.executable, "-m", "bench.purge_memory", "--child", url, which,
                   now.isoformat()] + (["--expired"] if a.expired else [])
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = {w: min((r for r in runs if r["which"] == w), key=lambda r: r["added_kib"])
            for w in ("baseline", "purge")}
    doc = {"recordings": a.recordings, "days": a.days, "expired": a.expired,
           "policy": "every recording run out (1 day)" if a.expired
           else "shipped (180 days; 730 complaint, 90 consultation)",
           "runs": runs,
           "added_kib": {w: r["added_kib"] for w, r in best.items()},
           # none when the purge added nothing to the peak (it read no more than the warm-up)
           "ratio_baseline_to_purge": (round(best["baseline"]["added_kib"]
                                             / best["purge"]["added_kib"], 1)
                                       if best["purge"]["added_kib"] > 0 else None)}
    text = json.dumps(doc, indent=1)
    if a.out:
        a.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
