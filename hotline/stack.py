"""Starts, checks and stops the running parts: Asterisk (chrooted), Mosquitto and the CTI daemon."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pwd
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from config.settings import REPO_ROOT, Settings
from hotline import trim

log = logging.getLogger(__name__)

ASTERISK_SH = REPO_ROOT / "scripts" / "asterisk.sh"
ENV_FILE_NAME = "hotline.env"
# the CTI's own system user (scripts/install.sh makes it: uid/gid 597, no shell, a member of
# hotline-rec so it reads recordings); a root `hotline up` runs the CTI as this user
CTI_USER = "hotline"
CTI_UMASK = 0o077
CTI_MALLOC_ARENA_MAX = "2"  # see _spawn_cti


class StackError(Exception):
    """A part of the stack did not start or stop as it should."""


@dataclass(frozen=True)
class Paths:
    state: Path

    @property
    def asterisk(self) -> Path:
        return self.state / "asterisk"

    @property
    def run(self) -> Path:
        return self.state / "run"

    @property
    def log(self) -> Path:
        return self.state / "log"

    @property
    def asterisk_pid(self) -> Path:
        return self.asterisk / "asterisk.pid"

    @property
    def cti_pid(self) -> Path:
        return self.run / "cti.pid"

    @property
    def cti_standby_pid(self) -> Path:
        """The second CTI process ([cti] standby): it waits on the leadership lock."""
        return self.run / "cti-standby.pid"

    @property
    def cti_lock(self) -> Path:
        """The leadership lock file (hotline.wiring.leader_lock_path; flocked with SQLite)."""
        return self.run / "cti.lock"

    @property
    def mosquitto_pid(self) -> Path:
        return self.run / "mosquitto.pid"

    @property
    def carrier_pid(self) -> Path:
        """`make up`'s simulated carrier (a SIPp UAS on [pbx] outbound_trunk)."""
        return self.run / "carrier.pid"

    @property
    def watchdog_pid(self) -> Path:
        """`hotline watchdog` (hotline/watchdog.py), started by `hotline up`."""
        return self.run / "watchdog.pid"


def paths(settings: Settings) -> Paths:
    return Paths(settings.state_dir)


# ------------------------------------------------------------------------------------ AMI secret


def load_env_file(state_dir: Path, environ: dict[str, str] | None = None,
                  create: bool = True) -> str:
    """The AMI secret comes from HOTLINE_AMI_SECRET; when unset, from var/hotline.env, which
    `make up` creates once with a random secret (mode 0600)."""
    env = os.environ if environ is None else environ
    if env.get("HOTLINE_AMI_SECRET"):
        return env["HOTLINE_AMI_SECRET"]
    path = state_dir / ENV_FILE_NAME
    if not path.exists():
        if not create:
            return ""
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"HOTLINE_AMI_SECRET={secrets.token_urlsafe(24)}\n")
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "HOTLINE_AMI_SECRET" and value.strip():
            env["HOTLINE_AMI_SECRET"] = value.strip()
            return value.strip()
    raise StackError(f"{path} has no HOTLINE_AMI_SECRET")


# ------------------------------------------------------------------------------------- helpers


def pid_alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # a zombie or a recycled pid of something else is not ours
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return None
    except OSError:
        return None
    return pid


