"""Retries: on no answer, busy, a rejected call or a network failure, with backoff, up to a
limit. An invalid number is never tried again; an attempt whose end was never heard (the CTI
restarted while it was out) counts as made and is tried again only after its backoff, so a
restart never dials anyone twice in a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from outbound.outcome import Outcome

RETRYABLE = frozenset({Outcome.NO_ANSWER, Outcome.BUSY, Outcome.REJECTED, Outcome.FAILED,
                       Outcome.UNKNOWN})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    # the wait after attempt 1, 2, ...: the last one repeats for any later attempt
    backoff_s: tuple[float, ...] = (900.0, 3600.0)
    # busy means the customer is there: try again sooner, but never sooner than this
    busy_backoff_s: float = 300.0
    retry_on: frozenset[Outcome] = field(default_factory=lambda: RETRYABLE)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if not self.backoff_s or any(b < 0 for b in self.backoff_s) or self.busy_backoff_s < 0:
            raise ValueError("backoffs must be given and be 0 or more seconds")
        if Outcome.ANSWERED in self.retry_on or Outcome.INVALID_NUMBER in self.retry_on:
            raise ValueError("an answered call or an invalid number is never retried")

    def wait_after(self, outcome: Outcome, attempts_made: int) -> timedelta:
        base = self.backoff_s[min(attempts_made, len(self.backoff_s)) - 1]
        if outcome is Outcome.BUSY:
            base = min(base, self.busy_backoff_s)
        return timedelta(seconds=base)

    def next_try(self, outcome: Outcome, attempts_made: int, ended_at: datetime
                 ) -> datetime | None:
        """When to try again after the attempt numbered `attempts_made` (1 for the first)
        ended so at `ended_at`; None: no more attempts."""
        if attempts_made < 1:
            raise ValueError("next_try is asked after an attempt: attempts_made >= 1")
        if outcome not in self.retry_on or attempts_made >= self.max_attempts:
            return None
        return ended_at + self.wait_after(outcome, attempts_made)
