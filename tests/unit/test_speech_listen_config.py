"""[speech] audiosocket: where the CTI listens for Asterisk's AudioSocket(); on by default
only where a model is configured, and Asterisk loads the AudioSocket modules only then."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from asterisk_conf.render import SYSTEM_PROMPTS, load_or_create_secrets, render
from config.settings import load_settings
from config.speech import DEFAULT_AUDIOSOCKET, speech_settings
from tests.unit.test_speech_config import fake_model


def test_off_without_a_model_and_on_by_default_with_one(tmp_path: Path) -> None:
    assert speech_settings({}, tmp_path).audiosocket == ""
    assert speech_settings({}, tmp_path).audiosocket_address is None
    model = fake_model(tmp_path / "ko")
    on = speech_settings({"models": {"ko": str(model)}}, tmp_path)
    assert on.audiosocket == DEFAULT_AUDIOSOCKET
    assert on.audiosocket_address == ("127.0.0.1", 4574)
    mine = speech_settings({"models": {"ko": str(model)}, "audiosocket": "127.0.0.1:14999"},
                           tmp_path)
    assert mine.audiosocket_address == ("127.0.0.1", 14999)
    off = speech_settings({"models": {"ko": str(model)}, "audiosocket": ""}, tmp_path)
    assert off.audiosocket_address is None


@pytest.mark.parametrize(("value", "needle"), [
    ("localhost:4574", "an IP address and a port"),
    ("127.0.0.1", "an IP address and a port"),
    ("127.0.0.1:0", "an IP address and a port"),
    ("127.0.0.1:70000", "an IP address and a port"),
    (4574, "must be \"host:port\""),
])
def test_a_bad_address_is_refused(tmp_path: Path, value: object, needle: str) -> None:
    model = fake_model(tmp_path / "ko")
    with pytest.raises(ValueError, match=needle):
        speech_settings({"models": {"ko": str(model)}, "audiosocket": value}, tmp_path)


def test_a_listener_without_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no model"):
        speech_settings({"audiosocket": "127.0.0.1:4574"}, tmp_path)


def _modules(settings_speech: object, tmp_path: Path) -> list[str]:
    s = load_settings(env={"HOTLINE_AMI_SECRET": "x"})
    s = replace(s, speech=settings_speech)  # type: ignore[arg-type]
    prompts = {key: {lang: f"/p/{lang}/sys.{key}" for lang in ("zh", "en")}
               for key in SYSTEM_PROMPTS}
    files = render(s, load_or_create_secrets(tmp_path / "secrets.json", s), prompts, "/moh")
    return [line.split("=>", 1)[1].split(";")[0].strip()
            for line in files["modules.conf"].splitlines() if line.startswith("load =>")]


def test_asterisk_loads_audiosocket_only_with_speech(tmp_path: Path) -> None:
    assert not {"app_audiosocket.so", "res_audiosocket.so"} & set(
        _modules(speech_settings({}, tmp_path), tmp_path / "off"))
    model = fake_model(tmp_path / "ko")
    loaded = _modules(speech_settings({"models": {"ko": str(model)}}, tmp_path), tmp_path / "on")
    # the application for narrowband legs; the channel driver for wideband ones (c(slin16))
    assert {"app_audiosocket.so", "res_audiosocket.so", "chan_audiosocket.so"} <= set(loaded)
    assert "codec_g722.so" in loaded
    narrow = _modules(speech_settings({"models": {"ko": str(model)}, "sample_rate": 8000},
                                      tmp_path), tmp_path / "narrow")
    assert {"app_audiosocket.so", "res_audiosocket.so"} <= set(narrow)
    assert "chan_audiosocket.so" not in narrow   # every call narrowband: the application only
