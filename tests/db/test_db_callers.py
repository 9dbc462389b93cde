"""cti/db/callers.py on both databases: the lists in national form, the reports' window, one
report per call, and what the IVR and the ACD read."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.db import callers as store
from cti.db.acd_store import _flags
from cti.db.calls import record_call_start
from cti.db.models_callers import CallerListEntry

WINDOW = timedelta(days=90)


def _call(s: Session, call_id: str, caller: str, at: datetime) -> None:
    record_call_start(s, call_id=call_id, uniqueid=call_id, caller_number=caller,
                      dnis="95598", now=at)


def test_a_number_is_one_number_in_any_spelling(session_factory: sessionmaker[Session],
                                                now: datetime) -> None:
    with session_factory.begin() as s:
        assert store.add(s, "vip", "+86 139 0000 0001", reason="大客户经理", by="S01",
                         now=now) == "13900000001"
        store.add(s, "nuisance", "13900000001", reason="x", by="S01", now=now)
    with session_factory.begin() as s:
        assert store.kinds_of(s, "008613900000001") == {"vip", "nuisance"}
        assert store.kinds_of(s, "anonymous") == frozenset()  # no number: on no list
        with pytest.raises(store.AlreadyListed):
            store.add(s, "vip", "13900000001", reason="again", by="S02", now=now)
    with session_factory.begin() as s:
        assert s.scalar(select(CallerListEntry.added_by).where(
            CallerListEntry.kind == "vip")) == "S01"  # the first entry is kept
        store.remove(s, "vip", "13900000001")
        with pytest.raises(store.NotListed):
            store.remove(s, "vip", "13900000001")
        with pytest.raises(ValueError, match="unknown caller list"):
            store.add(s, "friends", "13900000001", reason="x", by="S01", now=now)


def test_reports_count_within_the_window_and_once_per_call(
        session_factory: sessionmaker[Session], now: datetime) -> None:
    number = "13700002222"
    with session_factory.begin() as s:
        for i in range(4):
            _call(s, f"c{i}", number, now - timedelta(days=100 - i))
    with session_factory.begin() as s:
        # a report 100 days ago has left the window by the time of the third
        assert store.report_nuisance(s, "c0", by="A001", now=now - timedelta(days=100),
                                     after=3, window=WINDOW) == (number, False)
        assert store.report_nuisance(s, "c1", by="A001", now=now - timedelta(days=5),
                                     after=3, window=WINDOW) == (number, False)
        assert store.report_nuisance(s, "c2", by="A002", now=now, after=3,
                                     window=WINDOW) == (number, False)
        with pytest.raises(store.AlreadyReported):
            store.report_nuisance(s, "c2", by="A002", now=now, after=3, window=WINDOW)
    with session_factory.begin() as s:
        assert store.report_nuisance(s, "c3", by="A002", now=now, after=3,
                                     window=WINDOW) == (number, True)
        assert store.kinds_of(s, number) == {"nuisance"}
        with pytest.raises(store.UnknownCall):
            store.report_nuisance(s, "nope", by="A002", now=now, after=3, window=WINDOW)


def test_a_vip_number_goes_ahead_in_the_queue(session_factory: sessionmaker[Session],
                                              now: datetime) -> None:
    with session_factory.begin() as s:
        store.add(s, "vip", "13900000002", reason="x", by="S01", now=now)
    with session_factory() as s:
        assert "vip" in _flags(s, "13900000002", None)
        assert "vip" not in _flags(s, "13900000003", None)
