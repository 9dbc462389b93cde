"""bench/capacity.py's pure parts: Erlang C, the 99.9 % judgement, the step search and its stop
rule, the report, and the dialplan patch (no Asterisk, no SIPp)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from bench.capacity import (
    RampPlan,
    agents_worth,
    allowed_failures,
    capacity_of,
    erlang_b,
    erlang_c,
    judge,
    max_erlangs,
    mean_waiting,
    next_rate,
    patch_extensions,
    per_call,
    report,
    service_level,
    summarize_ramp,
)

# ------------------------------------------------------------------------------ Erlang


def _erlang_c_exact(n: int, a: int) -> float:
    """The textbook formula in exact arithmetic: A^N/N! N/(N-A) / (sum A^k/k! + that)."""
    top = Fraction(a ** n, math.factorial(n)) * Fraction(n, n - a)
    return float(top / (sum(Fraction(a ** k, math.factorial(k)) for k in range(n)) + top))


def test_erlang_b_table_value() -> None:
    # Erlang B tables: 10 trunks at 5 erlangs block 1.84 % of calls
    assert erlang_b(10, 5) == pytest.approx(0.01838, abs=1e-5)
    assert erlang_b(1, 1) == pytest.approx(0.5)


@pytest.mark.parametrize(("agents", "p_wait", "sl"), [
    # the classic worked example (10 erlangs: 100 calls in 30 min at a 180 s handle time,
    # answered within 20 s): probability of waiting and service level per agent count
    (11, 0.6821, 0.3896), (12, 0.4494, 0.6402), (13, 0.2853, 0.7956), (14, 0.1741, 0.8884),
    (15, 0.1020, 0.9415),
])
def test_erlang_c_known_values(agents: int, p_wait: float, sl: float) -> None:
    assert erlang_c(agents, 10) == pytest.approx(p_wait, abs=1e-4)
    assert service_level(agents, 10, 180, 20) == pytest.approx(sl, abs=1e-4)


@pytest.mark.parametrize(("n", "a"), [(1, 0), (2, 1), (5, 3), (20, 15), (50, 45)])
def test_erlang_c_matches_the_exact_formula(n: int, a: int) -> None:
    assert erlang_c(n, a) == pytest.approx(_erlang_c_exact(n, a), rel=1e-9)


def test_erlang_c_edges_and_large_loads() -> None:
    assert erlang_c(2, 1) == pytest.approx(1 / 3)
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: the utilisation
    assert erlang_c(10, 10) == 1.0 and erlang_c(10, 12) == 1.0 and erlang_c(0, 1) == 1.0
    assert 0 < erlang_c(2000, 1950) < 1  # no overflow where A^N/N! would
    assert mean_waiting(2, 1) == pytest.approx(1 / 3)  # C x A / (N - A)
    assert mean_waiting(3, 3) == math.inf


def test_max_erlangs_and_agents_worth() -> None:
    # 14 agents are the fewest for 80/20 at 10 erlangs, so 14 take a little more than 10
    assert 10 < max_erlangs(14) < 11
    assert max_erlangs(13) < 10
    worth = agents_worth(100, None)
    a = worth["erlangs"]
    assert service_level(worth["agents"], a, 180, 20) >= 0.8 - 1e-6
    assert worth["calls_held_mean"] <= 100 and worth["binding"] == "concurrency"
    more = agents_worth(100, None)["agents"] + 1  # one more agent's traffic does not fit
    b = max_erlangs(more)
    assert b + mean_waiting(more, b) > 100
    by_rate = agents_worth(1000, 0.2)  # 0.2 calls/s x 180 s = 36 erlangs at most
    assert by_rate["binding"] == "rate" and by_rate["erlangs"] <= 36
    assert agents_worth(0, None)["agents"] == 0
    # calls in the IVR count too: the same machine carries fewer agents
    assert agents_worth(100, None, extra_s=60)["agents"] < worth["agents"]


# --------------------------------------------------------------------- the judgement


@pytest.mark.parametrize(("offered", "allowed"), [(0, 0), (10, 0), (999, 0), (1000, 1),
                                                  (1999, 1), (2000, 2), (12345, 12)])
def test_allowed_failures_at_99_9(offered: int, allowed: int) -> None:
    assert allowed_failures(offered) == allowed


def test_judge() -> None:
    assert judge(500, 500).passed
    assert not judge(500, 499).passed  # below 1000 calls nothing may fail
    j = judge(1000, 999)
    assert j.passed and j.failed == 1 and j.completion == pytest.approx(0.999)
    assert not judge(1000, 998).passed
    assert not judge(0, 0).passed and judge(0, 0).completion is None
    assert judge(10, 12).completed == 10  # a stray call does not make up for a lost one
    assert judge(100, 95, completion_ppm=950_000).passed


# --------------------------------------------------------------------- the step search


PLAN = RampPlan(start=2, factor=2, max_rate=100, max_steps=10, refine=2)


def _search(plan: RampPlan, limit: float) -> list[tuple[float, bool]]:
    """Run the search against a machine that passes every rate up to `limit`."""
    history: list[tuple[float, bool]] = []
    while (rate := next_rate(plan, history)) is not None:
        history.append((rate, rate <= limit))
        assert len(history) <= plan.max_steps
    return history


def test_ramp_grows_then_bisects_then_stops() -> None:
    h = _search(PLAN, 10)
    assert [r for r, _ in h[:4]] == [2, 4, 8, 16]
    assert h[3] == (16, False)
    assert len(h) == 4 + 2  # two refining steps after the first failure
    assert h[4][0] == pytest.approx(math.sqrt(8 * 16), abs=1e-3)
    cap = capacity_of(h)
    assert cap["bound"] == "measured" and 8 <= cap["rate_per_s"] <= 10
    assert cap["first_failing_rate_per_s"] > cap["rate_per_s"]


def test_ramp_stops_at_the_cap_and_at_max_steps() -> None:
    capped = RampPlan(start=2, factor=2, max_rate=5, max_steps=10, refine=2)
    h = _search(capped, 1000)
    assert [r for r, _ in h] == [2, 4, 5]
    assert capacity_of(h) == {"rate_per_s": 5, "bound": "at_least",
                              "first_failing_rate_per_s": None}
    short = RampPlan(start=2, factor=2, max_rate=1000, max_steps=3, refine=2)
    assert len(_search(short, 1000)) == 3


def test_ramp_steps_down_when_the_first_step_fails() -> None:
    h = _search(PLAN, 0.6)
    assert [r for r, _ in h[:3]] == [2, 1, 0.5]
    assert capacity_of(h)["rate_per_s"] == 0.5
    nothing = _search(RampPlan(start=1, factor=2, max_rate=10, max_steps=10, refine=0,
                               min_rate=0.3), 0.01)
    assert capacity_of(nothing)["bound"] == "none" and nothing[-1][0] >= 0.3


def test_ramp_refining_stops_when_pass_and_fail_are_close() -> None:
    plan = RampPlan(start=10, factor=1.05, max_rate=100, max_steps=10, refine=5)
    h = [(10.0, True), (10.5, False)]
    assert next_rate(plan, h) is None  # 10.5 / 10 is within min_gap
    assert next_rate(RampPlan(2, 2, 100, 10, refine=0), [(2, True), (4, False)]) is None


def test_capacity_ignores_a_pass_above_a_failure() -> None:
    assert capacity_of([(2, True), (4, False), (3, True), (3.5, True), (5, True)]) == {
        "rate_per_s": 3.5, "bound": "measured", "first_failing_rate_per_s": 4}


# ------------------------------------------------------------------------- the report


def _step(rate: float, passed: bool, peak: int, mean: float) -> dict[str, object]:
    return {"rate_per_s": rate, "passed": passed, "callers_peak": peak, "callers_mean": mean,
            "per_call": {"cpu_ms_asterisk": 10.0}}


def test_summarize_ramp() -> None:
    s = summarize_ramp([_step(2, True, 40, 38.0), _step(4, True, 80, 77.5),
                        _step(8, False, 150, 140.0)])
    assert s["rate_per_s"] == 4 and s["bound"] == "measured"
    assert s["concurrent_calls_peak"] == 80 and s["concurrent_calls_mean"] == 77.5
    assert s["per_call_at_capacity"] == {"cpu_ms_asterisk": 10.0} and s["steps"] == 3
    none = summarize_ramp([_step(2, False, 40, 38.0)])
    assert none["rate_per_s"] is None and none["concurrent_calls_peak"] is None


def test_report_ratio_cost_and_moonshot() -> None:
    def ramp(rate: float | None, bound: str, peak: int | None, mean: float | None
             ) -> dict[str, object]:
        return {"rate_per_s": rate, "bound": bound, "concurrent_calls_peak": peak,
                "concurrent_calls_mean": mean}

    doc = report({
        "ivr": {"cti": ramp(19, "measured", 380, 370.0),
                "static": ramp(20, "measured", 400, 390.0)},
        "bridged": {"cti": ramp(6, "measured", 120, 110.0),
                    "static": ramp(10, "measured", 200, 190.0)},
        "recorded": {"cti": ramp(5, "at_least", 100, 95.0),
                     "static": ramp(5, "at_least", 100, 96.0)},
    })
    ivr, bridged, rec = (doc["modes"][m] for m in ("ivr", "bridged", "recorded"))
    assert ivr["rate_ratio"] == 0.95 and ivr["cti_cost"] == 0.05
    assert ivr["concurrent_ratio"] == 0.95
    assert ivr["moonshot_cti_cost_under_10pct"] == "met"
    assert bridged["rate_ratio"] == 0.6 and bridged["moonshot_cti_cost_under_10pct"] == "not met"
    assert rec["moonshot_cti_cost_under_10pct"].startswith("not separated")
    assert rec["rate_ratio"] is None and rec["cti_cost"] is None  # equal only by the cap
    machine = doc["one_machine_carries"]
    assert machine["bound"] == "at_least" and machine["handle_s"] == 180
    assert machine == {**machine, **agents_worth(95.0, 5)}
    empty = report({"ivr": {"cti": ramp(None, "none", None, None),
                            "static": ramp(3, "measured", 10, 9.0)}})
    assert empty["modes"]["ivr"]["moonshot_cti_cost_under_10pct"] == "not met: no CTI step passed"
    assert empty["one_machine_carries"] is None
    neither = report({"ivr": {"cti": ramp(None, "none", None, None),
                              "static": ramp(None, "none", None, None)}})
    assert neither["modes"]["ivr"]["moonshot_cti_cost_under_10pct"] == "not measured"


def test_per_call() -> None:
    assert per_call({"asterisk": 2.0, "cti": None}, {"asterisk": 1000.0, "cti": None}, 100, 50) \
        == {"cpu_ms_asterisk": 20.0, "cpu_ms_cti": None, "rss_kib_asterisk": 20.0,
            "rss_kib_cti": None}
    assert per_call({"asterisk": 2.0}, {"asterisk": 10.0}, 0, 0) == {
        "cpu_ms_asterisk": None, "rss_kib_asterisk": None}


# ------------------------------------------------------------------ the dialplan patch


RENDERED = """[globals]
MAXCALL = 3600

