"""SIP over TLS for seats ([pbx] sip_tls_port) on a real Asterisk 22, with a real TLS client
(tests/support/sip_tls.py: stdlib ssl, the server certificate verified against the self-signed
one `hotline config render` made): a seat registers with its password and gets 200, a wrong
password does not, Asterisk holds the contact over TLS and reaches the phone through it, and
neither plain TCP nor UDP to the TLS port speaks SIP. An Asterisk of this module's own, with SIP,
TLS and AMI in the slot's port block."""

from __future__ import annotations

import json
import os
import secrets
import socket
import ssl
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from asterisk_conf.render import SIP_TLS_CIPHERS, sip_tls_files
from config.settings import Settings, load_settings
from hotline import stack
from hotline.cli import render_config
from prompts.index import PromptIndex
from tests.support.ami_users import Login, add_test_users, harness
from tests.support.ports import SLOT, port
from tests.support.settings import REPO, write_test_settings
from tests.support.sip_tls import SipTlsClient, client_context

pytestmark = pytest.mark.integration

SIP_PORT, TLS_PORT, AMI_PORT = port(15062), port(15063), port(15064)


@dataclass
class TlsLab:
    settings: Settings
    cafile: Path
    passwords: dict[str, str]
    ami: Login


@pytest.fixture(scope="module")
def tls_lab(prompt_index: PromptIndex, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[TlsLab]:
    state = tmp_path_factory.mktemp("hotline-tls")
    os.chmod(state, 0o755)
    path = write_test_settings(state / "hotline.toml", {
        "paths": {"state_dir": str(state)},
        "pbx": {"sip_port": SIP_PORT, "sip_tls_port": TLS_PORT,
                "rtp_start": 46000 + 100 * SLOT, "rtp_end": 46000 + 100 * SLOT + 40},
        "ami": {"port": AMI_PORT},
        "fastagi": {"port": port(14587, 10)},
        "prompts": {"catalog_dir": str(REPO / "prompts" / "catalog"),
                    "cache_dir": str(REPO / "prompts" / "cache")},
    })
    env = {**os.environ, "HOTLINE_SETTINGS": str(path),
           "HOTLINE_AMI_SECRET": secrets.token_urlsafe(16)}
    s = load_settings(path, env)
    render_config(s)  # makes the self-signed certificate beside the config
    add_test_users(s)
    stack.start_asterisk(s)
    try:
        passwords = json.loads((state / "secrets.json").read_text(encoding="utf-8"))
        yield TlsLab(s, sip_tls_files(s).cert, passwords, harness(s))
    finally:
        stack.stop_asterisk(s)


# ------------------------------------------------------------------------------ raw AMI


def ami_list(login: Login, action: dict[str, str], complete: str, none: str = "",
             timeout: float = 10) -> list[dict[str, str]]:
    """Log in, send one list action, return its events up to `complete` (plain socket); an
    Error whose message starts with `none` is an empty list (PJSIPShowContacts says 'No
    Contacts found' so)."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", AMI_PORT), timeout=timeout) as sock:
        buf = b""

        def block() -> dict[str, str]:
            nonlocal buf
            while b"\r\n\r\n" not in buf:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("AMI closed the connection")
                buf += chunk
            raw, buf = buf.split(b"\r\n\r\n", 1)
            return dict(line.split(": ", 1) for line in raw.decode().split("\r\n")
                        if ": " in line)

        def send(fields: dict[str, str]) -> None:
            sock.sendall("".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode() + b"\r\n")

        while b"\r\n" not in buf:  # the banner line
            buf += sock.recv(65536)
        buf = buf.split(b"\r\n", 1)[1]
        send({"Action": "Login", "Username": login.username, "Secret": login.secret,
              "Events": "off"})
        assert block().get("Response") == "Success"
        send({**action, "ActionID": "tls-1"})
        out: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            msg = block()
            if msg.get("ActionID") != "tls-1":
                continue
            if msg.get("Response") == "Error":
                if none and msg.get("Message", "").startswith(none):
                    return []
                raise AssertionError(f"{action['Action']}: {msg}")
            if msg.get("Event") == complete:
                return out
            if "Event" in msg:
                out.append(msg)
        raise AssertionError(f"no {complete} in {timeout}s")


def contacts(lab: TlsLab, seat: str) -> list[dict[str, str]]:
    return [c for c in ami_list(lab.ami, {"Action": "PJSIPShowContacts"},
                                "ContactListComplete", "No Contacts found")
            if c.get("Endpoint") == seat]


def wait_until(pred: object, timeout: float, what: str) -> None:
    stack.wait_until(pred, timeout, what)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ tests


def test_a_seat_registers_over_tls_and_is_reached_through_it(tls_lab: TlsLab) -> None:
    lab = tls_lab
    ctx = client_context(lab.cafile)
    with SipTlsClient("127.0.0.1", TLS_PORT, ctx) as phone:
        # the handshake verified the server against the self-signed certificate and its name
        # TLS 1.2, the one version transport-tls speaks (method = tlsv1_2)
        assert phone.sock.version() == "TLSv1.2"
        cipher, _proto, _bits = phone.sock.cipher() or ("", "", 0)
        assert cipher.startswith("TLS_") or cipher in SIP_TLS_CIPHERS, cipher
        res = phone.register("seat07", lab.passwords["seat07"])
        assert res.status == 200, res.first_line
        assert f":{phone.local_port};transport=tls" in res.header("contact")
        # Asterisk holds the contact the phone gave over TLS ...
        wait_until(lambda: contacts(lab, "seat07"), 10, "seat07's contact in PJSIPShowContacts")
        (contact,) = contacts(lab, "seat07")
        assert contact["Uri"] == phone.contact("seat07"), contact
        assert contact["ViaAddr"] == "127.0.0.1" and int(contact["ViaPort"]) == phone.local_port
        # ... and reaches the phone over the same TLS connection: a qualify OPTIONS arrives on it
        assert send_qualify(lab, "seat07")
        opt = phone.wait_request("OPTIONS", 10)
        assert opt.first_line.startswith(f"OPTIONS {phone.contact('seat07')}"), opt.first_line
        assert "SIP/2.0/TLS" in opt.header("via"), opt.header("via")
        # an OPTIONS ping of our own over the connection is answered too
        pong = phone.options("seat07", lab.passwords["seat07"])
        assert pong.status == 200, pong.first_line
        # unregister: the contact goes
        gone = phone.register("seat07", lab.passwords["seat07"], expires=0)
        assert gone.status == 200, gone.first_line
        wait_until(lambda: not contacts(lab, "seat07"), 10, "seat07's contact to go")


def send_qualify(lab: TlsLab, endpoint: str) -> bool:
    """AMI PJSIPQualify: Asterisk sends the endpoint's contacts an OPTIONS now."""
    with socket.create_connection(("127.0.0.1", AMI_PORT), timeout=10) as sock:
        f = sock.makefile("rwb")
        f.readline()  # banner

        def ask(fields: dict[str, str]) -> dict[str, str]:
            f.write("".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode() + b"\r\n")
            f.flush()
            out: dict[str, str] = {}
            while (line := f.readline().decode().rstrip("\r\n")):
                k, _, v = line.partition(": ")
                out[k] = v
            return out

        assert ask({"Action": "Login", "Username": lab.ami.username, "Secret": lab.ami.secret,
                    "Events": "off"}).get("Response") == "Success"
        return ask({"Action": "PJSIPQualify", "Endpoint": endpoint}).get("Response") == "Success"


def test_a_wrong_password_over_tls_is_refused(tls_lab: TlsLab) -> None:
    with SipTlsClient("127.0.0.1", TLS_PORT, client_context(tls_lab.cafile)) as phone:
        res = phone.register("seat08", "Wrong" + tls_lab.passwords["seat08"][5:])
        assert res.status in (401, 403), res.first_line
        port_ = phone.local_port
    assert not contacts(tls_lab, "seat08")
    # the failure is in the security log the fail2ban jail reads, with the TLS peer's address
    # (Debian's asterisk filter takes any transport: RemoteAddress="IPV4/<transport>/<ip>/...")
    log = tls_lab.settings.state_dir / "asterisk" / "log" / "security.log"
    seen = f'RemoteAddress="IPV4/TLS/127.0.0.1/{port_}"'

    def failed() -> bool:
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        return any(seen in line and "ChallengeResponseFailed" in line
                   for line in text.splitlines())
    wait_until(failed, 10, "the TLS failure in security.log")


def test_the_client_verifies_the_server_certificate(tls_lab: TlsLab, tmp_path: Path) -> None:
    # a client that trusts only another certificate refuses the PBX: verification is real
    from config.certs import make_self_signed

    make_self_signed(tmp_path / "other.pem", tmp_path / "other.key", "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError):
        SipTlsClient("127.0.0.1", TLS_PORT, client_context(tmp_path / "other.pem"))
    # and the PBX's certificate does not pass for another name
    with pytest.raises(ssl.SSLCertVerificationError):
        SipTlsClient("127.0.0.1", TLS_PORT, client_context(tls_lab.cafile),
                     server_hostname="pbx.example.net")


def test_old_protocols_and_weak_ciphers_are_refused(tls_lab: TlsLab) -> None:
    def handshake(ctx: ssl.SSLContext) -> str:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # only the server's choice is under test here
        with socket.create_connection(("127.0.0.1", TLS_PORT), timeout=10) as raw, \
                ctx.wrap_socket(raw) as tls:
            return tls.version() or ""

    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):  # the server's alert
        handshake(old)
    # CBC (the key is EC, so these are the suites it could otherwise take) and no forward secrecy
    for weak in ("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA",
                 "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384", "AES128-SHA:AES256-SHA",
                 "AES128-GCM-SHA256:AES256-GCM-SHA384"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(weak)
        with pytest.raises(ssl.SSLError, match="ALERT_HANDSHAKE_FAILURE"):
            handshake(ctx)
    for aead in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"):
        good = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        good.maximum_version = ssl.TLSVersion.TLSv1_2
        good.set_ciphers(aead)
        assert handshake(good) == "TLSv1.2"
    # TLS 1.3 only: refused too (Asterisk's method picks one version; desk phones speak 1.2)
    only13 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    only13.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):
        handshake(only13)


def test_plain_tcp_and_udp_to_the_tls_port_get_no_sip(tls_lab: TlsLab) -> None:
    options = (f"OPTIONS sip:127.0.0.1:{TLS_PORT} SIP/2.0\r\n"
               "Via: SIP/2.0/{t} 127.0.0.1:{p};branch=z9hG4bKplain{t};rport\r\n"
               "Max-Forwards: 70\r\nFrom: <sip:seat09@127.0.0.1>;tag=plain\r\n"
               f"To: <sip:127.0.0.1:{TLS_PORT}>\r\nCall-ID: plain-{{t}}@127.0.0.1\r\n"
               "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    # TCP: the TLS server takes the SIP text for a broken handshake and closes, saying no SIP
    with socket.create_connection(("127.0.0.1", TLS_PORT), timeout=10) as tcp:
        p = tcp.getsockname()[1]
        tcp.sendall(options.format(t="TCP", p=p).encode())
        got = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            tcp.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                chunk = tcp.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            got += chunk
        assert time.monotonic() < deadline, "the TLS port kept a plain TCP client open"
        assert b"SIP/2.0" not in got, got[:200]
    # UDP: nothing of the PBX listens on the TLS port's number
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.connect(("127.0.0.1", TLS_PORT))
        udp.send(options.format(t="UDP", p=udp.getsockname()[1]).encode())
        udp.settimeout(3)  # a deadline for an answer that must not come
        with pytest.raises((TimeoutError, ConnectionRefusedError)):
            udp.recv(65536)
    # and the same REGISTER over TLS still works afterwards
    with SipTlsClient("127.0.0.1", TLS_PORT, client_context(tls_lab.cafile)) as phone:
        assert phone.options("seat09", tls_lab.passwords["seat09"]).status == 200


def test_the_key_is_asterisks_to_read_and_nobody_elses(tls_lab: TlsLab) -> None:
    from asterisk_conf.render import ASTERISK_GID

    files = sip_tls_files(tls_lab.settings)
    key = files.key.stat()
    assert (key.st_uid, key.st_gid, key.st_mode & 0o777) == (0, ASTERISK_GID, 0o640)
    assert (files.key.parent.stat().st_mode & 0o777) == 0o750
    # Asterisk (hotline-asterisk in the chroot) loaded it: the transport is up
    out = stack.asterisk_cli(tls_lab.settings, "pjsip show transports")
    assert "transport-tls" in out and f"127.0.0.1:{TLS_PORT}" in out, out

