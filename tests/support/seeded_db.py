"""Seeded demo databases for tests: migrated and seeded once, copied for each test."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cti.db.migrate import upgrade
from cti.db.session import make_engine, make_session_factory
from hotline.demo_seed import seed_demo

# the tests' clock is 10:30 in Beijing on 27 November; the demo data is seeded a day before
SEED_NOW = datetime(2026, 11, 27, 2, 30, tzinfo=UTC) - timedelta(days=1)


class SeededDb:
    """Seeded SQLite databases. Each (now, n_accounts) is migrated and seeded once per session;
    every call copies that file into `folder` and returns the copy's URL, so a test may write."""

    def __init__(self, templates: Path) -> None:
        self.templates = templates
        self._made: dict[tuple[datetime, int], Path] = {}

    def __call__(self, folder: Path, *, now: datetime = SEED_NOW,
                 n_accounts: int = 60) -> str:
        key = (now, n_accounts)
        if key not in self._made:
            path = self.templates / f"seed-{len(self._made)}.db"
            url = f"sqlite:///{path}"
            upgrade(url)
            engine = make_engine(url)
            with make_session_factory(engine).begin() as s:
                seed_demo(s, now=now, n_accounts=n_accounts)
            engine.dispose()  # checkpoints the WAL into the file
            self._made[key] = path
        folder.mkdir(parents=True, exist_ok=True)
        copy = folder / "seeded.db"
        shutil.copyfile(self._made[key], copy)
        return f"sqlite:///{copy}"
