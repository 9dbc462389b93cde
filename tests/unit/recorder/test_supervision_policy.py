"""Supervision's pure core: roles, refusals, ChanSpy options, session transitions, AMI mapping."""

from __future__ import annotations

import pytest

from recorder import supervision_policy as sp
from recorder.supervision_policy import (
    Actor,
    Allowed,
    LiveCall,
    Mode,
    Refused,
    SessionState,
)

SID = "0123456789abcdef0123456789abcdef"
ENDPOINTS = {"sup01", "sup02", "sup03"}
CALL = LiveCall("1751333405.42", "connected", "A001", "seat07")
SUP = Actor("S01", "supervisor")


def _start(actor: Actor = SUP, call: LiveCall | None = CALL, mode: object = "listen",
           sessions: tuple[sp.SpySession, ...] = ()) -> Allowed | Refused:
    return sp.decide_start(actor, call, mode, ENDPOINTS, sessions, SID, 100.0)


def _session(mode: Mode = Mode.LISTEN) -> sp.SpySession:
    allowed = _start(mode=mode.value)
    assert isinstance(allowed, Allowed)
    return allowed.session


def test_chanspy_options_per_mode() -> None:
    assert sp.chanspy_options(Mode.LISTEN) == "qESd"
    assert sp.chanspy_options(Mode.WHISPER) == "qESdw"
    assert sp.chanspy_options(Mode.BARGE) == "qESdB"
    # d: keys 4/5/6 switch a running ChanSpy, so a switch never restarts it
    assert dict(sp.MODE_KEYS) == {Mode.LISTEN: "4", Mode.WHISPER: "5", Mode.BARGE: "6"}
    # listening never talks: neither whisper nor barge letters
    assert not set("wWB") & set(sp.chanspy_options(Mode.LISTEN))


def test_spy_target_is_the_seat_channel_prefix_with_its_dash() -> None:
    assert sp.spy_target("seat07") == "PJSIP/seat07-"
    with pytest.raises(ValueError):
        sp.spy_target("seat07,qB")  # nothing can smuggle options into ChanSpy's arguments


def test_parse_mode_error_names_the_choices() -> None:
    assert sp.parse_mode("barge") is Mode.BARGE
    with pytest.raises(ValueError, match="listen, whisper, barge"):
        sp.parse_mode("shout")


@pytest.mark.parametrize("role", ["agent", "", "Supervisor", "root"])
def test_only_supervisors_and_admins_may_start(role: str) -> None:
    assert _start(Actor("A002", role)) == Refused("forbidden", "A001")


def test_agent_refused_before_call_is_looked_at() -> None:
    # an agent probing call ids learns nothing: the answer is the same for a real one and none
    assert _start(Actor("A002", "agent"), call=None).reason == "forbidden"


def test_supervisor_and_admin_allowed() -> None:
    for actor, phone in ((SUP, "sup01"), (Actor("S02", "admin"), "sup02"),
                         (Actor("X9", "admin", seat="sup03"), "sup03")):
        res = _start(actor)
        assert isinstance(res, Allowed), res
        s = res.session
        assert (s.endpoint, s.agent_id, s.seat, s.call_id) == (phone, "A001", "seat07",
                                                                CALL.call_id)
        assert s.state == SessionState.DIALING and s.mode == Mode.LISTEN
        assert s.channel == "hotline-spy-" + SID and s.target == "PJSIP/seat07-"


@pytest.mark.parametrize(("call", "mode", "reason"), [
    (None, "listen", "no_such_call"),
    (LiveCall("1.1", "waiting", None, None), "listen", "not_connected"),
    (LiveCall("1.1", "offered", "A001", "seat07"), "listen", "not_connected"),
    (CALL, "shout", "bad_mode"),
    (LiveCall("1.1", "connected", "S01", "seat07"), "listen", "self"),
])
def test_refusals(call: LiveCall | None, mode: str, reason: str) -> None:
    res = _start(call=call, mode=mode)
    assert isinstance(res, Refused) and res.reason == reason


def test_no_phone_and_busy() -> None:
    assert _start(Actor("S09", "supervisor")).reason == "no_phone"  # type: ignore[union-attr]
    busy = _session()
    assert _start(sessions=(busy,)).reason == "busy"  # type: ignore[union-attr]
    ended, _ = sp.step(busy, sp.StopRequested(SID), 101.0)
    assert isinstance(_start(sessions=(ended,)), Allowed)


