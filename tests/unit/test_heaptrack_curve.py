"""bench/heaptrack_curve.py: a massif file's snapshots to one point a second, and the fit."""

from __future__ import annotations

import pytest

from bench.heaptrack_curve import judge, parse_massif, per_second

MASSIF = """desc: heaptrack
cmd: asterisk
time_unit: s
#-----------
snapshot=0
#-----------
time=0.5
mem_heap_B=1048576
mem_heap_extra_B=0
#-----------
snapshot=1
#-----------
time=0.9
mem_heap_B=2097152
#-----------
snapshot=2
#-----------
time=1.2
mem_heap_B=3145728
n2: 3145728 (heap allocation functions) malloc/new/new[], --alloc-fns, etc.
 n0: 3145728 0x1: pj_pool_allocate_find
"""


def test_snapshots_are_read_in_order_and_one_is_kept_a_second() -> None:
    points = parse_massif(MASSIF.splitlines())
    assert points == [(0.5, 1 << 20), (0.9, 2 << 20), (1.2, 3 << 20)]
    assert per_second(points) == [(0, 2 << 20), (1, 3 << 20)]


def test_a_flat_window_has_no_slope_and_a_rising_one_has() -> None:
    flat = [(t, (35 << 20) + (1 << 18) * (t % 3)) for t in range(100, 600)]
    got = judge(flat, 120, 560)
    assert abs(got["slope_mib_per_min"]) < 0.01
    assert got["min_mib"] == 35.0 and got["max_mib"] == 35.5
    rising = [(t, (10 << 20) + t * (1 << 14)) for t in range(0, 600)]  # 1/64 MiB a second
    assert judge(rising, 0, 599)["slope_mib_per_min"] == pytest.approx(60 / 64, rel=1e-3)


def test_a_window_without_points_is_refused() -> None:
    with pytest.raises(ValueError, match="fewer than 3 points"):
        judge([(1, 1), (2, 2)], 0, 10)
