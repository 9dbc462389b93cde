"""The ACD's PBX port over AMI (cti/ami/pbx.py) for storm mode's all-busy message: the prompt
files go onto the caller's channel (HOTLINE_BUSY) before the Redirect to the busy message,
nothing but the index's paths reaches the channel, and the Redirect is never retried."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cti.ami.pbx import AmiPbx
from prompts.index import PromptIndex
from tests.support.fakes import FakeAmi

IDS = {"acd.busy_wait_before": "b4", "num.zh.3": "n3", "acd.busy_wait_after": "af"}


def _pbx(ami: FakeAmi) -> AmiPbx:
    return AmiPbx(ami, PromptIndex(Path("/nonexistent"), {}, 8000, {"zh": IDS}))


def test_the_all_busy_message_is_set_on_the_channel_before_the_redirect() -> None:
    ami = FakeAmi()
    asyncio.run(_pbx(ami).overflow("PJSIP/carrier-1", "overflow", list(IDS), "zh"))
    setvar, redirect = ami.sent
    assert setvar["Action"] == "Setvar" and setvar["Channel"] == "PJSIP/carrier-1"
    assert setvar["Variable"] == "HOTLINE_BUSY"
    prefix = _pbx(ami).prompts.asterisk_path("num.zh.3", "zh").removesuffix("n3")
    assert setvar["Value"] == "&".join(prefix + k for k in ("b4", "n3", "af"))
    assert (redirect["Action"], redirect["Context"], redirect["Exten"]) == (
        "Redirect", "hotline-wait", "busy")
    assert ami.idempotent == [True, False]  # the Setvar may be repeated, the Redirect never


def test_without_a_wait_only_the_redirect_goes_out() -> None:
    ami = FakeAmi()
    asyncio.run(_pbx(ami).overflow("PJSIP/carrier-1", "overflow"))
    assert [a["Action"] for a in ami.sent] == ["Redirect"]
