"""Settings: read once from hotline.toml plus environment overrides, then passed down."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.calendars import CalendarSettings, calendar_settings
from config.call_control import CallControlSettings, call_control_settings
from config.callers import CallerSettings, caller_settings
from config.outages import OutageSettings, outage_settings
from config.outbound import OutboundSettings, outbound_settings
from config.recorder import RecorderSettings, recorder_settings
from config.speech import SpeechSettings, speech_settings
from config.storm import StormSettings, storm_settings
from config.wallboard import WallboardSettings, wallboard_settings
from config.workorders import WorkOrderSettings, workorder_settings

REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(Exception):
    """The settings file or environment is invalid."""


# Asterisk's systemname (asterisk.conf [options]) prefixes every Uniqueid and Linkedid it makes:
# "pbx1-1700000000.12", so a call id stays unique across PBX nodes. Lower-case letters, digits
# and '-': no '_' (recording file names split on it), no '.' (the id's own separator).
SYSTEMNAME_PATTERN = r"[a-z][a-z0-9-]{0,31}"
# a Uniqueid or Linkedid, with or without a systemname (an Asterisk without one, or old data)
ASTERISK_ID_PATTERN = rf"(?:{SYSTEMNAME_PATTERN}-)?[0-9]+\.[0-9]+"
DEFAULT_SYSTEMNAME = "pbx1"
# [pbx] seat_reachability: who says whether a seat's phone can be rung. "asterisk": its PJSIP
# registrations (a dead phone's agent is not_ready 'phone_offline'); "registrar": the phones
# register elsewhere (Kamailio), Asterisk sees no contact and its word is ignored
SEAT_REACHABILITY = ("asterisk", "registrar")
# a skill's name (ivr/flows: general, repair, english, ...), as the dialplan and the CTI take it
SKILL_PATTERN = r"[a-z][a-z0-9_-]{0,31}"


@dataclass(frozen=True)
class PbxNode:
    """One Asterisk media node the CTI drives: its systemname and its AMI address (the AMI
    username and secret are [ami]'s, the same on every node)."""

    name: str
    ami_host: str
    ami_port: int


@dataclass(frozen=True)
class PbxSettings:
    bind_ip: str
    sip_port: int
    service_number: str
    carrier_ips: tuple[str, ...]
    rtp_start: int
    rtp_end: int
    seats: int
    seat_extension_base: int
    supervisors: int
    supervisor_extension_base: int
    codecs: tuple[str, ...]
    max_call_seconds: int
    # host[:port] of the carrier's SIP for outbound calls (queued callbacks); empty: none,
    # and the wait offers no callback key
    outbound_trunk: str = ""
    # this node's Asterisk systemname, rendered into asterisk.conf (see SYSTEMNAME_PATTERN)
    systemname: str = DEFAULT_SYSTEMNAME
    # every node the CTI drives; load_settings fills in the one local node ([ami] host/port)
    # when [[pbx.nodes]] is not given
    nodes: tuple[PbxNode, ...] = ()
    # SIP over TLS for seats and supervisor phones (transport-tls in pjsip.conf): the TCP port on
    # bind_ip, 0 = off. Off unless set: on the default loopback bind TLS protects nothing, and
    # each phone must be given the certificate to trust (`hotline doctor` FAILs a non-loopback
    # bind without it). sip_tls_cert/sip_tls_key: a real certificate and its key (PEM); both
    # empty = a self-signed one made at `hotline config render` / `make up`.
    sip_tls_port: int = 0
    sip_tls_cert: str = ""
    sip_tls_key: str = ""
    seat_reachability: str = SEAT_REACHABILITY[0]  # see SEAT_REACHABILITY

    def __post_init__(self) -> None:
        if self.seat_reachability not in SEAT_REACHABILITY:
            raise ValueError(f"[pbx] seat_reachability must be one of {list(SEAT_REACHABILITY)}, "
                             f"not {self.seat_reachability!r}")
        if not 0 <= self.sip_tls_port <= 65535:
            raise ValueError(f"[pbx] sip_tls_port {self.sip_tls_port} is not a port (0 = off)")
        if self.sip_tls_port and self.sip_tls_port == self.sip_port:
            # UDP and TCP could share a number, but one port for both confuses every phone
            raise ValueError("[pbx] sip_tls_port must differ from sip_port")
        if bool(self.sip_tls_cert) != bool(self.sip_tls_key):
            raise ValueError("[pbx] sip_tls_cert and sip_tls_key go together (both empty: a "
                             "self-signed certificate)")


@dataclass(frozen=True)
class AmiSettings:
    host: str
    port: int
    username: str
    secret: str


@dataclass(frozen=True)
class FastAgiSettings:
    host: str
    port: int
    backlog: int
    # the peer check (issue 10, defect 8): a FastAGI connection must come from a socket owned by
    # Asterisk's user (ivr/agi_peer.py). None (unset): on when that user exists on this host;
    # true: required (the CTI refuses to start without the user); false: off (the secret the
    # dialplan passes still applies)
    peer_uid: bool | None = None


DEFAULT_NOT_READY_REASONS: tuple[str, ...] = (
    "break", "lunch", "meal", "training", "meeting", "wrap_up", "after_call")
NOT_READY_REASON_PATTERN = r"[a-z][a-z0-9_]{0,31}"


@dataclass(frozen=True)
class AcdSettings:
    cti_stale_s: int
    ring_timeout_s: int
    wrap_up_s: int
    callback_key: str
    max_queue: int = 30  # waiting calls per skill; a new call beyond this overflows
    max_queue_by_skill: tuple[tuple[str, int], ...] = ()  # per-skill overrides
    # the not-ready reasons a desktop may choose (小休原因); the ACD's own (login, rona,
    # phone_offline, failover_call, supervisor, ...) are set by the system, never by a client
    not_ready_reasons: tuple[str, ...] = DEFAULT_NOT_READY_REASONS
    # the post-call satisfaction survey (满意度评价, issue 14 §3): a caller of one of these
    # skills whose agent hangs up first is asked to rate the call 1-5 (the dialplan's
    # hotline-survey); empty: no survey. A survey changes how every such call ends
    survey_skills: tuple[str, ...] = ()


@dataclass(frozen=True)
class CtiSettings:
    """[cti]: standby = true makes `hotline up` start a second CTI process, which waits on the
    leadership lock and takes over when the active one dies (callcenter/leadership.py)."""

    standby: bool = True


@dataclass(frozen=True)
class MemorySettings:
    """[memory]: every `trim_every_s` the CTI gives glibc's kept pages back to the kernel
    (malloc_trim) and the watchdog has Asterisk do the same (`malloc trim`); 0 turns it off
    (hotline/trim.py)."""

    trim_every_s: float = 300.0


def memory_settings(raw: Mapping[str, Any]) -> MemorySettings:
    unknown = set(raw) - set(MemorySettings.__dataclass_fields__)
    if unknown:
        raise SettingsError(f"[memory] has no setting {sorted(unknown)[0]!r}")
    every = raw.get("trim_every_s", MemorySettings.trim_every_s)
    if (isinstance(every, bool) or not isinstance(every, int | float)
            or not (every == 0 or 10 <= every <= 86400)):
        raise SettingsError(f"[memory] trim_every_s must be 0 (off) or seconds from 10 to "
                            f"86400, not {every!r}")
    return MemorySettings(trim_every_s=float(every))


@dataclass(frozen=True)
class MqttSettings:
    """The hotline's own broker (asterisk_conf/mosquitto.py renders it; never the host's 1883).
    tls_port 0: no TLS listener; else TLS there, with tls_cert/tls_key or, when those are
    empty, a self-signed certificate kept in var/mqtt-tls/ (asterisk_conf/mosquitto.py)."""
    host: str
    port: int
    tls_port: int = 0
    tls_cert: str = ""
    tls_key: str = ""


@dataclass(frozen=True)
class WebSettings:
    """The agent desktop (agent_desktop/), served by the CTI process."""

    host: str = "127.0.0.1"
    port: int = 8098
    session_idle_s: int = 1800           # a desktop idle this long must log in again
    session_absolute_s: int = 43200      # and every session ends after a 12 h shift
    # login limits (docs/api.md "Login limits"): a known account gets login_max_failures
    # free failures, then each further one blocks it for 2, 4, 8 ... s, never more than
    # login_backoff_max_s; an address gets login_ip_max_failures failures on unknown user ids.
    # Counters forget after login_window_s without a failure.
    login_max_failures: int = 5
    login_window_s: int = 300
    login_backoff_max_s: int = 60
    login_ip_max_failures: int = 20
    cookie_secure: bool = False          # the cookie's Secure flag (always set under TLS)
    max_body_bytes: int = 1048576        # larger request bodies get 413 before being read
    # HTTPS: tls = "" (plain HTTP), "self-signed" (a certificate made at startup under the
    # state dir) or "files" (tls_cert and tls_key: a real certificate and its key, PEM)
    tls: str = ""
    tls_cert: str = ""
    tls_key: str = ""

    def __post_init__(self) -> None:
        if self.tls not in ("", "self-signed", "files"):
            raise ValueError(f'[web] tls must be "", "self-signed" or "files", got {self.tls!r}')
        if self.tls == "files" and not (self.tls_cert and self.tls_key):
            raise ValueError('[web] tls = "files" needs tls_cert and tls_key')
        if self.max_body_bytes < 1024:
            raise ValueError("[web] max_body_bytes must be at least 1024")

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


@dataclass(frozen=True)
class IvrSettings:
    flows_dir: Path
    entry_flow: str
    default_language: str
    timezone: str
    # the longest a caller in the IVR may hear nothing: a FastAGI reply slower than this ends
    # the session (the dialplan's fallback takes over), a lookup slower than this gets music
    max_silence_s: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.max_silence_s <= 10:
            raise ValueError(f"[ivr] max_silence_s must be more than 0 and at most 10 s, got "
                             f"{self.max_silence_s}")


@dataclass(frozen=True)
class PromptSettings:
    catalog_dir: Path
    cache_dir: Path
    rate: int
    voices: Mapping[str, str]


@dataclass(frozen=True)
class Settings:
    root: Path
    state_dir: Path
    asterisk_root: Path
    db_url: str
    pbx: PbxSettings
    ami: AmiSettings
    fastagi: FastAgiSettings
    ivr: IvrSettings
    prompts: PromptSettings
    acd: AcdSettings
    mqtt: MqttSettings
    web: WebSettings = WebSettings()
    recorder: RecorderSettings = RecorderSettings()
    workorders: WorkOrderSettings = WorkOrderSettings()
    outages: OutageSettings = OutageSettings()
    # [storm]: storm mode's automatic switching and its handling (config/storm.py)
    storm: StormSettings = StormSettings()
    # [speech]: vosk models per language and how the IVR listens (config/speech.py)
    speech: SpeechSettings = SpeechSettings()
    # [outbound]: the outbound engine's window, pacing, retries, return visits (config/outbound.py)
    outbound: OutboundSettings = OutboundSettings()
    # [call_control]: the outside numbers an agent may consult (config/call_control.py)
    call_control: CallControlSettings = CallControlSettings()
    # [callers]: when nuisance reports list a number by themselves (config/callers.py)
    callers: CallerSettings = CallerSettings()
    # [calendars]: the 7x24 skill, an after-hours callback's validity (config/calendars.py)
    calendars: CalendarSettings = CalendarSettings()
    # [wallboard]: the wallboard's amber and red thresholds (config/wallboard.py)
    wallboard: WallboardSettings = WallboardSettings()
    cti: CtiSettings = CtiSettings()
    # [memory]: how often the CTI and Asterisk give kept heap pages back (hotline/trim.py)
    memory: MemorySettings = MemorySettings()
    # [hotline] demo: this deployment is a demo (`make up` seeds staff with the demo password);
    # `hotline doctor` then only warns about that password. A settings file without it is not a
    # demo, and a staff account still taking the demo password there fails the doctor.
    demo: bool = False

    @property
    def asterisk_etc(self) -> Path:
        """Where the rendered PBX config goes (bind-mounted over the chroot's /etc/asterisk)."""
        return self.state_dir / "asterisk" / "etc"


def _path(root: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else root / p


def _systemname(value: object, what: str) -> str:
    name = str(value)
    if not re.fullmatch(SYSTEMNAME_PATTERN, name):
        raise ValueError(f"{what} {name!r} must match {SYSTEMNAME_PATTERN} (it prefixes every "
                         "Asterisk Uniqueid and Linkedid)")
    return name


def _reasons(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list | tuple) or not raw:
        raise ValueError("[acd] not_ready_reasons must be a non-empty list")
    out = tuple(str(r) for r in raw)
    bad = [r for r in out if not re.fullmatch(NOT_READY_REASON_PATTERN, r)]
    if bad:
        raise ValueError(f"[acd] not_ready_reasons {bad} must match {NOT_READY_REASON_PATTERN}")
    return out


def _skills(raw: object, what: str) -> tuple[str, ...]:
    if not isinstance(raw, list | tuple):
        raise ValueError(f"{what} must be a list of skills")
    out = tuple(dict.fromkeys(str(r) for r in raw))
    bad = [r for r in out if not re.fullmatch(SKILL_PATTERN, r)]
    if bad:
        raise ValueError(f"{what} {bad} must match {SKILL_PATTERN}")
    return out


def _demo(hotline: Mapping[str, object]) -> bool:
    value = hotline.get("demo", False)
    if not isinstance(value, bool):
        raise ValueError(f"[hotline] demo must be true or false, got {value!r}")
    return value


def pbx_nodes(pbx: Mapping[str, object], systemname: str, ami_host: str,
              ami_port: int) -> tuple[PbxNode, ...]:
    """[[pbx.nodes]] (name, ami_host, ami_port), or the one local node: this systemname at
    [ami] host/port. Names are unique, and so are AMI addresses; this host's systemname is
    one of them (a node's name is the systemname that prefixes its call ids)."""
    raw = pbx.get("nodes")
    if raw is None:
        return (PbxNode(systemname, ami_host, ami_port),)
    if not isinstance(raw, list) or not raw:
        raise ValueError("[[pbx.nodes]] must list at least one node")
    nodes = []
    for i, n in enumerate(raw):
        if not isinstance(n, Mapping):
            raise ValueError(f"[[pbx.nodes]] #{i + 1} must be a table")
        port = int(n.get("ami_port", ami_port))
        if not 0 < port < 65536:
            raise ValueError(f"[[pbx.nodes]] #{i + 1}: ami_port {port} is not a port")
        nodes.append(PbxNode(_systemname(n["name"], f"[[pbx.nodes]] #{i + 1} name"),
                             str(n.get("ami_host", ami_host)), port))
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise ValueError(f"[[pbx.nodes]] names must be unique: {names}")
    if systemname not in names:
        # its call ids would name no node: never resynced, Redirected or paused as a node's
        raise ValueError(f"[pbx] systemname {systemname!r} (this host's Asterisk) must be one "
                         f"of the [[pbx.nodes]] names {names}")
    addresses = [(n.ami_host, n.ami_port) for n in nodes]
    if len(set(addresses)) != len(addresses):
        raise ValueError("[[pbx.nodes]] AMI addresses must be unique")
    return tuple(nodes)


def _optional_bool(value: object, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise SettingsError(f"{name} must be true or false (or left out), not {value!r}")


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the TOML file and the environment. Nothing connects here."""
    env = os.environ if env is None else env
    path = Path(env.get("HOTLINE_SETTINGS", "")) if path is None and env.get("HOTLINE_SETTINGS") \
        else (path or REPO_ROOT / "hotline.toml")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: {exc}") from exc
    root = path.resolve().parent
    try:
        sections = ("paths", "db", "pbx", "ami", "fastagi", "ivr", "prompts")
        paths, db, pbx, ami, fa, ivr, pr = (raw[k] for k in sections)
        acd = raw.get("acd", {})
        mqtt = raw.get("mqtt", {})
        web = raw.get("web", {})
        state_dir = _path(root, env.get("HOTLINE_STATE_DIR") or paths["state_dir"])
        systemname = _systemname(pbx.get("systemname", DEFAULT_SYSTEMNAME), "[pbx] systemname")
        default_db = f"sqlite:///{state_dir / 'hotline.db'}"
        db_url = env.get("HOTLINE_DB_URL") or db.get("url") or default_db
        return Settings(
            root=root,
            state_dir=state_dir,
            asterisk_root=Path(env.get("HOTLINE_AST_ROOT") or paths["asterisk_root"]),
            db_url=db_url,
            pbx=PbxSettings(
                bind_ip=pbx["bind_ip"], sip_port=int(pbx["sip_port"]),
                service_number=str(pbx["service_number"]),
                carrier_ips=tuple(pbx["carrier_ips"]),
                rtp_start=int(pbx["rtp_start"]), rtp_end=int(pbx["rtp_end"]),
                seats=int(pbx["seats"]), seat_extension_base=int(pbx["seat_extension_base"]),
                supervisors=int(pbx["supervisors"]),
                supervisor_extension_base=int(pbx["supervisor_extension_base"]),
                codecs=tuple(pbx["codecs"]), max_call_seconds=int(pbx["max_call_seconds"]),
                outbound_trunk=str(pbx.get("outbound_trunk", "")),
                sip_tls_port=int(pbx.get("sip_tls_port", 0)),
                sip_tls_cert=str(_path(root, pbx["sip_tls_cert"]) if pbx.get("sip_tls_cert")
                                 else ""),
                sip_tls_key=str(_path(root, pbx["sip_tls_key"]) if pbx.get("sip_tls_key")
                                else ""),
                systemname=systemname,
                nodes=pbx_nodes(pbx, systemname, str(ami["host"]), int(ami["port"])),
                seat_reachability=pbx.get("seat_reachability", SEAT_REACHABILITY[0]),
            ),
            ami=AmiSettings(host=ami["host"], port=int(ami["port"]), username=ami["username"],
                            secret=env.get("HOTLINE_AMI_SECRET", "")),
            fastagi=FastAgiSettings(host=fa["host"], port=int(fa["port"]),
                                    backlog=int(fa["backlog"]),
                                    peer_uid=_optional_bool(fa.get("peer_uid"),
                                                            "[fastagi] peer_uid")),
            ivr=IvrSettings(flows_dir=_path(root, ivr["flows_dir"]), entry_flow=ivr["entry_flow"],
                            default_language=ivr["default_language"],
                            timezone=ivr.get("timezone", "Asia/Shanghai"),
                            max_silence_s=float(ivr.get("max_silence_s", 2.0))),
            prompts=PromptSettings(catalog_dir=_path(root, pr["catalog_dir"]),
                                   cache_dir=_path(root, pr["cache_dir"]), rate=int(pr["rate"]),
                                   voices=dict(pr["voices"])),
            acd=AcdSettings(cti_stale_s=int(acd.get("cti_stale_s", 5)),
                            ring_timeout_s=int(acd.get("ring_timeout_s", 15)),
                            wrap_up_s=int(acd.get("wrap_up_s", 15)),
                            callback_key=str(acd.get("callback_key", 1)),
                            max_queue=int(acd.get("max_queue", 30)),
                            max_queue_by_skill=tuple(
                                (str(k), int(v))
                                for k, v in dict(acd.get("max_queue_by_skill", {})).items()),
                            not_ready_reasons=_reasons(acd.get("not_ready_reasons",
                                                               DEFAULT_NOT_READY_REASONS)),
                            survey_skills=_skills(acd.get("survey_skills", []),
                                                  "[acd] survey_skills")),
            mqtt=MqttSettings(host=str(mqtt.get("host", "127.0.0.1")),
                              port=int(mqtt.get("port", 1884)),
                              tls_port=int(mqtt.get("tls_port", 0)),
                              tls_cert=str(mqtt.get("tls_cert", "")),
                              tls_key=str(mqtt.get("tls_key", ""))),
            web=WebSettings(**{k: type(getattr(WebSettings, k))(v) for k, v in web.items()
                               if k in WebSettings.__dataclass_fields__}),
            recorder=recorder_settings(raw.get("recorder", {}), state_dir, root),
            workorders=workorder_settings(raw.get("workorders", {})),
            outages=outage_settings(raw.get("outages", {})),
            storm=storm_settings(raw.get("storm", {})),
            speech=speech_settings(raw.get("speech", {}), root),
            outbound=outbound_settings(raw.get("outbound", {}),
                                       str(ivr.get("timezone", "Asia/Shanghai"))),
            call_control=call_control_settings(raw.get("call_control", {})),
            callers=caller_settings(raw.get("callers", {})),
            calendars=calendar_settings(raw.get("calendars", {})),
            wallboard=wallboard_settings(raw.get("wallboard", {})),
            demo=_demo(raw.get("hotline", {})),
            cti=CtiSettings(standby=_optional_bool(raw.get("cti", {}).get("standby", True),
                                                   "[cti] standby") is not False),
            memory=memory_settings(raw.get("memory", {})),
        )
    except KeyError as exc:
        raise SettingsError(f"{path}: missing setting {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{path}: {exc}") from exc
