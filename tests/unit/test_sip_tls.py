"""SIP over TLS as a setting ([pbx] sip_tls_port): the settings, the rendered transport-tls
(parsed with pyst2 like every rendered file), the certificate beside the config (self-signed by
config/certs.py, the desktop's maker, or a real one copied) with Asterisk's group on the key, and
`hotline doctor`'s sip-tls check against planted configs."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from asterisk_conf.render import (
    ASTERISK_GID,
    SIP_TLS_CIPHERS,
    SIP_TLS_IN_CHROOT,
    SYSTEM_PROMPTS,
    RenderError,
    load_or_create_secrets,
    render,
    sip_tls_files,
    write_config,
    write_sip_tls,
)
from config.certs import make_self_signed
from config.settings import Settings, SettingsError, load_settings
from hotline import doctor
from hotline.doctor import FAIL, PASS, WARN
from tests.support.settings import write_test_settings
from tests.unit.test_asterisk_conf import Section, parse

SYS_PROMPTS = {key: {lang: f"/p/{lang}/sys.{key}" for lang in ("zh", "en")}
               for key in SYSTEM_PROMPTS}
AS_ROOT = os.geteuid() == 0


def settings_at(tmp_path: Path, **pbx: object) -> Settings:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_test_settings(tmp_path / "hotline.toml", {
        "paths": {"state_dir": str(tmp_path / "var"), "asterisk_root": str(tmp_path / "root")},
        "pbx": pbx})
    return load_settings(path, env={"HOTLINE_AMI_SECRET": "a-long-enough-ami-secret"})


def rendered(s: Settings) -> Path:
    secrets = load_or_create_secrets(s.state_dir / "secrets.json", s)
    write_config(render(s, secrets, SYS_PROMPTS, "/moh"), s.asterisk_etc, Path("/nonexistent"))
    write_sip_tls(s)
    return s.asterisk_etc


def transports(pjsip: list[Section]) -> dict[str, Section]:
    return {sec.name: sec for sec in pjsip if sec.values("type") == ["transport"]}


# ----------------------------------------------------------------------------------- settings


def test_tls_is_off_unless_a_port_is_set(tmp_path: Path) -> None:
    shipped = load_settings(env={"HOTLINE_AMI_SECRET": "x" * 20})
    assert shipped.pbx.sip_tls_port == 0
    s = settings_at(tmp_path, sip_tls_port=5061)
    assert (s.pbx.sip_tls_port, s.pbx.sip_tls_cert, s.pbx.sip_tls_key) == (5061, "", "")
    real = settings_at(tmp_path, sip_tls_port=5061, sip_tls_cert="tls/c.pem",
                       sip_tls_key="/k.pem")
    assert real.pbx.sip_tls_cert == str(tmp_path / "tls/c.pem")  # relative to the file
    assert real.pbx.sip_tls_key == "/k.pem"


@pytest.mark.parametrize(("pbx", "message"), [
    ({"sip_tls_port": 70000}, "is not a port"),
    ({"sip_tls_port": 5060, "sip_port": 5060}, "must differ from sip_port"),
    ({"sip_tls_port": 5061, "sip_tls_cert": "/c.pem"}, "go together"),
])
def test_bad_tls_settings_are_refused(tmp_path: Path, pbx: dict[str, object],
                                      message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_at(tmp_path, **pbx)


# ---------------------------------------------------------------------------------- rendering


def test_off_renders_no_tls_transport_and_no_certificate(tmp_path: Path) -> None:
    etc = rendered(settings_at(tmp_path))
    assert set(transports(parse(etc / "pjsip.conf"))) == {"transport-udp"}
    assert not (etc / "sip-tls").exists()


def test_on_renders_transport_tls_beside_udp(tmp_path: Path) -> None:
    s = settings_at(tmp_path, bind_ip="127.0.0.1", sip_tls_port=5061)
    pjsip = parse(rendered(s) / "pjsip.conf")
    tls = transports(pjsip)["transport-tls"]
    assert tls.get("protocol").strip() == "tls"
    assert tls.get("bind").strip() == "127.0.0.1:5061"
    assert tls.get("cert_file").strip() == f"{SIP_TLS_IN_CHROOT}/cert.pem"
    assert tls.get("priv_key_file").strip() == f"{SIP_TLS_IN_CHROOT}/key.pem"
    assert tls.get("method").strip() == "tlsv1_2"
    ciphers = tls.get("cipher").strip().split(",")
    assert ciphers == list(SIP_TLS_CIPHERS)
    # forward secret and AEAD only: no RSA key exchange, CBC, RC4, 3DES, MD5, NULL or export
    for c in ciphers:
        assert c.startswith("ECDHE-") and ("-GCM-" in c or "CHACHA20-POLY1305" in c), c
    assert tls.get("verify_client").strip() == "no"
    assert transports(pjsip)["transport-udp"].get("bind").strip() == "127.0.0.1:5060"
    # the chroot path is the rendered folder: Asterisk sees it at /etc/asterisk
    assert SIP_TLS_IN_CHROOT == "/etc/asterisk/sip-tls"
    # no seat or supervisor is pinned to a transport: the contact's transport decides (a phone
    # registered over TLS is called over that connection)
    for name in ("seat01", "seat50", "sup05"):
        endpoint = [sec for sec in pjsip if sec.name == name and sec.values("type") ==
                    ["endpoint"]]
        assert len(endpoint) == 1 and not endpoint[0].values("transport"), name
    assert [sec.name for sec in pjsip if sec.name == "carrier"]  # the trunk is still there


def test_the_self_signed_certificate_is_made_kept_and_private(tmp_path: Path) -> None:
    s = settings_at(tmp_path, bind_ip="10.1.2.3", sip_tls_port=5061)
    rendered(s)
    files = sip_tls_files(s)
    assert files.cert.parent == s.asterisk_etc / "sip-tls"
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} >= {"10.1.2.3",
                                                                           "127.0.0.1"}
    assert "hotline SIP" in cert.subject.rfc4514_string()
    for path, mode in ((files.key, 0o640), (files.cert, 0o640), (files.cert.parent, 0o750)):
        st = path.stat()
        assert st.st_mode & 0o777 == mode, path
        if AS_ROOT:
            assert (st.st_uid, st.st_gid) == (0, ASTERISK_GID), path
    first = files.cert.read_bytes(), files.key.read_bytes()
    write_sip_tls(s)  # kept at the next render ...
    assert (files.cert.read_bytes(), files.key.read_bytes()) == first
    moved = settings_at(tmp_path, bind_ip="10.9.9.9", sip_tls_port=5061)
    write_sip_tls(moved)  # ... made again for another address ...
    assert files.cert.read_bytes() != first[0]
    again = files.cert.read_bytes()
    write_sip_tls(moved, now=datetime.now(UTC) + timedelta(days=380))  # ... and near its end
    assert files.cert.read_bytes() != again


def test_a_real_certificate_is_copied_with_asterisks_group(tmp_path: Path) -> None:
    real = tmp_path / "real"
    make_self_signed(real / "fullchain.pem", real / "privkey.pem", "pbx.example.net",
                     common_name="pbx.example.net")
    s = settings_at(tmp_path, sip_tls_port=5061, sip_tls_cert=str(real / "fullchain.pem"),
                    sip_tls_key=str(real / "privkey.pem"))
    rendered(s)
    files = sip_tls_files(s)
    assert files.cert.read_bytes() == (real / "fullchain.pem").read_bytes()
    assert files.key.read_bytes() == (real / "privkey.pem").read_bytes()
    assert files.key.stat().st_mode & 0o777 == 0o640
    missing = settings_at(tmp_path, sip_tls_port=5061, sip_tls_cert=str(real / "nope.pem"),
                          sip_tls_key=str(real / "privkey.pem"))
    with pytest.raises(RenderError, match="cannot read"):
        write_sip_tls(missing)


# ------------------------------------------------------------------------------------- doctor


def test_doctor_passes_loopback_and_tls_and_fails_clear_sip_on_the_network(
        tmp_path: Path) -> None:
    loop = settings_at(tmp_path / "a")
    etc = rendered(loop)
    c = doctor.check_sip_tls(etc / "pjsip.conf", etc)
    assert c.status == PASS and "loopback only" in c.detail

    wide = settings_at(tmp_path / "b", bind_ip="10.1.2.3")
    etc = rendered(wide)
    c = doctor.check_sip_tls(etc / "pjsip.conf", etc)
    assert c.status == FAIL and "udp 10.1.2.3:5060" in c.detail
    assert "sip_tls_port" in c.fix

    tls = settings_at(tmp_path / "c", bind_ip="10.1.2.3", sip_tls_port=5061)
    etc = rendered(tls)
    c = doctor.check_sip_tls(etc / "pjsip.conf", etc)
    assert c.status == PASS and "TLS on 10.1.2.3:5061" in c.detail, c
    assert "firewall it to [pbx] carrier_ips" in c.detail  # UDP still takes seats in clear

    os.chmod(sip_tls_files(tls).key, 0o644)  # a key others may read
    c = doctor.check_sip_tls(etc / "pjsip.conf", etc)
    assert c.status == FAIL and "key.pem: mode 0644" in c.detail, c

    c = doctor.check_sip_tls(tmp_path / "none" / "pjsip.conf", tmp_path / "none")
    assert c.status == WARN and "not rendered" in c.detail


def test_doctor_runs_the_sip_tls_check(tmp_path: Path) -> None:
    s = settings_at(tmp_path)
    rendered(s)
    names = [c.name for c in doctor.run_checks(s)]
    assert "sip-tls" in names


# ---------------------------------------------------------------------------------- the ban


def test_a_banned_address_is_shut_out_of_the_tls_port_too() -> None:
    from asterisk_conf import fail2ban

    def action(sip_port: int, sip_tls_port: int = 0) -> str:
        jail = fail2ban.render(security_log=Path("/s/security.log"), run_dir=Path("/r"),
                               sip_port=sip_port, ignore=(),
                               sip_tls_port=sip_tls_port)["jail.local"]
        return next(line for line in jail.splitlines() if line.startswith("action = "))

    assert 'port="5060", protocol="udp,tcp"' in action(sip_port=5060)
    assert 'port="5060,5061", protocol="udp,tcp"' in action(sip_port=5060, sip_tls_port=5061)
