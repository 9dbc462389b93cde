"""`hotline doctor`: checks a deployment against issue 10's list (ports, MQTT, AMI, modules, files,
secrets, TLS, the SIP ban); each check reads what it is given and returns a Check."""

from __future__ import annotations

import grp
import ipaddress
import os
import re
import secrets as pysecrets
import socket
import stat
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from asterisk.config import Config, ParseError

from asterisk_conf import fail2ban
from asterisk_conf.mosquitto import broker_folder, credentials_path
from asterisk_conf.render import ASTERISK_GID, ASTERISK_UID, RECORDINGS_GID
from config.settings import Settings
from config.topics import ALL_TOPICS

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
CTI_USER = "hotline"  # hotline.stack.CTI_USER (not imported: the doctor reads, the stack runs)
DEMO_PASSWORD = "95598"  # hotline.demo_seed.DEMO_PASSWORD (not imported: it pulls in the seed)
# AMI write classes that reach a shell, the CLI or the config with its secrets (manager.conf.j2)
DANGEROUS_AMI_WRITE = frozenset({"system", "command", "config", "all"})
# modules one `module load` away from a shell (scripts/install-asterisk-chroot.sh deletes them)
SHELL_MODULES = ("app_system.so", "func_shell.so", "app_externalivr.so", "pbx_lua.so")
MIN_AMI_SECRET = 16
MIN_SIP_SECRET = 12


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # PASS, WARN or FAIL
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def unsafe(checks: Iterable[Check]) -> bool:
    return any(c.status == FAIL for c in checks)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# ------------------------------------------------------------------------------- ports bound


def _hex_addr(text: str) -> str:
    """An address of /proc/net/tcp{,6}: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(text)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def listening_tcp(proc_net: Path = Path("/proc/net")) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket in this network namespace."""
    out = []
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc_net / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                addr, port = fields[1].split(":")
                out.append((_hex_addr(addr), int(port, 16)))
    return out


def check_ports(settings: Settings, listening: Sequence[tuple[str, int]]) -> Check:
    """AMI, FastAGI, the web desktop and MQTT listen on their configured address only; a wildcard
    (0.0.0.0, ::) or another interface than the configured one is open to the network."""
    wanted = {"AMI": (settings.ami.host, settings.ami.port),
              "FastAGI": (settings.fastagi.host, settings.fastagi.port),
              "web": (settings.web.host, settings.web.port),
              "MQTT": (settings.mqtt.host, settings.mqtt.port)}
    bad, seen, missing = [], [], []
    for what, (host, port) in wanted.items():
        addrs = sorted({a for a, p in listening if p == port})
        if not addrs:
            missing.append(f"{what} :{port}")
            continue
        seen.append(f"{what} {','.join(addrs)}:{port}")
        for a in addrs:
            if ipaddress.ip_address(a).is_unspecified:
                bad.append(f"{what} on {a}:{port} (every interface)")
            elif a != host and not (_is_loopback(a) and _is_loopback(host)):
                bad.append(f"{what} on {a}:{port} (configured {host})")
    if bad:
        return Check("ports", FAIL, "; ".join(bad),
                     "bind each to loopback or its configured host in hotline.toml "
                     "([ami]/[fastagi]/[web]/[mqtt] host) and restart it")
    detail = "; ".join(seen) or "nothing listening"
    if missing:
        return Check("ports", WARN, f"{detail}; not listening: {', '.join(missing)}",
                     "start the stack (hotline up) and run the doctor again")
    return Check("ports", PASS, detail)


# ----------------------------------------------------------------------------- anonymous MQTT


