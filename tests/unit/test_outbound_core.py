"""The outbound engine's pure core (outbound/): call windows, outcomes, retries, pacing,
do-not-call and each job's states, restart included."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbound.dnc import BadNumber, DoNotCall, national
from outbound.jobs import (
    BadTransition,
    Job,
    Purpose,
    State,
    cancel,
    finish,
    is_due,
    pick,
    recover,
    screen,
    start,
)
from outbound.outcome import Outcome, classify
from outbound.pacing import Capacity, Pacing
from outbound.retry import RetryPolicy
from outbound.window import SHANGHAI, CallWindow, NeverOpen

RETURN_VISIT = Purpose("return_visit", "hotline-return-visit", hand_over=True)
NOTICE = Purpose("outage_notice", "hotline-outage-notice")


def cst(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SHANGHAI)


# ------------------------------------------------------------------------------ windows

def test_default_window_is_eight_to_nine_local_time() -> None:
    w = CallWindow()
    assert not w.allows(cst(2026, 12, 7, 7, 59))
    assert w.allows(cst(2026, 12, 7, 8, 0))
    assert w.allows(cst(2026, 12, 7, 20, 59))
    assert not w.allows(cst(2026, 12, 7, 21, 0))
    # 13:00 UTC is 21:00 in Shanghai: the window is the center's local time, not UTC
    assert not w.allows(datetime(2026, 12, 7, 13, 0, tzinfo=UTC))
    assert w.allows(datetime(2026, 12, 7, 0, 30, tzinfo=UTC))


def test_quiet_days_and_weekdays_are_closed_all_day() -> None:
    w = CallWindow(quiet_days=frozenset({date(2027, 2, 6)}), quiet_weekdays=frozenset({6}))
    assert not w.allows(cst(2027, 2, 6, 10))          # a holiday (a Saturday, listed)
    assert not w.allows(cst(2027, 2, 7, 10))          # a Sunday
    assert w.allows(cst(2027, 2, 8, 10))              # Monday
    assert w.next_open(cst(2027, 2, 5, 22)) == cst(2027, 2, 8, 8)


def test_next_open_and_closing_time() -> None:
    w = CallWindow()
    assert w.next_open(cst(2026, 12, 7, 6, 15)) == cst(2026, 12, 7, 8)
    assert w.next_open(cst(2026, 12, 7, 21, 30)) == cst(2026, 12, 8, 8)
    assert w.next_open(cst(2026, 12, 7, 9)) == cst(2026, 12, 7, 9)
    assert w.closes_after(cst(2026, 12, 7, 9)) == cst(2026, 12, 7, 21)
    assert w.closes_after(cst(2026, 12, 7, 22)) is None


def test_a_window_over_midnight_belongs_to_the_day_it_opened() -> None:
    w = CallWindow(opens=time(22), closes=time(6), quiet_days=frozenset({date(2026, 12, 7)}))
    assert not w.allows(cst(2026, 12, 8, 1))   # the night of the 7th, a quiet day
    assert w.allows(cst(2026, 12, 9, 1))       # the night of the 8th
    assert not w.allows(cst(2026, 12, 9, 12))
    assert w.closes_after(cst(2026, 12, 8, 23)) == cst(2026, 12, 9, 6)


def test_windows_that_cannot_open_are_refused() -> None:
    with pytest.raises(NeverOpen):
        CallWindow(opens=time(8), closes=time(8))
    with pytest.raises(NeverOpen):
        CallWindow(quiet_weekdays=frozenset(range(7))).next_open(cst(2026, 12, 7, 9))
    with pytest.raises(ValueError, match="0 \\(Monday\\) to 6"):
        CallWindow(quiet_weekdays=frozenset({7}))
    with pytest.raises(ValueError, match="time zone"):
        CallWindow().allows(datetime(2026, 12, 7, 9))


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 1, 1),
                    timezones=st.just(UTC)),
       st.sets(st.integers(0, 6), max_size=6))
def test_next_open_is_allowed_and_nothing_earlier_is(at: datetime, quiet: set[int]) -> None:
    w = CallWindow(quiet_weekdays=frozenset(quiet))
    nxt = w.next_open(at)
    assert nxt >= at and w.allows(nxt)
    # nothing between `at` and nxt is open (checked each 30 minutes and just before nxt)
    probe = at
    while probe < nxt - timedelta(minutes=30):
        assert not w.allows(probe)
        probe += timedelta(minutes=30)
    if nxt > at:
        assert not w.allows(nxt - timedelta(seconds=1))


# ------------------------------------------------------------------------------ outcomes

@pytest.mark.parametrize(("reason", "cause", "outcome"), [
    (4, None, Outcome.ANSWERED),
    (4, 16, Outcome.ANSWERED),
    (5, None, Outcome.BUSY),
    (1, 17, Outcome.BUSY),
    (3, None, Outcome.NO_ANSWER),
    (1, 19, Outcome.NO_ANSWER),
    (1, 21, Outcome.REJECTED),
    (0, 1, Outcome.INVALID_NUMBER),
    (8, None, Outcome.FAILED),
    (0, None, Outcome.FAILED),
    (None, 34, Outcome.FAILED),
    (None, 16, Outcome.NO_ANSWER),
    (None, None, Outcome.UNKNOWN),
    (None, 999, Outcome.FAILED),
])
def test_classify(reason: int | None, cause: int | None, outcome: Outcome) -> None:
    assert classify(reason, cause) is outcome


# ------------------------------------------------------------------------------ retries

def test_retries_back_off_then_stop() -> None:
    p = RetryPolicy(max_attempts=3, backoff_s=(600, 1800), busy_backoff_s=120)
    t = cst(2026, 12, 7, 10)
    assert p.next_try(Outcome.NO_ANSWER, 1, t) == t + timedelta(seconds=600)
    assert p.next_try(Outcome.NO_ANSWER, 2, t) == t + timedelta(seconds=1800)
    assert p.next_try(Outcome.NO_ANSWER, 3, t) is None
    assert p.next_try(Outcome.BUSY, 2, t) == t + timedelta(seconds=120)
    assert p.next_try(Outcome.UNKNOWN, 1, t) == t + timedelta(seconds=600)
    assert p.next_try(Outcome.INVALID_NUMBER, 1, t) is None
    assert p.next_try(Outcome.ANSWERED, 1, t) is None
    with pytest.raises(ValueError, match="never retried"):
        RetryPolicy(retry_on=frozenset({Outcome.ANSWERED}))
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(max_attempts=0)


# ------------------------------------------------------------------------------ pacing

def test_pacing_keeps_to_every_limit() -> None:
    p = Pacing(max_concurrent=4, reserve_channels=2)
    assert p.launches(10, Capacity(active=0, channels_free=30)) == 4
    assert p.launches(10, Capacity(active=3, channels_free=30)) == 1
    assert p.launches(10, Capacity(active=0, channels_free=4)) == 2   # 2 kept for inbound
    assert p.launches(1, Capacity(active=0, channels_free=30)) == 1
    assert p.launches(10, Capacity(active=0, channels_free=30), paused=True) == 0
    assert p.launches(10, Capacity(active=9, channels_free=0)) == 0


def test_outbound_never_takes_an_agent_an_inbound_caller_waits_for() -> None:
    p = Pacing(max_concurrent=10, reserve_channels=0)
    full = Capacity(active=0, channels_free=30, ready_agents=3, waiting_inbound=3)
    assert p.launches(5, full, needs_agent=True) == 0
    spare = Capacity(active=0, channels_free=30, ready_agents=5, waiting_inbound=3)
    assert p.launches(5, spare, needs_agent=True) == 2
    # a purpose that needs no agent (an IVR survey) is not held by the queue
    assert p.launches(5, full) == 5


@given(st.integers(0, 50), st.integers(0, 20), st.integers(0, 40), st.integers(0, 50),
       st.integers(0, 50), st.integers(0, 20), st.integers(0, 5), st.booleans())
def test_pacing_never_exceeds_any_bound(due: int, active: int, free: int, ready: int,
                                        waiting: int, most: int, reserve: int,
                                        needs_agent: bool) -> None:
    p = Pacing(max_concurrent=most, reserve_channels=reserve)
    n = p.launches(due, Capacity(active, free, ready, waiting), needs_agent=needs_agent)
    assert 0 <= n <= due
    assert active + n <= max(most, active)
    assert n <= max(free - reserve, 0)
    if needs_agent:
        assert n <= max(ready - waiting, 0)


# ------------------------------------------------------------------------------ do-not-call

@pytest.mark.parametrize(("raw", "want"), [
    ("13800138000", "13800138000"),
    ("+86 138-0013-8000", "13800138000"),
    ("008613800138000", "13800138000"),
    ("8613800138000", "13800138000"),
    ("010 6512 3456", "01065123456"),
    ("+86 10 6512 3456", "01065123456"),
])
def test_numbers_compare_in_their_national_form(raw: str, want: str) -> None:
    assert national(raw) == want


def test_do_not_call_blocks_every_spelling_and_anything_not_a_number() -> None:
    dnc = DoNotCall(["+86 13800138000", "010-65123456"])
    assert len(dnc) == 2
    assert dnc.blocks("13800138000") and dnc.blocks("0086 138 0013 8000")
    assert dnc.blocks("+861065123456")
    assert not dnc.blocks("13900139000")
    assert dnc.blocks("") and dnc.blocks("abc") and dnc.blocks("1" * 25)
    with pytest.raises(BadNumber):
        DoNotCall(["not a number"])


# ------------------------------------------------------------------------------ jobs

POLICY = RetryPolicy(max_attempts=3, backoff_s=(600, 1800))
WINDOW = CallWindow()


def job(**kw: object) -> Job:
    base: dict[str, object] = {"id": 1, "purpose": "return_visit", "number": "13800138000"}
    return Job(**(base | kw))  # type: ignore[arg-type]


def test_a_return_visit_answered_at_the_second_try() -> None:
    t = cst(2026, 12, 7, 10)
    j = start(job())
    assert j.state is State.DIALING and j.attempts == 1
    j = finish(j, Outcome.NO_ANSWER, t, policy=POLICY, window=WINDOW, purpose=RETURN_VISIT)
    assert j.state is State.SCHEDULED and j.not_before == t + timedelta(minutes=10)
    assert not is_due(j, t + timedelta(minutes=5), WINDOW)
    assert is_due(j, t + timedelta(minutes=10), WINDOW)
    j = finish(start(j), Outcome.ANSWERED, t, policy=POLICY, window=WINDOW,
               purpose=RETURN_VISIT)
    assert j.state is State.DONE and j.attempts == 2 and not j.open


def test_no_answer_after_the_tries_hands_a_return_visit_to_an_agent() -> None:
    t = cst(2026, 12, 7, 10)
    j = job()
    for _ in range(3):
        assert j.state is State.SCHEDULED
        j = finish(start(j), Outcome.NO_ANSWER, t, policy=POLICY, window=WINDOW,
                   purpose=RETURN_VISIT)
    assert j.state is State.HANDED_OVER and j.attempts == 3
    notice = finish(start(job(attempts=2)), Outcome.BUSY, t, policy=POLICY, window=WINDOW,
                    purpose=NOTICE)
    assert notice.state is State.GAVE_UP


def test_a_retry_that_would_fall_after_closing_waits_for_the_next_window() -> None:
    late = cst(2026, 12, 7, 20, 55)
    j = finish(start(job()), Outcome.NO_ANSWER, late, policy=POLICY, window=WINDOW,
               purpose=RETURN_VISIT)
    assert j.not_before == cst(2026, 12, 8, 8)


def test_a_job_past_its_deadline_expires_instead_of_retrying() -> None:
    t = cst(2026, 12, 7, 10)
    j = finish(start(job(expires_at=t + timedelta(minutes=5))), Outcome.NO_ANSWER, t,
               policy=POLICY, window=WINDOW, purpose=NOTICE)
    assert j.state is State.EXPIRED
    assert screen(job(expires_at=t), t, DoNotCall()).state is State.EXPIRED


def test_the_do_not_call_list_blocks_before_any_dial() -> None:
    t = cst(2026, 12, 7, 10)
    assert screen(job(), t, DoNotCall(["13800138000"])).state is State.BLOCKED
    assert screen(job(), t, DoNotCall()).state is State.SCHEDULED


def test_a_restart_never_dials_twice() -> None:
    t = cst(2026, 12, 7, 10)
    dialing = start(job())
    # still on a live channel carrying its attempt id: left alone, heard to its end
    assert recover(dialing, live=True, now=t, policy=POLICY, window=WINDOW,
                   purpose=RETURN_VISIT) == dialing
    # no live channel: counted as made, outcome unknown, and it waits its backoff
    j = recover(dialing, live=False, now=t, policy=POLICY, window=WINDOW, purpose=RETURN_VISIT)
    assert j.state is State.SCHEDULED and j.attempts == 1
    assert j.last_outcome is Outcome.UNKNOWN
    assert not is_due(j, t, WINDOW) and not pick([j], t, WINDOW, 5)
    with pytest.raises(BadTransition):
        start(dialing)
    with pytest.raises(BadTransition):
        finish(job(), Outcome.ANSWERED, t, policy=POLICY, window=WINDOW, purpose=RETURN_VISIT)


def test_pick_takes_priority_then_the_longest_waiting_and_only_in_the_window() -> None:
    t = cst(2026, 12, 7, 10)
    jobs = [job(id=1, not_before=t - timedelta(minutes=1)),
            job(id=2, not_before=t - timedelta(minutes=30)),
            job(id=3, priority=5, not_before=t),
            job(id=4, not_before=t + timedelta(minutes=1)),
            job(id=5, state=State.DONE)]
    assert [j.id for j in pick(jobs, t, WINDOW, 10)] == [3, 2, 1]
    assert [j.id for j in pick(jobs, t, WINDOW, 2)] == [3, 2]
    assert pick(jobs, cst(2026, 12, 7, 22), WINDOW, 10) == []
    assert pick(jobs, t, WINDOW, 0) == []


def test_cancel_withdraws_only_what_is_not_yet_dialing() -> None:
    assert cancel(job()).state is State.CANCELLED
    dialing = start(job())
    assert cancel(dialing) is dialing


def test_what_the_dialplan_kept_in_astdb_reads_as_the_results_fields() -> None:
    from callcenter.outbound_service import kept_fields
    assert kept_fields("1") == {"Key": "1"}
    assert kept_fields("none") == {"Key": "none"}
    assert kept_fields("none|1|2") == {"Key": "none", "Heard": "1", "Repeats": "2"}
    for bad in ("", "12", "none|1", "none|x|0", "1|1|1|1", "none|100|0", "pbx1|ivr|17649"):
        assert kept_fields(bad) is None, bad
