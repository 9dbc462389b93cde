"""IVR flow files: their schema, and validation whose every error names file, line and problem."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

LANGUAGES = ("zh", "en")
# the languages a menu may list spoken phrases in: the callers' ones, and Korean, the language
# of the one real vosk model installable here (the speech tests' flows)
SPEECH_LANGUAGES = (*LANGUAGES, "ko")
# the session variable naming the language a caller is heard in, when not `lang`
SPEECH_LANG = "speech_lang"
DIGITS = set("0123456789*#")
# variables every session has before the first node runs
BUILTIN_VARS = frozenset({"caller", "call_id", "lang", "now", "dnis", "storm"})



def normalize_phrase(phrase: str) -> str:
    """A spoken phrase as the recogniser hears it (speech.grammar, vosk's grammar and its
    results all use this): lower case, punctuation (Unicode P*) as spaces, whitespace runs as
    one space, trimmed. "Bill!" and "bill" are one phrase; "bill,outage" is two words."""
    chars = (" " if unicodedata.category(c).startswith("P") else c for c in phrase.lower())
    return " ".join("".join(chars).split())


# ------------------------------------------------------------------------------------- node types


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


PromptList = list[Annotated[str, Field(min_length=1)]]
# what the call record says when the caller hangs up while the session waits at a node:
# "deflected" marks the outage notice and its window (the caller heard what they called about)
HangupOutcome = Literal["hangup", "deflected"]


class PlayNode(_Node):
    type: Literal["play"]
    prompt: PromptList = Field(min_length=1)
    next: str
    barge_in: bool = True  # a digit pressed during the prompt stops it and is kept as type-ahead
    on_hangup: HangupOutcome = "hangup"


class MenuNode(_Node):
    type: Literal["menu"]
    prompt: PromptList = Field(min_length=1)
    options: dict[str, str] = Field(min_length=1)
    timeout: float = Field(default=5, gt=0, le=60)
    retries: int = Field(default=3, ge=0, le=10)
    invalid_prompt: PromptList = ["ivr.invalid"]
    no_input_prompt: PromptList = ["ivr.no_input"]
    on_fail: str
    on_hangup: HangupOutcome = "hangup"
    # what a caller may say instead of pressing a key: {lang: {option key: [phrases]}}; a
    # language without a vosk model ([speech] models) is keys only (the engine is told which
    # languages have one). The language heard is the session's `speech_lang` when a `set` node
    # gave one (a dialect's model, the Korean test flow), else its `lang`.
    speech: dict[str, dict[str, list[str]]] | None = None
    # the menu's prompt when the caller may speak (it says so); `prompt` when keys only
    speech_prompt: PromptList = []
    # a choice heard with middling confidence is asked back, "您是要查询电费吗？是请按1": its
    # prompt per option key (1 is yes; anything else, or nothing, gives the key menu). A choice
    # without one is never asked back: middling is taken as not heard (the key menu)
    confirm_prompt: dict[str, PromptList] = {}

    @field_validator("options")
    @classmethod
    def _keys_are_keys(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if len(k) != 1 or k not in DIGITS:
                raise ValueError(f"menu option {k!r} is not a single key 0-9, * or #")
        return v


class CollectNode(_Node):
    type: Literal["collect"]
    prompt: PromptList = Field(min_length=1)
    var: str
    min_length: int = Field(default=1, ge=1, le=64)
    max_length: int = Field(ge=1, le=64)
    terminator: str = Field(default="#", pattern=r"^[*#]{0,2}$")  # keys that end input; "" = none
    timeout: float = Field(default=6, gt=0, le=60)  # for the first key, after the prompt
    inter_digit_timeout: float = Field(default=3, gt=0, le=30)
    retries: int = Field(default=3, ge=0, le=10)
    invalid_prompt: PromptList = ["ivr.invalid"]
    no_input_prompt: PromptList = ["ivr.no_input"]
    next: str
    on_fail: str


# lookups by the caller's own number (no input): the session's `caller`
CALLER_QUERIES = ("accounts_for_caller", "caller_outages")
# lookups of the account number the caller keyed: their `input` is required
ACCOUNT_QUERIES = ("bill", "outages", "account_outages")


class LookupNode(_Node):
    type: Literal["lookup"]
    # caller_outages / account_outages: the outage notices the caller's accounts / the keyed
    # account are in, as prompts in the caller's language (a `say ... as: notice` speaks them)
    query: Literal["bill", "outages", "account_outages", "accounts_for_caller",
                   "caller_outages"]
    input: str | None = None
    result: str
    next: str
    on_not_found: str
    on_error: str
    # seconds before the lookup counts as failed (on_error); unset: the adapter's default.
    # A lookup the caller did not ask for (outage-first) is kept short: at most this silence
    timeout: float | None = Field(default=None, gt=0, le=10)


class SayNode(_Node):
    type: Literal["say"]
    value: str
    # notice: a caller_outages / account_outages result, already prompt ids (outages.announce)
    as_: Literal["number", "digits", "amount", "date", "time", "datetime", "outages",
                 "notice"] = Field(alias="as")
    before: PromptList = []
    after: PromptList = []
    next: str
    on_hangup: HangupOutcome = "hangup"
    # where a caller who already keyed ahead goes (the prompt is skipped); unset: next
    on_typeahead: str | None = None


class Case(_Node):
    var: str
    op: Literal["eq", "ne", "gt", "ge", "lt", "le", "set", "unset"]
    value: str | int | float | bool | None = None
    goto: str


class BranchNode(_Node):
    type: Literal["branch"]
    cases: list[Case] = Field(min_length=1)
    default: str


class SetNode(_Node):
    type: Literal["set"]
    values: dict[str, str | int | float | bool] = Field(min_length=1)
    next: str


class TransferNode(_Node):
    type: Literal["transfer"]
    prompt: PromptList = []
    skill: str = Field(min_length=1)
    priority: int = Field(default=0, ge=0, le=100)
    reason: str = "transfer"


class WorkOrderNode(_Node):
    type: Literal["workorder"]
    order_type: Literal["fault_repair"]
    account: str | None = None
    result: str
    next: str
    on_error: str


class HangupNode(_Node):
    type: Literal["hangup"]
    prompt: PromptList = []


Node = Annotated[
    PlayNode | MenuNode | CollectNode | LookupNode | SayNode | BranchNode | SetNode | TransferNode
    | WorkOrderNode | HangupNode,
    Field(discriminator="type"),
]
TERMINAL_TYPES = ("transfer", "hangup")
INPUT_TYPES = ("menu", "collect")


class FlowModel(_Node):
    flow: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    entry: str
    nodes: dict[str, Node] = Field(min_length=1)


# ------------------------------------------------------------------------------------------ errors


@dataclass(frozen=True)
class FlowError:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class FlowValidationError(Exception):
    """One or more flow files are invalid; each error names its file and line."""

    def __init__(self, errors: list[FlowError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.file, e.line, e.message))
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass(frozen=True)
class Flow:
    """A validated flow, immutable once loaded."""

    id: str
    file: str
    entry: str
    nodes: Mapping[str, Any]  # node id -> one of the *Node models
    lines: Mapping[str, int]  # node id -> line of its definition


@dataclass(frozen=True)
class FlowSet:
    flows: Mapping[str, Flow]

    def get(self, flow_id: str) -> Flow:
        return self.flows[flow_id]

    def speech_languages(self) -> frozenset[str]:
        """The languages some menu lists spoken phrases in (the models worth loading)."""
        return frozenset(lang for flow in self.flows.values() for node in flow.nodes.values()
                         if node.type == "menu" and node.speech for lang in node.speech)


# ------------------------------------------------------------------------------------ YAML + lines


class _Lines:
    """Maps a path of keys inside a YAML document to the line (1-based) it starts on."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.by_path: dict[tuple[Any, ...], int] = {}
        self.duplicates: list[tuple[int, str]] = []
        self._walked: set[int] = set()
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self.by_path.setdefault(path, node.start_mark.line + 1)
        # an alias is the node its anchor made: walk each node once, so an alias of itself
        # (`&a [*a]`) cannot recurse forever and nested aliases (a billion laughs) stay linear;
        # a path under an alias takes the alias's own line
        if id(node) in self._walked:
            return
        self._walked.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key, value in node.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else repr(key)
                if k in seen:
                    self.duplicates.append((key.start_mark.line + 1, str(k)))
                seen.add(k)
                self.by_path[(*path, k)] = key.start_mark.line + 1
                self._walk(value, (*path, k))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, i))

    def line(self, path: Iterable[Any]) -> int:
        """The line of the longest prefix of `path` that exists in the document."""
        p = tuple(path)
        while p and p not in self.by_path:
            p = p[:-1]
        return self.by_path.get(p, 1)


