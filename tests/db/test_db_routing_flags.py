"""Routing flags the ACD gets from the database: important customers and repeat fault callers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from cti.db.acd_store import DbAcdStore
from hotline.demo_seed import demo_accounts, seed_demo
from tests.support.orders import fault_report

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def test_important_customer_and_repeat_fault_caller_are_flagged(
        session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as s:
        seed_demo(s, now=NOW, n_accounts=300)
        demo = {d["purpose"]: d for d in demo_accounts(s, NOW)}
    store = DbAcdStore(session_factory)

    def flags(caller: str, account: str | None) -> frozenset[str]:
        # the flags the ACD routes with come with the call's pop, looked up as it queues
        return asyncio.run(store.lookup("1764210600.9", caller, account)).flags

    important, plain = demo["important_customer"]["account_no"], demo["no_outage"]["account_no"]
    assert flags("13000000001", important) == {"important"}
    assert flags("13000000001", plain) == frozenset()
    with session_factory.begin() as s:
        fault_report(s, NOW, plain, caller="13000000002")
    # the same caller again, by number alone, or anyone calling about that account
    assert flags("13000000002", None) == {"repeat_fault"}
    assert flags("+8613000000002", None) == {"repeat_fault"}
    assert flags("13000000009", plain) == {"repeat_fault"}
    assert flags("13000000009", None) == frozenset()
