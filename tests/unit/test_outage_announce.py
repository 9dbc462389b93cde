"""outages.announce: the prompt ids a caller with a known outage hears before the menu."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from ivr.say import render_text, say_datetime, say_digits
from outages.announce import (
    MAX_NOTICES_PER_PLACE,
    MAX_PLACES_SPOKEN,
    PHRASES,
    announcement,
    missing_phrases,
)
from outages.scope import CAUSES, Cause, Notice, PlaceGroup, Scope
from prompts.catalog import Catalog, load_catalog

CATALOG_DIR = Path(__file__).resolve().parents[2] / "prompts" / "catalog"
EXISTING = load_catalog(CATALOG_DIR)
# what the IVR could play once PHRASES are added to the catalog
WITH_PHRASES = Catalog({**{i: {lang: EXISTING.text(i, lang) for lang in ("zh", "en")
                               if EXISTING.has(i, lang)} for i in EXISTING.ids()},
                        **PHRASES})
# the catalog as it was before the phrases were added (prompts/catalog/outage.yaml)
BEFORE = Catalog({i: {lang: EXISTING.text(i, lang) for lang in ("zh", "en")
                      if EXISTING.has(i, lang)} for i in EXISTING.ids() if i not in PHRASES})
CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 7, 14, 6, 0, tzinfo=UTC)  # 14:00 in Beijing
H = timedelta(hours=1)
AREA = Scope(areas=frozenset({1}))


def notice(nid: int = 1, cause: Cause = Cause.FAULT, *, restore: datetime | None = NOW + 1.5 * H,
           order: str | None = "26071400012", text: str = "") -> Notice:
    start = NOW - H
    end = start + 6 * H if CAUSES[cause].scheduled else None
    return Notice(nid, cause, AREA, start, expected_restore_at=restore, schedule_end_at=end,
                  master_order=order, agent_text=text)


def one(*notices: Notice, account: str = "3701000001") -> list[PlaceGroup]:
    return [PlaceGroup((account,), notices)]


def test_no_outage_means_no_announcement() -> None:
    assert announcement([], "zh", NOW) is None
    assert announcement([PlaceGroup(("3701000001",), ())], "zh", NOW) is None


def test_a_fault_with_an_order_is_told_with_its_local_restoration_time() -> None:
    a = announcement(one(notice()), "zh", NOW, CST)
    assert a is not None
    restore = say_datetime(datetime(2026, 7, 14, 15, 30, tzinfo=CST), "zh",
                           now=datetime(2026, 7, 14, 14, 0, tzinfo=CST))
    assert restore[0] == "day.zh.today" and "time.zh.afternoon" in restore
    assert a.prompts == ("outage.here", "outage.cause.fault", "outage.restore_at", *restore,
                         "outage.order_exists", "outage.hangup_hint")
    assert a.notice_ids == (1,) and a.accounts == ("3701000001",)
    text = render_text(a.prompts, WITH_PHRASES, "zh")
    assert text.startswith("您好，您所在的区域因设备故障停电") and "今天下午三点三十分" in text
    assert text.endswith("办理其他业务请按一。")


def test_english_uses_the_same_items_in_english() -> None:
    a = announcement(one(notice()), "en", NOW, CST)
    assert a is not None
    text = render_text(a.prompts, WITH_PHRASES, "en")
    assert text.startswith("In your area, there is a power cut caused by a fault")
    assert "today at three thirty p.m." in text and text.endswith("press one.")


@pytest.mark.parametrize(("restore", "said"), [
    (None, "outage.restore_unknown"),
    (NOW - H / 2, "outage.restore_overdue"),   # a past time is not read out
    (NOW, "outage.restore_overdue"),
])
def test_an_unknown_or_passed_restoration_is_not_read_as_a_time(
        restore: datetime | None, said: str) -> None:
    a = announcement(one(notice(restore=restore)), "zh", NOW, CST)
    assert a is not None
    assert said in a.prompts and "outage.restore_at" not in a.prompts


def test_without_a_repair_order_nothing_is_said_about_one() -> None:
    a = announcement(one(notice(order=None)), "zh", NOW)
    assert a is not None and "outage.order_exists" not in a.prompts


def test_each_cause_is_spoken_from_its_category_and_planned_work_by_its_schedule() -> None:
    for cause in Cause:
        a = announcement(one(notice(cause=cause, restore=None, order=None)), "zh", NOW, CST)
        assert a is not None and CAUSES[cause].phrase in a.prompts
        if CAUSES[cause].scheduled:  # the schedule's end (start + 6 h = 19:00 CST) is told
            assert "outage.restore_at" in a.prompts and "time.zh.evening" in a.prompts


def test_free_text_is_never_spoken() -> None:
    secret = "10kV东03线 #12杆 外力破坏 抢修队 13812345678"
    a = announcement(one(notice(text=secret)), "zh", NOW, CST)
    assert a is not None
    assert all(WITH_PHRASES.has(p, "zh") for p in a.prompts)
    assert a == announcement(one(notice(text="")), "zh", NOW, CST)


def test_several_places_are_each_told_with_their_account_tail() -> None:
    home, shop = notice(1), notice(2, Cause.PLANNED, order=None)
    groups = [PlaceGroup(("3701001234", "3701009999"), (home,)),
              PlaceGroup(("3702005678",), (home, shop))]
    a = announcement(groups, "zh", NOW, CST)
    assert a is not None
    p = list(a.prompts)
    first = ["outage.account_tail", *say_digits("1234", "zh"), "outage.account_tail_end"]
    second = ["outage.account_tail", *say_digits("5678", "zh"), "outage.account_tail_end"]
    assert p[:len(first)] == first and "outage.here" not in p
    i = next(i for i in range(len(p)) if p[i:i + len(second)] == second)
    assert p[i + len(second)] == "outage.cause.fault"
    assert p.index("outage.also") > i and p.index("outage.cause.planned") > i
    assert p.count("outage.hangup_hint") == 1 and p[-1] == "outage.hangup_hint"
    assert a.notice_ids == (1, 2)
    assert a.accounts == ("3701001234", "3701009999", "3702005678")
    text = render_text(a.prompts, WITH_PHRASES, "zh")
    assert "您尾号为幺二三四的户号所在区域因设备故障停电" in text
    assert "同时，该区域还正在进行计划检修" in text


def test_what_is_spoken_is_capped() -> None:
    many = tuple(notice(i) for i in range(MAX_NOTICES_PER_PLACE + 2))
    a = announcement(one(*many), "zh", NOW)
    assert a is not None and a.notice_ids == tuple(range(MAX_NOTICES_PER_PLACE))
    groups = [PlaceGroup((f"37010000{i:02d}",), (notice(i),)) for i in range(6)]
    b = announcement(groups, "zh", NOW)
    assert b is not None and len(b.notice_ids) == MAX_PLACES_SPOKEN


def test_bad_language_and_naive_now_are_refused() -> None:
    with pytest.raises(ValueError, match="language"):
        announcement(one(notice()), "fr", NOW)
    with pytest.raises(ValueError, match="naive"):
        announcement(one(notice()), "zh", datetime(2026, 7, 14, 6))


def test_phrases_are_new_complete_and_cover_every_cause() -> None:
    for pid, texts in PHRASES.items():
        assert pid.startswith("outage.") and set(texts) == {"zh", "en"}
        assert all(t.strip() for t in texts.values())
        # no clash with the prompts built before: defined once, in the outage file
        assert EXISTING.origin(pid).startswith(str(CATALOG_DIR / "outage.yaml"))
    assert {c.phrase for c in CAUSES.values()} <= set(PHRASES)


def test_missing_phrases_names_what_the_catalog_lacks() -> None:
    assert missing_phrases(WITH_PHRASES) == []
    assert missing_phrases(EXISTING) == []  # the shipped catalog has them all
    missing = missing_phrases(BEFORE)
    assert len(missing) == 2 * len(PHRASES) and "outage.hangup_hint/zh" in missing
