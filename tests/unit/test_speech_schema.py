"""ivr.schema: a menu's `speech:` phrases ({lang: {option key: [phrases]}}) are checked, each
error at its file:line; flows with or without them run the same in the engine."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ivr.engine import Action, Collect, Collected, Engine, Played, QueryResult, Start, Transfer
from ivr.schema import Flow, FlowError, FlowSet, FlowValidationError, load_flow_dir, parse_flow
from prompts.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "ivr" / "flows"
CATALOG = load_catalog(ROOT / "prompts" / "catalog")
FILE = "ivr/flows/test.yaml"

MENU = """
flow: t
entry: m
nodes:
  m:
    type: menu
    prompt: [ivr.main_menu]
    options: {"1": bye, "2": bye, "0": bye}
    on_fail: bye
{speech}
  bye:
    type: hangup
"""


def menu_with(speech: str) -> str:
    return MENU.replace("{speech}", textwrap.indent(textwrap.dedent(speech).strip("\n"),
                                                     "    ")).lstrip("\n")


def line_of(text: str, needle: str) -> int:
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) == 1, f"{needle!r} is on lines {hits}"
    return hits[0]


def errors_of(text: str) -> list[FlowError]:
    with pytest.raises(FlowValidationError) as info:
        parse_flow(text, FILE, CATALOG.has)
    return info.value.errors


def test_the_shipped_main_menu_takes_speech_in_mandarin_and_english() -> None:
    main = load_flow_dir(FLOWS, CATALOG.has, required=["main"]).get("main")
    menu = main.nodes["main_menu"]

    assert menu.speech == {"zh": {"1": ["电费"], "2": ["停电"], "3": ["报修"], "0": ["人工"]},
                           "en": {"1": ["bill"], "2": ["outage"], "3": ["repair"],
                                  "0": ["agent"]}}
    # 1 bill, 2 outage, 3 fault report (报修), 0 agent
    assert [menu.options[k] for k in ("1", "2", "3", "0")] == [
        "bill_account", "outage_account", "fault_confirm", "to_agent"]
    # the other menus take keys only
    assert all(getattr(n, "speech", None) is None
               for nid, n in main.nodes.items() if nid != "main_menu")


def test_a_menu_with_speech_in_three_languages_is_valid() -> None:
    flow = parse_flow(menu_with("""
        speech:
          zh: {"1": [电费, 查电费], "0": [人工, 人工 服务]}
          en: {"1": ["bill", "my bill"], "2": [outage]}
          ko: {"1": [요금], "2": [정전], "0": [상담원]}
        """), FILE, CATALOG.has)
    assert flow.nodes["m"].speech["ko"] == {"1": ["요금"], "2": ["정전"], "0": ["상담원"]}


def test_a_menu_without_speech_has_none() -> None:
    assert parse_flow(menu_with(""), FILE, CATALOG.has).nodes["m"].speech is None


@pytest.mark.parametrize(("speech", "needle", "message"), [
    ("""
     speech:
       zh: {"1": [电费], "5": [停电]}
     """, 'zh: {"1"', "speech.zh: '5' is not one of this menu's options (1, 2, 0)"),
    ("""
     speech:
       en:
         "1": [bill]
         "2": [outage, Bill!]
     """, '"2": [outage', "speech.en.2: phrase 'Bill!' is also a phrase for '1'"),
    ("""
     speech:
       fr: {"1": [facture]}
     """, "fr:", "speech.fr: unknown language; expected one of zh, en, ko"),
    ("""
     speech:
       en:
         "1": []
     """, '"1": []', "speech.en.1: no phrases"),
    ("""
     speech:
       en:
         "1": ["...", bill]
     """, '"1": ["..."', "speech.en.1: phrase '...' has no words"),
    ("""
     speech:
       en: {}
     """, "en: {}", "speech.en: no choices"),
    ("""
     speech: {}
     """, "speech: {}",
     "speech: empty; list phrases for at least one language, or leave speech out"),
], ids=["unknown-key", "same-phrase-two-keys", "unknown-language", "no-phrases",
        "no-words", "no-choices", "empty"])
def test_a_bad_speech_mapping_names_file_line_and_problem(speech: str, needle: str,
                                                          message: str) -> None:
    text = menu_with(speech)
    errs = errors_of(text)
    assert len(errs) == 1, [str(e) for e in errs]
    assert errs[0].file == FILE
    assert errs[0].line == line_of(text, needle)
    assert errs[0].message == f"node 'm': {message}"


def test_the_same_phrase_in_two_languages_or_twice_for_one_key_is_fine() -> None:
    flow = parse_flow(menu_with("""
        speech:
          zh: {"0": [agent, Agent]}
          en: {"0": [agent]}
        """), FILE, CATALOG.has)
    assert flow.nodes["m"].speech["zh"]["0"] == ["agent", "Agent"]


@pytest.mark.parametrize(("speech", "needle", "fragment"), [
    ("""
     speech:
       en:
         "1": bill
     """, '"1": bill', "speech.en.1: Input should be a valid list"),
    ("""
     speech:
       en:
         "1": [3]
     """, '"1": [3]', "speech.en.1.0: Input should be a valid string"),
    ("""
     speech: [bill]
     """, "speech: [bill]", "speech: Input should be a valid dictionary"),
], ids=["not-a-list", "not-a-string", "not-a-mapping"])
def test_a_misshapen_speech_mapping_names_its_line(speech: str, needle: str,
                                                   fragment: str) -> None:
    text = menu_with(speech)
    errs = errors_of(text)
    assert len(errs) == 1, [str(e) for e in errs]
    assert errs[0].line == line_of(text, needle)
    assert fragment in errs[0].message


def test_speech_is_only_for_menus() -> None:
    text = MENU.replace("{speech}", "").replace("    type: hangup", "    type: hangup\n"
                                                "    speech: {en: {}}").lstrip("\n")
    errs = errors_of(text)
    assert [e.line for e in errs] == [line_of(text, "speech: {en")]
    assert "unknown field 'speech'" in errs[0].message


def test_the_engine_runs_a_speech_menu_on_keys_exactly_as_before() -> None:
    """The engine does not read `speech` yet: the same keys give the same actions."""
    main = (FLOWS / "main.yaml").read_text(encoding="utf-8")
    start = main.index("    speech:\n")
    end = main.index("\n\n", start)
    keys_only = main[:start] + main[end + 1:]
    assert "speech:" not in keys_only
    spoken = parse_flow(main, "main.yaml", CATALOG.has)
    plain = parse_flow(keys_only, "main.yaml", CATALOG.has)
    assert spoken.nodes["main_menu"].speech and plain.nodes["main_menu"].speech is None

    def run(flow: Flow, key: str) -> list[Action]:
        engine = Engine(FlowSet({"main": flow}), "main", ZoneInfo("Asia/Shanghai"))
        begin = Start(caller="13800138000", call_id="c1",
                      now=datetime(2026, 4, 1, 2, 0, tzinfo=UTC), dnis="95598")
        session, acts = engine.start(begin)
        out = list(acts)
        # welcome heard; Mandarin; no outage notice; then the main menu gets the key
        for ev in (Played(None), Collected("1"), QueryResult(None), Collected(key)):
            session, acts = engine.step(session, ev)
            out += acts
        return out

    for key in ("1", "2", "3", "0"):
        assert run(spoken, key) == run(plain, key)
    assert isinstance(run(spoken, "0")[-1], Transfer)
    assert isinstance(run(spoken, "1")[-1], Collect)  # the account number
