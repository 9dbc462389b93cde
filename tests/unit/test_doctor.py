"""`hotline doctor`'s checks (hotline/doctor.py) against planted files, configs and inputs: each
weak setting issue 10 names FAILs, and the hardened one beside it PASSes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from asterisk_conf.render import SYSTEM_PROMPTS, load_or_create_secrets, render
from config.settings import Settings, SettingsError, WebSettings, load_settings
from hotline import doctor
from hotline.doctor import FAIL, PASS, WARN
from tests.support.settings import write_test_settings

SYS_PROMPTS = {key: {lang: f"/p/{lang}/sys.{key}" for lang in ("zh", "en")}
               for key in SYSTEM_PROMPTS}
AMI_SECRET = "a-long-enough-ami-secret-for-tests"
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # argon2id, cheap for tests


def settings_at(tmp_path: Path, **overrides: dict[str, object]) -> Settings:
    path = write_test_settings(tmp_path / "hotline.toml", {
        "paths": {"state_dir": str(tmp_path / "var"), "asterisk_root": str(tmp_path / "root")},
        **overrides})
    return load_settings(path, env={"HOTLINE_AMI_SECRET": AMI_SECRET})


# ----------------------------------------------------------------------------------- settings


def test_demo_is_a_setting_off_unless_said(tmp_path: Path) -> None:
    assert settings_at(tmp_path, hotline={"demo": False}).demo is False
    assert settings_at(tmp_path, hotline={"demo": True}).demo is True
    with pytest.raises(SettingsError, match=r"\[hotline\] demo must be true or false"):
        settings_at(tmp_path, hotline={"demo": "yes"})


def test_the_shipped_settings_are_the_demo_that_make_up_seeds() -> None:
    assert load_settings(env={"HOTLINE_AMI_SECRET": AMI_SECRET}).demo is True


# -------------------------------------------------------------------------------------- ports


def test_web_on_every_interface_fails_and_loopback_passes(tmp_path: Path) -> None:
    s = settings_at(tmp_path)
    mqtt = s.mqtt.port  # the hotline's own broker (1884), never the host's 1883
    loopback = [("127.0.0.1", 5038), ("127.0.0.1", 4573), ("127.0.0.1", 8098),
                ("127.0.0.1", mqtt), ("0.0.0.0", 22)]  # someone else's port is not ours to judge
    assert doctor.check_ports(s, loopback).status == PASS
    wide = [*loopback[:2], ("0.0.0.0", 8098), ("::", mqtt)]
    c = doctor.check_ports(s, wide)
    assert c.status == FAIL
    assert "web on 0.0.0.0:8098" in c.detail and f"MQTT on :::{mqtt}" in c.detail
    assert doctor.check_ports(s, loopback[:2]).status == WARN  # web and MQTT not up


def test_listening_sockets_are_read_from_proc_net(tmp_path: Path) -> None:
    head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
    (tmp_path / "tcp").write_text(
        head
        + "   0: 0100007F:13BA 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0\n"
        + "   1: 00000000:1FA2 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0\n"
        + "   2: 0100007F:1FA2 0100007F:9C40 01 00000000:00000000 00:00000000 00000000 0\n")
    (tmp_path / "tcp6").write_text(
        head
        + "   0: 00000000000000000000000001000000:075B 00000000000000000000000000000000:0000 0A "
          "00000000:00000000 00:00000000 00000000 0\n")
    assert sorted(doctor.listening_tcp(tmp_path)) == [
        ("0.0.0.0", 8098), ("127.0.0.1", 5050), ("::1", 1883)]


# ------------------------------------------------------------------------------------ the AMI


def rendered_manager_conf(s: Settings, tmp_path: Path) -> Path:
    secrets = load_or_create_secrets(tmp_path / "secrets.json", s)
    path = tmp_path / "manager.conf"
    path.write_text(render(s, secrets, SYS_PROMPTS, "/moh")["manager.conf"], encoding="utf-8")
    return path


def test_the_rendered_manager_conf_passes(tmp_path: Path) -> None:
    s = settings_at(tmp_path)
    c = doctor.check_ami(rendered_manager_conf(s, tmp_path), s.ami.username)
    assert c.status == PASS, c


@pytest.mark.parametrize(("planted", "named"), [
    (("write = call,originate,agent,reporting", "write = call,originate,command"),
     "[hotline] write = command"),
    (("write = call,originate,agent,reporting", "write = system,config,call"),
     "[hotline] write = config,system"),
    (("bindaddr = 127.0.0.1", "bindaddr = 0.0.0.0"), "bindaddr = 0.0.0.0"),
    (("reporting\nallowmultiplelogin = no", "reporting\nallowmultiplelogin = yes"),
     "allowmultiplelogin = yes for hotline"),
])
def test_a_planted_ami_weakness_fails(tmp_path: Path, planted: tuple[str, str],
                                      named: str) -> None:
    s = settings_at(tmp_path)
    path = rendered_manager_conf(s, tmp_path)
    text = path.read_text(encoding="utf-8")
    assert planted[0] in text
    path.write_text(text.replace(planted[0], planted[1], 1), encoding="utf-8")
    c = doctor.check_ami(path, s.ami.username)
    assert c.status == FAIL and named in c.detail, c


def test_the_cti_user_with_its_own_allowmultiplelogin_fails(tmp_path: Path) -> None:
    path = tmp_path / "manager.conf"
    path.write_text("[general]\nbindaddr = 127.0.0.1\nallowmultiplelogin = no\n"
                    "[hotline]\nsecret = x\nwrite = call ; a comment\nallowmultiplelogin = yes\n",
                    encoding="utf-8")
    c = doctor.check_ami(path, "hotline")
    assert c.status == FAIL and "allowmultiplelogin = yes for hotline" in c.detail
    # Asterisk's default (and [general]'s yes) applies to a user that says nothing
    path.write_text("[general]\nbindaddr = ::1\n[hotline]\nsecret = x\nwrite = call\n",
                    encoding="utf-8")
    c = doctor.check_ami(path, "hotline")
    assert c.status == FAIL and "allowmultiplelogin on for hotline" in c.detail


def test_no_manager_conf_is_a_warning_and_an_unreadable_one_fails(tmp_path: Path) -> None:
    assert doctor.check_ami(tmp_path / "manager.conf", "hotline").status == WARN
    (tmp_path / "manager.conf").write_text("[general]\n#include users.conf\n", encoding="utf-8")
    c = doctor.check_ami(tmp_path / "manager.conf", "hotline")
    assert c.status == FAIL and "does not parse" in c.detail


# -------------------------------------------------------------------------------- the modules


def plant_modules(root: Path, names: Sequence[str]) -> Path:
    moddir = root / "usr/lib/x86_64-linux-gnu/asterisk/modules"
    moddir.mkdir(parents=True)
    for n in ("app_dial.so", "chan_pjsip.so", *names):
        (moddir / n).write_bytes(b"\x7fELF")
    return moddir


def test_app_system_in_the_root_fails(tmp_path: Path) -> None:
    moddir = plant_modules(tmp_path, ["app_system.so"])
    c = doctor.check_modules(tmp_path)
    assert c.status == FAIL and str(moddir / "app_system.so") in c.detail


def test_a_root_without_shell_modules_passes(tmp_path: Path) -> None:
    plant_modules(tmp_path, [])
    assert doctor.check_modules(tmp_path).status == PASS
    assert doctor.check_modules(tmp_path / "nowhere").status == WARN


# ----------------------------------------------------------------------------- modes, owners


def test_world_readable_secrets_json_fails(tmp_path: Path) -> None:
    s = settings_at(tmp_path)
    load_or_create_secrets(s.state_dir / "secrets.json", s)  # 0600, as make up writes it
    s.state_dir.chmod(0o750)  # as stack.secure_cti_files leaves a developer's state dir
    assert doctor.check_files(doctor.expected_files(s)).status == PASS
    (s.state_dir / "secrets.json").chmod(0o644)
    c = doctor.check_files(doctor.expected_files(s))
    assert c.status == FAIL and "secrets.json: mode 0644: others may read it" in c.detail


def test_group_readable_secrets_and_a_world_readable_db_wal_fail(tmp_path: Path) -> None:
    s = settings_at(tmp_path)
    s.state_dir.mkdir(parents=True)
    env = s.state_dir / "hotline.env"
    env.write_text("HOTLINE_AMI_SECRET=x\n")
    env.chmod(0o640)
    wal = s.state_dir / "hotline.db-wal"
    wal.write_bytes(b"")
    wal.chmod(0o644)
    c = doctor.check_files(doctor.expected_files(s))
    assert c.status == FAIL
    assert "hotline.env: mode 0640: its group may read it" in c.detail
    assert "hotline.db-wal: mode 0644" in c.detail


def test_rendered_config_of_the_wrong_group_fails(tmp_path: Path) -> None:
    # `make test` runs as root (the installer needs it); planting another owner does too
    assert os.geteuid() == 0, "this test plants a file of another owner: run it as root"
    s = settings_at(tmp_path)
    etc = s.asterisk_etc
    etc.mkdir(parents=True)
    (etc / "pjsip.conf").write_text("")
    (etc / "pjsip.conf").chmod(0o640)
    os.chown(etc / "pjsip.conf", 0, 0)
    c = doctor.check_files([doctor.Expect(etc / "pjsip.conf", uid=0, gid=595)])
    assert c.status == FAIL and "group gid 0, want 595" in c.detail
    os.chown(etc / "pjsip.conf", 0, 595)
    assert doctor.check_files([doctor.Expect(etc / "pjsip.conf", uid=0, gid=595)]).status == PASS


# ------------------------------------------------------------------------------------ secrets


def test_demo_password_on_a_deployment_not_marked_demo_fails() -> None:
    staff = [("A001", FAST.hash("95598")), ("A002", FAST.hash("a real one")),
             ("S01", FAST.hash("95598"))]
    calls: list[str] = []

    def verify(h: str, pw: str) -> bool:
        calls.append(h)
        return doctor.argon2_verify(h, pw)

    found = doctor.demo_password_accounts(staff + [("A003", staff[0][1])], verify)
    assert found == ["A001", "S01", "A003"]
    assert len(calls) == 3  # one verify per distinct hash
    c = doctor.check_secrets(demo=False, demo_accounts=found, ami_secret=AMI_SECRET,
                             sip_secrets={"seat01": "x" * 24})
    assert c.status == FAIL and "3 staff accounts take the demo password 95598" in c.detail
    c = doctor.check_secrets(demo=True, demo_accounts=found, ami_secret=AMI_SECRET,
                             sip_secrets={"seat01": "x" * 24})
    assert c.status == WARN and "on a demo deployment" in c.detail
    c = doctor.check_secrets(demo=False, demo_accounts=[], ami_secret=AMI_SECRET,
                             sip_secrets={"seat01": "x" * 24})
    assert c.status == PASS


def test_short_ami_and_sip_secrets_fail() -> None:
    c = doctor.check_secrets(demo=False, demo_accounts=[], ami_secret="hotline",
                             sip_secrets={"seat01": "1234", "seat02": "x" * 24})
    assert c.status == FAIL
    assert "AMI secret has 7 characters" in c.detail and "seat01" in c.detail
    assert "seat02" not in c.detail


# ---------------------------------------------------------------------------------------- TLS


def test_web_on_every_interface_without_tls_fails(tmp_path: Path) -> None:
    s = settings_at(tmp_path)
    assert doctor.check_tls(s).status == WARN  # loopback, plain HTTP
    wide = dataclasses.replace(s, web=WebSettings(host="0.0.0.0"))
    c = doctor.check_tls(wide)
    assert c.status == FAIL and "0.0.0.0:8098" in c.detail
    tls = dataclasses.replace(s, web=WebSettings(host="0.0.0.0", tls="self-signed"))
    assert doctor.check_tls(tls).status == PASS


# ------------------------------------------------------------------------------ the SIP ban


def test_the_ban_is_the_stacks_fail2ban_jail(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert doctor.check_ban(run_dir, asterisk_running=False).status == WARN
    c = doctor.check_ban(run_dir, asterisk_running=True)
    assert c.status == FAIL and "fail2ban.sock missing" in c.detail
    run_dir.mkdir()
    (run_dir / "fail2ban.sock").touch()
    asked: list[list[str]] = []

    def status(out: str, rc: int) -> doctor.Runner:
        def run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
            asked.append(list(cmd))
            return subprocess.CompletedProcess(list(cmd), rc, out, "")
        return run

    ok = ("Status for the jail: hotline-sip\n|- Filter\n`- Actions\n"
          "   |- Currently banned:\t1\n")
    c = doctor.check_ban(run_dir, asterisk_running=True, run=status(ok, 0))
    assert c.status == PASS and "1 banned" in c.detail
    assert asked[-1] == ["fail2ban-client", "-s", str(run_dir / "fail2ban.sock"), "status",
                         "hotline-sip"]
    assert doctor.check_ban(run_dir, True, run=status("Sorry but the jail 'hotline-sip' does "
                                                      "not exist", 255)).status == FAIL


# ------------------------------------------------------------------------------- the daemons


def test_a_cti_running_as_root_fails() -> None:
    assert doctor.check_users(cti_uid=0, asterisk_uid=595).status == FAIL
    assert doctor.check_users(cti_uid=1000, asterisk_uid=101).status == FAIL
    assert doctor.check_users(cti_uid=1000, asterisk_uid=595).status == PASS
    assert doctor.check_users(None, None).status == WARN


def test_process_uid_reads_proc(tmp_path: Path) -> None:
    (tmp_path / "me.pid").write_text(str(os.getpid()))
    assert doctor.process_uid(tmp_path / "me.pid") == os.getuid()
    assert doctor.process_uid(tmp_path / "none.pid") is None
