"""The desktop's HTTP guard, one ASGI layer in front of every route: a request-body cap (413
before the body is read), a same-origin check on state changes, and the security headers.

It sits outside FastAPI so that nothing (routing, dependencies, the login's JSON parsing) reads
a byte of an oversized body: uvicorn runs on the loop that also runs the ACD, AMI and FastAGI,
and an 80 MB body parsed there stalls all of them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# the UI is same-origin ES modules and fetch(); nothing inline, no framing, no third party.
# /api/docs (admins only) loads swagger-ui from a CDN, so it gets its own policy.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "img-src 'self' data: https://fastapi.tiangolo.com; frame-ancestors 'none'")


class _TooLarge(HTTPException):
    """Raised from receive() inside the app: its HTTPException handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers", [])}


def own_origin(scope: Scope) -> str | None:
    """scheme://host[:port] as this server was reached (the Host header the browser sent)."""
    host = _headers(scope).get(b"host")
    if not host:
        return None
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    return f"{scheme}://{host.decode('latin-1').lower()}"


def _default_port(origin: str) -> str:
    # http://h:80 is http://h; browsers omit the default port in Origin
    for scheme, port in (("http://", ":80"), ("https://", ":443")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin[: -len(port)]
    return origin


class SecurityMiddleware:
    """Wraps the desktop app; see the module docstring. `tls` adds HSTS."""

    def __init__(self, app: App, *, max_body: int, tls: bool = False) -> None:
        self.app = app
        self.max_body = max_body
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if scope.get("method", "GET").upper() in UNSAFE_METHODS:
            origin = headers.get(b"origin")
            mine = own_origin(scope)
            if origin is not None and (
                    mine is None or _default_port(origin.decode("latin-1").lower())
                    != _default_port(mine)):
                log.warning("refused %s %s from foreign origin %r", scope.get("method"),
                            scope.get("path"), origin[:100])
                await self._error(send, 403, "cross-origin request refused")
                return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await self._error(send, 400, "invalid Content-Length")
                return
            if declared > self.max_body:
                # refused before a byte of the body is read; uvicorn closes the connection
                await self._error(send, 413, f"request body over {self.max_body} bytes")
                return

        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:  # chunked: no length was declared
                    raise _TooLarge(self.max_body)
            return message

        async def secured_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []),
                                      *self._security_headers(scope)]
            await send(message)

        try:
            await self.app(scope, capped_receive, secured_send)
        except _TooLarge:
            if not started:
                await self._error(send, 413, f"request body over {self.max_body} bytes")

    def _security_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        docs = str(scope.get("path", "")).startswith("/api/docs")
        out = [
            (b"content-security-policy", (DOCS_CSP if docs else CSP).encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if self.tls:
            out.append((b"strict-transport-security", b"max-age=31536000"))
        return out

    async def _error(self, send: Send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close"),
                                *self._security_headers({"path": ""})]})
        await send({"type": "http.response.body", "body": body})
