"""The desktop's TLS certificate: a real one by path, or a self-signed one made (and kept) under
the state directory, from [web] tls / tls_cert / tls_key."""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from config.settings import WebSettings

log = logging.getLogger(__name__)

SELF_SIGNED_DAYS = 397          # what browsers accept for a server certificate
RENEW_BEFORE = timedelta(days=30)


class TlsError(Exception):
    """The configured certificate cannot be used (missing, unreadable)."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


def _names(host: str) -> list[str]:
    names = ["localhost", "127.0.0.1", "::1"]
    if host not in ("", "0.0.0.0", "::") and host not in names:
        names.append(host)
    return names


def _san(names: list[str]) -> object:
    from cryptography import x509

    alt: list[x509.GeneralName] = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(alt)


def make_self_signed(cert: Path, key: Path, host: str, now: datetime | None = None) -> None:
    """A new EC P-256 key and a certificate for localhost, 127.0.0.1, ::1 and host; the key
    file is 0600."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = now or datetime.now(UTC)
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "95598 hotline desktop"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hotline (self-signed)")])
    san = _san(_names(host))
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(private.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(san, critical=False)  # type: ignore[arg-type]
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(private, hashes.SHA256()))
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    log.info("web: made a self-signed certificate %s for %s", cert, ", ".join(_names(host)))


def _still_good(cert: Path, host: str, now: datetime) -> bool:
    from cryptography import x509

    try:
        c = x509.load_pem_x509_certificate(cert.read_bytes())
        names = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    have = {str(v) for v in names.get_values_for_type(x509.DNSName)} | {
        str(v) for v in names.get_values_for_type(x509.IPAddress)}
    return c.not_valid_after_utc - RENEW_BEFORE > now and set(_names(host)) <= have


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
    now = now or datetime.now(UTC)
    if not (files.key.is_file() and _still_good(files.cert, web.host, now)):
        make_self_signed(files.cert, files.key, web.host, now)
    return files
