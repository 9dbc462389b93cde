"""Fixtures for the contract tests: the seeded demo database (migrated and seeded once), the
`hotline` CLI on a throwaway state, and the browser desktop over a seeded city (db, base_url,
chromium, page: one per module; a module may define its own of the same name)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from agent_desktop.app import create_app
from config.settings import load_settings
from cti.db.migrate import upgrade
from cti.db.session import make_engine, make_session_factory
from hotline.wiring import build_services
from tests.support.browser import VIEWPORT, browser, serve
from tests.support.seeded_db import SeededDb
from tests.support.settings import REPO, write_test_settings


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> SeededDb:
    return SeededDb(tmp_path_factory.mktemp("seeded-db"))


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """Invokes `hotline` with test settings: state under tmp_path/var, no HOTLINE_* leaking in
    from the environment."""
    path = write_test_settings(tmp_path / "hotline.toml", {
        "paths": {"state_dir": str(tmp_path / "var")},
        "ivr": {"flows_dir": str(REPO / "ivr" / "flows")},
        "prompts": {"catalog_dir": str(REPO / "prompts" / "catalog"),
                    "cache_dir": str(tmp_path / "no-cache")},
    })
    monkeypatch.setenv("HOTLINE_SETTINGS", str(path))
    monkeypatch.setenv("HOTLINE_AMI_SECRET", "test-secret")
    monkeypatch.delenv("HOTLINE_DB_URL", raising=False)
    monkeypatch.delenv("HOTLINE_STATE_DIR", raising=False)
    return CliRunner()


@pytest.fixture
def cli_db(tmp_path: Path, runner: CliRunner) -> Iterator[sessionmaker[Session]]:
    """The CLI's own database (tmp_path/var/hotline.db, the `runner`'s state), migrated."""
    (tmp_path / "var").mkdir()
    url = f"sqlite:///{tmp_path / 'var' / 'hotline.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()



# ------------------------------------------------------------- the browser desktop, per module

BROWSER_TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def db(seeded_db: SeededDb, request: pytest.FixtureRequest,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """The settings and sessions of a seeded SQLite city of 200 accounts, one per module."""
    state = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    path = write_test_settings(state / "hotline.toml", {"paths": {"state_dir": str(state)}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    settings = load_settings(path, env)
    engine = make_engine(seeded_db(state, now=datetime.now(UTC), n_accounts=200))
    yield settings, make_session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def base_url(db: tuple[Any, Any]) -> Iterator[str]:
    """The desktop's web app over the module's database, served on a free port."""
    settings, sessions = db
    app = create_app(build_services(settings, sessions).web_context())
    with serve(app) as base:
        yield base


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as b:
        yield b


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    ctx = chromium.new_context(viewport=VIEWPORT, locale="zh-CN")
    pg = ctx.new_page()
    pg.set_default_timeout(BROWSER_TIMEOUT_MS)
    yield pg
    ctx.close()