def _pydantic_errors(exc: ValidationError, lines: _Lines, file: str,
                     raw: Mapping[str, Any]) -> list[FlowError]:
    out = []
    for err in exc.errors():
        loc = list(err["loc"])
        # discriminated unions put the tag into loc (nodes.<id>.<type>.<field>); drop it
        if len(loc) >= 3 and loc[0] == "nodes":
            node = raw.get("nodes", {}).get(loc[1]) if isinstance(raw.get("nodes"), dict) else None
            if isinstance(node, dict) and loc[2] == node.get("type"):
                del loc[2]
        where = ".".join(str(x) for x in loc) or "(top level)"
        msg = err["msg"]
        if err["type"] == "union_tag_invalid":
            msg = (f"unknown node type {_short(err.get('input', {}).get('type'))}; expected one of "
                   "play, menu, collect, lookup, say, branch, set, transfer, workorder, hangup")
        elif err["type"] == "union_tag_not_found":
            msg = "node has no 'type'"
        elif err["type"] == "extra_forbidden":
            msg = f"unknown field {loc[-1]!r}"
        elif err["type"] == "missing":
            msg = f"missing required field {loc[-1]!r}"
        out.append(FlowError(file, lines.line(loc), f"{where}: {msg}"))
    return out


# ------------------------------------------------------------------------------------ graph checks


