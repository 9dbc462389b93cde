"""A fake Asterisk that speaks AMI over a real TCP socket (asyncio.start_server).

It sends the banner, answers Login (Success, then FullyBooted, as Asterisk 22 does), records
every action it receives with the connection it came on, and lets a test decide how each action
is answered: not at all, by dropping the connection, or with recorded bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def block(headers: Mapping[str, str]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + b"\r\n"


def parse(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in raw.decode("utf-8", errors="replace").split("\r\n"):
        k, sep, v = line.partition(": ")
        if sep:
            out.setdefault(k, v)
    return out


@dataclass
class Conn:
    index: int  # 1 for the first connection, 2 after the first reconnect, ...
    writer: asyncio.StreamWriter

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def respond(self, action: Mapping[str, str], response: str = "Success", **headers: str
                ) -> None:
        self.send(block({"Response": response, "ActionID": action.get("ActionID", ""),
                         **headers}))

    def event(self, name: str, **headers: str) -> None:
        self.send(block({"Event": name, "Privilege": "call,all", **headers}))

    def drop(self) -> None:
        self.writer.close()


@dataclass
class Received:
    conn: int
    action: dict[str, str]

    @property
    def name(self) -> str:
        return self.action.get("Action", "").lower()


Handler = Callable[[Conn, dict[str, str]], Awaitable[None] | None]


@dataclass
class FakeAmi:
    handlers: dict[str, Handler] = field(default_factory=dict)  # by lower-case action name
    login_ok: bool = True
    uptime: str = "1"  # FullyBooted's Uptime: seconds since this "Asterisk" started
    received: list[Received] = field(default_factory=list)
    conns: list[Conn] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self) -> FakeAmi:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for c in self.conns:
            c.drop()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def live(self) -> Conn | None:
        return next((c for c in reversed(self.conns) if not c.writer.is_closing()), None)

    def drop_all(self) -> None:
        for c in self.conns:
            c.drop()

    def actions(self, name: str) -> list[Received]:
        return [r for r in self.received if r.name == name.lower()]

    async def wait_for(self, pred: Callable[[list[Received]], bool], timeout: float = 5,
                       what: str = "") -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: pred(self.received))

    async def wait_action(self, name: str, count: int = 1, timeout: float = 5) -> Received:
        await self.wait_for(lambda _r: len(self.actions(name)) >= count, timeout, name)
        return self.actions(name)[count - 1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(len(self.conns) + 1, writer)
        self.conns.append(conn)
        writer.write(BANNER)
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                action = parse(raw)
                async with self._changed:
                    self.received.append(Received(conn.index, action))
                    self._changed.notify_all()
                name = action.get("Action", "").lower()
                handler = self.handlers.get(name)
                if handler is not None:
                    res = handler(conn, action)
                    if res is not None:
                        await res
                elif name == "login":
                    if self.login_ok:
                        conn.respond(action, Message="Authentication accepted")
                        conn.send(block({"Event": "FullyBooted", "Privilege": "system,all",
                                         "Uptime": self.uptime, "LastReload": "1",
                                         "Status": "Fully Booted"}))
                    else:
                        conn.respond(action, "Error", Message="Authentication failed")
                elif name == "ping":
                    conn.respond(action, Ping="Pong")
                else:
                    conn.respond(action)
                await writer.drain()
        finally:
            writer.close()
            async with self._changed:
                self._changed.notify_all()


def no_answer(_conn: Conn, _action: dict[str, str]) -> None:
    """Asterisk busy elsewhere: the action is never answered."""


def drop_connection(conn: Conn, _action: dict[str, str]) -> None:
    """The connection dies with the action in flight."""
    conn.drop()


def replay_answer(blocks: list[bytes], recorded_id: str) -> Handler:
    """Answer with recorded bytes, their ActionID rewritten to the one just received."""
    def handler(conn: Conn, action: dict[str, str]) -> None:
        new = action.get("ActionID", "").encode()
        for b in blocks:
            conn.send(b.replace(b"ActionID: " + recorded_id.encode() + b"\r\n",
                                b"ActionID: " + new + b"\r\n"))
    return handler