def port_open(host: str, port: int, udp: bool = False) -> bool:
    if udp:
        out = subprocess.run(["ss", "-Hlnu", f"sport = :{port}"], capture_output=True,
                             text=True, check=False).stdout
        return bool(out.strip())
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def private_log(path: Path, mode: int = 0o600, gid: int | None = None) -> BinaryIO:
    """A daemon's output file, opened to append and handed to the child: 0600, for the
    owner alone (caller numbers, SIP addresses, stack traces), made so on a file from before.
    `mode` 0640 with `gid` lets that group read it too (cti.log: root:hotline)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, mode)
    if gid is not None:
        os.fchown(fd, -1, gid)
    os.fchmod(fd, mode)
    return os.fdopen(fd, "ab")


def wait_until(cond: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval)
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")


def _ast_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "AST_ROOT": str(settings.asterisk_root),
            "AST_INSTANCE": str(paths(settings).asterisk),
            "AST_PROMPTS": str(settings.prompts.cache_dir),
            "AST_PIDFILE": str(paths(settings).asterisk_pid),
            "AST_RECORDINGS": str(settings.recorder.storage_dir)}


# ---------------------------------------------------------------------------------- Asterisk


async def _ami_login_booted(settings: Settings) -> None:
    """Log in to AMI and wait for FullyBooted: the readiness probe for a starting Asterisk.

    The project's one AMI client, as a one-shot AmiConnection: the CTI's AmiClient reconnects
    for ever, which suits the daemon but not a probe that must leave nothing behind. A refused
    login is final (StackError); an unreachable or silent AMI raises OSError or TimeoutError,
    which the caller retries until its deadline.
    """
    from asterisk_conf.render import ami_observer
    from cti.ami.client import AmiConnection, AmiLoginError

    a = settings.ami
    # the tools' observer user: the CTI's own allows one session, which may be the CTI's
    login = ami_observer(a)
    try:
        conn = await AmiConnection.open(a.host, a.port, login.username, login.secret,
                                        events="system")
    except AmiLoginError:
        raise StackError("AMI rejected the secret (HOTLINE_AMI_SECRET)") from None
    async with conn:
        # FullyBooted follows the login at once on a booted Asterisk; the caller's deadline
        # bounds the wait for one that is still booting
        await conn.fully_booted(timeout=3600)


async def _ami_fully_booted(settings: Settings, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            async with asyncio.timeout(max(0.5, deadline - time.monotonic())):
                await _ami_login_booted(settings)
                return
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            last = exc
        await asyncio.sleep(0.2)
    raise StackError(f"Asterisk AMI not fully booted after {timeout:.0f}s ({last!r})")


def start_asterisk(settings: Settings, timeout: float = 30) -> int:
    p = paths(settings)
    pid = pid_alive(p.asterisk_pid)
    if pid:
        return pid
    if not (settings.asterisk_root / "usr/sbin/asterisk").exists():
        raise StackError(f"no Asterisk chroot at {settings.asterisk_root}: run `make up`")
    # an Asterisk that just died (kill -9, a crash) is a zombie as soon as its main thread
    # exits, but its sockets close only when its last thread has: give that a few seconds
    try:
        wait_until(lambda: not port_open(settings.pbx.bind_ip, settings.pbx.sip_port, udp=True),
                   3, "the SIP port", interval=0.05)
    except StackError:
        raise StackError(f"UDP {settings.pbx.sip_port} is taken: another Asterisk or SIP "
                         "server is running (`make down` stops ours)") from None
    p.log.mkdir(parents=True, exist_ok=True)
    out = private_log(p.log / "asterisk.out")
    proc = subprocess.Popen([str(ASTERISK_SH), "run"], env=_ast_env(settings), stdout=out,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    out.close()
    try:
        asyncio.run(_ami_fully_booted(settings, timeout))
    except StackError:
        if proc.poll() is not None:
            tail = (p.log / "asterisk.out").read_text(errors="replace")[-2000:]
            raise StackError(f"Asterisk exited with {proc.returncode}:\n{tail}") from None
        raise
    return proc.pid


def stop_asterisk(settings: Settings) -> bool:
    if not pid_alive(paths(settings).asterisk_pid):
        paths(settings).asterisk_pid.unlink(missing_ok=True)
        return False
    subprocess.run([str(ASTERISK_SH), "stop"], env=_ast_env(settings), check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True


def trim_asterisk(settings: Settings) -> trim.Trim | None:
    """Asterisk's `malloc trim` (hotline/trim.py), through its control socket (root); None
    when it is not running. A failed CLI call raises StackError."""
    pid = pid_alive(paths(settings).asterisk_pid)
    if not pid:
        return None
    return trim.timed(lambda: asterisk_cli(settings, trim.CLI_COMMAND), pid)


def asterisk_cli(settings: Settings, command: str) -> str:
    res = subprocess.run([str(ASTERISK_SH), "cli", command], env=_ast_env(settings),
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise StackError(res.stderr.strip() or f"asterisk cli exited {res.returncode}")
    return res.stdout


# ----------------------------------------------------------------------------- the SIP ban


def _fail2ban_dirs(settings: Settings) -> tuple[Path, Path]:
    conf = settings.state_dir / "fail2ban"
    return conf, conf / "run"


def start_fail2ban(settings: Settings, timeout: float = 20, policy: Any = None) -> int:
    """The hotline's own fail2ban server (asterisk_conf.fail2ban): bans an address that keeps
    failing SIP authentication, from Asterisk's security log, with nftables. `policy` (a
    fail2ban.BanPolicy) is the default one unless a test shortens it."""
    from asterisk_conf import fail2ban

    conf, run = _fail2ban_dirs(settings)
    pidfile = run / "fail2ban.pid"
    pid = pid_alive(pidfile)
    if pid:
        return pid
    run.mkdir(parents=True, exist_ok=True)
    fail2ban.write(fail2ban.render(
        security_log=paths(settings).asterisk / "log" / "security.log", run_dir=run,
        sip_port=settings.pbx.sip_port, sip_tls_port=settings.pbx.sip_tls_port,
        ignore=settings.pbx.carrier_ips,
        policy=policy or fail2ban.BanPolicy()), conf)
    paths(settings).log.mkdir(parents=True, exist_ok=True)
    out = private_log(paths(settings).log / "fail2ban.out")
    proc = subprocess.Popen(fail2ban.server_command(conf, run), stdout=out,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    out.close()

    def ready() -> bool:
        if proc.poll() is not None:
            raise StackError(f"fail2ban exited with {proc.returncode}: see "
                             f"{paths(settings).log / 'fail2ban.out'}")
        return subprocess.run(fail2ban.client_command(run, "status", fail2ban.JAIL),
                              capture_output=True, check=False).returncode == 0

    wait_until(ready, timeout, "fail2ban's SIP jail")
    return proc.pid


def stop_fail2ban(settings: Settings) -> bool:
    from asterisk_conf import fail2ban

    _conf, run = _fail2ban_dirs(settings)
    if not pid_alive(run / "fail2ban.pid"):
        return False
    subprocess.run(fail2ban.client_command(run, "stop"), capture_output=True, check=False,
                   timeout=20)
    return _stop_pidfile(run / "fail2ban.pid") or True


# ---------------------------------------------------------------------------------- Mosquitto


def mqtt_staff(settings: Settings) -> list[Any]:
    """Every active staff member (id, role) of the center in the database: one broker user
    each. The departments' users have none: they get no live events (agent_desktop.push)."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from asterisk_conf.mosquitto import Staff
    from cti.db.models import Agent
    from hotline.wiring import database_at

    try:
        with database_at(settings.db_url, migrate=False) as sessions, sessions() as s:
            rows = s.execute(select(Agent.agent_id, Agent.role).where(
                Agent.active.is_(True), Agent.role != "department").order_by(Agent.agent_id)).all()
    except SQLAlchemyError as exc:
        raise StackError(f"cannot read the staff for the MQTT broker's users: {exc}") from exc
    return [Staff(str(a), str(r)) for a, r in rows]


