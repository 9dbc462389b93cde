"""Fixtures for the contract tests: the seeded demo database (migrated and seeded once) and
the `hotline` CLI on a throwaway state."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

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
