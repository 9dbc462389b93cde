"""`hotline workorders ...`: list and search, show with history, advance a step, urge, return
visits, at-risk orders, one escalation tick. Registered on the main group by hotline.cli."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from hotline import cli_common as common
from workorders.lifecycle import Department, Role, WorkOrderError

F = TypeVar("F", bound=Callable[..., Any])


def _service() -> Any:
    services = common.services()
    return services.settings, services.workorders


_echo_json = common.echo_json


def _when(value: str | None, tz: str, what: str) -> datetime | None:
    """ISO date or date-time; without a zone it is the center's local time."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date or date-time",
                                 param_hint=what) from None
    return at if at.tzinfo else at.replace(tzinfo=ZoneInfo(tz))


def _run(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except WorkOrderError as exc:
        raise click.ClickException(str(exc)) from None


def _line(r: dict[str, Any]) -> str:
    return (f"{r['number']}  {r['type']:19} {r['status']:19} {r.get('caller_number') or '-':13}"
            f"  {r.get('account_no') or '-':10}  SLA {r.get('sla_due_at') or '-'}"
            + (f"  主单 {r['master_number']}" if r.get("master_number") else ""))


@click.group("workorders")
def workorders() -> None:
    """Work orders (工单): list, show, advance, urge, return visits, at-risk."""


@workorders.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=50, show_default=True)
@click.option("--offset", default=0, show_default=True)
@click.option("--status", help="accepted, dispatched, department_accepted, on_site, ...")
@click.option("--type", "type_", help="fault_repair, complaint, consultation, ...")
@click.option("-q", "--text", help="in the number or the description")
@click.option("--account", help="account number (户号)")
@click.option("--caller", help="caller number")
@click.option("--from", "date_from", help="created at or after (ISO; local time if no zone)")
@click.option("--to", "date_to", help="created before (ISO; local time if no zone)")
def workorders_list(as_json: bool, limit: int, offset: int, status: str | None,
                    type_: str | None, text: str | None, account: str | None,
                    caller: str | None, date_from: str | None, date_to: str | None) -> None:
    """Work orders, newest first, each with its steps."""
    from workorders.service import SearchQuery

    settings, svc = _service()
    tz = settings.ivr.timezone
    q = SearchQuery(status=status, type=type_, text=text, account=account, caller=caller,
                    date_from=_when(date_from, tz, "--from"), date_to=_when(date_to, tz, "--to"),
                    limit=limit, offset=offset, with_events=True)
    page = _run(lambda: svc.search(q))
    if as_json:
        _echo_json(page["items"])
        return
    for r in page["items"]:
        click.echo(_line(r))
    click.echo(f"{len(page['items'])} of {page['total']}")


@workorders.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True)
def workorders_show(number: str, as_json: bool) -> None:
    """One work order with its full history and SLA clocks."""
    _settings, svc = _service()
    doc = _run(lambda: svc.get(number))
    if as_json:
        _echo_json(doc)
        return
    click.echo(_line(doc))
    click.echo(f"  {doc['type_label']['zh']} / {doc['status_label']['zh']}  "
               f"{doc['description']}")
    for e in doc["events"]:
        click.echo(f"  {e['at']}  {e['step']:19} {e['actor']:12} {e.get('note') or ''}")
    for c in doc["clocks"]:
        click.echo(f"  clock {c['name']}: due {c['due_at']}, used {c['percent_used']}%"
                   + (f", stopped {c['stopped_at']} ({c['stopped_by']})" if c["stopped_at"]
                      else ""))
    if doc["children"]:
        click.echo(f"  子单: {', '.join(doc['children'])}")


def _actor_options(fn: F) -> F:
    fn = click.option("--actor", required=True, help="who does it: agent, supervisor or "
                      "department staff id")(fn)
    fn = click.option("--role", type=click.Choice([r.value for r in Role if r is not Role.SYSTEM]),
                      default="supervisor", show_default=True)(fn)
    fn = click.option("--actor-department",
                      type=click.Choice([d.value for d in Department]),
                      help="the department of a --role department actor")(fn)
    return fn


def _actor(actor: str, role: str, actor_department: str | None) -> Any:
    from workorders.service import Actor

    return _run(lambda: Actor(actor, Role(role),
                              Department(actor_department) if actor_department else None))


@workorders.command("advance")
@click.argument("number")
@click.argument("to")
@_actor_options
@click.option("--department", type=click.Choice([d.value for d in Department]),
              help="where to dispatch (派发)")
@click.option("--note")
@click.option("--satisfied/--unsatisfied", default=None,
              help="the customer's verdict at the return visit (回访)")
@click.option("--json", "as_json", is_flag=True)
def workorders_advance(number: str, to: str, actor: str, role: str,
                       actor_department: str | None, department: str | None, note: str | None,
                       satisfied: bool | None, as_json: bool) -> None:
    """Take the next step TO (dispatched, department_accepted, on_site, resolved,
    return_visit, archived)."""
    _settings, svc = _service()
    who = _actor(actor, role, actor_department)
    doc = _run(lambda: svc.transition(number, to, who, department=department, note=note,
                                      satisfied=satisfied))
    if as_json:
        _echo_json(doc)
    else:
        click.echo(_line(doc))


@workorders.command("urge")
@click.argument("number")
@_actor_options
@click.option("--note")
@click.option("--json", "as_json", is_flag=True)
def workorders_urge(number: str, actor: str, role: str, actor_department: str | None,
                    note: str | None, as_json: bool) -> None:
    """Record an urge (催办) on an open order. The supervisor alert is sent by the CTI only
    when it runs the order's escalation; from the CLI it is recorded, not published."""
    _settings, svc = _service()
    who = _actor(actor, role, actor_department)
    doc = _run(lambda: svc.urge(number, who, note))
    if as_json:
        _echo_json(doc)
    else:
        click.echo(f"{_line(doc)}  urged {doc['urge_count']}x")


@workorders.command("return-visits")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=100, show_default=True)
def workorders_return_visits(as_json: bool, limit: int) -> None:
    """Resolved orders waiting for their return visit (回访), longest waiting first."""
    _settings, svc = _service()
    rows = _run(lambda: svc.return_visit_list(limit))
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        click.echo(_line(r) + ("  (required)" if r["return_visit_required"] else ""))


@workorders.command("at-risk")
@click.option("--json", "as_json", is_flag=True)
def workorders_at_risk(as_json: bool) -> None:
    """Orders whose SLA clock has used 80% or more of its time."""
    _settings, svc = _service()
    rows = _run(lambda: svc.at_risk())
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        click.echo(f"{_line(r)}  {r['percent_used']}%")
