"""The PBX side of issue 10 on a real Asterisk 22: hostile caller ids over real SIP (defect 1),
AMI least privilege and the shell modules (3), file modes, owners and Asterisk's own uid (4), and
the SIP brute-force ban by fail2ban, seen from a network namespace of the test's own (9).

AMI is read here with plain sockets, not the project's client: the point is what Asterisk sends,
byte for byte, to a user with the CTI's classes and event filters (the CTI's twin, see
tests/support/ami_users.py), and what it refuses to do for it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest
from sqlalchemy import select

from asterisk_conf import fail2ban
from asterisk_conf.render import (
    ASTERISK_GID,
    ASTERISK_UID,
    ASTERISK_USER,
    RECORDINGS_GID,
    ami_observer,
)
from bench.sipp import scenario
from config.settings import Settings, load_settings
from cti.db.models import Call
from cti.db.models_recordings import Recording
from hotline import stack
from hotline.cli import render_config
from prompts.index import PromptIndex
from tests.integration.conftest import Backend, CtiProcess, ItEnv
from tests.support.ami import AmiRecorder, Event, send_action
from tests.support.ami_users import Login, cti_twin
from tests.support.ports import SLOT, port
from tests.support.settings import REPO, write_test_settings

pytestmark = pytest.mark.integration

SHELL_MODULES = ("app_system.so", "func_shell.so", "app_externalivr.so", "pbx_lua.so")
NUM_OK = re.compile(rb"[0-9A-Za-z+*#]*")
NAME_OK = re.compile(rb"[0-9A-Za-z .\x80-\xff]*")


# ------------------------------------------------------------------------------ raw AMI


class RawAmi:
    """One AMI session over a plain socket. `ask` sends an action and returns its answer's
    headers (Events: off); `record` keeps every byte Asterisk sends, for the caller to split."""

    def __init__(self, ami_port: int, login: Login, events: str = "off") -> None:
        self.sock = socket.create_connection(("127.0.0.1", ami_port), timeout=10)
        self.pending = b""
        self.raw = bytearray()
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self._read_until(b"\r\n")  # the banner
        self.login = self.ask({"Action": "Login", "Username": login.username,
                               "Secret": login.secret, "Events": events})

    def _read_until(self, end: bytes) -> bytes:
        while end not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("AMI closed the connection")
            self.pending += chunk
        block, self.pending = self.pending.split(end, 1)
        return block

    def ask(self, action: dict[str, str]) -> dict[str, str]:
        """The answer's headers; a list action's events up to its Complete are read and
        dropped."""
        self.sock.sendall("".join(f"{k}: {v}\r\n" for k, v in action.items()).encode()
                          + b"\r\n")
        block = self._read_until(b"\r\n\r\n")
        if b"EventList: start" in block:
            while b"EventList: Complete" not in self._read_until(b"\r\n\r\n"):
                pass
        return dict(line.split(": ", 1) for line in block.decode(errors="replace").split("\r\n")
                    if ": " in line)

    def record(self) -> RawAmi:
        self.raw += self.pending
        self.sock.settimeout(0.2)

        def run() -> None:
            while not self._stop.is_set():
                try:
                    chunk = self.sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                self.raw += chunk

        self._reader = threading.Thread(target=run, name="raw-ami", daemon=True)
        self._reader.start()
        return self

    def blocks(self) -> list[bytes]:
        return [b for b in bytes(self.raw).split(b"\r\n\r\n") if b.strip()]

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join(2)
        self.sock.close()


def refused(answer: dict[str, str]) -> bool:
    return answer.get("Response") == "Error"


# ------------------------------------------------------------------ defect 1: hostile caller ids


@dataclass(frozen=True)
class Hostile:
    label: str
    user: str  # the From user as it goes on the wire (percent escapes decoded by the PBX)
    display: bytes  # the From display name's bytes

    @property
    def sanitised_number(self) -> str:
        """What the dialplan must make of it: the safe charset, 32 characters at most."""
        raw = unquote_to_bytes(self.user)
        return bytes(c for c in raw if NUM_OK.fullmatch(bytes([c]))).decode()[:32]


def hostile_callers() -> list[Hostile]:
    def p(i: int) -> str:
        return f"139950{SLOT}{i:04d}"

    crlf = "%0d%0a"
    forged = (f"{crlf}Event%3a%20UserEvent{crlf}UserEvent%3a%20Forged{crlf}{crlf}"
              f"Event%3a%20UserEvent{crlf}UserEvent%3a%20HotlineTransfer{crlf}Skill%3a%20vip")
    return [
        Hostile("crlf", p(1) + forged, b"crlf\\\" x"),
        # ',' adds a UserEvent header or a Dial argument; '|' shifts the AstDB note's fields
        Hostile("comma_pipe", p(2) + ",File%3a%20/etc/passwd%7Cx%7C9", b"a,b|c, File: x"),
        Hostile("dollar", p(3) + "$%7BSHELL(id)%7D$%7BDB(hotline/heartbeat)%7D",
                b"${SHELL(id)} ${EPOCH}"),
        # $[...] expressions: evaluated, 1+1 would be 2 and the number would lose its '+'
        Hostile("expr", p(7) + "$%5B1+1%5D$%5B$%7BEPOCH%7D%5D", b"$[1+1] $[${CALLERID(num)}]"),
        Hostile("quotes", p(4) + "%22%27%5C%22", b"\\\"quoted\\\" 'x' \\\\"),
        # a UTF-8 sequence cut short, in the number and in the name (a Chinese name, truncated)
        Hostile("utf8", p(5) + "%E4%B8", "张三".encode()[:-1] + b"x"),
        Hostile("long", p(6) + "9" * 2000, b"L" * 200),
    ]


# a call for an unserved number whose request-URI user forges events (it rides in Exten)
HOSTILE_EXTEN = "1%0d%0aEvent%3a%20UserEvent%0d%0aUserEvent%3a%20Forged%0d%0a%0d%0a"


def _sipp_callers(callers: list[Hostile], i: int, name: str, target: str, workdir: Path,
                  service: str = "95598") -> subprocess.Popen[bytes]:
    """One SIPp run placing every caller at once, one call per line of its injection file
    (fields go out as given: SIPp never reads them as its keywords, so `[`/`]` may be in them)."""
    scen = workdir / "hostile.xml"
    scen.write_text(scenario("hostile_caller"), encoding="latin-1")
    inf = workdir / f"hostile-{name}.csv"
    inf.write_bytes(b"SEQUENTIAL\n" + b"".join(
        b"%s;%s;%s;\n" % (h.user.encode(), h.display, service.encode()) for h in callers))
    # phone ports of their own in the slot's block (15010-15016): see tests/support/ports.py
    sip, media, ctrl = port(15010) + i, 44000 + 100 * SLOT + 10 * i, 43500 + 10 * SLOT + i
    n = str(len(callers))
    return subprocess.Popen(
        ["sipp", target, "-sf", str(scen), "-inf", str(inf), "-m", n, "-l", n, "-r", n,
         "-i", "127.0.0.1", "-p", str(sip), "-mp", str(media), "-cp", str(ctrl),
         "-timeout", "90s", "-timeout_error", "-nostdin", "-trace_err",
         "-error_file", str(workdir / f"hostile-{name}.errors.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=workdir)


def _cti_log(settings: Settings) -> Path:
    return stack.paths(settings).log / "cti.log"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_hostile_caller_ids_reach_the_queue_and_forge_nothing(
        cti: CtiProcess, ami: AmiRecorder, prompt_index: PromptIndex, backend: Backend,
        tmp_path: Path) -> None:
    s = cti.settings
    log = _cti_log(s)
    # the CTI's AMI session is up (its first login) before the calls
    stack.wait_until(lambda: b"AMI logged in" in log.read_bytes(), 30, "the CTI's AMI login")
    log_mark = log.stat().st_size
    twin = RawAmi(s.ami.port, cti_twin(s), events="on")
    assert twin.login.get("Response") == "Success", twin.login
    twin.record()
    mark = ami.mark()
    callers = hostile_callers()
    # Asterisk records each caller's IVR part (named by the call, with the caller in its
    # AstDB note): the files are checked below
    send_action(ami, {"Action": "Setvar", "Variable": "RECORD_IVR", "Value": "1"})
    target = f"{s.pbx.bind_ip}:{s.pbx.sip_port}"
    procs = [_sipp_callers(callers, 0, "callers", target, tmp_path)]
    unserved = Hostile("exten", f"139950{SLOT}0009", b"exten")
    exten_call = _sipp_callers([unserved], 1, "exten", target, tmp_path, HOSTILE_EXTEN)
    try:
        # the unserved number is answered with the no-service message and hung up
        ami.wait_for(lambda e: e.get("Event") == "Hangup"
                     and e.get("CallerIDNum") == unserved.sanitised_number, 60,
                     "the call for an unserved number to end", since=mark)
        queued: dict[str, Event] = {}
        for h in callers:
            # the IVR ran (FastAGI), the caller asked for an agent and waits in Asterisk
            def is_queued(e: Event, n: str = h.sanitised_number) -> bool:
                return (e.get("Event") == "UserEvent" and e.get("UserEvent") == "HotlineQueued"
                        and e.get("CallerIDNum") == n)
            try:
                queued[h.label] = ami.wait_for(
                    is_queued,
                    90, f"HotlineQueued for the {h.label} caller ({h.sanitised_number})",
                    since=mark)
            except AssertionError as exc:
                seen = [e.get("CallerIDNum") for e in ami.events()[mark:]
                        if e.get("UserEvent") == "HotlineQueued"]
                err = tmp_path / "hostile-callers.errors.log"
                sipp = err.read_text(errors="replace")[-1500:] if err.exists() else ""
                raise AssertionError(f"{exc}; queued: {seen}; SIPp: {sipp}") from None
        for ev in queued.values():
            send_action(ami, {"Action": "Hangup", "Channel": ev["Channel"]})
        for proc in procs:
            assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        for proc in [*procs, exten_call]:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        # the twin reads the hung-up calls' last events before it is closed (best effort
        # here: a failure above is what the test reports)
        ends = [ev["Channel"].encode() for ev in queued.values()]
        with contextlib.suppress(stack.StackError):
            stack.wait_until(lambda: all(any(b.startswith(b"Event: Hangup") and c in b
                                             for b in twin.blocks()) for c in ends),
                             10, "the twin to see every hung-up call end")
        twin.close()
        send_action(ami, {"Action": "Setvar", "Variable": "RECORD_IVR", "Value": "0"})

    channels = {ev["Channel"] for ev in queued.values()}
    for label, ev in queued.items():
        assert 0 < len(ev["CallerIDNum"]) <= 32, (label, ev["CallerIDNum"])
        name = ev.get("CallerIDName", "").encode("utf-8", "surrogateescape")
        assert len(ev.get("CallerIDName", "")) <= 64, (label, ev.get("CallerIDName"))
        assert NAME_OK.fullmatch(name.replace("\ufffd".encode(), b"")), (label, name)
    # the FastAGI IVR decided for each of them: none fell back for want of the IVR
    assert not [e for e in ami.events()[mark:] if e.get("UserEvent") == "HotlineFallback"
                and e.get("Channel") in channels]

    # what the CTI stored as each caller's number is the dialplan's filtered value, nothing
    # more (no $[...] or ${...} evaluated): the index of their IVR recordings (the number from
    # the recording's AstDB note), and their call rows (the IVR writes one per call)
    by_call = {ev["Linkedid"]: label for label, ev in queued.items()}
    want = {h.label: h.sanitised_number for h in callers}

    def stored_numbers() -> dict[str, str | None]:
        with backend.sessions() as db:
            return {by_call[c]: n for c, n in db.execute(
                select(Recording.call_id, Recording.caller_number)
                .where(Recording.call_id.in_(by_call)))}
    stack.wait_until(lambda: len(stored_numbers()) == len(callers), 30,
                     "the CTI to index the callers' IVR recordings")
    assert stored_numbers() == want

    def call_rows() -> dict[str, str]:
        with backend.sessions() as db:
            return {by_call[c]: n for c, n in db.execute(
                select(Call.call_id, Call.caller_number)
                .where(Call.call_id.in_(by_call)))}
    # the IVR writes each call's row as its FastAGI session starts
    stack.wait_until(lambda: len(call_rows()) == len(callers), 30,
                     "the IVR to write every caller's call row")
    assert call_rows() == want
    # what the CTI's AMI user received: no forged event, no malformed or duplicated header
    ours = [b for b in twin.blocks() if any(c.encode() in b for c in channels)]
    assert ours, "the CTI's twin saw none of the calls"
    for block in twin.blocks():
        assert b"Forged" not in block, block[:400]
        if b"UserEvent: HotlineTransfer" in block and any(c.encode() in block for c in channels):
            assert b"Skill: vip" not in block, block[:400]
        lines = block.split(b"\r\n")
        keys = [ln.split(b": ", 1)[0] for ln in lines if b": " in ln]
        assert all(b": " in ln or ln.startswith(b"Asterisk Call Manager") for ln in lines), block
        assert len(keys) == len(set(keys)), block[:400]
        assert b"\r" not in block.replace(b"\r\n", b"") and b"\n" not in block.replace(b"\r\n", b"")
    assert not [b for b in twin.blocks() if b.startswith(b"Event: Newchannel")]

    # and the CTI itself kept its AMI session: no loss, no new login, no traceback
    tail = log.read_bytes()[log_mark:].decode(errors="replace")
    assert "AMI connection to" not in tail and "AMI session with" not in tail, tail[-3000:]
    assert "AMI logged in" not in tail, tail[-3000:]
    assert "AttributeError" not in tail and "cti.ami.client" not in tail, tail[-3000:]
    # no traceback either, but for the ACD's own report of an action on a channel the test
    # had just hung up (an announcement racing the hangup: not the AMI link)
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d )", tail)
    assert not [r for r in records if "Traceback" in r and "ACD effect failed" not in r], tail

    # their IVR recordings: group hotline-rec and nothing for other users; a member of the
    # group (the CTI's user) reads them, the host's uid 101 (postgres) does not
    legs = {ev["Uniqueid"] for ev in queued.values()}
    recs = [f for f in s.recorder.storage_dir.rglob("*_ivr.wav")
            if f.name.split("_")[1] in legs]
    assert len(recs) == len(callers), recs
    for f in recs:
        st = f.stat()
        assert (st.st_uid, st.st_gid) == (ASTERISK_UID, RECORDINGS_GID), f
        assert stat.S_IMODE(st.st_mode) & 0o007 == 0 and st.st_mode & stat.S_IRGRP, f
    read = f"open('{{recs}}/{recs[0].relative_to(s.recorder.storage_dir)}', 'rb').read(44)"
    where = {"recs": s.recorder.storage_dir}
    member = _as_uid(65534, read, groups=[RECORDINGS_GID], dirs=where)
    assert member.returncode == 0, member.stderr
    other = _as_uid(101, read, dirs=where)
    assert "PermissionError" in other.stderr, other.stderr


# ------------------------------------------------------------------ defect 3: AMI privilege


@pytest.fixture
def cti_ami(asterisk: Settings) -> Iterator[RawAmi]:
    """A session with exactly the CTI user's classes (its twin: the CTI may hold its own)."""
    conn = RawAmi(asterisk.ami.port, cti_twin(asterisk))
    assert conn.login.get("Response") == "Success", conn.login
    yield conn
    conn.close()