def test_supervisor_endpoint_mapping() -> None:
    assert sp.supervisor_endpoint("S01", None, ENDPOINTS) == "sup01"
    assert sp.supervisor_endpoint("S01", "sup02", ENDPOINTS) == "sup02"
    assert sp.supervisor_endpoint("S01", "seat07", ENDPOINTS) == "sup01"  # a seat is no spy phone
    assert sp.supervisor_endpoint("S07", None, ENDPOINTS) is None
    assert sp.supervisor_endpoint("nobody", None, ENDPOINTS) is None


def test_lifecycle_listen_whisper_barge_stop() -> None:
    s = _session()
    assert [type(e) for e in sp.start(s)] == [sp.Originate, sp.Announce]
    s, eff = sp.step(s, sp.Answered(SID), 101.0)
    assert s.state == SessionState.ACTIVE and s.answered_at == 101.0
    assert eff[0] == sp.AuditMode(s, Mode.LISTEN, True, 101.0)
    s, eff = sp.step(s, sp.SpyStarted(SID), 101.1)
    # already active: no second audit row; ChanSpy gets the session's mode key once more
    assert s.spying and eff == [sp.SwitchMode(s, "4")] and s.keys_sent == ("4",)
    s, eff = sp.step(s, sp.KeyRead(SID, "4"), 101.2)  # Asterisk read our key
    assert s.keys_sent == () and eff == []
    s, eff = sp.step(s, sp.ModeRequested(SID, Mode.WHISPER), 105.0)
    assert s.mode == Mode.WHISPER
    assert [type(e) for e in eff] == [sp.AuditMode, sp.SwitchMode, sp.AuditMode, sp.Announce]
    assert (eff[0].mode, eff[0].begin) == (Mode.LISTEN, False)  # type: ignore[union-attr]
    assert (eff[2].mode, eff[2].begin) == (Mode.WHISPER, True)  # type: ignore[union-attr]
    assert eff[1].session.options == "qESdw"  # type: ignore[union-attr]
    assert eff[1].key == "5" and s.keys_sent == ("5",)  # type: ignore[union-attr]
    same, eff = sp.step(s, sp.ModeRequested(SID, Mode.WHISPER), 106.0)
    assert same == s and eff == []
    s, _ = sp.step(s, sp.ModeRequested(SID, Mode.BARGE), 107.0)
    s, eff = sp.step(s, sp.StopRequested(SID), 110.0)
    assert s.state == SessionState.ENDED and s.end_reason == "stopped" and s.ended_at == 110.0
    assert [type(e) for e in eff] == [sp.HangupSpy, sp.AuditMode, sp.AuditEnd, sp.Announce]
    # the hangup that follows is a repeat: nothing more happens
    again, eff = sp.step(s, sp.ChannelGone(SID, "hangup"), 110.2)
    assert again == s and eff == []
    with pytest.raises(sp.Rejected, match="ended"):
        sp.step(s, sp.ModeRequested(SID, Mode.LISTEN), 111.0)


def test_mode_change_before_answer_is_rejected_and_no_answer_ends() -> None:
    s = _session()
    with pytest.raises(sp.Rejected, match="not_answered"):
        sp.step(s, sp.ModeRequested(SID, Mode.BARGE), 101.0)
    s, eff = sp.step(s, sp.ChannelGone(SID, "no_answer"), 130.0)
    assert s.end_reason == "no_answer"
    # never answered: no mode period to close, no hangup to send
    assert [type(e) for e in eff] == [sp.AuditEnd, sp.Announce]


def test_a_switch_before_chanspy_runs_sets_options_and_its_start_sends_the_key() -> None:
    """Issue 14's race: a switch asked while ChanSpy is not running (answered, not started;
    or stopped and about to be restarted by the dialplan) cannot be a key (ChanSpy's start
    would eat it): the options alone, and the next ChanSpyStart sends the session's key."""
    s, _ = sp.step(_session(), sp.Answered(SID), 101.0)
    s, eff = sp.step(s, sp.ModeRequested(SID, Mode.BARGE), 101.05)
    assert s.mode == Mode.BARGE and eff[1] == sp.SwitchMode(s, None) and s.keys_sent == ()
    s, eff = sp.step(s, sp.SpyStarted(SID), 101.1)
    assert eff == [sp.SwitchMode(s, "6")] and s.keys_sent == ("6",)
    s, _ = sp.step(s, sp.SpyStopped(SID), 102.0)
    s, eff = sp.step(s, sp.ModeRequested(SID, Mode.LISTEN), 102.01)
    assert eff[1] == sp.SwitchMode(s, None)
    s, eff = sp.step(s, sp.SpyStarted(SID), 102.1)
    assert eff == [sp.SwitchMode(s, "4")] and s.keys_sent == ("6", "4")
    # the first key went to the ChanSpy that ended and was never reported: the later report
    # accounts for both
    s, eff = sp.step(s, sp.KeyRead(SID, "4"), 102.2)
    assert s.keys_sent == () and eff == [] and s.mode == Mode.LISTEN


