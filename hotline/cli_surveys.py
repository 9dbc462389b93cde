"""`hotline surveys`: the post-call satisfaction survey's figures (满意度评价, issue 14 §3)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import click

from config.settings import Settings
from hotline import cli_common as common


def _doc(f: Any, **key: Any) -> dict[str, Any]:
    return {**key, "offered": f.offered, "answered": f.answered, "average": f.average,
            "scores": {str(k): v for k, v in f.scores.items()}}


def _line(label: str, f: Any) -> str:
    average = f"{f.average:.2f}" if f.average is not None else "-"
    scores = " ".join(f"{k}:{n}" for k, n in f.scores.items())
    return f"{label:<20} {f.offered:>6} {f.answered:>6} {average:>7}   {scores}"


@click.command()
@click.option("--from", "first", help="the first day, 2026-11-27 (default today, local)")
@click.option("--to", "last", help="the last day, included (default: --from)")
@click.option("--json", "as_json", is_flag=True)
def surveys(first: str | None, last: str | None, as_json: bool) -> None:
    """Post-call surveys offered on those days: asked, rated, average score and each score's
    count, per agent (the one who hung up), per skill and in all."""
    from cti.db.surveys import day_window, survey_report

    settings: Settings = common.settings()
    tz = ZoneInfo(settings.ivr.timezone)
    start_day, end_day = common.day_range(first, last, tz)
    try:
        window = day_window(start_day, end_day, tz)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with common.sessions(settings).begin() as s:
        r = survey_report(s, *window)
    if as_json:
        common.echo_json({
            "from": start_day.isoformat(), "to": end_day.isoformat(),
            "timezone": settings.ivr.timezone, "total": _doc(r.total),
            "by_agent": [_doc(f, agent_id=f.key, name=f.name) for f in r.by_agent],
            "by_skill": [_doc(f, skill=f.key) for f in r.by_skill]})
        return
    click.echo(f"post-call surveys {start_day} .. {end_day} ({settings.ivr.timezone})")
    click.echo(f"{'':<20} {'asked':>6} {'rated':>6} {'average':>7}   scores")
    click.echo(_line("all", r.total))
    for f in r.by_agent:
        click.echo(_line(f"agent {f.key or '?'} {f.name or ''}".strip(), f))
    for f in r.by_skill:
        click.echo(_line(f"skill {f.key or '?'}", f))
