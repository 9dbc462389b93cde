"""What every `hotline` subcommand shares: settings (with the stack's env file), JSON output, and
the text output's tables and times (issue 15 §5: headers, the center's time zone named, an empty
result said so, no traceback on a bad option)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings, SettingsError, load_settings
from hotline import stack, wiring

# --limit everywhere: at least one row, and no more than a screenful of pages
LIMIT = click.IntRange(1, 1000)
OFFSET = click.IntRange(0, 2**31 - 1)  # beyond it PostgreSQL's driver overflows
# a table as wide as its cells when the output is not a terminal (a pipe, a file): never wrapped
_PIPE_WIDTH = 400


def settings(ensure_secret: bool = False) -> Settings:
    """The settings, after the state dir's env file (AMI secret) is loaded; a bad file is a
    clean CLI error, not a traceback."""
    try:
        first = load_settings()
        stack.load_env_file(first.state_dir, create=ensure_secret)
        return load_settings()
    except (SettingsError, stack.StackError) as exc:
        raise click.ClickException(str(exc)) from None


def sessions(s: Settings) -> sessionmaker[Session]:
    return wiring.open_database(s)


def services(s: Settings | None = None) -> wiring.Services:
    return wiring.build_services(s if s is not None else settings())


def echo_json(doc: Any) -> None:
    click.echo(json.dumps(doc, ensure_ascii=False, indent=2, default=str))


MAX_DAYS = 366  # days one report or listing spans at most


def day_range(first: str | None, last: str | None, tz: ZoneInfo) -> tuple[date, date]:
    """The local days of --from/--to (ISO dates; --from defaults to today in the center's zone,
    --to to --from), checked: in order, at most MAX_DAYS, years 2000-2999."""
    start = _day(first, "--from") or datetime.now(UTC).astimezone(tz).date()
    end = _day(last, "--to") or start
    if end < start:
        raise click.UsageError("--to is before --from")
    if (end - start).days >= MAX_DAYS:
        raise click.UsageError(f"at most {MAX_DAYS} days at once")
    if start.year < 2000 or end.year > 2999:
        raise click.UsageError("days from 2000-01-01 to 2999-12-31 only")
    return start, end


def _day(value: str | None, what: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (2026-11-27)", param_hint=what) \
            from None


def local_time(value: datetime | str | None, tz: str) -> str:
    """A stored time (a datetime, or the ISO text of the JSON listings) in the center's zone,
    to the second, without the zone: the table's header names it (`when_header`). A time with
    no zone is UTC, as the database keeps them. None or "": '-'."""
    if value is None or value == "":
        return "-"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo("UTC"))
    return at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")


def when_header(what: str, tz: str) -> str:
    """A time column's header, naming the zone its times are in: 'started (Asia/Shanghai)'."""
    return f"{what} ({tz})"


def echo_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str,
               right: Sequence[str] = ()) -> None:
    """Rows under a header, the columns as wide as their widest cell (Chinese counted double);
    no rows: `empty`, said instead of an empty table. Columns named in `right` align right."""
    if not rows:
        click.echo(empty)
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, highlight=False)
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*("-" if cell is None or cell == "" else str(cell) for cell in row))
    tty = sys.stdout.isatty()
    console = Console(width=None if tty else _PIPE_WIDTH, no_color=True, highlight=False,
                      emoji=False, markup=False, soft_wrap=False)
    with console.capture() as out:
        console.print(table)
    click.echo("\n".join(line.rstrip() for line in out.get().splitlines()))
