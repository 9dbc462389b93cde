"""Unit tests of ivr.schema: the shipped flows validate, and every bad flow names file:line."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from ivr.schema import FlowError, FlowValidationError, load_flow_dir, parse_flow
from prompts.catalog import Catalog, load_catalog

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "ivr" / "flows"
CATALOG: Catalog = load_catalog(ROOT / "prompts" / "catalog")
FILE = "ivr/flows/test.yaml"


def flow_text(body: str) -> str:
    return textwrap.dedent(body).lstrip("\n")


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the one line of `text` that contains `needle`."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) == 1, f"{needle!r} is on lines {hits}: make it unique in the test flow"
    return hits[0]


def errors_of(text: str, has_prompt: Callable[[str, str], bool] | None = CATALOG.has,
              file: str = FILE) -> list[FlowError]:
    with pytest.raises(FlowValidationError) as info:
        parse_flow(text, file, has_prompt)
    assert str(info.value) == "\n".join(str(e) for e in info.value.errors)
    return info.value.errors


def only_error(text: str, **kw: object) -> FlowError:
    errs = errors_of(text, **kw)  # type: ignore[arg-type]
    assert len(errs) == 1, [str(e) for e in errs]
    return errs[0]


# ------------------------------------------------------------------------------ the shipped flows


def test_shipped_flows_validate_against_the_real_catalog() -> None:
    flows = load_flow_dir(FLOWS, CATALOG.has, required=["main"])

    main = flows.get("main")
    assert main.entry == "welcome"
    assert main.file == str(FLOWS / "main.yaml")
    # the menu the product specified: 1 bill, 2 outage, 3 fault report, 0 agent, 9 repeat
    menu = main.nodes["main_menu"]
    assert dict(menu.options) == {"1": "bill_account", "2": "outage_account",
                                  "3": "fault_confirm", "0": "to_agent", "9": "main_menu"}
    assert dict(main.nodes["language"].options) == {"1": "lang_zh", "2": "lang_en"}
    text = (FLOWS / "main.yaml").read_text(encoding="utf-8")
    assert main.lines["main_menu"] == line_of(text, "  main_menu:")


def test_a_missing_prompt_in_the_shipped_flow_would_be_caught() -> None:
    """The shipped flow passes because the catalog has its prompts, not because nothing is
    checked: without ivr.goodbye in English it is rejected at the line that names it."""
    text = (FLOWS / "main.yaml").read_text(encoding="utf-8")

    err = only_error(text, has_prompt=lambda pid, lang: CATALOG.has(pid, lang)
                     and not (pid == "ivr.goodbye" and lang == "en"),
                     file=str(FLOWS / "main.yaml"))

    assert err.file == str(FLOWS / "main.yaml")
    assert err.line == line_of(text, "prompt: [ivr.goodbye]")
    assert "missing prompt 'ivr.goodbye' (en)" in err.message


# ------------------------------------------------------------------------------------ YAML syntax


@pytest.mark.parametrize(("body", "needle", "reason"), [
    ("""
     flow: t
     entry: a
     nodes:
       a:
         type: hangup
         prompt: [ivr.goodbye]: oops
     """, "oops", "mapping values are not allowed"),
    ("""
     flow: t
     entry: a
     nodes:
       a:
     \ttype: hangup
     """, "\ttype", "cannot start any token"),
    ("""
     flow: t
     entry: a
     nodes:
       a:
         type: hangup
         prompt: "ivr.goodbye
     """, 'prompt: "ivr', "found unexpected end of stream"),
], ids=["mapping-in-value", "tab-indent", "unclosed-quote"])
def test_yaml_syntax_error_names_file_line_and_problem(body: str, needle: str,
                                                        reason: str) -> None:
    text = flow_text(body)
    err = only_error(text)

    assert err.file == FILE
    # an unclosed quote is only noticed at the end of the file, but the error names the line
    # where the quote was opened: that is where the admin has to look
    expected_line = line_of(text, needle)
    assert err.line == expected_line
    assert err.message.startswith("YAML syntax error")
    assert reason in err.message


# ------------------------------------------------------------------------- unknown node references


REFS = """
flow: t
entry: a
nodes:
  a:
    type: play
    prompt: [ivr.welcome]
    next: nowhere
  m:
    type: menu
    prompt: [ivr.main_menu]
    options:
      "1": a
      "2": ghost
    on_fail: bye
  br:
    type: branch
    cases:
      - {var: caller, op: set, goto: bye}
      - {var: caller, op: eq, value: "1", goto: phantom}
    default: bye
  look:
    type: lookup
    query: bill
    input: caller
    result: bill
    next: bye
    on_not_found: bye
    on_error: gone_away
  bye:
    type: hangup
