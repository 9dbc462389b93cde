"""One outbound job (a customer to call for one purpose) and its states.

    scheduled --start--> dialing --finish(answered)--> done
        ^                   |
        +---(retry later)---+--(no more tries)--> handed_over (to an agent's list) | gave_up
    scheduled --(on the do-not-call list)--> blocked;  --(past its deadline)--> expired

Exactly-once dialing rests on one rule the service keeps: an attempt is written (committed)
in state `dialing`, with its own id, before its Originate is sent, and the Originate carries
that id (a channel variable). A restart finds the job still `dialing`: if a live channel
carries the id the call goes on and is heard to its end; if none does, the attempt counts
as made with outcome `unknown` and the job waits its backoff like any unanswered attempt.
Nothing is ever dialled again because a reply was not heard.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from outbound.dnc import DoNotCall
from outbound.outcome import Outcome
from outbound.retry import RetryPolicy
from outbound.window import CallWindow, NeverOpen


class State(StrEnum):
    SCHEDULED = "scheduled"
    DIALING = "dialing"
    DONE = "done"
    HANDED_OVER = "handed_over"
    GAVE_UP = "gave_up"
    BLOCKED = "blocked"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


OPEN = frozenset({State.SCHEDULED, State.DIALING})


@dataclass(frozen=True)
class Purpose:
    """What a kind of call is: its dialplan context, whether an agent must be free for it,
    and what happens when the tries run out."""
    name: str                  # return_visit, outage_notice, callback, click_to_call, ...
    context: str               # the dialplan context the answered call runs in
    needs_agent: bool = False
    hand_over: bool = False    # no answer after the tries: an agent's list (return visits)
    priority: int = 0          # higher first among jobs due at once


@dataclass(frozen=True)
class Job:
    id: int
    purpose: str
    number: str
    state: State = State.SCHEDULED
    attempts: int = 0
    not_before: datetime | None = None
    expires_at: datetime | None = None   # a notice after the outage began is worth nothing
    last_outcome: Outcome | None = None
    priority: int = 0
    lang: str = "zh"                     # the customer's: what the call says, zh or en
    skill: str | None = None             # whose agents take it (an after-hours callback's)

    @property
    def open(self) -> bool:
        return self.state in OPEN


class BadTransition(ValueError):
    """A step that the job's state does not allow (a bug in the caller, not in the input)."""


def is_due(job: Job, now: datetime, window: CallWindow) -> bool:
    return (job.state is State.SCHEDULED and (job.not_before is None or job.not_before <= now)
            and (job.expires_at is None or now < job.expires_at) and window.allows(now))


def pick(jobs: Iterable[Job], now: datetime, window: CallWindow, launches: int) -> list[Job]:
    """The jobs to start now: due ones, by priority, then the longest waiting, then id."""
    if launches <= 0:
        return []
    due = [j for j in jobs if is_due(j, now, window)]
    far = datetime.min.replace(tzinfo=now.tzinfo)
    due.sort(key=lambda j: (-j.priority, j.not_before or far, j.id))
    return due[:launches]


def screen(job: Job, now: datetime, dnc: DoNotCall) -> Job:
    """Before a start: a number on the do-not-call list is blocked, a job past its deadline
    expired; otherwise the job as it was."""
    if job.state is not State.SCHEDULED:
        return job
    if dnc.blocks(job.number):
        return replace(job, state=State.BLOCKED)
    if job.expires_at is not None and now >= job.expires_at:
        return replace(job, state=State.EXPIRED)
    return job


def start(job: Job) -> Job:
    """The attempt about to be written and dialled (attempts counts it from here)."""
    if job.state is not State.SCHEDULED:
        raise BadTransition(f"job {job.id} is {job.state}, not scheduled: not started")
    return replace(job, state=State.DIALING, attempts=job.attempts + 1)


def finish(job: Job, outcome: Outcome, ended_at: datetime, *, policy: RetryPolicy,
           window: CallWindow, purpose: Purpose) -> Job:
    """The attempt ended so: done, scheduled again (at the first open moment after its
    backoff) or out of tries."""
    if job.state is not State.DIALING:
        raise BadTransition(f"job {job.id} is {job.state}, not dialing: no attempt to finish")
    if outcome is Outcome.ANSWERED:
        return replace(job, state=State.DONE, last_outcome=outcome)
    again = policy.next_try(outcome, job.attempts, ended_at)
    if again is not None:
        try:
            again = window.next_open(again)
        except NeverOpen:
            again = None
    if again is not None and (job.expires_at is None or again < job.expires_at):
        return replace(job, state=State.SCHEDULED, not_before=again, last_outcome=outcome)
    out = State.HANDED_OVER if purpose.hand_over else State.GAVE_UP
    if job.expires_at is not None and again is not None:
        out = State.EXPIRED
    return replace(job, state=out, last_outcome=outcome)


def recover(job: Job, *, live: bool, now: datetime, policy: RetryPolicy, window: CallWindow,
            purpose: Purpose) -> Job:
    """A restart found the job `dialing`: still on a live channel (its attempt id), it goes
    on; otherwise its end was never heard and it counts as made (outcome unknown)."""
    if job.state is not State.DIALING or live:
        return job
    return finish(job, Outcome.UNKNOWN, now, policy=policy, window=window, purpose=purpose)


def cancel(job: Job) -> Job:
    """An operator or the work order withdrew it (the order reopened, say). A job already
    dialing is left to end; the service cancels what is still scheduled."""
    if job.state is not State.SCHEDULED:
        return job
    return replace(job, state=State.CANCELLED)
