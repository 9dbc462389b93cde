"""AMI users of the test suite's own Asterisk, added to its rendered manager.conf before it starts.

The rendered config gives the CTI one session (allowmultiplelogin = no) and no `system` write, so
the tests log in as users of their own:
  - the harness (HARNESS): hangs up test calls, sets globals, MixMonitors test legs;
  - the CTI's twin (CTI_TWIN): the CTI user's section as rendered (classes, event filters) under
    another name, so a test sees exactly the AMI stream and the rights the CTI has.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from config.settings import Settings

HARNESS = "hotline-test"
CTI_TWIN = "hotline-cti-twin"


@dataclass(frozen=True)
class Login:
    username: str
    secret: str


def _secret(settings: Settings, who: str) -> str:
    return hashlib.sha256(f"{settings.ami.secret}/{who}".encode()).hexdigest()[:24]


def harness(settings: Settings) -> Login:
    return Login(HARNESS, _secret(settings, HARNESS))


def cti_twin(settings: Settings) -> Login:
    return Login(CTI_TWIN, _secret(settings, CTI_TWIN))


def section(text: str, name: str) -> list[str]:
    """The item lines of [name] in a rendered .conf file."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("["):
            inside = line.split("]", 1)[0] == f"[{name}"
            continue
        if inside and line.strip() and not line.lstrip().startswith(";"):
            out.append(line)
    return out


def add_test_users(settings: Settings) -> None:
    path = settings.asterisk_etc / "manager.conf"
    text = path.read_text(encoding="utf-8")
    cti = section(text, settings.ami.username)
    assert cti, f"no [{settings.ami.username}] in {path}"
    twin = [ln for ln in cti if ln.split("=", 1)[0].strip() not in ("secret", "allowmultiplelogin")]
    h, t = harness(settings), cti_twin(settings)
    text += (f"\n; ---- added by the test suite (tests/support/ami_users.py)\n"
             f"[{h.username}]\nsecret = {h.secret}\ndeny = 0.0.0.0/0.0.0.0\n"
             "permit = 127.0.0.1/255.255.255.255\nread = all\n"
             "write = system,call,agent,user,reporting,originate,dtmf\n"
             "allowmultiplelogin = yes\nwritetimeout = 5000\n"
             # every event but those a hostile caller id forged: a line that starts a second
             # event inside one (raw CR/LF in Newchannel's caller id, before the dialplan
             # cleans it) would crash the recorder's parser (panoramisk)
             "eventfilter(action(exclude),method(regex)) = [[:cntrl:]]Event: \n"
             f"\n[{t.username}]\nsecret = {t.secret}\nallowmultiplelogin = yes\n"
             + "\n".join(twin) + "\n")
    path.write_text(text, encoding="utf-8")
