"""`hotline callers ...`: the inbound caller lists (issue 15 §3), the nuisance list and the VIP
list. Registered on the main group by hotline.cli.

The CLI acts as `cli:<unix user>` with the admin role; each change is audited (audit_log
`callers.add_<kind>` / `callers.remove_<kind>`) in the same unit of work, as the console's. The
IVR and the ACD read the lists at every call: a change is heard from the next call on.
Exit codes: 0 done, 1 refused (the reason is printed), 2 a bad option.
"""

from __future__ import annotations

import click

from hotline import cli_common as common
from hotline.cli_outbound import _audit

KINDS = click.Choice(["nuisance", "vip"])


@click.group()
def callers() -> None:
    """Inbound caller lists (来电名单): nuisance (骚扰) and VIP numbers."""


@callers.command("list")
@click.argument("kind", type=KINDS)
@click.option("--json", "as_json", is_flag=True)
def callers_list(kind: str, as_json: bool) -> None:
    """The numbers on a list, newest first."""
    from cti.db import callers as store

    settings = common.settings()
    entries = store.entries(common.sessions(settings), kind)
    if as_json:
        common.echo_json(entries)
        return
    tz = settings.ivr.timezone
    common.echo_table(["number", "reason", "reports", "added by", common.when_header("added", tz)],
                      [[e["number"], e["reason"], e["reports"], e["added_by"],
                        common.local_time(e["added_at"], tz)] for e in entries],
                      empty=f"the {kind} list is empty")


@callers.command("add")
@click.argument("kind", type=KINDS)
@click.argument("number")
@click.option("--reason", required=True, help="Why (a complaint, a key account, ...).")
def callers_add(kind: str, number: str, reason: str) -> None:
    """Put a number on a list (any spelling; kept in national form)."""
    from datetime import UTC, datetime

    from cti.db import callers as store
    from outbound.dnc import BadNumber

    sessions = common.sessions(common.settings())
    try:
        nat = store.add_audited(sessions, kind, number, reason=reason.strip() or "-",
                                audit=_audit(f"callers.add_{kind}", reason),
                                now=datetime.now(UTC))
    except (BadNumber, store.AlreadyListed) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{nat} is on the {kind} list from the next call on")


@callers.command("remove")
@click.argument("kind", type=KINDS)
@click.argument("number")
def callers_remove(kind: str, number: str) -> None:
    """Take a number off a list."""
    from cti.db import callers as store
    from outbound.dnc import BadNumber

    sessions = common.sessions(common.settings())
    try:
        nat = store.remove_audited(sessions, kind, number,
                                   audit=_audit(f"callers.remove_{kind}", None))
    except (BadNumber, store.NotListed) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{nat} is off the {kind} list")
