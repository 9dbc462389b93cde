"""`hotline doctor`: each deployment check (hotline/doctor.py) with its fix; exit 1 when unsafe."""

from __future__ import annotations

import sys

import click

from hotline import cli_common as common
from hotline import doctor as checks


@click.command()
@click.option("--json", "as_json", is_flag=True, help="The checks as a JSON document.")
def doctor(as_json: bool) -> None:
    """Check this deployment for issue 10's list: ports, anonymous MQTT, AMI classes, shell
    modules, file modes and owners, weak secrets, TLS, the SIP ban, the daemons' users.
    Exits 1 when any check FAILs (WARN does not)."""
    results = checks.run_checks(common.settings())
    bad = checks.unsafe(results)
    if as_json:
        common.echo_json({"ok": not bad, "checks": [c.as_dict() for c in results]})
    else:
        for c in results:
            click.echo(f"{c.status:4}  {c.name:15} {c.detail}")
            if c.status != checks.PASS and c.fix:
                click.echo(f"      {'':15} fix: {c.fix}")
        click.echo("UNSAFE: fix each FAIL above" if bad else "ok: nothing unsafe found")
    if bad:
        sys.exit(1)
