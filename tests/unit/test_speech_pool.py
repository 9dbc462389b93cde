"""speech.pool: at most max_decoders decodes at once; a call past the bound gets keys, counted."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from speech.pool import DecoderPool, PoolStats


def test_past_the_bound_a_call_falls_back_to_keys_and_is_counted() -> None:
    pool = DecoderPool(2)
    a, b = pool.try_acquire(), pool.try_acquire()
    assert a is not None and b is not None

    assert pool.try_acquire() is None
    assert pool.try_acquire() is None
    assert (pool.in_use, pool.peak, pool.fallbacks) == (2, 2, 2)

    a.release()
    c = pool.try_acquire()
    assert c is not None and c.held
    assert pool.stats() == PoolStats(size=2, in_use=2, peak=2, granted=3, fallbacks=2)


def test_a_lease_gives_its_slot_back_once() -> None:
    pool = DecoderPool(1)
    with pool.try_acquire() as lease:  # type: ignore[union-attr]
        assert pool.in_use == 1
    assert pool.in_use == 0 and not lease.held
    lease.release()  # again: nothing more is given back
    assert pool.in_use == 0
    assert pool.try_acquire() is not None


def test_a_slot_comes_back_when_the_decode_fails() -> None:
    pool = DecoderPool(1)
    with pytest.raises(RuntimeError, match="decoder died"), \
            pool.try_acquire():  # type: ignore[union-attr]
        raise RuntimeError("decoder died")
    assert pool.in_use == 0


def test_a_pool_needs_a_decoder() -> None:
    with pytest.raises(ValueError, match="at least 1 decoder, not 0"):
        DecoderPool(0)


def test_many_threads_never_hold_more_than_the_bound() -> None:
    size, calls = 3, 40
    pool = DecoderPool(size)
    start = threading.Barrier(calls)
    over: list[int] = []

    def call() -> bool:
        start.wait()  # all ask at once
        lease = pool.try_acquire()
        if lease is None:
            return False
        with lease:
            n = pool.in_use
            if n > size:
                over.append(n)
        return True

    with ThreadPoolExecutor(calls) as ex:
        got = list(ex.map(lambda _: call(), range(calls)))

    s = pool.stats()
    assert not over
    assert s.in_use == 0
    assert 1 <= s.peak <= size
    assert s.granted == got.count(True) and s.fallbacks == got.count(False)
    assert s.granted + s.fallbacks == calls
