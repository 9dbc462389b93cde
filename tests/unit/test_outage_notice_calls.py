"""Planned-outage notice calls (issue 14 §4), the pure part (outages.notice_calls): who is called
(the important customers the outage's scope covers, nobody else), when (each lead, until the
next is due), idempotence (reconcile against the jobs already made), what is said, and the
[outbound] outage_notice_days setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from config.outbound import outbound_settings
from ivr.say import render_text
from outages.notice_calls import (
    PHRASES,
    Customer,
    Existing,
    NoticeCall,
    PlannedOutage,
    check_lead_days,
    reconcile,
    speech,
    wanted,
    windows,
)
from outages.scope import Cause, Place, Scope
from prompts.catalog import load_catalog

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)            # 10:00 in Shanghai
START = datetime(2026, 12, 10, 0, 0, tzinfo=UTC)         # 08:00 on the 10th, 4 days ahead
AREA, OTHER = 1, 2
HOSPITAL = Customer("0101000001", "13900000001", Place(AREA, 11))
LIFE = Customer("0101000002", "13900000002", Place(AREA, None, "西王庄1号台区"), "en")
FAR = Customer("0102000003", "13900000003", Place(OTHER, 21))
CATALOG = Path(__file__).resolve().parents[2] / "prompts" / "catalog"


def outage(start: datetime = START, *, areas: frozenset[int] = frozenset({AREA}),
           callable_: bool = True) -> PlannedOutage:
    return PlannedOutage(7, Scope(areas=areas), start, callable=callable_)


def test_each_lead_is_due_from_its_day_until_the_next_is() -> None:
    [(seven, due7, until7), (one, due1, until1)] = windows(START, [1, 7, 7])
    assert (seven, due7, until7) == (7, START - timedelta(days=7), START - timedelta(days=1))
    assert (one, due1, until1) == (1, START - timedelta(days=1), START)


def test_only_the_covered_important_customers_are_called_at_each_lead_not_over() -> None:
    calls = wanted(outage(), [HOSPITAL, LIFE, FAR], (7, 1), NOW)
    # 4 days ahead: the 7-day call is due now (late, still worth it), the 1-day call later
    assert sorted((c.account_no, c.lead_days) for c in calls) == [
        ("0101000001", 1), ("0101000001", 7), ("0101000002", 1), ("0101000002", 7)]
    first = next(c for c in calls if c.account_no == LIFE.account_no and c.lead_days == 7)
    assert first.not_before <= NOW < first.expires_at == START - timedelta(days=1)
    assert first.lang == "en" and first.number == LIFE.number


def test_an_outage_half_a_day_ahead_gets_only_the_one_day_call() -> None:
    calls = wanted(outage(NOW + timedelta(hours=12)), [HOSPITAL], (7, 1), NOW)
    assert [(c.lead_days, c.not_before <= NOW, c.expires_at) for c in calls] == [
        (1, True, NOW + timedelta(hours=12))]


def test_nobody_is_called_about_an_outage_begun_or_not_callable() -> None:
    assert wanted(outage(NOW), [HOSPITAL], (7, 1), NOW) == []
    assert wanted(outage(callable_=False), [HOSPITAL], (7, 1), NOW) == []
    assert wanted(outage(), [HOSPITAL], (), NOW) == []
    assert wanted(outage(areas=frozenset({OTHER})), [HOSPITAL, LIFE], (7, 1), NOW) == []


def _have(calls: list[NoticeCall], state: str = "scheduled", first_id: int = 1
          ) -> list[Existing]:
    return [Existing(first_id + i, c.key, state, c.not_before, c.expires_at)
            for i, c in enumerate(calls)]


def test_reconcile_is_idempotent_a_second_pass_changes_nothing() -> None:
    calls = wanted(outage(), [HOSPITAL, LIFE], (7, 1), NOW)
    first = reconcile(calls, [])
    assert len(first.create) == 4 and not first.move and not first.cancel
    again = reconcile(wanted(outage(), [HOSPITAL, LIFE], (7, 1), NOW + timedelta(minutes=1)),
                      _have(calls))
    assert not again
    # a done or dialling call is never made again, whatever the pass
    over = reconcile(calls, _have(calls, "done"))
    assert not over and len(over.kept) == 4


def test_a_moved_outage_moves_its_scheduled_calls_and_a_closed_one_cancels_them() -> None:
    calls = wanted(outage(), [HOSPITAL], (7, 1), NOW)
    have = _have(calls)
    later = START + timedelta(days=1)
    moved = reconcile(wanted(outage(later), [HOSPITAL], (7, 1), NOW), have)
    assert [j for j, _ in moved.move] == [1, 2] and not moved.create and not moved.cancel
    assert {c.expires_at for _, c in moved.move} == {later - timedelta(days=1), later}
    gone = reconcile([], have)   # closed, cancelled, begun, or no longer planned
    assert gone.cancel == (1, 2) and not gone.create
    # one already being dialled is left to end
    assert reconcile([], _have(calls, "dialing")).cancel == ()


def test_scope_changes_cancel_the_left_out_and_call_the_new_and_revive_the_returned() -> None:
    calls = wanted(outage(), [HOSPITAL], (7, 1), NOW)
    have = _have(calls)
    other = reconcile(wanted(outage(areas=frozenset({OTHER})), [HOSPITAL, FAR], (7, 1), NOW),
                      have)
    assert other.cancel == (1, 2)
    assert sorted(c.account_no for c in other.create) == [FAR.account_no] * 2
    back = reconcile(calls, _have(calls, "cancelled"))
    assert [j for j, _ in back.move] == [1, 2] and not back.create


def test_lead_days_are_checked() -> None:
    assert check_lead_days([1, 7, 3, 7]) == (7, 3, 1)
    for bad in ([0], [31], [True], ["7"]):
        with pytest.raises(ValueError):
            check_lead_days(bad)  # type: ignore[arg-type]


def test_the_setting_defaults_to_seven_and_one_days_and_rejects_bad_lists() -> None:
    assert outbound_settings({}).outage_notice_days == (7, 1)
    assert outbound_settings({"outage_notice_days": [1, 3]}).outage_notice_days == (3, 1)
    assert outbound_settings({"outage_notice_days": []}).outage_notice_days == ()
    for bad in (7, [0], [1.5], ["1"], [True]):
        with pytest.raises(ValueError, match="outage_notice_days"):
            outbound_settings({"outage_notice_days": bad})


def test_the_notice_says_the_area_date_and_window_in_mandarin_and_english() -> None:
    catalog = load_catalog(CATALOG)
    end = START + timedelta(hours=9)   # 17:00 the same day
    now = START - timedelta(days=1, hours=2)   # the day before, so "tomorrow"
    zh = speech(Cause.PLANNED, START, end, "0101009876", "zh", now, SH)
    assert render_text(zh, catalog, "zh") == (
        "您好，这里是国家电网九五五九八供电服务热线，现向您通知计划停电信息。您尾号为九八七六的户号所在区域"
        "因计划检修，将于明天上午八点整至下午五点整停电。请您提前做好停电准备。")
    en = speech(Cause.PLANNED, START, end + timedelta(days=1), "0101009876", "en", now, SH)
    text = render_text(en, catalog, "en")
    assert "account ending in nine eight seven six" in text
    assert "from tomorrow at eight a.m. until December eleventh at five p.m." in text
    # every id has a recording's text in its language
    assert all(catalog.has(p, "en") for p in en) and all(catalog.has(p, "zh") for p in zh)


def test_the_notice_phrases_are_in_the_catalog_as_written() -> None:
    catalog = load_catalog(CATALOG)
    assert {(pid, lang): catalog.text(pid, lang) for pid in PHRASES for lang in PHRASES[pid]} \
        == {(pid, lang): PHRASES[pid][lang] for pid in PHRASES for lang in PHRASES[pid]}
    assert all(set(PHRASES[p]) == {"zh", "en"} for p in PHRASES if p != "notice.power_off")