def mqtt_connack(host: str, port: int, timeout: float = 3.0) -> int:
    """The CONNACK return code an anonymous MQTT 3.1.1 CONNECT gets (0: accepted; 4, 5:
    refused). A raw packet rather than a client library: no loop, no retry, the exact code."""
    client_id = f"hotline-doctor-{pysecrets.token_hex(4)}".encode()
    var = b"\x00\x04MQTT\x04\x02\x00\x0a"  # protocol name, level 4, clean session, keepalive 10
    payload = len(client_id).to_bytes(2, "big") + client_id
    body = var + payload
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(bytes([0x10, len(body)]) + body)
        ack = b""
        while len(ack) < 4:
            chunk = s.recv(4 - len(ack))
            if not chunk:
                raise ConnectionError("the broker closed the connection without a CONNACK")
            ack += chunk
        if ack[0] != 0x20:
            raise ConnectionError(f"not a CONNACK: {ack!r}")
        if ack[3] == 0:
            s.sendall(b"\xe0\x00")  # DISCONNECT
        return ack[3]


def check_mqtt_anonymous(host: str, port: int, connack: Callable[[str, int], int] = mqtt_connack
                         ) -> Check:
    try:
        code = connack(host, port)
    except OSError as exc:
        return Check("mqtt-anonymous", WARN, f"no broker answered on {host}:{port} ({exc})",
                     "start the stack (hotline up) and run the doctor again")
    if code == 0:
        return Check("mqtt-anonymous", FAIL,
                     f"the broker on {host}:{port} accepts anonymous clients: anyone on the host "
                     f"reads screen-pops and agent states on {ALL_TOPICS} and may forge commands",
                     "run the hotline's own broker config (issue 10, MQTT part): "
                     "hotline down && hotline up starts it on [mqtt] port (1884) with "
                     "allow_anonymous false, a password file and an ACL")
    return Check("mqtt-anonymous", PASS,
                 f"the broker on {host}:{port} refuses an anonymous CONNECT (code {code})")


def check_mqtt_files(folder: Path, credentials: Path, *, as_root: bool | None = None) -> Check:
    """The hotline's broker files (asterisk_conf/mosquitto.py) are in place and private: its
    config (no anonymous access, naming this password file and ACL), the password file (hashed
    only), the ACL, and the clients' plaintext credentials (var/mqtt-clients.json). Others may
    read none of them; run as root they are root's (root:mosquitto 0640 in a 0750 folder, the
    credentials 0600 or root:hotline 0640)."""
    as_root = os.geteuid() == 0 if as_root is None else as_root
    conf, passwords, acl = folder / "mosquitto.conf", folder / "passwords", folder / "acl"
    bad: list[str] = []
    for path, reader in ((folder, None), (conf, None), (passwords, None), (acl, None),
                         (credentials, _gid(CTI_USER))):
        try:
            st = path.lstat()
        except FileNotFoundError:
            bad.append(f"{path}: missing")
            continue
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            bad.append(f"{path}: a symbolic link")
        elif mode & 0o007:
            bad.append(f"{path}: mode {mode:04o}, others may "
                       f"{'read' if mode & 0o004 else 'use'} it")
        elif mode & 0o020:
            bad.append(f"{path}: mode {mode:04o}, its group may write it")
        elif path == credentials and mode & 0o070 and (reader is None or st.st_gid != reader):
            bad.append(f"{path}: mode {mode:04o} of gid {st.st_gid}: the plaintext passwords, "
                       f"0600 or 0640 of group {CTI_USER} only")
        if as_root and st.st_uid != 0:
            bad.append(f"{path}: owner uid {st.st_uid}, want root")
    if not bad:
        text = conf.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in ("allow_anonymous false", f"password_file {passwords}", f"acl_file {acl}"):
            if line not in text:
                bad.append(f"{conf}: no `{line}`")
        unhashed = [ln.split(":", 1)[0] for ln in
                    passwords.read_text(encoding="utf-8", errors="replace").splitlines()
                    if ln.strip() and not ln.split(":", 1)[-1].startswith("$")]
        if unhashed:
            bad.append(f"{passwords}: plaintext passwords for {', '.join(unhashed[:5])}")
    if bad:
        return Check("mqtt-files", FAIL, "; ".join(bad),
                     "hotline down && hotline up as root renders the broker's files again "
                     "(asterisk_conf/mosquitto.py: root:mosquitto 0640 in a 0750 folder, "
                     "mqtt-clients.json 0600 or root:hotline 0640)")
    return Check("mqtt-files", PASS,
                 f"the broker's config, hashed password file and ACL in {folder} and the "
                 f"clients' credentials in {credentials}: none readable by others")


