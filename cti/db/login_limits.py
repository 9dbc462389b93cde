"""Login limits in the database (docs/api.md "Login limits"): per known account with
exponential backoff, per client address only for user ids that name no account.

An attempt is counted *before* its password is checked, in one transaction that also decides
whether it may go ahead (BEGIN IMMEDIATE on SQLite, SELECT ... FOR UPDATE on PostgreSQL), and
is forgiven when the password was right. So 20 concurrent guesses are serialised on the
counter and only the free ones reach argon2, and a restart does not reset an attacker's count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cti.db.models import Agent
from cti.db.models_web import WebLoginLimit
from cti.db.upsert import insert_on_conflict


@dataclass(frozen=True)
class LoginPolicy:
    free_failures: int          # per account, before any wait
    ip_free_failures: int       # per address, on unknown user ids
    backoff_max_s: int          # the longest one block lasts
    window_s: int               # a counter forgets after this long without a failure


def backoff_s(failures: int, free: int, max_s: int) -> int:
    """Seconds an account is blocked after its `failures`-th failure in a row: none for the
    first free-1, then 2, 4, 8 ... from the free-th on, never more than max_s."""
    if failures < free:
        return 0
    return int(min(2 ** (failures - free + 1), max_s))


def key_for(session: Session, user_id: str, client_ip: str) -> str:
    """The counter an attempt is charged to: the account's when user_id names one (a shared
    office address is then never blocked for valid users), else the address's."""
    known = session.scalar(select(Agent.agent_id).where(Agent.agent_id == user_id))
    return f"user:{user_id}" if known is not None else f"ip:{client_ip}"[:80]


def _row(session: Session, key: str) -> WebLoginLimit:
    session.execute(insert_on_conflict(session, WebLoginLimit)
                    .values(key=key, failures=0)
                    .on_conflict_do_nothing(index_elements=["key"]))
    return session.scalars(select(WebLoginLimit).where(WebLoginLimit.key == key)
                           .with_for_update().execution_options(populate_existing=True)).one()


def take_attempt(session: Session, key: str, now: datetime, policy: LoginPolicy) -> int:
    """0: the attempt may go ahead, and is counted as a failure until forgive() says otherwise.
    Otherwise the seconds to wait (Retry-After); a refused attempt is not counted, so an
    attacker cannot stretch a block: it ends at most backoff_max_s after their last counted
    failure."""
    row = _row(session, key)
    if row.blocked_until is not None and now < row.blocked_until:
        return max(1, math.ceil((row.blocked_until - now).total_seconds()))
    if row.last_failure_at is not None and \
            now - row.last_failure_at >= timedelta(seconds=policy.window_s):
        row.failures = 0
    row.failures += 1
    row.last_failure_at = now
    free = policy.free_failures if key.startswith("user:") else policy.ip_free_failures
    wait = backoff_s(row.failures, free, policy.backoff_max_s)
    row.blocked_until = now + timedelta(seconds=wait) if wait else None
    session.flush()
    return 0


def forgive(session: Session, key: str) -> None:
    """The password was right: the account's count starts again. An address's count (unknown
    user ids) is never forgiven: no login with an unknown id succeeds."""
    if not key.startswith("user:"):
        return
    row = _row(session, key)
    row.failures, row.last_failure_at, row.blocked_until = 0, None, None
    session.flush()


def purge(session: Session, before: datetime) -> None:
    """Counters idle since before are gone (they would have been reset anyway)."""
    from sqlalchemy import delete

    session.execute(delete(WebLoginLimit).where(WebLoginLimit.last_failure_at < before))
