"""The dialplan serves the caller when the FastAGI server is down or dies mid-call."""

from __future__ import annotations

import wave

import pytest

from prompts.index import PromptIndex
from tests.integration.callers import CallInProgress, hang_up, is_event, ts
from tests.integration.conftest import Backend, CtiProcess
from tests.support.ami import AmiRecorder
from tests.support.sipp import Caller

pytestmark = pytest.mark.integration


def _fallback_seconds(index: PromptIndex) -> float:
    with wave.open(str(index.local_file("sys.fallback", "zh"))) as w:
        return w.getnframes() / w.getframerate()


def test_fastagi_unreachable_caller_hears_apology_and_reaches_agents(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, prompt_index: PromptIndex,
        tmp_path) -> None:
    cti.stop()
    try:
        number = f"{backend.prefix}9000001"
        mark = ami.mark()
        call = CallInProgress(Caller(number, []), cti.settings, tmp_path)
        fb = ami.wait_for(is_event("UserEvent", number, UserEvent="HotlineFallback"), 30,
                          "HotlineFallback", since=mark)
        assert fb["AgiStatus"] == "FAILURE"
        join = ami.wait_for(is_event("QueueCallerJoin", number), 60, "QueueCallerJoin",
                            since=mark)
        assert join["Queue"] == "hotline-agents"
        # the apology played in full between the fallback and joining the queue: no dead air
        assert ts(join) - ts(fb) >= 0.85 * _fallback_seconds(prompt_index)
        hang_up(ami, join)
        assert call.finish().ok
    finally:
        cti.start()


def test_fastagi_killed_mid_call_caller_is_served_by_fallback(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, prompt_index: PromptIndex,
        tmp_path) -> None:
    number = f"{backend.prefix}9000002"
    mark = ami.mark()
    call = CallInProgress(Caller(number, []), cti.settings, tmp_path)
    # wait until the IVR is really talking to this caller: it asks for the language
    ami.wait_for(lambda e: e.get("Event") == "AGIExecStart" and e.get("CallerIDNum") == number
                 and "EXEC Read" in str(e.get("Command")), 30, "the language menu", since=mark)
    cti.kill9()
    try:
        fb = ami.wait_for(is_event("UserEvent", number, UserEvent="HotlineFallback"), 60,
                          "HotlineFallback", since=mark)
        join = ami.wait_for(is_event("QueueCallerJoin", number), 60, "QueueCallerJoin",
                            since=mark)
        assert ts(join) - ts(fb) >= 0.85 * _fallback_seconds(prompt_index)
        hang_up(ami, join)
        assert call.finish().ok
    finally:
        cti.start()
    # and the restarted CTI serves the next caller normally
    number2 = f"{backend.prefix}9000003"
    mark = ami.mark()
    call2 = CallInProgress(Caller(number2, []), cti.settings, tmp_path)
    ami.wait_for(lambda e: e.get("Event") == "AGIExecStart" and e.get("CallerIDNum") == number2
                 and "EXEC Read" in str(e.get("Command")), 30, "the language menu", since=mark)
    hang_up(ami, ami.wait_for(is_event("Newchannel", number2), 5, since=mark))
    call2.finish()
    fallbacks = [e for e in ami.events()[mark:]
                 if is_event("UserEvent", number2, UserEvent="HotlineFallback")(e)]
    assert not fallbacks
