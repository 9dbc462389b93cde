"""What grew between two tracemalloc snapshots of the CTI (hotline/diagnostics.py): the top
allocation sites by growth, grouped by line and by traceback.

    python -m bench.tracemalloc_diff var/tracemalloc/cti-002.snap var/tracemalloc/cti-007.snap
"""

from __future__ import annotations

import sys
import tracemalloc

IGNORED = (tracemalloc.Filter(False, tracemalloc.__file__),
           tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
           tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"))


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__)
        return 2
    old = tracemalloc.Snapshot.load(argv[0]).filter_traces(IGNORED)
    new = tracemalloc.Snapshot.load(argv[1]).filter_traces(IGNORED)
    top = int(argv[2]) if len(argv) == 3 else 25
    total_old = sum(s.size for s in old.statistics("filename"))
    total_new = sum(s.size for s in new.statistics("filename"))
    print(f"traced: {total_old / 1e6:.2f} MB -> {total_new / 1e6:.2f} MB "
          f"({(total_new - total_old) / 1e6:+.2f} MB)")
    print(f"\n== top {top} lines by growth")
    for stat in new.compare_to(old, "lineno")[:top]:
        print(f"{stat.size_diff / 1e3:+10.1f} kB {stat.count_diff:+8d} blocks  "
              f"{stat.traceback[0]}")
    print("\n== top 8 tracebacks by growth")
    for stat in new.compare_to(old, "traceback")[:8]:
        print(f"{stat.size_diff / 1e3:+10.1f} kB {stat.count_diff:+8d} blocks")
        for line in stat.traceback.format(limit=8):
            print("    " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
