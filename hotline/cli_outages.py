"""`hotline outages ...` and `hotline storm ...`: list, publish, update, confirm and close outage
notices; switch storm mode and show it. Registered on the main group by hotline.cli.

The CLI acts as `cli:<unix user>` with the admin role, and every change is audited like the
console's. It has no MQTT bus: the CTI's outage watch sees the new revision (or storm state)
within a few seconds and tells the desktops. Exit codes: 0 done, 1 refused (the reason is
printed: no scope, unknown feeder, a closed notice, ...), 2 a bad option.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from hotline import cli_common as common
from outages.scope import CAUSES, Cause

T = TypeVar("T")


def _services() -> Any:
    return common.services()


def _who() -> Any:
    from callcenter.outage_service import Who

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's random uid)
        user = "unknown"
    return Who(f"cli:{user}"[:64], "admin")


def _run(fn: Callable[[], T]) -> T:
    from cti.db.outages import NoticeNotFound
    from outages.scope import InvalidNotice

    try:
        return fn()
    except (InvalidNotice, NoticeNotFound) as exc:
        raise click.ClickException(str(exc)) from None


def _when(value: str | None, tz: str, what: str) -> datetime | None:
    """ISO date-time; without a zone it is the center's local time."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date-time",
                                 param_hint=what) from None
    return at if at.tzinfo else at.replace(tzinfo=ZoneInfo(tz))


def _resolve(places: dict[str, Any], kind: str, value: str) -> int:
    """An area or feeder named by id or by code (QY01, QY01-F1)."""
    rows = places[kind]
    if value.isdigit():
        return int(value)  # the store says so if there is no such one
    found = [r["id"] for r in rows if r["code"].lower() == value.lower()]
    if not found:
        raise click.BadParameter(f"no {kind[:-1]} with code {value!r}",
                                 param_hint=f"--{kind[:-1]}")
    return int(found[0])


def _scope(svc: Any, areas: tuple[str, ...], feeders: tuple[str, ...],
           tas: tuple[str, ...]) -> tuple[frozenset[int], frozenset[int],
                                          frozenset[tuple[int, str]]]:
    from cti.db import outage_board

    places = outage_board.scope_places(svc.sessions) if (areas or feeders or tas) else {}
    ta_set = set()
    for t in tas:
        area, sep, name = t.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{t!r}: write AREA:NAME (area id or code, 台区 name)",
                                     param_hint="--ta")
        ta_set.add((_resolve(places, "areas", area), name.strip()))
    return (frozenset(_resolve(places, "areas", a) for a in areas),
            frozenset(_resolve(places, "feeders", f) for f in feeders), frozenset(ta_set))


def _scope_text(n: dict[str, Any]) -> str:
    return ", ".join([*(f"area {a}" for a in n["areas"]), *(f"feeder {f}" for f in n["feeders"]),
                      *(f"台区 {a}:{t}" for a, t in n["transformer_areas"])])


def _line(n: dict[str, Any]) -> str:
    restore = n.get("expected_restore_at") or n.get("schedule_end_at") or "-"
    return (f"{n['id']:>5}  {n.get('state', '-'):9} {n['cause']:15} {n['cause_zh']:10} "
            f"start {n['start_at']}  restore {restore}  {_scope_text(n)}"
            + (f"  主单 {n['master_order']}" if n.get("master_order") else "")
            + (f"  {n['agent_text']}" if n.get("agent_text") else ""))