"""


def test_unknown_node_references_are_each_reported_at_their_own_line() -> None:
    text = flow_text(REFS)
    errs = errors_of(text)

    assert [(e.file, e.line, e.message) for e in errs] == [
        (FILE, line_of(text, "next: nowhere"), "node 'a': unknown node 'nowhere' in next"),
        (FILE, line_of(text, '"2": ghost'), "node 'm': unknown node 'ghost' in options.2"),
        (FILE, line_of(text, "goto: phantom"),
         "node 'br': unknown node 'phantom' in cases.1.goto"),
        (FILE, line_of(text, "on_error: gone_away"),
         "node 'look': unknown node 'gone_away' in on_error"),
    ]


def test_entry_pointing_nowhere() -> None:
    text = flow_text("""
        flow: t
        entry: start_here
        nodes:
          bye:
            type: hangup
        """)
    err = only_error(text)

    assert (err.file, err.line) == (FILE, 2)
    assert err.message == "entry: unknown node 'start_here'"


# -------------------------------------------------------------------------------- missing prompts


def test_prompt_not_in_the_catalog() -> None:
    text = flow_text("""
        flow: t
        entry: a
        nodes:
          a:
            type: play
            prompt:
              - ivr.welcome
              - ivr.no_such_prompt
            next: bye
          bye:
            type: hangup
            prompt: [ivr.goodbye]
        """)
    err = only_error(text)

    assert (err.file, err.line) == (FILE, line_of(text, "- ivr.no_such_prompt"))
    assert err.message == "node 'a': missing prompt 'ivr.no_such_prompt' (zh, en)"


@pytest.mark.parametrize("field", ["invalid_prompt", "no_input_prompt"])
def test_missing_retry_prompt_of_a_menu(field: str) -> None:
    text = flow_text(f"""
        flow: t
        entry: m
        nodes:
          m:
            type: menu
            prompt: [ivr.main_menu]
            options: {{"0": bye}}
            {field}: [ivr.not_recorded]
            on_fail: bye
          bye:
            type: hangup
        """)
    err = only_error(text)

    assert (err.file, err.line) == (FILE, line_of(text, "ivr.not_recorded"))
    assert "missing prompt 'ivr.not_recorded'" in err.message


def test_prompt_missing_in_one_language_names_that_language() -> None:
    text = flow_text("""
        flow: t
        entry: s
        nodes:
          s:
            type: say
            value: caller
            as: digits
            before: [ivr.account_is]
            after: [zh.only]
            next: bye
          bye:
            type: hangup
        """)
    err = only_error(text, has_prompt=lambda pid, lang: pid != "zh.only" or lang == "zh")

    assert (err.file, err.line) == (FILE, line_of(text, "after: [zh.only]"))
    assert err.message == "node 's': missing prompt 'zh.only' (en)"


# ---------------------------------------------------------------------------- loops with no exit


def test_two_nodes_pointing_at_each_other_is_a_loop_with_no_exit() -> None:
    text = flow_text("""
        flow: t
        entry: a
        nodes:
          a:
            type: play
            prompt: [ivr.welcome]
            next: b
          b:
            type: set
            values: {x: 1}
            next: a
          bye:
            type: hangup
        """)
    err = only_error(text)

    assert (err.file, err.line) == (FILE, line_of(text, "  a:"))
    assert "loop with no exit (a -> b -> a)" in err.message
    assert "reaches a transfer or a hangup" in err.message


def test_menu_whose_options_and_on_fail_all_lead_back_to_itself() -> None:
    text = flow_text("""
        flow: t
        entry: menu
        nodes:
          menu:
            type: menu
            prompt: [ivr.main_menu]
            options: {"1": menu, "9": menu}
            on_fail: menu
          bye:
            type: hangup
        """)
    err = only_error(text)

    assert (err.file, err.line) == (FILE, line_of(text, "  menu:"))
    assert "node 'menu': loop with no exit (menu -> menu)" in err.message


def test_a_trap_behind_another_node_is_reported_once_naming_the_cycle() -> None:
    text = flow_text("""
        flow: t
        entry: greet
        nodes:
          greet:
            type: play
            prompt: [ivr.welcome]
            next: menu
          menu:
            type: menu
            prompt: [ivr.main_menu]
            options: {"1": menu, "9": menu}
            on_fail: menu
          bye:
            type: hangup
        """)
    err = only_error(text)

    # reported at the first trapped node in file order, and the message names the cycle itself
    assert (err.file, err.line) == (FILE, line_of(text, "  greet:"))
    assert "node 'greet': loop with no exit (menu -> menu)" in err.message


def test_a_loop_with_a_way_out_is_fine() -> None:
    """A menu that repeats itself on 9 and a branch loop with an exit are legitimate."""
    text = flow_text("""
        flow: t
        entry: menu
        nodes:
          menu:
            type: menu
            prompt: [ivr.main_menu]
            options: {"9": menu, "1": check}
            on_fail: menu
          check:
            type: branch
            cases:
              - {var: caller, op: set, goto: menu}
            default: bye
          bye:
            type: hangup
        """)

    flow = parse_flow(text, FILE, CATALOG.has)

    assert flow.entry == "menu"
    assert set(flow.nodes) == {"menu", "check", "bye"}


# ------------------------------------------------------------------------- fields, types and keys


def test_unknown_node_type() -> None:
    text = flow_text("""
        flow: t
        entry: a
        nodes:
          a:
            type: dance
            next: bye
          bye:
            type: hangup
        """)
    err = only_error(text)

    assert (err.file, err.line) == (FILE, line_of(text, "  a:"))
    assert "unknown node type 'dance'" in err.message


def test_node_without_a_type() -> None:
    text = flow_text("""
        flow: t
        entry: a
        nodes:
          a:
            prompt: [ivr.goodbye]
        """)
    err = only_error(text)

    assert (err.file, err.line) == (FILE, 4)
    assert err.message == "nodes.a: node has no 'type'"


def test_unknown_field() -> None:
    text = flow_text("""
        flow: t
        entry: a
        nodes:
          a:
            type: hangup
            prompt: [ivr.goodbye]
            colour: red
        """)
    err = only_error(text)

    assert (err.file, err.line) == (FILE, line_of(text, "colour: red"))
    assert err.message == "nodes.a.colour: unknown field 'colour'"


def test_missing_required_field() -> None:
    text = flow_text("""
        flow: t
        entry: a
        nodes:
          a:
            type: play
            prompt: [ivr.welcome]
        """)
    err = only_error(text)

    assert (err.file, err.line) == (FILE, line_of(text, "  a:"))
    assert err.message == "nodes.a.next: missing required field 'next'"


@pytest.mark.parametrize("key", ["12", "a", "**", ""])
def test_bad_menu_key(key: str) -> None:
    text = flow_text(f"""
        flow: t
        entry: m
        nodes:
          m:
            type: menu
            prompt: [ivr.main_menu]
            options: {{"1": bye, "{key}": bye}}
            on_fail: bye
          bye:
            type: hangup
        """)
    err = only_error(text)

    assert (err.file, err.line) == (FILE, line_of(text, "options:"))
    assert f"menu option {key!r} is not a single key 0-9, * or #" in err.message


@pytest.mark.parametrize(("body", "dup_needle", "key"), [
    ("""
     flow: t
     entry: a
     nodes:
       a:
         type: hangup
       b:
         type: hangup
       a:
         type: hangup
     """, None, "a"),
    ("""
     flow: t
     entry: a
     nodes:
       a:
         type: play
         prompt: [ivr.welcome]
         next: b
         next: a
       b:
         type: hangup
     """, "next: a", "next"),
], ids=["node-id", "field"])
def test_duplicate_key_is_reported_at_its_second_occurrence(body: str, dup_needle: str | None,
                                                            key: str) -> None:
    text = flow_text(body)
    err = only_error(text)

    if dup_needle is None:
        second = [n for n, line in enumerate(text.splitlines(), 1) if line == "  a:"][1]
    else:
        second = line_of(text, dup_needle)
    assert (err.file, err.line) == (FILE, second)
    assert err.message == f"duplicate key {key!r}"


@pytest.mark.parametrize(("node", "needle", "var"), [
    ("""
       use:
         type: say
         value: bill.amount_due
         as: amount
         next: bye
     """, "value: bill.amount_due", "bill.amount_due"),
    ("""
       use:
         type: branch
         cases:
           - {var: caller, op: set, goto: bye}
           - {var: balance, op: gt, value: 0, goto: bye}
         default: bye
     """, "var: balance", "balance"),
    ("""
       use:
         type: lookup
         query: bill
         input: acount
         result: bill
         next: bye
         on_not_found: bye
         on_error: bye
     """, "input: acount", "acount"),
    ("""
       use:
         type: workorder
         order_type: fault_repair
         account: acct
         result: order
         next: bye
         on_error: bye
     """, "account: acct", "acct"),
], ids=["say", "branch", "lookup", "workorder"])
def test_undefined_variable(node: str, needle: str, var: str) -> None:
    text = flow_text("""
        flow: t
        entry: use
        nodes:
        """) + textwrap.indent(textwrap.dedent(node).strip("\n"), "  ") + "\n" + \
        "  bye:\n    type: hangup\n"
    err = only_error(text)

    assert (err.file, err.line) == (FILE, line_of(text, needle))
    assert err.message == f"node 'use': variable {var!r} is never set in this flow"


def test_variables_set_anywhere_in_the_flow_are_defined() -> None:
    text = flow_text("""
        flow: t
        entry: ask
        nodes:
          ask:
            type: collect
            prompt: [ivr.enter_account]
            var: account
            max_length: 10
            next: look
            on_fail: bye
          look:
            type: lookup
            query: bill
            input: account
            result: bill
            next: say
            on_not_found: bye
            on_error: bye
          say:
            type: say
            value: bill.amount_due
            as: amount
            next: bye
          bye:
            type: hangup
        """)

    assert set(parse_flow(text, FILE, CATALOG.has).nodes) == {"ask", "look", "say", "bye"}


def test_collect_min_length_above_max_length() -> None:
    text = flow_text("""
        flow: t
        entry: ask
        nodes:
          ask:
            type: collect
            prompt: [ivr.enter_account]
            var: account
            min_length: 12
            max_length: 10
            next: bye
            on_fail: bye
          bye:
            type: hangup
        """)
    err = only_error(text)

    assert (err.file, err.line) == (FILE, line_of(text, "min_length: 12"))
    assert "min_length is greater than max_length" in err.message


def test_unsupported_language_in_a_set_node() -> None:
    text = flow_text("""
        flow: t
        entry: fr
        nodes:
          fr:
            type: set
            values: {lang: fr}
            next: bye
          bye:
            type: hangup
        """)
    err = only_error(text)

    assert (err.file, err.line) == (FILE, line_of(text, "values: {lang: fr}"))
    assert "language 'fr' is not one of zh, en" in err.message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just text\n"])
def test_a_file_that_is_not_a_mapping(text: str) -> None:
    err = only_error(text)

    assert (err.file, err.line) == (FILE, 1)
    assert "must be a mapping" in err.message


# ---------------------------------------------------------------------------- a folder of flows


GOOD_MAIN = """\
flow: main
entry: bye
nodes:
  bye:
    type: hangup
    prompt: [ivr.goodbye]