# ------------------------------------------------------------------------------- AMI classes


class _Conf(Config):  # type: ignore[misc]
    """pyst2's parser, reading UTF-8 and closing the file (its own load does neither)."""

    def load(self) -> None:
        self.raw_lines = Path(self.filename).read_text(encoding="utf-8").splitlines(True)


def read_asterisk_conf(path: Path) -> dict[str, list[tuple[str, str]]]:
    """{section: [(name, value)]} of an Asterisk .conf file, comments dropped."""
    out: dict[str, list[tuple[str, str]]] = {}
    for cat in _Conf(str(path)).categories:
        out.setdefault(cat.name, []).extend(
            (i.name, i.value.split(";", 1)[0].strip()) for i in cat.items)
    return out


def _last(items: Sequence[tuple[str, str]], name: str, default: str = "") -> str:
    vals = [v for k, v in items if k == name]
    return vals[-1] if vals else default


def _yes(value: str) -> bool:
    return value.strip().lower() in ("yes", "true", "y", "t", "1", "on")


def check_ami(manager_conf: Path, username: str) -> Check:
    """The rendered manager.conf: loopback only, one session per user unless it needs more, and
    no user with a write class that reaches a shell, the CLI or the config."""
    try:
        conf = read_asterisk_conf(manager_conf)
    except FileNotFoundError:
        return Check("ami", WARN, f"{manager_conf} is not rendered yet",
                     "hotline config render (done by hotline up)")
    except PermissionError:
        return Check("ami", WARN, f"cannot read {manager_conf}", "run the doctor as root")
    except ParseError as exc:
        return Check("ami", FAIL, f"{manager_conf} does not parse: {exc}",
                     "hotline config render (never edit the rendered file by hand)")
    general = conf.get("general", [])
    bad = []
    bind = _last(general, "bindaddr", "0.0.0.0")
    if not _is_loopback(bind):
        bad.append(f"bindaddr = {bind}")
    if _yes(_last(general, "allowmultiplelogin", "yes")) and username in conf \
            and not _last(conf[username], "allowmultiplelogin"):
        bad.append(f"allowmultiplelogin on for {username}")
    if username not in conf:
        bad.append(f"no [{username}] user (the CTI's)")
    for user, items in conf.items():
        if user == "general":
            continue
        write = {c.strip().lower() for v in (x for k, x in items if k == "write")
                 for c in v.split(",") if c.strip()}
        danger = sorted(write & DANGEROUS_AMI_WRITE)
        if danger:
            bad.append(f"[{user}] write = {','.join(danger)}")
        if user == username and _yes(_last(items, "allowmultiplelogin", "no")):
            bad.append(f"allowmultiplelogin = yes for {username}")
    if bad:
        return Check("ami", FAIL, f"{manager_conf.name}: {'; '.join(bad)}",
                     "render manager.conf from asterisk_conf/templates (hotline config render): "
                     "loopback, write = call,originate,agent,reporting, allowmultiplelogin = no")
    return Check("ami", PASS, f"{manager_conf.name}: loopback {bind}, no system/command/config "
                              f"write, one session for {username}")


# ------------------------------------------------------------------------------ modules in root


def modules_dirs(asterisk_root: Path) -> list[Path]:
    return sorted({p.parent for p in asterisk_root.glob("usr/lib/*/asterisk/modules/app_dial.so")}
                  | {p.parent for p in asterisk_root.glob("usr/lib/asterisk/modules/app_dial.so")})


def check_modules(asterisk_root: Path) -> Check:
    dirs = modules_dirs(asterisk_root)
    if not dirs:
        return Check("modules", WARN, f"no Asterisk modules dir under {asterisk_root}",
                     "make up (scripts/install-asterisk-chroot.sh)")
    present = [str(d / m) for d in dirs for m in SHELL_MODULES if (d / m).exists()]
    if present:
        return Check("modules", FAIL, "shell modules in the Asterisk root: " + ", ".join(present),
                     "delete them (scripts/install-asterisk-chroot.sh hardens the root: make up)")
    return Check("modules", PASS, f"none of {', '.join(SHELL_MODULES)} in {dirs[0]}")


