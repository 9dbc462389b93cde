"""After-hours callbacks' pure rule (outbound/callback.py): a due callback is dialled only when
its skill is open and one of its ready agents is left over for it (after the callers waiting
for the skill and the callbacks of the skill already being dialled), highest priority first;
a skill no longer configured sends the customer to the 7×24 skill instead of never calling."""

from __future__ import annotations

from datetime import datetime, timedelta

from outbound.callback import Agents, admit, skill_of
from outbound.jobs import Job
from outbound.window import SHANGHAI

T0 = datetime(2026, 12, 8, 8, 0, tzinfo=SHANGHAI)
KNOWN = {"general", "billing", "repair"}


def _job(i: int, skill: str | None, *, priority: int = 1, waited_min: int = 0) -> Job:
    return Job(id=i, purpose="callback", number=f"1380013800{i}", priority=priority,
               not_before=T0 - timedelta(minutes=waited_min), skill=skill)


def _admit(due: list[Job], agents: Agents, *, in_flight: list[Job] | None = None,
           closed: frozenset[str] = frozenset()) -> list[int]:
    return [j.id for j in admit(due, in_flight or [], agents, known=KNOWN, fallback="general",
                                is_open=lambda s, at: s not in closed, now=T0)]


def test_one_callback_per_free_agent_of_its_skill() -> None:
    due = [_job(1, "billing"), _job(2, "billing"), _job(3, "repair")]
    assert _admit(due, Agents(ready={"billing": 1, "repair": 2})) == [1, 3]
    # no ready agent of the skill: a ready agent of another skill does not count
    assert _admit(due, Agents(ready={"general": 5})) == []


def test_waiting_callers_and_callbacks_in_flight_take_their_agents_first() -> None:
    due = [_job(1, "billing"), _job(2, "billing")]
    assert _admit(due, Agents(ready={"billing": 3}, waiting={"billing": 2})) == [1]
    assert _admit(due, Agents(ready={"billing": 3}),
                  in_flight=[_job(9, "billing"), _job(8, "billing")]) == [1]
    assert _admit(due, Agents(ready={"billing": 2}, waiting={"billing": 1}),
                  in_flight=[_job(9, "billing")]) == []


def test_a_closed_skill_waits_whatever_its_agents() -> None:
    due = [_job(1, "billing"), _job(2, "repair")]
    assert _admit(due, Agents(ready={"billing": 4, "repair": 4}),
                  closed=frozenset({"billing"})) == [2]


def test_the_highest_priority_then_the_longest_waiting_goes_first() -> None:
    due = [_job(1, "billing", waited_min=5), _job(2, "billing", waited_min=30),
           _job(3, "billing", priority=5)]
    assert _admit(due, Agents(ready={"billing": 2})) == [3, 2]


def test_a_skill_no_longer_configured_goes_to_the_always_open_one() -> None:
    assert skill_of(_job(1, "billing"), KNOWN, "general") == "billing"
    assert skill_of(_job(1, "water"), KNOWN, "general") == "general"
    assert skill_of(_job(1, None), KNOWN, "general") == "general"
    # and it takes an agent of that skill, so it is still called
    assert _admit([_job(1, "water")], Agents(ready={"general": 1})) == [1]
    assert _admit([_job(1, "water")], Agents(ready={"water": 1})) == []
