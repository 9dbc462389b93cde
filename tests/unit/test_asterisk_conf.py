"""Unit tests of asterisk_conf.render: the rendered PBX config parses as Asterisk config and says
what the hotline needs (seats, AMI on loopback, the carrier trunk, the 95598 dialplan)."""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from asterisk.config import Config

from asterisk_conf.render import (
    ASTERISK_GID,
    SYSTEM_PROMPTS,
    RenderError,
    load_or_create_secrets,
    render,
    write_config,
)
from config.settings import Settings, load_settings

AMI_SECRET = "s3cret-from-env"
SYS_PROMPTS = {key: {lang: f"/p/{lang}/sys.{key}" for lang in ("zh", "en")}
               for key in SYSTEM_PROMPTS}

# ------------------------------------------------------------------ Asterisk config, via pyst2

# pyst2's Category insists a header line ends in ']', so Asterisk's template syntax
# ("[seat01](seat-auth)", "[endpoint-common](!)") is a ParseError there. Headers are rewritten
# to plain "[name]" before pyst2 parses, keeping the line count, and the "(...)" part is kept
# by line number. Item values keep pyst2's leading space, and "exten => x" gives name "exten",
# style ">" and value "x".
_TEMPLATE_HEADER = re.compile(r"^\s*\[([^\]]+)\]\(([^)]*)\)\s*(;.*)?$")


class AsteriskConfig(Config):  # type: ignore[misc]
    def __init__(self, filename: Path) -> None:
        self.header_options: dict[int, list[str]] = {}
        super().__init__(str(filename))

    def load(self) -> None:  # pyst2 opens with the locale encoding and never closes the file
        lines = Path(self.filename).read_text(encoding="utf-8").splitlines(keepends=True)
        for n, line in enumerate(lines, 1):
            m = _TEMPLATE_HEADER.match(line)
            if m:
                self.header_options[n] = [o.strip() for o in m.group(2).split(",")]
                lines[n - 1] = f"[{m.group(1)}]\n"
        self.raw_lines = lines


@dataclass
class Section:
    name: str
    line: int
    is_template: bool
    parents: list[str]
    items: list[tuple[str, str]] = field(default_factory=list)

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.items if k == name]

    def get(self, name: str) -> str:
        vals = self.values(name)
        assert len(vals) == 1, f"[{self.name}] has {name} = {vals}"
        return vals[0]


def parse(path: Path) -> list[Section]:
    """Every section of an Asterisk .conf file, with template options applied (Asterisk copies
    a template's items first, then the section's own)."""
    cfg = AsteriskConfig(path)
    own: list[Section] = []
    for cat in cfg.categories:
        opts = cfg.header_options.get(cat.number, [])
        sec = Section(cat.name, cat.number, "!" in opts, [o for o in opts if o and o != "!"])
        sec.items = [(i.name, i.value.strip()) for i in cat.items]
        own.append(sec)
    templates = {s.name: s for s in own if s.is_template}
    for sec in own:
        inherited: list[tuple[str, str]] = []
        for parent in sec.parents:
            assert parent in templates, f"{path.name}:{sec.line}: no template [{parent}](!)"
            inherited += templates[parent].items
        sec.items = inherited + sec.items
    return [s for s in own if not s.is_template]


def sections(conf: list[Section], name: str) -> list[Section]:
    return [s for s in conf if s.name == name]


def one(conf: list[Section], name: str) -> Section:
    [sec] = sections(conf, name)
    return sec


def pjsip_objects(conf: list[Section]) -> dict[tuple[str, str], Section]:
    """(type, name) -> section: one pjsip name may be an endpoint, an aor and an auth."""
    out: dict[tuple[str, str], Section] = {}
    for sec in conf:
        key = (sec.get("type"), sec.name)
        assert key not in out, f"two {key[0]} objects named {key[1]}"
        out[key] = sec
    return out


@dataclass
class Exten:
    context: str
    exten: str
    priorities: list[str]  # the applications, priority 1 first


