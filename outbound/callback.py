"""After-hours callbacks (issue 15 §3): which due `callback` jobs may be dialled now, and for
which skill.

A caller of a closed skill booked a call back for when it opens (ivr/agi_session.py); the job
is due then. The customer who answers is queued to that skill's agents as an inbound caller
is, so a job is dialled only when its skill is open and one of its agents is free for it: a
ready agent with the skill, beyond the callers already waiting for that skill and the
callbacks of that skill already being dialled. Counting an answered callback both as dialled
and as waiting errs towards dialling later, never towards a customer who answers to an empty
queue. A job whose skill is no longer a configured skill (removed or disabled since it was
booked) goes to the 7×24 skill rather than never being called.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from outbound.jobs import Job

PURPOSE = "callback"
# the queue priority of a callback's customer (acd.routing: important customer +10, VIP +8):
# they called when the skill was closed and have waited for it since
QUEUE_PRIORITY = 10


@dataclass(frozen=True)
class Agents:
    """What the ACD shows now, per skill."""
    ready: Mapping[str, int] = field(default_factory=dict)    # ready agents holding the skill
    waiting: Mapping[str, int] = field(default_factory=dict)  # callers waiting for the skill


def skill_of(job: Job, known: Collection[str], fallback: str) -> str:
    """The skill the job's customer is queued to: its own while it is configured, else the
    7×24 one."""
    return job.skill if job.skill is not None and job.skill in known else fallback


def admit(due: Iterable[Job], in_flight: Iterable[Job], agents: Agents, *,
          known: Collection[str], fallback: str, is_open: Callable[[str, datetime], bool],
          now: datetime) -> list[Job]:
    """The due callback jobs that may be dialled now, highest priority and longest waiting
    first (outbound.jobs.pick's order): each takes one free agent of its skill."""
    dialling: dict[str, int] = {}
    for job in in_flight:
        s = skill_of(job, known, fallback)
        dialling[s] = dialling.get(s, 0) + 1
    room = {s: agents.ready.get(s, 0) - agents.waiting.get(s, 0) - dialling.get(s, 0)
            for s in set(agents.ready) | set(dialling)}
    far = datetime.min.replace(tzinfo=now.tzinfo)
    out: list[Job] = []
    for job in sorted(due, key=lambda j: (-j.priority, j.not_before or far, j.id)):
        s = skill_of(job, known, fallback)
        if room.get(s, 0) > 0 and is_open(s, now):
            room[s] -= 1
            out.append(job)
    return out
