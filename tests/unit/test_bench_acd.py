"""`hotline bench acd` compares fairly (issue 9): three sides in one run, app_queue at its best
beside the shipped one, and a headline measured the same way on every side.

The rendered configuration is the real one (asterisk_conf.render with the bench extensions on);
the best queue is checked with pyst2's config parser, as the stack checks what it renders."""

from __future__ import annotations

import re
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from asterisk.config import Config

from asterisk_conf.render import SYSTEM_PROMPTS, render
from bench.acd import (
    BEST_QUEUE,
    SHIPPED_QUEUE,
    SIDES,
    BenchError,
    BenchPbx,
    Options,
    add_best_queue,
    best_queue_conf,
)
from bench.metrics import CallerRec, SeatLeg, SideEvents, headline, summarize
from config.settings import load_settings

SYS_PROMPTS = {k: {lang: f"/p/{lang}/sys.{k}" for lang in ("zh", "en")} for k in SYSTEM_PROMPTS}
SECRETS = ({f"seat{i:02d}": "x" for i in range(1, 51)} | {f"sup{i:02d}": "x" for i in range(1, 6)}
           | {"fastagi": "f" * 48})


def _etc(tmp_path: Path) -> Path:
    s = load_settings(env={"HOTLINE_AMI_SECRET": "s"})
    files = render(replace(s, pbx=BenchPbx(**asdict(s.pbx))), SECRETS, SYS_PROMPTS, "/moh")
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def _queue(etc: Path, name: str) -> dict[str, list[str]]:
    conf = Config(str(etc / "queues.conf"))
    [cat] = [c for c in conf.categories if c.name == name]
    out: dict[str, list[str]] = {}
    for item in cat.items:
        # pyst2 keeps what follows '=' as is: ' leastrecent', '> PJSIP/seat01'
        out.setdefault(item.name.strip(), []).append(item.value.lstrip(">").strip())
    return out


def test_three_sides_run_by_default_under_todays_json_keys() -> None:
    assert Options().sides == ("ours", "app_queue", "app_queue_best")
    assert set(SIDES) == {"ours", "app_queue", "app_queue_best"}
    # each side its own extension and its own caller numbers
    assert len({s.service for s in SIDES.values()}) == 3
    assert len({s.number_prefix for s in SIDES.values()}) == 3


def test_app_queue_at_its_best_beside_the_shipped_queue(tmp_path: Path) -> None:
    etc = _etc(tmp_path)
    shipped_before = (etc / "queues.conf").read_text()
    add_best_queue(etc, wrap_up_s=10)
    shipped = _queue(etc, SHIPPED_QUEUE)
    best = _queue(etc, BEST_QUEUE)
    # at its best: nothing holds a caller away from a free member, the smallest recheck
    assert best["strategy"] == ["leastrecent"] and best["retry"] == ["1"]
    assert best["announce-frequency"] == ["0"] and best["periodic-announce-frequency"] == ["0"]
    assert best["announce-position"] == ["no"] and best["announce-holdtime"] == ["no"]
    assert best["wrapuptime"] == ["10"]  # the same wrap-up as ours (Options.wrap_up_s)
    # the same seats as the shipped queue, which keeps its own settings untouched
    assert best["member"] == shipped["member"] and len(shipped["member"]) == 50
    assert (etc / "queues.conf").read_text().startswith(shipped_before)
    assert shipped["announce-frequency"] != ["0"]  # the shipped queue announces; the best not


def test_the_two_app_queue_sides_differ_in_nothing_but_the_queue(tmp_path: Path) -> None:
    etc = _etc(tmp_path)
    add_best_queue(etc, wrap_up_s=10)
    plan = (etc / "extensions.conf").read_text()

    def block(service: str) -> str:
        m = re.search(rf"^exten => {service},1,.*?(?=\n\n)", plan, re.S | re.M)
        assert m, service
        return m.group(0)

    shipped, best = block(SIDES["app_queue"].service), block(SIDES["app_queue_best"].service)
    assert f"Queue({BEST_QUEUE}," in best and "Queue(${QUEUE}," in shipped
    assert best.replace(SIDES["app_queue_best"].service, SIDES["app_queue"].service) \
        .replace(f"Queue({BEST_QUEUE},", "Queue(${QUEUE},") == shipped


