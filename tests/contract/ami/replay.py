"""Recorded AMI traces replayed into the client's protocol: no socket, no Asterisk.

panoramisk's own test approach (panoramisk/testing.py), without panoramisk.testing itself: that
module rewrites panoramisk.utils.EOL to '\\n' for the whole process and reads '\\n\\n'-framed
fixtures, while these traces are Asterisk's real CRLF bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cti.ami.protocol import AmiProtocol

TRACES = Path(__file__).resolve().parents[1] / "ami_traces"


def trace_bytes(name: str) -> bytes:
    return (TRACES / f"{name}.ami").read_bytes()


class FakeTransport:
    """What AmiProtocol writes to, kept for inspection."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class Replay:
    """One AmiProtocol over a FakeTransport; feed it bytes, read the events it dispatched."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.lost: list[BaseException | None] = []
        self.transport = FakeTransport()
        self.proto = AmiProtocol(self.events.append, lambda _p, exc: self.lost.append(exc))
        self.proto.connection_made(self.transport)

    def feed(self, data: bytes, chunks: Iterable[int] | int | None = None) -> Replay:
        """All of `data`, in one piece, in pieces of `chunks` bytes, or in the given sizes."""
        if chunks is None:
            self.proto.data_received(data)
            return self
        sizes = iter([chunks] * len(data)) if isinstance(chunks, int) else iter(chunks)
        i = 0
        while i < len(data):
            n = next(sizes, len(data) - i) or 1
            self.proto.data_received(data[i:i + n])
            i += n
        return self

    def request(self, action: Mapping[str, str], as_list: bool) -> Any:
        return self.proto.request(action, as_list)


def replay(name: str, chunks: Iterable[int] | int | None = None) -> Replay:
    return Replay().feed(trace_bytes(name), chunks)


def trace_events(name: str) -> list[Any]:
    return replay(name).events


def recorded_answer(name: str, action_id: str) -> list[bytes]:
    """The raw blocks (CRLF framed) of the answer to one recorded action, in order."""
    blocks = re.split(rb"\r\n\r\n", trace_bytes(name))
    marker = re.compile(rb"(^|\r\n)ActionID: " + re.escape(action_id.encode()) + rb"(\r\n|$)")
    return [b + b"\r\n\r\n" for b in blocks if marker.search(b)]
