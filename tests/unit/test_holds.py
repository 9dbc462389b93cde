"""The caller's holds from Asterisk's music-on-hold events (callcenter/holds.py, pure part):
only music in hotline-hold,caller is a hold; it ends at the music's stop or the hangup; times
are Asterisk's; what is not a call's or not well formed is ignored."""

from __future__ import annotations

from typing import Any

from callcenter.holds import Hold, HoldTracker, event_time

CALL = "pbx1-1764210000.12"
CHAN = "PJSIP/carrier-0000002a"


def _moh(name: str, t: float, **kw: Any) -> dict[str, Any]:
    return {"Event": name, "Channel": CHAN, "Uniqueid": "pbx1-1764210000.13",
            "Linkedid": CALL, "Context": "hotline-hold", "Exten": "caller",
            "Timestamp": f"{t:.6f}", **kw}


def test_a_hold_runs_from_the_music_to_its_stop_in_asterisks_time() -> None:
    tr = HoldTracker()
    assert tr.feed(_moh("MusicOnHoldStart", 100.25), now=500.0) is None
    # at the stop, the channel's snapshot may already be somewhere else: the channel is known
    assert tr.feed(_moh("MusicOnHoldStop", 112.5, Context="hotline-hold", Exten="resume"),
                   now=501.0) == Hold(CALL, 100.25, 112.5)
    assert tr.on_hold == {}
    assert tr.feed(_moh("MusicOnHoldStop", 113.0), now=501.0) is None  # once


def test_the_callers_hangup_on_hold_ends_it_and_a_repeated_start_keeps_the_first() -> None:
    tr = HoldTracker()
    tr.feed(_moh("MusicOnHoldStart", 10.0), now=0.0)
    tr.feed(_moh("MusicOnHoldStart", 11.0), now=0.0)
    assert tr.feed(_moh("Hangup", 30.0, Context="hotline-hold"), now=0.0) == Hold(CALL, 10.0,
                                                                                  30.0)


def test_music_elsewhere_is_no_hold() -> None:
    tr = HoldTracker()
    # a waiting caller's music in the queue, and a Local channel in the hold context
    assert tr.feed(_moh("MusicOnHoldStart", 1.0, Context="hotline-wait", Exten="s"),
                   now=0.0) is None
    assert tr.feed(_moh("MusicOnHoldStart", 1.0, Channel="Local/x@y-00000001;2"),
                   now=0.0) is None
    # the agent's leg waiting in hotline-hold (silence, Wait()) has no music
    assert tr.feed(_moh("MusicOnHoldStart", 1.0, Exten="agent"), now=0.0) is None
    assert tr.on_hold == {}


def test_a_linkedid_out_of_shape_is_ignored_and_a_missing_time_is_the_clocks() -> None:
    tr = HoldTracker()
    assert tr.feed(_moh("MusicOnHoldStart", 1.0, Linkedid="x\r\nEvent: Forged"),
                   now=0.0) is None
    assert tr.on_hold == {}
    assert event_time({"Timestamp": "nan"}, 7.0) == 7.0
    assert event_time({"Timestamp": "soon"}, 7.0) == 7.0
    assert event_time({}, 7.0) == 7.0
    tr.feed({k: v for k, v in _moh("MusicOnHoldStart", 0).items() if k != "Timestamp"},
            now=5.0)
    # a stop that came out of order (earlier than its start) is a hold of no time, not less
    assert tr.feed(_moh("MusicOnHoldStop", 4.0), now=6.0) == Hold(CALL, 5.0, 5.0)
