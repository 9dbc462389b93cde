"""What a running process's C allocator has mapped, holds and keeps free, and what SQLite and
CPython's small-object allocator hold inside it: a diagnostic for the soak (RELIABILITY.md,
issue 11).

RSS says how many pages a process has touched, not what it holds. glibc's `malloc_info`
says, per arena, how much heap is mapped (``system``) and how much of it lies free in the
bins (``free``); the rest is in use, whether the program has touched all of it yet or not.
`sqlite3_memory_used` is SQLite's share (its page caches first), and CPython's
`_PyObject_DebugMallocStats` counts the 1 MiB arenas of Python's small objects, which are
mapped beside malloc, not through it.

    python -m bench.malloc_info --pid 1234 [--pid 5678 --python 5678] [--every 600 --for 6000]
        [--out f.jsonl]

    python -m bench.malloc_info plot readings.jsonl --soak soak.json --name 1234=Asterisk \
        --out heap.png

Each line printed (and appended to --out) is JSON: the time, the pid, its RSS, the heap's
``system``, ``free`` and ``in_use`` KiB and arena count, SQLite's bytes in use and high-water
mark where SQLite is loaded, and for --python pids the pymalloc arenas.

The calls run in the process through gdb, which stops it for about a second: a diagnostic,
never for production. The Asterisk root's own gdb is used when it has one (`chroot <root>
apt-get install gdb`, for the diagnostic only; afterwards write anything else into
`<root>/.asterisk-chroot.spec` and run scripts/install-asterisk-chroot.sh, which rebuilds the
root from its recipe in about 25 s). Debian 12's gdb 13 cannot call a function in a process
on newer kernels ("Couldn't write extended state status: Bad address"). The root's gdb runs
in a private mount namespace with /proc bound into the root, so nothing is left mounted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import capacity

DEFAULT_ROOT = Path("/var/lib/hotline/asterisk-root")


def rss_kib(pid: int) -> int | None:
    kib = capacity.rss_kib([pid])
    return int(kib) if kib is not None else None


def gdb_batch(pid: int, commands: list[str], root: Path = DEFAULT_ROOT,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run gdb commands attached to pid (attach and detach are added). With a gdb in the
    Asterisk root, that one runs, chrooted, in a private mount namespace; else the host's."""
    script = ["set confirm off", "set unwindonsignal on", f"set sysroot /proc/{pid}/root",
              # the executable named, or gdb looks for a chrooted one's path on the host,
              # reads no symbols and cannot call anything ("No symbol table is loaded")
              f"file /proc/{pid}/exe", f"attach {pid}", *commands, "detach"]
    if (root / "usr/bin/gdb").exists() and shutil.which("unshare"):
        name = f"hotline-gdb-{os.getpid()}-{pid}.gdb"
        (root / "tmp" / name).write_text("\n".join(script) + "\n", encoding="utf-8")
        try:
            return subprocess.run(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                 'mount --bind /proc "$1/proc" && exec chroot "$1" gdb -q -nx -batch -x "$2"',
                 "sh", str(root), f"/tmp/{name}"],
                capture_output=True, text=True, timeout=timeout, check=False)
        finally:
            (root / "tmp" / name).unlink(missing_ok=True)
    if os.environ.get("HOTLINE_HOST_GDB") != "1":
        # seen here: Debian 12's gdb 13 on a 6.18 kernel fails its call ("Couldn't write
        # extended state status") and the process it called into dies
        raise SystemExit(f"no gdb in {root}: `chroot {root} apt-get install gdb` (see this "
                         "tool's doc), or HOTLINE_HOST_GDB=1 to use the host's gdb, which "
                         "can kill the process on newer kernels")
    args = ["gdb", "-q", "-nx", "-batch"]
    for line in script:
        args += ["-ex", line]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def tagged(stdout: str, tag: str) -> int | None:
    """The number a `printf "TAG %lld\\n", ...` printed, or None."""
    m = re.search(rf"^{tag} (-?\d+)$", stdout, re.M)
    return int(m.group(1)) if m else None


