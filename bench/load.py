"""The offered load: a seeded Poisson arrival schedule and talk times, the same for both sides."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadSpec:
    agents: int
    minutes: float
    occupancy: float  # target: arrival rate x mean handle time / agents
    seed: int
    talk_mean_s: float
    talk_cap_s: float  # exponential talk times are cut here, so a run ends in bounded time
    wrap_up_s: float
    ring_ms: int  # how long an agent phone rings before the agent picks up
    patience_s: float  # a caller not answered by then hangs up

    @property
    def talk_mean_truncated_s(self) -> float:
        """E[min(X, cap)] for X exponential with the given mean."""
        return self.talk_mean_s * (1 - math.exp(-self.talk_cap_s / self.talk_mean_s))

    @property
    def handle_s(self) -> float:
        """Mean time an agent is taken by one call: ring + talk + wrap-up."""
        return self.ring_ms / 1000 + self.talk_mean_truncated_s + self.wrap_up_s

    @property
    def rate_per_s(self) -> float:
        return self.occupancy * self.agents / self.handle_s


@dataclass(frozen=True)
class Schedule:
    arrivals_s: tuple[float, ...]  # offsets from the start of the run
    talk_ms: tuple[int, ...]  # the n-th answered call talks this long (same order both sides)


def make_schedule(spec: LoadSpec) -> Schedule:
    """Poisson arrivals over `minutes` and exponential talk times, seeded.

    The number of arrivals is fixed at round(rate x horizon) and their times are that many
    uniform points, sorted: exactly a Poisson process conditioned on its count, so the offered
    load is the target and not a few percent off by the luck of one seed. Likewise the talk
    times (exponential, cut at `talk_cap_s`) are scaled so that those of the offered calls
    average the cut distribution's mean.
    """
    rng = random.Random(f"bench-acd-{spec.seed}")
    horizon = spec.minutes * 60
    n = min(100_000, max(1, round(spec.rate_per_s * horizon)))
    arrivals = tuple(sorted(round(rng.uniform(0, horizon), 3) for _ in range(n)))
    talk_rng = random.Random(f"bench-acd-talk-{spec.seed}")
    # a few spare: a call cancelled while ringing also takes one line of the phones' list
    raw = [min(talk_rng.expovariate(1 / spec.talk_mean_s), spec.talk_cap_s)
           for _ in range(n + 50)]
    scale = spec.talk_mean_truncated_s / (sum(raw[:n]) / n)
    talks = tuple(int(min(t * scale, spec.talk_cap_s) * 1000) for t in raw)
    return Schedule(arrivals, talks)


def erlang_c(agents: int, offered_erlangs: float) -> float:
    """Probability that a call waits (Erlang C), for reference next to the measured figures."""
    if offered_erlangs >= agents:
        return 1.0
    term, total = 1.0, 1.0
    for k in range(1, agents):
        term *= offered_erlangs / k
        total += term
    term *= offered_erlangs / agents
    last = term * agents / (agents - offered_erlangs)
    return last / (total + last)


def erlang_c_service_level(agents: int, rate_per_s: float, handle_s: float,
                           within_s: float) -> float:
    """Share answered within `within_s` in the M/M/c model (no abandons): a yardstick only."""
    a = rate_per_s * handle_s
    pw = erlang_c(agents, a)
    return 1 - pw * math.exp(-(agents - a) * within_s / handle_s)
