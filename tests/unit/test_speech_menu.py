"""ivr.engine: a menu the caller may speak to (issue 13). With a model for the caller's speech
language the menu listens (Listen, its speech prompt); a key is a key, a sure intent routes like
its key, a middling one is asked back (1 is yes), nothing or nobody listening gives the key
menu exactly as without speech; and the IVR path keeps the intent, never what was said."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ivr.engine import (
    Action,
    Collect,
    Collected,
    Engine,
    EngineError,
    Hangup,
    Heard,
    Listen,
    Prompt,
    Record,
    Session,
    Start,
)
from ivr.schema import FlowSet, FlowValidationError, load_flow_dir, parse_flow
from prompts.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(ROOT / "prompts" / "catalog")
KO = load_flow_dir(ROOT / "tests" / "support" / "flows", CATALOG.has, required=["main"])
MAIN = load_flow_dir(ROOT / "ivr" / "flows", CATALOG.has, required=["main"])
START = Start(caller="13800138000", call_id="c1", now=datetime(2026, 4, 1, tzinfo=UTC))
KEY_MENU = Collect((Prompt("ivr.main_menu", "zh"),), 1, 5)


def start(speech_langs: frozenset[str] = frozenset({"ko"})) -> tuple[Engine, Session,
                                                                       list[Action]]:
    engine = Engine(KO, "main", speech_langs=speech_langs)
    s, acts = engine.start(START)
    return engine, s, acts


def path(acts: list[Action]) -> list[dict[str, object]]:
    return [dict(a.step) for a in acts if isinstance(a, Record)]


def test_with_a_model_the_menu_listens_with_its_speech_prompt() -> None:
    _, s, acts = start()
    assert acts[-1] == Listen((Prompt("speech.main_menu", "zh"),), "ko",
                              {"1": ("요금", "전기 요금"), "2": ("정전",),
                               "3": ("수리 기사", "기사"), "0": ("상담원",)})
    assert s.node == "menu"


def test_without_a_model_for_the_language_the_menu_is_keys_as_ever() -> None:
    _, s, acts = start(frozenset({"zh"}))
    assert acts[-1] == KEY_MENU  # the key menu's own prompt: no mention of speech
    # the shipped main flow has zh and en phrases: no model, no speech
    engine = Engine(MAIN, "main")
    s, acts = engine.start(START)
    assert not any(isinstance(a, Listen) for a in acts)


def test_a_sure_intent_routes_like_its_key_and_the_path_keeps_only_the_intent() -> None:
    engine, s, _ = start()
    s, acts = engine.step(s, Heard(key="0", confidence=0.934, decision="accept"))
    assert s.node == "chose_agent" and isinstance(acts[-1], Hangup)
    assert path(acts)[0] == {"node": "menu", "speech": "0", "confidence": 0.93,
                             "decision": "accept"}


def test_a_key_pressed_while_listening_is_a_key() -> None:
    engine, s, _ = start()
    s, acts = engine.step(s, Heard(digit="2"))
    assert s.node == "chose_outage"
    assert path(acts)[0] == {"node": "menu", "input": "2"}
    # a wrong key is re-prompted as without speech (keys only from then on)
    engine, s, _ = start()
    s, acts = engine.step(s, Heard(digit="7"))
    assert s.node == "menu" and isinstance(acts[-1], Collect) and s.attempts == 1


def test_a_middling_intent_is_asked_back_and_1_takes_it() -> None:
    engine, s, _ = start()
    s, acts = engine.step(s, Heard(key="3", confidence=0.66, decision="confirm"))
    assert acts[-1] == Collect((Prompt("speech.confirm_fault", "zh"),), 1, 5)
    assert s.confirming == "3"
    assert path(acts)[0]["decision"] == "confirm"
    s2, acts2 = engine.step(s, Collected("1"))
    assert s2.node == "chose_repair"
    assert path(acts2)[0] == {"node": "menu", "confirm": "3", "yes": True}


@pytest.mark.parametrize("answer", [Collected("2"), Collected("", timed_out=True)])
def test_anything_but_1_after_the_question_gives_the_key_menu(answer: Collected) -> None:
    engine, s, _ = start()
    s, _ = engine.step(s, Heard(key="3", confidence=0.66, decision="confirm"))
    s, acts = engine.step(s, answer)
    assert acts[-1] == KEY_MENU and s.node == "menu" and s.confirming is None
    assert path(acts) == [{"node": "menu", "confirm": "3", "yes": False}]
    # from there, the key menu exactly as without speech: 2 is the outage choice
    s, _ = engine.step(s, Collected("2"))
    assert s.node == "chose_outage"


@pytest.mark.parametrize("heard", [Heard(), Heard(key=None, confidence=0.3, decision="none"),
                                   Heard(unavailable="busy"), Heard(unavailable="error"),
                                   # a key the menu does not have is not a choice
                                   Heard(key="7", confidence=1.0, decision="accept")])
def test_nothing_heard_or_nobody_listening_gives_the_key_menu(heard: Heard) -> None:
    engine, s, _ = start()
    s, acts = engine.step(s, heard)
    assert acts[-1] == KEY_MENU and s.node == "menu" and s.attempts == 0
    # silence at the key menu goes on as without speech: no input, then the retries
    s, acts = engine.step(s, Collected("", timed_out=True))
    assert isinstance(acts[-1], Collect) and acts[-1].flush == (Prompt("ivr.no_input", "zh"),)
    assert not any(isinstance(a, Listen) for a in acts)


def test_a_choice_without_a_question_is_taken_as_not_heard() -> None:
    flow = (ROOT / "tests/support/flows/speech_ko.yaml").read_text(encoding="utf-8")
    flow = flow.replace('      "2": [speech.confirm_outage]\n', "")
    one = parse_flow(flow, "speech_ko.yaml", CATALOG.has)
    engine = Engine(FlowSet({one.id: one}), "main", speech_langs=frozenset({"ko"}))
    s, _ = engine.start(START)
    s, acts = engine.step(s, Heard(key="2", confidence=0.7, decision="confirm"))
    assert acts[-1] == KEY_MENU


def test_the_menu_again_listens_again() -> None:
    engine, s, _ = start()
    s, acts = engine.step(s, Heard(digit="9"))  # 9: this menu again
    assert isinstance(acts[-1], Listen)


def test_heard_elsewhere_than_a_menu_is_a_driver_error() -> None:
    engine = Engine(MAIN, "main")
    s, _ = engine.start(START)  # the welcome (a play node)
    with pytest.raises(EngineError):
        engine.step(s, Heard(key="1", confidence=1.0, decision="accept"))


@pytest.mark.parametrize(("old", "new", "needle"), [
    ('"0": [speech.confirm_agent]', '"7": [speech.confirm_agent]',
     "confirm_prompt '7' is not one of this menu's options"),
    ("values: {speech_lang: ko}", "values: {speech_lang: fr}",
     "speech language 'fr' is not one of"),
    ("speech_prompt: [speech.main_menu]", "speech_prompt: [speech.nope]",
     "missing prompt 'speech.nope'"),
])
def test_the_flow_check_knows_the_speech_fields(old: str, new: str, needle: str) -> None:
    flow = (ROOT / "tests/support/flows/speech_ko.yaml").read_text(encoding="utf-8")
    assert old in flow
    with pytest.raises(FlowValidationError) as err:
        parse_flow(flow.replace(old, new), "speech_ko.yaml", CATALOG.has)
    assert any(needle in str(e) for e in err.value.errors), err.value.errors


def test_speech_fields_without_phrases_are_an_error() -> None:
    text = """
flow: t
entry: m
nodes:
  m:
    type: menu
    prompt: [ivr.main_menu]
    speech_prompt: [speech.main_menu]
    options: {"1": bye}
    on_fail: bye
  bye:
    type: hangup
"""
    with pytest.raises(FlowValidationError) as err:
        parse_flow(text, "t.yaml", CATALOG.has)
    assert any("speech_prompt without speech phrases" in str(e) for e in err.value.errors)


def test_a_flow_set_names_the_languages_its_menus_hear() -> None:
    assert KO.speech_languages() == {"ko"}
    assert MAIN.speech_languages() == {"zh", "en"}
