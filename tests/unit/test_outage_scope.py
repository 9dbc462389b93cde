"""outages.scope: causes, scopes, when a notice counts, the index and its cache."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from outages.scope import (
    CAUSES,
    Cause,
    IndexCache,
    InvalidNotice,
    Notice,
    NoticeIndex,
    Place,
    PlaceGroup,
    Scope,
)

T0 = datetime(2026, 7, 14, 6, 0, tzinfo=UTC)
H = timedelta(hours=1)


def fault(nid: int, scope: Scope, *, closed_at: datetime | None = None,
          awaiting_confirmation: bool = False) -> Notice:
    return Notice(nid, Cause.FAULT, scope, T0 - H, closed_at=closed_at,
                  awaiting_confirmation=awaiting_confirmation)


def planned(nid: int, scope: Scope, start: datetime = T0 - H, hours: float = 4) -> Notice:
    return Notice(nid, Cause.PLANNED, scope, start, schedule_end_at=start + hours * H)


AREA1 = Scope(areas=frozenset({1}))
FEEDER10 = Scope(feeders=frozenset({10}))
TA_EAST = Scope(transformer_areas=frozenset({(1, "东街台区")}))


# ------------------------------------------------------------------------ causes and scopes


def test_every_cause_has_a_phrase_labels_and_a_db_kind() -> None:
    assert set(CAUSES) == set(Cause)
    for info in CAUSES.values():
        assert info.phrase.startswith("outage.cause.") and info.label_zh and info.label_en
        assert info.db_kind in ("planned", "fault")
        assert not (info.scheduled and info.fault)
    assert CAUSES[Cause.STORM_REPAIR].fault and CAUSES[Cause.PLANNED].scheduled


def test_a_scope_needs_something_and_a_named_transformer_area() -> None:
    with pytest.raises(InvalidNotice, match="needs a scope"):
        Scope()
    with pytest.raises(InvalidNotice, match="needs a name"):
        Scope(transformer_areas=frozenset({(1, "  ")}))
    assert Scope(transformer_areas=frozenset({(1, " 东街台区 ")})) == TA_EAST


def test_a_transformer_area_is_named_within_its_area() -> None:
    assert TA_EAST.covers(Place(1, None, "东街台区"))
    assert TA_EAST.covers(Place(1, 99, " 东街台区"))
    assert not TA_EAST.covers(Place(2, None, "东街台区"))  # same name, other area
    assert not TA_EAST.covers(Place(1, None, None))


# ------------------------------------------------------------------------ notices


def test_notice_rejects_naive_times_bad_windows_and_unscheduled_plans() -> None:
    with pytest.raises(ValueError, match="naive"):
        Notice(1, Cause.FAULT, AREA1, datetime(2026, 7, 14, 6))
    with pytest.raises(InvalidNotice, match="before its start"):
        Notice(1, Cause.FAULT, AREA1, T0, expected_restore_at=T0 - H)
    with pytest.raises(InvalidNotice, match="schedule"):
        Notice(1, Cause.PLANNED, AREA1, T0)
    with pytest.raises(InvalidNotice, match="schedule"):
        Notice(1, Cause.LOAD_LIMITING, AREA1, T0, schedule_end_at=T0)


def test_a_fault_counts_once_started_and_even_past_its_expected_restoration() -> None:
    n = Notice(1, Cause.FAULT, AREA1, T0, expected_restore_at=T0 + H)
    assert not n.counts_at(T0 - timedelta(seconds=1))
    assert n.counts_at(T0)
    assert n.counts_at(T0 + 5 * H)


def test_planned_work_counts_only_while_its_window_is_in_progress() -> None:
    n = planned(1, AREA1, start=T0, hours=2)
    assert not n.counts_at(T0 - timedelta(seconds=1))   # announced ahead, not yet in progress
    assert n.counts_at(T0)
    assert n.counts_at(T0 + 2 * H - timedelta(seconds=1))
    assert not n.counts_at(T0 + 2 * H)                 # the window's end is outside
    assert n.restore_at == T0 + 2 * H


def test_closed_and_unconfirmed_notices_never_count() -> None:
    assert not fault(1, AREA1, closed_at=T0 + H).counts_at(T0)   # closed, whatever the time
    assert not fault(1, AREA1, awaiting_confirmation=True).counts_at(T0)


# ------------------------------------------------------------------------ the index


def test_the_index_finds_notices_by_area_feeder_and_transformer_area() -> None:
    idx = NoticeIndex([fault(1, AREA1), fault(2, FEEDER10), fault(3, TA_EAST),
                       fault(4, Scope(areas=frozenset({2})))], version=1)
    assert [n.id for n in idx.covering(Place(1, 10, "东街台区"), T0)] == [1, 2, 3]
    assert [n.id for n in idx.covering(Place(1, 11, "西街台区"), T0)] == [1]
    assert [n.id for n in idx.covering(Place(3, 10), T0)] == [2]
    assert idx.covering(Place(3), T0) == ()


def test_a_notice_on_both_the_area_and_the_feeder_is_found_once() -> None:
    both = fault(1, Scope(areas=frozenset({1}), feeders=frozenset({10}),
                          transformer_areas=frozenset({(1, "东街台区")})))
    idx = NoticeIndex([both], version=1)
    assert idx.covering(Place(1, 10, "东街台区"), T0) == (both,)


def test_faults_are_listed_before_planned_work_then_by_start() -> None:
    p = planned(1, AREA1, start=T0 - 2 * H)
    late = Notice(2, Cause.STORM_REPAIR, AREA1, T0 - H)
    early = Notice(3, Cause.FAULT, AREA1, T0 - 3 * H)
    idx = NoticeIndex([p, late, early], version=1)
    assert [n.id for n in idx.covering(Place(1), T0)] == [3, 2, 1]


def test_the_index_drops_closed_notices_and_refuses_duplicate_ids() -> None:
    idx = NoticeIndex([fault(1, AREA1, closed_at=T0), fault(2, AREA1)], version=3)
    assert len(idx) == 1 and idx.get(1) is None and idx.get(2) is not None
    with pytest.raises(InvalidNotice, match="twice"):
        NoticeIndex([fault(1, AREA1), fault(1, FEEDER10)], version=1)


def test_planned_windows_are_checked_at_query_time_not_build_time() -> None:
    idx = NoticeIndex([planned(1, AREA1, start=T0 + H, hours=1)], version=1)
    assert idx.covering(Place(1), T0) == ()
    assert len(idx.covering(Place(1), T0 + H)) == 1
    assert idx.covering(Place(1), T0 + 2 * H) == ()


def test_active_and_active_faults_for_the_board_and_storm_mode() -> None:
    idx = NoticeIndex([fault(1, AREA1), planned(2, FEEDER10),
                       Notice(3, Cause.STORM_REPAIR, TA_EAST, T0 - H),
                       planned(4, AREA1, start=T0 + H)], version=1)
    assert [n.id for n in idx.active(T0)] == [1, 3, 2]
    assert idx.active_faults(T0) == 2


# ------------------------------------------------------------------------ a caller's accounts


def test_accounts_hearing_the_same_notices_form_one_group() -> None:
    n1, n2 = fault(1, AREA1), fault(2, FEEDER10)
    idx = NoticeIndex([n1, n2], version=1)
    groups = idx.for_accounts({
        "0000000001": Place(1, 10),       # home: area-wide fault and its feeder
        "0000000002": Place(1, 11),       # shop in the same area, other feeder
        "0000000003": Place(1, 10, "X"),  # a second meter at home
        "0000000004": Place(9),           # no outage: left out
    }, T0)
    assert groups == (
        PlaceGroup(("0000000001", "0000000003"), (n1, n2)),
        PlaceGroup(("0000000002",), (n1,)),
    )


def test_accounts_in_different_places_under_one_notice_hear_it_once() -> None:
    idx = NoticeIndex([fault(1, AREA1)], version=1)
    groups = idx.for_accounts({"0000000001": Place(1, 10), "0000000002": Place(1, 11)}, T0)
    assert len(groups) == 1 and groups[0].accounts == ("0000000001", "0000000002")
    assert idx.for_accounts({}, T0) == ()


def _random_notice(rng: random.Random, nid: int) -> Notice:
    pick = rng.random()
    if pick < 0.1:
        scope = Scope(areas=frozenset({rng.randrange(50)}))
    elif pick < 0.5:
        scope = Scope(feeders=frozenset(rng.sample(range(1000), rng.randint(1, 3))))
    else:
        scope = Scope(transformer_areas=frozenset(
            (rng.randrange(50), f"台区{rng.randrange(40)}") for _ in range(rng.randint(1, 4))))
    if rng.random() < 0.3:
        start = T0 + rng.randint(-10, 10) * H
        return Notice(nid, Cause.PLANNED, scope, start, schedule_end_at=start + 4 * H)
    return Notice(nid, rng.choice([Cause.FAULT, Cause.STORM_REPAIR]), scope,
                  T0 - rng.randint(0, 5) * H, closed_at=T0 if rng.random() < 0.1 else None)


def test_5000_accounts_and_500_notices_match_a_brute_force_scan() -> None:
    rng = random.Random(95598)
    notices = [_random_notice(rng, i) for i in range(500)]
    accounts = {}
    for i in range(5000):
        area = rng.randrange(50)
        accounts[f"{i:010d}"] = Place(
            area, area * 20 + rng.randrange(20) if rng.random() < 0.9 else None,
            f"台区{rng.randrange(40)}" if rng.random() < 0.8 else None)
    idx = NoticeIndex(notices, version=1)
    heard = 0
    for account_no, place in accounts.items():
        expected = sorted(n.id for n in notices if n.scope.covers(place) and n.counts_at(T0))
        got = idx.covering(place, T0)
        assert sorted(n.id for n in got) == expected, account_no
        heard += bool(got)
    assert 500 < heard < 5000  # the sample exercises both answers
    groups = idx.for_accounts(accounts, T0)
    assert sum(len(g.accounts) for g in groups) == heard
    assert len({tuple(n.id for n in g.notices) for g in groups}) == len(groups)


# ------------------------------------------------------------------------ the cache


def test_the_cache_rebuilds_only_when_the_version_changes() -> None:
    loads: list[int] = []
    current = [fault(1, AREA1)]

    def load() -> list[Notice]:
        loads.append(1)
        return list(current)

    cache = IndexCache()
    first = cache.get(1, load)
    assert cache.get(1, load) is first and len(loads) == 1
    current.append(fault(2, FEEDER10))
    assert len(cache.get(1, load)) == 1       # same version: the notices are not read
    second = cache.get(2, load)
    assert len(second) == 2 and second.version == 2 and len(loads) == 2
