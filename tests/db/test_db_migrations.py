"""The alembic migrations produce exactly the schema the models describe, on both databases."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Column, Engine, Integer, MetaData, inspect

import cti.db.models_calendars  # noqa: F401  (the skills' service hours)
import cti.db.models_callers  # noqa: F401  (the inbound caller lists)
import cti.db.models_outbound  # noqa: F401  (the outbound engine's tables)
import cti.db.models_recordings  # noqa: F401  (the recorder's tables)
import cti.db.models_reports  # noqa: F401  (the workload reports' tables)
import cti.db.models_supervision  # noqa: F401  (supervision's tables)
import cti.db.models_transcripts  # noqa: F401  (transcription's tables)
import cti.db.models_web  # noqa: F401  (the agent desktop's tables)
from cti.db.migrate import alembic_config, migrating, upgrade
from cti.db.models import Base
from cti.db.session import make_engine


def _diffs(engine: Engine, metadata: MetaData) -> list[Any]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(ctx, metadata))


def test_migrated_schema_matches_models(engine: Engine) -> None:
    assert _diffs(engine, Base.metadata) == []


def test_comparison_would_notice_drift(engine: Engine) -> None:
    # Guards the test above against comparing nothing with nothing.
    drifted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["calls"].append_column(Column("extra", Integer))
    assert [d[0] for d in _diffs(engine, drifted)] == ["add_column"]


def test_check_constraints_are_created(engine: Engine) -> None:
    # alembic does not compare CHECK constraints, so compare their names here.
    dialect = engine.dialect.name
    inspector = inspect(engine)
    for table in Base.metadata.sorted_tables:
        wanted = {
            str(c.name) for c in table.constraints
            if isinstance(c, CheckConstraint)
            and (c._ddl_if is None or c._ddl_if.dialect in (None, dialect))
        }
        found = {str(c["name"]) for c in inspector.get_check_constraints(table.name)}
        assert found == wanted, table.name


def test_one_history_with_exactly_one_head() -> None:
    # four feature branches were written off 0002 at once; 0005_merge joins them. A new
    # migration that forgets to follow the head makes a second head and fails here
    script = ScriptDirectory.from_config(alembic_config())
    heads = script.get_heads()
    assert len(heads) == 1, f"more than one alembic head: {heads}"
    assert len(script.get_bases()) == 1


def test_upgrade_again_is_a_noop_and_at_head(db_url: str, engine: Engine) -> None:
    upgrade(db_url)
    [head] = ScriptDirectory.from_config(alembic_config()).get_heads()
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_heads() == (head,)


def _current(engine: Engine) -> tuple[str, ...]:
    with engine.connect() as conn:
        return tuple(MigrationContext.configure(conn).get_current_heads())


def test_upgrade_downgrade_to_base_upgrade_round_trips(db_url: str, engine: Engine) -> None:
    """Every downgrade runs, down to an empty database, and the upgrade after it gives the
    models' schema again (on SQLite and PostgreSQL: both are parameters of db_url)."""
    with migrating(db_url) as cfg:
        command.downgrade(cfg, "base")
    assert _current(engine) == ()
    left = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert left == set()
    upgrade(db_url)
    [head] = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert _current(engine) == (head,)
    assert _diffs(engine, Base.metadata) == []
    test_check_constraints_are_created(engine)  # alembic's comparison does not see them


def test_upgrade_works_from_any_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert not (Path(os.getcwd()) / "alembic.ini").exists()
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        assert _diffs(engine, Base.metadata) == []
    finally:
        engine.dispose()


def _where(clause: Any) -> str:
    return " ".join(str(clause).replace("(", "").replace(")", "").lower().split())


def test_partial_indexes_keep_their_condition(engine: Engine) -> None:
    # alembic compares index columns and uniqueness, not the WHERE of a partial index; without
    # it the open-session indexes would forbid an agent's second login ever.
    dialect = engine.dialect.name
    inspector = inspect(engine)
    wanted = {
        str(ix.name): _where(ix.dialect_options[dialect]["where"])
        for table in Base.metadata.sorted_tables for ix in table.indexes
        if ix.dialect_options[dialect].get("where") is not None
    }
    found = {
        str(ix["name"]): _where(ix["dialect_options"][f"{dialect}_where"])
        for table in Base.metadata.sorted_tables for ix in inspector.get_indexes(table.name)
        if ix.get("dialect_options", {}).get(f"{dialect}_where") is not None
    }
    assert found == wanted
    assert wanted == {"uq_agent_sessions_open_agent": "logout_at is null",
                      "uq_agent_sessions_open_seat": "logout_at is null"}


def test_0002_downgrades_and_upgrades_again(db_url: str, engine: Engine) -> None:
    new_tables = {"agents", "agent_sessions", "agent_state_log", "acd_snapshots"}
    new_call_columns = {"queued_at", "answered_at", "agent_id", "seat"}
    with migrating(db_url) as cfg:
        command.downgrade(cfg, "0001")
    inspector = inspect(engine)
    assert not new_tables & set(inspector.get_table_names())
    assert not new_call_columns & {c["name"] for c in inspector.get_columns("calls")}
    assert "ix_work_orders_caller_number" not in {
        ix["name"] for ix in inspector.get_indexes("work_orders")}
    upgrade(db_url)
    assert _diffs(engine, Base.metadata) == []
    inspector = inspect(engine)
    assert new_tables <= set(inspector.get_table_names())
