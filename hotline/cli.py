"""The `hotline` command: run the stack, validate flows, seed and list data."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from hotline import cli_common as common
from hotline import stack, wiring
from hotline.cli_bench import bench
from hotline.cli_calendars import calendars
from hotline.cli_callers import callers
from hotline.cli_doctor import doctor
from hotline.cli_outages import outages, storm
from hotline.cli_outbound import outbound
from hotline.cli_recordings import recordings, replay
from hotline.cli_reports import reports
from hotline.cli_staff import skills_group, staff_group
from hotline.cli_surveys import surveys
from hotline.cli_workorders import workorders

_settings = common.settings
_sessions = common.sessions
_echo_json = common.echo_json
build_prompts = wiring.build_prompts
render_config = wiring.render_config


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def main(verbose: bool) -> None:
    """95598 hotline: Asterisk 22 PBX, FastAGI IVR, CTI."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@main.group()
def prompts() -> None:
    """Prompt audio (synthesised at build time, never in a call)."""


@prompts.command("build")
def prompts_build() -> None:
    """Synthesise every prompt that is not cached yet."""
    settings = _settings()
    index = build_prompts(settings)
    n = sum(len(v) for v in index.prompts.values())
    click.echo(f"{n} prompts ready in {settings.prompts.cache_dir}")


@main.group()
def config() -> None:
    """The PBX configuration."""


@config.command("render")
def config_render() -> None:
    """Render asterisk_conf templates from hotline.toml into the state dir."""
    settings = _settings(ensure_secret=True)
    click.echo(f"rendered into {render_config(settings)}")


# -------------------------------------------------------------------------------- the stack


@main.command()
@click.option("--no-demo", is_flag=True, help="Do not load the demo data set.")
@click.option("--no-watchdog", "watchdog", is_flag=True, flag_value=False, default=True,
              help="Do not start `hotline watchdog` (nothing restarts a daemon that dies).")
def up(no_demo: bool, watchdog: bool) -> None:
    """Start Asterisk, Mosquitto and the CTI with embedded defaults and demo data."""
    settings = _settings(ensure_secret=True)
    try:
        click.echo("prompts ...")
        build_prompts(settings)
        click.echo("PBX config ...")
        render_config(settings)
        click.echo("database ...")
        sessions = _sessions(settings)
        if not no_demo:
            from hotline.demo_seed import seed_demo

            with sessions.begin() as s:
                seed_demo(s, now=datetime.now(UTC))
        click.echo("asterisk ...")
        stack.start_asterisk(settings)
        click.echo("fail2ban (SIP ban) ...")
        stack.start_fail2ban(settings)
        click.echo("mosquitto ...")
        mqtt = stack.start_mosquitto(settings)
        if stack.start_carrier(settings) is not None:  # a demo's stand-in carrier
            click.echo(f"simulated carrier on {settings.pbx.outbound_trunk} ...")
        click.echo("cti ...")
        stack.start_cti(settings)
        if settings.cti.standby:  # [cti] standby: a second CTI waits on the leadership lock
            click.echo("cti standby ...")
            stack.start_cti_standby(settings)
        if watchdog:  # starts again whatever of the above dies (hotline/watchdog.py)
            click.echo("watchdog ...")
            stack.start_watchdog(settings)
    except stack.StackError as exc:
        raise click.ClickException(str(exc)) from None
    st = stack.status(settings)
    target = f"{settings.pbx.bind_ip}:{settings.pbx.sip_port}"
    carrier_line = ""
    if st.get("carrier"):
        carrier_line = (f"\n  carrier   {st['carrier']['sip']} simulated: answers the calls we "
                        "place (callbacks, return visits) and presses 1")
    click.echo(f"""
The 95598 hotline is up.
  SIP       {st['asterisk']['sip']}  call {settings.pbx.service_number} from any number, e.g.
            sipp -sn uac -s {settings.pbx.service_number} -m 1 {target}
  seats     seat01..seat{settings.pbx.seats:02d} (ext {settings.pbx.seat_extension_base + 1}..), \
passwords in {settings.state_dir / 'secrets.json'}
  AMI       {st['asterisk']['ami']} user {settings.ami.username}, secret in \
{settings.state_dir / stack.ENV_FILE_NAME}
  FastAGI   {st['cti']['fastagi']}
  desktop   {st['cti']['web']}  agents A001..A050 (at a seat), supervisors S01..S05, admin
  MQTT      {st['mqtt']['url']} ({mqtt})
  database  {st['db']['url']}
  flows     {settings.ivr.flows_dir} (edits take effect live)
  logs      {settings.state_dir / 'log'}{carrier_line}
Demo accounts: hotline demo accounts.  Stop: make down.""")


