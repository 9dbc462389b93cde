"""Where in a process's address space its resident memory grew: a diagnostic for the soak
(RELIABILITY.md, issue 11).

heaptrack sees what malloc hands out; RSS also counts what a program or its libraries map
themselves (thread stacks, CPython's small-object arenas, a library's own pools). This takes
snapshots of /proc/<pid>/smaps, one mapping per row, and says which mappings grew between two
of them, each named by kind:

- ``brk``: the main arena's heap (``[heap]``);
- ``arena``: a glibc thread arena's heap (an anonymous mapping on a 64 MiB boundary);
- ``stack``: a thread's stack (an anonymous read-write mapping just above a guard page);
- ``anon``: any other anonymous mapping (CPython's arenas, a library's mmap);
- ``file``: a mapped file.

    python -m bench.smaps_diff watch --pid 1234 --pid 5678 --every 300 --for 1800 --out DIR
    python -m bench.smaps_diff diff DIR/1234-000.json DIR/1234-006.json
    python -m bench.smaps_diff strings --pid 1234 --start 7f12... --end 7f13... [--top 40]

``strings`` reads a mapping's bytes (root, or the process's owner with ptrace rights) and
counts the printable strings in it: what a growing region holds tells whose memory it is.
A snapshot reads only /proc; it does not stop the process.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

Map = dict[str, Any]

ARENA_ALIGN = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit: a thread arena's heap is aligned to it

_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s*(.*)$")
_FIELD = re.compile(r"^(\w+):\s+(\d+) kB$")


def parse(text: str) -> list[Map]:
    """The mappings of a /proc/<pid>/smaps text: start, end (ints), perms, name and the sizes
    in KiB (size, rss, anon), in address order."""
    maps: list[Map] = []
    cur: Map | None = None
    for line in text.splitlines():
        head = _HEADER.match(line)
        if head:
            cur = {"start": int(head.group(1), 16), "end": int(head.group(2), 16),
                   "perms": head.group(3), "name": head.group(4).strip(),
                   "size": 0, "rss": 0, "anon": 0}
            maps.append(cur)
            continue
        field = _FIELD.match(line)
        if field and cur is not None:
            key = {"Size": "size", "Rss": "rss", "Anonymous": "anon"}.get(field.group(1))
            if key:
                cur[key] = int(field.group(2))
    classify(maps)
    return maps


def classify(maps: list[Map]) -> None:
    """Name each mapping's kind in place (see the module's doc)."""
    for i, m in enumerate(maps):
        name = str(m["name"])
        prev = maps[i - 1] if i else None
        if name == "[heap]":
            kind = "brk"
        elif name == "[stack]" or name.startswith("[stack:"):
            kind = "stack"
        elif name.startswith("[") and not name.startswith("[anon"):
            kind = "special"
        elif name and not name.startswith("[anon"):
            kind = "file"
        elif int(m["start"]) % ARENA_ALIGN == 0 and str(m["perms"]).startswith("rw"):
            kind = "arena"
        elif (prev is not None and prev["end"] == m["start"] and prev["perms"] == "---p"
              and not prev["name"] and int(prev["size"]) <= 64
              and str(m["perms"]).startswith("rw")):
            kind = "stack"
        else:
            kind = "anon"
        m["kind"] = kind


def snapshot(pid: int) -> dict[str, Any]:
    text = Path(f"/proc/{pid}/smaps").read_text(encoding="utf-8", errors="replace")
    return {"pid": pid, "t": time.time(), "maps": parse(text)}


def totals(maps: list[Map]) -> dict[str, dict[str, int]]:
    """Per kind: how many mappings, their resident and anonymous KiB."""
    out: dict[str, dict[str, int]] = collections.defaultdict(lambda: {"n": 0, "rss": 0, "anon": 0})
    for m in maps:
        row = out[str(m["kind"])]
        row["n"] += 1
        row["rss"] += int(m["rss"])
        row["anon"] += int(m["anon"])
    return dict(out)


def diff(a: list[Map], b: list[Map], top: int = 15) -> dict[str, Any]:
    """What changed from a to b: totals by kind, and the mappings (by start address) whose RSS
    grew or shrank the most, new ones included."""
    ta, tb = totals(a), totals(b)
    kinds = sorted(set(ta) | set(tb))
    by_kind = {k: {"n": (ta.get(k, {}).get("n", 0), tb.get(k, {}).get("n", 0)),
                   "rss_delta_kib": tb.get(k, {}).get("rss", 0) - ta.get(k, {}).get("rss", 0)}
               for k in kinds}
    old = {int(m["start"]): m for m in a}
    changes = []
    for m in b:
        before = old.get(int(m["start"]))
        delta = int(m["rss"]) - (int(before["rss"]) if before else 0)
        if delta:
            changes.append({"start": f"{int(m['start']):x}", "end": f"{int(m['end']):x}",
                            "kind": m["kind"], "name": m["name"], "size_kib": m["size"],
                            "rss_kib": m["rss"], "delta_kib": delta, "new": before is None})
    changes.sort(key=lambda c: -abs(int(c["delta_kib"])))
    return {"by_kind": by_kind, "largest": changes[:top],
            "rss_delta_kib": sum(int(m["rss"]) for m in b) - sum(int(m["rss"]) for m in a)}


def strings_in(pid: int, start: int, end: int, minimum: int = 6) -> collections.Counter[str]:
    """The printable ASCII strings of at least `minimum` bytes in [start, end) of pid's memory,
    counted. Unmapped or unreadable pages are skipped."""
    found: collections.Counter[str] = collections.Counter()
    pattern = re.compile(rb"[\x20-\x7e]{%d,}" % minimum)
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        addr = start
        while addr < end:
            size = min(1 << 20, end - addr)
            try:
                mem.seek(addr)
                chunk = mem.read(size)
            except OSError:
                chunk = b""
            for s in pattern.findall(chunk):
                found[s[:80].decode("ascii")] += 1
            addr += size
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("watch", help="snapshot pids' smaps every N seconds")
    w.add_argument("--pid", type=int, action="append", required=True)
    w.add_argument("--every", type=float, default=300)
    w.add_argument("--for", dest="duration", type=float, default=1800)
    w.add_argument("--out", type=Path, required=True)
    d = sub.add_parser("diff", help="what grew between two snapshots")
    d.add_argument("a", type=Path)
    d.add_argument("b", type=Path)
    d.add_argument("--top", type=int, default=15)
    s = sub.add_parser("strings", help="count the strings in a range of a process's memory")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--start", required=True)
    s.add_argument("--end", required=True)
    s.add_argument("--top", type=int, default=40)
    args = ap.parse_args(argv)
    if args.cmd == "watch":
        args.out.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + args.duration
        n = 0
        while True:
            for pid in args.pid:
                try:
                    snap = snapshot(pid)
                except OSError as exc:
                    print(f"smaps_diff: pid {pid}: {exc}", file=sys.stderr)
                    continue
                path = args.out / f"{pid}-{n:03d}.json"
                path.write_text(json.dumps(snap), encoding="utf-8")
                t = totals(snap["maps"])
                print(json.dumps({"file": str(path),
                                  "rss_kib": {k: v["rss"] for k, v in sorted(t.items())}}),
                      flush=True)
            n += 1
            left = deadline - time.monotonic()
            if left <= 0:
                return 0
            time.sleep(min(args.every, left))
    if args.cmd == "diff":
        a = json.loads(args.a.read_text(encoding="utf-8"))
        b = json.loads(args.b.read_text(encoding="utf-8"))
        print(json.dumps(diff(a["maps"], b["maps"], args.top), indent=1))
        return 0
    counts = strings_in(args.pid, int(args.start, 16), int(args.end, 16))
    for text, count in counts.most_common(args.top):
        print(f"{count:8d}  {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
