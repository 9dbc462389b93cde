"""bench/malloc_info.py, the soak's heap diagnostic: what it reads of malloc_info's XML, of
CPython's pymalloc statistics and of gdb's printfs."""

from __future__ import annotations

from pathlib import Path

from bench.malloc_info import parse_malloc_info, parse_pymalloc, tagged

# glibc's malloc_info(0, f) of a process with two arenas (trimmed of its <sizes> lists)
MALLOC_INFO = """<malloc version="1">
<heap nr="0">
<sizes>
  <size from="33" to="33" total="99" count="3"/>
</sizes>
<total type="fast" count="2" size="2048"/>
<total type="rest" count="77" size="56780"/>
<system type="current" size="1634304"/>
<system type="max" size="1634304"/>
<aspace type="total" size="1634304"/>
</heap>
<heap nr="1">
<sizes>
</sizes>
<total type="fast" count="0" size="0"/>
<total type="rest" count="3" size="1048576"/>
<system type="current" size="4194304"/>
<system type="max" size="8388608"/>
</heap>
<total type="fast" count="2" size="2048"/>
<total type="rest" count="80" size="1105356"/>
<total type="mmap" count="3" size="610304"/>
<system type="current" size="5828608"/>
</malloc>
"""


def test_malloc_info_sums_the_arenas_and_leaves_out_the_totals() -> None:
    got = parse_malloc_info(MALLOC_INFO)
    assert got == {"arenas": 2,
                   "system_kib": (1634304 + 4194304) >> 10,
                   "free_kib": (2048 + 56780 + 1048576) >> 10,
                   "in_use_kib": (1634304 + 4194304 - 2048 - 56780 - 1048576) >> 10,
                   "mmapped_kib": 610304 >> 10}


def test_pymalloc_statistics() -> None:
    text = """Small block threshold = 512, in 32 size classes.

# arenas allocated total           =                   68
# arenas reclaimed                 =                    0
# arenas highwater mark            =                   70
# arenas allocated current         =                   68
68 arenas * 1048576 bytes/arena    =           71,303,168

# bytes in allocated blocks        =           63,885,120
"""
    assert parse_pymalloc(text) == {"py_arenas": 68, "py_arenas_highwater": 70,
                                    "py_allocated_bytes": 63885120}
    assert parse_pymalloc("") == {}


def test_tagged_printf_lines() -> None:
    out = "[New LWP 12]\nMI 0\nCLOSED 0\nSQLITE 3728752\nSQLITE_HIGH 4353040\n"
    assert tagged(out, "SQLITE") == 3728752
    assert tagged(out, "SQLITE_HIGH") == 4353040
    assert tagged(out, "MI") == 0
    assert tagged("No symbol \"sqlite3_memory_used\" in current context.\n", "SQLITE") is None


def test_plot_draws_a_panel_per_process(tmp_path: Path) -> None:
    from bench.malloc_info import plot

    readings = [{"at": 1000.0 + 60 * i, "pid": pid, "rss_kib": 100_000 + 500 * i,
                 "system_kib": 108_000, "in_use_kib": 94_000 + 100 * i,
                 "sqlite_used_kib": 200 + 100 * i}
                for i in range(4) for pid in (11, 22)]
    out = tmp_path / "heap.png"
    plot(readings, out, {11: "Asterisk", 22: "CTI"}, [(1000.0, 0.0), (1200.0, 700.0)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000
