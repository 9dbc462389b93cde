"""The soak bench's pure parts: SIPp statistics and the CTI status file parsed, the slope and
its verdict, the steady window, the drained checks and the CSV round trip."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bench.capacity import cti_bus_connected
from bench.soak import (
    METRICS,
    Metric,
    count_handles,
    fit_line,
    judge_drained,
    judge_metric,
    overall,
    parse_sipp_stat,
    parse_smaps,
    parse_status,
    read_samples_csv,
    samples_csv,
    steady_window,
    verdict,
)

STAT_HEAD = ("StartTime;LastResetTime;CurrentTime;ElapsedTime(P);ElapsedTime(C);TargetRate;"
             "CallRate(P);CallRate(C);IncomingCall(P);IncomingCall(C);OutgoingCall(P);"
             "OutgoingCall(C);TotalCallCreated;CurrentCall;SuccessfulCall(P);"
             "SuccessfulCall(C);FailedCall(P);FailedCall(C);")


def _stat_row(created: int, current: int, ok: int, failed: int) -> str:
    return (f"2026-12-05 10:00:00;2026-12-05 10:00:00;2026-12-05 10:01:00;00:00:01;00:01:00;"
            f"1.5;1.5;1.5;0;0;2;{created};{created};{current};1;{ok};0;{failed};")


def test_sipp_stat_last_line_wins() -> None:
    text = "\n".join([STAT_HEAD, _stat_row(10, 10, 0, 0), _stat_row(90, 30, 58, 2)]) + "\n"
    assert parse_sipp_stat(text) == {"completed": 58, "failed": 2, "live": 30, "created": 90}


@pytest.mark.parametrize("text", ["", STAT_HEAD + "\n", "garbage;\n1;2;3\n"])
def test_sipp_stat_missing_or_short_is_zero(text: str) -> None:
    assert parse_sipp_stat(text) == {"completed": 0, "failed": 0, "live": 0, "created": 0}


def test_status_file_outbox_queues_and_pool() -> None:
    doc = {"pid": 1, "outbox": {
        "mqtt": {"published": 900, "queued": 3, "dropped": 0, "connected": True},
        "acd": {"inbox": 1, "db_jobs": 4, "lookups": 0, "held_replies": 2,
                "calls": 7, "channels": 7, "timers": 1, "gone": 0}},
        "db_pool": {"checked_out": 1, "size": 5},
        "memory": {"python_blocks": 412_000, "threads": 7, "heap_in_use_kib": 36_000,
                   "heap_free_kib": 3_000, "heap_mapped_kib": 39_500, "sqlite_kib": 3_700,
                   "trims": 4, "trim_freed_kib": 1_350, "trim_ms": 2.5}}
    assert parse_status(doc) == {"mqtt_outbox": 3, "acd_queues": 7, "acd_call_maps": 15,
                                 "db_checked_out": 1, "cti_python_blocks": 412_000,
                                 "cti_threads": 7, "cti_heap_in_use_kib": 36_000,
                                 "cti_heap_mapped_kib": 39_500, "cti_sqlite_kib": 3_700,
                                 "cti_trims": 4, "cti_trim_freed_kib": 1_350}


def test_status_file_from_an_older_cti_says_nothing() -> None:
    # a CTI without the outbox fields (or no status file yet): None, never a made-up 0
    assert parse_status({"pid": 1}) == {"mqtt_outbox": None, "acd_queues": None,
                                        "acd_call_maps": None, "db_checked_out": None,
                                        "cti_python_blocks": None, "cti_threads": None,
                                        "cti_heap_in_use_kib": None,
                                        "cti_heap_mapped_kib": None, "cti_sqlite_kib": None,
                                        "cti_trims": None, "cti_trim_freed_kib": None}
    assert parse_status(None)["mqtt_outbox"] is None
    assert parse_status({"outbox": {"mqtt": {"queued": True}}})["mqtt_outbox"] is None


SMAPS = """\
55d4c8a00000-55d4c8c21000 rw-p 00000000 00:00 0                          [heap]
Size:               2180 kB
Rss:                2048 kB
Pss:                2048 kB
7f0a1c000000-7f0a1c400000 rw-p 00000000 00:00 0
Size:               4096 kB
Rss:                1000 kB
7f0a20000000-7f0a20021000 rw-p 00000000 00:00 0                          [anon:glibc]
Rss:                  24 kB
7f0a2a000000-7f0a2a200000 r-xp 00000000 08:01 131 /usr/lib/x86_64-linux-gnu/libsqlite3.so.0
Rss:                 900 kB
7ffd5a000000-7ffd5a021000 rw-p 00000000 00:00 0                          [stack]
Rss:                  40 kB
VmFlags: rd wr mr mw me gd ac
"""


def test_smaps_split_into_brk_heap_and_anonymous_mappings() -> None:
    # the library's text and the stack count in neither
    assert parse_smaps(SMAPS) == {"brk_heap_kib": 2048, "anon_kib": 1024}
    assert parse_smaps("") == {"brk_heap_kib": 0, "anon_kib": 0}


def test_db_handles_count_the_database_and_its_wal_only() -> None:
    targets = ["/tmp/w/bench.db", "/tmp/w/bench.db-wal", "/tmp/w/bench.db-shm",
               "/tmp/w/bench.dbx", "socket:[123]", "/tmp/w/other.db"]
    assert count_handles(targets, "/tmp/w/bench.db") == 3


def test_fit_line_recovers_a_slope_and_refuses_too_little() -> None:
    f = fit_line([0, 1, 2, 3, 4], [1, 3, 5, 7, 9])
    assert f is not None and f.slope == pytest.approx(2) and f.intercept == pytest.approx(1)
    assert f.stderr == pytest.approx(0, abs=1e-9)
    assert fit_line([1, 2], [1, 2]) is None
    assert fit_line([3, 3, 3], [1, 2, 3]) is None


def test_verdict_uses_the_interval() -> None:
    assert verdict(0.5, 10.0, 1.0) == "pass"
    assert verdict(-3.0, 0.1, 1.0) == "pass"
    assert verdict(5.0, 1.0, 1.0) == "fail"  # 5 - 1.96 > 1
    assert verdict(2.0, 1.0, 1.0) == "inconclusive"  # above, but within noise


def _samples(values: list[float], per_sample_calls: int = 15) -> list[dict[str, object]]:
    out: list[dict[str, object]] = [{"t_s": 0.0, "phase": "idle", "calls_completed": 0,
                                     "rss_cti_kib": 1.0}]
    for i, v in enumerate(values):
        out.append({"t_s": 10.0 * (i + 1), "phase": "load",
                    "calls_completed": per_sample_calls * i, "rss_cti_kib": v})
    out.append({"t_s": 10.0 * (len(values) + 1), "phase": "drain",
                "calls_completed": per_sample_calls * len(values), "rss_cti_kib": 9e9})
    return out


def test_steady_window_is_the_second_half_of_the_load() -> None:
    s = _samples([float(i) for i in range(11)])
    win = steady_window(s)
    assert [w["t_s"] for w in win] == [60.0, 70.0, 80.0, 90.0, 100.0, 110.0]
    assert all(w["phase"] == "load" for w in win)
    assert steady_window([{"t_s": 0, "phase": "idle"}]) == []


def test_warm_up_growth_is_not_judged_but_steady_growth_is() -> None:
    metric = Metric("rss_cti_kib", "CTI RSS", "KiB", 1024)
    rng = random.Random(1)
    # 20 MB of warm-up in the first half, then flat with noise: passes
    warm = [50_000 + 20_000 * i / 30 for i in range(30)]
    flat = [70_000 + rng.uniform(-200, 200) for _ in range(30)]
    j = judge_metric(metric, _samples(warm + flat))
    assert j["verdict"] == "pass", j
    assert j["start"] == warm[0] and j["end"] == flat[-1]
    # 2 KB per call leaked all along (15 calls per sample): 20 MB per 10k calls, fails
    leak = [50_000 + 2 * 15 * i + rng.uniform(-200, 200) for i in range(60)]
    j = judge_metric(metric, _samples(leak))
    assert j["verdict"] == "fail"
    assert j["per_10k_calls"] == pytest.approx(20_000, rel=0.1)
    assert j["per_hour"] == pytest.approx(2 * 15 * 360, rel=0.1)  # a sample every 10 s
    lo, hi = j["per_10k_calls_ci95"]
    assert lo < j["per_10k_calls"] < hi


def test_a_metric_never_reported_is_no_data_and_fails_the_run() -> None:
    metric = Metric("fds_cti", "CTI fds", "fds", 10)
    j = judge_metric(metric, _samples([1.0] * 10))  # the samples carry no fds_cti
    assert j["verdict"] == "no data"
    drained = judge_drained({"mqtt_outbox": 0, "acd_queues": 0, "acd_call_maps": 0,
                             "db_checked_out": 0}, 0)
    assert overall({"fds_cti": j}, drained) == "fail"


def test_drained_stack_must_be_empty() -> None:
    zero = {"mqtt_outbox": 0, "acd_queues": 0, "acd_call_maps": 0, "db_checked_out": 0}
    assert judge_drained(zero, 0)["verdict"] == "pass"
    left = judge_drained(zero, 2)
    assert left["verdict"] == "fail" and left["not_zero"] == ["channels_left"]
    assert judge_drained({**zero, "acd_call_maps": None}, 0)["not_zero"] == ["acd_call_maps"]
    ok = {"verdict": "pass"}
    assert overall({"a": ok, "b": {"verdict": "inconclusive"}}, {"verdict": "pass"}) \
        == "inconclusive"
    assert overall({"a": ok}, {"verdict": "pass"}) == "pass"


def test_samples_csv_round_trip() -> None:
    rows = [{"t_s": 0.0, "phase": "idle", "calls_completed": 0, "calls_failed": 0,
             "live_calls": 0, "rss_cti_kib": 81234, "channels": None},
            {"t_s": 10.5, "phase": "load", "calls_completed": 12, "calls_failed": 1,
             "live_calls": 22, "rss_cti_kib": 81300, "channels": 44, "ignored": "x"}]
    back = read_samples_csv(samples_csv(rows))
    assert back[0]["channels"] is None and back[0]["phase"] == "idle"
    assert back[1]["t_s"] == 10.5 and back[1]["channels"] == 44
    assert back[1]["rss_cti_kib"] == 81300 and "ignored" not in back[1]
    assert set(back[0]) >= {m.key for m in METRICS}


def test_logins_wait_for_the_cti_bus(tmp_path: Path) -> None:
    # a command published before the CTI subscribed is lost: the bench waits for this
    inst = cast(Any, SimpleNamespace(settings=SimpleNamespace(state_dir=tmp_path)))
    assert not cti_bus_connected(inst)  # no status file yet
    status = tmp_path / "cti.status.json"
    status.write_text('{"pid": 1}', encoding="utf-8")
    assert not cti_bus_connected(inst)
    status.write_text('{"outbox": {"mqtt": {"connected": false, "queued": 0}}}', encoding="utf-8")
    assert not cti_bus_connected(inst)
    status.write_text('{"outbox": {"mqtt": {"connected": true, "queued": 0}}}', encoding="utf-8")
    assert cti_bus_connected(inst)
    status.write_text('{"outbox": {"mq', encoding="utf-8")  # caught mid-write
    assert not cti_bus_connected(inst)


def test_a_sqlite_files_size_counts_its_wal_and_is_none_when_absent(tmp_path: Path) -> None:
    from bench.soak import _kib_of

    assert _kib_of(tmp_path, "astdb.sqlite3") is None
    (tmp_path / "astdb.sqlite3").write_bytes(b"\0" * 4096)
    assert _kib_of(tmp_path, "astdb.sqlite3") == 4
    (tmp_path / "astdb.sqlite3-wal").write_bytes(b"\0" * 8192)
    assert _kib_of(tmp_path, "astdb.sqlite3") == 12


def test_no_record_is_a_diagnostic_switch_off_by_default() -> None:
    """`hotline bench soak --no-record` soaks with the agent legs unrecorded (the capacity
    bench's BENCH_NOREC global), to tell recording's share of a growth; recording stays on
    unless asked."""
    from click.testing import CliRunner

    from bench.soak import Options
    from hotline.cli import main as cli

    assert Options().record is True
    res = CliRunner().invoke(cli, ["bench", "soak", "--no-record", "--minutes", "0"])
    assert res.exit_code == 2 and "--minutes" in res.output  # parsed, then refused on range
    assert "--no-record" in CliRunner().invoke(cli, ["bench", "soak", "--help"]).output
