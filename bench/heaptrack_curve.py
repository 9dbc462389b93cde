"""The heap in use over time, from a heaptrack recording: what a process's mallocs hold, apart
from what its allocator keeps resident (RSS). A soak's RSS that grows while this stays flat is
the allocator's retention, not the program's.

heaptrack (Debian's) records every malloc and free; `heaptrack_print -M` writes them as a
massif file, whose snapshots carry `time=` (seconds since heaptrack started) and
`mem_heap_B=`. This reads that file, keeps one point a second, fits a line over a window
given in seconds (the steady load: after the warm-up, before the drain) and plots the curve.

    heaptrack_print -f ht.gz -p 0 -a 0 -T 0 -l 0 -M ht.massif
    .venv/bin/python -m bench.heaptrack_curve ht.massif --window 120 560 --out bench/results/x

Only allocations made after heaptrack attached are counted: a `heaptrack -p` of a running
process sees neither what was allocated before nor its frees.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.soak import fit_line

_TIME = re.compile(r"^time=([0-9.]+)")
_HEAP = re.compile(r"^mem_heap_B=([0-9]+)")


def parse_massif(lines: Iterable[str]) -> list[tuple[float, int]]:
    """(seconds, heap bytes) of each snapshot, in file order."""
    out: list[tuple[float, int]] = []
    t: float | None = None
    for line in lines:
        if m := _TIME.match(line):
            t = float(m.group(1))
        elif (m := _HEAP.match(line)) and t is not None:
            out.append((t, int(m.group(1))))
            t = None
    return out


def per_second(points: Sequence[tuple[float, int]]) -> list[tuple[int, int]]:
    """The last snapshot of each whole second."""
    last: dict[int, int] = {}
    for t, b in points:
        last[int(t)] = b
    return sorted(last.items())


def judge(points: Sequence[tuple[int, int]], start_s: float, end_s: float) -> dict[str, Any]:
    """Mean, min, max and the fitted slope (MiB per minute, with its standard error) in
    [start_s, end_s]."""
    win = [(t, b / 2**20) for t, b in points if start_s <= t <= end_s]
    if len(win) < 3:
        raise ValueError(f"fewer than 3 points in {start_s}..{end_s} s")
    fit = fit_line([float(t) for t, _ in win], [m for _, m in win])
    assert fit is not None
    mibs = [m for _, m in win]
    return {"window_s": [start_s, end_s], "points": len(win),
            "mean_mib": round(sum(mibs) / len(mibs), 3), "min_mib": round(min(mibs), 3),
            "max_mib": round(max(mibs), 3),
            "slope_mib_per_min": round(fit.slope * 60, 4),
            "slope_stderr_mib_per_min": round(fit.stderr * 60, 4)}


def plot(points: Sequence[tuple[int, int]], window: tuple[float, float], title: str,
         path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot([t for t, _ in points], [b / 2**20 for _, b in points], lw=0.8)
    ax.axvspan(*window, color="0.9", label="judged window")
    ax.set_xlabel("seconds since heaptrack attached")
    ax.set_ylabel("heap in use (MiB)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("massif", type=Path)
    ap.add_argument("--window", nargs=2, type=float, required=True, metavar=("FROM_S", "TO_S"))
    ap.add_argument("--title", default="heap in use (heaptrack)")
    ap.add_argument("--out", type=Path, required=True, help="prefix: <out>.csv .json .png")
    a = ap.parse_args(argv)
    with a.massif.open(encoding="utf-8", errors="replace") as f:
        points = per_second(parse_massif(f))
    verdict = judge(points, *a.window)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with Path(f"{a.out}.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "heap_bytes"])
        w.writerows(points)
    Path(f"{a.out}.json").write_text(json.dumps(verdict, indent=2) + "\n")
    plot(points, (a.window[0], a.window[1]), a.title, Path(f"{a.out}.png"))
    print(json.dumps(verdict))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
