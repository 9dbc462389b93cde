"""The prompt catalog: prompt id -> text per language, loaded from YAML with file:line errors."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

LANGUAGES: tuple[str, ...] = ("zh", "en")
"""Languages a catalog entry may use unless the caller says otherwise (Mandarin first)."""

_STR_TAG = "tag:yaml.org,2002:str"


class CatalogError(Exception):
    """A catalog file is unreadable or invalid; the message starts with `file:line:`."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.reason = message
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class _Origin:
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


class Catalog:
    """Prompt texts by id and language. `load_catalog` builds one from YAML; tests may build one
    directly from a dict. It is not mutated after construction."""

    def __init__(self, texts: Mapping[str, Mapping[str, str]],
                 origins: Mapping[str, str] | None = None) -> None:
        self._texts: dict[str, dict[str, str]] = {i: dict(t) for i, t in texts.items()}
        self._origins: dict[str, str] = dict(origins or {})

    @property
    def languages(self) -> tuple[str, ...]:
        """Languages that have at least one entry, known languages first in `LANGUAGES` order."""
        present = {lang for texts in self._texts.values() for lang in texts}
        known = [lang for lang in LANGUAGES if lang in present]
        return tuple(known + sorted(present.difference(known)))

    def ids(self) -> list[str]:
        """Every prompt id, sorted."""
        return sorted(self._texts)

    def has(self, prompt_id: str, lang: str) -> bool:
        """Whether `prompt_id` has a text in `lang`."""
        return lang in self._texts.get(prompt_id, {})

    def text(self, prompt_id: str, lang: str) -> str:
        """The text of `prompt_id` in `lang`; KeyError names both when it is missing."""
        try:
            return self._texts[prompt_id][lang]
        except KeyError:
            raise KeyError(f"prompt {prompt_id!r} has no {lang!r} text in the catalog") from None

    def origin(self, prompt_id: str) -> str:
        """`file:line` where `prompt_id` is defined (or "?" if built from a dict), for errors."""
        return self._origins.get(prompt_id, "?")

    def entries(self) -> Iterator[tuple[str, str, str]]:
        """Every (id, lang, text), sorted by id then language, so builds are deterministic."""
        for prompt_id in sorted(self._texts):
            texts = self._texts[prompt_id]
            for lang in sorted(texts):
                yield prompt_id, lang, texts[lang]

    def __len__(self) -> int:
        return len(self._texts)

    def __repr__(self) -> str:
        return f"Catalog({len(self._texts)} ids, languages={self.languages})"


def load_catalog(catalog_dir: Path, languages: Iterable[str] = LANGUAGES) -> Catalog:
    """Load and merge every `*.yaml` in `catalog_dir` (sorted by name).

    Raises CatalogError naming file and line for a YAML syntax error, an entry that is not a
    mapping of language to non-empty string, an id defined twice (in one file or across files)
    and a language outside `languages`.
    """
    if not catalog_dir.is_dir():
        raise CatalogError(catalog_dir, None, "catalog directory does not exist")
    return load_catalog_files(sorted(catalog_dir.glob("*.yaml")), languages)


def load_catalog_files(paths: Iterable[Path], languages: Iterable[str] = LANGUAGES) -> Catalog:
    """Load and merge the given catalog files, with the same checks as `load_catalog`."""
    allowed = tuple(languages)
    texts: dict[str, dict[str, str]] = {}
    origins: dict[str, _Origin] = {}
    for path in paths:
        for prompt_id, entry, origin in _load_file(path, allowed):
            if prompt_id in origins:
                raise CatalogError(path, origin.line,
                                   f"duplicate prompt id {prompt_id!r} (first defined at "
                                   f"{origins[prompt_id]})")
            texts[prompt_id] = entry
            origins[prompt_id] = origin
    return Catalog(texts, {i: str(o) for i, o in origins.items()})


def _line(node: Node) -> int:
    # yaml marks are 0-based; editors and humans count lines from 1.
    return node.start_mark.line + 1


def _load_file(path: Path, languages: tuple[str, ...]) -> list[tuple[str, dict[str, str], _Origin]]:
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(path, None, f"cannot read: {exc}") from exc
    try:
        # compose, not safe_load: the node tree keeps line marks and every duplicate key,
        # which a plain dict would silently collapse to the last one.
        root = yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise CatalogError(path, line, f"YAML syntax error: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(path, None, f"YAML error: {exc}") from exc
    if root is None:
        return []
    if not isinstance(root, MappingNode):
        raise CatalogError(path, _line(root), "a catalog file must be a mapping of prompt id to "
                                              "{language: text}")
    seen: dict[str, int] = {}
    out: list[tuple[str, dict[str, str], _Origin]] = []
    for key_node, value_node in root.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag != _STR_TAG or not key_node.value:
            raise CatalogError(path, _line(key_node), "a prompt id must be a non-empty string")
        prompt_id = key_node.value
        if prompt_id in seen:
            raise CatalogError(path, _line(key_node), f"duplicate prompt id {prompt_id!r} (first "
                                                      f"defined at {path}:{seen[prompt_id]})")
        seen[prompt_id] = _line(key_node)
        out.append((prompt_id, _entry(path, prompt_id, value_node, languages),
                    _Origin(path, _line(key_node))))
    return out


def _entry(path: Path, prompt_id: str, node: Node, languages: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(node, MappingNode) or not node.value:
        raise CatalogError(path, _line(node), f"prompt {prompt_id!r} must be a non-empty mapping "
                                              f"of language to text, e.g. {{zh: ..., en: ...}}")
    texts: dict[str, str] = {}
    for lang_node, text_node in node.value:
        if not isinstance(lang_node, ScalarNode) or lang_node.tag != _STR_TAG:
            raise CatalogError(path, _line(lang_node),
                               f"prompt {prompt_id!r}: a language key must be a string")
        lang = lang_node.value
        if lang not in languages:
            raise CatalogError(path, _line(lang_node),
                               f"prompt {prompt_id!r}: unknown language {lang!r} "
                               f"(known: {', '.join(languages)})")
        if lang in texts:
            raise CatalogError(path, _line(lang_node),
                               f"prompt {prompt_id!r}: language {lang!r} given twice")
        # Strict on the tag: YAML 1.1 turns unquoted yes/no/on/off into booleans and 010 into 8,
        # so an unquoted piece text could be spoken as something the author never wrote.
        if (not isinstance(text_node, ScalarNode) or text_node.tag != _STR_TAG
                or not text_node.value.strip()):
            raise CatalogError(path, _line(text_node),
                               f"prompt {prompt_id!r}: the {lang!r} text must be a non-empty "
                               f"string (quote it if YAML reads it as a number, boolean or null)")
        texts[lang] = text_node.value.strip()
    return texts
