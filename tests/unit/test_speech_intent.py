"""speech.intent: keyword voting over a vosk result, and the accept / confirm / none decision."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speech.grammar import UNK, build_grammar
from speech.intent import NOTHING, Intent, Thresholds, vote, votes

EN = build_grammar({"1": ["bill", "electricity bill"], "2": ["outage", "power cut"],
                    "3": ["repair"], "0": ["agent", "a person"]})
ZH = build_grammar({"1": ["电费"], "2": ["停电"], "3": ["报修"], "0": ["人工", "人工 服务"]})


def result(*words: tuple[str, float]) -> dict[str, Any]:
    """A vosk result as Result()/FinalResult() gives it with SetWords(True)."""
    return {"text": " ".join(w for w, _ in words),
            "result": [{"word": w, "conf": c, "start": i * 0.5, "end": i * 0.5 + 0.4}
                       for i, (w, c) in enumerate(words)]}


def approx_intent(key: str | None, confidence: float, decision: str) -> Any:
    """An Intent to compare with, its confidence to within float rounding."""
    return Intent(key, pytest.approx(confidence), decision)  # type: ignore[arg-type]


def test_one_clear_word_is_accepted() -> None:
    assert vote(result(("bill", 1.0)), EN) == Intent("1", 1.0, "accept")
    assert vote(result(("停电", 0.93)), ZH) == Intent("2", 0.93, "accept")


def test_a_middling_word_asks_to_confirm_and_a_weak_one_goes_to_keys() -> None:
    assert vote(result(("repair", 0.7)), EN) == Intent("3", 0.7, "confirm")
    assert vote(result(("repair", 0.55)), EN) == Intent("3", 0.55, "confirm")  # the edge
    assert vote(result(("repair", 0.8)), EN) == Intent("3", 0.8, "accept")    # the edge
    assert vote(result(("repair", 0.5)), EN) == Intent(None, 0.5, "none")


def test_unk_and_words_outside_the_grammar_do_not_vote() -> None:
    said = result((UNK, 0.9), ("人工", 0.85), (UNK, 0.4), ("谢谢", 1.0))
    assert votes(said, ZH) == [("0", 0.85)]
    assert vote(said, ZH) == Intent("0", 0.85, "accept")
    # nor does [unk] split a phrase
    assert votes(result(("power", 0.9), (UNK, 0.3), ("cut", 0.7)), EN) == [
        ("2", pytest.approx(0.8))]


def test_silence_and_only_unk_are_nothing() -> None:
    assert vote({"text": ""}, EN) == NOTHING
    assert vote({}, EN) == NOTHING
    assert vote(result((UNK, 1.0), (UNK, 0.7)), EN) == NOTHING


def test_a_phrase_votes_once_with_its_words_mean_confidence() -> None:
    said = result(("power", 0.9), ("cut", 0.7))
    assert votes(said, EN) == [("2", pytest.approx(0.8))]
    assert vote(said, EN) == approx_intent("2", 0.8, "accept")
    # the longest phrase wins: "人工 服务" is one vote, not "人工" and a stray word
    assert votes(result(("人工", 1.0), ("服务", 0.6)), ZH) == [("0", pytest.approx(0.8))]


def test_a_word_of_a_phrase_heard_alone_still_votes() -> None:
    # "cut" alone belongs to "power cut" only: a vote for 2
    assert votes(result(("cut", 0.9)), EN) == [("2", 0.9)]
    assert vote(result(("electricity", 0.95)), EN).key == "1"


def test_votes_for_other_choices_pull_the_confidence_down() -> None:
    # bill twice, outage once: bill wins with 2.0 of 3 votes
    got = vote(result(("bill", 1.0), ("outage", 1.0), ("bill", 1.0)), EN)
    assert got == approx_intent("1", 2 / 3, "confirm")
    assert vote(result(("bill", 1.0), ("outage", 0.2), ("agent", 0.2), ("repair", 0.2)),
                EN) == approx_intent(None, 1 / 4, "none")


def test_a_tie_is_nothing_however_low_the_bar() -> None:
    low = Thresholds(confirm_below=0.01, accept_at=0.05)
    assert vote(result(("bill", 0.9), ("outage", 0.9)), EN, low) == Intent(None, 0.45, "none")
    # a float sum that only nearly ties (0.1 + 0.2 != 0.3) is a tie too
    assert vote(result(("bill", 0.1), ("bill", 0.2), ("outage", 0.3)), EN, low).key is None
    # and without the tie the same bar accepts
    assert vote(result(("bill", 0.1), ("bill", 0.2), ("outage", 0.2)), EN, low).key == "1"


def test_the_text_stands_in_when_vosk_gave_no_words() -> None:
    assert vote({"text": "Agent"}, EN) == Intent("0", 1.0, "accept")


def test_confidences_out_of_range_are_clamped() -> None:
    assert vote(result(("bill", 1.7)), EN) == Intent("1", 1.0, "accept")
    assert vote(result(("bill", float("nan"))), EN) == Intent(None, 0.0, "none")


def test_the_thresholds_are_checked() -> None:
    with pytest.raises(ValueError, match="0 < confirm_below <= accept_at <= 1"):
        Thresholds(confirm_below=0.9, accept_at=0.8)
    with pytest.raises(ValueError):
        Thresholds(confirm_below=0.0, accept_at=0.8)
    strict = Thresholds(confirm_below=0.95, accept_at=0.99)
    assert vote(result(("bill", 0.97)), EN, strict) == Intent("1", 0.97, "confirm")


# ------------------------------------------------------------------------------ properties

KEYS = ("1", "2", "3", "0")
WORDS = st.sampled_from(["bill", "electricity", "outage", "power", "cut", "repair", "agent",
                         "a", "person", UNK, "hello", "please"])
CONF = st.floats(min_value=0.0, max_value=1.0)
SAID = st.lists(st.tuples(WORDS, CONF), max_size=8)
THRESHOLDS = st.tuples(st.floats(0.01, 1.0), st.floats(0.01, 1.0)).map(
    lambda t: Thresholds(min(t), max(t)))


@given(SAID, THRESHOLDS)
def test_the_decision_follows_the_confidence(said: list[tuple[str, float]],
                                             thresholds: Thresholds) -> None:
    got = vote(result(*said), EN, thresholds)

    assert 0.0 <= got.confidence <= 1.0
    assert (got.key is None) == (got.decision == "none")
    assert got.key is None or got.key in KEYS
    if got.decision == "accept":
        assert got.confidence >= thresholds.accept_at
    elif got.decision == "confirm":
        assert thresholds.confirm_below <= got.confidence < thresholds.accept_at


@given(SAID, st.lists(st.integers(0, 8), max_size=4))
def test_unk_anywhere_changes_nothing(said: list[tuple[str, float]],
                                      where: list[int]) -> None:
    with_unk = list(said)
    for i in where:
        with_unk.insert(min(i, len(with_unk)), (UNK, 0.9))
    assert vote(result(*with_unk), EN) == vote(result(*said), EN)


@given(st.sampled_from(["bill", "outage", "repair", "agent"]), st.integers(1, 5),
       st.floats(0.8, 1.0))
def test_one_choice_said_confidently_is_accepted(word: str, times: int, conf: float) -> None:
    got = vote(result(*[(word, conf)] * times), EN)
    assert got.decision == "accept"
    assert got.key == EN.by_phrase[(word,)]
    assert got.confidence == pytest.approx(conf)


@given(SAID)
def test_a_stricter_bar_never_upgrades_the_decision(said: list[tuple[str, float]]) -> None:
    rank = {"none": 0, "confirm": 1, "accept": 2}
    loose = vote(result(*said), EN, Thresholds(0.3, 0.6))
    strict = vote(result(*said), EN, Thresholds(0.6, 0.9))
    assert rank[strict.decision] <= rank[loose.decision]
    assert strict.key in (None, loose.key)