# --------------------------------------------------------------------------- modes and owners


@dataclass(frozen=True)
class Expect:
    """A file or folder that must not be world-readable, and, where known, its owner."""

    path: Path
    uid: int | None = None
    gid: int | None = None
    private: bool = False  # no group bits either (0600 / 0700)
    most: int = 0o770  # the widest mode allowed (0640: the group reads, never writes)
    reader_gid: int | None = None  # with private: this group alone may also read it (0640)


def _gid(group: str) -> int | None:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def expected_files(settings: Settings) -> list[Expect]:
    """What the deployment writes (stack.py, asterisk_conf/render.py, scripts/asterisk.sh)."""
    st = settings.state_dir
    etc = settings.asterisk_etc
    # the CTI reads the FastAGI secret alone, root:hotline 0640; secrets.json (every phone's
    # SIP password) is root's alone (stack.secure_cti_files)
    out = [Expect(st / "secrets.json", private=True),
           Expect(st / "fastagi.secret", private=True, reader_gid=_gid(CTI_USER)),
           Expect(st / "hotline.env", private=True),
           Expect(etc, uid=0, gid=ASTERISK_GID),
           Expect(etc / "pjsip.conf", uid=0, gid=ASTERISK_GID),
           Expect(etc / "manager.conf", uid=0, gid=ASTERISK_GID),
           # stack.secure_cti_files: root:hotline 1770 (a developer's own 0750), log/ and
           # run/ 0750, cti.log 0640, the CTI's status and database 0600 (defect 4)
           Expect(st), Expect(st / "log", most=0o750), Expect(st / "run", most=0o750),
           Expect(st / "log" / "cti.log", most=0o640), Expect(st / "cti.status.json", private=True),
           # the standby CTI's log, its note and the leadership lock file ([cti] standby)
           Expect(st / "log" / "cti-standby.log", most=0o640),
           Expect(st / "cti.standby.json", private=True),
           Expect(st / "run" / "cti.lock", private=True),
           # the database-outage journal (callcenter/journal.py): the CTI's own, 0600
           Expect(st / "db-journal.jsonl", private=True),
           Expect(st / "log" / "asterisk.out", private=True),
           Expect(st / "log" / "fail2ban.out", private=True),
           Expect(st / "asterisk" / "log", uid=ASTERISK_UID),
           Expect(st / "asterisk" / "log" / "security.log", uid=ASTERISK_UID),
           Expect(st / "asterisk" / "run", uid=ASTERISK_UID),
           Expect(st / "asterisk" / "astdb", uid=ASTERISK_UID),
           Expect(st / "asterisk" / "astdb" / "astdb.sqlite3", uid=ASTERISK_UID),
           Expect(settings.recorder.storage_dir, uid=ASTERISK_UID, gid=RECORDINGS_GID),
           Expect(st / "web-tls" / "key.pem", private=True)]
    if settings.db_url.startswith("sqlite:///"):
        db = Path(settings.db_url.removeprefix("sqlite:///"))
        out += [Expect(db, private=True), Expect(db.with_name(db.name + "-wal"), private=True),
                Expect(db.with_name(db.name + "-shm"), private=True)]
    return out


def check_files(expected: Sequence[Expect]) -> Check:
    bad, checked = [], 0
    for e in expected:
        try:
            s = e.path.stat()
        except FileNotFoundError:
            continue
        checked += 1
        mode = stat.S_IMODE(s.st_mode)
        problems = []
        if mode & 0o007:
            problems.append(f"mode {mode:04o}: others may {'read' if mode & 0o004 else 'use'} it")
        elif e.private and mode & 0o070 and not (
                e.reader_gid is not None and s.st_gid == e.reader_gid and mode & 0o070 == 0o040):
            want = "0600" if e.reader_gid is None else f"0600, or 0640 of group {e.reader_gid}"
            problems.append(f"mode {mode:04o}: its group may read it (want {want})")
        elif mode & 0o777 & ~e.most:
            problems.append(f"mode {mode:04o}: more than {e.most:04o}")
        if e.uid is not None and s.st_uid != e.uid:
            problems.append(f"owner uid {s.st_uid}, want {e.uid}")
        if e.gid is not None and s.st_gid != e.gid:
            problems.append(f"group gid {s.st_gid}, want {e.gid}")
        if problems:
            bad.append(f"{e.path}: {', '.join(problems)}")
    if bad:
        return Check("files", FAIL, "; ".join(bad),
                     "chmod o-rwx each file above (0600 for secrets and hotline.db*, 0640 "
                     "cti.log); hotline down && hotline up as root sets modes and owners")
    return Check("files", PASS, f"{checked} files and folders: none world-readable, owners as "
                                "expected")