def _echo(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        common.echo_json(doc)
    else:
        click.echo(_line(doc))


def _notice_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed([
        click.option("--area", "areas", multiple=True, help="a whole area (id or code, QY01); "
                     "repeatable"),
        click.option("--feeder", "feeders", multiple=True, help="a feeder (线路; id or code, "
                     "QY01-F1); repeatable"),
        click.option("--ta", "tas", multiple=True, help="a 台区 as AREA:NAME; repeatable"),
        click.option("--start", help="ISO date-time (local time if no zone)"),
        click.option("--restore", help="expected restoration, ISO date-time"),
        click.option("--schedule-end", help="end of planned work's schedule, ISO date-time "
                     "(planned, temporary, load_limiting)"),
        click.option("--text", help="free text for agents (never spoken)"),
        click.option("--master", help="the repair order (主单) covering it, 11 digits"),
        click.option("--json", "as_json", is_flag=True),
    ]):
        fn = opt(fn)
    return fn


CAUSE_CHOICE = click.Choice([c.value for c in Cause])


@click.group("outages")
def outages() -> None:
    """Outage notices (停电通知): list, publish, update, confirm, close."""


@outages.command("list")
@click.option("--closed", default=0, show_default=True, help="also the last N closed")
@click.option("--json", "as_json", is_flag=True)
def outages_list(closed: int, as_json: bool) -> None:
    """Active, suspected (waiting for confirmation), upcoming and (with --closed) closed."""
    from cti.db import outage_board

    svc = _services()
    doc = outage_board.listing(svc.sessions, datetime.now(UTC), closed=max(0, closed))
    if as_json:
        common.echo_json(doc)
        return
    tz = svc.settings.ivr.timezone
    rows = [n for state in ("active", "suspected", "upcoming", "closed") for n in doc[state]]
    common.echo_table(
        ["id", "state", "cause", common.when_header("start", tz),
         common.when_header("restore", tz), "scope", "主单", "for agents"],
        [[n["id"], n.get("state"), f"{n['cause_zh']} {n['cause']}",
          common.local_time(n["start_at"], tz),
          common.local_time(n.get("expected_restore_at") or n.get("schedule_end_at"), tz),
          _scope_text(n), n.get("master_order"), n.get("agent_text")] for n in rows],
        empty="no outage notices", right=["id"])
    if rows:
        click.echo(f"{len(doc['active'])} active, {len(doc['suspected'])} suspected, "
                   f"{len(doc['upcoming'])} upcoming (revision {doc['version']})")


@outages.command("publish")
@click.option("--cause", type=CAUSE_CHOICE, required=True,
              help="; ".join(f"{c.value}: {i.label_zh}" for c, i in CAUSES.items()))
@_notice_options
def outages_publish(cause: str, areas: tuple[str, ...], feeders: tuple[str, ...],
                    tas: tuple[str, ...], start: str | None, restore: str | None,
                    schedule_end: str | None, text: str | None, master: str | None,
                    as_json: bool) -> None:
    """Publish a notice: callers in its scope hear it from their next call."""
    from cti.db import outage_board
    from cti.db.outages import NoticeDraft

    svc = _services()
    tz = svc.settings.ivr.timezone
    a, f, t = _scope(svc, areas, feeders, tas)
    now = datetime.now(UTC)
    draft = NoticeDraft(cause=Cause(cause), start_at=_when(start, tz, "--start") or now,
                        areas=a, feeders=f, transformer_areas=t,
                        expected_restore_at=_when(restore, tz, "--restore"),
                        schedule_end_at=_when(schedule_end, tz, "--schedule-end"),
                        agent_text=(text or "").strip(), master_order=master or None)
    oid = _run(lambda: svc.outages.publish(draft, _who(), now))
    _echo(outage_board.notice_by_id(svc.sessions, oid, now), as_json)


@outages.command("update")
@click.argument("outage_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--cause", type=CAUSE_CHOICE)
@click.option("--replace-scope", is_flag=True,
              help="the given --area/--feeder/--ta replace the scope (else they are added)")
@_notice_options
def outages_update(outage_id: int, cause: str | None, replace_scope: bool,
                   areas: tuple[str, ...], feeders: tuple[str, ...], tas: tuple[str, ...],
                   start: str | None, restore: str | None, schedule_end: str | None,
                   text: str | None, master: str | None, as_json: bool) -> None:
    """Change an open notice: what is given replaces what it had; the rest stays."""
    from dataclasses import replace

    from cti.db import outage_board
    from cti.db import outages as store

    svc = _services()
    tz = svc.settings.ivr.timezone
    with svc.sessions() as s:
        n = _run(lambda: store.get_notice(s, outage_id)).notice
    a, f, t = _scope(svc, areas, feeders, tas)
    keep = not replace_scope
    draft = store.NoticeDraft(
        cause=n.cause, start_at=n.start_at,
        areas=a | (n.scope.areas if keep else frozenset()),
        feeders=f | (n.scope.feeders if keep else frozenset()),
        transformer_areas=t | (n.scope.transformer_areas if keep else frozenset()),
        expected_restore_at=n.expected_restore_at, schedule_end_at=n.schedule_end_at,
        agent_text=n.agent_text, master_order=n.master_order,
        awaiting_confirmation=n.awaiting_confirmation)
    changes: dict[str, Any] = {}
    if cause:
        changes["cause"] = Cause(cause)
    for key, value, what in (("start_at", start, "--start"),
                             ("expected_restore_at", restore, "--restore"),
                             ("schedule_end_at", schedule_end, "--schedule-end")):
        if value:
            changes[key] = _when(value, tz, what)
    if text is not None:
        changes["agent_text"] = text.strip()
    if master is not None:
        changes["master_order"] = master or None
    now = datetime.now(UTC)
    _run(lambda: svc.outages.update(outage_id, replace(draft, **changes), _who(), now))
    _echo(outage_board.notice_by_id(svc.sessions, outage_id, now), as_json)


@outages.command("confirm")
@click.argument("outage_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--json", "as_json", is_flag=True)
def outages_confirm(outage_id: int, as_json: bool) -> None:
    """Confirm a suspected outage: callers in its scope hear it from their next call."""
    from cti.db import outage_board

    svc = _services()
    now = datetime.now(UTC)
    _run(lambda: svc.outages.confirm(outage_id, _who(), now))
    _echo(outage_board.notice_by_id(svc.sessions, outage_id, now), as_json)


@outages.command("close")
@click.argument("outage_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--json", "as_json", is_flag=True)
def outages_close(outage_id: int, as_json: bool) -> None:
    """Power is back (or the notice was wrong): nobody hears it from the next call."""
    from cti.db import outage_board

    svc = _services()
    now = datetime.now(UTC)
    _run(lambda: svc.outages.close(outage_id, _who(), now))
    _echo(outage_board.notice_by_id(svc.sessions, outage_id, now), as_json)


# ------------------------------------------------------------------------------- storm mode


def _storm_line(doc: dict[str, Any]) -> str:
    if not doc["since"]:
        return "storm mode off (never switched)"
    return (f"storm mode {'ON' if doc['on'] else 'off'} since {doc['since']} by {doc['by']} "
            f"({doc['trigger']})" + (f": {doc['detail']}" if doc.get("detail") else ""))


@click.group("storm")
def storm() -> None:
    """Storm mode (恶劣天气应急): on, off, status."""


def _switch(on: bool, detail: str, as_json: bool) -> None:
    from cti.db import outage_board

    svc = _services()
    changed = svc.outages.set_storm(on, _who(), datetime.now(UTC), detail=detail.strip())
    doc = {**outage_board.storm_state(svc.sessions), "changed": changed}
    if as_json:
        common.echo_json(doc)
    else:
        click.echo(_storm_line(doc) + ("" if changed else " (already so; nothing changed)"))


@storm.command("on")
@click.option("--detail", default="", help="why, for the audit trail")
@click.option("--json", "as_json", is_flag=True)
def storm_on(detail: str, as_json: bool) -> None:
    """Switch storm mode on: it stays on until switched off."""
    _switch(True, detail, as_json)


@storm.command("off")
@click.option("--detail", default="", help="why, for the audit trail")
@click.option("--json", "as_json", is_flag=True)
def storm_off(detail: str, as_json: bool) -> None:
    """Switch storm mode off: everything reverts from the next call."""
    _switch(False, detail, as_json)


@storm.command("status")
@click.option("--json", "as_json", is_flag=True)
def storm_status(as_json: bool) -> None:
    """On or off, since when, who or what switched it."""
    from cti.db import outage_board

    doc = outage_board.storm_state(_services().sessions)
    if as_json:
        common.echo_json(doc)
    else:
        click.echo(_storm_line(doc))