@main.command()
def down() -> None:
    """Stop everything `up` started."""
    settings = _settings()
    # the watchdog first: it would start again what is stopped below
    click.echo(f"watchdog: {'stopped' if stack.stop_watchdog(settings) else 'not running'}")
    # the waiting CTI first: stopping the active one first would only make the other take over
    ctis = [("cti standby", stack.stop_cti_standby), ("cti", stack.stop_cti)]
    if stack.cti_processes(settings).get("cti", {}).get("role") == "standby":
        ctis.reverse()  # after a takeover the standby's process is the active one
    for name, fn in (*ctis, ("asterisk", stack.stop_asterisk),
                     ("fail2ban", stack.stop_fail2ban), ("mosquitto", stack.stop_mosquitto),
                     ("simulated carrier", stack.stop_carrier)):
        click.echo(f"{name}: {'stopped' if fn(settings) else 'not running'}")


@main.command()
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    """What is running, and where."""
    st = stack.status(_settings())
    if as_json:
        _echo_json(st)
        return
    for part in ("asterisk", "cti", "mqtt"):
        click.echo(f"{part:9} {'running' if st[part]['running'] else 'stopped'}")
    for slot, proc in st["cti"].get("processes", {}).items():
        click.echo(f"  {slot:12} pid {proc['pid']:<7} {proc['role']}")
    if st["cti"]["running"]:
        click.echo(f"desktop   {st['cti']['web']}")
    flows = ((st["cti"].get("status") or {}).get("flows") or {})
    if flows:
        click.echo(f"flows     version {flows.get('version')}, last reload "
                   f"{'ok' if flows.get('last_reload_ok') else 'REJECTED'}")
        for err in flows.get("errors", []):
            click.echo(f"          {err}")


@main.command("asterisk-cli")
@click.argument("command", nargs=-1, required=True)
def asterisk_cli(command: tuple[str, ...]) -> None:
    """Run an Asterisk CLI command against the running PBX."""
    try:
        click.echo(stack.asterisk_cli(_settings(), " ".join(command)), nl=False)
    except stack.StackError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
def cti() -> None:
    """Run the CTI daemon in the foreground (what `up` starts in the background)."""
    _settings(ensure_secret=True)
    from hotline.app import main as cti_main

    cti_main()


# -------------------------------------------------------------------------------------- flows


@main.group()
def flows() -> None:
    """IVR flows (ivr/flows/*.yaml)."""