# ------------------------------------------------------------------------------ weak secrets


def demo_password_accounts(staff: Iterable[tuple[str, str]],
                           verify: Callable[[str, str], bool]) -> list[str]:
    """The staff ids whose password hash takes the demo password; one verify per distinct hash
    (the demo seed gives every account the same one, and argon2 is slow on purpose)."""
    verdict: dict[str, bool] = {}
    out = []
    for agent_id, password_hash in staff:
        if password_hash not in verdict:
            verdict[password_hash] = verify(password_hash, DEMO_PASSWORD)
        if verdict[password_hash]:
            out.append(agent_id)
    return out


def argon2_verify(password_hash: str, password: str) -> bool:
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(PasswordHasher().verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def check_secrets(*, demo: bool, demo_accounts: Sequence[str] | None, ami_secret: str,
                  sip_secrets: Mapping[str, str] | None) -> Check:
    """The demo password on a deployment not marked demo ([hotline] demo), a short AMI secret,
    short SIP passwords. demo_accounts None: the staff table could not be read."""
    bad: list[str] = []
    warn: list[str] = []
    if demo_accounts is None:
        warn.append("staff table not readable (no database yet?)")
    elif demo_accounts:
        shown = ", ".join(demo_accounts[:5]) + (" ..." if len(demo_accounts) > 5 else "")
        msg = (f"{len(demo_accounts)} staff accounts take the demo password {DEMO_PASSWORD} "
               f"({shown})")
        (warn if demo else bad).append(msg + (" on a demo deployment" if demo else ""))
    if not ami_secret:
        warn.append("no AMI secret yet (hotline up makes one in hotline.env)")
    elif len(ami_secret) < MIN_AMI_SECRET:
        bad.append(f"AMI secret has {len(ami_secret)} characters (want {MIN_AMI_SECRET}+)")
    if sip_secrets is not None:
        short = sorted(k for k, v in sip_secrets.items() if len(v) < MIN_SIP_SECRET)
        if short:
            bad.append(f"SIP passwords under {MIN_SIP_SECRET} characters: {', '.join(short[:5])}")
    if bad:
        return Check("secrets", FAIL, "; ".join(bad + warn),
                     "set each staff password (not 95598) or mark a demo with [hotline] demo = "
                     "true; a long HOTLINE_AMI_SECRET; delete short entries of secrets.json and "
                     "hotline config render")
    if warn:
        return Check("secrets", WARN, "; ".join(warn),
                     "before real use: [hotline] demo = false and a real password per account")
    return Check("secrets", PASS, "no account takes the demo password; AMI and SIP secrets long")


# ---------------------------------------------------------------------------------------- TLS


def check_tls(settings: Settings) -> Check:
    web = settings.web
    if web.tls:
        return Check("tls", PASS, f"the desktop is served over HTTPS ([web] tls = {web.tls!r})")
    where = f"{web.host}:{web.port}"
    if _is_loopback(web.host):
        return Check("tls", WARN, f"the desktop is plain HTTP on loopback {where}",
                     'set [web] tls = "self-signed" (or "files" with a real certificate)')
    return Check("tls", FAIL, f"the desktop is plain HTTP on {where}, reachable from the network: "
                              "passwords and session cookies cross it in clear",
                 '[web] tls = "files" with tls_cert/tls_key (or "self-signed"), or host = '
                 '"127.0.0.1"')


# -------------------------------------------------------------------------------- SIP over TLS


class _PjsipConf(_Conf):
    """pjsip.conf through pyst2: its template headers (`[seat01](seat-auth)`, `[x](!)`) are read
    as plain `[seat01]` (pyst2 wants a header to end in ']'); the transports use none."""

    def load(self) -> None:
        super().load()
        self.raw_lines = [re.sub(r"^(\s*\[[^\]]+\])\([^)]*\)", r"\1", line)
                          for line in self.raw_lines]


def _bind_host(bind: str) -> str:
    """The address of a pjsip transport's bind (`1.2.3.4:5060`, `[::1]:5060`, `0.0.0.0`)."""
    if bind.startswith("["):
        return bind[1:].split("]", 1)[0]
    return bind.rsplit(":", 1)[0] if bind.count(":") == 1 else bind


def check_sip_tls(pjsip_conf: Path, asterisk_etc: Path) -> Check:
    """The rendered pjsip.conf: may seats register in clear from the network (a udp/tcp
    transport off loopback with no TLS transport beside it)? With TLS on, its key must be
    readable by Asterisk's user and nobody else."""
    try:
        conf: dict[str, list[tuple[str, str]]] = {}
        for cat in _PjsipConf(str(pjsip_conf)).categories:
            conf.setdefault(cat.name, []).extend(
                (i.name, i.value.split(";", 1)[0].strip()) for i in cat.items)
    except FileNotFoundError:
        return Check("sip-tls", WARN, f"{pjsip_conf} is not rendered yet",
                     "hotline config render (done by hotline up)")
    except PermissionError:
        return Check("sip-tls", WARN, f"cannot read {pjsip_conf}", "run the doctor as root")
    except ParseError as exc:
        return Check("sip-tls", FAIL, f"{pjsip_conf} does not parse: {exc}",
                     "hotline config render (never edit the rendered file by hand)")
    transports = [(name, _last(items, "protocol", "udp").lower(), _last(items, "bind"), items)
                  for name, items in conf.items() if _last(items, "type") == "transport"]
    clear = [f"{proto} {bind}" for _n, proto, bind, _i in transports
             if proto in ("udp", "tcp") and not _is_loopback(_bind_host(bind))]
    tls = [(bind, items) for _n, proto, bind, items in transports if proto == "tls"]
    if not tls:
        if clear:
            return Check("sip-tls", FAIL,
                         f"seats register in clear on {', '.join(clear)}, reachable from the "
                         "network, and there is no TLS transport: SIP digests and calls cross "
                         "it readable", "set [pbx] sip_tls_port = 5061 (and sip_tls_cert/"
                         "sip_tls_key for a real certificate), then point the phones at it")
        return Check("sip-tls", PASS, "SIP listens on loopback only (no TLS transport; set [pbx] "
                                      "sip_tls_port before binding a real address)")
    bad = []
    for _bind, items in tls:
        key = _last(items, "priv_key_file")
        host_key = asterisk_etc / Path(key).relative_to("/etc/asterisk") \
            if key.startswith("/etc/asterisk/") else None
        if host_key is None:
            bad.append(f"priv_key_file {key!r} is not in the rendered config")
            continue
        try:
            s = host_key.stat()
        except OSError as exc:
            bad.append(f"{host_key}: {exc.strerror}")
            continue
        mode = stat.S_IMODE(s.st_mode)
        ok = (mode & 0o007 == 0 and s.st_uid == 0 and s.st_gid == ASTERISK_GID) or \
            (mode & 0o077 == 0 and s.st_uid == ASTERISK_UID)
        if not ok:
            bad.append(f"{host_key}: mode {mode:04o} uid {s.st_uid} gid {s.st_gid} (want 0640 "
                       f"root:{ASTERISK_GID} or 0600 uid {ASTERISK_UID})")
    if bad:
        return Check("sip-tls", FAIL, "; ".join(bad),
                     "hotline config render (it writes the key 0640 root:hotline-asterisk)")
    also = (f"; {', '.join(clear)} still takes seats' REGISTERs in clear (Asterisk cannot refuse "
            "them per transport): firewall it to [pbx] carrier_ips") if clear else ""
    return Check("sip-tls", PASS, f"seats may register over TLS on {', '.join(b for b, _ in tls)}"
                                  f"{also}")


# ------------------------------------------------------------------------------------- the ban


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False, timeout=20)


