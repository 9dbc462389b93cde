"""bench/malloc_trim.py, the soak's allocator diagnostic: what it reads of gdb and /proc."""

from __future__ import annotations

import os

from bench.malloc_trim import parse_gdb, rss_kib


def test_parse_gdb_reads_both_printfs() -> None:
    out = "[Thread debugging using libthread_db enabled]\nSQLITE 2097152\nTRIM 1\n"
    assert parse_gdb(out) == (1, 2097152)


def test_parse_gdb_without_sqlite_in_the_process() -> None:
    # gdb says the symbol is missing on stderr and goes on to the trim
    assert parse_gdb("TRIM 0\n") == (0, None)


def test_parse_gdb_when_the_attach_failed() -> None:
    assert parse_gdb("ptrace: Operation not permitted.\n") == (None, None)


def test_rss_of_this_process_and_of_none() -> None:
    mine = rss_kib(os.getpid())
    assert mine is not None and mine > 1000
    assert rss_kib(2**22 + 1) is None  # above pid_max's default: no such process
