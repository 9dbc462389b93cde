"""Renders the PBX configuration (Asterisk 22 .conf files) from the one settings file."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets as pysecrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jinja2

from config.certs import ensure_self_signed
from config.settings import SKILL_PATTERN, SYSTEMNAME_PATTERN, AmiSettings, Settings
from recorder.naming import IN_CHROOT_DIR as RECORDINGS_IN_CHROOT

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
QUEUE_NAME = "hotline-agents"
# Prompts the dialplan itself plays, for when the IVR cannot: looked up in the prompt index.
SYSTEM_PROMPTS = ("fallback", "all_busy", "no_service", "callback", "return_visit",
                  "return_visit_noinput", "return_visit_offer", "return_visit_goodbye",
                  "return_visit_sorry", "return_visit_message", "return_visit_message_thanks",
                  "survey", "survey_retry", "survey_thanks", "survey_goodbye", "callback_due")
# Asterisk runs as a system user of its own, with the same fixed ids on the host and in the
# chroot (scripts/install-asterisk-chroot.sh creates both): Debian's chroot `asterisk` is uid 101,
# which on the host is whoever got 101 first (postgres). Recordings Asterisk writes are group
# RECORDINGS_GROUP, which the CTI's user joins to read them.
ASTERISK_USER = "hotline-asterisk"
ASTERISK_UID = 595
ASTERISK_GID = 595
RECORDINGS_GROUP = "hotline-rec"
RECORDINGS_GID = 596
CONFIG_MODE = 0o640  # root:hotline-asterisk: SIP passwords and the AMI secrets are in here
CONFIG_DIR_MODE = 0o750

# SIP over TLS ([pbx] sip_tls_port): the certificate and key sit in the rendered config folder,
# which Asterisk sees read-only at /etc/asterisk (scripts/asterisk.sh bind-mounts it), under
# sip-tls/, root:hotline-asterisk 0640 like the rest of it: Asterisk's user reads the key, no
# other local user does. Only TLS 1.2 and later, and only forward-secret AEAD ciphers (TLS 1.3's
# own suites are all AEAD).
SIP_TLS_DIR = "sip-tls"
SIP_TLS_IN_CHROOT = f"/etc/asterisk/{SIP_TLS_DIR}"
SIP_TLS_METHOD = "tlsv1_2"
SIP_TLS_CIPHERS = ("ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
                   "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
                   "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256")
SIP_TLS_COMMON_NAME = "95598 hotline SIP"

# Files Asterisk wants present (or it warns) but that the hotline leaves at their defaults.
STUB_FILES: Mapping[str, str] = {
    "cdr.conf": "[general]\nenable = no\n",
    "cel.conf": "[general]\nenable = no\n",
    "features.conf": "[general]\n",
    "ccss.conf": "[general]\n",
    "acl.conf": "",
    "udptl.conf": "",
    "pjproject.conf": "",
    "http.conf": "[general]\nenabled = no\n",
    "cli.conf": "",
}


class RenderError(Exception):
    """The PBX configuration cannot be rendered from these settings."""


@dataclass(frozen=True)
class Phone:
    """A SIP endpoint that registers: an agent seat or a supervisor."""

    name: str
    extension: int
    secret: str
    label: str
    role: str


def phone_names(settings: Settings) -> list[tuple[str, int, str]]:
    """(name, extension, role) of every seat and supervisor endpoint, in order."""
    pbx = settings.pbx
    seats = [(f"seat{i:02d}", pbx.seat_extension_base + i, "seat") for i in range(1, pbx.seats + 1)]
    sups = [(f"sup{i:02d}", pbx.supervisor_extension_base + i, "supervisor")
            for i in range(1, pbx.supervisors + 1)]
    return seats + sups


_PASSWORD_FIRST = string.ascii_letters
_PASSWORD_REST = string.ascii_letters + string.digits


def sip_password(length: int = 24) -> str:
    """A random SIP password (~142 bits) that every SIP tool reads as it is: letters and digits
    only, starting with a letter. token_urlsafe's '-' first or '0x' prefix broke SIPp's
    registration of a seat now and then ('Failed to authenticate')."""
    return pysecrets.choice(_PASSWORD_FIRST) + "".join(
        pysecrets.choice(_PASSWORD_REST) for _ in range(length - 1))


# the key in secrets.json of the FastAGI secret: the dialplan passes it on every AGI() call and
# the CTI's FastAGI server refuses a request without it (issue 10, defect 8)
FASTAGI_SECRET = "fastagi"


def load_or_create_secrets(path: Path, settings: Settings) -> dict[str, str]:
    """Each phone's SIP password and the FastAGI secret, generated once and kept in the state
    dir (mode 0600)."""
    current: dict[str, str] = {}
    if path.exists():
        current = json.loads(path.read_text(encoding="utf-8"))
    changed = False
    if not current.get(FASTAGI_SECRET):
        current[FASTAGI_SECRET] = pysecrets.token_hex(24)  # hex: nothing to escape in a URL
        changed = True
    for name, _ext, _role in phone_names(settings):
        if not current.get(name):
            current[name] = sip_password()
            changed = True
    if changed or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(current, fh, indent=1, sort_keys=True)
        tmp.replace(path)
    return current


def fastagi_secret(secrets: Mapping[str, str]) -> str:
    """The FastAGI secret from load_or_create_secrets' map (RenderError if it has none)."""
    secret = secrets.get(FASTAGI_SECRET, "")
    if not re.fullmatch(r"[0-9A-Za-z]{16,}", secret):
        raise RenderError(f"no usable FastAGI secret ({FASTAGI_SECRET!r} in secrets.json: 16+ "
                          "letters and digits)")
    return secret


