"""The post-call survey's figures (issue 14 §3): how many callers were asked, how many rated the
call and their average, per agent and per skill, over a window of time. Read from the call
records (calls.survey_at, survey_agent_id, survey_skill, satisfaction: cti.db.calls.record_survey
writes them), grouped in the database, so a month of calls is a few rows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cti.db.models import SATISFACTION_MAX, SATISFACTION_MIN, Agent, Call

SCORES = tuple(range(SATISFACTION_MIN, SATISFACTION_MAX + 1))
# the days a report may name: far enough either way for any call record, and a day's midnight
# in any time zone still a datetime (date.min and date.max are not)
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)


@dataclass(frozen=True)
class SurveyFigures:
    """One agent's, one skill's or the whole window's surveys. `key`: the agent id or skill
    (None: not known, or the total)."""

    key: str | None
    offered: int = 0  # callers put to the survey
    answered: int = 0  # of them, those who keyed a score
    average: float | None = None  # of the scores, 2 decimals; None without one
    scores: dict[int, int] = field(default_factory=lambda: dict.fromkeys(SCORES, 0))
    name: str | None = None  # an agent's name


@dataclass(frozen=True)
class SurveyReport:
    start: datetime  # surveys offered at or after
    end: datetime  # and before
    total: SurveyFigures
    by_agent: list[SurveyFigures]
    by_skill: list[SurveyFigures]


def day_window(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Pure: [first 00:00, the day after last 00:00) in the center's time zone, aware. Both
    days within FIRST_DAY..LAST_DAY (ValueError otherwise)."""
    if not FIRST_DAY <= first <= LAST_DAY or not FIRST_DAY <= last <= LAST_DAY:
        raise ValueError(f"days from {FIRST_DAY} to {LAST_DAY} only")
    return (datetime.combine(first, time(0, 0), tz),
            datetime.combine(last + timedelta(days=1), time(0, 0), tz))


def figures(key: str | None, counts: Iterable[tuple[int | None, int]],
            name: str | None = None) -> SurveyFigures:
    """Pure: SurveyFigures from (score or None, how many) pairs."""
    scores = dict.fromkeys(SCORES, 0)
    offered = 0
    for score, n in counts:
        offered += n
        if score is not None:
            scores[score] += n
    answered = sum(scores.values())
    total = sum(s * n for s, n in scores.items())
    return SurveyFigures(key=key, offered=offered, answered=answered,
                         average=round(total / answered, 2) if answered else None,
                         scores=scores, name=name)


def survey_report(session: Session, start: datetime, end: datetime) -> SurveyReport:
    """The surveys offered in [start, end) (aware datetimes), per agent, per skill, in all."""
    rows = session.execute(
        select(Call.survey_agent_id, Call.survey_skill, Call.satisfaction, func.count())
        .where(Call.survey_at.is_not(None), Call.survey_at >= start, Call.survey_at < end)
        .group_by(Call.survey_agent_id, Call.survey_skill, Call.satisfaction)).all()
    by_agent: dict[str | None, list[tuple[int | None, int]]] = {}
    by_skill: dict[str | None, list[tuple[int | None, int]]] = {}
    for agent_id, skill, score, n in rows:
        by_agent.setdefault(agent_id, []).append((score, n))
        by_skill.setdefault(skill, []).append((score, n))
    agents = [a for a in by_agent if a is not None]
    names: dict[str, str] = {}
    if agents:
        names = {a: n for a, n in session.execute(
            select(Agent.agent_id, Agent.name).where(Agent.agent_id.in_(agents)))}

    def order(key: str | None) -> tuple[bool, str]:
        return (key is None, key or "")  # the unknown last

    return SurveyReport(
        start=start, end=end,
        total=figures(None, [(score, n) for _a, _s, score, n in rows]),
        by_agent=[figures(a, c, names.get(a) if a else None)
                  for a, c in sorted(by_agent.items(), key=lambda kv: order(kv[0]))],
        by_skill=[figures(s, c) for s, c in sorted(by_skill.items(), key=lambda kv: order(kv[0]))])