def _targets(node: Any) -> list[tuple[str, tuple[Any, ...]]]:
    """(target node id, path of the field naming it) for every edge out of a node."""
    t = node.type
    if t == "say" and node.on_typeahead:
        return [(node.next, ("next",)), (node.on_typeahead, ("on_typeahead",))]
    if t in ("play", "say", "set"):
        return [(node.next, ("next",))]
    if t == "menu":
        return [(v, ("options", k)) for k, v in node.options.items()] + [(node.on_fail,
                                                                          ("on_fail",))]
    if t == "collect":
        return [(node.next, ("next",)), (node.on_fail, ("on_fail",))]
    if t == "lookup":
        return [(node.next, ("next",)), (node.on_not_found, ("on_not_found",)),
                (node.on_error, ("on_error",))]
    if t == "branch":
        return [(c.goto, ("cases", i, "goto")) for i, c in enumerate(node.cases)] + [
            (node.default, ("default",))]
    if t == "workorder":
        return [(node.next, ("next",)), (node.on_error, ("on_error",))]
    return []


def _prompts(node: Any) -> list[tuple[str, tuple[Any, ...]]]:
    out: list[tuple[str, tuple[Any, ...]]] = []
    for field in ("prompt", "invalid_prompt", "no_input_prompt", "before", "after",
                  "speech_prompt"):
        for i, pid in enumerate(getattr(node, field, None) or []):
            out.append((pid, (field, i)))
    for key, pids in (getattr(node, "confirm_prompt", None) or {}).items():
        for i, pid in enumerate(pids):
            out.append((pid, ("confirm_prompt", key, i)))
    return out


def prompt_refs(flow: Flow) -> list[tuple[str, str, str]]:
    """(node id, field, prompt id) of every prompt a flow plays, in file order (a preview)."""
    return [(nid, str(path[0]), pid) for nid in flow.nodes
            for pid, path in _prompts(flow.nodes[nid])]


def _defined_vars(nodes: Mapping[str, Any]) -> set[str]:
    out = set(BUILTIN_VARS)
    for n in nodes.values():
        if n.type == "collect":
            out.add(n.var)
        elif n.type in ("lookup", "workorder"):
            out.add(n.result)
        elif n.type == "set":
            out.update(n.values)
    return out


