"""`hotline doctor` against real brokers and a real database: a throwaway Mosquitto that lets
anyone in FAILs, one with a password file PASSes; the hotline's own broker files
(asterisk_conf/mosquitto.py) PASS and each weakness planted on them FAILs; the command's JSON
and exit code on a planted weak deployment and on a hardened one (the hotline's broker)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from click.testing import CliRunner

from asterisk_conf.mosquitto import broker_folder, credentials_path, write_broker
from asterisk_conf.render import read_fastagi_secret, write_fastagi_secret
from config.settings import Settings, load_settings
from cti.db.agents import create_agent
from hotline import doctor, stack
from hotline.cli import main
from hotline.wiring import database_at
from tests.support.settings import REPO, write_test_settings

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mosquitto(workdir: Path, *, anonymous: bool) -> Iterator[int]:
    """A broker of the test's own on a free loopback port: open to anyone, or with a password
    file (user hotline-cti, password s3cret-pw) and no anonymous access."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # as root, Mosquitto drops to its own user, which cannot read pytest's 0700 tmp folders
    lines = ["user root"] if os.geteuid() == 0 else []
    lines += [f"listener {port} 127.0.0.1", "persistence false"]
    if anonymous:
        lines.append("allow_anonymous true")
    else:
        pw = workdir / "passwords"
        subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "hotline-cti", "s3cret-pw"],
                       check=True, capture_output=True)
        lines += ["allow_anonymous false", f"password_file {pw}"]
    conf = workdir / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), 10, "the test broker")
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


def test_a_broker_open_to_anonymous_clients_fails(tmp_path: Path) -> None:
    with mosquitto(tmp_path, anonymous=True) as port:
        c = doctor.check_mqtt_anonymous("127.0.0.1", port)
    assert c.status == doctor.FAIL, c
    assert "accepts anonymous clients" in c.detail
    assert c.fix.startswith("run the hotline's own broker config (issue 10, MQTT part)")


def test_a_broker_with_a_password_file_refusing_anonymous_passes(tmp_path: Path) -> None:
    async def login(port: int) -> None:  # the broker works: a client with its password gets in
        async with aiomqtt.Client("127.0.0.1", port, username="hotline-cti",
                                  password="s3cret-pw", timeout=5):
            pass

    with mosquitto(tmp_path, anonymous=False) as port:
        c = doctor.check_mqtt_anonymous("127.0.0.1", port)
        asyncio.run(login(port))
    assert c.status == doctor.PASS, c
    assert "code 5" in c.detail  # CONNACK 5: not authorised


def test_no_broker_is_a_warning() -> None:
    assert doctor.check_mqtt_anonymous("127.0.0.1", free_port()).status == doctor.WARN


# ------------------------------------------------------------- the hotline's broker files


def _plain_passwords(folder: Path) -> None:
    (folder / "passwords").write_text("A001:95598\nhotline-cti:s3cret-pw\n", encoding="utf-8")


def _anonymous_conf(folder: Path) -> None:
    conf = folder / "mosquitto.conf"
    conf.write_text(conf.read_text(encoding="utf-8").replace("allow_anonymous false",
                                                             "allow_anonymous true"),
                    encoding="utf-8")


def _chmod(name: str, mode: int) -> Any:
    def plant(folder: Path, state: Path) -> None:
        path = credentials_path(state) if name == "credentials" else folder / name
        path.chmod(mode)
    return plant


def _chown(name: str, uid: int, gid: int) -> Any:
    def plant(folder: Path, state: Path) -> None:
        os.chown(folder / name if name != "credentials" else credentials_path(state), uid, gid)
    return plant