def check_ban(run_dir: Path, asterisk_running: bool, run: Runner = _run) -> Check:
    """The stack's own fail2ban server (stack.start_fail2ban) answers with the SIP jail."""
    sock = run_dir / "fail2ban.sock"
    if not sock.exists() and not asterisk_running:
        return Check("sip-ban", WARN, "neither Asterisk nor the hotline's fail2ban is running",
                     "start the stack (hotline up) and run the doctor again")
    if not sock.exists():
        return Check("sip-ban", FAIL, f"no fail2ban server of the hotline ({sock} missing)",
                     "hotline up starts it (fail2ban + nftables from make up)")
    try:
        res = run(fail2ban.client_command(run_dir, "status", fail2ban.JAIL))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("sip-ban", FAIL, f"fail2ban-client failed: {exc}",
                     "make up installs fail2ban; hotline down && hotline up restarts it")
    if res.returncode != 0:
        return Check("sip-ban", FAIL, f"jail {fail2ban.JAIL} not running: "
                                      f"{(res.stderr or res.stdout).strip()[:200]}",
                     "hotline down && hotline up restarts the hotline's fail2ban")
    banned = next((ln.split(":", 1)[1].strip() for ln in res.stdout.splitlines()
                   if "Currently banned" in ln), "?")
    return Check("sip-ban", PASS, f"fail2ban jail {fail2ban.JAIL} running ({banned} banned now)")