def _used_vars(node: Any) -> list[tuple[str, tuple[Any, ...]]]:
    t = node.type
    if t == "say":
        return [(node.value, ("value",))]
    if t == "branch":
        return [(c.var, ("cases", i, "var")) for i, c in enumerate(node.cases)]
    if t == "lookup" and node.input:
        return [(node.input, ("input",))]
    if t == "workorder" and node.account:
        return [(node.account, ("account",))]
    return []


def _speech_errors(nid: str, speech: Mapping[str, Mapping[str, list[str]]],
                   options: Mapping[str, str], lines: _Lines, file: str) -> list[FlowError]:
    """A menu's `speech:`: known languages, choices that are its options, phrases with words,
    and no phrase (as vosk hears it: speech.grammar.normalize) for two choices."""
    errs: list[FlowError] = []
    base = ("nodes", nid, "speech")

    def err(path: tuple[Any, ...], message: str) -> None:
        errs.append(FlowError(file, lines.line(base + path), f"node {nid!r}: speech{message}"))

    if not speech:
        err((), ": empty; list phrases for at least one language, or leave speech out")
    for lang, choices in speech.items():
        if lang not in SPEECH_LANGUAGES:
            err((lang,), f".{lang}: unknown language; expected one of "
                         f"{', '.join(SPEECH_LANGUAGES)}")
            continue
        if not choices:
            err((lang,), f".{lang}: no choices")
        seen: dict[str, str] = {}  # normalised phrase -> the option key it stands for
        for key, phrases in choices.items():
            if key not in options:
                err((lang, key), f".{lang}: {key!r} is not one of this menu's options "
                                 f"({', '.join(options)})")
                continue
            if not phrases:
                err((lang, key), f".{lang}.{key}: no phrases")
            for i, phrase in enumerate(phrases):
                said = normalize_phrase(phrase)
                if not said:
                    err((lang, key, i), f".{lang}.{key}: phrase {_short(phrase)} has no words")
                elif seen.get(said, key) != key:
                    err((lang, key, i), f".{lang}.{key}: phrase {_short(phrase)} is also a "
                                        f"phrase for {seen[said]!r}")
                else:
                    seen[said] = key
    return errs


def _no_exit_cycle(start: str, nodes: Mapping[str, Any], trapped: set[str]) -> list[str]:
    """A cycle among `trapped` nodes reachable from `start`, for the error message."""
    path: list[str] = []
    index: dict[str, int] = {}
    node = start
    while node not in index:
        index[node] = len(path)
        path.append(node)
        nxt = [t for t, _ in _targets(nodes[node]) if t in trapped]
        if not nxt:
            return path
        node = nxt[0]
    return path[index[node]:] + [node]


