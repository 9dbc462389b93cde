"""Service hours on real calls (issue 15 §3): an English caller (the language menu's 2, then 0
for an agent: the shipped flow's transfer to `english`) while english is closed hears the hours
fact and is queued to the open skill english's calendar routes to; with a callback offer and no
key pressed, the caller goes to the 7x24 skill ([calendars] always_open). The calendar is
changed in the store the console and the CLI use, and the CTI reads it at the next transfer,
without a restart. english is made closed by holidays on yesterday, today and tomorrow (the
center's time zone) over a 24h week, so the tests do not depend on the time of day; its own
calendar (none in the demo) is put back after each test.
Numbers: range 97 (tests/unit/test_integration_number_ranges.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from acd.calendar import WEEKDAYS, format_hours
from cti.db import calendars as store
from cti.db.models import Call
from hotline import stack
from prompts.index import PromptIndex
from tests.integration.callers import CallInProgress, call_story, hang_up, is_event
from tests.integration.conftest import Backend, CtiProcess
from tests.support.ami import AmiRecorder, AmiTimeout
from tests.support.callview import CallView
from tests.support.sipp import Caller, Keys, Pause

pytestmark = pytest.mark.integration

SKILL = "english"       # where the shipped flow sends an English caller who asks for an agent
OPEN_SKILL = "repair"   # no calendar in the demo: open 7x24
ENGLISH_AGENT = [Pause(1500), Keys("2"), Pause(1500), Keys("0")]


@contextmanager
def _closed_now(backend: Backend, cti: CtiProcess, *, after_hours: str,
                route_to: str | None) -> Iterator[None]:
    """english closed all day yesterday, today and tomorrow (local), whatever the hour; its
    calendar as it was afterwards."""
    now = datetime.now(UTC)
    today = now.astimezone(ZoneInfo(cti.settings.ivr.timezone)).date()
    with backend.sessions.begin() as s:
        before = store.calendars_of(s).get(SKILL)
        store.set_calendar(s, SKILL, dict.fromkeys(WEEKDAYS, "24h"), after_hours=after_hours,
                           route_to=route_to, by="it", now=now,
                           always_open=cti.settings.calendars.always_open)
        for n in (-1, 0, 1):
            store.set_day(s, SKILL, today + timedelta(days=n), kind="holiday", hours="",
                          note="integration test", by="it", now=now)
    try:
        yield
    finally:
        with backend.sessions.begin() as s:
            store.remove_calendar(s, SKILL)
            if before is not None:
                store.set_calendar(
                    s, SKILL, {d: format_hours(h) for d, h in zip(WEEKDAYS, before.week,
                                                                  strict=True)},
                    after_hours=before.after_hours, route_to=before.route_to, by="it",
                    now=now, always_open=cti.settings.calendars.always_open)
                for day in before.days.values():
                    store.set_day(s, SKILL, day.day, kind=day.kind,
                                  hours=format_hours(day.hours) if day.hours else "",
                                  note=day.note, by="it", now=now)


def _record(backend: Backend, call_id: str, *, queued: bool = False) -> Call | None:
    """The call's record once it has ended (queued: once the ACD has queued it)."""
    with backend.sessions() as s:
        rec = s.scalars(select(Call).where(Call.call_id == call_id)).one_or_none()
        if rec is not None:
            s.expunge(rec)
        done = rec is not None and (rec.queued_at if queued else rec.ended_at) is not None
        return rec if done else None


