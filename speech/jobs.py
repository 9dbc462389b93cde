"""The rules of a transcription job (one per recording; the table is transcription_jobs):
which state follows which, when a failure is retried, what a restart does, and which language a
recording is transcribed in. Pure.

    queued --claim--> running --success--> done
                         |--failure, attempts left--> queued
                         |--failure, none left------> failed
    running, its process gone (found at start) --> queued, or failed with no attempts left

An attempt is counted when a worker claims the job, so a recording that kills the process
(a crash inside the recogniser) is not tried for ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


STATES: tuple[str, ...] = tuple(s.value for s in JobState)
ALERT_STATUSES: tuple[str, ...] = ("open", "order_created", "dismissed")
# what GET /api/recordings says of a recording without a job
NO_JOB = "none"
MAX_ERROR = 500  # characters of an error kept on the job


class JobStateError(ValueError):
    """A step that cannot follow the job's state."""


def claimable(state: str, attempts: int, max_attempts: int) -> bool:
    """A worker may take it: queued, with an attempt left."""
    return state == JobState.QUEUED and attempts < max_attempts


def after_failure(state: str, attempts: int, max_attempts: int) -> JobState:
    """A running job failed after `attempts` tries (this one counted): queued again while
    attempts are left, else failed for good."""
    if state != JobState.RUNNING:
        raise JobStateError(f"only a running job can fail, not a {state} one")
    return JobState.QUEUED if attempts < max_attempts else JobState.FAILED


def after_success(state: str) -> JobState:
    if state != JobState.RUNNING:
        raise JobStateError(f"only a running job can finish, not a {state} one")
    return JobState.DONE


def at_start(state: str, attempts: int, max_attempts: int) -> JobState:
    """What a job becomes when the CTI starts: one left running by a process that is gone goes
    back to the queue (or fails, with no attempts left); the others stay as they are."""
    if state == JobState.RUNNING:
        return JobState.QUEUED if attempts < max_attempts else JobState.FAILED
    return JobState(state)


def pick_language(call_lang: str | None, configured: Sequence[str]) -> str | None:
    """The model a recording is transcribed with: the call's language when a model is
    configured for it, else the first configured one; None without any model."""
    if call_lang and call_lang in configured:
        return call_lang
    return configured[0] if configured else None


def clip_error(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text[:MAX_ERROR]
