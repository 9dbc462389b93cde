"""The desktop's TLS certificate: a real one by path, or a self-signed one made (and kept) under
the state directory, from [web] tls / tls_cert / tls_key."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from config.certs import ensure_self_signed
from config.settings import WebSettings


class TlsError(Exception):
    """The configured certificate cannot be used (missing, unreadable)."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


def certificate(web: WebSettings, state_dir: Path, now: datetime | None = None
                ) -> TlsFiles | None:
    """The files uvicorn serves TLS with; None for plain HTTP. A self-signed certificate is
    kept in state_dir/web-tls and made again when missing, near its end or for another host."""
    if not web.tls:
        return None
    if web.tls == "files":
        files = TlsFiles(Path(web.tls_cert), Path(web.tls_key))
        for p in (files.cert, files.key):
            if not p.is_file() or not os.access(p, os.R_OK):
                raise TlsError(f"web: [web] tls_cert/tls_key: cannot read {p}")
        return files
    folder = state_dir / "web-tls"
    files = TlsFiles(folder / "cert.pem", folder / "key.pem")
    ensure_self_signed(files.cert, files.key, web.host, now)  # config/certs.py, shared with SIP
    return files