"""

GOOD_OTHER = """\
flow: other
entry: bye
nodes:
  bye:
    type: hangup
"""


def test_load_flow_dir_loads_every_yaml_file(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text(GOOD_MAIN, encoding="utf-8")
    (tmp_path / "other.yaml").write_text(GOOD_OTHER, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not: [a flow", encoding="utf-8")

    flows = load_flow_dir(tmp_path, CATALOG.has, required=["main"])

    assert set(flows.flows) == {"main", "other"}
    assert flows.get("other").file == str(tmp_path / "other.yaml")


def test_load_flow_dir_rejects_the_whole_set_and_names_the_bad_file(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text(GOOD_MAIN, encoding="utf-8")
    bad = GOOD_OTHER.replace("type: hangup", "type: hangup\n    prompt: [ivr.nope]")
    (tmp_path / "other.yaml").write_text(bad, encoding="utf-8")

    with pytest.raises(FlowValidationError) as info:
        load_flow_dir(tmp_path, CATALOG.has, required=["main"])

    errs = info.value.errors
    assert [(e.file, e.line) for e in errs] == [(str(tmp_path / "other.yaml"),
                                                 line_of(bad, "ivr.nope"))]
    assert "missing prompt 'ivr.nope'" in errs[0].message
    assert str(tmp_path / "other.yaml") in str(info.value)
    assert str(tmp_path / "main.yaml") not in str(info.value)


def test_load_flow_dir_collects_errors_of_every_bad_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("flow: a\nentry: x\nnodes:\n  x:\n\ttype: hangup\n",
                                     encoding="utf-8")
    (tmp_path / "b.yaml").write_text(GOOD_OTHER.replace("entry: bye", "entry: gone"),
                                     encoding="utf-8")
    (tmp_path / "main.yaml").write_text(GOOD_MAIN, encoding="utf-8")

    with pytest.raises(FlowValidationError) as info:
        load_flow_dir(tmp_path, CATALOG.has, required=["main"])

    assert [(Path(e.file).name, e.line) for e in info.value.errors] == [("a.yaml", 5),
                                                                       ("b.yaml", 2)]


def test_load_flow_dir_rejects_a_flow_id_defined_twice(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD_MAIN, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(GOOD_MAIN, encoding="utf-8")

    with pytest.raises(FlowValidationError) as info:
        load_flow_dir(tmp_path, CATALOG.has, required=["main"])

    [err] = info.value.errors
    assert (err.file, err.line) == (str(tmp_path / "b.yaml"), 1)
    assert f"flow id 'main' is also defined in {tmp_path / 'a.yaml'}" in err.message


def test_load_flow_dir_requires_the_entry_flow(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text(GOOD_OTHER, encoding="utf-8")

    with pytest.raises(FlowValidationError) as info:
        load_flow_dir(tmp_path, CATALOG.has, required=["main"])

    [err] = info.value.errors
    assert err.file == str(tmp_path)
    assert "no flow with id 'main'" in err.message


# --------------------------------------------------------------------------- outage-first nodes

OUTAGE_FIRST = """
flow: t
entry: look
nodes:
  look:
    type: lookup
    query: caller_outages
    result: notice
    timeout: 1.5
    next: tell
    on_not_found: menu
    on_error: menu
  tell:
    type: say
    value: notice
    as: notice
    on_hangup: deflected
    on_typeahead: menu
    next: window
  window:
    type: menu
    prompt: [outage.hangup_hint]
    options: {"1": menu}
    retries: 0
    no_input_prompt: []
    invalid_prompt: []
    on_hangup: deflected
    on_fail: menu
  menu:
    type: hangup
