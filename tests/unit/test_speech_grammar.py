"""speech.grammar: a menu's phrases as the vosk grammar list and as the voting index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivr.schema import load_flow_dir
from speech.grammar import UNK, build_grammar, build_grammars, normalize

FLOWS = Path(__file__).resolve().parents[2] / "ivr" / "flows"


@pytest.mark.parametrize(("raw", "said"), [
    ("Bill", "bill"),
    ("  The   BILL, please! ", "the bill please"),
    ("bill,outage", "bill outage"),
    ("电费。", "电费"),
    ("人工 服务", "人工 服务"),
    ("「报修」", "报修"),
    ("\t요금\n", "요금"),
    ("?!…", ""),
    ("12345", "12345"),
])
def test_normalize(raw: str, said: str) -> None:
    assert normalize(raw) == said


def test_the_grammar_lists_each_phrase_once_then_unk() -> None:
    g = build_grammar({"1": ["Bill", "the bill", "bill!"], "0": ["Agent", "a person"]})

    assert g.phrases == ("bill", "the bill", "agent", "a person", UNK)
    # what KaldiRecognizer takes
    assert json.loads(json.dumps(list(g.phrases))) == ["bill", "the bill", "agent",
                                                       "a person", "[unk]"]
    assert g.by_phrase == {("bill",): "1", ("the", "bill"): "1", ("agent",): "0",
                           ("a", "person"): "0"}
    assert g.longest == 2


def test_a_word_two_choices_share_votes_for_neither() -> None:
    g = build_grammar({"1": ["check the bill"], "2": ["check an outage"], "0": ["agent"]})

    assert g.by_word == {"the": "1", "bill": "1", "an": "2", "outage": "2", "agent": "0"}


def test_one_phrase_for_two_choices_is_refused() -> None:
    with pytest.raises(ValueError, match="phrase 'bill' stands for both '1' and '2'"):
        build_grammar({"1": ["bill"], "2": ["Bill."]})


def test_a_phrase_without_words_is_refused() -> None:
    with pytest.raises(ValueError, match=r"choice '1': phrase '\?\?' has no words"):
        build_grammar({"1": ["??"]})


def test_the_shipped_main_menu_builds_a_grammar_per_language() -> None:
    menu = load_flow_dir(FLOWS).get("main").nodes["main_menu"]

    grammars = build_grammars(menu.speech)

    assert set(grammars) == {"zh", "en"}
    assert grammars["zh"].phrases == ("电费", "停电", "报修", "人工", UNK)
    assert grammars["en"].by_phrase == {("bill",): "1", ("outage",): "2", ("repair",): "3",
                                        ("agent",): "0"}
    assert set(grammars["zh"].by_phrase.values()) <= set(menu.options)
