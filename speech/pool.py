"""The bound on concurrent decodes. A call that wants a decoder and finds none free gets the
key menu instead (it never waits: the prompt is already playing), and that is counted."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class PoolStats:
    size: int
    in_use: int
    peak: int       # the most decoders in use at once since start
    granted: int    # leases handed out
    fallbacks: int  # calls that wanted a decoder and fell back to keys


class Lease:
    """One decoder slot; release() (or leaving a `with`) gives it back, once."""

    def __init__(self, pool: DecoderPool) -> None:
        self._pool: DecoderPool | None = pool
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool._release()

    @property
    def held(self) -> bool:
        return self._pool is not None

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class DecoderPool:
    """At most `size` leases out at once; thread-safe."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a decoder pool needs at least 1 decoder, not {size}")
        self.size = size
        self._lock = threading.Lock()
        self._in_use = 0
        self._peak = 0
        self._granted = 0
        self._fallbacks = 0

    def try_acquire(self) -> Lease | None:
        """A lease, or None at once when all are out (counted as a fallback to keys)."""
        with self._lock:
            if self._in_use >= self.size:
                self._fallbacks += 1
                return None
            self._in_use += 1
            self._granted += 1
            self._peak = max(self._peak, self._in_use)
        return Lease(self)

    def _release(self) -> None:
        with self._lock:
            if self._in_use <= 0:
                raise RuntimeError("decoder pool released more than it lent")
            self._in_use -= 1

    @property
    def in_use(self) -> int:
        with self._lock:
            return self._in_use

    @property
    def peak(self) -> int:
        with self._lock:
            return self._peak

    @property
    def fallbacks(self) -> int:
        with self._lock:
            return self._fallbacks

    def stats(self) -> PoolStats:
        """All counters from one moment."""
        with self._lock:
            return PoolStats(self.size, self._in_use, self._peak, self._granted,
                             self._fallbacks)