def dialplan(conf: list[Section]) -> dict[tuple[str, str], Exten]:
    """(context, extension) -> its priorities, from exten => / same => lines."""
    out: dict[tuple[str, str], Exten] = {}
    for sec in conf:
        current: Exten | None = None
        for name, value in sec.items:
            if name == "exten":
                ext, prio, app = value.split(",", 2)
                assert prio == "1", f"[{sec.name}] {value}: only priority 1 then 'same => n'"
                assert (sec.name, ext) not in out, f"[{sec.name}] {ext} defined twice"
                current = out[(sec.name, ext)] = Exten(sec.name, ext, [app])
            elif name == "same":
                prio, app = value.split(",", 1)
                # n, or n(label) for a Goto target inside the extension
                assert current is not None and re.fullmatch(r"n(\([a-z_]+\))?", prio), \
                    f"[{sec.name}] stray same => {value}"
                current.priorities.append(app)
    return out


def includes(conf: list[Section], context: str) -> list[str]:
    return one(conf, context).values("include")


# ------------------------------------------------------------------------------ rendering


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(env={"HOTLINE_AMI_SECRET": AMI_SECRET})


@pytest.fixture(scope="module")
def rendered(settings: Settings, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, dict[str, str], dict[str, list[Section]]]:
    tmp = tmp_path_factory.mktemp("pbx")
    secrets = load_or_create_secrets(tmp / "state" / "sip-secrets.json", settings)
    files = render(settings, secrets, SYS_PROMPTS, "/var/lib/hotline/prompts/moh")
    out = tmp / "etc"
    write_config(files, out, Path("/nonexistent"))
    parsed = {p.name: parse(p) for p in sorted(out.glob("*.conf"))}
    return out, secrets, parsed


def test_every_rendered_file_is_written_and_parses_as_asterisk_config(rendered: tuple) -> None:
    out, _secrets, parsed = rendered

    assert {p.name for p in out.iterdir()} == set(parsed)
    for needed in ("asterisk.conf", "modules.conf", "pjsip.conf", "extensions.conf",
                   "manager.conf", "queues.conf", "rtp.conf", "musiconhold.conf", "logger.conf"):
        assert parsed[needed], f"{needed} has no sections"
    assert not list(out.glob(".*.tmp"))


def test_file_modes(rendered: tuple) -> None:
    """pjsip.conf (SIP passwords) and manager.conf (AMI secrets) among them: Asterisk's group
    reads the config, no other local user does (as root the owner is root:hotline-asterisk)."""
    out, _secrets, _parsed = rendered

    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert set(modes.values()) == {0o640}
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    if os.geteuid() == 0:
        assert {(p.stat().st_uid, p.stat().st_gid) for p in out.iterdir()} == {(0, ASTERISK_GID)}
        assert (out.stat().st_uid, out.stat().st_gid) == (0, ASTERISK_GID)


def test_fifty_seats_and_the_supervisors_are_endpoints(settings: Settings,
                                                       rendered: tuple) -> None:
    _out, secrets, parsed = rendered
    objs = pjsip_objects(parsed["pjsip.conf"])

    seats = sorted(n for t, n in objs if t == "endpoint" and n.startswith("seat"))
    sups = sorted(n for t, n in objs if t == "endpoint" and n.startswith("sup"))
    assert seats == [f"seat{i:02d}" for i in range(1, 51)]
    assert sups == [f"sup{i:02d}" for i in range(1, settings.pbx.supervisors + 1)]
    assert settings.pbx.supervisors >= 1
    for name in seats + sups:
        ep, aor, auth = objs[("endpoint", name)], objs[("aor", name)], objs[("auth", name)]
        assert ep.get("context") == ("from-seat" if name in seats else "from-supervisor")
        assert (ep.get("aors"), ep.get("auth")) == (name, name)
        # G.722 too: a wideband phone's menus are heard at 16 kHz (issue 13)
        assert ep.get("disallow") == "all" and ep.get("allow") == "ulaw,alaw,g722"
        assert aor.get("max_contacts") == "1"
        assert (auth.get("auth_type"), auth.get("username")) == ("userpass", name)
        assert auth.get("password") == secrets[name]
    callerids = {n: objs[("endpoint", n)].get("callerid") for n in seats}
    assert callerids["seat01"] == '"坐席01" <8001>'
    assert callerids["seat50"] == '"坐席50" <8050>'


