"""Admins edit ivr/flows/*.yaml live: bad edits are rejected with file:line, the old flow serves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hotline import stack
from prompts.index import PromptIndex
from tests.integration.callers import CallInProgress, hang_up, is_event
from tests.integration.conftest import Backend, CtiProcess
from tests.support.ami import AmiRecorder
from tests.support.callview import CallView
from tests.support.sipp import Caller, Keys, Pause

pytestmark = pytest.mark.integration


def _line_of(text: str, needle: str) -> int:
    return text[:text.index(needle)].count("\n") + 1


def _wait_status(cti: CtiProcess, pred: Callable[[dict[str, Any]], bool],
                 timeout: float = 15) -> dict[str, Any]:
    """Wait (with a deadline) until the CTI's published status satisfies `pred`."""
    last: dict[str, Any] = {}

    def matched() -> bool:
        nonlocal last
        last = cti.status().get("flows") or {}
        return bool(last) and pred(last)

    try:
        stack.wait_until(matched, timeout, "the flow status")
    except stack.StackError:
        raise AssertionError(f"flow status never matched; last was {last}") from None
    return last


BAD_EDITS = [
    # (kind, text to replace, replacement, what the error must say, the line it must name)
    ("syntax error", "    next: language\n", "    next: [language\n", "YAML syntax error",
     "    next: language\n"),
    ("unknown node", "next: bill_lookup\n", "next: bill_lookupp\n",
     "unknown node 'bill_lookupp'", "next: bill_lookup\n"),
    ("missing prompt", "prompt: [ivr.welcome]", "prompt: [ivr.welcome_v2]",
     "missing prompt 'ivr.welcome_v2'", "prompt: [ivr.welcome]"),
    # a loop is reported at the node it traps the caller in
    ("loop with no exit", "    values: {lang: zh}\n    next: outage_first",
     "    values: {lang: zh}\n    next: lang_zh", "loop with no exit", "  lang_zh:\n"),
]


def _call_to_agents(cti: CtiProcess, ami: AmiRecorder, number: str, index: PromptIndex,
                    workdir: Path) -> CallView:
    mark = ami.mark()
    call = CallInProgress(Caller(number, [Pause(1500), Keys("1"), Pause(1500), Keys("0")]),
                          cti.settings, workdir)
    join = ami.wait_for(is_event("UserEvent", number, UserEvent="HotlineQueued"), 60,
                        "HotlineQueued", since=mark)
    hang_up(ami, join)
    assert call.finish().ok
    ami.wait_for(is_event("Hangup", number), 10, since=mark)
    return CallView(ami.events()[mark:], number, index)


def test_bad_flow_edits_are_rejected_and_old_flow_keeps_serving(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, prompt_index: PromptIndex,
        tmp_path: Path) -> None:
    path = cti.settings.ivr.flows_dir / "main.yaml"
    original = path.read_text(encoding="utf-8")
    version = _wait_status(cti, lambda f: f["last_reload_ok"])["version"]
    try:
        for kind, old, new, reason, anchor in BAD_EDITS:
            assert old in original, kind
            line = _line_of(original, anchor)
            path.write_text(original.replace(old, new, 1), encoding="utf-8")
            st = _wait_status(cti, lambda f, r=reason: not f["last_reload_ok"]
                              and any(r in e for e in f["errors"]))
            err = next(e for e in st["errors"] if reason in e)
            file_, line_, _msg = err.split(":", 2)
            assert file_ == str(path), (kind, err)
            assert int(line_) == line, (kind, err, line)
            assert st["version"] == version, "a rejected edit must not replace the flows"
        # the last bad edit is still on disk: calls are served by the old, valid flow
        view = _call_to_agents(cti, ami, f"{backend.prefix}8000001", prompt_index, tmp_path)
        # the caller presses 1 at 1.5 s, inside the 4-6 s welcome (barge-in): the welcome is
        # offered first and cut, never heard in full. The old flow's lang_zh goes on to the
        # main menu; the edited one would loop in lang_zh and never offer it.
        offered = view.offered_ids()
        assert offered[:1] == ["ivr.welcome"] and "ivr.main_menu" in offered, offered
        assert not view.user_events("HotlineFallback")
    finally:
        path.write_text(original, encoding="utf-8")
    _wait_status(cti, lambda f: f["last_reload_ok"] and f["version"] == version + 1)


def test_good_flow_edit_takes_effect_without_restart(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, prompt_index: PromptIndex,
        tmp_path: Path) -> None:
    path = cti.settings.ivr.flows_dir / "main.yaml"
    original = path.read_text(encoding="utf-8")
    pid = cti.pid
    version = _wait_status(cti, lambda f: f["last_reload_ok"])["version"]
    edited = original.replace("prompt: [ivr.welcome]", "prompt: [ivr.outage_apology]")
    try:
        path.write_text(edited, encoding="utf-8")
        _wait_status(cti, lambda f: f["last_reload_ok"] and f["version"] == version + 1)
        view = _call_to_agents(cti, ami, f"{backend.prefix}8000002", prompt_index, tmp_path)
        offered = view.offered_ids()
        assert offered[0] == "ivr.outage_apology" and "ivr.welcome" not in offered, offered
        assert cti.pid == pid and cti.status()["pid"] == pid, "the CTI was restarted"
    finally:
        path.write_text(original, encoding="utf-8")
    _wait_status(cti, lambda f: f["last_reload_ok"] and f["version"] == version + 2)
