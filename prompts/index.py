"""The built prompt index: prompt id and language -> audio file, as seen locally and by Asterisk."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

ASTERISK_PROMPT_DIR = "/var/lib/hotline/prompts"
"""Where the cache dir is bind-mounted inside Asterisk's chroot."""

INDEX_FILE = "index.json"
INDEX_VERSION = 1
AUDIO_SUFFIX = ".wav"
BUILD_HINT = "build the prompts first: `hotline prompts build` (or `make prompts`)"


class PromptIndexError(Exception):
    """The index file is missing, unreadable or not an index we understand."""


class UnknownPromptError(LookupError):
    """A prompt id has no built recording in the asked language."""

    def __str__(self) -> str:
        # LookupError would repr() the message, quoting it.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class PromptIndex:
    """What `prompts.build.build_prompts` produced: for each language, prompt id -> cache key.

    A key is the file stem of `<cache_dir>/<key>.wav`. Ids with identical text and voice share
    one key and one file; decoding such a key gives the smallest id (see `lookup_path`).
    """

    cache_dir: Path
    voices: Mapping[str, str]
    rate: int
    prompts: Mapping[str, Mapping[str, str]]
    _by_key: dict[str, tuple[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_key: dict[str, tuple[str, str]] = {}
        # Sorted so that a key shared by several ids always decodes to the same one.
        for lang in sorted(self.prompts):
            for prompt_id in sorted(self.prompts[lang]):
                by_key.setdefault(self.prompts[lang][prompt_id], (prompt_id, lang))
        object.__setattr__(self, "_by_key", by_key)

    @classmethod
    def load(cls, cache_dir: Path) -> PromptIndex:
        """Read `<cache_dir>/index.json`; PromptIndexError says to run the build when it is
        missing or unreadable."""
        path = cache_dir / INDEX_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PromptIndexError(f"no prompt index at {path}: {BUILD_HINT}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PromptIndexError(f"cannot read prompt index {path} ({exc}): {BUILD_HINT}") \
                from exc
        return cls.from_json(cache_dir, raw, source=str(path))

    @classmethod
    def from_json(cls, cache_dir: Path, raw: Any, source: str = INDEX_FILE) -> PromptIndex:
        """Validate the parsed index.json document."""
        if not isinstance(raw, dict) or raw.get("version") != INDEX_VERSION:
            version = raw.get("version") if isinstance(raw, dict) else None
            raise PromptIndexError(f"{source}: unsupported index version {version!r} "
                                   f"(expected {INDEX_VERSION}): {BUILD_HINT}")
        voices, rate, prompts = raw.get("voices"), raw.get("rate"), raw.get("prompts")
        if (not isinstance(voices, dict) or not isinstance(rate, int)
                or not isinstance(prompts, dict)
                or not all(isinstance(m, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                       for k, v in m.items())
                           for m in prompts.values())):
            raise PromptIndexError(f"{source}: malformed prompt index: {BUILD_HINT}")
        return cls(cache_dir=cache_dir, voices=dict(voices), rate=rate,
                   prompts={lang: dict(ids) for lang, ids in prompts.items()})

    def to_json(self) -> dict[str, Any]:
        """The index.json document (sorted, so rebuilding the same catalog gives the same file)."""
        return {
            "version": INDEX_VERSION,
            "voices": dict(sorted(self.voices.items())),
            "rate": self.rate,
            "prompts": {lang: dict(sorted(ids.items()))
                        for lang, ids in sorted(self.prompts.items())},
        }

    @property
    def languages(self) -> tuple[str, ...]:
        """Languages with at least one built prompt."""
        return tuple(sorted(lang for lang, ids in self.prompts.items() if ids))

    def has(self, prompt_id: str, lang: str) -> bool:
        """Whether `prompt_id` was built in `lang`."""
        return prompt_id in self.prompts.get(lang, {})

    def key(self, prompt_id: str, lang: str) -> str:
        """The cache key (file stem) of `prompt_id` in `lang`."""
        try:
            return self.prompts[lang][prompt_id]
        except KeyError:
            raise UnknownPromptError(f"prompt {prompt_id!r} has no {lang!r} recording in the "
                                     f"index at {self.cache_dir}: add it to the catalog and "
                                     "rebuild") from None

    def asterisk_path(self, prompt_id: str, lang: str) -> str:
        """The path Asterisk plays, inside its chroot, without extension (Asterisk picks the
        format)."""
        return f"{ASTERISK_PROMPT_DIR}/{self.key(prompt_id, lang)}"

    def local_file(self, prompt_id: str, lang: str) -> Path:
        """The wav file in the cache dir on this host."""
        return self.cache_dir / f"{self.key(prompt_id, lang)}{AUDIO_SUFFIX}"

    def lookup_path(self, path: str) -> tuple[str, str] | None:
        """Decode what Asterisk played back to (id, lang), or None if it is not one of ours.

        Accepts an Asterisk path (`/var/lib/hotline/prompts/<key>`), a local path in the cache
        dir, or a bare key, each with or without an audio extension, surrounding quotes or
        whitespace (as they appear in AGIExec event arguments).
        """
        text = path.strip().strip('"').strip("'").strip()
        if not text:
            return None
        candidate = PurePosixPath(text)
        parent = str(candidate.parent)
        if parent not in (".", ASTERISK_PROMPT_DIR, self.cache_dir.as_posix()):
            return None
        stem = candidate.name
        if "." in stem:
            stem = stem.split(".", 1)[0]
        return self._by_key.get(stem)
