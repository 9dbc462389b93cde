"""Engine and session-factory construction for SQLite (dev, demo) and PostgreSQL (production)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

logger = logging.getLogger(__name__)

# Long enough to ride out a burst of concurrent writers on SQLite (a storm day on the demo box),
# short enough that a wedged writer shows up as an error instead of a silent hang.
SQLITE_BUSY_TIMEOUT_MS = 15_000

# Each connection's page cache, in KiB. SQLite's default is 2 MiB a connection, and the CTI keeps
# a dozen or so connections open (its workers' and the durable writer's pools, started whole), so
# the caches alone could hold about 24 MiB as the database grows: the soak saw them grow with it
# (RELIABILITY.md, soak, seventh run). The hotline's hot pages (today's calls, the agents, the
# ACD's state) fit in far less; the OS page cache holds the rest of the file anyway.
SQLITE_CACHE_KIB = 512


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Take transaction control away from the sqlite3 module: its legacy mode does not BEGIN
    # before SELECT or SAVEPOINT, which breaks savepoints and repeatable reads.
    # _sqlite_on_begin emits our own BEGIN instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = ON")
        # Set before journal_mode, which itself may need to wait for another connection's lock.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # Durable enough in WAL mode (only the last commits may roll back on power loss) and
        # avoids an fsync per commit.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")  # negative: in KiB
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock up front. A deferred transaction that read first and writes
    # later fails at once with SQLITE_BUSY (busy_timeout does not apply) when another connection
    # committed in between; that is exactly the repair-order pattern (read account, then allocate
    # a number). The price is that SQLite transactions run one at a time, fine for dev and demo.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, busy_timeout_ms: int | None = None) -> Engine:
    """Create an engine for url. SQLite gets FK enforcement, WAL and a busy timeout
    (busy_timeout_ms: a shorter one, for writes that would rather be journalled than wait)."""
    sa_url = make_url(url)
    backend = sa_url.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(sa_url)
        event.listen(engine, "connect", _sqlite_on_connect)
        if busy_timeout_ms is not None:
            def short_wait(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
                cursor = dbapi_connection.cursor()
                try:  # after _sqlite_on_connect's, so this one holds
                    cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
                finally:
                    cursor.close()
            event.listen(engine, "connect", short_wait)
        event.listen(engine, "begin", _sqlite_on_begin)
    elif backend == "postgresql":
        # pre_ping: a PostgreSQL restart or failover must not surface as the first failed IVR query.
        engine = create_engine(sa_url, pool_pre_ping=True)
    else:
        raise ValueError(f"unsupported database backend {backend!r} in {sa_url!r}")
    logger.debug("engine created for %r", sa_url)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory; open one session per unit of work and commit it yourself."""
    # expire_on_commit=False: callers hand values onward after commit (publish-after-commit)
    # and must not trigger a lazy reload outside the transaction.
    return sessionmaker(bind=engine, expire_on_commit=False)
