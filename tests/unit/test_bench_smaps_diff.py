"""bench/smaps_diff.py: which mappings of a process grew, each named by kind."""

from __future__ import annotations

import os

from bench.smaps_diff import diff, parse, snapshot, totals


def _vma(start: int, end: int, perms: str, name: str, rss: int, anon: int | None = None) -> str:
    anon = rss if anon is None else anon
    return (f"{start:x}-{end:x} {perms} 00000000 00:00 0          {name}\n"
            f"Size:           {(end - start) >> 10:8d} kB\n"
            f"Rss:            {rss:8d} kB\n"
            f"Anonymous:      {anon:8d} kB\n")


ARENA = 0x7f0000000000  # 64 MiB aligned, as glibc places a thread arena's heap


def _smaps(arena_rss: int, stack_rss: int) -> str:
    return "".join([
        _vma(0x555500000000, 0x555500100000, "r-xp", "/usr/sbin/asterisk", 900, 0),
        _vma(0x555510000000, 0x555512000000, "rw-p", "[heap]", 30000),
        _vma(ARENA, ARENA + (60 << 20), "rw-p", "", arena_rss),
        _vma(ARENA + (60 << 20), ARENA + (64 << 20), "---p", "", 0),
        _vma(0x7f1000000000, 0x7f1000001000, "---p", "", 0),          # a thread's guard page
        _vma(0x7f1000001000, 0x7f1000080000, "rw-p", "", stack_rss),  # and its stack
        _vma(0x7f2000100000, 0x7f2000500000, "rw-p", "", 3000),       # CPython's arenas, say
        _vma(0x7ffc00000000, 0x7ffc00021000, "rw-p", "[stack]", 132),
    ])


def test_mappings_are_named_by_kind() -> None:
    maps = parse(_smaps(20000, 40))
    assert [m["kind"] for m in maps] == ["file", "brk", "arena", "anon", "anon", "stack", "anon",
                                         "stack"]
    assert maps[2]["size"] == 60 << 10 and maps[2]["rss"] == 20000
    got = totals(maps)
    assert got["arena"] == {"n": 1, "rss": 20000, "anon": 20000}
    assert got["stack"]["rss"] == 40 + 132
    assert got["file"] == {"n": 1, "rss": 900, "anon": 0}


def test_diff_names_the_mapping_that_grew() -> None:
    a, b = parse(_smaps(20000, 40)), parse(_smaps(21500, 48))
    d = diff(a, b)
    assert d["rss_delta_kib"] == 1508
    assert d["by_kind"]["arena"]["rss_delta_kib"] == 1500
    assert d["by_kind"]["brk"]["rss_delta_kib"] == 0
    top = d["largest"][0]
    assert (top["kind"], top["start"], top["delta_kib"], top["new"]) == ("arena", f"{ARENA:x}",
                                                                        1500, False)


def test_a_live_snapshot_of_this_process() -> None:
    snap = snapshot(os.getpid())
    kinds = {m["kind"] for m in snap["maps"]}
    assert {"file", "stack"} <= kinds
    assert sum(int(m["rss"]) for m in snap["maps"]) > 1000
