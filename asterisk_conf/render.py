"""Renders the PBX configuration (Asterisk 22 .conf files) from the one settings file."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets as pysecrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2

from config.settings import SYSTEMNAME_PATTERN, Settings
from recorder.naming import IN_CHROOT_DIR as RECORDINGS_IN_CHROOT

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
QUEUE_NAME = "hotline-agents"
# Prompts the dialplan itself plays, for when the IVR cannot: looked up in the prompt index.
SYSTEM_PROMPTS = ("fallback", "all_busy", "no_service", "callback")
ASTERISK_UID_FALLBACK = 101

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


def load_or_create_secrets(path: Path, settings: Settings) -> dict[str, str]:
    """Each phone's SIP password, generated once and kept in the state dir (mode 0600)."""
    current: dict[str, str] = {}
    if path.exists():
        current = json.loads(path.read_text(encoding="utf-8"))
    changed = False
    for name, _ext, _role in phone_names(settings):
        if not current.get(name):
            current[name] = pysecrets.token_urlsafe(18)
            changed = True
    if changed or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(current, fh, indent=1, sort_keys=True)
        tmp.replace(path)
    return current


def phones(settings: Settings, secrets: Mapping[str, str]) -> list[Phone]:
    out = []
    for name, ext, role in phone_names(settings):
        if name not in secrets:
            raise RenderError(f"no SIP secret for {name}")
        label = (f"坐席{name[4:]}" if role == "seat" else f"值长{name[3:]}")
        out.append(Phone(name=name, extension=ext, secret=secrets[name], label=label, role=role))
    return out


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
        "fastagi": settings.fastagi,
        "seats": [p for p in all_phones if p.role == "seat"],
        "supervisors": [p for p in all_phones if p.role == "supervisor"],
        "queue_name": QUEUE_NAME,
        "sys_prompts": sys_prompts,
        "moh_dir": moh_dir,
        "acd": settings.acd,
        "recorder": settings.recorder,
        "recordings_dir": RECORDINGS_IN_CHROOT,
    }
    files = dict(STUB_FILES)
    for tpl in sorted(TEMPLATES.glob("*.conf.j2")):
        files[tpl.name.removesuffix(".j2")] = env.get_template(tpl.name).render(ctx)
    return files


def asterisk_uid(asterisk_root: Path) -> int:
    """The uid of the chroot's `asterisk` user, which must be able to read the config."""
    try:
        for line in (asterisk_root / "etc/passwd").read_text(encoding="utf-8").splitlines():
            parts = line.split(":")
            if parts[0] == "asterisk":
                return int(parts[2])
    except OSError:
        pass
    return ASTERISK_UID_FALLBACK


def write_config(files: Mapping[str, str], out_dir: Path, asterisk_root: Path) -> None:
    """Write the rendered files; manager.conf (the AMI secret) is readable by asterisk alone."""
    out_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(out_dir, 0o755)
    wanted = dict(files)
    indications = asterisk_root / "etc/asterisk/indications.conf"
    if indications.exists():
        wanted["indications.conf"] = indications.read_text(encoding="utf-8", errors="replace")
    uid = asterisk_uid(asterisk_root)
    for stale in out_dir.glob("*.conf"):
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        if name == "manager.conf":
            os.chmod(tmp, 0o600)
            if os.geteuid() == 0:
                os.chown(tmp, uid, -1)
        else:
            os.chmod(tmp, 0o644)
        tmp.replace(out_dir / name)
    log.info("rendered %d PBX config files into %s", len(wanted), out_dir)
