"""Contract tests of the prompt build against real pyttsx3, espeak-ng and sox, and of the index."""

from __future__ import annotations

import json
import shutil
import threading
import wave
from array import array
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from prompts.build import (
    BuildError,
    Pyttsx3Synthesiser,
    SynthesisTimeout,
    build_prompts,
    check_wav,
    prompt_key,
)
from prompts.catalog import Catalog
from prompts.index import ASTERISK_PROMPT_DIR, PromptIndex, PromptIndexError, UnknownPromptError


@pytest.fixture(autouse=True)
def _tools_installed() -> None:
    """A missing synthesiser fails the run (never skips it): `make test` installs both."""
    for tool in ("sox", "espeak-ng"):
        assert shutil.which(tool), f"{tool} is not installed: run `make test`, which installs it"

VOICES = {"zh": "cmn-Latn-pinyin", "en": "en-us"}
RATE = 175
TEXTS = {
    "t.welcome": {"zh": "您好", "en": "Hello"},
    "t.amount": {"zh": "一百二十三元", "en": "one hundred twenty three yuan"},
}
EMPTY_WAV_BYTES = 44


class Recording:
    """A Synthesiser that forwards to another and records what it was asked (thread-safe)."""

    def __init__(self, inner: Pyttsx3Synthesiser | None = None) -> None:
        self.inner = inner
        self.calls: list[tuple[str, bool]] = []
        self._lock = threading.Lock()

    def synthesise(self, text: str, voice: str, rate: int, out_path: Path, *,
                   timeout: float, fresh: bool) -> None:
        with self._lock:
            self.calls.append((text, fresh))
        self.produce(text, voice, rate, out_path, timeout=timeout, fresh=fresh)

    def produce(self, text: str, voice: str, rate: int, out_path: Path, *,
                timeout: float, fresh: bool) -> None:
        assert self.inner is not None
        self.inner.synthesise(text, voice, rate, out_path, timeout=timeout, fresh=fresh)

    def texts(self) -> Counter[str]:
        return Counter(text for text, _ in self.calls)


def write_empty_wav(path: Path) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)


class EmptyFirstTime(Recording):
    """What pyttsx3 2.99 sometimes does: an empty file, then fine on the next try."""

    def __init__(self, inner: Pyttsx3Synthesiser, flaky_text: str) -> None:
        super().__init__(inner)
        self.flaky_text = flaky_text

    def produce(self, text: str, voice: str, rate: int, out_path: Path, *,
                timeout: float, fresh: bool) -> None:
        if text == self.flaky_text and self.texts()[text] == 1:
            write_empty_wav(out_path)
            return
        super().produce(text, voice, rate, out_path, timeout=timeout, fresh=fresh)


class AlwaysEmpty(Recording):
    def produce(self, text: str, voice: str, rate: int, out_path: Path, *,
                timeout: float, fresh: bool) -> None:
        write_empty_wav(out_path)


@pytest.fixture(scope="module")
def engine() -> Iterator[Pyttsx3Synthesiser]:
    # One pair of worker processes for the module: starting espeak is most of a tiny build.
    with Pyttsx3Synthesiser(workers=2) as synthesiser:
        yield synthesiser


def build(catalog: Catalog, cache: Path, synthesiser: Recording) -> PromptIndex:
    return build_prompts(catalog, cache, VOICES, RATE, jobs=2, synthesiser=synthesiser)


def peak(path: Path) -> int:
    with wave.open(str(path), "rb") as w:
        samples = array("h", w.readframes(w.getnframes()))
    return max(abs(s) for s in samples)


def test_build_writes_asterisk_ready_files_and_the_index(tmp_path: Path,
                                                         engine: Pyttsx3Synthesiser) -> None:
    cache = tmp_path / "cache"
    recording = Recording(engine)

    index = build(Catalog(TEXTS), cache, recording)

    # Sets, not counts: real pyttsx3 really does write empty files now and then, and the build
    # really does retry them.
    assert set(recording.texts()) == {t for texts in TEXTS.values() for t in texts.values()}
    for prompt_id, texts in TEXTS.items():
        for lang, text in texts.items():
            key = prompt_key(VOICES[lang], RATE, text)
            path = cache / f"{key}.wav"
            assert index.local_file(prompt_id, lang) == path
            with wave.open(str(path), "rb") as w:
                assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getcomptype()) \
                    == (1, 2, 8000, "NONE")
                assert w.getnframes() > 0.2 * 8000
            assert peak(path) > 3000
            assert index.asterisk_path(prompt_id, lang) == f"{ASTERISK_PROMPT_DIR}/{key}"
            assert index.lookup_path(index.asterisk_path(prompt_id, lang)) == (prompt_id, lang)
    on_disk = json.loads((cache / "index.json").read_text(encoding="utf-8"))
    assert on_disk == {
        "version": 1,
        "voices": VOICES,
        "rate": RATE,
        "prompts": {lang: {i: prompt_key(VOICES[lang], RATE, t[lang])
                           for i, t in TEXTS.items()} for lang in ("en", "zh")},
    }
    assert PromptIndex.load(cache) == index
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []


def test_rebuild_reuses_everything_and_a_changed_text_is_the_only_one_made(
        tmp_path: Path, engine: Pyttsx3Synthesiser) -> None:
    cache = tmp_path / "cache"
    build(Catalog(TEXTS), cache, Recording(engine))
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.wav")}

    again = Recording(engine)
    build(Catalog(TEXTS), cache, again)

    assert again.calls == []
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*.wav")} == stamps

    changed = {**TEXTS, "t.welcome": {"zh": "您好", "en": "Good morning"}}
    third = Recording(engine)
    index = build(Catalog(changed), cache, third)

    assert set(third.texts()) == {"Good morning"}
    assert index.local_file("t.welcome", "en").name == \
        f"{prompt_key('en-us', RATE, 'Good morning')}.wav"