def test_the_cti_user_cannot_run_commands_read_config_or_load_modules(
        cti_ami: RawAmi, asterisk: Settings) -> None:
    denied = {
        "Command": {"Action": "Command", "Command": "core show version"},
        "GetConfig": {"Action": "GetConfig", "Filename": "pjsip.conf"},
        "GetConfigJSON": {"Action": "GetConfigJSON", "Filename": "manager.conf"},
        "UpdateConfig": {"Action": "UpdateConfig", "SrcFilename": "manager.conf",
                         "DstFilename": "manager.conf", "Action-000000": "NewCat",
                         "Cat-000000": "x"},
        "ModuleLoad": {"Action": "ModuleLoad", "Module": "app_system.so", "LoadType": "load"},
        "DBPut": {"Action": "DBPut", "Family": "hotline", "Key": "x", "Val": "1"},
        "Originate System": {"Action": "Originate", "Channel": "Local/s@hotline-no-service",
                             "Application": "System", "Data": "id"},
        "Reload": {"Action": "Reload"},
    }
    for what, action in denied.items():
        answer = cti_ami.ask(action)
        assert refused(answer), (what, answer)
        assert "secret" not in str(answer) and "password" not in str(answer).lower(), what
    # what the CTI does send still works under these classes
    allowed = [
        {"Action": "Ping"},
        {"Action": "Setvar", "Variable": "HOTLINE_TEST_PROBE", "Value": "1"},
        {"Action": "Getvar", "Variable": "HOTLINE_TEST_PROBE"},
        {"Action": "QueueStatus", "Queue": "no-such-queue"},
        {"Action": "CoreShowChannels"},
        {"Action": "QueuePause", "Queue": "hotline-agents", "Interface": "PJSIP/seat01",
         "Paused": "false"},
    ]
    for action in allowed:
        answer = cti_ami.ask(action)
        assert answer.get("Response") == "Success", (action, answer)


