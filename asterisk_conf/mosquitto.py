"""The hotline's own Mosquitto (issue 10, defect 2): its config, a hashed password file and an ACL.
`hotline up` renders them and starts a broker on [mqtt] host:port (1884 by default), never the
host's broker on 1883.

- No anonymous access; one credential per client: `hotline-cti` (reads and writes hotline/#),
  `hotline-observer` (reads the public state topics only) and one per active staff member,
  named by their id.
- The ACL: a staff member writes only hotline/cmd/agents/{own id} and reads only
  hotline/agents/{own id}/# (state, pop, reply) and hotline/cti/status; a supervisor (or admin)
  also writes hotline/cmd/supervisors/{own id} and reads its reply and the public topics. Pops,
  replies and commands of others stay out of reach, and no one but the CTI publishes state,
  pops, call events or alerts.
- The passwords are random (`secrets.token_urlsafe`), kept in `var/mqtt-clients.json` (0600, or
  0640 to the CTI's `hotline` group when it exists, next to secrets.json), and are hashed in the
  broker's password file by Debian's `mosquitto_passwd -U` (never on a command line).
- TLS on [mqtt] tls_port as an option: [mqtt] tls_cert/tls_key, or a self-signed certificate
  made and kept in `var/mqtt-tls/` by config/certs.py (the web desktop's maker); clients trust
  `var/mqtt-tls/cert.pem`. Either is copied into the broker's folder.

Where: Mosquitto started as root drops to the user `mosquitto` and reads the password file, the
ACL and the TLS files *after* that (also on every SIGHUP), so they must sit where that user can
reach them, and the state dir is not such a place (root:hotline, no access for others, defect
4). Run as root, the broker's folder is `/run/hotline-mqtt/<12 hex of the state dir's path>/`,
root:mosquitto 0750 with 0640 files, rendered again by every `hotline up`; the passwords stay
in the state dir. Run as another user (a developer, a unit test) nothing drops privileges and
the folder is `var/mqtt/`.
"""

from __future__ import annotations

import grp
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from config import topics
from config.settings import MqttSettings

log = logging.getLogger(__name__)

CTI_USER = "hotline-cti"
OBSERVER_USER = "hotline-observer"
CREDENTIALS_FILE = "mqtt-clients.json"
BROKER_DIR = "mqtt"
TLS_DIR = "mqtt-tls"                    # the self-signed certificate, kept in the state dir
RUN_ROOT = Path("/run/hotline-mqtt")    # the broker's folders when run as root
BROKER_GROUP = "mosquitto"      # Debian's mosquitto drops to this user and group
CTI_GROUP = "hotline"           # the CTI's system group (reads the credentials when it exists)
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
USERNAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SUPERVISOR_ROLES = frozenset({"supervisor", "admin"})
# what the big screen, supervisors and the observer may read: no pops, replies or commands
# (every filter and pattern of the ACL comes from config/topics.py, the one topics module)
PUBLIC_TOPICS = topics.PUBLIC_FILTERS


class BrokerConfigError(Exception):
    """The broker's files cannot be made (a bad user name, mosquitto_passwd missing...)."""


@dataclass(frozen=True)
class Staff:
    user_id: str
    role: str  # agent | supervisor | admin


@dataclass(frozen=True)
class BrokerFiles:
    folder: Path
    conf: Path
    passwords: Path
    acl: Path
    credentials: Path
    tls_cert: Path | None = None
    tls_key: Path | None = None


# ------------------------------------------------------------------------------- credentials


def credentials_path(state_dir: Path) -> Path:
    return state_dir / CREDENTIALS_FILE


