"""Unit tests of the prompt catalog loader: merging, lookups, and file:line errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from prompts.catalog import Catalog, CatalogError, load_catalog, load_catalog_files

PIECES = Path(__file__).resolve().parents[2] / "prompts" / "catalog" / "pieces.yaml"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(directory: Path) -> CatalogError:
    with pytest.raises(CatalogError) as info:
        load_catalog(directory)
    return info.value


def test_merges_every_yaml_file_in_the_directory(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "greet:\n  zh: 您好\n  en: Hello\n")
    write(tmp_path, "b.yaml", "num.zh.1: {zh: 一}\nbye: {en: Goodbye}\n")
    write(tmp_path, "notes.txt", "not: [a catalog\n")
    write(tmp_path, "empty.yaml", "# nothing yet\n")

    catalog = load_catalog(tmp_path)

    assert catalog.has("greet", "zh") and catalog.has("greet", "en")
    assert catalog.has("num.zh.1", "zh") and not catalog.has("num.zh.1", "en")
    assert not catalog.has("missing", "zh")
    assert catalog.text("greet", "zh") == "您好"
    assert catalog.languages == ("zh", "en")
    assert list(catalog.entries()) == [
        ("bye", "en", "Goodbye"),
        ("greet", "en", "Hello"),
        ("greet", "zh", "您好"),
        ("num.zh.1", "zh", "一"),
    ]
    assert catalog.origin("greet") == f"{tmp_path / 'a.yaml'}:1"


def test_text_of_a_missing_language_names_id_and_language() -> None:
    catalog = Catalog({"bye": {"en": "Goodbye"}})
    with pytest.raises(KeyError, match="'bye' has no 'zh'"):
        catalog.text("bye", "zh")


@pytest.mark.parametrize(
    ("source", "line", "words"),
    [
        pytest.param("ok: {zh: 好}\nbad: {zh: 坏\n", 3, "YAML syntax error", id="syntax"),
        pytest.param("ok: {zh: 好}\nbad:\n\tzh: 坏\n", 3, "YAML syntax error", id="tab-indent"),
        pytest.param("ok: {zh: 好}\nbad: just a string\n", 2, "mapping of language to text",
                     id="entry-is-a-string"),
        pytest.param("ok: {zh: 好}\nbad:\n  - zh\n  - en\n", 3, "mapping of language to text",
                     id="entry-is-a-list"),
        pytest.param("ok: {zh: 好}\nbad: {}\n", 2, "mapping of language to text",
                     id="entry-is-empty"),
        pytest.param("ok: {zh: 好}\nbad:\n", 2, "mapping of language to text", id="entry-is-null"),
        pytest.param("ok: {zh: 好}\nbad:\n  zh: ''\n", 3, "non-empty string", id="empty-text"),
        pytest.param("ok: {zh: 好}\nbad:\n  zh: '   '\n", 3, "non-empty string", id="blank-text"),
        pytest.param("ok: {zh: 好}\nbad:\n  en:\n", 3, "non-empty string", id="null-text"),
        pytest.param("ok: {zh: 好}\nbad:\n  en: 5\n", 3, "non-empty string", id="number-text"),
        pytest.param("ok: {zh: 好}\nbad:\n  en: no\n", 3, "quote it", id="boolean-text"),
        pytest.param("ok: {zh: 好}\nbad:\n  en: [a, b]\n", 3, "non-empty string", id="list-text"),
        pytest.param("ok: {zh: 好}\nbad:\n  zh: 坏\n  fr: mauvais\n", 4, "unknown language 'fr'",
                     id="unknown-language"),
        pytest.param("ok: {zh: 好}\nbad:\n  zh: 坏\n  zh: 差\n", 4, "language 'zh' given twice",
                     id="language-twice"),
        pytest.param("a: {zh: 一}\nb: {zh: 二}\na: {zh: 三}\n", 3,
                     "duplicate prompt id 'a' (first defined at", id="duplicate-in-file"),
        pytest.param("ok: {zh: 好}\n1: {zh: 一}\n", 2, "prompt id must be a non-empty string",
                     id="id-not-a-string"),
        pytest.param("# a list, not a mapping\n- a\n- b\n", 2, "must be a mapping",
                     id="top-level-list"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, source: str, line: int, words: str) -> None:
    path = write(tmp_path, "bad.yaml", source)

    error = load_error(tmp_path)

    assert str(error).startswith(f"{path}:{line}: ")
    assert words in str(error)
    assert (error.path, error.line) == (path, line)


def test_duplicate_id_across_files_names_both_places(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", "x: {zh: 一}\nshared: {zh: 二}\n")
    second = write(tmp_path, "b.yaml", "y: {en: one}\n\nshared:\n  en: two\n")

    error = load_error(tmp_path)

    assert str(error).startswith(f"{second}:3: duplicate prompt id 'shared'")
    assert f"first defined at {first}:2" in str(error)


def test_the_allowed_languages_can_be_narrowed(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "ok: {zh: 好}\nhi: {en: hi}\n")

    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path, languages=("zh",))

    assert str(info.value).startswith(f"{path}:2: prompt 'hi': unknown language 'en'")


def test_missing_directory_and_unreadable_file_are_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog(tmp_path / "nope")
    (tmp_path / "latin1.yaml").write_bytes("a: {zh: caf\xe9}\n".encode("latin-1"))
    assert "cannot read" in str(load_error(tmp_path))


def test_pieces_catalog_loads_with_texts_unique_per_language() -> None:
    catalog = load_catalog_files([PIECES])

    # Unique texts mean unique recordings, so a played file decodes back to a single piece.
    for lang in catalog.languages:
        texts = Counter(text for _, entry_lang, text in catalog.entries() if entry_lang == lang)
        assert [t for t, n in texts.items() if n > 1] == [], lang
    # Piece ids carry their language: num.zh.* is Mandarin only, num.en.* English only.
    for prompt_id, lang, _ in catalog.entries():
        assert prompt_id.split(".")[1] == lang, prompt_id


def test_the_outage_announcement_phrases_are_in_the_catalog_as_written() -> None:
    """outages.announce.PHRASES are what callers hear before the menu: every one in the
    shipped catalog, in every language, with the very text the announcement module gives."""
    from outages.announce import PHRASES, missing_phrases

    catalog = load_catalog(Path(__file__).resolve().parents[2] / "prompts" / "catalog")

    assert missing_phrases(catalog) == []
    assert {(pid, lang): catalog.text(pid, lang) for pid in PHRASES for lang in ("zh", "en")} \
        == {(pid, lang): PHRASES[pid][lang] for pid in PHRASES for lang in ("zh", "en")}