def start_mosquitto(settings: Settings, *, staff: Any = None, folder: Path | None = None,
                    extra: Any = None, timeout: float = 10) -> str:
    """The hotline's own broker (asterisk_conf/mosquitto.py) on [mqtt] host:port, never one that
    already listens there: render its files (one user per active staff member, or `staff`),
    then start it, or make a running one of ours re-read its users and ACL (SIGHUP)."""
    from asterisk_conf.mosquitto import BrokerConfigError, write_broker

    p = paths(settings)
    mqtt = settings.mqtt
    ports = [port for port in (mqtt.port, mqtt.tls_port) if port]
    try:
        files = write_broker(mqtt, settings.state_dir,
                             mqtt_staff(settings) if staff is None else staff,
                             folder=folder, extra=extra)
    except BrokerConfigError as exc:
        raise StackError(str(exc)) from exc
    pid = pid_alive(p.mosquitto_pid)
    if pid and all(port_open(mqtt.host, port) for port in ports):
        os.kill(pid, signal.SIGHUP)  # re-reads the password file and the ACL
        return "reloaded its users"
    if pid:  # ours, but not on the configured ports (a changed [mqtt]): start it again
        _stop_pidfile(p.mosquitto_pid)
    for port in ports:
        if port_open(mqtt.host, port):
            raise StackError(f"port {port} ([mqtt]) is taken by another process: the hotline "
                             "runs its own broker and never reuses one; free the port or set "
                             "[mqtt] port / tls_port")
    exe = "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise StackError("mosquitto is not installed: run `make up`")
    p.run.mkdir(parents=True, exist_ok=True)
    p.log.mkdir(parents=True, exist_ok=True)
    out = private_log(p.log / "mosquitto.out")
    proc = subprocess.Popen([exe, "-c", str(files.conf)], stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    out.close()
    p.mosquitto_pid.write_text(str(proc.pid))

    def ready() -> bool:
        if proc.poll() is not None:
            tail = (p.log / "mosquitto.out").read_text(errors="replace")[-2000:]
            raise StackError(f"mosquitto exited with {proc.returncode}:\n{tail}")
        return all(port_open(mqtt.host, port) for port in ports)

    wait_until(ready, timeout, f"the hotline's mosquitto on {mqtt.host}:{ports}")
    return "started by hotline"


def stop_mosquitto(settings: Settings) -> bool:
    return _stop_pidfile(paths(settings).mosquitto_pid)


# ------------------------------------------------------------------------------------ the CTI


@dataclass(frozen=True)
class CtiUser:
    """Who the CTI runs as when `hotline up` runs as root: the `hotline` system user."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary: hotline-rec, to read and prune recordings


def cti_user(name: str = CTI_USER) -> CtiUser | None:
    """The CTI's user when we are root; None for a developer, whose CTI runs as themselves."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise StackError(f"no `{name}` system user for the CTI: run `make up` as root "
                         "(scripts/install.sh makes it)") from None
    if pw.pw_uid == 0 or pw.pw_gid == 0:
        raise StackError(f"the `{name}` user is root (uid {pw.pw_uid}, gid {pw.pw_gid}): the "
                         "CTI must not run as root")
    groups = tuple(g for g in os.getgrouplist(name, pw.pw_gid) if g != pw.pw_gid)
    return CtiUser(name, pw.pw_uid, pw.pw_gid, groups)


