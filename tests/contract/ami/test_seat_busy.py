"""A seat in use when the ACD's offer gets to it (the fault harness's CTI kill -9: right after
the restart the native failover queue rang and connected a seat that the restarted CTI's view
still had ready, and the CTI offered that seat a second call). The dialplan checks the seat's
device state before the offer and sends HotlineSeatBusy instead of ringing it; this is what the
CTI makes of that: no ring-no-answer, the agent not_ready ('seat_busy') while the failover call
there lasts, the caller keeping their place, and the agent offered it once the seat is free.
AMI messages as the dialplan (extensions.conf.j2, hotline-connect) sends them; no socket."""

from __future__ import annotations

from acd.model import CallState
from cti.ami import translate as t
from cti.ami.feed import SEAT_BUSY
from tests.contract.ami.test_seat_reachability import login_ready, running, settle, states

WAITING = "1796526664.31"    # the caller the ACD offers to seat07
FAILED_OVER = "1796526654.9"  # the caller the native queue connected to seat07 meanwhile
CALLER_CH = "PJSIP/carrier-0000001f"


def user_event(kind: str, linkedid: str, **headers: str) -> dict[str, str]:
    return {"Event": "UserEvent", "UserEvent": kind, "Channel": CALLER_CH,
            "Context": "hotline-connect", "Linkedid": linkedid, "Uniqueid": linkedid,
            **headers}


def test_the_dialplan_says_the_seat_was_in_use_and_the_call_waits_again() -> None:
    tracker = t.CallTracker()
    tracker.apply(t.CallQueued(WAITING, CALLER_CH, "13800000001", "general", 0, None, WAITING))
    out = tracker.feed(user_event("HotlineSeatBusy", WAITING, Seat="seat07", State="INUSE"))
    assert out == [t.SeatBusy(WAITING, "seat07")]
    assert tracker.state(WAITING) == t.CallState(t.Phase.WAITING)
    # out of shape: dropped, never a seat named by a caller's header
    assert t.translate(user_event("HotlineSeatBusy", WAITING, Seat="seat07;x")) == []


async def test_a_busy_seat_takes_its_agent_out_until_the_failover_call_there_ends() -> None:
    async with running() as (feed, pbx, bus):
        await login_ready(feed, "a07", "seat07")
        feed.service.call_waiting(WAITING, CALLER_CH, "13800000001", "general", 0, None)
        await settle(feed)
        assert pbx.rung == [(CALLER_CH, "seat07")]  # the ACD chose seat07 ...
        # ... which the failover queue is ringing: the dialplan did not ring it
        feed.core(t.SeatBusy(WAITING, "seat07"))
        await settle(feed)
        view = feed.service.view
        assert (view.agents["a07"].state, view.agents["a07"].reason) == ("not_ready", SEAT_BUSY)
        assert view.calls[WAITING].state is CallState.WAITING  # kept its place, not abandoned
        assert ("not_ready", "rona") not in states(bus, "a07")
        # the failover call there is answered and ends: the agent is ready, and rung with the
        # caller who waited
        feed.core(t.AgentAnswered(FAILED_OVER, "seat07", "PJSIP/seat07-00000020"))
        await settle(feed)
        assert feed.service.view.agents["a07"].reason == SEAT_BUSY
        assert pbx.rung == [(CALLER_CH, "seat07")]  # nothing offered while it talks
        feed.core(t.CallEnded(FAILED_OVER, 16))
        await settle(feed)
        assert pbx.rung == [(CALLER_CH, "seat07"), (CALLER_CH, "seat07")]
        assert states(bus, "a07")[-1] == ("reserved", None)