def load_credentials(state_dir: Path) -> dict[str, str]:
    """{username: password} of every broker client; empty when not made yet or unreadable."""
    try:
        doc = json.loads(credentials_path(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}


def credential(state_dir: Path, username: str) -> str | None:
    return load_credentials(state_dir).get(username)


def _gid(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _write_private(path: Path, text: str, *, mode: int = 0o600, gid: int | None = None) -> None:
    """Written whole (a temp file renamed over), never readable by others, not even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    if gid is not None and os.geteuid() == 0:
        os.chown(tmp, 0, gid)
    os.chmod(tmp, mode)
    tmp.replace(path)


def load_or_create_credentials(path: Path, users: Iterable[str]) -> dict[str, str]:
    """A password for each of `users` (kept if there is one already, new ones random); users no
    longer listed lose theirs. 0600, or 0640 root:hotline when the CTI's group exists (the CTI
    reads its own and hands each desktop theirs)."""
    wanted = list(dict.fromkeys(users))
    bad = [u for u in wanted if not USERNAME.match(u)]
    if bad:
        raise BrokerConfigError(f"MQTT user names must match {USERNAME.pattern}: {bad}")
    current: dict[str, str] = {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict):
            current = {str(k): str(v) for k, v in doc.items()}
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise BrokerConfigError(f"{path}: {exc}") from exc
    out = {u: current.get(u) or secrets.token_urlsafe(24) for u in wanted}
    cti_gid = _gid(CTI_GROUP) if os.geteuid() == 0 else None
    if out != current or not path.exists() or _mode(path) != (0o640 if cti_gid else 0o600):
        _write_private(path, json.dumps(out, indent=1, sort_keys=True) + "\n",
                       mode=0o640 if cti_gid else 0o600, gid=cti_gid)
    return out


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


# ------------------------------------------------------------------------------- rendering


def render_acl(staff: Sequence[Staff], extra: Mapping[str, Sequence[str]] | None = None) -> str:
    """The ACL file. Mosquitto denies whatever no line grants; `pattern` lines hold for every
    user, %u being the user's name. `extra`: more users and their lines (the tests' harness)."""
    lines = ["# The hotline's broker ACL, rendered by asterisk_conf/mosquitto.py: do not edit.",
             "# Whatever no line grants is denied.", "",
             f"user {CTI_USER}", f"topic readwrite {topics.ALL_TOPICS}", "",
             f"user {OBSERVER_USER}", *(f"topic read {t}" for t in PUBLIC_TOPICS), ""]
    for s in staff:
        if s.role in SUPERVISOR_ROLES:
            lines += [f"user {s.user_id}",
                      f"topic write {topics.command_topic('supervisors', s.user_id)}",
                      f"topic read {topics.reply_topic('supervisors', s.user_id)}",
                      *(f"topic read {t}" for t in PUBLIC_TOPICS), ""]
    for user, granted in (extra or {}).items():
        lines += [f"user {user}", *granted, ""]
    lines += ["# every staff member: their own commands, state, pop and replies;",
              "# the CTI's status, the outage notices' revision and storm mode",
              f"pattern write {topics.agent_commands_pattern(topics.ACL_USER)}",
              f"pattern read {topics.agent_topics_pattern(topics.ACL_USER)}",
              *(f"pattern read {t}" for t in topics.AGENT_SHARED_FILTERS), ""]
    return "\n".join(lines)


def render_conf(files: BrokerFiles, mqtt: MqttSettings) -> str:
    lines = ["# The hotline's own broker, rendered by asterisk_conf/mosquitto.py: do not edit.",
             "per_listener_settings false",
             "allow_anonymous false",
             f"password_file {files.passwords}",
             f"acl_file {files.acl}",
             "persistence false",
             "user mosquitto",
             "log_dest stderr",
             "log_type error", "log_type warning", "log_type notice",
             "connection_messages true",
             "max_packet_size 1048576",
             "",
             f"listener {mqtt.port} {mqtt.host}",
             "protocol mqtt"]
    if mqtt.tls_port and files.tls_cert and files.tls_key:
        lines += ["",
                  f"listener {mqtt.tls_port} {mqtt.host}",
                  "protocol mqtt",
                  f"certfile {files.tls_cert}",
                  f"keyfile {files.tls_key}",
                  "tls_version tlsv1.2"]
    return "\n".join(lines) + "\n"


def _hashed_password_file(path: Path, creds: Mapping[str, str], gid: int | None) -> None:
    """`user:password` lines hashed in place by mosquitto_passwd -U (the passwords never appear
    on a command line), then renamed over the broker's file."""
    exe = shutil.which("mosquitto_passwd") or MOSQUITTO_PASSWD
    if not Path(exe).exists():
        raise BrokerConfigError("mosquitto_passwd is not installed (Debian's mosquitto): "
                                "run `make up`")
    tmp = path.with_name(f".{path.name}.plain")
    _write_private(tmp, "".join(f"{u}:{p}\n" for u, p in creds.items()))
    try:
        res = subprocess.run([exe, "-U", str(tmp)], capture_output=True, text=True, check=False,
                             timeout=60)
        if res.returncode != 0:
            raise BrokerConfigError(f"mosquitto_passwd -U failed: {res.stderr.strip()[:200]}")
        if gid is not None and os.geteuid() == 0:
            os.chown(tmp, 0, gid)
        os.chmod(tmp, 0o640 if gid is not None else 0o600)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def tls_ca(state_dir: Path) -> Path:
    """What a client trusts for a self-signed TLS listener."""
    return state_dir / TLS_DIR / "cert.pem"