def sqlite_files(settings: Settings) -> list[Path]:
    """The SQLite database of the settings and its WAL, shared-memory and journal files."""
    if not settings.db_url.startswith("sqlite:///"):
        return []
    db = Path(settings.db_url.removeprefix("sqlite:///"))
    return [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))]


def _give(path: Path, user: CtiUser | None, mode: int, owner: int | None = None) -> None:
    """Make `path` the CTI user's (None: leave the owner) with `mode`, never through a symbolic
    link: the descriptor is opened O_NOFOLLOW, so a link planted in its place is refused.
    `owner` 0: root keeps it and the CTI's group may read it (mode 0640).

    The descriptor is an O_PATH one, changed through /proc/self/fd: closing an ordinary
    descriptor of a file drops every POSIX lock this process holds on it (fcntl(2)), and the
    SQLite files are among those given. A process with the database open (a test harness, a
    root tool) would lose its WAL locks; the CTI, finding itself alone, then checkpoints and
    deletes the -wal and -shm and makes new ones, and that process goes on reading (and
    writing) the old ones: it never sees the CTI's commits again. Closing an O_PATH descriptor
    drops no lock."""
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return
    try:
        st = os.fstat(fd)
        if stat.S_ISLNK(st.st_mode):  # O_PATH|O_NOFOLLOW opens the link itself
            raise StackError(f"{path} is a symbolic link; refusing to give it to the CTI's user")
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise StackError(f"{path} is neither a file nor a folder; refusing it")
        handle = f"/proc/self/fd/{fd}"  # the file the descriptor holds, not the path again
        if user is not None:
            os.chown(handle, user.uid if owner is None else owner, user.gid)
        os.chmod(handle, mode)
    finally:
        os.close(fd)