def parse_malloc_info(text: str) -> dict[str, int]:
    """malloc_info's XML, summed over the arenas: KiB mapped for heaps (system), KiB free in
    their bins (fastbins and the rest), KiB in use (the difference), KiB in chunks mmapped
    one by one (large allocations, in use too), and the number of arenas."""
    root = ET.fromstring(text)
    system = free = 0
    heaps = root.findall("heap")
    for heap in heaps:
        cur = heap.find("system[@type='current']")
        system += int(cur.get("size", "0")) if cur is not None else 0
        free += sum(int(t.get("size", "0")) for t in heap.findall("total")
                    if t.get("type") in ("fast", "rest"))
    mmap = sum(int(t.get("size", "0")) for t in root.findall("total") if t.get("type") == "mmap")
    return {"arenas": len(heaps), "system_kib": system >> 10, "free_kib": free >> 10,
            "in_use_kib": (system - free) >> 10, "mmapped_kib": mmap >> 10}


def parse_pymalloc(text: str) -> dict[str, int]:
    """From _PyObject_DebugMallocStats: pymalloc's arenas now and at most, and the bytes in
    its allocated blocks."""
    out: dict[str, int] = {}
    for key, pattern in (("py_arenas", r"# arenas allocated current\s*=\s*([\d,]+)"),
                         ("py_arenas_highwater", r"# arenas highwater mark\s*=\s*([\d,]+)"),
                         ("py_allocated_bytes", r"# bytes in allocated blocks\s*=\s*([\d,]+)")):
        m = re.search(pattern, text)
        if m:
            out[key] = int(m.group(1).replace(",", ""))
    return out


def info(pid: int, python: bool = False, root: Path = DEFAULT_ROOT) -> dict[str, object]:
    """One reading of pid (see the module's doc)."""
    stamp = f"{os.getpid()}-{pid}-{time.monotonic_ns()}"
    xml_path, py_path = f"/tmp/hotline-mi-{stamp}.xml", f"/tmp/hotline-py-{stamp}.txt"
    commands = [f'set $f = (void*)fopen("{xml_path}", "w")',
                "if $f != 0", '  printf "MI %d\\n", (int)malloc_info(0, $f)',
                '  printf "CLOSED %d\\n", (int)fclose($f)', "end"]
    if python:
        commands += [f'set $g = (void*)fopen("{py_path}", "w")',
                     "if $g != 0", '  printf "PY %d\\n", (int)_PyObject_DebugMallocStats($g)',
                     '  printf "CLOSED %d\\n", (int)fclose($g)', "end"]
    # last: where SQLite is not loaded, gdb stops at the unknown symbol
    commands += ['printf "SQLITE %lld\\n", (long long)sqlite3_memory_used()',
                 'printf "SQLITE_HIGH %lld\\n", (long long)sqlite3_memory_highwater(0)']
    before = rss_kib(pid)
    out = gdb_batch(pid, commands, root)
    row: dict[str, object] = {"at": round(time.time(), 1), "pid": pid, "rss_kib": before}
    proc_root = Path(f"/proc/{pid}/root")
    for path, parse in ((xml_path, parse_malloc_info), (py_path, parse_pymalloc)):
        target = proc_root / path.lstrip("/")
        try:
            row.update(parse(target.read_text(encoding="utf-8", errors="replace")))  # type: ignore[operator]
        except (OSError, ET.ParseError):
            pass
        finally:
            try:
                target.unlink()
            except OSError:
                pass
    lite, high = tagged(out.stdout, "SQLITE"), tagged(out.stdout, "SQLITE_HIGH")
    row["sqlite_used_kib"] = lite >> 10 if lite is not None else None
    row["sqlite_highwater_kib"] = high >> 10 if high is not None else None
    if tagged(out.stdout, "MI") is None:
        row["error"] = (out.stderr.strip().splitlines() or ["no result"])[-1]
    return row


