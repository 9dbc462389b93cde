"""FastAGI server: a hardened accept loop and command channel, with panoramisk's result parser."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from panoramisk.utils import parse_agi_result

from ivr.agi_peer import Endpoint, proc_peer_uid

log = logging.getLogger(__name__)

HEADER_TIMEOUT_S = 5.0
MAX_HEADER_BYTES = 64 * 1024
DEFAULT_COMMAND_TIMEOUT_S = 30.0


class AgiHangup(Exception):
    """The channel hung up (or the AGI socket closed) while a command was under way."""


class AgiCommandError(Exception):
    """Asterisk rejected a command (5xx) or did not answer in time."""


class AgiChannel:
    """One FastAGI connection: send a command, get panoramisk's parsed result, with a timeout.

    Not panoramisk's Request: it decodes strictly (Chinese caller names arrive truncated, so
    bytes are decoded with errors='replace' here), waits forever, and does not expect the
    asynchronous HANGUP line Asterisk writes on a FastAGI socket.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 headers: Mapping[str, str]) -> None:
        self.headers = headers
        self._reader = reader
        self._writer = writer

    async def command(self, cmd: str, timeout: float = DEFAULT_COMMAND_TIMEOUT_S
                      ) -> dict[str, Any]:
        if "\n" in cmd or "\r" in cmd:
            raise AgiCommandError(f"newline in AGI command {cmd!r}")
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(cmd.encode("utf-8") + b"\n")
                await self._writer.drain()
                while True:
                    line = await self._reader.readline()
                    if not line:
                        raise AgiHangup("AGI socket closed")
                    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                    if text == "HANGUP":
                        # Asterisk's asynchronous hangup notice on FastAGI: the reply follows
                        continue
                    result = parse_agi_result(text)
                    if result.get("status_code") == 100:
                        continue
                    if result.get("status_code") == 520:
                        # usage text follows until a line starting with "520 "
                        while True:
                            more = await self._reader.readline()
                            if not more or more.startswith(b"520 "):
                                break
                    break
        except TimeoutError:
            raise AgiCommandError(f"no answer to {cmd.split(' ')[0:2]} in {timeout:.0f}s") from None
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise AgiHangup(str(exc)) from None
        if result.get("error") == "AGIResultHangup" or result.get("status_code") == 511:
            raise AgiHangup(text)
        if result.get("status_code") in (510, 520):
            raise AgiCommandError(f"{cmd!r}: {text}")
        result["raw"] = text
        return result


Handler = Callable[[AgiChannel], Awaitable[None]]


PeerUidOf = Callable[[Endpoint, Endpoint], int | None]
# the query key of agi_network_script that carries the dialplan's secret: AGI(agi://h:p/ivr?key=)
SECRET_KEY = "key"


def script_and_key(network_script: str) -> tuple[str, str | None]:
    """'ivr?key=s3cret' -> ('ivr', 's3cret'): the route, and the secret the dialplan passed
    (None when there is none, or more than one)."""
    path, _, query = network_script.partition("?")
    keys = parse_qs(query, keep_blank_values=True).get(SECRET_KEY, [])
    return path.strip("/"), keys[0] if len(keys) == 1 else None


def parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("utf-8", errors="replace").splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            headers[k.strip()] = v.strip()
    return headers


class FastAgiServer:
    """Accepts FastAGI connections and routes them by agi_network_script.

    Unlike panoramisk's Application.handler, a bare connect-and-close cannot spin the loop: the
    header block is read with readuntil under a timeout and EOF closes the connection. The
    listen backlog is raised well past asyncio's 100 so a burst of calls does not stall.

    Only Asterisk drives the IVR (issue 10, defect 8). Every request must carry `secret` as
    `?key=` on its script (the dialplan renders it into each AGI() call), compared in constant
    time; and when `peer_uid` is given, the connecting socket must belong to that uid (Asterisk's
    user), as /proc/net/tcp says. A request that fails either is refused before any handler
    runs: no command is sent, a warning names the peer and the reason (never the secret), it is
    counted in `refused`, and the connection is closed.
    """

    def __init__(self, routes: Mapping[str, Handler], host: str, port: int,
                 backlog: int = 1024, *, secret: str, peer_uid: int | None = None,
                 peer_uid_of: PeerUidOf = proc_peer_uid) -> None:
        if not secret:
            raise ValueError("FastAGI needs a secret: the dialplan passes it on every AGI call")
        self.routes = dict(routes)
        self.host, self.port, self.backlog = host, port, backlog
        self._secret = secret.encode("utf-8")
        self.peer_uid = peer_uid
        self._peer_uid_of = peer_uid_of
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.active = 0
        self.refused: Counter[str] = Counter()

    def _refusal(self, key: str | None, peer: Any, local: Any) -> tuple[str, str] | None:
        """Why this request may not drive the IVR, as (counter key, detail); None: it may."""
        if key is None:
            return "no_secret", "no secret"
        if not hmac.compare_digest(key.encode("utf-8"), self._secret):
            return "wrong_secret", "wrong secret"
        if self.peer_uid is not None:
            try:
                uid = self._peer_uid_of((peer[0], peer[1]), (local[0], local[1]))
            except (TypeError, IndexError, ValueError, OSError):
                uid = None
            if uid is None:
                return "peer_unknown", "the peer's socket is not one of this host's"
            if uid != self.peer_uid:
                return "peer_uid", f"the peer runs as uid {uid}, not Asterisk's {self.peer_uid}"
        return None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  backlog=self.backlog, limit=MAX_HEADER_BYTES)
        log.info("FastAGI listening on %s:%d", self.host, self.port)

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self.active += 1
        try:
            try:
                async with asyncio.timeout(HEADER_TIMEOUT_S):
                    block = await reader.readuntil(b"\n\n")
            except asyncio.IncompleteReadError as exc:
                # a bare connect-and-close (a port probe, a health check) is harmless; a
                # truncated header block is not
                (log.warning if exc.partial else log.debug)(
                    "FastAGI connection from %s closed before a full header block (%d bytes)",
                    peer, len(exc.partial))
                return
            except (TimeoutError, asyncio.LimitOverrunError, ConnectionError) as exc:
                log.warning("FastAGI connection from %s gave no header block: %s", peer,
                            type(exc).__name__)
                return
            headers = parse_headers(block)
            script, key = script_and_key(headers.get("agi_network_script", ""))
            refusal = self._refusal(key, peer, writer.get_extra_info("sockname"))
            if refusal is not None:
                self.refused[refusal[0]] += 1
                log.warning("FastAGI request from %s refused: %s (script %r, %d refused so far)",
                            peer, refusal[1], script[:64], sum(self.refused.values()))
                return
            # the secret stays here: a handler sees the route, not the key
            headers["agi_network_script"] = script
            headers.pop("agi_request", None)
            handler = self.routes.get(script)
            if handler is None:
                log.error("FastAGI request for unknown script %r from %s", script, peer)
                return
            try:
                await handler(AgiChannel(reader, writer, headers))
            except AgiHangup:
                log.info("caller hung up (%s)", headers.get("agi_uniqueid"))
            except Exception:
                log.exception("FastAGI handler %r failed for %s", script,
                              headers.get("agi_uniqueid"))
        finally:
            self.active -= 1
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