def test_a_config_without_members_or_bench_extensions_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="no members"):
        best_queue_conf("[hotline-agents]\nstrategy = rrmemory\n", 10)
    (tmp_path / "queues.conf").write_text("[q]\nmember => PJSIP/seat01\n")
    (tmp_path / "extensions.conf").write_text("[from-carrier]\nexten => 95598,1,Answer()\n\n")
    with pytest.raises(BenchError, match="no bench extensions"):
        add_best_queue(tmp_path, 10)


def _side(free_gap_s: float) -> SideEvents:
    """Two seats, three callers waiting from t=0. seat01 hangs up at 5 s and, with a 10 s
    wrap-up, is nominally free at 15 s while seat02 is still busy and a caller waits: its next
    ring comes free_gap_s later."""
    callers = {f"c{i}": CallerRec(f"c{i}", f"ch{i}", f"139{i}", created=0.0, joined=0.0)
               for i in range(3)}
    legs = [SeatLeg("seat01", "l1", "c0", begin=0.0, end=1.0, answered=True, hangup=5.0),
            SeatLeg("seat02", "l2", "c1", begin=0.0, end=1.0, answered=True, hangup=8.0),
            SeatLeg("seat01", "l3", "c2", begin=15.0 + free_gap_s, end=16.0 + free_gap_s,
                    answered=True, hangup=20.0 + free_gap_s)]
    callers["c0"].answered, callers["c0"].seat, callers["c0"].dials = 1.0, "seat01", [(0.0, 1.0)]
    callers["c1"].answered, callers["c1"].seat, callers["c1"].dials = 1.0, "seat02", [(0.0, 1.0)]
    callers["c2"].answered, callers["c2"].seat = 16.0 + free_gap_s, "seat01"
    callers["c2"].dials = [(15.0 + free_gap_s, 16.0 + free_gap_s)]
    return SideEvents(callers, legs)


def test_the_headline_is_measured_the_same_way_on_every_side() -> None:
    """Ring after nominal free: the seat's hangup + the configured wrap-up to its next ring,
    whether or not the side reports its own free moments (ours does, app_queue cannot)."""
    seats = ("seat01", "seat02")
    kw = {"seats": seats, "sl_s": 20.0, "wrap_up_s": 10.0, "patience_hangups": set()}
    ours = summarize(_side(0.040), free_at={"l1": 15.02, "l2": 18.5}, **kw)
    theirs = summarize(_side(0.040), free_at=None, **kw)
    assert ours["ring_after_nominal_free_ms_p99"] == theirs["ring_after_nominal_free_ms_p99"]
    assert ours["ring_after_nominal_free_ms_p99"] == pytest.approx(40.0, abs=0.1)
    assert ours["ring_after_nominal_free_samples"] == 1
    # our own free moment gives the effective wrap-up; app_queue's is not observable
    assert ours["effective_wrap_up_s_mean"] == pytest.approx(10.26, abs=0.001)  # (10.02 + 10.5) / 2
    assert theirs["effective_wrap_up_samples"] == 0
    slow = summarize(_side(1.5), free_at=None, **kw)
    top = headline({"ours": ours, "app_queue": slow, "app_queue_best": theirs}, 10.0)
    ring = top["ring_after_nominal_free"]
    assert set(ring) == {"ours", "app_queue", "app_queue_best"}
    assert ring["app_queue"]["p99_ms"] == pytest.approx(1500.0, abs=0.1)
    assert top["ours_effective_wrap_up"]["configured_s"] == 10.0
    assert top["ours_effective_wrap_up"]["target_excess_ms"] == 50
