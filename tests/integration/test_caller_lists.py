"""The nuisance list on real calls (issue 15 §3): a number on it hears the warning in both
languages, with no dead air, and the IVR ends the call, recorded as refused; taken off the list
in the console (the same store), its next call gets the welcome at once, without a restart.
Numbers: range 96 (tests/unit/test_integration_number_ranges.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from cti.db import callers as store
from cti.db.models import Call
from hotline import stack
from prompts.index import PromptIndex
from tests.integration.callers import CallInProgress
from tests.integration.conftest import Backend, CtiProcess
from tests.support.ami import AmiRecorder, send_action
from tests.support.callview import CallView
from tests.support.sipp import Caller


def _record(backend: Backend, call_id: str) -> Call | None:
    with backend.sessions() as s:
        rec = s.scalars(select(Call).where(Call.call_id == call_id)).one_or_none()
        if rec is not None:
            s.expunge(rec)
        return rec if rec is not None and rec.ended_at is not None else None


def test_a_nuisance_number_hears_the_warning_and_the_ivr_ends_the_call(
        backend: Backend, cti: CtiProcess, ami: AmiRecorder, prompt_index: PromptIndex,
        tmp_path: Path) -> None:
    number = f"{backend.prefix}9600001"
    with backend.sessions.begin() as s:
        store.add(s, "nuisance", number, reason="integration test", by="S01",
                  now=datetime.now(UTC))
    try:
        since = ami.mark()
        # the caller presses nothing and waits for the PBX to hang up
        call = CallInProgress(Caller(number, []), cti.settings, tmp_path)
        ami.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("CallerIDNum") == number,
                     90, f"Hangup of {number}", since)
        assert call.finish(60).ok, "the caller did not get the PBX's BYE"
        view = CallView(ami.events()[since:], number, prompt_index)
        assert view.heard_ids() == ["callers.nuisance_warning"] * 2  # Mandarin, then English
        assert [p.lang for p in view.played()] == ["zh", "en"]
        assert not view.user_events("HotlineFallback"), "the IVR fell back"
        assert view.longest_gap() < 1.5, f"dead air of {view.longest_gap():.1f}s"
        stack.wait_until(lambda: _record(backend, view.linkedid) is not None, 15,
                         f"the call record of {number}")
        rec = _record(backend, view.linkedid)
        assert rec is not None and (rec.outcome, rec.queued_at) == ("refused", None)
    finally:
        with backend.sessions.begin() as s:
            store.remove(s, "nuisance", number)
    # off the list: the very next call is welcomed (hung up through AMI as the welcome starts)
    since = ami.mark()
    call = CallInProgress(Caller(number, []), cti.settings, tmp_path)
    welcome = prompt_index.asterisk_path("ivr.welcome", "zh")
    started = ami.wait_for(lambda e: e.get("Event") == "AGIExecStart"
                           and e.get("CallerIDNum") == number
                           and welcome in str(e.get("Command", "")), 60,
                           f"the welcome playing to {number}", since)
    send_action(ami, {"Action": "Hangup", "Channel": started["Channel"]})
    call.finish(60)
    view = CallView(ami.events()[since:], number, prompt_index)
    assert "callers.nuisance_warning" not in view.offered_ids()