@flows.command("validate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def flows_validate(path: Path) -> None:
    """Validate a flow file or a folder of them; errors give file:line: problem."""
    from cti.db.staff import in_unit, skill_names
    from ivr.schema import FlowValidationError, load_flow_dir, load_flow_file
    from prompts.catalog import CatalogError, load_catalog
    from prompts.index import PromptIndex, PromptIndexError

    settings = _settings()
    # the skills a transfer may name: the skills table (`hotline skills`, the admin console)
    skills = in_unit(_sessions(settings), skill_names)
    try:
        index = PromptIndex.load(settings.prompts.cache_dir)
        has_prompt = index.has
        checked = "the built prompt index"
    except PromptIndexError:
        try:
            has_prompt = load_catalog(settings.prompts.catalog_dir).has
            checked = "the prompt catalog (prompts not built yet)"
        except CatalogError as exc:
            raise click.ClickException(f"prompt catalog: {exc}") from None
    try:
        if path.is_dir():
            fs = load_flow_dir(path, has_prompt, skills=skills)
            names = ", ".join(f"{f.id} ({len(f.nodes)} nodes)" for f in fs.flows.values())
        else:
            f = load_flow_file(path, has_prompt, skills)
            names = f"{f.id} ({len(f.nodes)} nodes)"
    except FlowValidationError as exc:
        for err in exc.errors:
            click.echo(str(err), err=True)
        sys.exit(1)
    click.echo(f"ok: {names}; prompts checked against {checked}")


# --------------------------------------------------------------------------------------- data


@main.command("seed-demo")
@click.option("--accounts", default=5000, show_default=True,
              type=click.IntRange(50, 1_000_000))  # hotline.demo_seed.MIN_ACCOUNTS
def seed_demo_cmd(accounts: int) -> None:
    """Load the realistic demo data set (idempotent)."""
    from hotline.demo_seed import seed_demo

    settings = _settings()
    with _sessions(settings).begin() as s:
        summary = seed_demo(s, now=datetime.now(UTC), n_accounts=accounts)
    _echo_json(summary)


@main.group()
def demo() -> None:
    """Demo helpers."""


@demo.command("accounts")
@click.option("--json", "as_json", is_flag=True)
def demo_accounts(as_json: bool) -> None:
    """Demo accounts that show each IVR path."""
    from hotline.demo_seed import demo_accounts as accounts

    settings = _settings()
    with _sessions(settings).begin() as s:
        rows = accounts(s, datetime.now(UTC))
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        outages = "; ".join(f"{o['kind']} until {o['expected_restore_at']}" for o in r["outages"])
        click.echo(f"{r['purpose']:20} {r['account_no']}  phone {r['phone'] or '-':13} "
                   f"due {r['amount_due']:>9}  {outages}")


@main.group()
def calls() -> None:
    """Call records."""


@calls.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=50, show_default=True, type=common.LIMIT)
def calls_list(as_json: bool, limit: int) -> None:
    """The newest calls first: when, who called, the outcome, the queue, the wait and the
    agent."""
    from cti.db.listing import list_calls

    settings = _settings()
    with _sessions(settings).begin() as s:
        rows = list_calls(s, limit)
    if as_json:
        _echo_json(rows)
        return
    tz = settings.ivr.timezone
    common.echo_table(
        [common.when_header("started", tz), "caller", "outcome", "lang", "skill", "wait",
         "agent", "seat", "call"],
        [[common.local_time(r["started_at"], tz), r["caller_number"], r.get("outcome"),
          r.get("language"), r.get("skill"),
          f"{r['wait_s']:.0f}s" if r.get("wait_s") is not None else None,
          r.get("agent_id"), r.get("seat"), r["call_id"]] for r in rows],
        empty="no calls recorded yet", right=["wait"])


main.add_command(workorders)  # list, show, advance, urge, return-visits, at-risk
main.add_command(outages)  # list, publish, update, confirm, close
main.add_command(storm)  # on, off, status
main.add_command(outbound)  # jobs, dnc list|add|remove
main.add_command(callers)  # list|add|remove nuisance|vip
main.add_command(calendars)  # list, set, holiday
main.add_command(bench)
main.add_command(recordings)
main.add_command(replay)
main.add_command(doctor)
main.add_command(surveys)  # the post-call survey's figures per agent and per skill
main.add_command(reports)  # rebuild, update, workload, workorders (issue 15 §4)
main.add_command(staff_group)  # list, add, skills, disable, enable, reset-password
main.add_command(skills_group)  # list, add


@main.command()
@click.option("--interval", "interval_s", default=2.0, show_default=True,
              type=click.FloatRange(0.2, 60), help="Seconds between rounds.")
def watchdog(interval_s: float) -> None:
    """Keep what `hotline up` started running: Asterisk, the broker, the CTI and its standby
    (after a takeover, a new standby). `hotline up` starts it; `hotline down` stops it."""
    from hotline.watchdog import Watchdog

    logging.getLogger("hotline.watchdog").setLevel(logging.INFO)
    Watchdog(_settings()).run(interval_s)


if __name__ == "__main__":
    main()