# ------------------------------------------------------------------------- daemons' users


def process_uid(pidfile: Path) -> int | None:
    """The uid of the live process in pidfile, or None: the lowest of its real, effective, saved
    and filesystem uids, so 0 when any of them is root's."""
    from hotline.stack import pid_alive

    pid = pid_alive(pidfile)
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return min(int(u) for u in line.split()[1:5])
    except (OSError, ValueError):
        return None
    return None


def check_users(cti_uid: int | None, asterisk_uid: int | None) -> Check:
    """Asterisk runs as hotline-asterisk; the CTI (and its web app) not as root (defect 4)."""
    bad, seen = [], []
    if asterisk_uid is not None:
        seen.append(f"Asterisk uid {asterisk_uid}")
        if asterisk_uid != ASTERISK_UID:
            bad.append(f"Asterisk runs as uid {asterisk_uid}, not hotline-asterisk "
                       f"({ASTERISK_UID})")
    if cti_uid is not None:
        seen.append(f"CTI uid {cti_uid}")
        if cti_uid == 0:
            bad.append("the CTI and its web desktop run as root")
    if bad:
        return Check("users", FAIL, f"{'; '.join(bad)} ({', '.join(seen)})",
                     "hotline down && make up as root: it starts the CTI as the `hotline` user "
                     "and Asterisk as hotline-asterisk (scripts/install.sh makes both)")
    if not seen:
        return Check("users", WARN, "neither Asterisk nor the CTI is running",
                     "start the stack (hotline up) and run the doctor again")
    return Check("users", PASS, "; ".join(seen))


# ---------------------------------------------------------------------------- all together


