"""Schema migrations run from code: the alembic configuration, `migrating(url)` and
`upgrade(url)`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config

from cti.db.session import make_engine

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An alembic Config pointing at this package's migrations; no alembic.ini, any cwd."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


@contextmanager
def migrating(url: str) -> Iterator[Config]:
    """An alembic Config bound to one transaction on the database at url, for alembic.command
    calls (upgrade, downgrade...); committed when the block ends without an error."""
    cfg = alembic_config()
    # The engine comes from make_engine so migrations run with the same SQLite pragmas
    # (foreign keys, WAL) as the application. Passing the connection also keeps the URL out of
    # ConfigParser, which would choke on '%' in passwords.
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            yield cfg
    finally:
        engine.dispose()


def upgrade(url: str) -> None:
    """Bring the database at url to the newest schema (alembic upgrade head)."""
    with migrating(url) as cfg:
        # one history: 0005_merge joins the four feature branches written off 0002, so
        # "head" is one revision and a fifth head is an error here, not a silent branch
        command.upgrade(cfg, "head")
    logger.info("database schema is at head")
