"""Fixtures for the contract tests: the seeded demo database, migrated and seeded once."""

from __future__ import annotations

import pytest

from tests.support.seeded_db import SeededDb


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> SeededDb:
    return SeededDb(tmp_path_factory.mktemp("seeded-db"))
