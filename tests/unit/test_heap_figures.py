"""hotline.diagnostics.heap_figures: the C heap and SQLite's share, for the CTI's status."""

from __future__ import annotations

import sqlite3

from hotline.diagnostics import heap_figures


def test_the_heap_figures_hold_together() -> None:
    got = heap_figures()
    assert set(got) == {"heap_in_use_kib", "heap_free_kib", "heap_mapped_kib", "sqlite_kib"}
    assert got["heap_in_use_kib"] > 0
    assert got["heap_in_use_kib"] + got["heap_free_kib"] <= got["heap_mapped_kib"] + 1


def test_sqlite_share_grows_with_a_page_cache_and_falls_when_it_closes() -> None:
    before = heap_figures()["sqlite_kib"]
    db = sqlite3.connect(":memory:")
    db.execute("create table t (x text)")
    db.executemany("insert into t values (?)", [("x" * 100,) for _ in range(20_000)])
    during = heap_figures()
    assert during["sqlite_kib"] >= before + 1024  # 2 MB of rows: SQLite holds them
    assert during["heap_in_use_kib"] >= during["sqlite_kib"]
    db.close()
    assert heap_figures()["sqlite_kib"] <= before + 64
