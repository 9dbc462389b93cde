"""Ask running processes' C allocator to give back what it holds free, and say how much RSS
that was: a diagnostic for the soak (RELIABILITY.md, issue 11).

A process whose resident memory grows with the calls either holds more live objects (a leak,
or a cache that keeps growing) or keeps memory it has freed (glibc's arenas and brk heap are
returned to the kernel only from their top, and a thread's arena only when it is empty).
glibc's `malloc_trim(0)` returns every free page it can, from every arena. Called in the
process through gdb while a soak runs, the RSS it takes away is memory the allocator kept, not
memory the program holds: what it leaves is the program's.

    python -m bench.malloc_trim --pid 1234 --pid 5678 [--every 600 --for 2400] [--out f.jsonl]

Each line printed (and appended to --out) is JSON: the time, the pid, its name, RSS before and
after the trim (KiB, from /proc/<pid>/status), what malloc_trim returned (1: memory was
given back) and, where the process has SQLite loaded (the CTI on SQLite; Asterisk's AstDB),
what SQLite's allocator holds (sqlite3_memory_used: page caches, schemas, statements).
A chrooted process (Asterisk) is read through /proc/<pid>/root, so that gdb finds its own
libc; gdb runs as bench/malloc_info.py runs it (the Asterisk root's gdb where it has one). gdb
stops the process for about a second: a diagnostic, never for production.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from bench.malloc_info import every_pid, gdb_batch, rss_kib


def parse_gdb(stdout: str) -> tuple[int | None, int | None]:
    """(what malloc_trim returned, SQLite's bytes in use) from gdb's printfs; None where gdb
    printed none (no such symbol in the process, or the attach failed)."""
    trimmed = re.search(r"^TRIM (-?\d+)$", stdout, re.M)
    lite = re.search(r"^SQLITE (-?\d+)$", stdout, re.M)
    return (int(trimmed.group(1)) if trimmed else None, int(lite.group(1)) if lite else None)


def trim(pid: int, timeout: float = 60) -> dict[str, object]:
    """malloc_trim(0) in pid, through gdb; RSS before and after."""
    name = Path(f"/proc/{pid}/comm").read_text(encoding="ascii", errors="replace").strip()
    before = rss_kib(pid)
    # SQLite's last: where it is not loaded, gdb stops at the unknown symbol
    out = gdb_batch(pid, ['printf "TRIM %d\\n", (int)malloc_trim(0)',
                          'printf "SQLITE %lld\\n", (long long)sqlite3_memory_used()'],
                    timeout=timeout)
    trimmed, lite = parse_gdb(out.stdout)
    after = rss_kib(pid)
    return {"at": round(time.time(), 1), "pid": pid, "name": name, "rss_before_kib": before,
            "rss_after_kib": after,
            "released_kib": before - after if before is not None and after is not None
            else None,
            "malloc_trim": trimmed,
            # what SQLite holds (its page caches first), if the process has SQLite loaded
            "sqlite_memory_used_kib": lite // 1024 if lite is not None else None,
            "error": None if trimmed is not None
            else (out.stderr.strip().splitlines() or ["no result"])[-1]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pid", type=int, action="append", required=True)
    ap.add_argument("--every", type=float, default=0, help="seconds between trims (0: once)")
    ap.add_argument("--for", dest="duration", type=float, default=0,
                    help="seconds to go on trimming (with --every)")
    ap.add_argument("--out", type=Path, help="append each result (JSON lines) here")
    args = ap.parse_args(argv)
    return every_pid(args.pid, trim, args.every, args.duration, args.out)


if __name__ == "__main__":
    sys.exit(main())
