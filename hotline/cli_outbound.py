"""`hotline outbound ...`: the outbound engine's jobs and attempts, and the do-not-call list.
Registered on the main group by hotline.cli.

The CLI acts as `cli:<unix user>` with the admin role; a change to the do-not-call list is
audited (audit_log `outbound.dnc_add` / `outbound.dnc_remove`) in the same unit of work. The
CTI reads the list at every tick: a number added is never dialled again from the next second.
Exit codes: 0 done, 1 refused (the reason is printed), 2 a bad option.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Any

import click

from hotline import cli_common as common


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (KeyError, OSError):  # no passwd entry (a container's random uid)
        return "cli:unknown"


def _audit(s: Any, action: str, number: str, reason: str | None) -> None:
    from cti.db.web_audit import AuditEntry, add

    add(s, AuditEntry(at=datetime.now(UTC), actor=_who(), role="admin", action=action,
                      target=number, allowed=True, detail={"reason": reason}))


@click.group()
def outbound() -> None:
    """Outbound calls (外呼): jobs, attempts and the do-not-call list."""


@outbound.command("jobs")
@click.option("--order", "order", help="Only the jobs of this work order.")
@click.option("--json", "as_json", is_flag=True)
def jobs(order: str | None, as_json: bool) -> None:
    """Jobs with their attempts (outcome, reason, cause, duration), newest first."""
    from sqlalchemy import select

    from cti.db import outbound as store
    from cti.db.models_outbound import OutboundJob

    sessions = common.sessions(common.settings())
    with sessions() as s:
        q = select(OutboundJob).order_by(OutboundJob.id.desc()).limit(100)
        if order:
            q = q.where(OutboundJob.work_order_number == order)
        rows: list[dict[str, Any]] = [
            {"id": j.id, "purpose": j.purpose, "number": j.number, "state": j.state,
             "attempts": j.attempts, "not_before": j.not_before,
             "last_outcome": j.last_outcome, "work_order": j.work_order_number,
             "result": j.result, "tries": store.attempts_of(s, j.id)}
            for j in s.scalars(q)]
    if as_json:
        common.echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['id']:>6}  {r['purpose']:<14} {r['number']:<14} {r['state']:<12} "
                   f"tries {r['attempts']}  {r['last_outcome'] or '-':<14} "
                   f"{r['work_order'] or '-'}  {r['result'] or ''}")
        for t in r["tries"]:
            click.echo(f"        #{t['n']} {t['started_at']:%Y-%m-%d %H:%M:%S}  "
                       f"{t['outcome'] or 'open':<14} reason {t['reason']} cause {t['cause']} "
                       f"{t['duration_s'] if t['duration_s'] is not None else '-'} s")
    click.echo(f"{len(rows)} job(s)")


@outbound.group("dnc")
def dnc() -> None:
    """The do-not-call list (numbers in any spelling; kept in national form)."""


@dnc.command("list")
@click.option("--json", "as_json", is_flag=True)
def dnc_list(as_json: bool) -> None:
    from cti.db import outbound as store

    sessions = common.sessions(common.settings())
    with sessions() as s:
        numbers = store.dnc_numbers(s)
    if as_json:
        common.echo_json(numbers)
        return
    for n in numbers:
        click.echo(n)
    click.echo(f"{len(numbers)} number(s)")


@dnc.command("add")
@click.argument("number")
@click.option("--reason", required=True, help="Why (the customer asked, a complaint, ...).")
def dnc_add(number: str, reason: str) -> None:
    from cti.db import outbound as store
    from outbound.dnc import BadNumber

    sessions = common.sessions(common.settings())
    try:
        with sessions.begin() as s:
            nat = store.dnc_add(s, number, reason=reason, by=_who(), now=datetime.now(UTC))
            _audit(s, "outbound.dnc_add", nat, reason)
    except BadNumber as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{nat} will not be called")


@dnc.command("remove")
@click.argument("number")
def dnc_remove(number: str) -> None:
    from cti.db import outbound as store
    from outbound.dnc import BadNumber, national

    sessions = common.sessions(common.settings())
    try:
        with sessions.begin() as s:
            if not store.dnc_remove(s, number):
                raise click.ClickException(f"{national(number)} is not on the list")
            _audit(s, "outbound.dnc_remove", national(number), None)
    except BadNumber as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{national(number)} may be called again")
