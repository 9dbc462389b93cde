"""A small WebSocket client for tests (wsproto over a socket, read in a thread): connect with a
cookie, collect JSON text messages, wait for one with a deadline."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from tests.support.inbox import Inbox


class WsClient:
    def __init__(self, host: str, port: int, path: str, cookie: str, timeout: float = 10) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self._messages: Inbox[dict[str, Any]] = Inbox("push message")
        self.closed: int | None = None
        self._text = ""
        self.sock.sendall(self.ws.send(Request(
            host=f"{host}:{port}", target=path, extra_headers=[(b"cookie", cookie.encode())])))
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"no WebSocket handshake answer on {path}")
            self.ws.receive_data(self.sock.recv(65536))
            events = list(self.ws.events())
            if any(isinstance(e, AcceptConnection) for e in events):
                break
            if any(isinstance(e, RejectConnection | CloseConnection) for e in events):
                raise AssertionError(f"WebSocket {path} refused: {events}")
        self.sock.settimeout(0.5)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while self.closed is None:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, TextMessage | Message):
                    self._text += str(event.data)
                    if event.message_finished:
                        self._messages.add(json.loads(self._text))
                        self._text = ""
                elif isinstance(event, Ping):
                    self.sock.sendall(self.ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.closed = event.code

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self._messages.items()

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float,
                 what: str) -> dict[str, Any]:
        return self._messages.wait_for(pred, timeout, what)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # already gone
            self.sock.sendall(self.ws.send(CloseConnection(code=1000)))
        self.closed = self.closed or 1000
        self.sock.close()
        self._thread.join(2)