"""


def test_an_outage_first_flow_validates() -> None:
    flow = parse_flow(OUTAGE_FIRST, FILE, CATALOG.has)

    assert flow.nodes["tell"].on_hangup == "deflected"
    assert flow.nodes["tell"].on_typeahead == "menu"
    assert flow.nodes["look"].timeout == 1.5
    assert flow.nodes["menu"].type == "hangup"


@pytest.mark.parametrize(("old", "new", "needle", "message"), [
    ("on_hangup: deflected\n    on_typeahead", "on_hangup: served\n    on_typeahead",
     "on_hangup: served", "nodes.tell.on_hangup: Input should be 'hangup' or 'deflected'"),
    ("on_typeahead: menu", "on_typeahead: menuu", "on_typeahead: menuu",
     "node 'tell': unknown node 'menuu' in on_typeahead"),
    ("timeout: 1.5", "timeout: 0", "timeout: 0",
     "nodes.look.timeout: Input should be greater than 0"),
    ("query: caller_outages\n", "query: caller_outages\n    input: caller\n", "input: caller",
     "node 'look': query 'caller_outages' looks up the caller's own number and takes no "
     "'input'"),
    ("query: caller_outages\n", "query: account_outages\n", "query: account_outages",
     "node 'look': query 'account_outages' needs an 'input' (the variable holding the "
     "account number)"),
    ("as: notice", "as: notices", "as: notices",
     "nodes.tell.as: Input should be 'number', 'digits', 'amount', 'date', 'time', "
     "'datetime', 'outages' or 'notice'"),
], ids=["on-hangup", "on-typeahead", "timeout", "caller-input", "account-no-input", "as"])
def test_outage_first_mistakes_name_their_line(old: str, new: str, needle: str,
                                               message: str) -> None:
    assert old in OUTAGE_FIRST
    text = OUTAGE_FIRST.replace(old, new, 1)

    err = only_error(text)

    assert (err.file, err.line) == (FILE, line_of(text, needle))
    assert err.message == message


def test_the_main_flow_hears_outages_first_after_the_language_choice() -> None:
    main = load_flow_dir(FLOWS, CATALOG.has, required=["main"]).get("main")

    assert main.nodes["lang_zh"].next == main.nodes["lang_en"].next == "outage_first"
    first = main.nodes["outage_first"]
    assert (first.query, first.on_not_found, first.on_error) == (
        "caller_outages", "menu_check", "menu_check")
    # then the menu: storm mode's short one while on (the session's `storm`), else the main
    check = main.nodes["menu_check"]
    assert [(c.var, c.value, c.goto) for c in check.cases] == [("storm", True, "storm_menu")]
    assert check.default == "main_menu"
    assert main.nodes["outage_first_say"].on_hangup == "deflected"
    assert main.nodes["outage_first_window"].on_hangup == "deflected"
    assert main.nodes["outage_lookup"].query == "account_outages"
