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
    """One order in a line, after a step (advance, urge): what it is now."""
    return (f"{r['number']}  {r['type']} ({r['type_label']['zh']})  {r['status']} "
            f"({r['status_label']['zh']})")


ORDER_COLUMNS = ("number", "type", "status", "caller", "account")


def _cells(r: dict[str, Any]) -> list[Any]:
    return [r["number"], r["type_label"]["zh"], r["status_label"]["zh"], r.get("caller_number"),
            r.get("account_no")]


def _orders(rows: list[dict[str, Any]], tz: str, *, empty: str,
            extra: tuple[str, ...] = (), cells: Callable[[dict[str, Any]], list[Any]] | None
            = None) -> None:
    """Orders in a table: the order's columns, its SLA due time in the center's zone, the
    master order, then `extra` columns from `cells`."""
    common.echo_table(
        [*ORDER_COLUMNS, common.when_header("SLA due", tz), "主单", *extra],
        [[*_cells(r), common.local_time(r.get("sla_due_at"), tz), r.get("master_number"),
          *(cells(r) if cells is not None else [])] for r in rows],
        empty=empty, right=extra)


@click.group("workorders")
def workorders() -> None:
    """Work orders (工单): list, show, advance, urge, return visits, at-risk."""


@workorders.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=50, show_default=True, type=common.LIMIT)
@click.option("--offset", default=0, show_default=True, type=common.OFFSET)
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
    _orders(page["items"], tz, empty="no work orders match")
    if page["items"]:
        click.echo(f"{len(page['items'])} of {page['total']}")


@workorders.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True)
def workorders_show(number: str, as_json: bool) -> None:
    """One work order with its full history and SLA clocks."""
    settings, svc = _service()
    doc = _run(lambda: svc.get(number))
    if as_json:
        _echo_json(doc)
        return
    tz = settings.ivr.timezone
    _orders([doc], tz, empty="")
    click.echo(f"\n{doc['description']}\n")
    common.echo_table(
        [common.when_header("at", tz), "step", "actor", "note"],
        [[common.local_time(e["at"], tz), e["step"], e["actor"], e.get("note")]
         for e in doc["events"]], empty="no steps recorded")
    if doc["clocks"]:
        click.echo("")
    common.echo_table(
        ["SLA clock", common.when_header("due", tz), "used",
         common.when_header("stopped", tz), "stopped by"],
        [[c["name"], common.local_time(c["due_at"], tz), f"{c['percent_used']}%",
          common.local_time(c["stopped_at"], tz), c["stopped_by"]] for c in doc["clocks"]],
        empty="", right=["used"])
    if doc["children"]:
        click.echo(f"\n子单: {', '.join(doc['children'])}")


def _actor_options(fn: F) -> F:
    fn = click.option("--actor", required=True, help="who does it: agent, supervisor or "
                      "department staff id")(fn)
    fn = click.option("--role", type=click.Choice([r.value for r in Role if r is not Role.SYSTEM]),
                      default="supervisor", show_default=True)(fn)
    fn = click.option("--actor-department",
                      type=click.Choice([d.value for d in Department]),
                      help="the department of a --role department actor")(fn)
    return fn


def _actor(settings: Any, actor: str, role: str, actor_department: str | None) -> Any:
    """The actor named, checked against the staff: an active member of that role (an admin may
    act as a supervisor), and a department's user of the department given, so a typo (`ZZZ`)
    records nothing."""
    from cti.db.agents import get_agent
    from cti.db.staff import get_staff, in_unit
    from workorders.service import Actor

    who = _run(lambda: Actor(actor, Role(role),
                             Department(actor_department) if actor_department else None))
    if actor_department and who.role is not Role.DEPARTMENT:
        raise click.UsageError("--actor-department is only for a --role department actor")
    with common.sessions(settings)() as s:
        staff = get_agent(s, actor)
    if staff is None or not staff.active:
        raise click.ClickException(f"no active member of staff {actor!r}")
    if staff.role != role and not (staff.role == "admin" and role == "supervisor"):
        raise click.ClickException(f"{actor} is {staff.role}, not {role}")
    if who.role is Role.DEPARTMENT:
        theirs = in_unit(common.sessions(settings), get_staff, actor)["department"]
        if theirs != actor_department:
            raise click.ClickException(f"{actor} is in {theirs}, not {actor_department}")
    return who


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
    settings, svc = _service()
    who = _actor(settings, actor, role, actor_department)
    doc = _run(lambda: svc.transition(number, to, who, department=department, note=note,
                                      satisfied=satisfied))
    if as_json:
        _echo_json(doc)
    else:
        click.echo(_line(doc))


@workorders.command("reopen")
@click.argument("number")
@_actor_options
@click.option("--department", type=click.Choice([d.value for d in Department]),
              help="send it to this department (default: the one that had it)")
@click.option("--note", help="why (the customer's complaint at the return visit)")
@click.option("--json", "as_json", is_flag=True)
def workorders_reopen(number: str, actor: str, role: str, actor_department: str | None,
                      department: str | None, note: str | None, as_json: bool) -> None:
    """Send an order back to a department after its return visit (回访不满意, 重新派发): a
    supervisor's step; an unsatisfied order is reopened, never archived."""
    settings, svc = _service()
    who = _actor(settings, actor, role, actor_department)
    doc = _run(lambda: svc.transition(number, "dispatched", who, department=department,
                                      note=note, reopen=True))
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
    settings, svc = _service()
    who = _actor(settings, actor, role, actor_department)
    doc = _run(lambda: svc.urge(number, who, note))
    if as_json:
        _echo_json(doc)
    else:
        click.echo(f"{_line(doc)}  urged {doc['urge_count']}x")


@workorders.command("return-visits")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=100, show_default=True, type=common.LIMIT)
def workorders_return_visits(as_json: bool, limit: int) -> None:
    """Resolved orders waiting for their return visit (回访), longest waiting first."""
    settings, svc = _service()
    rows = _run(lambda: svc.return_visit_list(limit))
    if as_json:
        _echo_json(rows)
        return
    _orders(rows, settings.ivr.timezone, empty="no order is waiting for its return visit",
            extra=("required",),
            cells=lambda r: ["yes" if r["return_visit_required"] else "no"])


@workorders.command("at-risk")
@click.option("--json", "as_json", is_flag=True)
def workorders_at_risk(as_json: bool) -> None:
    """Orders whose SLA clock has used 80% or more of its time."""
    settings, svc = _service()
    rows = _run(lambda: svc.at_risk())
    if as_json:
        _echo_json(rows)
        return
    _orders(rows, settings.ivr.timezone, empty="no order's SLA clock is at 80% or more",
            extra=("used",), cells=lambda r: [f"{r['percent_used']}%"])