# one planted weakness each: (what it is, how to plant it, what the detail names)
WEAK_BROKER = {
    "passwords-0644": (_chmod("passwords", 0o644), "passwords: mode 0644, others may read"),
    "acl-0644": (_chmod("acl", 0o644), "acl: mode 0644, others may read"),
    "conf-0644": (_chmod("mosquitto.conf", 0o644), "mosquitto.conf: mode 0644"),
    "acl-group-writable": (_chmod("acl", 0o660), "acl: mode 0660, its group may write"),
    "folder-0755": (_chmod(".", 0o755), ": mode 0755, others may read"),
    "credentials-0644": (_chmod("credentials", 0o644), "mqtt-clients.json: mode 0644"),
    "credentials-of-another-group": (_chown("credentials", 0, 0),
                                     "mqtt-clients.json: mode 0640 of gid 0"),
    "passwords-not-roots": (_chown("passwords", 597, 597), "passwords: owner uid 597"),
    "acl-missing": (lambda folder, state: (folder / "acl").unlink(), "acl: missing"),
    "passwords-missing": (lambda folder, state: (folder / "passwords").unlink(),
                          "passwords: missing"),
    "credentials-missing": (lambda folder, state: credentials_path(state).unlink(),
                            "mqtt-clients.json: missing"),
    "passwords-in-plaintext": (lambda folder, state: _plain_passwords(folder),
                               "plaintext passwords for A001, hotline-cti"),
    "anonymous-allowed": (lambda folder, state: _anonymous_conf(folder),
                          "no `allow_anonymous false`"),
}


@pytest.mark.parametrize("weak", sorted(WEAK_BROKER))
def test_the_hotline_broker_files_pass_and_each_planted_weakness_fails(
        tmp_path: Path, weak: str) -> None:
    assert os.geteuid() == 0, "make test runs as root, as hotline up does"
    state = tmp_path / "var"
    state.mkdir()
    settings = load_settings(write_test_settings(tmp_path / "hotline.toml", {
        "paths": {"state_dir": str(state)},
        "mqtt": {"host": "127.0.0.1", "port": free_port()}}), {})
    from asterisk_conf.mosquitto import Staff

    files = write_broker(settings.mqtt, state, [Staff("A001", "agent"), Staff("S01", "supervisor")])
    try:
        assert files.folder == broker_folder(state)
        c = doctor.check_mqtt_files(files.folder, credentials_path(state))
        assert c.status == doctor.PASS, c  # as `hotline up` renders them
        plant, named = WEAK_BROKER[weak]
        plant(files.folder, state)
        c = doctor.check_mqtt_files(files.folder, credentials_path(state))
        assert c.status == doctor.FAIL, c
        assert named in c.detail, c.detail
        assert c.fix.startswith("hotline down && hotline up as root renders the broker's files")
    finally:
        shutil.rmtree(files.folder, ignore_errors=True)


# ------------------------------------------------------------------------ the command itself


def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, mqtt_port: int, demo: bool,
               password: str, secrets_mode: int) -> None:
    """A state dir with secrets.json, hotline.env and a SQLite DB holding one agent, nothing
    running, settings in HOTLINE_SETTINGS."""
    state = tmp_path / "var"
    path = write_test_settings(tmp_path / "hotline.toml", {
        "hotline": {"demo": demo},
        "paths": {"state_dir": str(state), "asterisk_root": str(tmp_path / "no-root")},
        "ivr": {"flows_dir": str(REPO / "ivr" / "flows")},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        # ports nothing listens on, so a `make up` beside the tests is not judged here
        "ami": {"port": free_port()}, "fastagi": {"port": free_port()},
        "web": {"port": free_port()},
    })
    state.mkdir()
    secrets = state / "secrets.json"
    secrets.write_text(json.dumps({"seat01": "x" * 24}), encoding="utf-8")
    secrets.chmod(secrets_mode)
    url = f"sqlite:///{state / 'hotline.db'}"
    with database_at(url) as sessions, sessions.begin() as s:
        create_agent(s, agent_id="A001", name="张三", role="agent", password=password,
                     skills={"general": 3})
    for f in state.glob("hotline.db*"):
        f.chmod(0o600)
    # the state dir as a root `hotline up` leaves it before starting the CTI (defect 4)
    stack.secure_cti_files(load_settings(path, {"HOTLINE_AMI_SECRET": "x" * 24}),
                           stack.cti_user())
    secrets.chmod(secrets_mode)
    monkeypatch.setenv("HOTLINE_SETTINGS", str(path))
    monkeypatch.setenv("HOTLINE_AMI_SECRET", "a-long-enough-ami-secret-for-tests")
    for var in ("HOTLINE_DB_URL", "HOTLINE_STATE_DIR", "HOTLINE_AST_ROOT"):
        monkeypatch.delenv(var, raising=False)


