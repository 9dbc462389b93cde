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


def _audit(action: str, reason: str | None) -> Any:
    from cti.db.web_audit import AuditEntry

    return lambda number: AuditEntry(at=datetime.now(UTC), actor=_who(), role="admin",
                                     action=action, target=number, allowed=True,
                                     detail={"reason": reason})


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

    settings = common.settings()
    sessions = common.sessions(settings)
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
    tz = settings.ivr.timezone
    common.echo_table(
        ["job", "purpose", "number", "state", "tries", "last outcome", "work order", "result",
         common.when_header("next try", tz)],
        [[r["id"], r["purpose"], r["number"], r["state"], r["attempts"], r["last_outcome"],
          r["work_order"], r["result"], common.local_time(r["not_before"], tz)] for r in rows],
        empty="no outbound jobs" + (f" for order {order}" if order else ""),
        right=["job", "tries"])
    tries = [[r["id"], t["n"], common.local_time(t["started_at"], tz), t["outcome"] or "open",
              t["reason"], t["cause"],
              f"{t['duration_s']}s" if t["duration_s"] is not None else None]
             for r in rows for t in r["tries"]]
    if tries:
        click.echo("")
        common.echo_table(["job", "try", common.when_header("started", tz), "outcome", "reason",
                           "SIP cause", "length"], tries, empty="", right=["job", "try"])


@outbound.group("dnc")
def dnc() -> None:
    """The do-not-call list (numbers in any spelling; kept in national form)."""


@dnc.command("list")
@click.option("--json", "as_json", is_flag=True)
def dnc_list(as_json: bool) -> None:
    """The numbers, with why, who added each and when, newest first."""
    from cti.db import outbound as store

    settings = common.settings()
    entries = store.dnc_entries(common.sessions(settings))
    if as_json:
        common.echo_json([e["number"] for e in entries])
        return
    tz = settings.ivr.timezone
    common.echo_table(["number", "reason", "added by", common.when_header("added", tz)],
                      [[e["number"], e["reason"], e["added_by"],
                        common.local_time(e["added_at"], tz)] for e in entries],
                      empty="the do-not-call list is empty")


@dnc.command("add")
@click.argument("number")
@click.option("--reason", required=True, help="Why (the customer asked, a complaint, ...).")
def dnc_add(number: str, reason: str) -> None:
    from cti.db import outbound as store
    from outbound.dnc import BadNumber

    sessions = common.sessions(common.settings())
    try:
        nat = store.dnc_add_audited(sessions, number, reason=reason,
                                    audit=_audit("outbound.dnc_add", reason),
                                    now=datetime.now(UTC))
    except (BadNumber, store.AlreadyListed) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{nat} will not be called")


@dnc.command("remove")
@click.argument("number")
def dnc_remove(number: str) -> None:
    from cti.db import outbound as store
    from outbound.dnc import BadNumber

    sessions = common.sessions(common.settings())
    try:
        nat = store.dnc_remove_audited(sessions, number,
                                       audit=_audit("outbound.dnc_remove", None))
    except (BadNumber, store.NotListed) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{nat} may be called again")
