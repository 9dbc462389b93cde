"""What every `hotline` subcommand shares: settings (with the stack's env file) and JSON output."""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings, SettingsError, load_settings
from hotline import stack, wiring


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