def _graph_errors(model: FlowModel, lines: _Lines, file: str,
                  has_prompt: Callable[[str, str], bool] | None,
                  skills: Collection[str] | None = None) -> list[FlowError]:
    errs: list[FlowError] = []
    nodes = model.nodes
    if skills is not None:
        for nid, node in nodes.items():
            if node.type == "transfer" and node.skill not in skills:
                errs.append(FlowError(file, lines.line(("nodes", nid, "skill")),
                                      f"node {nid!r}: skill {node.skill!r} is not configured "
                                      f"(skills: {', '.join(sorted(skills)) or 'none'})"))
    if model.entry not in nodes:
        errs.append(FlowError(file, lines.line(("entry",)),
                              f"entry: unknown node {model.entry!r}"))
    defined = _defined_vars(nodes)
    for nid, node in nodes.items():
        base = ("nodes", nid)
        for target, path in _targets(node):
            if target not in nodes:
                errs.append(FlowError(file, lines.line(base + path),
                                      f"node {nid!r}: unknown node {target!r} in "
                                      f"{'.'.join(map(str, path))}"))
        if has_prompt is not None:
            for pid, path in _prompts(node):
                missing = [lang for lang in LANGUAGES if not has_prompt(pid, lang)]
                if missing:
                    errs.append(FlowError(file, lines.line(base + path),
                                          f"node {nid!r}: missing prompt {pid!r} "
                                          f"({', '.join(missing)})"))
        for var, path in _used_vars(node):
            if var.split(".")[0] not in defined:
                errs.append(FlowError(file, lines.line(base + path),
                                      f"node {nid!r}: variable {var!r} is never set in this flow"))
        if node.type == "collect" and node.min_length > node.max_length:
            errs.append(FlowError(file, lines.line(base + ("min_length",)),
                                  f"node {nid!r}: min_length is greater than max_length"))
        if node.type == "lookup":
            if node.query in ACCOUNT_QUERIES and not node.input:
                errs.append(FlowError(file, lines.line(base + ("query",)),
                                      f"node {nid!r}: query {node.query!r} needs an 'input' "
                                      "(the variable holding the account number)"))
            if node.query in CALLER_QUERIES and node.input:
                errs.append(FlowError(file, lines.line(base + ("input",)),
                                      f"node {nid!r}: query {node.query!r} looks up the "
                                      "caller's own number and takes no 'input'"))
        if node.type == "menu" and node.speech is not None:
            errs.extend(_speech_errors(nid, node.speech, node.options, lines, file))
        if node.type == "menu":
            for key in node.confirm_prompt:
                if key not in node.options:
                    errs.append(FlowError(file, lines.line(base + ("confirm_prompt", key)),
                                          f"node {nid!r}: confirm_prompt {key!r} is not one of "
                                          f"this menu's options ({', '.join(node.options)})"))
            if (node.speech_prompt or node.confirm_prompt) and node.speech is None:
                field = "speech_prompt" if node.speech_prompt else "confirm_prompt"
                errs.append(FlowError(file, lines.line(base + (field,)),
                                      f"node {nid!r}: {field} without speech phrases"))
        if (node.type == "set" and SPEECH_LANG in node.values
                and node.values[SPEECH_LANG] not in SPEECH_LANGUAGES):
            errs.append(FlowError(file, lines.line(base + ("values", SPEECH_LANG)),
                                  f"node {nid!r}: speech language "
                                  f"{node.values[SPEECH_LANG]!r} is not one of "
                                  f"{', '.join(SPEECH_LANGUAGES)}"))
        if node.type == "set" and "lang" in node.values and node.values["lang"] not in LANGUAGES:
            errs.append(FlowError(file, lines.line(base + ("values", "lang")),
                                  f"node {nid!r}: language {node.values['lang']!r} is not one of "
                                  f"{', '.join(LANGUAGES)}"))
    if errs:
        return errs
    # every node the caller can reach must be able to reach a transfer or a hangup
    can_exit = {nid for nid, n in nodes.items() if n.type in TERMINAL_TYPES}
    changed = True
    while changed:
        changed = False
        for nid, n in nodes.items():
            if nid not in can_exit and any(t in can_exit for t, _ in _targets(n)):
                can_exit.add(nid)
                changed = True
    reachable: set[str] = set()
    stack = [model.entry]
    while stack:
        nid = stack.pop()
        if nid in reachable:
            continue
        reachable.add(nid)
        stack.extend(t for t, _ in _targets(nodes[nid]))
    trapped = reachable - can_exit
    reported: set[str] = set()
    for nid in sorted(trapped, key=lambda n: lines.line(("nodes", n))):
        if nid in reported:
            continue
        cycle = _no_exit_cycle(nid, nodes, trapped)
        reported.update(cycle)
        errs.append(FlowError(file, lines.line(("nodes", nid)),
                              f"node {nid!r}: loop with no exit ({' -> '.join(cycle)}): no path "
                              "from it reaches a transfer or a hangup"))
    return errs


# --------------------------------------------------------------------------------------- loading


MAX_DEPTH = 50  # YAML nesting; a flow needs about 5
# what YAML 1.1 (and so every mark's line) counts as a line break
YAML_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


class _FlowLoader(yaml.SafeLoader):
    """SafeLoader whose every failure is a YAMLError with a mark.

    PyYAML's own constructors raise ValueError, KeyError or TypeError for a scalar whose tag or
    shape promises what its text does not keep (`2024-13-01`, `!!bool maybe`, `!!int 0x`; an
    empty `!!int` raises IndexError, a `!!timestamp` of a word AttributeError), and its
    composer recurses once per nesting level. Here both become errors at the node's line.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, KeyError, IndexError, AttributeError, TypeError,
                OverflowError) as exc:
            text = node.value if isinstance(node, yaml.ScalarNode) else node.tag
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {_short(text)} as {node.tag.rpartition(':')[2]} "
                f"({type(exc).__name__}: {_short(str(exc))})", node.start_mark) from None


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _load_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for lines) and its data, from one parse."""
    loader = _FlowLoader(text)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]


