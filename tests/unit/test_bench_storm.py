"""`hotline bench storm`'s pure parts: the callers, each call's one outcome, the outcome table,
the service level for callers who needed an agent, the deflection's saving, the cross-check
with SIPp and the idle-before/after check."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.capacity import max_erlangs
from bench.storm import (
    OUTCOMES,
    CallFacts,
    Mix,
    agents_needed,
    baseline_conf,
    classify,
    deflection_saving,
    flatness,
    injection_rows,
    make_callers,
    service_figures,
    sipp_cross_check,
    storm_rate,
    tally,
)


def call(uid: str = "1.1", /, **kw: object) -> CallFacts:
    f = CallFacts(uid=uid, channel=f"PJSIP/carrier-{uid}", number="18800000001", started=100.0)
    f.ended = 200.0
    for k, v in kw.items():
        setattr(f, k, v)
    return f


def test_the_storm_rate_is_the_multiple_of_the_80_20_load() -> None:
    base = max_erlangs(50, 180.0) / 180.0
    assert storm_rate(50, 10) == pytest.approx(10 * base)
    assert 0.2 < base < 0.3  # about 45 erlangs for 50 agents at 180 s


def test_the_callers_are_seeded_mixed_and_unique() -> None:
    mix = Mix(outage_share=0.75, deflect_share=0.6, callback_share=0.2)
    a = make_callers(2.5, 10, 7, mix)
    assert a == make_callers(2.5, 10, 7, mix)
    assert len(a) == 1500
    assert [c.arrival_s for c in a] == sorted(c.arrival_s for c in a)
    assert len({c.number for c in a}) == len(a)
    kinds = Counter(c.kind for c in a)
    outage = kinds[1] + kinds[2] + kinds[3]
    assert 0.70 < outage / len(a) < 0.80
    assert 0.55 < kinds[1] / outage < 0.65
    assert all(30 <= c.patience_s <= 120 for c in a)
    assert all(c.on_outage == (c.kind in (1, 2, 3)) for c in a)


def test_injection_rows_pause_each_caller_until_its_arrival() -> None:
    a = make_callers(1.0, 1, 1, Mix())
    rows = injection_rows(a, launch_rate=10, lead_s=2.0).splitlines()
    assert rows[0] == "SEQUENTIAL"
    pause, number, kind, _ = rows[2].split(";")
    assert int(pause) == round((2.0 + a[1].arrival_s - 0.1) * 1000)
    assert (number, int(kind)) == (a[1].number, a[1].kind)


@pytest.mark.parametrize(("facts", "outcome"), [
    ({"answered": 150.0, "joined": 120.0}, "answered"),
    ({"record_outcome": "deflected", "record_ended": True, "has_record": True}, "deflected"),
    ({"callback": True, "joined": 120.0}, "callback"),
    ({"busy": True, "joined": 120.0}, "told_full"),
    ({"joined": 120.0, "patience_hangup": True}, "abandoned"),
    ({"record_outcome": "hangup"}, "abandoned"),
])
def test_each_call_has_one_outcome(facts: dict[str, object], outcome: str) -> None:
    assert classify(call(**facts)) == (outcome, [])


def test_a_call_with_two_outcomes_or_no_end_is_a_problem() -> None:
    assert classify(call(busy=True, answered=150.0)) == (None, ["several_outcomes"])
    outcome, wrong = classify(call(ended=None, has_record=True, record_ended=False))
    assert outcome == "abandoned" and wrong == ["not_ended", "record_open"]
    assert classify(call(has_record=False))[1] == ["no_record"]
    assert classify(call(fell_back=True, answered=1.0))[1] == ["fell_back"]
    # the record says answered, Asterisk never saw a seat answer
    assert classify(call(record_answered=True))[1] == ["record_mismatch"]
    # a callback's record is answered when the agent takes the callback: no mismatch
    assert classify(call(callback=True, record_answered=True)) == ("callback", [])


def test_the_table_adds_up_to_the_calls_offered() -> None:
    facts = [call("1", answered=130.0, joined=120.0), call("2", busy=True),
             call("3", record_outcome="deflected"), call("4", callback=True),
             call("5", joined=120.0)]
    t = tally(facts, offered=5)
    assert t["outcomes"] == dict.fromkeys(OUTCOMES, 1)
    assert (t["adds_up"], t["exactly_one_each"], t["lost"]) == (True, True, 0)


def test_an_unseen_or_unended_call_is_lost_and_does_not_add_up() -> None:
    t = tally([call("1", answered=130.0), call("2", ended=None)], offered=3)
    assert t["lost"] == 2  # one never reached Asterisk, one never ended
    assert not t["adds_up"]
    t = tally([call("1", answered=130.0, busy=True)], offered=1)
    assert (t["adds_up"], t["exactly_one_each"]) == (False, False)


def test_service_level_counts_only_the_callers_who_needed_an_agent() -> None:
    facts = [call("1", joined=100.0, answered=110.0),  # 10 s: within 20
             call("2", joined=100.0, answered=150.0),  # 50 s
             call("3", joined=100.0, busy=True),
             call("4", record_outcome="deflected"),  # did not need an agent
             call("5", joined=100.0)]  # abandoned
    sl = service_figures(facts)
    assert (sl["needed_agent"], sl["joined_queue"], sl["answered"]) == (4, 4, 2)
    assert sl["answered_within"] == 1
    assert sl["service_level_needed"] == 0.25
    assert sl["answered_share_needed"] == 0.5
    assert sl["wait_s_max"] == 50.0


def test_deflection_saving_in_agents() -> None:
    # 600 deflected calls of 180 s over 10 minutes: 180 agents busy all the time
    out = deflection_saving(600, 1500, 600.0, handle_s=180.0)
    assert out["agents_of_work"] == 180.0
    assert out["agents_staffed_all"] == agents_needed(450.0)
    assert out["agents_staffed_saved"] == agents_needed(450.0) - agents_needed(270.0)
    assert out["agents_staffed_saved"] > 0
    assert deflection_saving(0, 0, 600.0)["agents_of_work"] is None


def test_agents_needed_meets_the_service_level() -> None:
    from bench.capacity import service_level

    n = agents_needed(45.0)
    assert service_level(n, 45.0, 180.0, 20.0) >= 0.8 > service_level(n - 1, 45.0, 180.0, 20.0)


def test_sipp_must_agree_with_the_table() -> None:
    t = tally([call("1", answered=1.0), call("2", busy=True)], offered=2)
    assert sipp_cross_check(t, {"created": 2, "completed": 2, "failed": 0})["agrees"]
    assert not sipp_cross_check(t, {"created": 2, "completed": 1, "failed": 1})["agrees"]
    assert not sipp_cross_check(t, {"created": 3, "completed": 3, "failed": 0})["agrees"]


def test_flat_after_means_fds_back_and_everything_empty() -> None:
    before = {"fds_cti": 100, "fds_asterisk": 80, "rss_cti_kib": 90_000,
              "rss_asterisk_kib": 50_000}
    after = {**before, "fds_cti": 103, "rss_cti_kib": 95_000, "channels": 0, "mqtt_outbox": 0,
             "acd_queues": 0, "acd_call_maps": 0, "db_checked_out": 0}
    out = flatness(before, after)
    assert out["verdict"] == "pass"
    assert out["rss_kib_delta"]["rss_cti_kib"] == 5000
    assert flatness(before, {**after, "fds_cti": 120})["not_flat"] == ["fds_cti"]
    assert flatness(before, {**after, "channels": 2})["not_flat"] == ["channels"]


def test_the_baseline_queue_is_app_queue_at_its_best_with_maxlen() -> None:
    conf = baseline_conf(["seat51", "seat52"], 30, 1)
    assert "[hotline-bench-storm]\nmaxlen = 30\n" in conf
    assert "member => PJSIP/seat51,0,seat51,PJSIP/seat51" in conf
    assert "announce-frequency = 0" in conf and "retry = 1" in conf
