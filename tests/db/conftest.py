"""Fixtures for the database tests: every test runs on SQLite and on a throwaway PostgreSQL DB."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from cti.db.migrate import upgrade
from cti.db.models import (
    Account,
    AccountPhone,
    Area,
    Base,
    Bill,
    Customer,
    Feeder,
    Outage,
    OutageArea,
    Payment,
)
from cti.db.session import make_engine, make_session_factory
from hotline.demo_seed import demo_accounts, seed_demo

logger = logging.getLogger(__name__)

PG_URL_ENV = "HOTLINE_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql+psycopg://hotline:hotline@127.0.0.1:5432/postgres"
BACKENDS = ("sqlite", "postgresql")
T = TypeVar("T")
# 10:30 in Beijing: inside the working day, so "today" is the same date in UTC and local time.
NOW = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database for this test session, dropped at the end."""
    server = make_url(os.environ.get(PG_URL_ENV, DEFAULT_PG_URL))
    name = f"hotline_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                          connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        # Fail, never skip: a green run without PostgreSQL would hide production-only bugs.
        pytest.fail(f"PostgreSQL is required for tests/db ({PG_URL_ENV}={server!r}): {exc}",
                    pytrace=False)
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database URL migrated to head with upgrade(), once per backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'hotline.db'}"
    else:
        url = request.getfixturevalue("pg_database_url")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def _wipe(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        else:
            # outages.master_order_id and work_orders.outage_id point at each other: break
            # the cycle first, or deleting either table trips the other's foreign key
            conn.exec_driver_sql("UPDATE outages SET master_order_id = NULL")
            for table in tables:
                conn.exec_driver_sql(f"DELETE FROM {table}")


@pytest.fixture
def wipe(engine: Engine) -> Callable[[], None]:
    """Empty every table (the schema stays), for tests that need two fresh starts."""
    return lambda: _wipe(engine)


@pytest.fixture(scope="module")
def demo_city(engine: Engine) -> Iterator[dict[str, dict[str, Any]]]:
    """The full 5,000-account demo city, seeded once per module and backend; demo accounts by
    purpose. Tests using it must roll back what they write, and the module must not use the
    per-test fixtures (session_factory, session, world), which empty every table."""
    with make_session_factory(engine)() as s:
        seed_demo(s, now=NOW)
        s.commit()
        demos = {d["purpose"]: d for d in demo_accounts(s, NOW)}
    yield demos
    _wipe(engine)


@pytest.fixture
def session_factory(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions on the migrated DB; all rows are removed after the test."""
    yield make_session_factory(engine)
    _wipe(engine)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as s:
        yield s


@pytest.fixture
def now() -> datetime:
    return NOW


class World:
    """Builds small, explicit topologies and accounts for a test; flushes as it goes."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._n = 0

    def _next(self) -> int:
        self._n += 1
        return self._n

    def _add(self, obj: T) -> T:
        self.session.add(obj)
        self.session.flush()
        return obj

    def area(self, kind: str = "urban", name: str | None = None) -> Area:
        n = self._next()
        return self._add(Area(code=f"T{n:03d}", name=name or f"测试{kind}区{n}", kind=kind))

    def feeder(self, area: Area) -> Feeder:
        n = self._next()
        return self._add(Feeder(code=f"F{n:03d}", name=f"10kV测试{n}线", area_id=area.id))

    def account(
        self, area: Area, feeder: Feeder | None = None, *, account_no: str | None = None,
        name: str = "张伟", important_kind: str | None = None, phones: Iterable[str] = (),
    ) -> Account:
        customer = self._add(Customer(name=name, important=important_kind is not None,
                                      important_kind=important_kind))
        account = self._add(Account(
            account_no=account_no or f"{3700000000 + self._next()}", customer_id=customer.id,
            service_address="历下区泉城路123号2单元301室", area_id=area.id,
            feeder_id=feeder.id if feeder else None, transformer_area="泉城路1号台区"))
        for phone in phones:
            self._add(AccountPhone(account_id=account.id, phone=phone))
        return account

    def bill(
        self, account: Account, period: str, amount: str, *, paid: bool,
        paid_amount: str | None = None, due: date | None = None, usage_kwh: int = 150,
    ) -> Bill:
        year, month = (int(x) for x in period.split("-"))
        due_date = due or (date(year + month // 12, month % 12 + 1, 25))
        value = Decimal(amount)
        paid_value = (Decimal(paid_amount) if paid_amount is not None
                      else value if paid else Decimal("0.00"))
        return self._add(Bill(account_id=account.id, period=period, usage_kwh=usage_kwh,
                              amount=value, due_date=due_date, paid=paid,
                              paid_amount=paid_value))

    def payment(self, account: Account, amount: str, at: datetime,
                channel: str = "wechat") -> Payment:
        return self._add(Payment(account_id=account.id, amount=Decimal(amount), paid_at=at,
                                 channel=channel))

    def outage(
        self, kind: str, *, start: datetime, expected: datetime,
        where: Iterable[tuple[Area, Feeder | None]], restored: datetime | None = None,
        cause: str = "10kV线路故障",
    ) -> Outage:
        outage = Outage(kind=kind, category=kind, cause=cause, start_at=start,
                        expected_restore_at=expected, restored_at=restored,
                        schedule_end_at=expected if kind == "planned" else None,
                        notice="测试停电通知")
        outage.areas = [OutageArea(area_id=a.id, feeder_id=f.id if f else None)
                        for a, f in where]
        return self._add(outage)


@pytest.fixture
def world(session: Session) -> World:
    return World(session)