def secure_cti_files(settings: Settings, user: CtiUser | None) -> None:
    """The state dir and what the CTI writes, before the CTI starts (defect 4).

    As root (`user` given): the state dir is root:hotline 1770, so the CTI creates its own files
    there (the SQLite WAL and shared memory, cti.status.json, web-tls/) but, the folder being
    sticky, can neither rename nor remove root's (secrets.json, hotline.env, asterisk/, log/,
    run/, fail2ban/), which root writes through on the next `hotline up`. log/ and run/ are
    root:hotline 0750: root opens cti.log and writes cti.pid there. The database and its
    WAL/SHM (made by root's migration and demo seed) and web-tls/ become hotline's, 0600/0700;
    fastagi.secret (the one secret the CTI reads) root:hotline 0640; secrets.json (every
    phone's SIP password) and hotline.env stay root's 0600. The flows folder keeps its owner
    and becomes the CTI's group's, 0775: the admin console's publish renames a file into it.
    As a developer: the same modes on one's own files, no owners changed.
    """
    p = paths(settings)
    state = settings.state_dir
    for d in (state, p.run, p.log):
        d.mkdir(parents=True, exist_ok=True)
    if user is None:
        os.chmod(state, 0o750)
        os.chmod(p.run, 0o750)
        os.chmod(p.log, 0o750)
    else:
        for d, mode in ((state, 0o1770), (p.run, 0o750), (p.log, 0o750)):
            os.chown(d, 0, user.gid, follow_symlinks=False)
            os.chmod(d, mode)
    for f in sqlite_files(settings):
        _give(f, user, 0o600)
    for f in (state / "cti.status.json", state / "cti.status.tmp", state / "cti.standby.json",
              state / "cti.standby.tmp",
              state / "db-journal.jsonl"):  # writes kept through a database outage
        _give(f, user, 0o600)
    # the leadership lock file: in run/, where the CTI may not create it; made here for it
    fd = os.open(p.cti_lock, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.close(fd)  # no lock of ours on it to drop: the CTI's is an flock of its own descriptor
    _give(p.cti_lock, user, 0o600)
    if user is not None:
        # the CTI reads the FastAGI secret (and only it: secrets.json, every phone's SIP
        # password, stays root's 0600): root's, readable by the CTI's group, no one else
        _give(state / "fastagi.secret", user, 0o640, owner=0)
        _give(state / "secrets.json", CtiUser("root", 0, 0, ()), 0o600)
    if user is not None:
        # the admin console publishes a flow by writing a temporary file in the flows folder
        # and renaming it over the old one (agent_desktop.api.flows): the CTI's group may
        # write the folder (not sticky: the rename replaces root's file), its owner and the
        # files in it are left as they are
        flows = settings.ivr.flows_dir
        if flows.is_dir() and not flows.is_symlink():
            _give(flows, user, 0o775, owner=flows.stat().st_uid)
    tls = state / "web-tls"
    if os.path.lexists(tls):
        _give(tls, user, 0o700)
        for f in sorted(tls.iterdir()):
            _give(f, user, 0o600)


def _check_cti_can(settings: Settings, user: CtiUser) -> None:
    """What an unprivileged CTI cannot do, refused here with the fix rather than in its log."""
    for what, port in (("[web] port", settings.web.port),
                       ("[fastagi] port", settings.fastagi.port)):
        if port < 1024:
            raise StackError(
                f"{what} = {port} is below 1024: the CTI runs as the unprivileged `{user.name}` "
                "user, which may not bind it (no CAP_NET_BIND_SERVICE is given). Use a port "
                "above 1024 (8098, or 8443 for HTTPS) and, if 443 is wanted, redirect it there "
                "(nftables: tcp dport 443 redirect to :8443)")
    if settings.web.tls == "files":
        for name in ("tls_cert", "tls_key"):
            value = getattr(settings.web, name, None)
            if value and not _readable_by(Path(value), user):
                raise StackError(
                    f"[web] {name} {value} is not readable by the CTI's user `{user.name}`: "
                    f"chown root:{user.name} and chmod 0640 it (the key only for that group)")


def _readable_by(path: Path, user: CtiUser) -> bool:
    try:
        st = path.stat()
    except OSError:
        return True  # missing: the CTI's own TLS check says so, with the setting's name
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == user.uid:
        return bool(mode & 0o400)
    if st.st_gid == user.gid or st.st_gid in user.groups:
        return bool(mode & 0o040)
    return bool(mode & 0o004)


# how long a dying CTI's threads may keep its ports (start_cti)
PORT_RELEASE_S = 10.0


def start_cti(settings: Settings, timeout: float = 30,
              env: dict[str, str] | None = None) -> int:
    """Start the CTI daemon; as root it runs as the `hotline` user (cti_user), never as root.
    When the standby has taken over (it holds the FastAGI port), this one starts as the new
    standby instead, so that `hotline up` restores the pair."""
    p = paths(settings)
    pid = pid_alive(p.cti_pid)
    if pid:
        return pid
    if port_open(settings.fastagi.host, settings.fastagi.port):
        if pid_alive(p.cti_standby_pid):
            return _start_standby(settings, p.cti_pid, "cti.log", timeout, env)
        # a CTI killed a moment ago may still hold its sockets: its main thread is a zombie
        # (pid_alive: gone) while its other threads finish dying, and one in the middle of a
        # write to disk (SQLite's fsync, a recording) finishes that first. A clean-clone run
        # met it: a restart right after kill -9 found the port still taken
        try:
            wait_until(lambda: not port_open(settings.fastagi.host, settings.fastagi.port),
                       PORT_RELEASE_S, "the FastAGI port to be let go")
        except StackError:
            raise StackError(f"port {settings.fastagi.port} (FastAGI) is taken by another "
                             "process") from None
    proc = _spawn_cti(settings, p.cti_pid, "cti.log", env)

    def ready() -> bool:
        if proc.poll() is not None:
            tail = (p.log / "cti.log").read_text(errors="replace")[-3000:]
            raise StackError(f"the CTI exited with {proc.returncode}:\n{tail}")
        return port_open(settings.fastagi.host, settings.fastagi.port)

    wait_until(ready, timeout, f"the CTI's FastAGI port {settings.fastagi.port}")
    return proc.pid


def start_cti_standby(settings: Settings, timeout: float = 30,
                      env: dict[str, str] | None = None) -> int:
    """Start the standby CTI ([cti] standby, issue 11): the same program, user, modes and
    environment as the active one, its own pid file (run/cti-standby.pid) and log
    (log/cti-standby.log). It waits on the leadership lock, binding no port and opening no AMI
    session, and takes over when the active one dies; returns once it says it is waiting (or,
    if no CTI held the lock, once it is the active one)."""
    p = paths(settings)
    pid = pid_alive(p.cti_standby_pid)
    if pid:
        return pid
    return _start_standby(settings, p.cti_standby_pid, "cti-standby.log", timeout, env)


def _start_standby(settings: Settings, pidfile: Path, log_name: str, timeout: float,
                   env: dict[str, str] | None) -> int:
    from hotline.wiring import standby_path, status_path

    p = paths(settings)
    proc = _spawn_cti(settings, pidfile, log_name, env)

    def said(path: Path) -> bool:
        try:
            return bool(json.loads(path.read_text(encoding="utf-8")).get("pid") == proc.pid)
        except (OSError, ValueError):
            return False

    def ready() -> bool:
        if proc.poll() is not None:
            tail = (p.log / log_name).read_text(errors="replace")[-3000:]
            raise StackError(f"the standby CTI exited with {proc.returncode}:\n{tail}")
        return said(standby_path(settings)) or said(status_path(settings))

    wait_until(ready, timeout, "the standby CTI to wait on the leadership lock")
    return proc.pid


def _spawn_cti(settings: Settings, pidfile: Path, log_name: str,
               env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    """`python -m hotline.app` as the CTI's user, its output appended to log/`log_name`."""
    p = paths(settings)
    user = cti_user()
    if user is not None:
        _check_cti_can(settings, user)
    secure_cti_files(settings, user)
    out = private_log(p.log / log_name, 0o640, gid=user.gid if user else None)
    child_env = env.copy() if env is not None else os.environ.copy()
    # glibc gives each thread that mallocs its own arena (up to 8 per core) and seldom hands
    # their freed pages back; the CTI's DB and file work runs on asyncio.to_thread workers,
    # so its RSS crept up under load (RELIABILITY.md, soak). Two arenas bound that; an
    # operator's own setting wins.
    child_env.setdefault("MALLOC_ARENA_MAX", CTI_MALLOC_ARENA_MAX)
    as_user: dict[str, Any] = {}
    if user is not None:
        as_user = {"user": user.uid, "group": user.gid, "extra_groups": list(user.groups)}
        # root's HOME and its caches are not the CTI's: its home is the state dir
        child_env.update(HOME=str(settings.state_dir), USER=user.name, LOGNAME=user.name)
    proc = subprocess.Popen([sys.executable, "-m", "hotline.app"], stdout=out,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=child_env, cwd=REPO_ROOT,
                            umask=CTI_UMASK, **as_user)
    out.close()
    pidfile.write_text(str(proc.pid))
    return proc


# the simulated carrier's customers: answer after 1 s, press 1 four seconds in
CARRIER_RING_MS, CARRIER_KEY_AFTER_MS = 1000, 4000


def simulated_carrier(settings: Settings) -> tuple[str, int] | None:
    """Where `make up` runs its simulated carrier: the outbound trunk's address, when this is
    a demo deployment and the trunk is on this host; None otherwise (a real carrier)."""
    trunk = settings.pbx.outbound_trunk
    if not (settings.demo and trunk):
        return None
    host, _, port = trunk.rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        return None
    return "127.0.0.1", int(port)


def start_carrier(settings: Settings) -> int | None:
    """The demo's carrier (issue 14): a SIPp UAS on the outbound trunk's port that answers
    every call the hotline places (callbacks, return visits) and presses 1, so a new user sees
    outbound calls work with no carrier of their own. Idempotent; None where there is none to
    run (not a demo, or a real carrier's address)."""
    where = simulated_carrier(settings)
    if where is None:
        return None
    p = paths(settings)
    pid = pid_alive(p.carrier_pid)
    if pid:
        return pid
    from bench.sipp import scenario

    folder = settings.state_dir / "carrier"
    folder.mkdir(parents=True, exist_ok=True)
    scen = folder / "customers.xml"
    scen.write_text(scenario("carrier_customer", ring_ms=CARRIER_RING_MS,
                             key_after_ms=CARRIER_KEY_AFTER_MS),
                    encoding="iso-8859-1")
    host, port = where
    # not root: the CTI's unprivileged user (a demo's stand-in for someone else's network)
    user = cti_user()
    as_user: dict[str, Any] = {}
    if user is not None:
        os.chown(folder, user.uid, user.gid)
        as_user = {"user": user.uid, "group": user.gid, "extra_groups": []}
    p.log.mkdir(parents=True, exist_ok=True)
    out = private_log(p.log / "carrier.log")
    proc = subprocess.Popen(
        ["sipp", "-sf", str(scen), "-i", host, "-p", str(port), "-mp", str(port + 10),
         "-cp", str(port + 1), "-nostdin", "-trace_err",
         "-error_file", str(folder / "errors.log")],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, cwd=folder, **as_user)
    out.close()
    p.carrier_pid.write_text(str(proc.pid))
    wait_until(lambda: port_open(host, port, udp=True), 10, f"the simulated carrier on {port}")
    return proc.pid


def stop_carrier(settings: Settings) -> bool:
    return _stop_pidfile(paths(settings).carrier_pid)


def start_watchdog(settings: Settings) -> int:
    """`hotline watchdog` in the background (root, as `hotline up`: it starts Asterisk in its
    chroot and the CTI as its user), its output in log/watchdog.log; idempotent."""
    p = paths(settings)
    pid = pid_alive(p.watchdog_pid)
    if pid:
        return pid
    p.log.mkdir(parents=True, exist_ok=True)
    out = private_log(p.log / "watchdog.log")
    proc = subprocess.Popen([sys.executable, "-m", "hotline.cli", "watchdog"], stdout=out,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=REPO_ROOT)
    out.close()
    p.watchdog_pid.write_text(str(proc.pid))
    return proc.pid


def stop_watchdog(settings: Settings) -> bool:
    return _stop_pidfile(paths(settings).watchdog_pid)


def stop_cti(settings: Settings) -> bool:
    return _stop_pidfile(paths(settings).cti_pid)


def stop_cti_standby(settings: Settings) -> bool:
    return _stop_pidfile(paths(settings).cti_standby_pid)


def _stop_pidfile(pidfile: Path, timeout: float = 10) -> bool:
    pid = pid_alive(pidfile)
    if not pid:
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pidfile):
        time.sleep(0.05)
    if pid_alive(pidfile):
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True


# ------------------------------------------------------------------------------------- status


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None (missing, unreadable, not an object)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def cti_processes(settings: Settings) -> dict[str, dict[str, Any]]:
    """The running CTI processes by pid file ("cti", "cti-standby") and the role of each: the
    active one writes cti.status.json, a standby waiting on the lock cti.standby.json; "starting"
    is neither yet. After a takeover the process of cti-standby.pid is the active one."""
    p = paths(settings)
    active = (read_json(settings.state_dir / "cti.status.json") or {}).get("pid")
    waiting = (read_json(settings.state_dir / "cti.standby.json") or {}).get("pid")
    found: dict[str, dict[str, Any]] = {}
    for slot, pidfile in (("cti", p.cti_pid), ("cti-standby", p.cti_standby_pid)):
        pid = pid_alive(pidfile)
        if pid:
            role = "active" if pid == active else "standby" if pid == waiting else "starting"
            found[slot] = {"pid": pid, "role": role}
    return found


def status(settings: Settings) -> dict[str, Any]:
    p = paths(settings)
    ast_pid = pid_alive(p.asterisk_pid)
    cti_pid = pid_alive(p.cti_pid)
    procs = cti_processes(settings)
    active = [v["pid"] for v in procs.values() if v["role"] == "active"]
    if active:
        cti_pid = active[0]  # after a takeover: the standby's process
    cti_status: dict[str, Any] | None = None
    sfile = settings.state_dir / "cti.status.json"
    if cti_pid and sfile.exists():
        try:
            cti_status = json.loads(sfile.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            cti_status = None
    return {
        "asterisk": {"running": bool(ast_pid), "pid": ast_pid,
                     "sip": f"udp:{settings.pbx.bind_ip}:{settings.pbx.sip_port}",
                     "ami": f"{settings.ami.host}:{settings.ami.port}",
                     "service_number": settings.pbx.service_number,
                     "root": str(settings.asterisk_root)},
        "cti": {"running": bool(cti_pid), "pid": cti_pid, "processes": procs,
                "fastagi": f"{settings.fastagi.host}:{settings.fastagi.port}",
                "web": f"http://{settings.web.host}:{settings.web.port}/",
                "status": cti_status},
        "mqtt": {"running": port_open(settings.mqtt.host, settings.mqtt.port),
                 "url": f"mqtt://{settings.mqtt.host}:{settings.mqtt.port}",
                 "tls_url": (f"mqtts://{settings.mqtt.host}:{settings.mqtt.tls_port}"
                             if settings.mqtt.tls_port else None),
                 "started_by_hotline": bool(pid_alive(p.mosquitto_pid))},
        "db": {"url": _redact(settings.db_url)},
        # the demo's simulated carrier (start_carrier); None: a real one, or no trunk
        "carrier": ({"running": bool(pid_alive(p.carrier_pid)),
                     "sip": f"udp:{settings.pbx.outbound_trunk}"}
                    if simulated_carrier(settings) else None),
        "state_dir": str(settings.state_dir),
    }


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url
