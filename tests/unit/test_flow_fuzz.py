"""Fuzzing the IVR flow loader (ivr/schema.py) with a fixed budget: malformed YAML text, wrong
types, unknown node kinds, cycles, missing targets, huge, unicode and control-character strings,
and mutated copies of the shipped flows in ivr/flows/. The only exception that may come out is
the loader's own FlowValidationError, each of whose errors names the file, a line of it and the
problem; a FlowRegistry fed the same files keeps serving its previous flows.

derandomize=True and a fixed max_examples keep CI time bounded (seconds) and runs repeatable.
Every crash found is kept below as an @example.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ivr.registry import FlowRegistry
from ivr.schema import YAML_LINE_BREAK, Flow, FlowValidationError, load_flow_dir, parse_flow
from prompts.catalog import Catalog, load_catalog

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "ivr" / "flows"
CATALOG: Catalog = load_catalog(ROOT / "prompts" / "catalog")
FILE = "ivr/flows/fuzz.yaml"
SHIPPED = {p.name: p.read_text(encoding="utf-8") for p in sorted(FLOWS.glob("*.yaml"))}
SHIPPED_DATA = {name: yaml.safe_load(text) for name, text in SHIPPED.items()}

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
# a shipped flow is ~300 lines: fewer of those keep each of their tests near 10 s
FUZZ_SHIPPED = settings(FUZZ, max_examples=120)

NODE_TYPES = ["play", "menu", "collect", "lookup", "say", "branch", "set", "transfer",
              "workorder", "hangup"]
FIELDS = ["type", "prompt", "next", "options", "on_fail", "timeout", "retries", "var",
          "min_length", "max_length", "terminator", "inter_digit_timeout", "invalid_prompt",
          "no_input_prompt", "query", "input", "result", "on_not_found", "on_error", "value",
          "as", "before", "after", "cases", "default", "values", "skill", "priority", "reason",
          "order_type", "account", "barge_in", "goto", "op"]

# ------------------------------------------------------------------------------------ strategies

# strings an admin (or an editor gone wrong) could leave: unicode, control characters, bidi
# marks, lone surrogates, NUL, and very long ones
nasty_text = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec=None, categories=None), max_size=30),
    st.sampled_from(["", " ", "\x00", "\x1b[31m", "\r\n", "\u202e", "\ufeff", "\ud800",
                     "欢迎致电95598", "ivr.welcome", "main_menu", "${CALLERID(num)}", "1" * 5000,
                     "é" * 3000, "zh", "en", "account", "caller.x"]),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), nasty_text,
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)), max_leaves=12)


@st.composite
def generated_flows(draw: st.DrawFn) -> dict[str, Any]:
    """A flow document built node by node: mostly right in shape, wrong where it counts."""
    ids = draw(st.lists(st.one_of(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), nasty_text),
                        min_size=1, max_size=6, unique=True))
    targets = st.one_of(st.sampled_from(ids), nasty_text)  # known nodes (cycles) or missing ones
    prompts = st.lists(st.sampled_from(["ivr.welcome", "ivr.main_menu", "ivr.nope", ""]),
                       max_size=3)
    nodes: dict[Any, Any] = {}
    for nid in ids:
        kind = draw(st.one_of(st.sampled_from(NODE_TYPES), nasty_text, values))
        node: dict[Any, Any] = {"type": kind}
        for field in draw(st.lists(st.sampled_from(FIELDS), max_size=8, unique=True)):
            if field in ("next", "on_fail", "on_not_found", "on_error", "default", "goto"):
                node[field] = draw(targets)
            elif field in ("prompt", "invalid_prompt", "no_input_prompt", "before", "after"):
                node[field] = draw(st.one_of(prompts, values))
            elif field == "options":
                node[field] = draw(st.dictionaries(st.one_of(st.sampled_from(list("0123456789*#")),
                                                             nasty_text, st.integers()),
                                                   targets, max_size=4))
            elif field == "cases":
                node[field] = draw(st.lists(st.fixed_dictionaries(
                    {"var": st.sampled_from(["lang", "account", "bill.amount", "x"]),
                     "op": st.sampled_from(["eq", "set", "unset", "gt", "bogus"]),
                     "goto": targets}, optional={"value": values}), max_size=3))
            elif field == "values":
                node[field] = draw(st.dictionaries(st.sampled_from(["lang", "x", "account"]),
                                                   values, max_size=3))
            else:
                node[field] = draw(values)
        nodes[nid] = node
    doc: dict[Any, Any] = {"flow": draw(st.one_of(st.just("main"), nasty_text, values)),
                           "entry": draw(targets), "nodes": nodes}
    for key in draw(st.lists(st.sampled_from(["flow", "entry", "nodes"]), max_size=2)):
        if draw(st.booleans()):
            doc.pop(key, None)
        else:
            doc[key] = draw(values)
    return doc


@st.composite
def mutated_shipped(draw: st.DrawFn) -> dict[str, Any]:
    """A copy of a shipped flow with a few of its values replaced, removed or re-pointed."""
    doc = copy.deepcopy(SHIPPED_DATA[draw(st.sampled_from(sorted(SHIPPED_DATA)))])
    ids = list(doc["nodes"])
    for _ in range(draw(st.integers(1, 4))):
        nid = draw(st.sampled_from(ids))
        node = doc["nodes"][nid]
        if not isinstance(node, dict) or not node:
            doc["nodes"][nid] = draw(values)
            continue
        field = draw(st.sampled_from(sorted(node, key=str)))
        action = draw(st.sampled_from(["value", "delete", "retarget", "type", "node", "entry",
                                       "extra"]))
        if action == "value":
            node[field] = draw(values)
        elif action == "delete":
            del node[field]
        elif action == "retarget":  # into a cycle, onto itself, or nowhere
            node[field] = draw(st.one_of(st.sampled_from(ids), nasty_text))
        elif action == "type":
            node["type"] = draw(st.one_of(st.sampled_from(NODE_TYPES), nasty_text))
        elif action == "node":
            del doc["nodes"][nid]
            ids.remove(nid)
            if not ids:
                break
        elif action == "entry":
            doc["entry"] = draw(st.one_of(st.sampled_from(ids), nasty_text, values))
        else:
            node[draw(st.one_of(st.sampled_from(FIELDS), nasty_text))] = draw(values)
    return doc


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=10**6)


# YAML pieces that make the parser and the constructors work: flow collections, anchors and
# aliases (also of themselves), tags that promise what the text does not keep, merge keys,
# directives, document markers, tabs, quotes, and the shipped flows' own words
TOKENS = [": ", ":", "- ", "-", "[", "]", "{", "}", ",", "&a ", "*a", "&b ", "*b", "!!int ",
          "!!float ", "!!bool ", "!!timestamp ", "!!binary ", "!!set ", "!!omap ", "!!str ",
          "!!python/object:os.system ", "!foo ", "<<: ", "? ", "|", ">", "%YAML 1.1\n",
          "%TAG ! tag:x,2000:\n", "---\n", "...\n", "\t", "'", '"', "#", "\\", "\n", "\n  ",
          "\n    ", "2024-13-01", "2024-02-30 25:61:00", "0x", "0o9", "1e999", ".nan", ".inf",
          "1_000", "yes", "~", "null", "\x00", "\x85", "\u2028", "\ufeff", "\ud800", "é",
          "flow", "entry", "nodes", "type", "next", "prompt", "options", "main", "welcome",
          "menu", "play", "hangup", "transfer", "on_fail", "\"1\"", "ivr.welcome"]
token_soup = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=5)),
                      max_size=40).map("".join)


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    """A shipped flow's text with a few lines or characters broken."""
    lines = SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))].splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "insert", "indent", "dedent",
                                       "swap", "cut"]))
        if action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "insert":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.one_of(st.sampled_from(TOKENS),
                                                      nasty_text)) + lines[i][at:]
        elif action == "indent":
            lines[i] = draw(st.sampled_from([" ", "  ", "\t"])) + lines[i]
        elif action == "dedent":
            lines[i] = lines[i].lstrip()
        elif action == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        else:
            lines[i] = lines[i][:draw(st.integers(0, len(lines[i])))]
        if not lines:
            break
    return "".join(lines)