def test_doctor_json_fails_a_planted_weak_deployment(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with mosquitto(tmp_path / "mqtt", anonymous=True) as port:
        deployment(tmp_path, monkeypatch, mqtt_port=port, demo=False, password="95598",
                   secrets_mode=0o644)
        # the CTI's pid file names a root process (this test's): the CTI runs as root
        (tmp_path / "var" / "run" / "cti.pid").write_text(str(os.getpid()))
        res = CliRunner().invoke(main, ["doctor", "--json"])
    assert res.exit_code == 1, res.output
    doc = json.loads(res.output)
    assert doc["ok"] is False
    by = {c["name"]: c for c in doc["checks"]}
    # (at least: checks other issue-10 work adds are judged by their own tests)
    assert {"ports", "mqtt-anonymous", "ami", "modules", "files", "secrets", "tls",
            "sip-ban", "users"} <= set(by)
    assert by["mqtt-anonymous"]["status"] == "FAIL"
    # a broker not rendered by the hotline: no password file or ACL of ours anywhere
    assert by["mqtt-files"]["status"] == "FAIL" and "missing" in by["mqtt-files"]["detail"]
    assert by["files"]["status"] == "FAIL" and "secrets.json: mode 0644" in by["files"]["detail"]
    assert by["secrets"]["status"] == "FAIL"
    assert "1 staff accounts take the demo password 95598 (A001)" in by["secrets"]["detail"]
    assert by["users"]["status"] == "FAIL", by["users"]
    assert "the CTI and its web desktop run as root" in by["users"]["detail"]
    assert all(c["fix"] for c in doc["checks"] if c["status"] != "PASS")


def test_doctor_exits_0_on_a_hardened_deployment(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker is the hotline's own, as `hotline up` starts it (stack.start_mosquitto)."""
    deployment(tmp_path, monkeypatch, mqtt_port=free_port(), demo=False,
               password="a real password", secrets_mode=0o600)
    settings = load_settings()  # the deployment's, from HOTLINE_SETTINGS
    assert settings.state_dir == tmp_path / "var"
    assert stack.start_mosquitto(settings) == "started by hotline"
    try:
        res = CliRunner().invoke(main, ["doctor"])
    finally:
        stack.stop_mosquitto(settings)
        shutil.rmtree(broker_folder(settings.state_dir), ignore_errors=True)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any(ln.startswith("PASS  mqtt-anonymous") for ln in lines), res.output
    assert any(ln.startswith("PASS  mqtt-files") for ln in lines), res.output
    assert any(ln.startswith("PASS  secrets") for ln in lines), res.output
    assert any(ln.startswith("PASS  files") for ln in lines), res.output
    # nothing runs here: those checks warn and say how to get an answer, but do not fail
    assert any(ln.startswith("WARN  ports") for ln in lines), res.output
    assert "fix: start the stack (hotline up) and run the doctor again" in res.output
    assert lines[-1] == "ok: nothing unsafe found"


# ------------------------------------------------------- the CTI's user and files (defect 4)


def cti_state(tmp_path: Path) -> Settings:
    """A state dir as a root `hotline up` leaves it for the CTI (stack.secure_cti_files with the
    `hotline` user, cti.log from stack.private_log), with a database and its WAL."""
    assert os.geteuid() == 0, "make test runs as root, as hotline up does (it hands files over)"
    path = write_test_settings(tmp_path / "hotline.toml", {
        "paths": {"state_dir": str(tmp_path / "var"), "asterisk_root": str(tmp_path / "no-root")}})
    s = load_settings(path, {"HOTLINE_AMI_SECRET": "a-long-enough-ami-secret-for-tests"})
    s.state_dir.mkdir()
    with database_at(s.db_url) as sessions, sessions.begin() as db:
        create_agent(db, agent_id="A001", name="张三", role="agent", password="a real password",
                     skills={"general": 3})
    (s.state_dir / "hotline.db-wal").write_bytes(b"")  # made by root under umask 022: 0644
    secrets = s.state_dir / "secrets.json"  # as render writes it: 0600 root
    secrets.write_text(json.dumps({"seat01": "x" * 24, "fastagi": "f" * 48}), encoding="utf-8")
    secrets.chmod(0o600)
    write_fastagi_secret(s.state_dir / "fastagi.secret", {"fastagi": "f" * 48})
    # a deployment from before: secrets.json was the CTI's group's to read
    os.chown(secrets, 0, stack.cti_user().gid)  # type: ignore[union-attr]
    secrets.chmod(0o640)
    s.ivr.flows_dir.mkdir(parents=True)  # as a checkout has it: root's 0755, a root file
    (s.ivr.flows_dir / "main.yaml").write_text("flow: main\n", encoding="utf-8")
    user = stack.cti_user()
    assert user is not None and user.name == "hotline"
    stack.secure_cti_files(s, user)
    stack.private_log(stack.paths(s).log / "cti.log", 0o640, gid=user.gid).close()
    return s


def test_the_files_hotline_up_hands_the_cti_pass(tmp_path: Path) -> None:
    s = cti_state(tmp_path)
    user = stack.cti_user()
    assert user is not None
    c = doctor.check_files(doctor.expected_files(s))
    assert c.status == doctor.PASS, c
    st = (s.state_dir / "hotline.db").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (user.uid, user.gid, 0o600)
    st = s.state_dir.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, user.gid, 0o1770)
    st = (s.state_dir / "fastagi.secret").stat()  # the one secret the CTI reads
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, user.gid, 0o640)
    st = (s.state_dir / "secrets.json").stat()  # every phone's SIP password: root's alone
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o600)
    # the admin console's publish renames a file into the flows folder: the CTI's group may
    # write it (not sticky), its owner and the files in it unchanged
    st = s.ivr.flows_dir.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, user.gid, 0o775)
    st = (s.ivr.flows_dir / "main.yaml").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o644)
    assert read_fastagi_secret(s.state_dir / "fastagi.secret") == "f" * 48