def test_the_cti_user_has_one_session_and_tools_use_the_observer(asterisk: Settings) -> None:
    a = asterisk.ami
    first = RawAmi(a.port, Login(a.username, a.secret))
    try:
        second = RawAmi(a.port, Login(a.username, a.secret))
        second.close()
        # the CTI may hold the one session already (the session's CTI fixture): then the first
        # is refused as well; never are both accepted
        assert refused(second.login), (first.login, second.login)
    finally:
        first.close()
    obs = ami_observer(a)
    tools = [RawAmi(a.port, Login(obs.username, obs.secret)) for _ in range(2)]
    try:
        assert [t.login.get("Response") for t in tools] == ["Success", "Success"]
        for what in ({"Action": "GetConfig", "Filename": "pjsip.conf"},
                     {"Action": "Command", "Command": "core show version"},
                     {"Action": "Originate", "Channel": "Local/s@hotline-no-service",
                      "Application": "Playback", "Data": "beep"}):
            assert refused(tools[0].ask(what)), what
    finally:
        for t in tools:
            t.close()


def test_shell_modules_are_gone_from_the_root(asterisk: Settings) -> None:
    root = asterisk.asterisk_root
    moddirs = {p.parent for p in root.glob("usr/lib/*/asterisk/modules/app_dial.so")}
    assert len(moddirs) == 1
    [moddir] = moddirs
    assert [m for m in SHELL_MODULES if (moddir / m).exists()] == []
    excluded = (root / "etc/dpkg/dpkg.cfg.d/hotline-no-shell-modules").read_text()
    assert all(f"modules/{m}" in excluded for m in SHELL_MODULES)
    out = stack.asterisk_cli(asterisk, "module show like system")
    assert "app_system" not in out
    res = subprocess.run([str(stack.ASTERISK_SH), "cli", "module load app_system.so"],
                         env=stack._ast_env(asterisk), capture_output=True, text=True,
                         check=False)
    assert "app_system" not in stack.asterisk_cli(asterisk, "module show like system"), res