def staff_hashes(settings: Settings) -> list[tuple[str, str]] | None:
    """(agent_id, password_hash) of every active staff account, or None when unreadable. The
    database is opened as it is (never migrated by the doctor)."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from cti.db.models import Agent
    from hotline.wiring import database_at

    if settings.db_url.startswith("sqlite:///") \
            and not Path(settings.db_url.removeprefix("sqlite:///")).exists():
        return None
    # SQLite makes the -wal and -shm files when it opens a WAL database that has none (the CTI
    # stopped): the doctor must not leave a file others can read, as it would under umask 022
    umask = os.umask(0o077)
    try:
        with database_at(settings.db_url, migrate=False) as sessions, sessions() as s:
            rows = s.execute(select(Agent.agent_id, Agent.password_hash)
                             .where(Agent.active.is_(True))).all()
    except SQLAlchemyError:
        return None
    finally:
        os.umask(umask)
    return [(str(a), str(h)) for a, h in rows]


def _sip_secrets(path: Path) -> dict[str, str] | None:
    import json

    try:
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else None


# --------------------------------------------------------------------- FastAGI needs the secret


FASTAGI_PROBE_TIMEOUT_S = 3.0


def fastagi_probe(host: str, port: int, timeout: float = FASTAGI_PROBE_TIMEOUT_S) -> bytes:
    """Pose as Asterisk without the dialplan's secret: send a call's AGI header block for the
    IVR and return what the server sends before it closes ('' = refused; a line = an AGI
    command, so the IVR ran). Closes at the first byte: a server that does run the IVR stores a
    call record for the probe's id (hotline-doctor-probe), and nothing more."""
    probe_id = f"hotline-doctor-probe-{pysecrets.token_hex(4)}"
    h = {"agi_network": "yes", "agi_network_script": "ivr", "agi_request": "agi://doctor/ivr",
         "agi_channel": "Local/hotline-doctor", "agi_uniqueid": probe_id, "agi_callerid": "",
         "agi_extension": "", "agi_arg_1": probe_id}
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall("".join(f"{k}: {v}\n" for k, v in h.items()).encode() + b"\n")
        try:
            return s.recv(256)
        except TimeoutError:
            raise TimeoutError(f"no answer and no close within {timeout:.0f}s") from None


def check_fastagi_auth(host: str, port: int,
                       probe: Callable[[str, int], bytes] = fastagi_probe) -> Check:
    """A local process that poses as Asterisk without the secret is refused (issue 10, defect 8):
    the server closes without sending one AGI command."""
    try:
        sent = probe(host, port)
    except OSError as exc:
        return Check("fastagi-auth", WARN, f"no FastAGI server answered on {host}:{port} ({exc})",
                     "start the stack (hotline up) and run the doctor again")
    if sent:
        first = sent.split(b"\n")[0][:60].decode("utf-8", errors="replace")
        return Check("fastagi-auth", FAIL,
                     f"FastAGI on {host}:{port} ran the IVR for a request without the secret "
                     f"(it sent {first!r}): any local process can pose as Asterisk",
                     "run a CTI that requires the dialplan's secret (ivr/fastagi.py) and "
                     "hotline config render, so the dialplan passes it (hotline down && "
                     "hotline up)")
    return Check("fastagi-auth", PASS,
                 f"FastAGI on {host}:{port} refuses a request without the dialplan's secret")


def run_checks(settings: Settings) -> list[Check]:
    """Every check against this deployment, as the settings describe it."""
    staff = staff_hashes(settings)
    state = settings.state_dir
    asterisk_uid = process_uid(state / "asterisk" / "asterisk.pid")
    return [
        check_ports(settings, listening_tcp()),
        check_mqtt_anonymous(settings.mqtt.host, settings.mqtt.port),
        check_mqtt_files(broker_folder(state), credentials_path(state)),
        check_ami(settings.asterisk_etc / "manager.conf", settings.ami.username),
        check_modules(settings.asterisk_root),
        check_files(expected_files(settings)),
        check_secrets(demo=settings.demo,
                      demo_accounts=None if staff is None
                      else demo_password_accounts(staff, argon2_verify),
                      ami_secret=settings.ami.secret,
                      sip_secrets=_sip_secrets(state / "secrets.json")),
        check_tls(settings),
        check_sip_tls(settings.asterisk_etc / "pjsip.conf", settings.asterisk_etc),
        check_ban(state / "fail2ban" / "run", asterisk_running=asterisk_uid is not None),
        # either CTI process ([cti] standby): root if either runs as root (uids are >= 0)
        check_users(min((u for u in (process_uid(state / "run" / "cti.pid"),
                                     process_uid(state / "run" / "cti-standby.pid"))
                         if u is not None), default=None), asterisk_uid),
        check_fastagi_auth(settings.fastagi.host, settings.fastagi.port),
    ]


__all__ = ["FAIL", "PASS", "WARN", "Check", "run_checks", "unsafe"]