# -------------------------------------------------------------------------------------- checking


def check(text: str, has_prompt: Callable[[str, str], bool] | None = CATALOG.has) -> None:
    """A Flow, or a FlowValidationError whose every error names FILE, a line of it, a problem."""
    last_line = len(YAML_LINE_BREAK.findall(text)) + 1
    try:
        flow = parse_flow(text, FILE, has_prompt)
    except FlowValidationError as exc:
        assert exc.errors, "a validation error names at least one problem"
        for err in exc.errors:
            assert err.file == FILE
            assert 1 <= err.line <= last_line, (err, last_line)
            assert err.message.strip()
            assert str(err).startswith(f"{FILE}:{err.line}: ")
        assert str(exc) == "\n".join(str(e) for e in exc.errors)
        return
    assert isinstance(flow, Flow)
    assert flow.entry in flow.nodes


# ----------------------------------------------------------------------------------------- tests

# crashes the fuzzer found, kept: PyYAML's constructors raised ValueError / KeyError for a scalar
# its resolver or a tag typed (a date that does not exist, !!bool of a word, !!int of a prefix);
# the line map recursed forever on an alias of itself and went exponential on nested aliases;
# the composer overflowed the stack on deep nesting
REGRESSIONS = [
    "flow: main\nentry: a\nd: 2024-13-01\nnodes: {a: {type: hangup}}\n",
    "flow: main\nentry: a\nnodes: {a: {type: hangup, prompt: [2024-02-30]}}\n",
    "flow: !!bool foo\n",
    "flow: !!int 0x\n",
    "flow: !!float abc\n",
    "flow: &a [*a]\n",
    "nodes: &n {a: {type: play, prompt: [x], next: *n}}\n",
    "flow: " + "[" * 5000 + "]" * 5000 + "\n",
    "flow: main\nentry: a\nnodes:\n" + "  " * 0 + "".join(
        f"{'  ' * (i + 1)}k{i}:\n" for i in range(200)),
    "a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n"
        for p, c in zip("abcdefghijk", "bcdefghijkl", strict=True)),
    "flow: main\nentry: a\nnodes: {a: {type: [" + "x" * 3000 + "]}}\n",
    "flow: main\nentry: a\nnodes:\n  a:\n    type: hangup\n    prompt: [\x01]\n",
    "flow: !!int\n",
    "flow: !!timestamp soon\n",
]