def plot(readings: list[dict[str, object]], path: Path, names: dict[int, str],
         calls_at: list[tuple[float, float]] | None = None) -> None:
    """One panel per process: RSS, the heap mapped, held (in use), held less SQLite's share,
    and SQLite's share, against calls completed (from the soak's (time, calls) samples) or
    against minutes when there are none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    pids = sorted({int(r["pid"]) for r in readings})  # type: ignore[call-overload]
    fig, axes = plt.subplots(1, len(pids), figsize=(7 * len(pids), 4.5), squeeze=False)
    t0 = min(float(r["at"]) for r in readings)  # type: ignore[arg-type]
    for ax, pid in zip(axes.flat, pids, strict=True):
        rows = [r for r in readings if r["pid"] == pid and r.get("in_use_kib") is not None]
        at = np.array([float(r["at"]) for r in rows])  # type: ignore[arg-type]
        if calls_at:
            ts, cs = zip(*calls_at, strict=True)
            xs, label = np.interp(at, ts, cs), "calls completed"
        else:
            xs, label = (at - t0) / 60, "minutes"

        def series(key: str, rows: list[dict[str, object]] = rows) -> Any:
            return np.array([float(r.get(key) or 0) / 1024 for r in rows])  # type: ignore[arg-type]

        sqlite = series("sqlite_used_kib")
        for ys, name in ((series("rss_kib"), "RSS"), (series("system_kib"), "heap mapped"),
                         (series("in_use_kib"), "heap held (in use)"),
                         (series("in_use_kib") - sqlite, "held less SQLite's caches"),
                         (sqlite, "SQLite's caches")):
            ax.plot(xs, ys, marker="o", label=name)
        ax.set_title(f"{names.get(pid, pid)} (pid {pid})")
        ax.set_xlabel(label)
        ax.set_ylabel("MiB")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["plot"]:
        return _plot_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pid", type=int, action="append", required=True)
    ap.add_argument("--python", type=int, action="append", default=[],
                    help="a pid (also given as --pid) that is CPython: read pymalloc too")
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--every", type=float, default=0, help="seconds between readings (0: once)")
    ap.add_argument("--for", dest="duration", type=float, default=0)
    ap.add_argument("--out", type=Path, help="append each reading (JSON lines) here")
    args = ap.parse_args(argv)
    return every_pid(args.pid, lambda pid: info(pid, pid in args.python, args.root),
                     args.every, args.duration, args.out)


def every_pid(pids: list[int], read: Callable[[int], dict[str, object]], every: float,
              duration: float, out: Path | None) -> int:
    """read(pid) for each pid, printed (and appended to out) as JSON lines; again every
    `every` seconds for `duration` seconds (once when every is 0)."""
    end = time.monotonic() + duration
    while True:
        for pid in pids:
            line = json.dumps(read(pid))
            print(line, flush=True)
            if out:
                with out.open("a", encoding="utf-8") as f:
                    f.write(line + "\n")
        if every <= 0 or time.monotonic() + every > end:
            return 0
        time.sleep(every)  # a diagnostic's pace, not a test's wait


def _plot_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.malloc_info plot",
                                 description="plot the readings of a run against its soak")
    ap.add_argument("readings", type=Path, help="the JSON lines this tool wrote")
    ap.add_argument("--soak", type=Path,
                    help="the soak's JSON (its CSV beside it): plot against calls completed")
    ap.add_argument("--name", action="append", default=[], help="PID=NAME for a panel's title")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    readings = [json.loads(line) for line in args.readings.read_text(encoding="utf-8")
                .splitlines() if line.strip()]
    calls_at = None
    if args.soak:
        import csv
        from datetime import datetime

        doc = json.loads(args.soak.read_text(encoding="utf-8"))
        # the samples' clock starts a few seconds after run.started_at (the agents' phones
        # register first): a few calls' worth on the axis, no more
        t0 = datetime.fromisoformat(doc["run"]["started_at"]).timestamp()
        with (args.soak.parent / doc["samples_csv"]).open(encoding="utf-8") as f:
            calls_at = [(t0 + float(r["t_s"]), float(r["calls_completed"] or 0))
                        for r in csv.DictReader(f)]
    names = dict(n.split("=", 1) for n in args.name)
    plot(readings, args.out, {int(k): v for k, v in names.items()}, calls_at)
    return 0


if __name__ == "__main__":
    sys.exit(main())