# the FastAGI secret alone, for the CTI: it needs this one secret, not secrets.json's SIP
# passwords of every phone, so that file stays root's 0600 (stack.secure_cti_files gives this
# one to the CTI's group, 0640)
FASTAGI_SECRET_FILE = "fastagi.secret"


def write_fastagi_secret(path: Path, secrets: Mapping[str, str]) -> Path:
    """Write the FastAGI secret of load_or_create_secrets' map to its own file (0600, the
    owner's; made anew through a temporary file, never through a link planted in its place)."""
    secret = fastagi_secret(secrets)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secret + "\n")
    tmp.replace(path)
    return path


def read_fastagi_secret(path: Path) -> str:
    """The FastAGI secret as rendered into the dialplan (write_fastagi_secret's file), for the
    CTI: read, never made here (a secret the rendered dialplan does not carry would refuse
    every call)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, ValueError) as exc:
        raise RenderError(f"cannot read the FastAGI secret from {path}: {exc}; run `hotline "
                          "config render` (hotline up does)") from None
    return fastagi_secret({FASTAGI_SECRET: text})


def phones(settings: Settings, secrets: Mapping[str, str]) -> list[Phone]:
    out = []
    for name, ext, role in phone_names(settings):
        if name not in secrets:
            raise RenderError(f"no SIP secret for {name}")
        label = (f"坐席{name[4:]}" if role == "seat" else f"值长{name[3:]}")
        out.append(Phone(name=name, extension=ext, secret=secrets[name], label=label, role=role))
    return out


@dataclass(frozen=True)
class AmiLogin:
    username: str
    secret: str


def ami_observer(ami: AmiSettings) -> AmiLogin:
    """The AMI user of tools that log in while the CTI runs (readiness probe, bench tap, trace
    recorder): the CTI's own user allows one session only. Its secret is derived from the CTI's,
    so there is nothing more to keep; its write classes are a subset of the CTI's."""
    secret = hmac.new(ami.secret.encode(), b"hotline ami observer", hashlib.sha256).hexdigest()
    return AmiLogin(f"{ami.username}-observer", secret[:32])


def survey_skills(skills: Sequence[str]) -> str:
    """The dialplan's SURVEY_SKILLS global: the skills with a post-call survey between slashes
    ("/general/repair/"), which hotline-connect matches "/<the call's skill>/" against; "" when
    none has one. A skill's name has no '/' and nothing a regular expression reads specially
    (config.settings.SKILL_PATTERN)."""
    for skill in skills:
        if not re.fullmatch(SKILL_PATTERN, skill):
            raise RenderError(f"[acd] survey_skills: {skill!r} must match {SKILL_PATTERN}")
    return f"/{'/'.join(skills)}/" if skills else ""