def test_a_key_from_the_supervisors_phone_switches_on_record() -> None:
    s, _ = sp.step(_session(), sp.Answered(SID), 101.0)
    s, _ = sp.step(s, sp.SpyStarted(SID), 101.1)
    s, _ = sp.step(s, sp.KeyRead(SID, "4"), 101.2)
    s, eff = sp.step(s, sp.KeyRead(SID, "6"), 103.0)  # keyed on the phone: ChanSpy barges
    assert s.mode == Mode.BARGE
    assert [type(e) for e in eff] == [sp.AuditMode, sp.SwitchMode, sp.AuditMode, sp.Announce]
    assert eff[1] == sp.SwitchMode(s, None)  # options for a restart; no key back
    assert (eff[0].mode, eff[2].mode) == (Mode.LISTEN, Mode.BARGE)  # type: ignore[union-attr]
    # the same mode again, another key, or a key before the answer: nothing
    assert sp.step(s, sp.KeyRead(SID, "6"), 104.0) == (s, [])
    assert sp.step(s, sp.KeyRead(SID, "9"), 104.0) == (s, [])
    dialing = _session()
    assert sp.step(dialing, sp.KeyRead(SID, "5"), 100.5) == (dialing, [])


def test_keys_awaiting_a_report_are_bounded() -> None:
    s, _ = sp.step(_session(), sp.Answered(SID), 101.0)
    for i in range(20):
        s, _ = sp.step(s, sp.SpyStarted(SID), 102.0 + i)
    assert len(s.keys_sent) == sp.KEYS_REMEMBERED


def test_call_gone_hangs_up_the_spy() -> None:
    s, _ = sp.step(_session(), sp.Answered(SID), 101.0)
    s, eff = sp.step(s, sp.CallGone(s.call_id), 120.0)
    assert s.end_reason == "call_ended" and isinstance(eff[0], sp.HangupSpy)


def test_may_control() -> None:
    s = _session()
    assert sp.may_control(SUP, s) is None
    assert sp.may_control(Actor("S02", "supervisor"), s) == "forbidden"
    assert sp.may_control(Actor("Z1", "admin"), s) is None
    assert sp.may_control(Actor("S01", "agent"), s) == "forbidden"


def test_translate_ami_events() -> None:
    uid = "hotline-spy-" + SID
    assert sp.translate({"Event": "ChanSpyStart", "SpyerUniqueid": uid}) == sp.SpyStarted(SID)
    assert sp.translate({"Event": "ChanSpyStop", "SpyerUniqueid": uid}) == sp.SpyStopped(SID)
    assert sp.translate({"Event": "UserEvent", "UserEvent": "HotlineSpy",
                         "Uniqueid": uid}) == sp.Answered(SID)
    assert sp.translate({"Event": "Hangup", "Uniqueid": uid}) == sp.ChannelGone(SID, "hangup")
    assert sp.translate({"Event": "DTMFEnd", "Uniqueid": uid, "Digit": "5",
                         "Direction": "Received"}) == sp.KeyRead(SID, "5")
    # keys sent out to the phone, keys that switch nothing, a caller's keys: nothing
    assert sp.translate({"Event": "DTMFEnd", "Uniqueid": uid, "Digit": "5",
                         "Direction": "Sent"}) is None
    assert sp.translate({"Event": "DTMFEnd", "Uniqueid": uid, "Digit": "#",
                         "Direction": "Received"}) is None
    assert sp.translate({"Event": "DTMFEnd", "Uniqueid": "1751333405.42", "Digit": "5",
                         "Direction": "Received"}) is None
    assert sp.translate({"Event": "OriginateResponse", "Response": "Failure", "Reason": "3",
                         "Uniqueid": uid}) == sp.ChannelGone(SID, "no_answer")
    assert sp.translate({"Event": "OriginateResponse", "Response": "Success",
                         "Uniqueid": uid}) is None
    # other channels, and ids that are not ours, are nothing
    assert sp.translate({"Event": "Hangup", "Uniqueid": "1751333405.42"}) is None
    assert sp.translate({"Event": "ChanSpyStart", "SpyerUniqueid": "hotline-spy-x"}) is None