def test_a_damaged_cached_file_is_made_again(tmp_path: Path, engine: Pyttsx3Synthesiser) -> None:
    cache = tmp_path / "cache"
    index = build(Catalog(TEXTS), cache, Recording(engine))
    damaged = index.local_file("t.amount", "zh")
    damaged.write_bytes(damaged.read_bytes()[:100])
    assert check_wav(damaged) is not None

    again = Recording(engine)
    build(Catalog(TEXTS), cache, again)

    assert set(again.texts()) == {"一百二十三元"}
    assert check_wav(damaged) is None


def test_an_empty_synthesis_is_retried(tmp_path: Path, engine: Pyttsx3Synthesiser) -> None:
    flaky = EmptyFirstTime(engine, flaky_text="Hello")

    index = build(Catalog(TEXTS), tmp_path / "cache", flaky)

    assert flaky.texts()["Hello"] >= 2
    assert set(flaky.texts()) == {t for texts in TEXTS.values() for t in texts.values()}
    assert check_wav(index.local_file("t.welcome", "en")) is None


def test_a_prompt_that_never_synthesises_fails_the_build_naming_it(tmp_path: Path) -> None:
    catalog = Catalog({"t.only": {"zh": "您好"}})
    always = AlwaysEmpty()

    with pytest.raises(BuildError) as info:
        build_prompts(catalog, tmp_path, VOICES, RATE, synthesiser=always, attempts=3)

    message = str(info.value)
    assert "'t.only' (zh)" in message and "'您好'" in message and "cmn-Latn-pinyin" in message
    assert "empty file" in message
    # A fresh engine is asked for once plain retries have not helped.
    assert always.calls == [("您好", False), ("您好", False), ("您好", True)]
    assert not (tmp_path / "index.json").exists()


def test_an_unknown_voice_fails_at_once(tmp_path: Path, engine: Pyttsx3Synthesiser) -> None:
    recording = Recording(engine)

    with pytest.raises(BuildError, match="unknown voice") as info:
        build_prompts(Catalog({"t.hi": {"en": "hi"}}), tmp_path, {"en": "no-such-voice"}, RATE,
                      synthesiser=recording)

    assert "'t.hi' (en)" in str(info.value)
    assert len(recording.calls) == 1


def test_a_language_without_a_voice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no voice configured for language"):
        build_prompts(Catalog(TEXTS), tmp_path, {"zh": "cmn-Latn-pinyin"}, RATE,
                      synthesiser=AlwaysEmpty())


def test_a_worker_that_overruns_its_deadline_is_killed_and_replaced(tmp_path: Path) -> None:
    out = tmp_path / "x.wav"
    with Pyttsx3Synthesiser(workers=1) as synthesiser:
        with pytest.raises(SynthesisTimeout):
            synthesiser.synthesise("hello", "en-us", RATE, out, timeout=0.001, fresh=False)
        synthesiser.synthesise("hello", "en-us", RATE, out, timeout=30, fresh=False)
        synthesiser.synthesise("hello", "en-us", RATE, out, timeout=30, fresh=False)
        assert synthesiser.started == 2
        synthesiser.synthesise("hello", "en-us", RATE, out, timeout=30, fresh=True)
        assert synthesiser.started == 3
    assert out.stat().st_size > EMPTY_WAV_BYTES


# ---------------------------------------------------------------- the index on its own

def test_loading_a_missing_index_says_to_run_the_build(tmp_path: Path) -> None:
    with pytest.raises(PromptIndexError, match="build the prompts first"):
        PromptIndex.load(tmp_path)
    (tmp_path / "index.json").write_text('{"version": 99}', encoding="utf-8")
    with pytest.raises(PromptIndexError, match="unsupported index version 99"):
        PromptIndex.load(tmp_path)


def test_lookup_path_decodes_what_asterisk_played(tmp_path: Path) -> None:
    index = PromptIndex(cache_dir=tmp_path, voices=VOICES, rate=RATE, prompts={
        "zh": {"a.zh": "aaaaaaaaaaaaaaaaaaaa", "same.2": "cccccccccccccccccccc",
               "same.1": "cccccccccccccccccccc"},
        "en": {"a.en": "bbbbbbbbbbbbbbbbbbbb"},
    })
    assert index.lookup_path(f"{ASTERISK_PROMPT_DIR}/aaaaaaaaaaaaaaaaaaaa") == ("a.zh", "zh")
    assert index.lookup_path(f'"{ASTERISK_PROMPT_DIR}/bbbbbbbbbbbbbbbbbbbb.wav" ') == \
        ("a.en", "en")
    assert index.lookup_path("bbbbbbbbbbbbbbbbbbbb") == ("a.en", "en")
    assert index.lookup_path(str(tmp_path / "aaaaaaaaaaaaaaaaaaaa.wav")) == ("a.zh", "zh")
    assert index.lookup_path("cccccccccccccccccccc") == ("same.1", "zh")
    assert index.lookup_path("/var/lib/asterisk/sounds/en/aaaaaaaaaaaaaaaaaaaa") is None
    assert index.lookup_path(f"{ASTERISK_PROMPT_DIR}/unknown") is None
    assert index.lookup_path("") is None
    assert index.has("a.zh", "zh") and not index.has("a.zh", "en")
    with pytest.raises(UnknownPromptError, match="'a.zh' has no 'en' recording"):
        index.asterisk_path("a.zh", "en")
