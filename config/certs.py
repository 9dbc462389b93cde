"""Self-signed TLS certificates, kept and renewed: the one maker of the desktop's HTTPS certificate
(agent_desktop/tls.py, state_dir/web-tls) and of the PBX's SIP-over-TLS one (asterisk_conf/
render.py, the rendered config's sip-tls/). Here, in the lowest layer, so both can use it."""

from __future__ import annotations

import ipaddress
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

SELF_SIGNED_DAYS = 397          # what browsers accept for a server certificate
RENEW_BEFORE = timedelta(days=30)


def cert_names(host: str) -> list[str]:
    """The names a certificate for `host` carries: localhost, 127.0.0.1, ::1 and host itself
    (not a wildcard address)."""
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


def make_self_signed(cert: Path, key: Path, host: str, now: datetime | None = None,
                     common_name: str = "95598 hotline desktop") -> None:
    """A new EC P-256 key and a certificate for cert_names(host); the key file is 0600 (its
    folder, when made here, 0700)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = now or datetime.now(UTC)
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hotline (self-signed)")])
    san = _san(cert_names(host))
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
    log.info("made a self-signed certificate %s (%s) for %s", cert, common_name,
             ", ".join(cert_names(host)))


def still_good(cert: Path, host: str, now: datetime) -> bool:
    """The certificate at `cert` names everything cert_names(host) does and is not within
    RENEW_BEFORE of its end."""
    from cryptography import x509

    try:
        c = x509.load_pem_x509_certificate(cert.read_bytes())
        names = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    have = {str(v) for v in names.get_values_for_type(x509.DNSName)} | {
        str(v) for v in names.get_values_for_type(x509.IPAddress)}
    return c.not_valid_after_utc - RENEW_BEFORE > now and set(cert_names(host)) <= have


def ensure_self_signed(cert: Path, key: Path, host: str, now: datetime | None = None,
                       common_name: str = "95598 hotline desktop") -> bool:
    """Keep the certificate at cert/key, or make it again when missing, near its end or for
    another host. True when a new one was made."""
    now = now or datetime.now(UTC)
    if key.is_file() and still_good(cert, host, now):
        return False
    make_self_signed(cert, key, host, now, common_name)
    return True
