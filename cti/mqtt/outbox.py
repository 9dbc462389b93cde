"""Publish after commit: MQTT messages held per SQLAlchemy Session until its transaction commits.

A desktop must never see something the database does not have (convention 7), so a unit of
work adds its messages here instead of publishing them; they reach the bus in the Session's
`after_commit` event and are discarded on rollback. A message added inside a SAVEPOINT
(`begin_nested`) is dropped if that savepoint rolls back, and otherwise waits for the outer
commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from cti.mqtt.topics import check_publish_topic, encode_payload

log = logging.getLogger(__name__)


class Publisher(Protocol):
    def publish(self, topic: str, payload: Mapping[str, Any] | str | bytes, *, qos: int = 1,
                retain: bool = False) -> None: ...


@dataclass(frozen=True, slots=True)
class _Held:
    transaction: SessionTransaction  # the innermost transaction it was added in
    topic: str
    payload: bytes
    qos: int
    retain: bool


class PublishAfterCommit:
    """Holds messages per Session; hands them to `bus` only after that Session commits.

    Safe with sessions used in worker threads: each Session keeps its own list, and
    MqttBus.publish may be called from any thread.
    """

    def __init__(self, bus: Publisher) -> None:
        self._bus = bus
        self._key = ("cti.mqtt.outbox", id(self))

    def add(self, session: Session, topic: str,
            payload: Mapping[str, Any] | str | bytes, *, qos: int = 1,
            retain: bool = False) -> None:
        """Hold a message until `session` commits. The topic and payload are checked and
        encoded now, so a bad one fails inside the unit of work, not after its commit.

        Begins the session's transaction if none is active yet."""
        check_publish_topic(topic)
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        data = encode_payload(payload)
        held = self._held(session)
        if not session.in_transaction():
            session.begin()
        transaction = session.get_nested_transaction() or session.get_transaction()
        assert transaction is not None  # begun just above
        held.append(_Held(transaction, topic, data, qos, bool(retain)))

    def pending(self, session: Session) -> int:
        """How many messages wait for this session's commit."""
        return len(session.info.get(self._key, ()))

    # --------------------------------------------------------------------------- the events

    def _held(self, session: Session) -> list[_Held]:
        held: list[_Held] | None = session.info.get(self._key)
        if held is None:
            held = session.info[self._key] = []
            event.listen(session, "after_commit", self._after_commit)
            event.listen(session, "after_soft_rollback", self._after_soft_rollback)
            event.listen(session, "after_transaction_end", self._after_transaction_end)
        return held

    def _after_commit(self, session: Session) -> None:
        # SQLAlchemy fires after_commit for a released SAVEPOINT too; only the outermost
        # commit makes the data visible to others.
        if session.get_nested_transaction() is not None:
            return
        transaction = session.get_transaction()
        if transaction is not None and transaction.parent is not None:
            return
        held: list[_Held] = session.info.get(self._key, [])
        ready, held[:] = list(held), []
        for msg in ready:
            try:
                self._bus.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
            except Exception:  # the commit is done; a failure here must not look like its own
                log.exception("could not hand %s to the MQTT bus after commit", msg.topic)

    def _after_soft_rollback(self, session: Session, previous: SessionTransaction) -> None:
        held: list[_Held] = session.info.get(self._key, [])
        held[:] = [m for m in held if not _within(m.transaction, previous)]

    def _after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        # The outermost transaction ended: whatever was not committed by now never will be.
        if transaction.parent is None:
            held: list[_Held] = session.info.get(self._key, [])
            if held:
                log.debug("discarding %d MQTT message(s) of an uncommitted session", len(held))
                held.clear()


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False
