"""Serving the desktop from the CTI process: uvicorn on the CTI's own event loop.

The listening socket is bound at startup, before anything else runs, so a taken port fails the
CTI with a clear message (uvicorn itself would call sys.exit from inside the TaskGroup). The CTI
owns the process's signals; uvicorn's own signal capture is switched off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from agent_desktop.tls import TlsFiles
from config.settings import WebSettings

log = logging.getLogger(__name__)

SHUTDOWN_S = 3.0
WS_MAX_BYTES = 64 * 1024  # a desktop sends nothing big over /ws


class WebBindError(Exception):
    """The desktop's host:port cannot be listened on."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # SIGTERM/SIGINT cancel the CTI's main task, which cancels this server
        yield


def bind(web: WebSettings) -> socket.socket:
    """The listening socket for [web] host:port; WebBindError with the reason if it cannot."""
    try:
        family, kind, proto, _name, addr = socket.getaddrinfo(
            web.host, web.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise WebBindError(f"web: cannot listen on {web.host}:{web.port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise WebBindError(f"web: cannot listen on {web.host}:{web.port}: {exc}") from exc
    return sock


def config(app: Any, tls: TlsFiles | None = None) -> uvicorn.Config:
    """uvicorn's settings for the desktop; HTTPS when tls is given ([web] tls)."""
    return uvicorn.Config(app, lifespan="off", ws="wsproto", log_config=None,
                          access_log=False, server_header=False, proxy_headers=False,
                          timeout_graceful_shutdown=int(SHUTDOWN_S), ws_max_size=WS_MAX_BYTES,
                          ssl_certfile=str(tls.cert) if tls else None,
                          ssl_keyfile=str(tls.key) if tls else None)


async def serve(app: Any, sock: socket.socket, tls: TlsFiles | None = None) -> None:
    """Serve app on sock until cancelled; then close connections within SHUTDOWN_S."""
    server = _Server(config(app, tls))
    host, port = sock.getsockname()[:2]
    log.info("agent desktop on %s://%s:%s/", "https" if tls else "http", host, port)
    try:
        await server.serve(sockets=[sock])
    except asyncio.CancelledError:
        server.should_exit = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(SHUTDOWN_S):
                await server.shutdown(sockets=[sock])
        raise
    finally:
        sock.close()