def _yaml_error(exc: yaml.MarkedYAMLError, file: str) -> FlowError:
    """Name the line where the mistake is, not only where the parser noticed it.

    An unclosed [ { or quote is only detected lines later; the construct's opening line
    (the parser's context mark) is where the admin must look, so that line leads.
    """
    problem = exc.problem_mark.line + 1 if exc.problem_mark else None
    context = exc.context_mark.line + 1 if exc.context_mark else None
    opened = bool(exc.context) and any(w in str(exc.context) for w in ("flow", "quoted"))
    line = context if opened and context else (problem or context or 1)
    msg = f"YAML syntax error: {exc.problem or exc}"
    if problem and problem != line:
        msg += f" (noticed at line {problem})"
    if exc.context and context:
        msg += f", {exc.context} opened at line {context}"
    return FlowError(file, line, msg)


def parse_flow(text: str, file: str,
               has_prompt: Callable[[str, str], bool] | None = None,
               skills: Collection[str] | None = None) -> Flow:
    """Validate one flow file's text. Raises FlowValidationError naming file:line. `skills`:
    the configured skills (the skills table) a transfer may name; None: not checked."""
    try:
        root, raw = _load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        raise FlowValidationError([_yaml_error(exc, file)]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (control, BOM...)
        line = len(YAML_LINE_BREAK.findall(text, 0, exc.position)) + 1
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        raise FlowValidationError([FlowError(
            file, line, f"YAML error: {exc.reason}: U+{code:04X}")]) from None
    except yaml.YAMLError as exc:
        raise FlowValidationError([FlowError(file, 1, f"YAML error: {exc}")]) from None
    lines = _Lines(root)
    if lines.duplicates:
        raise FlowValidationError([FlowError(file, ln, f"duplicate key {k!r}")
                                   for ln, k in lines.duplicates])
    if not isinstance(raw, dict):
        raise FlowValidationError([FlowError(file, 1, "a flow file must be a mapping with "
                                                      "'flow', 'entry' and 'nodes'")])
    try:
        model = FlowModel.model_validate(raw)
    except ValidationError as exc:
        raise FlowValidationError(_pydantic_errors(exc, lines, file, raw)) from None
    errs = _graph_errors(model, lines, file, has_prompt, skills)
    if errs:
        raise FlowValidationError(errs)
    return Flow(id=model.flow, file=file, entry=model.entry, nodes=dict(model.nodes),
                lines={nid: lines.line(("nodes", nid)) for nid in model.nodes})


def load_flow_file(path: Path, has_prompt: Callable[[str, str], bool] | None = None,
                   skills: Collection[str] | None = None) -> Flow:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowValidationError([FlowError(str(path), 1, f"cannot read: {exc}")]) from None
    return parse_flow(text, str(path), has_prompt, skills)


def load_flow_dir(flows_dir: Path, has_prompt: Callable[[str, str], bool] | None = None,
                  required: Iterable[str] = (), skills: Collection[str] | None = None,
                  texts: Mapping[str, str] | None = None) -> FlowSet:
    """Validate every *.yaml in the folder as one set; any error rejects the whole set.
    `texts`: file name -> text checked in place of that file's (an edit not yet saved)."""
    errors: list[FlowError] = []
    flows: dict[str, Flow] = {}
    files = sorted(flows_dir.glob("*.yaml"))
    for path in files:
        try:
            if texts is not None and path.name in texts:
                flow = parse_flow(texts[path.name], str(path), has_prompt, skills)
            else:
                flow = load_flow_file(path, has_prompt, skills)
        except FlowValidationError as exc:
            errors.extend(exc.errors)
            continue
        if flow.id in flows:
            errors.append(FlowError(str(path), 1, f"flow id {flow.id!r} is also defined in "
                                                  f"{flows[flow.id].file}"))
            continue
        flows[flow.id] = flow
    for fid in required:
        if fid not in flows and not errors:
            errors.append(FlowError(str(flows_dir), 1, f"no flow with id {fid!r} (the entry flow)"))
    if errors:
        raise FlowValidationError(errors)
    return FlowSet(flows=flows)
