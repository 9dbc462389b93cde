"""The CTI's log file, read from a mark on (integration tests): what the daemon says it did."""

from __future__ import annotations

from config.settings import Settings
from hotline import stack


class CtiLog:
    """The CTI's log file, read from a mark on: the storm watch says there what it fed the ACD."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.state_dir / "log" / "cti.log"

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def read(self, since: int) -> str:
        with self.path.open("rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")

    def wait_for(self, text: str, since: int, timeout: float) -> None:
        stack.wait_until(lambda: text in self.read(since), timeout, f"{text!r} in {self.path}")
