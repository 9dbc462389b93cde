"""Engine set-up: SQLite pragmas, constraint enforcement, UTC datetimes, backend selection."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cti.db.migrate import upgrade
from cti.db.models import Account, Call, Customer
from cti.db.session import SQLITE_BUSY_TIMEOUT_MS, SQLITE_CACHE_KIB, make_engine

if TYPE_CHECKING:
    from conftest import World


def test_sqlite_connections_get_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -SQLITE_CACHE_KIB
    finally:
        engine.dispose()


def test_sqlite_savepoint_rolls_back_inside_transaction(tmp_path: Path) -> None:
    # The sqlite3 module's legacy transaction mode breaks SAVEPOINT; make_engine must not.
    url = f"sqlite:///{tmp_path / 's.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            s.add(Customer(name="甲", important=False))
            with s.begin_nested() as nested:
                s.add(Customer(name="乙", important=False))
                s.flush()
                nested.rollback()
            s.commit()
        with Session(engine) as s:
            assert s.scalars(select(Customer.name)).all() == ["甲"]
    finally:
        engine.dispose()


def test_postgresql_engine_pings_pool(pg_database_url: str) -> None:
    engine = make_engine(pg_database_url)
    try:
        assert engine.pool._pre_ping
    finally:
        engine.dispose()


def test_unsupported_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        make_engine("mysql://u@localhost/x")


def test_foreign_keys_are_enforced(session: Session) -> None:
    with pytest.raises(IntegrityError):
        session.execute(insert(Account).values(
            account_no="3700000001", customer_id=999, service_address="x", area_id=999))


def test_account_cannot_sit_on_another_areas_feeder(world: World, session: Session) -> None:
    a, b = world.area(), world.area()
    feeder_of_b = world.feeder(b)
    customer = world.account(a).customer_id
    with pytest.raises(IntegrityError):
        session.execute(insert(Account).values(
            account_no="3700000002", customer_id=customer, service_address="x",
            area_id=a.id, feeder_id=feeder_of_b.id))


def test_account_no_must_be_ten_digits(world: World, session: Session) -> None:
    area = world.area()
    customer = world.account(area).customer_id
    with pytest.raises(ValueError, match="10 digits"):
        Account(account_no="37000000")
    # The database refuses it too, for writers that bypass the ORM.
    with pytest.raises(IntegrityError):
        session.execute(insert(Account).values(
            account_no="37000a0000", customer_id=customer, service_address="x", area_id=area.id))


def test_datetimes_come_back_aware_utc(session: Session, now: datetime) -> None:
    beijing = timezone(timedelta(hours=8))
    session.add(Call(call_id="1.1", uniqueid="1.1", caller_number="13800000000", dnis="95598",
                     started_at=now.astimezone(beijing), ivr_path=[]))
    session.commit()
    session.expunge_all()
    started = session.scalars(select(Call.started_at)).one()
    assert started == now and started.tzinfo is not None and started.utcoffset() == timedelta(0)
    assert session.scalars(select(Call.call_id).where(Call.started_at >= now)).all() == ["1.1"]


def test_naive_datetimes_are_refused(session: Session) -> None:
    session.add(Call(call_id="1.2", uniqueid="1.2", caller_number="1", dnis="95598",
                     started_at=datetime(2026, 1, 1), ivr_path=[]))
    with pytest.raises(Exception, match="naive datetime"):
        session.flush()
    session.rollback()