[from-carrier]
exten => 95598,1,Answer()

[hotline-connect]
exten => _seat.,1,UserEvent(HotlineOffer,Seat: ${EXTEN})
 same => n,Dial(PJSIP/${EXTEN},${RING_TIMEOUT},m(default)U(hotline-record^${HOTLINE_SKILL})\
F(hotline-hold^agent^1))
 same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)

[hotline-record]
exten => s,1,Return()
"""


def test_patch_extensions() -> None:
    prompts = {"welcome": "hotline/w", "language_menu": "hotline/l", "main_menu": "hotline/m"}
    out = patch_extensions(RENDERED, 30, prompts)
    assert "BENCH_NOREC = 0" in out and "BENCH_RR = 0" in out
    for ext in ("95580", "95581", "95582"):
        assert f"exten => {ext},1," in out
    assert "Playback(hotline/w)" in out and "% 30 + 1" in out
    assert "[bench-static-rec]" in out and "U(bench-static-rec)" in out
    connect = out[out.index("[hotline-connect]"):out.index("[hotline-record]")]
    assert connect.count("U(hotline-record^${HOTLINE_SKILL})") == 1  # the shipped Dial kept
    assert "same => n(benchnorec),Dial(PJSIP/${EXTEN},${RING_TIMEOUT},m(default)F(" in connect
    assert connect.index("benchdialled),NoOp") < connect.index("DIALSTATUS")
    with pytest.raises(Exception, match="hotline-connect"):
        patch_extensions(RENDERED.replace("U(hotline-record^${HOTLINE_SKILL})", ""), 30, prompts)


# ------------------------------------------------------------------------------ ports


def test_no_asterisks_rtp_range_holds_a_test_callers_sipp_port() -> None:
    """Tests run beside a benchmark (or `make up`): an Asterisk that takes a test caller's
    SIPp port for RTP makes that caller fail to start, at random (seen: the capacity bench's
    43000-47999 held slot 3's media ports, and test_standby.py lost calls beside a soak)."""
    import tomllib
    from pathlib import Path

    from bench import acd, capacity
    from tests.faults import conftest as faults
    from tests.integration import conftest as integration
    from tests.support.ports import SLOT
    from tests.support.sipp import uac_ports

    up = tomllib.loads((Path(__file__).parents[2] / "hotline.toml").read_text("utf-8"))["pbx"]
    ranges = {"bench capacity": capacity.RTP_RANGE, "bench acd": acd.RTP_RANGE,
              "make up": (up["rtp_start"], up["rtp_end"])}
    for slot in range(6):  # the test Asterisks' own ranges, 250 a slot from their base
        base_it = integration.RTP_START + 250 * (slot - SLOT)
        base_f = faults.RTP_START + 250 * (slot - SLOT)
        ranges[f"integration slot {slot}"] = (base_it, base_it + 249)
        ranges[f"faults slot {slot}"] = (base_f, base_f + 249)
    taken = []
    for n in range(600):
        sip, media, ctrl = uac_ports(n)
        for p in (sip, ctrl, *range(media, media + 4)):
            taken += [(who, p) for who, (lo, hi) in ranges.items() if lo <= p <= hi]
    assert taken == []
