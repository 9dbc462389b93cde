"""outages.incidents: N fault reports on one feeder or 台区 in a window open a suspected outage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from outages.incidents import (
    DetectedScope,
    DetectionSettings,
    Detector,
    IncidentError,
    LinkTarget,
    Mode,
    ReportOutcome,
    SuspectedOutage,
)
from outages.scope import Cause, Notice, Place, Scope

T0 = datetime(2026, 7, 14, 6, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
AUTO = DetectionSettings(mode=Mode.AUTO)
FEEDER_7 = DetectedScope("feeder", 1, feeder_id=7)
TA_EAST = DetectedScope("transformer_area", 1, transformer_area="东街台区")


def feed(d: Detector, place: Place, n: int, *, start: datetime = T0, step: timedelta = MIN,
         prefix: str = "r") -> list[ReportOutcome]:
    return [d.report(start + i * step, place, f"{prefix}{i}") for i in range(n)]


def test_settings_are_checked() -> None:
    assert DetectionSettings() == DetectionSettings(5, timedelta(minutes=15), Mode.CONFIRM)
    with pytest.raises(ValueError, match="threshold"):
        DetectionSettings(threshold=1)
    with pytest.raises(ValueError, match="window"):
        DetectionSettings(window=timedelta(0))


def test_exactly_n_reports_open_one_suspected_outage_on_the_feeder() -> None:
    d = Detector(AUTO)
    out = feed(d, Place(1, 7), 5)
    assert [o.opened for o in out[:4]] == [None] * 4 and all(o.link is None for o in out[:4])
    s = out[4].opened
    assert s is not None and s.scope == FEEDER_7 and s.announced
    assert s.reports == ("r0", "r1", "r2", "r3", "r4") and s.master_report == "r0"
    assert s.opened_at == T0 + 4 * MIN
    assert out[4].link == LinkTarget(suspected_seq=s.seq, master_order="r0")
    assert d.counted() == 0  # the reports that opened it left the count


def test_later_reports_on_the_scope_link_to_it_and_do_not_open_another() -> None:
    d = Detector(AUTO)
    s = feed(d, Place(1, 7), 5)[-1].opened
    assert s is not None
    later = feed(d, Place(1, 7, "西街台区"), 10, start=T0 + 10 * MIN, prefix="x")
    assert all(o.opened is None for o in later)
    assert {o.link for o in later} == {LinkTarget(suspected_seq=s.seq, master_order="r0")}
    assert d.open_outages == (s,) and d.counted() == 0


def test_four_reports_are_not_enough() -> None:
    d = Detector(AUTO)
    assert all(o.opened is None for o in feed(d, Place(1, 7), 4))
    assert not d.open_outages and d.counted() == 4


def test_the_window_boundary_is_inside() -> None:
    window = timedelta(minutes=15)
    d = Detector(AUTO)
    # five reports whose first is exactly `window` before the last: they open it
    assert feed(d, Place(1, 7), 5, step=window / 4)[-1].opened is not None
    e = Detector(AUTO)
    # one second more and the first has fallen out: four count
    out = feed(e, Place(1, 7), 5, step=window / 4 + timedelta(seconds=1) / 4)
    assert out[-1].opened is None and e.counted() == 4


def test_old_reports_fall_out_so_memory_stays_bounded() -> None:
    d = Detector(AUTO)
    # a report every 4 minutes on 1000 different feeders: never 5 in a window on any of them
    for i in range(1000):
        d.report(T0 + i * 4 * MIN, Place(1, i), f"r{i}")
    assert d.counted() == 4            # those of the last 15 minutes (at 0, 4, 8, 12 before)
    d.expire(T0 + 2000 * 4 * MIN)
    assert d.counted() == 0


def test_two_scopes_count_apart() -> None:
    d = Detector(AUTO)
    for i in range(4):
        d.report(T0 + i * MIN, Place(1, 7), f"a{i}")
        d.report(T0 + i * MIN, Place(1, 8), f"b{i}")
    assert not d.open_outages
    s = d.report(T0 + 5 * MIN, Place(1, 8), "b4").opened
    assert s is not None and s.scope == DetectedScope("feeder", 1, feeder_id=8)
    assert d.report(T0 + 6 * MIN, Place(1, 7), "a4").opened is not None
    assert [o.seq for o in d.open_outages] == [1, 2]


def test_transformer_area_wins_over_its_feeder_when_both_reach_n() -> None:
    d = Detector(AUTO)
    out = feed(d, Place(1, 7, "东街台区"), 5)
    s = out[-1].opened
    assert s is not None and s.scope == TA_EAST
    assert s.scope.to_scope() == Scope(transformer_areas=frozenset({(1, "东街台区")}))
    # the feeder count was emptied too: four reports from elsewhere on it do not open it
    assert all(o.link is None for o in feed(d, Place(1, 7, "西街台区"), 4, prefix="w"))
    assert len(d.open_outages) == 1


def test_a_feeder_opens_on_reports_from_several_transformer_areas() -> None:
    d = Detector(AUTO)
    places = [Place(1, 7, "东街台区"), Place(1, 7, "西街台区"), Place(1, 7, None)]
    outs = [d.report(T0 + i * MIN, places[i % 3], f"r{i}") for i in range(5)]
    s = outs[-1].opened
    assert s is not None and s.scope == FEEDER_7
    # the 台区 counts lost the reports the feeder explained; new reports there link to it
    assert d.counted() == 0
    assert d.report(T0 + 6 * MIN, places[0], "r6").link == LinkTarget(
        suspected_seq=s.seq, master_order="r0")


def test_reports_without_a_feeder_count_for_their_transformer_area_only() -> None:
    d = Detector(AUTO)
    s = feed(d, Place(1, None, "东街台区"), 5)[-1].opened
    assert s is not None and s.scope == TA_EAST
    # a report on a feeder inside that 台区 links to it; the same name in another area does not
    assert d.report(T0 + 6 * MIN, Place(1, 7, "东街台区"), "x").link is not None
    assert d.report(T0 + 6 * MIN, Place(2, None, "东街台区"), "y").link is None


def test_reports_with_neither_feeder_nor_transformer_area_are_never_counted() -> None:
    d = Detector(AUTO)
    out = feed(d, Place(1), 20)
    assert all(o == ReportOutcome(o.report_id, None) for o in out) and d.counted() == 0


def test_a_report_inside_a_published_notice_links_to_its_master_order() -> None:
    n = Notice(42, Cause.FAULT, Scope(feeders=frozenset({7})), T0 - MIN,
               master_order="26071400001")
    planned = Notice(41, Cause.PLANNED, Scope(areas=frozenset({1})), T0 - MIN,
                     schedule_end_at=T0 + 60 * MIN)
    d = Detector(AUTO)
    for i in range(10):
        o = d.report(T0 + i * MIN, Place(1, 7), f"r{i}", covering=(planned, n))
        assert o.link == LinkTarget(notice_id=42, master_order="26071400001") and not o.opened
    assert d.counted() == 0
    o = d.report(T0, Place(1, 8), "p", covering=(planned,))
    assert o.link == LinkTarget(notice_id=41, master_order=None)


def test_confirm_mode_waits_for_a_supervisor() -> None:
    d = Detector(DetectionSettings())
    s = feed(d, Place(1, 7), 5)[-1].opened
    assert s is not None and not s.announced and d.pending() == (s,)
    # reports still link to it while it waits: the crew has one master order
    assert d.report(T0 + 6 * MIN, Place(1, 7), "x").link is not None
    c = d.confirm(s.seq, "sup01", T0 + 7 * MIN)
    assert c.announced and c.confirmed_by == "sup01" and d.pending() == ()
    with pytest.raises(IncidentError, match="already"):
        d.confirm(s.seq, "sup02", T0 + 8 * MIN)


def test_closing_lets_the_scope_count_again() -> None:
    d = Detector(AUTO)
    s = feed(d, Place(1, 7), 5)[-1].opened
    assert s is not None
    assert d.close(s.seq, T0 + 30 * MIN) == s and not d.open_outages
    with pytest.raises(IncidentError, match="no open"):
        d.close(s.seq, T0 + 31 * MIN)
    with pytest.raises(IncidentError, match="no open"):
        d.confirm(99, "sup01", T0 + 31 * MIN)
    again = feed(d, Place(1, 7), 5, start=T0 + 40 * MIN, prefix="n")
    assert again[3].link is None and again[4].opened is not None
    assert again[4].opened.seq == s.seq + 1


def test_a_repeated_report_is_counted_once() -> None:
    d = Detector(AUTO)
    for _ in range(6):
        assert d.report(T0, Place(1, 7), "same").opened is None
    assert d.counted() == 1


def test_time_never_runs_backwards() -> None:
    d = Detector(AUTO)
    d.report(T0 + 20 * MIN, Place(1, 7), "late-clock")
    out = d.report(T0, Place(1, 8), "early")  # counted as arriving at T0 + 20 min
    assert out.link is None and d.counted() == 2
    d.expire(T0 + 35 * MIN)
    assert d.counted() == 2
    d.expire(T0 + 35 * MIN + timedelta(seconds=1))
    assert d.counted() == 0
    with pytest.raises(ValueError, match="naive"):
        d.report(datetime(2026, 7, 14), Place(1, 7), "z")


def test_deterministic_and_restorable_after_a_restart() -> None:
    def run() -> tuple[SuspectedOutage, ...]:
        d = Detector(AUTO)
        for i in range(40):
            d.report(T0 + i * 20 * timedelta(seconds=1), Place(1, i % 4, f"T{i % 3}"), f"r{i}")
        return d.open_outages

    first = run()
    assert first == run() and first
    restarted = Detector(AUTO, open_outages=first)
    s = first[0]
    place = Place(1, s.scope.feeder_id, s.scope.transformer_area)
    assert restarted.report(T0 + 30 * MIN, place, "new").link == LinkTarget(
        suspected_seq=s.seq, master_order=s.master_report)
    fresh = feed(restarted, Place(9, 99), 5, start=T0 + 30 * MIN, prefix="f")[-1].opened
    assert fresh is not None and fresh.seq == max(o.seq for o in first) + 1
