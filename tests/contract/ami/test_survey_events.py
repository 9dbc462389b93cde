"""The post-call survey's AMI side (issue 14 §3): the dialplan's hotline-survey sends
HotlineSurveyOffered (the agent hung up first) and HotlineSurvey (the key, or none) on the
caller's channel. The call tracker ends the call on the first, so the ACD puts the agent in
wrap-up at once, not when the caller is done rating; the caller's own Hangup after the survey
is a late event of an ended call. survey_fact reads both for the survey service, checking every
field as for the ACD's UserEvents. AMI messages as the dialplan (extensions.conf.j2) sends
them; no socket."""

from __future__ import annotations

from typing import Any

import pytest

from cti.ami import translate as t
from tests.contract.ami.test_seat_reachability import login_ready, running, settle, states

CALL = "1796526664.31"
CALLER_CH = "PJSIP/carrier-0000001f"


def event(kind: str, **headers: str) -> dict[str, Any]:
    return {"Event": "UserEvent", "UserEvent": kind, "Channel": CALLER_CH,
            "Context": "hotline-survey", "Linkedid": CALL, "Uniqueid": CALL,
            "CallerIDNum": "13800000001", "Seat": "seat07", "Skill": "general", **headers}


def talking() -> t.CallTracker:
    tracker = t.CallTracker()
    tracker.apply(t.CallQueued(CALL, CALLER_CH, "13800000001", "general", 0, None, CALL))
    tracker.apply(t.AgentAnswered(CALL, "seat07", "PJSIP/seat07-00000020"))
    return tracker


def test_the_survey_offered_ends_the_agents_part_of_the_call() -> None:
    tracker = talking()
    assert tracker.feed(event("HotlineSurveyOffered")) == [t.CallEnded(CALL, t.SURVEY_CAUSE)]
    assert tracker.state(CALL) is None
    # the caller rates the call, then hangs up: both late for the tracker
    assert tracker.feed(event("HotlineSurvey", Key="4")) == []
    assert tracker.feed({"Event": "Hangup", "Channel": CALLER_CH, "Linkedid": CALL,
                         "Uniqueid": CALL, "Cause": "16"}) == []


@pytest.mark.parametrize("bad", [{"Seat": "seat07;x"}, {"Seat": ""}, {"Skill": "General"},
                                 {"Skill": "a,b"}, {"Context": "from-carrier"}])
def test_an_offer_out_of_shape_is_dropped(bad: dict[str, str]) -> None:
    assert t.translate(event("HotlineSurveyOffered", **bad)) == []
    assert t.survey_fact(event("HotlineSurveyOffered", **bad)) is None
    assert talking().feed(event("HotlineSurveyOffered", **bad)) == []


def test_the_survey_facts() -> None:
    assert t.survey_fact(event("HotlineSurveyOffered")) == t.SurveyOffered(
        CALL, "seat07", "general")
    for key in "12345":
        assert t.survey_fact(event("HotlineSurvey", Key=key)) == t.SurveyAnswered(
            CALL, "seat07", "general", int(key))
    assert t.survey_fact(event("HotlineSurvey", Key="none")) == t.SurveyAnswered(
        CALL, "seat07", "general", None)
    # only what the dialplan sends: a score 1-5 or none, never a caller's other keys
    for key in ("0", "6", "9", "*", "#", "44", "", "4\r\nEvent: Forged"):
        assert t.survey_fact(event("HotlineSurvey", Key=key)) is None, key
    assert t.survey_fact(event("HotlineSurvey", Key="4", Linkedid="x")) is None
    assert t.survey_fact({k: v for k, v in event("HotlineSurvey", Key="4").items()
                          if k != "Seat"}) is None
    # anything else is not the survey's
    assert t.survey_fact(event("HotlineOffer")) is None
    assert t.survey_fact({"Event": "Hangup", "Linkedid": CALL}) is None
    assert t.survey_fact(event("HotlineSurvey", Key="4", Channel="Local/x@y-0001;2")) is None


async def test_the_agent_is_in_wrap_up_while_the_caller_is_still_rating() -> None:
    async with running() as (feed, _pbx, bus):
        await login_ready(feed, "a07", "seat07")
        for ev in feed.tracker.apply(t.CallQueued(CALL, CALLER_CH, "13800000001", "general",
                                                  0, None, CALL)):
            feed.core(ev)
        await settle(feed)
        for ev in feed.tracker.feed({"Event": "DialEnd", "Linkedid": CALL, "Channel": CALLER_CH,
                                     "DestChannel": "PJSIP/seat07-00000020",
                                     "DialStatus": "ANSWER", "Context": "hotline-connect"}):
            feed.core(ev)
        await settle(feed)
        assert states(bus, "a07")[-1] == ("on_call", None)
        for ev in feed.tracker.feed(event("HotlineSurveyOffered")):
            feed.core(ev)
        await settle(feed)
        assert states(bus, "a07")[-1][0] == "wrap_up"
        assert CALL not in feed.service.view.calls