def test_every_phone_has_its_own_secret(rendered: tuple) -> None:
    _out, secrets, parsed = rendered
    objs = pjsip_objects(parsed["pjsip.conf"])

    passwords = [s.get("password") for (t, _n), s in objs.items() if t == "auth"]
    assert len(passwords) == 55
    assert len(set(passwords)) == len(passwords)
    assert all(len(p) >= 16 for p in passwords)
    assert AMI_SECRET not in passwords
    # secrets.json also keeps the FastAGI secret (the dialplan's ?key=), which no phone shares
    assert sorted(passwords) == sorted(v for k, v in secrets.items() if k != "fastagi")
    assert secrets["fastagi"] not in passwords


def test_secrets_are_kept_between_renders(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "sip-secrets.json"

    first = load_or_create_secrets(path, settings)
    again = load_or_create_secrets(path, settings)

    assert first == again
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_extensions_8001_to_8050_ring_their_seat_from_from_seat(rendered: tuple) -> None:
    _out, _secrets, parsed = rendered
    ext = parsed["extensions.conf"]
    plan = dialplan(ext)

    for i in range(1, 51):
        dial = plan[("from-seat", str(8000 + i))].priorities[0]
        assert dial.startswith(f"Dial(PJSIP/seat{i:02d},")
    for i in range(1, 6):
        assert plan[("from-seat", str(8900 + i))].priorities[0].startswith(
            f"Dial(PJSIP/sup{i:02d},")
    # supervisors reach the same extensions
    assert includes(ext, "from-supervisor") == ["from-seat"]


def test_ami_listens_on_loopback_only_with_the_secret_from_the_environment(
        rendered: tuple) -> None:
    _out, _secrets, parsed = rendered
    manager = parsed["manager.conf"]

    general = one(manager, "general")
    assert general.get("enabled") == "yes"
    assert general.get("bindaddr") == "127.0.0.1"
    assert general.get("port") == "5038"
    assert general.get("webenabled") == "no"
    user = one(manager, "hotline")
    assert user.get("secret") == AMI_SECRET
    assert user.values("deny") == ["0.0.0.0/0.0.0.0"]
    permits = [ipaddress.ip_network(p.replace("/255.255.255.255", "/32"))
               for p in user.values("permit")]
    assert permits == [ipaddress.ip_network("127.0.0.1/32")]
    # the CTI, and the tools that log in while it runs (its own user allows one session)
    assert [s.name for s in manager] == ["general", "hotline", "hotline-observer"]


def test_ami_filters_out_test_events(rendered: tuple) -> None:
    _out, _secrets, parsed = rendered
    user = one(parsed["manager.conf"], "hotline")

    filters = [k for k, _v in user.items if k.startswith("eventfilter")]
    assert "eventfilter(action(exclude),name(TestEvent))" in filters


def test_carrier_calls_from_127_0_0_1_are_identified_as_the_carrier(rendered: tuple) -> None:
    _out, _secrets, parsed = rendered
    objs = pjsip_objects(parsed["pjsip.conf"])

    identify = objs[("identify", "carrier")]
    assert identify.get("endpoint") == "carrier"
    nets = [ipaddress.ip_network(m) for m in identify.values("match")]
    assert any(ipaddress.ip_address("127.0.0.1") in n for n in nets)
    assert objs[("endpoint", "carrier")].get("context") == "from-carrier"
    assert "auth" not in dict(objs[("endpoint", "carrier")].items)
    transport = objs[("transport", "transport-udp")]
    assert transport.get("bind") == "127.0.0.1:5060"


def _expand(expr: str, variables: Mapping[str, str]) -> str:
    """Asterisk's ${VAR} and ${IF($["a" = "b"]?x:y)}, as far as the 95598 exit needs."""
    expr = re.sub(r"\$\{([A-Z_]+)\}", lambda m: variables.get(m.group(1), ""), expr)

    def if_(m: re.Match[str]) -> str:
        return m.group(3) if m.group(1) == m.group(2) else m.group(4)

    return re.sub(r'\$\{IF\(\$\["([^"]*)" = "([^"]*)"\]\?([^:]*):([^)]*)\)\}', if_, expr)


def test_95598_runs_the_ivr_over_fastagi_and_falls_back_when_it_did_not_decide(
        settings: Settings, rendered: tuple) -> None:
    _out, secrets, parsed = rendered
    ext = parsed["extensions.conf"]
    plan = dialplan(ext)
    globals_ = dict(one(ext, "globals").items)

    steps = plan[("from-carrier", "95598")].priorities
    agi = [i for i, app in enumerate(steps) if app.startswith("AGI(")]
    assert len(agi) == 1
    # ?key= is the FastAGI secret the CTI requires (issue 10, defect 8)
    assert steps[agi[0]] == \
        f"AGI(${{FASTAGI}}/ivr?key={secrets['fastagi']},${{CHANNEL(linkedid)}})"
    assert globals_["FASTAGI"] == f"agi://{settings.fastagi.host}:{settings.fastagi.port}"
    assert globals_["FASTAGI"] == "agi://127.0.0.1:4573"
    # a value left from before cannot leak: HOTLINE_NEXT is cleared before the AGI runs
    assert "Set(HOTLINE_NEXT=)" in steps[:agi[0]]
    assert steps.index("Answer()") < agi[0]
    goto = steps[agi[0] + 1]
    assert goto.startswith("Goto(hotline-next,")

    def exit_for(next_: str) -> str:
        target = _expand(goto, {"HOTLINE_NEXT": next_})
        m = re.fullmatch(r"Goto\(hotline-next,([^,]*),1\)", target)
        assert m, target
        return m.group(1)

    assert exit_for("") == "fallback"
    assert exit_for("transfer") == "transfer"
    assert exit_for("hangup") == "hangup"
    for outcome in ("fallback", "transfer", "hangup"):
        assert ("hotline-next", outcome) in plan
    # the fallback plays the system prompt, then queues the caller for an agent
    fallback = plan[("hotline-next", "fallback")].priorities
    assert any("FALLBACK_ZH" in app and app.startswith("Playback(") for app in fallback)
    assert fallback[-1] == "Goto(transfer,1)"
    # with a skill, even when the IVR died before choosing one (the CTI routes no caller
    # without a skill: the fault harness found callers stranded in hotline-wait)
    assert fallback[-2] == 'Set(HOTLINE_SKILL=${IF($["${HOTLINE_SKILL}" = ""]' \
                           '?general:${HOTLINE_SKILL})})'
    assert globals_["FALLBACK_ZH"] == "/p/zh/sys.fallback"
    # a transferred caller is held by Asterisk for the ACD (hotline-wait), which fails over to
    # the native queue when the CTI's heartbeat goes stale
    assert plan[("hotline-next", "transfer")].priorities[-1] == "Goto(hotline-wait,s,1)"
    wait = plan[("hotline-wait", "s")].priorities
    assert any("GLOBAL(HOTLINE_HEARTBEAT)" in app and "failover,1" in app for app in wait)
    assert any(app.startswith("Queue(${QUEUE}") for app in
               plan[("hotline-wait", "failover")].priorities)


def test_the_queue_has_every_seat_as_a_member(rendered: tuple) -> None:
    _out, _secrets, parsed = rendered
    queue = one(parsed["queues.conf"], "hotline-agents")

    members = [m.split(",")[0] for m in queue.values("member")]
    assert members == [f"PJSIP/seat{i:02d}" for i in range(1, 51)]


@pytest.mark.parametrize("secret", ["", "with;semicolon", "two\nlines"])
def test_render_refuses_a_missing_or_unsafe_ami_secret(secret: str, tmp_path: Path) -> None:
    settings = load_settings(env={"HOTLINE_AMI_SECRET": secret} if secret else {})
    secrets = load_or_create_secrets(tmp_path / "s.json", settings)

    with pytest.raises(RenderError, match="HOTLINE_AMI_SECRET"):
        render(settings, secrets, SYS_PROMPTS, "/moh")


def test_render_refuses_missing_system_prompts(settings: Settings, tmp_path: Path) -> None:
    secrets = load_or_create_secrets(tmp_path / "s.json", settings)
    prompts = {k: dict(v) for k, v in SYS_PROMPTS.items()}
    del prompts["all_busy"]["en"]

    with pytest.raises(RenderError, match="sys.all_busy"):
        render(settings, secrets, prompts, "/moh")


def test_rewriting_removes_stale_files_and_keeps_modes(settings: Settings, tmp_path: Path,
                                                      rendered: tuple) -> None:
    _out, secrets, _parsed = rendered
    out = tmp_path / "etc"
    out.mkdir()
    (out / "sip.conf").write_text("[general]\n", encoding="utf-8")
    (out / "manager.conf").write_text("[general]\n", encoding="utf-8")
    (out / "manager.conf").chmod(0o644)
    out.chmod(0o755)

    write_config(render(settings, secrets, SYS_PROMPTS, "/moh"), out, Path("/nonexistent"))

    assert not (out / "sip.conf").exists()
    assert stat.S_IMODE((out / "manager.conf").stat().st_mode) == 0o640
    assert AMI_SECRET in (out / "manager.conf").read_text(encoding="utf-8")
    by_type: dict[int, list[str]] = defaultdict(list)
    for p in out.iterdir():
        by_type[stat.S_IMODE(p.stat().st_mode)].append(p.name)
    assert list(by_type) == [0o640]
    assert stat.S_IMODE(out.stat().st_mode) == 0o750


# With autoload = no, a dialplan application or function whose module is not loaded fails only
# when a call reaches it. Which module provides each one Asterisk 22 needs here:
PROVIDER = {
    "AGI": "res_agi.so", "Dial": "app_dial.so", "Playback": "app_playback.so",
    "Queue": "app_queue.so", "UserEvent": "app_userevent.so", "Read": "app_read.so",
    "Record": "app_record.so", "PlayTones": "app_playtones.so",
    "StopPlayTones": "app_playtones.so",
    "IF": "func_logic.so", "CHANNEL": "func_channel.so", "CHANNELS": "func_channel.so",
    "TIMEOUT": "func_timeout.so",
    "CALLERID": "func_callerid.so", "DB": "func_db.so", "DBdeltree": "app_db.so",
    "ExecIf": "app_exec.so",
    "Gosub": "app_stack.so", "Return": "app_stack.so", "LOCAL": "app_stack.so",
    "StartMusicOnHold": "res_musiconhold.so", "StopMusicOnHold": "res_musiconhold.so",
    "ChanSpy": "app_chanspy.so",
    "MixMonitor": "app_mixmonitor.so", "StopMixMonitor": "app_mixmonitor.so",
    "STRFTIME": "func_strings.so", "CONNECTEDLINE": "func_callerid.so",
    "StackPop": "app_stack.so", "DIALPLAN_EXISTS": "func_dialplan.so",
    "MusicOnHold": "res_musiconhold.so", "SoftHangup": "app_softhangup.so",
    "FILTER": "func_strings.so", "GLOBAL": "func_global.so", "IMPORT": "func_logic.so",
    "EXPORT": "func_export.so", "ConfBridge": "app_confbridge.so",
}
# the pbx core (pbx_builtins; Bridge() is main/features.c)
BUILTIN = {"NoOp", "Set", "Answer", "Hangup", "Goto", "GotoIf", "WaitExten", "Background",
           "Wait", "Bridge"}


def test_every_dialplan_application_and_function_is_loaded(rendered: tuple) -> None:
    _out, _secrets, parsed = rendered
    [modules] = parsed["modules.conf"]
    loaded = set(modules.values("load"))
    assert modules.get("autoload") == "no"
    plan = dialplan(parsed["extensions.conf"])

    used: set[str] = {"Read"}  # the IVR runs Read() through AGI EXEC
    for ext in plan.values():
        for app in ext.priorities:
            used.add(app.split("(", 1)[0])
            used.update(re.findall(r"\$\{([A-Z]+)\(", app))
    unknown = used - BUILTIN - set(PROVIDER)
    assert not unknown, f"add the providing module of {unknown} to PROVIDER"
    missing = {name: PROVIDER[name] for name in used - BUILTIN if PROVIDER[name] not in loaded}
    assert missing == {}
    # and what the other config files need
    for module in ("pbx_config.so", "chan_pjsip.so", "res_pjsip.so", "res_musiconhold.so",
                   "res_pjsip_endpoint_identifier_ip.so", "res_pjsip_endpoint_identifier_user.so",
                   "res_pjsip_authenticator_digest.so", "res_pjsip_registrar.so",
                   "format_wav.so", "codec_ulaw.so", "codec_alaw.so"):
        assert module in loaded, module


def _render_parsed(settings: Settings, tmp: Path) -> dict[str, list[Section]]:
    secrets = load_or_create_secrets(tmp / "state" / "sip-secrets.json", settings)
    files = render(settings, secrets, SYS_PROMPTS, "/var/lib/hotline/prompts/moh")
    write_config(files, tmp / "etc", Path("/nonexistent"))
    return {p.name: parse(p) for p in sorted((tmp / "etc").glob("*.conf"))}


def test_callbacks_are_offered_only_with_an_outbound_trunk(settings: Settings,
                                                           tmp_path: Path) -> None:
    from dataclasses import replace

    # the shipped demo's trunk is `make up`'s simulated carrier (hotline/stack.py)
    assert settings.pbx.outbound_trunk == "127.0.0.1:5070"
    without = _render_parsed(replace(settings, pbx=replace(settings.pbx, outbound_trunk="")),
                             tmp_path / "without")
    plan = plan_without = dialplan(without["extensions.conf"])
    assert ("hotline-wait", "${CALLBACK_KEY}") not in plan
    assert not any(ctx == "hotline-callback" for ctx, _ in plan)
    assert ("endpoint", "carrier-out") not in pjsip_objects(without["pjsip.conf"])

    trunk = replace(settings, pbx=replace(settings.pbx, outbound_trunk="192.0.2.7:5060"))
    with_ = _render_parsed(trunk, tmp_path / "with")
    plan = dialplan(with_["extensions.conf"])
    key = plan[("hotline-wait", "${CALLBACK_KEY}")].priorities
    # a customer we are calling back (hotline-callback-due) keeps waiting: no callback again
    assert key[0] == 'GotoIf($["${HOTLINE_CALLED_BACK}" = "1"]?s,loop)'
    assert key[1].startswith("UserEvent(HotlineCallback,") and key[-1] == "Hangup(16)"
    # the reserved agent answered: the CTI hears of it, then the customer is dialled
    answered = plan[("hotline-callback", "s")].priorities
    assert answered[0].startswith(
        "UserEvent(HotlineCallbackAnswered,CallId: ${HOTLINE_CALLBACK_OF}")
    # the number is filtered again where it is dialled: a ',' or '&' would add Dial arguments
    assert any(app.startswith(
        "Dial(PJSIP/${FILTER(${CID_NUM_CHARS},${HOTLINE_CALLBACK_NUMBER})}@carrier-out,")
        for app in answered)
    assert plan[("hotline-callback", "h")].priorities[0].startswith(
        "UserEvent(HotlineCallbackEnded,")
    assert plan[("hotline-callback", "failed")].priorities[0].startswith(
        "UserEvent(HotlineCallbackFailed,")
    # an agent's click-to-call: the same events as a callback's legs, the seat's leg recorded
    # before the customer (filtered again) is dialled; none without a trunk
    clicked = plan[("hotline-click-to-call", "s")].priorities
    assert clicked[0].startswith(
        "UserEvent(HotlineCallbackAnswered,CallId: ${HOTLINE_CALLBACK_OF}")
    record = clicked.index("Gosub(hotline-record,s,1(click_to_call))")
    dial = next(i for i, app in enumerate(clicked) if app.startswith(
        "Dial(PJSIP/${FILTER(${CID_NUM_CHARS},${HOTLINE_CALLBACK_NUMBER})}@carrier-out,"))
    assert record < dial
    assert plan[("hotline-click-to-call", "h")].priorities[0].startswith(
        "UserEvent(HotlineCallbackEnded,")
    assert plan[("hotline-click-to-call", "failed")].priorities[0].startswith(
        "UserEvent(HotlineCallbackFailed,")
    assert not any(ctx == "hotline-click-to-call" for ctx, _ in plan_without)
    # a return visit: the survey asked up to three times, the key (or none) told to the CTI
    visit = plan[("hotline-return-visit", "s")].priorities
    assert sum(app.startswith("Read(key,") for app in visit) == 1
    told = [app for app in visit if app.startswith("UserEvent(HotlineOutboundResult,")]
    assert told == ["UserEvent(HotlineOutboundResult,Attempt: ${HOTLINE_ATTEMPT},Key: none)",
                    "UserEvent(HotlineOutboundResult,Attempt: ${HOTLINE_ATTEMPT},Key: ${key})"]
    assert not any(ctx == "hotline-return-visit" for ctx, _ in plan_without)
    objs = pjsip_objects(with_["pjsip.conf"])
    assert objs[("aor", "carrier-out")].get("contact") == "sip:192.0.2.7:5060"
    assert objs[("endpoint", "carrier-out")].get("from_user") == "95598"
    # still only one way in for the carrier's own calls
    assert ("identify", "carrier-out") not in objs


def test_sip_passwords_are_letters_and_digits_starting_with_a_letter() -> None:
    from asterisk_conf.render import sip_password

    for _ in range(2000):
        pw = sip_password()
        assert len(pw) == 24 and pw.isascii() and pw.isalnum() and pw[0].isalpha()


def test_the_post_call_survey_is_rendered_for_the_skills_that_have_one(
        settings: Settings, rendered: tuple, tmp_path: Path) -> None:
    from dataclasses import replace

    from asterisk_conf.render import survey_skills

    _out, _secrets, parsed = rendered
    # the shipped demo surveys the skills its IVR routes to
    assert settings.acd.survey_skills == ("general", "repair", "english")
    assert one(parsed["extensions.conf"], "globals").get("SURVEY_SKILLS").strip() == \
        "/general/repair/english/"
    plan = dialplan(parsed["extensions.conf"])
    connect = plan[("hotline-connect", "_seat.")].priorities
    # the seat it rates, only where the call's skill is among them; then Dial's g, only then
    assert 'Set(HOTLINE_SURVEY_SEAT=${IF($["${SURVEY_SKILLS}" : ".*/${HOTLINE_SKILL}/"]' \
        '?${EXTEN}:)})' in connect
    [dial] = [app for app in connect if app.startswith("Dial(")]
    assert dial.endswith('F(hotline-hold^agent^1)${IF($["${HOTLINE_SURVEY_SEAT}" != ""]?g)})')
    done = connect.index('GotoIf($["${HOTLINE_SURVEY_SEAT}" != ""]?hotline-survey,s,1)')
    assert connect[done + 1] == "Hangup()"
    # the survey: the CTI told first, one key asked up to three times, the key or none told
    survey = plan[("hotline-survey", "s")].priorities
    offered = survey.index("UserEvent(HotlineSurveyOffered,Seat: ${HOTLINE_SURVEY_SEAT},"
                           "Skill: ${HOTLINE_SKILL})")
    # each thing the CTI is told is kept in AstDB first, for a CTI that is away (its recover)
    notes = [app for app in survey if app.startswith("Set(DB(${HOTLINE_SURVEY_NOTE})=")]
    assert [n.split("|")[2] for n in notes] == ["-", "none", "${HOTLINE_SURVEY_KEY}"]
    assert survey.index(notes[0]) < offered < survey.index(notes[1])
    assert ("Set(HOTLINE_SURVEY_NOTE=hotline-rec/${STRFTIME(${HOTLINE_SURVEY_AT},UTC,%Y%m%d)}"
            "/sv/${CHANNEL(linkedid)})") in survey
    [read] = [app for app in survey if app.startswith("Read(")]
    assert read == "Read(HOTLINE_SURVEY_KEY,${HOTLINE_SURVEY_ASK},1,,1,6)"
    assert 'GotoIf($["${HOTLINE_SURVEY_KEY}" : "[1-5]"]?heard)' in survey
    assert "GotoIf($[${HOTLINE_SURVEY_TRIES} < 3]?ask)" in survey
    told = [app for app in survey if app.startswith("UserEvent(HotlineSurvey,")]
    assert told == [
        "UserEvent(HotlineSurvey,Key: none,Seat: ${HOTLINE_SURVEY_SEAT},Skill: ${HOTLINE_SKILL})",
        "UserEvent(HotlineSurvey,Key: ${HOTLINE_SURVEY_KEY},Seat: ${HOTLINE_SURVEY_SEAT},"
        "Skill: ${HOTLINE_SKILL})"]
    assert survey[-1] == "Hangup()"
    # a resumed call (hotline-hold): its caller goes on to the survey when the agent hangs up
    resume = plan[("hotline-hold", "resume")].priorities
    assert "Bridge(${HOTLINE_RESUME},${HOTLINE_RESUME_OPTS})" in resume
    assert resume.index("Set(HOTLINE_RESUME_OPTS=x)") < resume.index(
        'GotoIf($["${IMPORT(${HOTLINE_RESUME},HOTLINE_SURVEY_SEAT)}" = ""]?tries)') < resume.index(
        "Set(EXPORT(${HOTLINE_RESUME},HOTLINE_SURVEY_SEAT)=${CHANNEL(endpoint)})") < resume.index(
        "Set(HOTLINE_RESUME_OPTS=F(hotline-survey^s^1))")
    # neither runs as a Gosub routine, where alone LOCAL() holds a value
    assert not [app for app in survey + resume if "LOCAL(" in app]

    none = replace(settings, acd=replace(settings.acd, survey_skills=()))
    without = _render_parsed(none, tmp_path / "none")
    assert one(without["extensions.conf"], "globals").get("SURVEY_SKILLS").strip() == ""
    assert survey_skills(["repair"]) == "/repair/" and survey_skills([]) == ""
    with pytest.raises(RenderError, match="survey_skills"):
        survey_skills(["general", ".*"])


def test_an_outside_consult_dials_only_filtered_digits_on_the_trunk(settings: Settings,
                                                                   tmp_path: Path) -> None:
    """外线 (issue 14 §5): the agent's leg dials the number the CTI checked on the carrier
    trunk; the dialplan keeps only its digits (at most 15), dials nothing when none are left,
    and records the leg under the call. Without a trunk there is no such extension."""
    from dataclasses import replace

    without = dialplan(_render_parsed(replace(settings, pbx=replace(settings.pbx,
                                                                    outbound_trunk="")),
                                      tmp_path / "without")["extensions.conf"])
    assert ("hotline-consult", "s") in without and ("hotline-consult", "out") not in without
    plan = dialplan(_render_parsed(settings, tmp_path / "with")["extensions.conf"])
    out = plan[("hotline-consult", "out")].priorities
    assert "Set(HOTLINE_CONSULT_DIAL=${FILTER(0-9,${HOTLINE_CONSULT_NUMBER}):0:15})" in out
    assert 'GotoIf($["${HOTLINE_CONSULT_DIAL}" = ""]?s,over)' in out
    dials = [app for app in out if app.startswith("Dial(")]
    assert dials == ["Dial(PJSIP/${HOTLINE_CONSULT_DIAL}@carrier-out,${CALLBACK_RING_S},"
                     "gU(hotline-record^${HOTLINE_SKILL}^outside))"]
    # the filter comes before the dial; the caller id is the hotline's, then the agent's again
    assert out.index(dials[0]) > out.index(
        "Set(HOTLINE_CONSULT_DIAL=${FILTER(0-9,${HOTLINE_CONSULT_NUMBER}):0:15})")
    assert out[-1] == "Goto(s,over)"
    assert plan[("hotline-consult", "s")].priorities[2].startswith(
        "UserEvent(HotlineConsultEnded,")
