"""The [speech] settings (issue 13): vosk model folders per language, the bound on concurrent
decodes, the audio rate, the voting thresholds, the listening window and the keywords that
alert supervisors; parsed and checked once at startup. No model for a language: no speech for
its callers (the menu takes keys only and its prompts do not offer speech).

    [speech]
    max_decoders = 8
    audiosocket = "127.0.0.1:4574"   # where Asterisk's AudioSocket() reaches the CTI
    [speech.models]
    zh = "/opt/vosk/vosk-model-small-cn-0.22"
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.schema import SPEECH_LANGUAGES

RATES = (16000, 8000)
# the CTI's AudioSocket listener when models are configured and no address is given
DEFAULT_AUDIOSOCKET = "127.0.0.1:4574"
DEFAULT_ALERT_KEYWORDS = ("投诉", "媒体", "12345", "曝光", "律师")
# what makes a folder a vosk model: vosk.Model fails without either
MODEL_FILES = ("conf/model.conf", "am/final.mdl")


@dataclass(frozen=True)
class SpeechSettings:
    # language -> vosk model folder (absolute); a language not here has no speech
    models: Mapping[str, Path] = field(default_factory=dict)
    # decodes at once across all calls; a call past it gets keys only (counted)
    max_decoders: int = 8
    # the rate audio is decoded at: 16000 where the caller's leg carries it (slin16, G.722),
    # else 8000 (narrowband cut the Korean test model's accuracy sharply)
    sample_rate: int = 16000
    # intent confidence (speech.intent): at or above accept_at the choice is taken at once;
    # from confirm_below up to accept_at the caller is asked to confirm; below, the key menu
    confirm_below: float = 0.55
    accept_at: float = 0.80
    # how long after a menu prompt ends the caller may still start speaking
    listen_seconds: float = 4.0
    # words in a transcript that alert supervisors (post-call transcription); the whole list
    # (setting it replaces the default, so copy the defaults in to keep them)
    alert_keywords: tuple[str, ...] = DEFAULT_ALERT_KEYWORDS
    # post-call transcription: threads of its own (0: off), each one decoder beside the live
    # calls' max_decoders, never taking one of theirs; a job is tried this many times
    transcribe_workers: int = 1
    transcribe_attempts: int = 3
    # "host:port" the CTI listens on for Asterisk's AudioSocket() (the live call's audio);
    # "" (the default without a model): off, no listener, every menu keys only
    audiosocket: str = ""

    def enabled(self, lang: str) -> bool:
        return lang in self.models

    @property
    def audiosocket_address(self) -> tuple[str, int] | None:
        """(host, port) of the listener, None when speech is off."""
        if not self.audiosocket:
            return None
        host, _, port = self.audiosocket.rpartition(":")
        return host.strip("[]"), int(port)


KNOWN = frozenset(SpeechSettings.__dataclass_fields__)


def _number(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"[speech] {key} must be a number, not {value!r}")
    return float(value)


def _models(raw: object, root: Path) -> dict[str, Path]:
    if not isinstance(raw, Mapping):
        raise ValueError("[speech.models] must be a table of language = \"model folder\"")
    out = {}
    for lang, value in raw.items():
        if lang not in SPEECH_LANGUAGES:
            raise ValueError(f"[speech.models] {lang}: not a language the IVR knows "
                             f"({', '.join(SPEECH_LANGUAGES)})")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"[speech.models] {lang} must be a model folder's path, "
                             f"not {value!r}")
        p = Path(value).expanduser()
        path = p if p.is_absolute() else root / p
        if not path.is_dir():
            raise ValueError(f"[speech.models] {lang}: {path} is not a folder (unpack a vosk "
                             "model there, or remove the key to turn speech off)")
        missing = [f for f in MODEL_FILES if not (path / f).is_file()]
        if missing:
            raise ValueError(f"[speech.models] {lang}: {path} is not a vosk model folder (no "
                             f"{' or '.join(missing)})")
        out[str(lang)] = path
    return out


def _keywords(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list | tuple):
        raise ValueError("[speech] alert_keywords must be a list of words")
    out: list[str] = []
    for word in raw:
        if isinstance(word, int) and not isinstance(word, bool):
            word = str(word)  # 12345 written without quotes
        if not isinstance(word, str) or not word.strip():
            raise ValueError(f"[speech] alert_keywords: {word!r} is not a word")
        if word.strip() not in out:
            out.append(word.strip())
    return tuple(out)


def _audiosocket(raw: object, models: Mapping[str, Path]) -> str:
    if raw is None:
        return DEFAULT_AUDIOSOCKET if models else ""
    if not isinstance(raw, str):
        raise ValueError(f"[speech] audiosocket must be \"host:port\", not {raw!r}")
    if not raw:
        return ""
    host, sep, port = raw.rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        host = ""
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"[speech] audiosocket must be an IP address and a port, as "
                         f"\"127.0.0.1:4574\", not {raw!r}")
    if not models:
        raise ValueError("[speech] audiosocket is set but no model is ([speech.models]): "
                         "there is nothing to listen with; remove it or add a model")
    return raw


def speech_settings(raw: Mapping[str, Any], root: Path) -> SpeechSettings:
    """Build from the [speech] table (relative model paths are from the settings file's
    folder); unknown keys and bad values raise ValueError (the settings loader turns it into
    SettingsError with the file name)."""
    if not isinstance(raw, Mapping):
        raise ValueError("[speech] must be a table")
    unknown = set(raw) - KNOWN
    if unknown:
        raise ValueError(f"[speech]: unknown setting(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(KNOWN))}")
    d = SpeechSettings()
    decoders = raw.get("max_decoders", d.max_decoders)
    if isinstance(decoders, bool) or not isinstance(decoders, int) or decoders < 1:
        raise ValueError(f"[speech] max_decoders must be a whole number of at least 1, "
                         f"not {decoders!r}")
    rate = raw.get("sample_rate", d.sample_rate)
    if isinstance(rate, bool) or rate not in RATES:
        raise ValueError(f"[speech] sample_rate must be 16000 or 8000, not {rate!r}")
    confirm_below = _number(raw, "confirm_below", d.confirm_below)
    accept_at = _number(raw, "accept_at", d.accept_at)
    if not 0 < confirm_below <= accept_at <= 1:
        raise ValueError(f"[speech] thresholds must keep 0 < confirm_below <= accept_at <= 1, "
                         f"not confirm_below = {confirm_below:g}, accept_at = {accept_at:g}")
    listen = _number(raw, "listen_seconds", d.listen_seconds)
    if not 0 < listen <= 30:
        raise ValueError(f"[speech] listen_seconds must be more than 0 and at most 30, "
                         f"not {listen:g}")
    workers = raw.get("transcribe_workers", d.transcribe_workers)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= 16:
        raise ValueError(f"[speech] transcribe_workers must be a whole number from 0 (off) to "
                         f"16, not {workers!r}")
    attempts = raw.get("transcribe_attempts", d.transcribe_attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 10:
        raise ValueError(f"[speech] transcribe_attempts must be a whole number from 1 to 10, "
                         f"not {attempts!r}")
    models = _models(raw.get("models", {}), root)
    return SpeechSettings(
        transcribe_workers=workers, transcribe_attempts=attempts,
        models=models, audiosocket=_audiosocket(raw.get("audiosocket"), models),
        max_decoders=decoders, sample_rate=int(rate),
        confirm_below=confirm_below, accept_at=accept_at, listen_seconds=listen,
        alert_keywords=_keywords(raw.get("alert_keywords", list(DEFAULT_ALERT_KEYWORDS))))
