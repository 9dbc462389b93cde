"""speech.models: a model loads once per folder per process, lazily, and calls share it;
without a model a language has no speech. A fake loader stands in for vosk here (the real
model is loaded in tests/contract/test_speech_vosk_ko.py)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from speech.models import ModelRegistry


class FakeLoader:
    """Counts loads; can be held open so that callers pile up on one load."""

    def __init__(self) -> None:
        self.loads: list[Path] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_next = False

    def __call__(self, path: Path) -> object:
        self.entered.set()
        self.gate.wait(timeout=10)
        self.loads.append(path)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError(f"cannot load {path}")
        return ("model", path)


def test_without_a_model_speech_is_not_offered() -> None:
    loader = FakeLoader()
    reg = ModelRegistry({"zh": "/m/zh"}, loader)

    assert reg.available("zh")
    assert not reg.available("en")
    assert reg.languages == ("zh",)
    with pytest.raises(KeyError):
        reg.get("en")
    assert loader.loads == []  # asking is not loading


def test_a_model_loads_on_first_use_once_and_is_shared() -> None:
    loader = FakeLoader()
    reg = ModelRegistry({"zh": "/m/zh", "en": "/m/en", "ko": Path("/m/zh")}, loader)
    assert reg.loaded() == ()

    first = reg.get("zh")
    assert reg.get("zh") is first
    assert reg.get("ko") is first  # the same folder: one model
    assert loader.loads == [Path("/m/zh")]
    assert reg.loaded() == ("ko", "zh")

    assert reg.get("en") == ("model", Path("/m/en"))
    assert loader.loads == [Path("/m/zh"), Path("/m/en")]


def test_calls_asking_at_once_wait_for_one_load() -> None:
    loader = FakeLoader()
    loader.gate.clear()  # the first load hangs until every caller is waiting
    reg = ModelRegistry({"zh": "/m/zh"}, loader)

    with ThreadPoolExecutor(8) as ex:
        futures = [ex.submit(reg.get, "zh") for _ in range(8)]
        assert loader.entered.wait(timeout=10)
        loader.gate.set()
        models = [f.result(timeout=10) for f in futures]

    assert loader.loads == [Path("/m/zh")]
    assert all(m is models[0] for m in models)


def test_a_failed_load_is_tried_again_by_the_next_call() -> None:
    loader = FakeLoader()
    loader.fail_next = True
    reg = ModelRegistry({"zh": "/m/zh"}, loader)

    with pytest.raises(RuntimeError, match="cannot load /m/zh"):
        reg.get("zh")
    assert reg.loaded() == ()
    assert reg.get("zh") == ("model", Path("/m/zh"))
    assert len(loader.loads) == 2
