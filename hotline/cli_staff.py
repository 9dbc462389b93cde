"""`hotline staff ...` and `hotline skills ...`: the admin console's staff and skills from a
shell on the server (issue 15 §1), e.g. the first admin of a real deployment, whose demo
password the desktop refuses. Every change is audited as the operating system's user
(`cli:<user>`), in the same unit of work (cti.db.staff). A skills change reaches a logged-in
agent's next offer within seconds (the CTI's skills watch)."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from cti.db import staff
from hotline import cli_common as common

ROLES = click.Choice(["agent", "supervisor", "admin", "department"])
DEPARTMENTS = click.Choice(["repair", "marketing", "metering"])


def _actor() -> staff.Actor:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container, say)
        who = "unknown"
    return staff.Actor(f"cli:{who}"[:64], "admin")


def _run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    settings = common.settings()
    try:
        return staff.in_unit(common.sessions(settings), fn, *args, **kwargs)
    except staff.StaffError as exc:
        raise click.ClickException(str(exc)) from None


def _skills(pairs: tuple[str, ...]) -> dict[str, int]:
    """general=4 english=3 -> {"general": 4, "english": 3}."""
    out: dict[str, int] = {}
    for pair in pairs:
        name, sep, level = pair.partition("=")
        if not sep or not level.isdigit():
            raise click.BadParameter(f"{pair!r}: give SKILL=LEVEL, e.g. general=4",
                                     param_hint="SKILLS")
        out[name] = int(level)
    return out


@click.group("staff")
def staff_group() -> None:
    """Staff (人员): agents, supervisors, admins and the departments' users."""


@staff_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def staff_list(as_json: bool) -> None:
    """Every member of staff, with role, department, skills and whether active."""
    settings = common.settings()
    rows = staff.in_unit(common.sessions(settings), staff.list_staff)
    if as_json:
        common.echo_json(rows)
        return
    tz = settings.ivr.timezone
    common.echo_table(
        ["id", "name", "role", "department", "skills", "active", "must change password",
         common.when_header("created", tz)],
        [[r["agent_id"], r["name"], r["role"], r["department"],
          " ".join(f"{k}={v}" for k, v in sorted(r["skills"].items())),
          "yes" if r["active"] else "no", "yes" if r["must_change_password"] else "",
          common.local_time(r["created_at"], tz)] for r in rows],
        empty="no staff yet: hotline staff add ID --name N --role admin")


@staff_group.command("add")
@click.argument("agent_id")
@click.option("--name", required=True)
@click.option("--role", type=ROLES, required=True)
@click.option("--department", type=DEPARTMENTS, help="a department user's (required for them)")
@click.argument("skills", nargs=-1)
def staff_add(agent_id: str, name: str, role: str, department: str | None,
              skills: tuple[str, ...]) -> None:
    """Add a user (SKILLS: general=4 english=3 for an agent). Prints a temporary password,
    which they change at their first login."""
    settings = common.settings()
    password = staff.temporary_password()
    _run(staff.create_staff, agent_id=agent_id, name=name, role=role, password=password,
         skills=_skills(skills), department=department, demo=settings.demo,
         now=datetime.now(UTC), actor=_actor())
    click.echo(f"{agent_id} added ({role}); temporary password, to change at the first "
               f"login: {password}")


@staff_group.command("skills")
@click.argument("agent_id")
@click.argument("skills", nargs=-1)
def staff_skills(agent_id: str, skills: tuple[str, ...]) -> None:
    """Set an agent's skills, all of them (SKILLS: general=4 repair=5; none: no skills)."""
    checked = _run(staff.set_skills, agent_id, _skills(skills), now=datetime.now(UTC),
                   actor=_actor())
    click.echo(f"{agent_id}: " + (" ".join(f"{k}={v}" for k, v in sorted(checked.items()))
                                  or "no skills"))


@staff_group.command("disable")
@click.argument("agent_id")
def staff_disable(agent_id: str) -> None:
    """Disable a user: no login from now on (an open session ends at its next request)."""
    _run(staff.set_active, agent_id, False, now=datetime.now(UTC), actor=_actor())
    click.echo(f"{agent_id} disabled")


@staff_group.command("enable")
@click.argument("agent_id")
def staff_enable(agent_id: str) -> None:
    """Enable a disabled user again."""
    _run(staff.set_active, agent_id, True, now=datetime.now(UTC), actor=_actor())
    click.echo(f"{agent_id} enabled")


@staff_group.command("reset-password")
@click.argument("agent_id")
def staff_reset_password(agent_id: str) -> None:
    """A temporary password, printed once; the user changes it at their next login."""
    password = _run(staff.reset_password, agent_id, now=datetime.now(UTC), actor=_actor())
    click.echo(f"{agent_id}: temporary password, to change at the next login: {password}")


@click.group("skills")
def skills_group() -> None:
    """Skills (技能组) calls are routed by."""


@skills_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def skills_list(as_json: bool) -> None:
    """Every skill, with how many active agents hold it."""
    settings = common.settings()
    rows = staff.in_unit(common.sessions(settings), staff.list_skills)
    if as_json:
        common.echo_json(rows)
        return
    common.echo_table(["skill", "中文", "English", "agents", "active"],
                      [[r["name"], r["label_zh"], r["label_en"], r["agents"],
                        "yes" if r["active"] else "no"] for r in rows],
                      empty="no skills yet: hotline skills add NAME --zh 名称 --en name",
                      right=["agents"])


@skills_group.command("add")
@click.argument("name")
@click.option("--zh", "label_zh", required=True, help="the Chinese label")
@click.option("--en", "label_en", required=True, help="the English label")
def skills_add(name: str, label_zh: str, label_en: str) -> None:
    """Add a skill; then give it to agents (hotline staff skills) and use it in flows."""
    _run(staff.create_skill, name=name, label_zh=label_zh, label_en=label_en,
         now=datetime.now(UTC), actor=_actor())
    click.echo(f"skill {name} added")