def _queued_after_hours(number: str, backend: Backend, cti: CtiProcess, ami: AmiRecorder,
                        prompt_index: PromptIndex, tmp_path: Path
                        ) -> tuple[dict[str, Any], CallView, Call]:
    """Place the English caller, wait until Asterisk holds it for a skill (HotlineQueued),
    hang it up there; its queue event, its call's events and its call record."""
    since = ami.mark()
    call = CallInProgress(Caller(number, list(ENGLISH_AGENT)), cti.settings, tmp_path)
    try:
        queued = ami.wait_for(is_event("UserEvent", number, UserEvent="HotlineQueued"), 90,
                              f"{number} queued", since)
    except AmiTimeout:
        raise AssertionError(call_story(ami, number, since, cti.settings)) from None
    call_id = CallView(ami.events()[since:], number, prompt_index).linkedid
    # the ACD has it (the call record says queued) before the caller goes
    stack.wait_until(lambda: _record(backend, call_id, queued=True) is not None, 20,
                     f"the ACD to queue {number}")
    hang_up(ami, queued)
    assert call.finish(60).ok, "the caller did not get the PBX's BYE"
    view = CallView(ami.events()[since:], number, prompt_index)
    stack.wait_until(lambda: _record(backend, view.linkedid) is not None, 20,
                     f"the call record of {number}")
    rec = _record(backend, view.linkedid)
    assert rec is not None
    return queued, view, rec


def _after_hours_step(rec: Call) -> dict[str, Any]:
    steps = [p for p in rec.ivr_path or [] if p.get("node") == "after_hours"]
    assert len(steps) == 1, rec.ivr_path
    return steps[0]


def _in_order(seq: list[str], *ids: str) -> bool:
    at = 0
    for want in ids:
        if want not in seq[at:]:
            return False
        at = seq.index(want, at) + 1
    return True


def test_a_closed_skill_routes_its_caller_to_the_open_skill_its_calendar_names(
        backend: Backend, cti: CtiProcess, ami: AmiRecorder, prompt_index: PromptIndex,
        tmp_path: Path) -> None:
    number = f"{backend.prefix}9700001"
    with _closed_now(backend, cti, after_hours="route", route_to=OPEN_SKILL):
        queued, view, rec = _queued_after_hours(number, backend, cti, ami, prompt_index,
                                                tmp_path)
    assert queued["Skill"] == OPEN_SKILL
    heard = view.heard_ids()
    # the hours fact (closed; opens again the day after tomorrow) and the transfer, in English
    assert _in_order(heard, "calendars.closed", "calendars.opens_at", "calendars.routed"), heard
    assert {p.lang for p in view.played() if p.prompt.startswith("calendars.")} == {"en"}
    assert "calendars.callback_offer" not in view.offered_ids()
    assert not view.user_events("HotlineFallback"), "the IVR fell back"
    step = _after_hours_step(rec)
    assert (step["skill"], step["action"], step["routed_to"]) == (SKILL, "route", OPEN_SKILL)
    # queued for the open skill, and hung up there by the test
    assert (rec.skill, rec.outcome) == (OPEN_SKILL, "abandoned")
    assert rec.queued_at is not None


def test_a_callback_offer_with_no_key_pressed_goes_to_the_7x24_skill(
        backend: Backend, cti: CtiProcess, ami: AmiRecorder, prompt_index: PromptIndex,
        tmp_path: Path) -> None:
    always_open = cti.settings.calendars.always_open
    assert always_open != SKILL
    number = f"{backend.prefix}9700002"
    with _closed_now(backend, cti, after_hours="callback", route_to=None):
        queued, view, rec = _queued_after_hours(number, backend, cti, ami, prompt_index,
                                                tmp_path)
    assert queued["Skill"] == always_open
    offered = view.offered_ids()
    # the hours fact, the offer (a Read the caller let time out), then the transfer
    assert _in_order(offered, "calendars.closed", "calendars.opens_at",
                     "calendars.callback_offer", "calendars.routed"), offered
    assert _in_order(view.heard_ids(), "calendars.closed", "calendars.routed")
    assert "calendars.callback_booked" not in offered
    step = _after_hours_step(rec)
    assert (step["skill"], step["action"], step["answer"], step["routed_to"]) == (
        SKILL, "callback", "none", always_open)
    assert "job" not in step  # no callback was booked
    assert (rec.skill, rec.outcome) == (always_open, "abandoned")
    assert rec.queued_at is not None
