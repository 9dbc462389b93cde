"""`hotline calendars ...`: the skills' service hours (服务时间, issue 15 §3): list them, set a
skill's week and after-hours action, make a date a holiday or a special day (or an ordinary
day again), or drop a calendar (the skill is open 7×24). Registered on the main group by
hotline.cli.

The CLI acts as `cli:<unix user>` with the admin role; each change is audited (audit_log
`calendars.*`) in the same unit of work, as the console's. The IVR reads the calendars at every
transfer: a change is heard from the next call on. Exit codes: 0 done, 1 refused (the reason
is printed), 2 a bad option.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import click

from hotline import cli_common as common
from hotline.cli_outbound import _who

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _entry(action: str, target: str, **detail: Any) -> Any:
    from cti.db.web_audit import AuditEntry

    return AuditEntry(at=datetime.now(UTC), actor=_who(), role="admin", action=action,
                      target=target, allowed=True, detail=detail)


def _run(action: str, target: str, fn: Any, *args: Any, **kw: Any) -> Any:
    from acd.calendar import CalendarError
    from cti.db import calendars as store

    sessions = common.sessions(common.settings())
    try:
        return store.audited(sessions, _entry(action, target, **{
            k: v for k, v in kw.items() if k in ("after_hours", "route_to", "kind", "hours",
                                                 "note")}), fn, *args, **kw)
    except (CalendarError, store.NoCalendar) as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def calendars() -> None:
    """Service hours per skill (服务时间): weekly hours, holidays, special days."""


@calendars.command("list")
@click.option("--json", "as_json", is_flag=True)
def calendars_list(as_json: bool) -> None:
    """Every calendar; a skill not listed is open 7×24."""
    from cti.db import calendars as store

    entries = store.listing(common.sessions(common.settings()))
    if as_json:
        common.echo_json(entries)
        return
    common.echo_table(
        ["skill", *WEEKDAYS, "after hours", "days"],
        [[e["skill"], *[e["week"][d] for d in WEEKDAYS],
          e["after_hours"] + (f" → {e['route_to']}" if e["route_to"] else ""),
          " ".join(f"{d['day']}:{d['kind'] if d['kind'] == 'holiday' else d['hours']}"
                   for d in e["days"])] for e in entries],
        empty="no calendars: every skill is open 7×24")


@calendars.command("set")
@click.argument("skill")
@click.option("--hours", "all_days", metavar="HOURS",
              help="Every day's hours (08:00-20:00; 22:00-06:00 runs past midnight; 24h).")
@click.option("--day", "days", multiple=True, metavar="DAY=HOURS",
              help="One weekday's hours, over --hours (sat=closed, mon=08:00-12:00,13:00-17:00).")
@click.option("--route-to", default=None, help="When closed: this skill, if it is open now.")
@click.option("--callback", "callback", is_flag=True,
              help="When closed: offer a callback for when it opens (the default).")
@click.option("--remove", is_flag=True, help="Drop the calendar: the skill is open 7×24.")
def calendars_set(skill: str, all_days: str | None, days: tuple[str, ...],
                  route_to: str | None, callback: bool, remove: bool) -> None:
    """Set SKILL's week and what its calls do when it is closed."""
    from cti.db import calendars as store

    if remove:
        _run("calendars.remove", skill, store.remove_calendar, skill)
        click.echo(f"{skill} is open 7×24 from the next call on")
        return
    if route_to and callback:
        raise click.UsageError("--route-to or --callback, not both")
    if all_days is None and not days:
        raise click.UsageError("give --hours or --day DAY=HOURS")
    week = dict.fromkeys(WEEKDAYS, all_days) if all_days is not None else {}
    for item in days:
        name, sep, hours = item.partition("=")
        if not sep or name.strip().lower() not in WEEKDAYS:
            raise click.BadParameter(f"{item!r}: DAY=HOURS with DAY one of "
                                     f"{', '.join(WEEKDAYS)}", param_hint="--day")
        week[name.strip().lower()] = hours
    settings = common.settings()
    _run("calendars.set", skill, store.set_calendar, skill,
         {k: v for k, v in week.items() if v is not None},
         after_hours="route" if route_to else "callback", route_to=route_to, by=_who(),
         now=datetime.now(UTC), always_open=settings.calendars.always_open)
    click.echo(f"{skill}'s hours are set from the next call on")


@calendars.command("holiday")
@click.argument("skill")
@click.argument("day", type=click.DateTime(["%Y-%m-%d"]))
@click.option("--hours", default=None,
              help="A special day's own hours instead of closed all day.")
@click.option("--note", default="", help="What day it is (国庆节, 调休, ...).")
@click.option("--remove", is_flag=True, help="The day follows its weekday again.")
def calendars_holiday(skill: str, day: datetime, hours: str | None, note: str,
                      remove: bool) -> None:
    """Make DAY (YYYY-MM-DD) a holiday of SKILL (closed), or a special day (--hours)."""
    from cti.db import calendars as store

    d: date = day.date()
    target = f"{skill}/{d.isoformat()}"
    if remove:
        _run("calendars.remove_day", target, store.remove_day, skill, d)
        click.echo(f"{d.isoformat()} follows {skill}'s weekday hours again")
        return
    kind = "special" if hours is not None else "holiday"
    _run("calendars.set_day", target, store.set_day, skill, d, kind=kind, hours=hours or "",
         note=note.strip(), by=_who(), now=datetime.now(UTC))
    click.echo(f"{d.isoformat()} is a {'holiday' if kind == 'holiday' else 'special day'} of "
               f"{skill}"
               + (f" ({hours})" if hours is not None else ""))