# ------------------------------------------------------------------ defect 4: modes and owners


def _as_uid(uid: int, code: str, groups: list[int] | None = None,
            dirs: dict[str, Path] | None = None) -> subprocess.CompletedProcess[str]:
    """Run Python code as another host user, in `groups` only (none by default). Each of `dirs`
    is opened here and reached there as {name} = /proc/self/fd/N: the test's own tmp folders
    (pytest's, 0700 root) must not be what keeps that user out, only the files' own modes."""
    fds = {name: os.open(d, os.O_RDONLY | os.O_DIRECTORY) for name, d in (dirs or {}).items()}

    def drop() -> None:
        os.setgroups(groups or [])
        os.setgid(uid)
        os.setuid(uid)
    try:
        code = code.format(**{name: f"/proc/self/fd/{fd}" for name, fd in fds.items()})
        return subprocess.run(["/usr/bin/python3", "-c", code],
                              preexec_fn=drop,  # noqa: PLW1509 - a test, no threads forked
                              pass_fds=tuple(fds.values()), capture_output=True, text=True,
                              check=False, timeout=20)
    finally:
        for fd in fds.values():
            os.close(fd)


def test_asterisk_runs_as_its_own_user_and_keeps_its_files_private(
        asterisk: Settings, it_env: ItEnv) -> None:
    etc = asterisk.asterisk_etc
    inst = stack.paths(asterisk).asterisk
    # the rendered config: root:hotline-asterisk 0640 in a 0750 folder
    assert stat.S_IMODE(etc.stat().st_mode) == 0o750
    for f in etc.iterdir():
        st = f.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, ASTERISK_GID), f
    # Asterisk's own uid and groups, the same number on the host as in the chroot
    pid = stack.pid_alive(stack.paths(asterisk).asterisk_pid)
    assert pid
    status = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    assert status["Uid"].split() == [str(ASTERISK_UID)] * 4
    assert status["Gid"].split() == [str(ASTERISK_GID)] * 4
    assert str(RECORDINGS_GID) in status["Groups"].split()
    import grp
    import pwd
    assert pwd.getpwuid(ASTERISK_UID).pw_name == ASTERISK_USER
    assert grp.getgrgid(RECORDINGS_GID).gr_name == "hotline-rec"
    chroot_passwd = (asterisk.asterisk_root / "etc/passwd").read_text()
    assert f"{ASTERISK_USER}:x:{ASTERISK_UID}:{ASTERISK_GID}:" in chroot_passwd
    # what Asterisk writes: astdb, logs, the control socket's folder, none for other users
    stack.asterisk_cli(asterisk, "database put hotline-test modes 1")
    for d in ("astdb", "log", "run", "spool"):
        st = (inst / d).stat()
        assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_uid == ASTERISK_UID, d
    checked = set()
    for f in [*(inst / "astdb").iterdir(), *(inst / "log").iterdir()]:
        try:
            mode = f.stat().st_mode
        except FileNotFoundError:  # SQLite's journal comes and goes with each AstDB write
            continue
        assert stat.S_IMODE(mode) & 0o007 == 0, f
        checked.add(f.name)
    assert {"astdb.sqlite3", "security.log"} <= checked, checked
    assert (inst / "log" / "security.log").exists()
    # Asterisk's console output, kept by the stack: root's alone
    assert stat.S_IMODE((stack.paths(asterisk).log / "asterisk.out").stat().st_mode) == 0o600
    recs = asterisk.recorder.storage_dir
    st = recs.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (
        0o2770, ASTERISK_UID, RECORDINGS_GID)
    # the host user that shares Debian's chroot uid 101 (postgres here) reaches none of it;
    # Asterisk's own user, as the control, reaches all of it the same way
    probe = (
        "import socket\n"
        "got = []\n"
        "for p in ('{etc}/pjsip.conf', '{etc}/manager.conf', '{inst}/log/security.log'):\n"
        "    try:\n        open(p).read(1); got.append(p.rsplit('/', 1)[1])\n"
        "    except PermissionError:\n        pass\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    s.connect('{inst}/run/asterisk.ctl'); got.append('asterisk.ctl')\n"
        "except PermissionError:\n    pass\n"
        "print(','.join(got))\n")
    where = {"etc": etc, "inst": inst}
    res = _as_uid(101, probe, dirs=where)
    assert (res.returncode, res.stdout.strip()) == (0, ""), res.stdout + res.stderr
    res = _as_uid(ASTERISK_UID, probe, groups=[ASTERISK_GID, RECORDINGS_GID], dirs=where)
    assert res.stdout.strip() == "pjsip.conf,manager.conf,security.log,asterisk.ctl", (
        res.stdout + res.stderr)
    assert it_env.state  # the suite's own instance


