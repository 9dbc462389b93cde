"""Keyword spotting in a transcript (post-call alerts): which of [speech] alert_keywords a
caller or agent said, where, and the words around the first hit. Pure.

How a keyword matches (vosk gives words; a keyword may be one word, part of one, or several):

- Both sides are normalised as speech.grammar does (NFKC, lower case, punctuation dropped), and
  the spaces are dropped: a keyword matches where its letters follow one another in the
  transcript's words joined without spaces. "1 2 3 4 5" and "12345" are one keyword, and so are
  vosk's "投 诉" and "投诉".
- Spelled digits count as digits: a transcript word made only of one language's digit words
  is read as digits too (Chinese 零〇一二三四五六七八九幺两, Korean Sino-Korean
  공영일이삼사오육칠팔구, English zero/oh/one ... nine), so a caller saying 一二三四五 or
  "one two three four five" matches 12345. Each word is tried both ways (as heard and as digits).
- Edges: a keyword starting (ending) with a digit does not match inside a longer number (12345
  is not in 123456, nor in vosk's "1 2 3 4 5 6"), one starting (ending) with a Latin letter not
  inside a longer Latin word ("media" is not in "multimedia"; it is in "the media"). Chinese
  and Korean keywords match inside a word (vosk's Korean words carry their particles: 변호사가
  holds 변호사).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from speech.grammar import normalize

# a transcript word made only of these, in one language, is read as digits as well
_HAN_DIGITS = {"零": "0", "〇": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3",
               "四": "4", "五": "5", "六": "6", "七": "7", "八": "8", "九": "9"}
_KO_DIGITS = {"공": "0", "영": "0", "일": "1", "이": "2", "삼": "3", "사": "4", "오": "5",
              "육": "6", "륙": "6", "칠": "7", "팔": "8", "구": "9"}
_EN_DIGITS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
              "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
# words either side of the first hit in an alert's excerpt
EXCERPT_BEFORE = 8
EXCERPT_AFTER = 12
MAX_EXCERPT = 300
MAX_HITS = 50  # hits kept per transcript (a long call repeating one word)


@dataclass(frozen=True)
class Word:
    """One recognised word: vosk's {"word", "start", "end", "conf"}."""

    w: str
    s: float
    e: float
    c: float

    def doc(self) -> dict[str, Any]:
        return {"w": self.w, "s": round(self.s, 2), "e": round(self.e, 2), "c": round(self.c, 3)}


@dataclass(frozen=True)
class Hit:
    word: str      # the keyword as configured
    start: float   # seconds into the recording where its first word starts
    index: int     # that word's place in the transcript

    def doc(self) -> dict[str, Any]:
        return {"word": self.word, "start": round(self.start, 2)}


def words_of(result: Mapping[str, Any]) -> list[Word]:
    """The words of a vosk result ({"text", "result": [{"word", "start", "end", "conf"}]})."""
    out = []
    for r in result.get("result", ()) or ():
        try:
            out.append(Word(str(r["word"]), float(r["start"]), float(r["end"]),
                            float(r.get("conf", 1.0))))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _plain(text: str) -> str:
    """Normalised, without spaces."""
    return normalize(unicodedata.normalize("NFKC", text)).replace(" ", "")


def as_digits(word: str) -> str | None:
    """The digits a spelled-out number word stands for, or None when it is not one: 一二三 ->
    "123", 일이삼 -> "123", "five" -> "5", "12" -> "12"."""
    w = _plain(word)
    if not w:
        return None
    if w.isascii() and w.isdigit():
        return w
    if w in _EN_DIGITS:
        return _EN_DIGITS[w]
    for table in (_HAN_DIGITS, _KO_DIGITS):
        if all(c in table for c in w):
            return "".join(table[c] for c in w)
    return None


def keyword_form(keyword: str) -> str:
    """What a configured keyword is matched as: normalised, no spaces, spelled digits as
    digits when the whole keyword is a number ("1 2 3 4 5", "一二三四五" -> "12345")."""
    parts = normalize(unicodedata.normalize("NFKC", keyword)).split()
    digits = [as_digits(p) for p in parts]
    if parts and all(d is not None for d in digits):
        return "".join(d for d in digits if d is not None)
    return "".join(parts)


def _kind(c: str) -> str:
    if c.isascii() and c.isdigit():
        return "digit"
    if c.isascii() and c.isalpha():
        return "latin"
    return "other"


def _joined(forms: Sequence[str]) -> tuple[str, list[int]]:
    """The word forms joined, and for each character the index of the word it came from."""
    text: list[str] = []
    owner: list[int] = []
    for i, f in enumerate(forms):
        text.append(f)
        owner.extend([i] * len(f))
    return "".join(text), owner


def _find(form: str, joined: str, owner: list[int]) -> Iterable[int]:
    """Word indexes where `form` starts in `joined`, edges respected."""
    first, last = _kind(form[0]), _kind(form[-1])
    at = joined.find(form)
    while at >= 0:
        end = at + len(form)
        # a Latin word ends where vosk's word ends; a number runs on across words (vosk
        # spells 123456 one digit a word)
        before_ok = (at == 0 or first == "other" or _kind(joined[at - 1]) != first
                     or (first == "latin" and owner[at - 1] != owner[at]))
        after_ok = (end == len(joined) or last == "other" or _kind(joined[end]) != last
                    or (last == "latin" and owner[end] != owner[end - 1]))
        if before_ok and after_ok:
            yield owner[at]
        at = joined.find(form, at + 1)


def find_keywords(words: Sequence[Word], keywords: Sequence[str]) -> list[Hit]:
    """Every place a keyword was said, in time order (at most MAX_HITS); one place is counted
    once per keyword even when it matches both as heard and as digits."""
    heard = [_plain(w.w) for w in words]
    spelled = [as_digits(w.w) or f for w, f in zip(words, heard, strict=True)]
    views = [_joined(heard)] + ([_joined(spelled)] if spelled != heard else [])
    hits: set[tuple[int, str]] = set()
    for keyword in keywords:
        form = keyword_form(keyword)
        if not form:
            continue
        for joined, owner in views:
            hits.update((i, keyword) for i in _find(form, joined, owner))
    ordered = sorted(hits, key=lambda h: (h[0], keywords.index(h[1])))[:MAX_HITS]
    return [Hit(word=k, start=words[i].s, index=i) for i, k in ordered]


def excerpt(words: Sequence[Word], hits: Sequence[Hit]) -> str:
    """The words around the first hit (what the supervisor reads on the alert)."""
    if not words:
        return ""
    at = hits[0].index if hits else 0
    lo, hi = max(0, at - EXCERPT_BEFORE), min(len(words), at + EXCERPT_AFTER + 1)
    text = " ".join(w.w for w in words[lo:hi])
    text = ("… " if lo > 0 else "") + text + (" …" if hi < len(words) else "")
    return text[:MAX_EXCERPT]


def distinct_words(hits: Iterable[Mapping[str, Any]]) -> list[str]:
    """The keywords hit, each once, in the order first said."""
    out: list[str] = []
    for h in hits:
        w = str(h.get("word", ""))
        if w and w not in out:
            out.append(w)
    return out