def render(settings: Settings, secrets: Mapping[str, str],
           sys_prompts: Mapping[str, Mapping[str, str]], moh_dir: str) -> dict[str, str]:
    """All config files as {file name: text}. Pure: no files are read but the templates."""
    if not settings.ami.secret:
        raise RenderError("HOTLINE_AMI_SECRET is not set: AMI needs a secret from the environment")
    if any(c in settings.ami.secret for c in "\n\r;"):
        raise RenderError("HOTLINE_AMI_SECRET must not contain newlines or ';'")
    if not re.fullmatch(SYSTEMNAME_PATTERN, settings.pbx.systemname):
        raise RenderError(f"[pbx] systemname {settings.pbx.systemname!r} must match "
                          f"{SYSTEMNAME_PATTERN}")
    for key in SYSTEM_PROMPTS:
        for lang in ("zh", "en"):
            if not sys_prompts.get(key, {}).get(lang):
                raise RenderError(f"system prompt sys.{key} ({lang}) is missing from the prompt "
                                  "index: run `hotline prompts build` first")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)
    all_phones = phones(settings, secrets)
    ctx = {
        "pbx": settings.pbx,
        "ami": settings.ami,
        "observer": ami_observer(settings.ami),
        "fastagi": settings.fastagi,
        "fastagi_secret": fastagi_secret(secrets),
        "seats": [p for p in all_phones if p.role == "seat"],
        "supervisors": [p for p in all_phones if p.role == "supervisor"],
        "queue_name": QUEUE_NAME,
        "sys_prompts": sys_prompts,
        "moh_dir": moh_dir,
        "acd": settings.acd,
        "survey_skills": survey_skills(settings.acd.survey_skills),
        "recorder": settings.recorder,
        "speech": settings.speech,
        "recordings_dir": RECORDINGS_IN_CHROOT,
        "sip_tls": {"cert": f"{SIP_TLS_IN_CHROOT}/cert.pem",
                    "key": f"{SIP_TLS_IN_CHROOT}/key.pem",
                    "method": SIP_TLS_METHOD, "ciphers": SIP_TLS_CIPHERS},
    }
    files = dict(STUB_FILES)
    for tpl in sorted(TEMPLATES.glob("*.conf.j2")):
        files[tpl.name.removesuffix(".j2")] = env.get_template(tpl.name).render(ctx)
    return files


def write_config(files: Mapping[str, str], out_dir: Path, asterisk_root: Path) -> None:
    """Write the rendered files, root:hotline-asterisk 0640 in a 0750 folder: pjsip.conf holds
    every SIP password and manager.conf the AMI secrets, and no other local user reads them.
    (Not root, as in unit tests: the modes are set, the owner stays the caller.)"""
    out_dir.mkdir(parents=True, exist_ok=True)
    as_root = os.geteuid() == 0
    if as_root:
        os.chown(out_dir, 0, ASTERISK_GID)
    os.chmod(out_dir, CONFIG_DIR_MODE)
    wanted = dict(files)
    indications = asterisk_root / "etc/asterisk/indications.conf"
    if indications.exists():
        wanted["indications.conf"] = indications.read_text(encoding="utf-8", errors="replace")
    for stale in out_dir.glob("*.conf"):
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        tmp = out_dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if as_root:
            os.chown(tmp, 0, ASTERISK_GID)
        os.chmod(tmp, CONFIG_MODE)
        tmp.replace(out_dir / name)
    log.info("rendered %d PBX config files into %s", len(wanted), out_dir)


@dataclass(frozen=True)
class SipTlsFiles:
    """The SIP TLS certificate and key on the host (Asterisk reads them under SIP_TLS_IN_CHROOT)."""

    cert: Path
    key: Path


def sip_tls_files(settings: Settings) -> SipTlsFiles:
    folder = settings.asterisk_etc / SIP_TLS_DIR
    return SipTlsFiles(folder / "cert.pem", folder / "key.pem")


def _private_copy(src: Path, dst: Path) -> None:
    try:
        data = src.read_bytes()
    except OSError as exc:
        raise RenderError(f"[pbx] sip_tls_cert/sip_tls_key: cannot read {src}: {exc}") from exc
    tmp = dst.with_name(f".{dst.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    tmp.replace(dst)


def write_sip_tls(settings: Settings, now: datetime | None = None) -> SipTlsFiles | None:
    """The certificate transport-tls serves, into the rendered config folder (call it after
    write_config, at every render): a real one copied from [pbx] sip_tls_cert/sip_tls_key, or a
    self-signed one for bind_ip made by config/certs.py (the desktop's maker), kept and made
    again near its end or for another address. The folder and both files are root:
    hotline-asterisk, 0750 and 0640 (as root; otherwise only the modes). None when TLS is off."""
    if not settings.pbx.sip_tls_port:
        return None
    files = sip_tls_files(settings)
    folder = files.cert.parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, CONFIG_DIR_MODE & 0o700)  # nobody but root while the key is written
    if settings.pbx.sip_tls_cert:
        _private_copy(Path(settings.pbx.sip_tls_cert), files.cert)
        _private_copy(Path(settings.pbx.sip_tls_key), files.key)
    else:
        ensure_self_signed(files.cert, files.key, settings.pbx.bind_ip,
                           now or datetime.now(UTC), SIP_TLS_COMMON_NAME)
    as_root = os.geteuid() == 0
    for path, mode in ((files.cert, CONFIG_MODE), (files.key, CONFIG_MODE),
                       (folder, CONFIG_DIR_MODE)):
        if as_root:
            os.chown(path, 0, ASTERISK_GID)
        os.chmod(path, mode)
    return files