# ------------------------------------------------------------------ defect 9: the SIP ban


NS = f"hl{SLOT}atk"
HOST_IF, NS_IF = f"hl{SLOT}v0", f"hl{SLOT}v1"
HOST_IP, NS_IP = f"10.233.{SLOT}.1", f"10.233.{SLOT}.2"
BAN = fail2ban.BanPolicy(maxretry=5, findtime_s=60, bantime_s=6, table=f"hotline-f2b-t{SLOT}")


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=20)


@pytest.fixture(scope="module")
def attacker_ns() -> Iterator[str]:
    """A network namespace of the test's own, joined to the host by one veth pair on
    10.233.<slot>.0/30: the guesser's packets never leave this machine."""
    subprocess.run(["ip", "netns", "del", NS], capture_output=True, check=False)
    subprocess.run(["ip", "link", "del", HOST_IF], capture_output=True, check=False)
    _run("ip", "netns", "add", NS)
    try:
        _run("ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF)
        _run("ip", "link", "set", NS_IF, "netns", NS)
        _run("ip", "addr", "add", f"{HOST_IP}/30", "dev", HOST_IF)
        _run("ip", "link", "set", HOST_IF, "up")
        _run("ip", "netns", "exec", NS, "ip", "addr", "add", f"{NS_IP}/30", "dev", NS_IF)
        _run("ip", "netns", "exec", NS, "ip", "link", "set", NS_IF, "up")
        _run("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
        yield NS
    finally:
        subprocess.run(["ip", "link", "del", HOST_IF], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", NS], capture_output=True, check=False)


@dataclass
class BanLab:
    settings: Settings
    run_dir: Path
    seat_secret: str


@pytest.fixture(scope="module")
def ban_lab(attacker_ns: str, prompt_index: PromptIndex,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[BanLab]:
    """An Asterisk of this module's own, SIP on the veth's host address, and the hotline's
    fail2ban jail (asterisk_conf/fail2ban.py) on its security log, with a short ban."""
    state = tmp_path_factory.mktemp("hotline-ban")
    os.chmod(state, 0o755)
    path = write_test_settings(state / "hotline.toml", {
        "paths": {"state_dir": str(state)},
        # SIP and AMI in the slot's block, clear of the suite's phones; RTP apart from the
        # suite's Asterisk (no call is made here, but no range is shared either)
        "pbx": {"bind_ip": HOST_IP, "sip_port": port(15050),
                "rtp_start": 45000 + 100 * SLOT, "rtp_end": 45000 + 100 * SLOT + 40},
        "ami": {"port": port(15052)},
        "fastagi": {"port": port(14583, 10)},
        "prompts": {"catalog_dir": str(REPO / "prompts" / "catalog"),
                    "cache_dir": str(REPO / "prompts" / "cache")},
    })
    env = {**os.environ, "HOTLINE_SETTINGS": str(path),
           "HOTLINE_AMI_SECRET": secrets.token_urlsafe(16)}
    s = load_settings(path, env)
    render_config(s)
    stack.start_asterisk(s)
    try:
        # what `make up` starts, with a short ban
        stack.start_fail2ban(s, policy=BAN)
        run_dir = s.state_dir / "fail2ban" / "run"
        import json
        seat = json.loads((state / "secrets.json").read_text())["seat01"]
        yield BanLab(s, run_dir, seat)
    finally:
        stack.stop_fail2ban(s)
        stack.stop_asterisk(s)
        # fail2ban drops its table when it stops; make sure, should it have died
        subprocess.run(["nft", "delete", "table", "inet", BAN.table], capture_output=True,
                       check=False)
        subprocess.run(["nft", "delete", "table", "inet", BAN.table], capture_output=True,
                       check=False)


def _jail(run_dir: Path) -> str | None:
    res = subprocess.run(fail2ban.client_command(run_dir, "status", fail2ban.JAIL),
                         capture_output=True, text=True, check=False, timeout=10)
    return res.stdout if res.returncode == 0 else None


def _banned(run_dir: Path) -> bool:
    out = _jail(run_dir) or ""
    m = re.search(r"Banned IP list:\s*(.*)", out)
    return bool(m and NS_IP in m.group(1).split())


def _register(lab: BanLab, password: str, final: int, count: int, *, from_ns: bool,
              tmp: Path, timeout_ms: int = 3000) -> subprocess.CompletedProcess[str]:
    """`count` REGISTERs as seat01 with `password`, each expecting `final`; from the guesser's
    namespace or from the host's own loopback."""
    scen = tmp / f"register-{final}-{time.monotonic_ns()}.xml"
    scen.write_text(scenario("register_guess", user="seat01", password=password, final=final),
                    encoding="latin-1")
    local_ip = NS_IP if from_ns else "127.0.0.1"
    target = f"{HOST_IP}:{lab.settings.pbx.sip_port}"
    cmd = ["sipp", target, "-sf", str(scen), "-m", str(count), "-l", "1",
           "-i", local_ip, "-p", str(port(15054)), "-cp", str(43600 + SLOT),
           "-recv_timeout", str(timeout_ms), "-timeout", f"{count * timeout_ms // 1000 + 10}s",
           "-nostdin"]
    if from_ns:
        cmd = ["ip", "netns", "exec", NS, *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tmp,
                          timeout=count * timeout_ms / 1000 + 30)


def test_repeated_wrong_registers_ban_the_address_for_a_while(
        ban_lab: BanLab, tmp_path: Path) -> None:
    lab = ban_lab
    # before: the guesser is answered (a 401 for a wrong password)
    first = _register(lab, "wrong-0", 401, 1, from_ns=True, tmp=tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert not _banned(lab.run_dir)
    # a few more wrong guesses: the address is banned ...
    _register(lab, "wrong-1", 401, BAN.maxretry, from_ns=True, tmp=tmp_path)
    stack.wait_until(lambda: _banned(lab.run_dir), 15, f"fail2ban to ban {NS_IP}")
    assert stat.S_IMODE((stack.paths(lab.settings).log / "fail2ban.out").stat().st_mode) == 0o600
    banned_at = time.monotonic()
    # fail2ban's own record: "<ip> \t<start> + <bantime> = <end>" (wall clock, seconds)
    ban = subprocess.run(fail2ban.client_command(lab.run_dir, "get", fail2ban.JAIL, "banip",
                                                 "--with-time"),
                         capture_output=True, text=True, check=True).stdout
    m = re.search(rf"{re.escape(NS_IP)}\s+(\S+ \S+) \+ (\d+) = (\S+ \S+)", ban)
    assert m and int(m.group(2)) == BAN.bantime_s, ban
    ban_end = datetime.strptime(m.group(3), "%Y-%m-%d %H:%M:%S").astimezone().timestamp()
    nft = subprocess.run(["nft", "list", "table", "inet", BAN.table], capture_output=True,
                         text=True, check=True).stdout
    assert NS_IP in nft and str(lab.settings.pbx.sip_port) in nft, nft
    # ... even the right password gets no answer from there, while others are still served
    right = _register(lab, lab.seat_secret, 200, 1, from_ns=True, tmp=tmp_path,
                      timeout_ms=1500)
    assert right.returncode != 0, right.stdout[-2000:]
    assert time.time() < ban_end, "the check took longer than the ban"
    other = _register(lab, "wrong-2", 401, 1, from_ns=False, tmp=tmp_path)
    assert other.returncode == 0, other.stdout[-2000:] + other.stderr[-2000:]
    # the ban expires: the address is let in again and the right password registers
    stack.wait_until(lambda: not _banned(lab.run_dir), BAN.bantime_s + 15,
                     f"the ban of {NS_IP} to expire")
    assert time.time() >= ban_end - 1, "let in before the ban's end"  # fail2ban's clock is in s
    assert time.monotonic() - banned_at < BAN.bantime_s + 15
    after = _register(lab, lab.seat_secret, 200, 1, from_ns=True, tmp=tmp_path)
    assert after.returncode == 0, after.stdout[-2000:] + after.stderr[-2000:]


def test_the_jail_reads_the_security_log_of_this_asterisk(ban_lab: BanLab) -> None:
    log = stack.paths(ban_lab.settings).asterisk / "log" / "security.log"
    assert log.exists() and stat.S_IMODE(log.stat().st_mode) & 0o007 == 0
    assert log.read_text(errors="replace").count('SecurityEvent="ChallengeResponseFailed"') >= 1
    assert shutil.which("fail2ban-client") and shutil.which("nft")
