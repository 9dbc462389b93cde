"""A menu's phrases, per language, as vosk wants them (its grammar list) and as voting reads
them (which choice a recognised phrase or word stands for).

A flow's menu lists them as {lang: {option key: [phrases]}} (ivr.schema checks them). Phrases
are normalised the same way (ivr.schema.normalize_phrase) in the flow check, here and on what
vosk returns, so "Bill!" in a flow and "bill" from the recogniser are one phrase.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# one definition of "the same phrase" for the flow check and the recogniser
from ivr.schema import normalize_phrase as normalize

__all__ = ["UNK", "Grammar", "build_grammar", "build_grammars", "normalize"]

# vosk's word for "something outside the grammar"; it votes for nothing. A model whose graph
# has no such word (the Korean test model) warns and ignores it: then every sound is forced
# onto one of the phrases, and only the confidences and the vote guard against it.
UNK = "[unk]"


@dataclass(frozen=True)
class Grammar:
    """One menu in one language."""

    # what KaldiRecognizer takes (json.dumps of it): every phrase once, then UNK
    phrases: tuple[str, ...]
    # a whole phrase, as its words -> its choice
    by_phrase: Mapping[tuple[str, ...], str]
    # a word of one choice's phrases only -> that choice (a word two choices share is not here)
    by_word: Mapping[str, str]

    @property
    def longest(self) -> int:
        """Words in the longest phrase."""
        return max((len(p) for p in self.by_phrase), default=0)


def build_grammar(choices: Mapping[str, Sequence[str]]) -> Grammar:
    """From {option key: [phrases]}. A phrase that is empty once normalised, or one that two
    choices list, raises ValueError (a valid flow has neither)."""
    by_phrase: dict[tuple[str, ...], str] = {}
    word_keys: dict[str, set[str]] = {}
    ordered: list[str] = []
    for key, phrases in choices.items():
        for raw in phrases:
            phrase = normalize(raw)
            if not phrase:
                raise ValueError(f"choice {key!r}: phrase {raw!r} has no words")
            words = tuple(phrase.split())
            other = by_phrase.get(words)
            if other is not None and other != key:
                raise ValueError(f"phrase {phrase!r} stands for both {other!r} and {key!r}")
            if other is None:
                by_phrase[words] = key
                ordered.append(phrase)
            for w in words:
                word_keys.setdefault(w, set()).add(key)
    by_word = {w: next(iter(keys)) for w, keys in word_keys.items() if len(keys) == 1}
    return Grammar(phrases=(*ordered, UNK), by_phrase=by_phrase, by_word=by_word)


def build_grammars(speech: Mapping[str, Mapping[str, Sequence[str]]]) -> dict[str, Grammar]:
    """A menu's `speech:` mapping -> {lang: Grammar}."""
    return {lang: build_grammar(choices) for lang, choices in speech.items()}