@settings(FUZZ, max_examples=1000)  # short texts: about 2 s
@given(text=st.one_of(token_soup, st.text(max_size=200)))
@example(text=REGRESSIONS[0])
@example(text=REGRESSIONS[1])
@example(text=REGRESSIONS[2])
@example(text=REGRESSIONS[3])
@example(text=REGRESSIONS[4])
@example(text=REGRESSIONS[5])
@example(text=REGRESSIONS[6])
@example(text=REGRESSIONS[7])
@example(text=REGRESSIONS[8])
@example(text=REGRESSIONS[9])
@example(text=REGRESSIONS[10])
@example(text=REGRESSIONS[11])
@example(text=REGRESSIONS[12])
@example(text=REGRESSIONS[13])
def test_malformed_yaml_text_is_a_validation_error(text: str) -> None:
    check(text)


@FUZZ_SHIPPED
@given(text=mutated_text())
def test_broken_copies_of_the_shipped_flows_are_validation_errors(text: str) -> None:
    check(text)


@FUZZ
@given(doc=st.one_of(generated_flows(), values), with_catalog=st.booleans())
def test_wrong_types_unknown_kinds_cycles_and_missing_targets(doc: Any, with_catalog: bool) -> None:
    check(_dump(doc), CATALOG.has if with_catalog else None)


@FUZZ_SHIPPED
@given(doc=mutated_shipped())
def test_mutated_shipped_flows_are_validated_not_crashed(doc: dict[str, Any]) -> None:
    check(_dump(doc))


def test_the_regressions_name_their_line() -> None:
    """What the crashes now say: the line of the bad value, and what is wrong with it."""
    cases = {
        REGRESSIONS[0]: (3, "2024-13-01"),
        REGRESSIONS[2]: (1, "'foo' as bool"),
        REGRESSIONS[3]: (1, "'0x' as int"),
        REGRESSIONS[7]: (1, "nested deeper than"),
        REGRESSIONS[11]: (6, "special characters are not allowed: U+0001"),
    }
    for text, (line, words) in cases.items():
        try:
            parse_flow(text, FILE, CATALOG.has)
        except FlowValidationError as exc:
            assert [e.line for e in exc.errors] == [line], exc
            assert words in str(exc)
        else:
            raise AssertionError(f"{text[:40]!r} validated")


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(content=st.one_of(mutated_text().map(lambda t: t.encode("utf-8", "surrogatepass")),
                         st.binary(max_size=200), token_soup.map(
                             lambda t: t.encode("utf-8", "surrogatepass"))))
def test_a_bad_saved_file_is_rejected_and_the_previous_flows_keep_serving(content: bytes) -> None:
    """The registry the CTI runs: a bad save (also bytes that are not UTF-8) is a rejected
    change, never an exception out of load(), and the version in service stays."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, text in SHIPPED.items():
            (folder / name).write_text(text, encoding="utf-8")
        registry = FlowRegistry(folder, "main", CATALOG.has)
        assert registry.load().ok
        before = registry.current
        (folder / "main.yaml").write_bytes(content)
        status = registry.load()
        if status.ok:
            assert load_flow_dir(folder, CATALOG.has).flows.keys() == registry.current.flows.keys()
        else:
            assert registry.current is before and status.version == 1
            assert status.errors and all(e.startswith(str(folder)) for e in status.errors)
