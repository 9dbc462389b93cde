"""What a test client has received, in order, and a wait for the first item that matches: one
definition for the AMI, MQTT and WebSocket recorders. threading.Condition.wait_for keeps the
deadline, so no test polls or sleeps."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    def __init__(self, what: str, timeout_error: type[Exception] = AssertionError) -> None:
        self.what = what  # "AMI event", "MQTT message", ...
        self.timeout_error = timeout_error
        self.cond = threading.Condition()
        self._items: list[T] = []

    def add(self, item: T) -> None:
        with self.cond:
            self._items.append(item)
            self.cond.notify_all()

    def items(self) -> list[T]:
        with self.cond:
            return list(self._items)

    def mark(self) -> int:
        """Where the next item will be: wait_for(..., since=mark) sees only newer ones."""
        with self.cond:
            return len(self._items)

    def wait_for(self, pred: Callable[[T], bool], timeout: float, what: str = "",
                 since: int = 0) -> T:
        """The first item from index `since` matching `pred`, waiting up to `timeout` s."""
        seen = since
        found: list[T] = []

        def match() -> bool:
            nonlocal seen
            found.extend(item for item in self._items[seen:] if pred(item))
            seen = len(self._items)
            return bool(found)

        with self.cond:
            if not self.cond.wait_for(match, timeout):
                raise self.timeout_error(f"no {self.what} {what or pred} within {timeout:.0f}s")
        return found[0]