@pytest.mark.parametrize(("planted", "mode", "says"), [
    ("log/cti.log", 0o644, "cti.log: mode 0644: others may read it"),
    ("log/cti.log", 0o660, "cti.log: mode 0660: more than 0640"),
    ("hotline.db", 0o644, "hotline.db: mode 0644: others may read it"),
    ("hotline.db", 0o640, "hotline.db: mode 0640: its group may read it"),
    ("hotline.db-wal", 0o644, "hotline.db-wal: mode 0644: others may read it"),
    (".", 0o755, "var: mode 0755: others may read it"),
    ("log", 0o755, "log: mode 0755: others may read it"),
    ("log", 0o770, "log: mode 0770: more than 0750"),
    ("secrets.json", 0o644, "secrets.json: mode 0644: others may read it"),
    ("secrets.json", 0o640, "secrets.json: mode 0640: its group may read it"),
    ("fastagi.secret", 0o644, "fastagi.secret: mode 0644: others may read it"),
])
def test_each_weak_mode_of_the_ctis_files_fails(tmp_path: Path, planted: str, mode: int,
                                                 says: str) -> None:
    s = cti_state(tmp_path)
    (s.state_dir / planted).chmod(mode)
    c = doctor.check_files(doctor.expected_files(s))
    assert c.status == doctor.FAIL and says in c.detail, c
    assert "hotline up as root sets modes and owners" in c.fix


def test_a_cti_pid_of_a_root_process_fails_and_one_of_the_hotline_user_passes(
        tmp_path: Path) -> None:
    s = cti_state(tmp_path)
    pidfile = stack.paths(s).cti_pid
    pidfile.write_text(str(os.getpid()))  # this test runs as root
    c = doctor.check_users(doctor.process_uid(pidfile), None)
    assert c.status == doctor.FAIL and "the CTI and its web desktop run as root" in c.detail, c
    assert "starts the CTI as the `hotline` user" in c.fix
    user = stack.cti_user()
    assert user is not None
    # a stand-in process of the CTI's user, blocked reading its stdin until the test closes it
    proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            user=user.uid, group=user.gid, extra_groups=list(user.groups))
    try:
        pidfile.write_text(str(proc.pid))
        c = doctor.check_users(doctor.process_uid(pidfile), None)
        assert c.status == doctor.PASS and f"CTI uid {user.uid}" in c.detail, c
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)


def test_a_cti_web_port_below_1024_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = write_test_settings(tmp_path / "hotline.toml", {
        "paths": {"state_dir": str(tmp_path / "var")}, "web": {"port": 443}})
    s = load_settings(path, {"HOTLINE_AMI_SECRET": "a-long-enough-ami-secret-for-tests"})
    with pytest.raises(stack.StackError, match=r"\[web\] port = 443 is below 1024.*"
                                                r"CAP_NET_BIND_SERVICE.*above 1024"):
        stack.start_cti(s)
    assert not stack.paths(s).cti_pid.exists()
