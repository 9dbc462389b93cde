"""A small SIP-over-TLS user agent for tests (stdlib ssl + socket): REGISTER with digest auth
(MD5, RFC 2617 / 3261 22.4, qop=auth), OPTIONS, and answering a request the PBX sends back over
the same connection. The server certificate is always verified (a CA file, hostname checked).

Debian's SIPp 3.6.1 is built without TLS, hence this.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path


class SipError(Exception):
    """No (well-formed) SIP answer in time, or the connection went away."""


@dataclass
class SipMessage:
    first_line: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_response(self) -> bool:
        return self.first_line.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        return int(self.first_line.split()[1]) if self.is_response else 0

    @property
    def method(self) -> str:
        return "" if self.is_response else self.first_line.split()[0]

    def all(self, name: str) -> list[str]:
        short = {"via": "v", "call-id": "i", "from": "f", "to": "t", "cseq": "", "contact": "m",
                 "content-length": "l"}.get(name.lower(), "")
        return [v for k, v in self.headers if k.lower() == name.lower()
                or (short and k.lower() == short)]

    def header(self, name: str) -> str:
        vals = self.all(name)
        return vals[0] if vals else ""


def parse_message(data: bytes) -> SipMessage:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded
            k, v = headers[-1]
            headers[-1] = (k, v + " " + line.strip())
        elif ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
    return SipMessage(lines[0], headers, body)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _params(challenge: str) -> dict[str, str]:
    return {k.lower(): v for k, v in re.findall(r'(\w+)\s*=\s*"?([^",]*)"?', challenge)}


def digest_authorization(challenge: str, *, method: str, uri: str, user: str, password: str,
                         nc: int = 1, cnonce: str | None = None) -> str:
    """The Authorization value answering a `Digest ...` challenge (MD5; qop=auth if offered)."""
    body = challenge.split(None, 1)[1] if challenge.lower().startswith("digest") else challenge
    p = _params(body)
    if p.get("algorithm", "MD5").upper() != "MD5":
        raise SipError(f"not an MD5 challenge: {challenge}")
    realm, nonce = p["realm"], p["nonce"]
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    parts = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
             "algorithm=MD5"]
    qops = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        cnonce = cnonce or secrets.token_hex(8)
        ncs = f"{nc:08x}"
        response = _md5(f"{ha1}:{nonce}:{ncs}:{cnonce}:auth:{ha2}")
        parts += ["qop=auth", f"nc={ncs}", f'cnonce="{cnonce}"']
    else:
        response = _md5(f"{ha1}:{nonce}:{ha2}")
    parts.append(f'response="{response}"')
    if "opaque" in p:
        parts.append(f'opaque="{p["opaque"]}"')
    return "Digest " + ", ".join(parts)


def client_context(cafile: Path) -> ssl.SSLContext:
    """Verifies the server against cafile (the self-signed certificate is its own CA) and its
    name; TLS 1.2 or later."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cafile))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class SipTlsClient:
    """One TLS connection to the PBX, as a phone holds it while registered."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext,
                 server_hostname: str | None = None, timeout: float = 10) -> None:
        self.host, self.port = host, port
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            self.sock = context.wrap_socket(raw, server_hostname=server_hostname or host)
        except BaseException:
            raw.close()
            raise
        self.local_host, self.local_port = self.sock.getsockname()[:2]
        self.call_id = f"{secrets.token_hex(12)}@{self.local_host}"
        self.tag = secrets.token_hex(6)
        self.cseq = 0
        self._buf = b""
        self.received: list[SipMessage] = []  # every message read, in order

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> SipTlsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------ wire

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def read_message(self, deadline: float) -> SipMessage:
        while True:
            self._buf = self._buf.lstrip(b"\r\n")  # CRLF keep-alives (RFC 5626)
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                head = parse_message(self._buf[:end + 4])
                length = int(head.header("content-length") or 0)
                total = end + 4 + length
                if len(self._buf) >= total:
                    msg = parse_message(self._buf[:total])
                    self._buf = self._buf[total:]
                    self.received.append(msg)
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise SipError("no SIP message in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise SipError("no SIP message in time") from None
            if not chunk:
                raise SipError("the PBX closed the connection")
            self._buf += chunk

    def _via(self, branch: str) -> str:
        return f"SIP/2.0/TLS {self.local_host}:{self.local_port};branch={branch};rport"

    def contact(self, user: str) -> str:
        return f"sip:{user}@{self.local_host}:{self.local_port};transport=tls"

    def request(self, method: str, uri: str, user: str, *, extra: list[str] | None = None,
                to_uri: str | None = None) -> str:
        """Send a request; returns its Via branch."""
        self.cseq += 1
        branch = "z9hG4bK" + secrets.token_hex(8)
        dom = f"{self.host}:{self.port}"
        lines = [f"{method} {uri} SIP/2.0", f"Via: {self._via(branch)}", "Max-Forwards: 70",
                 f"From: <sip:{user}@{dom}>;tag={self.tag}",
                 f"To: <{to_uri or f'sip:{user}@{dom}'}>", f"Call-ID: {self.call_id}",
                 f"CSeq: {self.cseq} {method}", "User-Agent: hotline-test-tls",
                 *(extra or []), "Content-Length: 0", "", ""]
        self.send("\r\n".join(lines))
        return branch

    def final_response(self, branch: str, timeout: float = 10) -> SipMessage:
        """The final response to the request with this branch (provisional ones and requests
        from the PBX are kept in `received`, and a request is answered 200)."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.read_message(deadline)
            if not msg.is_response:
                self.answer(msg)
                continue
            if f"branch={branch}" in msg.header("via") and msg.status >= 200:
                return msg

    def answer(self, req: SipMessage, status: str = "200 OK") -> None:
        lines = [f"SIP/2.0 {status}", *(f"Via: {v}" for v in req.all("via")),
                 f"From: {req.header('from')}", f"To: {req.header('to')};tag={self.tag}",
                 f"Call-ID: {req.header('call-id')}", f"CSeq: {req.header('cseq')}",
                 "Content-Length: 0", "", ""]
        self.send("\r\n".join(lines))

    def wait_request(self, method: str, timeout: float) -> SipMessage:
        """The next request of this method the PBX sends over this connection (answered 200)."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.read_message(deadline)
            if not msg.is_response:
                self.answer(msg)
                if msg.method == method:
                    return msg

    # ------------------------------------------------------------------------ SIP

    def authenticated(self, method: str, user: str, password: str,
                      extra: list[str] | None = None, timeout: float = 10) -> SipMessage:
        """Send a request to the PBX as `user`, answering one digest challenge; its final
        response (a second 401/403 when the password is wrong)."""
        uri = f"sip:{self.host}:{self.port};transport=tls"
        head = list(extra or [])
        res = self.final_response(self.request(method, uri, user, extra=head), timeout)
        if res.status not in (401, 407):
            return res
        challenges = res.all("www-authenticate" if res.status == 401 else "proxy-authenticate")
        md5 = [c for c in challenges
               if _params(c).get("algorithm", "MD5").upper() == "MD5"] or challenges
        auth = digest_authorization(md5[0], method=method, uri=uri, user=user,
                                    password=password)
        name = "Authorization" if res.status == 401 else "Proxy-Authorization"
        return self.final_response(
            self.request(method, uri, user, extra=[*head, f"{name}: {auth}"]), timeout)

    def register(self, user: str, password: str, expires: int = 120,
                 timeout: float = 10) -> SipMessage:
        """REGISTER this connection as user's contact (200 when the password is right)."""
        return self.authenticated("REGISTER", user, password, [
            f"Contact: <{self.contact(user)}>", f"Expires: {expires}"], timeout)

    def options(self, user: str, password: str, timeout: float = 10) -> SipMessage:
        """An OPTIONS ping as user (the PBX challenges a known endpoint's OPTIONS too)."""
        return self.authenticated("OPTIONS", user, password, ["Accept: application/sdp"],
                                  timeout)
