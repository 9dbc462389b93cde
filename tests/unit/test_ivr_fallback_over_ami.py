"""AmiPbx.ivr_fallback: a caller whose IVR session gave up on a slow FastAGI path is moved to the
dialplan's fallback over AMI, unless the IVR already committed its exit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from cti.ami.pbx import AmiPbx
from cti.ami.protocol import AmiActionError
from prompts.index import PromptIndex
from tests.support.fakes import FakeAmi

CHANNEL = "PJSIP/carrier-00000007"


def pbx(ami: Any) -> AmiPbx:
    return AmiPbx(ami, PromptIndex(Path("/nonexistent"), {}, 8000, {}))


def test_a_caller_still_in_the_ivr_is_redirected_to_the_fallback_never_retried() -> None:
    ami = FakeAmi(variables={"HOTLINE_NEXT": ""})
    assert asyncio.run(pbx(ami).ivr_fallback(CHANNEL)) is True
    [redirect] = ami.named("Redirect")
    assert redirect == {"Action": "Redirect", "Channel": CHANNEL, "Context": "hotline-next",
                        "Exten": "fallback", "Priority": "1"}
    assert ami.idempotent[ami.sent.index(redirect)] is False


def test_a_caller_whose_ivr_exit_is_set_is_left_alone() -> None:
    ami = FakeAmi(variables={"HOTLINE_NEXT": "transfer"})
    assert asyncio.run(pbx(ami).ivr_fallback(CHANNEL)) is False
    assert ami.named("Redirect") == []


def test_a_caller_gone_is_not_an_error() -> None:
    class Gone(FakeAmi):
        async def action(self, action: Any, **kw: Any) -> Any:
            raise AmiActionError("Getvar", {"Response": "Error", "Message": "No such channel"})

    assert asyncio.run(pbx(Gone()).ivr_fallback(CHANNEL)) is False
