"""Dialect-specific INSERT … ON CONFLICT, the one statement SQLite and PostgreSQL spell alike."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

InsertOnConflict = postgresql.Insert | sqlite.Insert


def insert_on_conflict(session: Session, model: Any) -> InsertOnConflict:
    """An INSERT for model that supports on_conflict_do_nothing/do_update on this session's DB."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise ValueError(f"no ON CONFLICT support for dialect {dialect!r}")
