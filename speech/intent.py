"""Keyword voting: which menu choice a vosk result stands for, and how sure we are.

The result is the JSON of KaldiRecognizer.Result()/FinalResult() with SetWords(True):
{"text": "...", "result": [{"word", "conf", "start", "end"}, ...]}.

Reading the words in order, the longest phrase of the grammar that starts at a word is one vote
for its choice, weighted by its words' mean confidence; a word outside any phrase match that
belongs to one choice's phrases only is one vote for it, weighted by its confidence. "[unk]"
is left out before (so it never splits a phrase); words two choices share and words outside
the grammar do not vote and do not count.

    confidence = the winner's weight / the number of votes

so one clear word keeps vosk's confidence, a repeated word averages it, and words for other
choices pull it down. Then:

    confidence >= accept_at                 accept  (route at once)
    confirm_below <= confidence < accept_at confirm ("您是要查询电费吗？是请按1")
    below confirm_below, a tie, no vote     none    (the key menu, as today)

A "none" never names a key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from speech.grammar import UNK, Grammar, normalize

Decision = Literal["accept", "confirm", "none"]


@dataclass(frozen=True)
class Thresholds:
    confirm_below: float = 0.55
    accept_at: float = 0.80

    def __post_init__(self) -> None:
        if not 0 < self.confirm_below <= self.accept_at <= 1:
            raise ValueError(f"thresholds must keep 0 < confirm_below <= accept_at <= 1, not "
                             f"{self.confirm_below} and {self.accept_at}")

    def decide(self, confidence: float) -> Decision:
        if confidence >= self.accept_at:
            return "accept"
        if confidence >= self.confirm_below:
            return "confirm"
        return "none"


@dataclass(frozen=True)
class Intent:
    key: str | None
    confidence: float
    decision: Decision


NOTHING = Intent(None, 0.0, "none")


def _words(result: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(word, confidence) in order. A result without word entries (SetWords off) falls back
    to its text, each word fully confident."""
    entries = result.get("result")
    if isinstance(entries, Sequence) and entries:
        out = []
        for e in entries:
            conf = float(e.get("conf", 1.0))
            conf = min(max(conf, 0.0), 1.0) if math.isfinite(conf) else 0.0
            out.append((str(e.get("word", "")), conf))
        return out
    return [(w, 1.0) for w in str(result.get("text", "")).split()]


def votes(result: Mapping[str, Any], grammar: Grammar) -> list[tuple[str, float]]:
    """(choice, weight) for every vote the result casts, in order."""
    # [unk] is dropped first: it votes for nothing and does not split a phrase around it
    words = [(normalize(w), c) for w, c in _words(result) if w != UNK]
    out: list[tuple[str, float]] = []
    i = 0
    while i < len(words):
        for n in range(min(grammar.longest, len(words) - i), 0, -1):
            span = words[i:i + n]
            key = grammar.by_phrase.get(tuple(w for w, _ in span))
            if key is not None:
                out.append((key, sum(c for _, c in span) / n))
                i += n
                break
        else:
            word, conf = words[i]
            key = grammar.by_word.get(word)
            if key is not None:
                out.append((key, conf))
            i += 1
    return out


def vote(result: Mapping[str, Any], grammar: Grammar,
         thresholds: Thresholds = Thresholds()) -> Intent:
    """The choice a result stands for, with its confidence and what to do about it."""
    cast = votes(result, grammar)
    if not cast:
        return NOTHING
    weight: dict[str, float] = {}
    for key, w in cast:
        weight[key] = weight.get(key, 0.0) + w
    ranked = sorted(weight.items(), key=lambda kv: kv[1], reverse=True)
    best_key, best = ranked[0]
    confidence = min(best / len(cast), 1.0)
    if len(ranked) > 1 and math.isclose(ranked[1][1], best, abs_tol=1e-9):
        return Intent(None, confidence, "none")  # a tie: the caller picks with a key
    decision = thresholds.decide(confidence)
    return Intent(best_key if decision != "none" else None, confidence, decision)
