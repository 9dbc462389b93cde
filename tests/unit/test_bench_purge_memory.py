"""bench/purge_memory.py: the old whole-index read and the purge, on a seeded SQLite index."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bench.purge_memory import measure, seed


def test_the_baseline_reads_every_recording_and_the_purge_only_what_ran_out(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bench.db"
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    seed(url, 1200, 170, now)  # 170 days: under the shipped 180, over 90
    base = measure(url, "baseline", False, now)
    assert base["rows_read"] == 1200 and base["would_delete"] is None
    kept = measure(url, "purge", False, now)
    assert kept["would_delete"] == 0  # nothing has run out under the shipped policy
    gone = measure(url, "purge", True, now)
    assert gone["would_delete"] == 1200  # everything has, under a 1-day policy
    for r in (base, kept, gone):
        assert r["peak_rss_kib"] >= r["rss_before_kib"] > 0 and r["seconds"] >= 0