def _tls_files(folder: Path, state_dir: Path, mqtt: MqttSettings, gid: int | None
               ) -> tuple[Path, Path]:
    """The TLS listener's certificate and key, copied into the broker's folder."""
    from config.certs import ensure_self_signed

    if mqtt.tls_cert or mqtt.tls_key:
        src_cert, src_key = Path(mqtt.tls_cert), Path(mqtt.tls_key)
        for src in (src_cert, src_key):
            if not src.is_file() or not os.access(src, os.R_OK):
                raise BrokerConfigError(f"[mqtt] tls_cert/tls_key: cannot read {str(src)!r}")
    else:
        src_cert, src_key = tls_ca(state_dir), state_dir / TLS_DIR / "key.pem"
        ensure_self_signed(src_cert, src_key, mqtt.host, common_name="95598 hotline MQTT")
    tls = folder / "tls"
    tls.mkdir(exist_ok=True)
    cert, key = tls / "cert.pem", tls / "key.pem"
    mode = 0o640 if gid is not None else 0o600
    _write_private(cert, src_cert.read_text(encoding="utf-8"), mode=mode, gid=gid)
    _write_private(key, src_key.read_text(encoding="utf-8"), mode=mode, gid=gid)
    if gid is not None:
        os.chown(tls, 0, gid)
    os.chmod(tls, 0o750 if gid is not None else 0o700)
    return cert, key


def broker_folder(state_dir: Path) -> Path:
    """Where the broker's files go (see the module's docstring)."""
    if os.geteuid() != 0:
        return state_dir / BROKER_DIR
    key = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
    return RUN_ROOT / key


def write_broker(mqtt: MqttSettings, state_dir: Path, staff: Sequence[Staff], *,
                 folder: Path | None = None,
                 extra: Mapping[str, Sequence[str]] | None = None) -> BrokerFiles:
    """Render the broker's folder (default state_dir/mqtt) and the credentials beside
    secrets.json; returns the paths. `extra`: more users with their ACL lines (tests only)."""
    folder = folder or broker_folder(state_dir)
    if folder.parent == RUN_ROOT:
        RUN_ROOT.mkdir(mode=0o755, exist_ok=True)
    users = [CTI_USER, OBSERVER_USER, *(s.user_id for s in staff), *(extra or {})]
    dupes = {u for u in users if users.count(u) > 1}
    if dupes:
        raise BrokerConfigError(f"MQTT user names must be unique: {sorted(dupes)}")
    creds = load_or_create_credentials(credentials_path(state_dir), users)
    gid = _gid(BROKER_GROUP) if os.geteuid() == 0 else None
    folder.mkdir(parents=True, exist_ok=True)
    if gid is not None:
        os.chown(folder, 0, gid)
    os.chmod(folder, 0o750 if gid is not None else 0o700)
    files = BrokerFiles(folder, folder / "mosquitto.conf", folder / "passwords", folder / "acl",
                        credentials_path(state_dir))
    if mqtt.tls_port:
        cert, key = _tls_files(folder, state_dir, mqtt, gid)
        files = BrokerFiles(files.folder, files.conf, files.passwords, files.acl,
                            files.credentials, cert, key)
    mode = 0o640 if gid is not None else 0o600
    _hashed_password_file(files.passwords, creds, gid)
    _write_private(files.acl, render_acl(staff, extra), mode=mode, gid=gid)
    _write_private(files.conf, render_conf(files, mqtt), mode=mode, gid=gid)
    log.info("rendered the MQTT broker (%d users) into %s", len(users), folder)
    return files


__all__ = ["CTI_USER", "OBSERVER_USER", "PUBLIC_TOPICS", "BrokerConfigError", "BrokerFiles",
           "Staff", "broker_folder", "credential", "tls_ca", "credentials_path", "load_credentials",
           "load_or_create_credentials", "render_acl", "render_conf", "write_broker"]
