"""Settings: read once from hotline.toml plus environment overrides, then passed down."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from config.recorder import RecorderSettings, recorder_settings
from config.workorders import WorkOrderSettings, workorder_settings

REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(Exception):
    """The settings file or environment is invalid."""


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


@dataclass(frozen=True)
class AcdSettings:
    cti_stale_s: int
    ring_timeout_s: int
    wrap_up_s: int
    callback_key: str
    max_queue: int = 30  # waiting calls per skill; a new call beyond this overflows
    max_queue_by_skill: tuple[tuple[str, int], ...] = ()  # per-skill overrides


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int


@dataclass(frozen=True)
class WebSettings:
    """The agent desktop (agent_desktop/), served by the CTI process."""

    host: str = "127.0.0.1"
    port: int = 8098
    session_idle_s: int = 1800           # a desktop idle this long must log in again
    session_absolute_s: int = 43200      # and every session ends after a 12 h shift
    login_max_failures: int = 5          # failed logins per user id (and 4x per client IP) ...
    login_window_s: int = 300            # ... within this window before 429
    cookie_secure: bool = False          # True behind TLS


@dataclass(frozen=True)
class IvrSettings:
    flows_dir: Path
    entry_flow: str
    default_language: str
    timezone: str


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

    @property
    def asterisk_etc(self) -> Path:
        """Where the rendered PBX config goes (bind-mounted over the chroot's /etc/asterisk)."""
        return self.state_dir / "asterisk" / "etc"


def _path(root: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else root / p


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
            ),
            ami=AmiSettings(host=ami["host"], port=int(ami["port"]), username=ami["username"],
                            secret=env.get("HOTLINE_AMI_SECRET", "")),
            fastagi=FastAgiSettings(host=fa["host"], port=int(fa["port"]),
                                    backlog=int(fa["backlog"])),
            ivr=IvrSettings(flows_dir=_path(root, ivr["flows_dir"]), entry_flow=ivr["entry_flow"],
                            default_language=ivr["default_language"],
                            timezone=ivr.get("timezone", "Asia/Shanghai")),
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
                                for k, v in dict(acd.get("max_queue_by_skill", {})).items())),
            mqtt=MqttSettings(host=str(mqtt.get("host", "127.0.0.1")),
                              port=int(mqtt.get("port", 1883))),
            web=WebSettings(**{k: type(getattr(WebSettings, k))(v) for k, v in web.items()
                               if k in WebSettings.__dataclass_fields__}),
            recorder=recorder_settings(raw.get("recorder", {}), state_dir, root),
            workorders=workorder_settings(raw.get("workorders", {})),
        )
    except KeyError as exc:
        raise SettingsError(f"{path}: missing setting {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{path}: {exc}") from exc
