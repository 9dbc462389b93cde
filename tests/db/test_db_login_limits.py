"""Login counters (cti/db/login_limits.py) on SQLite and PostgreSQL: concurrent attempts are
counted atomically, the backoff doubles up to its bound, an address is never forgiven."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from cti.db import login_limits
from cti.db.login_limits import LoginPolicy
from cti.db.models_web import WebLoginLimit

POLICY = LoginPolicy(free_failures=5, ip_free_failures=20, backoff_max_s=60, window_s=300)


def test_twenty_concurrent_attempts_let_exactly_the_free_ones_through(
        session_factory: sessionmaker[Session], now: datetime) -> None:
    results: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def attempt() -> None:
        start.wait()
        with session_factory.begin() as s:
            wait = login_limits.take_attempt(s, "user:A001", now, POLICY)
        with lock:
            results.append(wait)

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 20
    assert results.count(0) == POLICY.free_failures, results


def test_backoff_doubles_to_its_bound_and_a_success_forgives_only_accounts(
        session_factory: sessionmaker[Session], now: datetime) -> None:
    waits = []
    t = now
    with session_factory.begin() as s:
        for _ in range(12):
            assert login_limits.take_attempt(s, "user:A002", t, POLICY) == 0
            row = s.get(WebLoginLimit, "user:A002")
            assert row is not None
            wait = int((row.blocked_until - t).total_seconds()) if row.blocked_until else 0
            waits.append(wait)
            if wait:  # during the block: refused, and not counted
                assert login_limits.take_attempt(s, "user:A002", t, POLICY) == wait
            t += timedelta(seconds=wait)
    assert waits == [0, 0, 0, 0, 2, 4, 8, 16, 32, 60, 60, 60]
    with session_factory.begin() as s:
        login_limits.forgive(s, "user:A002")
        assert login_limits.take_attempt(s, "user:A002", t, POLICY) == 0
        for _ in range(20):
            assert login_limits.take_attempt(s, "ip:10.0.0.9", t, POLICY) == 0
        login_limits.forgive(s, "ip:10.0.0.9")  # no effect: unknown ids never succeed
        assert login_limits.take_attempt(s, "ip:10.0.0.9", t, POLICY) == 2
    # after the window without failures, counting starts again
    with session_factory.begin() as s:
        later = t + timedelta(seconds=POLICY.window_s + 60)
        assert login_limits.take_attempt(s, "ip:10.0.0.9", later, POLICY) == 0
        login_limits.purge(s, later + timedelta(seconds=1))
        assert login_limits.take_attempt(s, "ip:10.0.0.9", later, POLICY) == 0
