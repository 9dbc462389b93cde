"""The rendered PBX config says what issue 10 asks of it: caller ids cleaned first thing on every
carrier call and filtered wherever a UserEvent carries them (defect 1), AMI least privilege and no
shell module (3), a security log that the fail2ban jail reads (9). The same claims are tested on a
real Asterisk in tests/integration/test_security_pbx.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asterisk_conf import fail2ban
from asterisk_conf.render import SYSTEM_PROMPTS, ami_observer, load_or_create_secrets, render
from config.settings import Settings, load_settings

SYS_PROMPTS = {key: {lang: f"/p/{lang}/sys.{key}" for lang in ("zh", "en")}
               for key in SYSTEM_PROMPTS}
CALLER_SHAPED = ("CALLERID(", "CONNECTEDLINE(", "HOTLINE_ACCOUNT", "HOTLINE_CALLBACK_NUMBER")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(env={"HOTLINE_AMI_SECRET": "s3cret-from-env"})


@pytest.fixture(scope="module")
def files(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from dataclasses import replace
    # the optional parts too: the callback (outbound trunk) and the bench's extensions
    s = replace(settings, pbx=replace(settings.pbx, outbound_trunk="127.0.0.1:5099"))
    secrets = load_or_create_secrets(tmp_path_factory.mktemp("s") / "secrets.json", s)
    out = render(s, secrets, SYS_PROMPTS, "/moh")
    return out


def contexts(text: str) -> dict[str, list[tuple[str, str]]]:
    """{context: [(exten, app of each priority)]}, in order."""
    out: dict[str, list[tuple[str, str]]] = {}
    current = ""
    exten = ""
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip() if not raw.lstrip().startswith("exten") else raw
        line = line.strip()
        if line.startswith("["):
            current = line[1:].split("]", 1)[0]
            out[current] = []
        elif line.startswith("exten =>"):
            exten, _prio, app = line.removeprefix("exten =>").strip().split(",", 2)
            out[current].append((exten, app))
        elif line.startswith("same =>"):
            _prio, app = line.removeprefix("same =>").strip().split(",", 1)
            out[current].append((exten, app))
    return out


def test_every_carrier_extension_cleans_the_caller_id_at_its_first_priority(
        files: dict[str, str]) -> None:
    plan = contexts(files["extensions.conf"])
    firsts: dict[str, str] = {}
    for exten, app in plan["from-carrier"]:
        firsts.setdefault(exten, app)
    assert firsts, "no carrier extensions"
    for exten, app in firsts.items():
        # straight to the sanitiser, or away to a context whose first step is the sanitiser
        if app.startswith("Goto("):
            target = app[5:].split(",")[0]
            app = plan[target][0][1]
        assert app == "Gosub(hotline-sanitise,s,1)", (exten, app)
    [(_, clean), (_, ret)] = plan["hotline-sanitise"]
    assert clean.startswith("Set(CALLERID(all)=") and ret == "Return()"
    assert "${FILTER(${CID_NAME_CHARS},${CALLERID(name)}):0:${CID_NAME_MAX}}" in clean
    assert "${FILTER(${CID_NUM_CHARS},${CALLERID(num)}):0:${CID_NUM_MAX}}" in clean
    glob = dict(line.split(" = ", 1) for line in files["extensions.conf"].splitlines()
                if line.startswith("CID_"))
    # no CR, LF, ',', '|', '$', '{', quotes, '<', '>', '&' or ';' in either charset
    for key in ("CID_NUM_CHARS", "CID_NAME_CHARS"):
        assert not set(glob[key]) & set("\r\n,|${}\"'<>&;()"), glob[key]
    assert int(glob["CID_NUM_MAX"]) <= 32 and int(glob["CID_NAME_MAX"]) <= 64


def unfiltered(app: str) -> str:
    """The application line without its ${FILTER(...)} expressions (parentheses balanced)."""
    out, i = [], 0
    while i < len(app):
        if app.startswith("${FILTER(", i):
            depth, j = 0, i + 1
            while j < len(app):
                depth += {"{": 1, "}": -1}.get(app[j], 0)
                j += 1
                if depth == 0:
                    break
            i = j
        else:
            out.append(app[i])
            i += 1
    return "".join(out)


def test_no_userevent_carries_a_caller_shaped_value_unfiltered(files: dict[str, str]) -> None:
    text = files["extensions.conf"]
    apps = [app for ctx in contexts(text).values() for _exten, app in ctx]
    events = [app for app in apps if app.startswith("UserEvent(")]
    assert len(events) >= 10
    # UserEvents, the recording's AstDB note ('|'-separated) and the callback's Dial
    checked = events + [a for a in apps if a.startswith(("Set(DB(", "Dial(PJSIP/${"))]
    for app in checked:
        left = unfiltered(app)
        assert not [s for s in CALLER_SHAPED if s in left], app
    assert unfiltered("a ${FILTER(x,${CALLERID(num)}):0:3} b") == "a  b"
    assert unfiltered("Caller: ${CONNECTEDLINE(num)}") == "Caller: ${CONNECTEDLINE(num)}"


def _sections(text: str) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    cur: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("["):
            cur = out.setdefault(line[1:].split("]", 1)[0], {})
        elif "=" in line:
            k, v = (p.strip() for p in line.split("=", 1))
            cur.setdefault(k, []).append(v)
    return out


def test_ami_users_have_no_system_command_or_config_write(files: dict[str, str],
                                                         settings: Settings) -> None:
    conf = _sections(files["manager.conf"])
    assert conf["general"]["allowmultiplelogin"] == ["no"]
    cti = conf[settings.ami.username]
    assert cti["allowmultiplelogin"] == ["no"]
    assert set(cti["write"][0].split(",")) == {"call", "originate", "agent", "reporting"}
    # dtmf: the keys ChanSpy reads on a supervisor's channel (recorder.supervision_policy);
    # the CTI never needs DTMFBegin, which would double the key traffic
    assert set(cti["read"][0].split(",")) == {"system", "call", "agent", "user", "dtmf"}
    assert "eventfilter(action(exclude),name(Newchannel))" in cti
    assert "eventfilter(action(exclude),name(DTMFBegin))" in cti
    obs = conf[ami_observer(settings.ami).username]
    assert set(obs["write"][0].split(",")) <= set(cti["write"][0].split(","))
    for name, sec in conf.items():
        if name == "general":
            continue
        classes = set(sec["write"][0].split(","))
        assert not classes & {"system", "command", "config", "all"}, name
        assert sec["permit"] == ["127.0.0.1/255.255.255.255"], name
    assert ami_observer(settings.ami).secret != settings.ami.secret


def test_no_shell_module_is_loaded_and_the_security_log_is(files: dict[str, str]) -> None:
    loaded = re.findall(r"^load => (\S+)", files["modules.conf"], flags=re.M)
    assert not {"app_system.so", "func_shell.so", "app_externalivr.so", "pbx_lua.so"} & set(
        loaded)
    assert "res_security_log.so" in loaded
    assert re.search(r"^security\.log => security$", files["logger.conf"], flags=re.M)
    assert re.search(r"^live_dangerously = no$", files["asterisk.conf"], flags=re.M)


def test_the_jail_bans_sip_failures_from_the_security_log(tmp_path: Path) -> None:
    conf = fail2ban.render(security_log=Path("/s/security.log"), run_dir=Path("/r"),
                           sip_port=5060, ignore=("192.0.2.10/32",),
                           policy=fail2ban.BanPolicy(maxretry=5, findtime_s=600, bantime_s=3600))
    jail = _sections(conf["jail.local"])
    j = jail[fail2ban.JAIL]
    assert j["filter"] == ["asterisk"] and j["logpath"] == ["/s/security.log"]
    assert (j["maxretry"], j["findtime"], j["bantime"]) == (["5"], ["600"], ["3600"])
    assert 'port="5060"' in j["action"][0] and "nftables" in j["action"][0]
    # a carrier is never banned
    assert "192.0.2.10/32" in jail["DEFAULT"]["ignoreip"][0]
    fail2ban.write(conf, tmp_path / "f2b")
    assert (tmp_path / "f2b" / "filter.d" / "asterisk.conf").exists()
