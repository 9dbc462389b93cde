"""vosk models by language: each loads once per process, on first use, and every call shares
it (a model is read-only once loaded; each call has its own recogniser over it)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# vosk's log level: -1 still prints Kaldi's warnings (one per grammar word missing from the
# model, on every recogniser), -2 keeps only errors
QUIET = -2

Loader = Callable[[Path], Any]


def load_vosk_model(path: Path) -> Any:
    """The real loader: vosk, quiet, one model folder (seconds and hundreds of MB)."""
    import vosk  # here, so the rest of the registry (and its tests) need no vosk

    vosk.SetLogLevel(QUIET)
    return vosk.Model(str(path))


class ModelRegistry:
    """Languages -> model folders (the [speech] models table), loaded lazily and thread-safely:
    two calls asking at once wait for one load; two languages naming one folder share it."""

    def __init__(self, paths: Mapping[str, Path | str], loader: Loader = load_vosk_model) -> None:
        self._paths = {lang: Path(p) for lang, p in paths.items()}
        self._loader = loader
        self._lock = threading.Lock()           # guards the two dicts below
        self._loading: dict[Path, threading.Lock] = {}
        self._models: dict[Path, Any] = {}

    def available(self, lang: str) -> bool:
        """Whether speech may be offered to a caller in this language: a model is configured.
        False: the menu takes keys only and its prompts do not mention speech."""
        return lang in self._paths

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(self._paths))

    def get(self, lang: str) -> Any:
        """The language's model, loading it on first use. KeyError without one; a model that
        fails to load raises the loader's error, and the next call tries again."""
        path = self._paths[lang]
        with self._lock:
            model = self._models.get(path)
            if model is not None:
                return model
            gate = self._loading.setdefault(path, threading.Lock())
        with gate:
            with self._lock:
                model = self._models.get(path)
            if model is None:
                model = self._loader(path)
                with self._lock:
                    self._models[path] = model
            return model

    def loaded(self) -> tuple[str, ...]:
        """The languages whose model is in memory now."""
        with self._lock:
            return tuple(sorted(lang for lang, p in self._paths.items() if p in self._models))
