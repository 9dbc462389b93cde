"""Pure IVR interpreter: step(session, event) -> (session, actions); no I/O, clock or asyncio."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from datetime import date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from ivr import say
from ivr.schema import ACCOUNT_QUERIES, SPEECH_LANG, Flow, FlowSet

# A flow that loops through set/branch/lookup nodes without ever waiting for the caller is a bug
# the validator cannot always see (a branch whose condition never changes); past this many
# transitions without caller input the session gives up and transfers, rather than spin.
MAX_TRANSITIONS_WITHOUT_INPUT = 64
MAX_OUTAGES_SPOKEN = 3
FAILSAFE_SKILL = "general"
# the session variable listing the outage notices the caller was told (calls.outage_ids)
HEARD_OUTAGES = "outage_ids"
# lookups whose answer is spoken as prompts: they are told the language and time zone to use
SPOKEN_QUERIES = ("caller_outages", "account_outages")

# ------------------------------------------------------------------------------- actions (output)


@dataclass(frozen=True)
class Prompt:
    """A prompt id in a language; the adapter resolves it to a file."""

    id: str
    lang: str


@dataclass(frozen=True)
class Play:
    """Play prompts. Blocking when barge_in: the adapter answers with Played(digit or None)."""

    prompts: tuple[Prompt, ...]
    barge_in: bool


@dataclass(frozen=True)
class Collect:
    """Play prompts (first `flush` ones without barge-in) and read digits; answered by Collected."""

    prompts: tuple[Prompt, ...]
    max_digits: int
    timeout_s: float
    typeahead: str = ""
    flush: tuple[Prompt, ...] = ()
    # keys that end the input (not part of it); with a terminator, one key past max_digits is
    # read so the # (or one digit too many) ends the read instead of interrupting what follows
    terminator: str = ""
    inter_digit_timeout_s: float | None = None  # None: a single key (menus)


@dataclass(frozen=True)
class Listen:
    """A menu the caller may speak to (issue 13): play its prompts while listening, in
    `lang`, for the phrases of each option key; keys work as ever (the first one pressed ends
    it). Answered by Heard. The adapter needs a model for `lang` and a free decoder: without
    either it answers Heard(unavailable=...) at once, and the key menu follows."""

    prompts: tuple[Prompt, ...]
    lang: str
    choices: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class Query:
    """A lookup or a write the adapter performs; answered by QueryResult."""

    kind: str  # bill | outages | account_outages | accounts_for_caller | caller_outages |
    # create_workorder
    args: Mapping[str, Any]
    timeout_s: float | None = None  # None: the adapter's own limit


@dataclass(frozen=True)
class SetChannelVar:
    name: str
    value: str


@dataclass(frozen=True)
class Record:
    """One step of the IVR path, for the call record and the screen-pop."""

    step: Mapping[str, Any]


@dataclass(frozen=True)
class Transfer:
    """End of the IVR: to agents with a skill and priority. Terminal."""

    skill: str
    priority: int
    reason: str
    account: str | None
    prompts: tuple[Prompt, ...] = ()


@dataclass(frozen=True)
class Hangup:
    """End of the IVR: the caller was served. Terminal."""

    prompts: tuple[Prompt, ...] = ()


Action = Play | Collect | Listen | Query | SetChannelVar | Record | Transfer | Hangup
BLOCKING = (Collect, Listen, Query)

# -------------------------------------------------------------------------------- events (input)


@dataclass(frozen=True)
class Start:
    caller: str
    call_id: str
    now: datetime
    dnis: str = ""
    lang: str = "zh"
    storm: bool = False  # storm mode's shortened menus are in force (the flow's `storm` var)


@dataclass(frozen=True)
class Played:
    digit: str | None  # the key that interrupted the prompt, if any


@dataclass(frozen=True)
class Collected:
    digits: str
    timed_out: bool = False


@dataclass(frozen=True)
class QueryResult:
    value: Any = None  # None means "not found"
    error: str | None = None


@dataclass(frozen=True)
class Heard:
    """What came of a Listen: a key pressed (digit), or the intent voted from what was said
    (speech.intent: key, confidence, decision accept | confirm | none), or `unavailable`
    ("busy": no decoder free, "error": the audio path failed) when nobody listened."""

    digit: str | None = None
    key: str | None = None
    confidence: float = 0.0
    decision: str = "none"
    unavailable: str = ""


Event = Start | Played | Collected | QueryResult | Heard

# ------------------------------------------------------------------------------------------ state


@dataclass(frozen=True)
class Session:
    flow: Flow
    node: str
    vars: Mapping[str, Any] = field(default_factory=dict)
    attempts: int = 0  # failed attempts at the current input node
    typeahead: str = ""  # keys pressed during prompts, not yet consumed
    transitions: int = 0  # since the caller last gave input
    done: bool = False
    # the option key a menu heard with middling confidence and asked back ("是请按1")
    confirming: str | None = None

    @property
    def lang(self) -> str:
        return str(self.vars.get("lang", "zh"))


class EngineError(Exception):
    """The engine was driven wrongly (an event the current node does not expect)."""


# --------------------------------------------------------------------------------------- helpers


def resolve(vars: Mapping[str, Any], path: str) -> Any:
    """`a.b.c` inside the session variables (mappings or attributes); None if absent."""
    cur: Any = vars
    for part in path.split("."):
        if cur is None:
            return None
        if isinstance(cur, Mapping):
            cur = cur.get(part)
        else:
            cur = getattr(cur, part, None)
    return cur


def _num(v: Any) -> Decimal | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        return Decimal(str(v))
    except (InvalidOperation, ValueError):
        return None


def _is_set(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, str | list | tuple | dict):
        return len(v) > 0
    return True


def evaluate(op: str, left: Any, right: Any) -> bool:
    if op == "set":
        return _is_set(left)
    if op == "unset":
        return not _is_set(left)
    ln, rn = _num(left), _num(right)
    if ln is not None and rn is not None:
        a: Any = ln
        b: Any = rn
    else:
        a, b = ("" if left is None else str(left)), ("" if right is None else str(right))
    if op == "eq":
        return bool(a == b)
    if op == "ne":
        return bool(a != b)
    if ln is None or rn is None:
        return False  # ordering is only defined between numbers
    return {"gt": ln > rn, "ge": ln >= rn, "lt": ln < rn, "le": ln <= rn}[op]


def _prompts(ids: Sequence[str], lang: str) -> tuple[Prompt, ...]:
    return tuple(Prompt(i, lang) for i in ids)


def _as_datetime(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v
    if isinstance(v, str):
        try:
            return datetime.fromisoformat(v)
        except ValueError:
            return None
    return None


def _local(v: Any, tz: tzinfo | None) -> Any:
    """Aware datetimes (stored in UTC) are spoken in the center's local time."""
    if isinstance(v, datetime) and v.tzinfo is not None and tz is not None:
        return v.astimezone(tz)
    return v


def speak(value: Any, kind: str, lang: str, now: datetime | None,
          tz: tzinfo | None = None) -> list[str] | None:
    """Prompt ids that speak `value` as `kind`, or None when the value cannot be spoken so."""
    try:
        if kind in ("date", "time", "datetime") and isinstance(value, str):
            value = _as_datetime(value) or value
        value, now = _local(value, tz), _local(now, tz)
        if kind == "number":
            n = _num(value)
            return say.say_number(int(n), lang) if n is not None and n >= 0 else None
        if kind == "digits":
            s = str(value) if value is not None else ""
            return say.say_digits(s, lang) if s and s.isdigit() else None
        if kind == "amount":
            n = _num(value)
            return say.say_amount(n, lang) if n is not None and n >= 0 else None
        if kind == "date":
            if isinstance(value, datetime):
                value = value.date()
            if isinstance(value, str):
                value = date.fromisoformat(value[:10])
            return say.say_date(value, lang) if isinstance(value, date) else None
        if kind == "time":
            if isinstance(value, datetime):
                value = value.time()
            return say.say_time(value, lang) if isinstance(value, time) else None
        if kind == "datetime":
            dt = _as_datetime(value)
            return say.say_datetime(dt, lang, now=now) if dt is not None else None
        if kind == "outages":
            return _speak_outages(value, lang, now, tz)
        if kind == "notice":
            return _notice_prompts(value)
    except (ValueError, TypeError, OverflowError):
        return None
    return None


PROMPT_ID = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")


def _notice_prompts(value: Any) -> list[str] | None:
    """A caller_outages / account_outages answer: its prompt ids, already in the language the
    lookup was told (outages.announce); None unless every item looks like a prompt id."""
    prompts = resolve({"v": value}, "v.prompts")
    if not isinstance(prompts, list | tuple):
        return None
    if not all(isinstance(p, str) and PROMPT_ID.match(p) for p in prompts):
        return None
    return list(prompts)


def notice_ids(value: Any) -> list[int]:
    """The notice ids a caller_outages / account_outages answer tells (ints only)."""
    ids = resolve({"v": value}, "v.notice_ids")
    if not isinstance(ids, list | tuple):
        return []
    return [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]


def _speak_outages(value: Any, lang: str, now: datetime | None,
                   tz: tzinfo | None) -> list[str] | None:
    if not isinstance(value, list | tuple):
        return None
    out: list[str] = []
    for o in list(value)[:MAX_OUTAGES_SPOKEN]:
        kind = resolve({"o": o}, "o.kind")
        if kind == "planned":
            out.append("ivr.outage_planned")
            start = _local(_as_datetime(resolve({"o": o}, "o.start_at")), tz)
            if start is not None:
                out += ["ivr.outage_start", *say.say_datetime(start, lang, now=now)]
        else:
            out.append("ivr.outage_fault")
        restore = _local(_as_datetime(resolve({"o": o}, "o.expected_restore_at")), tz)
        if restore is not None:
            out += ["ivr.outage_restore", *say.say_datetime(restore, lang, now=now)]
    return out


# ------------------------------------------------------------------------------------ the engine


class Engine:
    """Runs sessions over one FlowSet. Stateless itself: the Session carries everything."""

    def __init__(self, flows: FlowSet, entry_flow: str, tz: tzinfo | None = None,
                 speech_langs: frozenset[str] = frozenset()) -> None:
        self.flows = flows
        self.entry_flow = entry_flow
        self.tz = tz
        # the languages with a speech model ([speech] models): a menu listens only in these
        self.speech_langs = speech_langs

    def start(self, ev: Start) -> tuple[Session, list[Action]]:
        flow = self.flows.get(self.entry_flow)
        s = Session(flow=flow, node=flow.entry,
                    vars={"caller": ev.caller, "call_id": ev.call_id, "now": ev.now,
                          "dnis": ev.dnis, "lang": ev.lang, "storm": ev.storm})
        return self._run(s, [Record({"event": "start", "flow": flow.id, "caller": ev.caller})])

    def step(self, s: Session, ev: Event) -> tuple[Session, list[Action]]:
        if s.done:
            raise EngineError("session already ended")
        node = s.flow.nodes[s.node]
        acts: list[Action] = []
        if isinstance(ev, Played):
            if node.type not in ("play", "say"):
                raise EngineError(f"Played at a {node.type} node")
            s = replace(s, typeahead=s.typeahead + (ev.digit or ""), transitions=0)
            return self._goto(s, node.next, acts)
        if isinstance(ev, Heard):
            if node.type != "menu":
                raise EngineError(f"Heard at a {node.type} node")
            return self._heard(s, node, ev)
        if isinstance(ev, Collected):
            if node.type == "menu" and s.confirming is not None:
                return self._confirmed(s, node, ev)
            if node.type == "menu":
                return self._menu_input(s, node, ev)
            if node.type == "collect":
                return self._collect_input(s, node, ev)
            raise EngineError(f"Collected at a {node.type} node")
        if isinstance(ev, QueryResult):
            if node.type == "lookup":
                acts.append(Record({"node": s.node, "query": node.query,
                                    "found": ev.value is not None and ev.error is None,
                                    **({"error": ev.error} if ev.error else {})}))
                if ev.error:
                    return self._goto(s, node.on_error, acts)
                if ev.value is None:
                    return self._goto(s, node.on_not_found, acts)
                s = replace(s, vars={**s.vars, node.result: ev.value})
                return self._goto(s, node.next, acts)
            if node.type == "workorder":
                if ev.error or ev.value is None:
                    acts.append(Record({"node": s.node, "workorder": None,
                                        "error": ev.error or "no order"}))
                    return self._goto(s, node.on_error, acts)
                number = resolve({"v": ev.value}, "v.number")
                acts.append(Record({"node": s.node, "workorder": number}))
                s = replace(s, vars={**s.vars, node.result: ev.value})
                return self._goto(s, node.next, acts)
            raise EngineError(f"QueryResult at a {node.type} node")
        raise EngineError(f"unexpected event {ev!r}")

    @staticmethod
    def hangup_outcome(s: Session | None) -> str:
        """The call record's outcome when the caller hangs up now: the node's `on_hangup`
        ("deflected" while an outage notice or its window plays), else "hangup"."""
        if s is None or s.done:
            return "hangup"
        return str(getattr(s.flow.nodes[s.node], "on_hangup", "hangup"))

    @staticmethod
    def heard_outages(s: Session | None) -> list[int]:
        """The outage notices the caller was told so far (for calls.outage_ids)."""
        return list(s.vars.get(HEARD_OUTAGES) or []) if s is not None else []

    # -------------------------------------------------------------------------------- internals

    def _goto(self, s: Session, target: str, acts: list[Action]) -> tuple[Session, list[Action]]:
        s = replace(s, node=target, attempts=0)
        return self._run(s, acts)

    def _failsafe(self, s: Session, acts: list[Action], reason: str
                  ) -> tuple[Session, list[Action]]:
        acts.append(Record({"node": s.node, "error": reason}))
        account = s.vars.get("account")
        acts += [SetChannelVar("HOTLINE_LANG", s.lang),
                 Transfer(FAILSAFE_SKILL, 0, reason, str(account) if account else None,
                          _prompts(["ivr.transfer"], s.lang))]
        return replace(s, done=True), acts

    def _run(self, s: Session, acts: list[Action]) -> tuple[Session, list[Action]]:
        """Advance through nodes that need no answer until one does, or the session ends."""
        while True:
            if s.transitions >= MAX_TRANSITIONS_WITHOUT_INPUT:
                return self._failsafe(s, acts, "runaway_flow")
            s = replace(s, transitions=s.transitions + 1)
            node = s.flow.nodes[s.node]
            lang = s.lang
            t = node.type
            if t == "set":
                new_vars = {**s.vars, **node.values}
                s = replace(s, vars=new_vars)
                acts.append(Record({"node": s.node, "set": dict(node.values)}))
                if "lang" in node.values:
                    acts += [SetChannelVar("CHANNEL(language)", str(node.values["lang"])),
                             SetChannelVar("HOTLINE_LANG", str(node.values["lang"]))]
                s = replace(s, node=node.next, attempts=0)
                continue
            if t == "branch":
                target = node.default
                for case in node.cases:
                    if evaluate(case.op, resolve(s.vars, case.var), case.value):
                        target = case.goto
                        break
                s = replace(s, node=target, attempts=0)
                continue
            if t == "play":
                if node.barge_in and s.typeahead:
                    # the caller is already answering ahead: skip the prompt, keep the keys
                    s = replace(s, node=node.next, attempts=0)
                    continue
                play = Play(_prompts(node.prompt, lang), barge_in=node.barge_in)
                if not node.barge_in:
                    acts.append(play)
                    # a prompt played without barge-in swallows what was typed before it
                    s = replace(s, node=node.next, attempts=0, typeahead="")
                    continue
                acts.append(play)
                return s, acts
            if t == "say":
                ids = speak(resolve(s.vars, node.value), node.as_, lang,
                            _as_datetime(s.vars.get("now")), self.tz)
                if ids is None:
                    acts.append(Record({"node": s.node, "error": f"cannot say {node.value}"}))
                    ids = []
                acts.append(Record({"node": s.node, "said": node.value,
                                    "value": _jsonable(resolve(s.vars, node.value))}))
                all_ids = [*node.before, *ids, *node.after]
                if s.typeahead:
                    s = replace(s, node=node.on_typeahead or node.next, attempts=0)
                    continue
                if node.as_ == "notice" and ids:
                    told = list(s.vars.get(HEARD_OUTAGES) or [])
                    told += [i for i in notice_ids(resolve(s.vars, node.value))
                             if i not in told]
                    s = replace(s, vars={**s.vars, HEARD_OUTAGES: told})
                acts.append(Play(_prompts(all_ids, lang), barge_in=True))
                return s, acts
            if t == "menu":
                if s.typeahead:
                    key, rest = s.typeahead[0], s.typeahead[1:]
                    s = replace(s, typeahead=rest)
                    return self._menu_input(s, node, Collected(key), acts)
                heard_in = self._speech_lang(s, node)
                if heard_in is not None:
                    acts.append(Listen(_prompts(node.speech_prompt or node.prompt, lang),
                                       heard_in,
                                       {k: tuple(v) for k, v in node.speech[heard_in].items()}))
                    return s, acts
                acts.append(Collect(_prompts(node.prompt, lang), 1, node.timeout))
                return s, acts
            if t == "collect":
                acts.append(Collect(_prompts(node.prompt, lang), node.max_length, node.timeout,
                                    typeahead=s.typeahead[:node.max_length + 1],
                                    terminator=node.terminator,
                                    inter_digit_timeout_s=node.inter_digit_timeout))
                s = replace(s, typeahead="")
                return s, acts
            if t == "lookup":
                arg = resolve(s.vars, node.input) if node.input else None
                args = {"account": arg} if node.query in ACCOUNT_QUERIES else {
                    "caller": s.vars.get("caller")}
                if node.query in SPOKEN_QUERIES:
                    args |= {"lang": lang, "tz": self.tz}
                acts.append(Query(node.query, {**args, "now": s.vars.get("now")},
                                  node.timeout))
                return s, acts
            if t == "workorder":
                account = resolve(s.vars, node.account) if node.account else None
                acts.append(Query("create_workorder", {
                    "order_type": node.order_type, "account": account,
                    "caller": s.vars.get("caller"), "call_id": s.vars.get("call_id"),
                    "now": s.vars.get("now")}))
                return s, acts
            if t == "transfer":
                account = s.vars.get("account")
                acts.append(Record({"node": s.node, "transfer": node.skill,
                                    "priority": node.priority, "reason": node.reason}))
                acts.append(Transfer(node.skill, node.priority, node.reason,
                                     str(account) if account else None,
                                     _prompts(node.prompt, lang)))
                return replace(s, done=True), acts
            if t == "hangup":
                acts.append(Record({"node": s.node, "hangup": True}))
                acts.append(Hangup(_prompts(node.prompt, lang)))
                return replace(s, done=True), acts
            raise EngineError(f"unknown node type {t}")

    def _speech_lang(self, s: Session, node: Any) -> str | None:
        """The language this menu listens in, or None: keys only (no phrases in the caller's
        speech language, or no model for it)."""
        lang = str(s.vars.get(SPEECH_LANG) or s.lang)
        if node.speech and lang in node.speech and lang in self.speech_langs:
            return lang
        return None

    def _key_menu(self, s: Session, node: Any, acts: list[Action]
                  ) -> tuple[Session, list[Action]]:
        """The menu as it is without speech: its prompt, one key, its retries."""
        s = replace(s, confirming=None, attempts=0, typeahead="", transitions=0)
        acts.append(Collect(_prompts(node.prompt, s.lang), 1, node.timeout))
        return s, acts

    def _heard(self, s: Session, node: Any, ev: Heard) -> tuple[Session, list[Action]]:
        """A Listen's answer. A key is a key; a choice heard surely routes like its key; a
        middling one is asked back; nothing, or nobody listening, gives the key menu. The
        path records the intent (key, confidence, decision), never what was said."""
        acts: list[Action] = []
        s = replace(s, transitions=0)
        if ev.digit:
            return self._menu_input(s, node, Collected(ev.digit), acts)
        if ev.unavailable:
            acts.append(Record({"node": s.node, "speech": "unavailable",
                                "reason": ev.unavailable}))
            return self._key_menu(s, node, acts)
        key = ev.key if ev.key in node.options else None
        heard = {"node": s.node, "speech": key, "confidence": round(ev.confidence, 2),
                 "decision": ev.decision if key else "none"}
        acts.append(Record(heard))
        if key is not None and ev.decision == "accept":
            return self._goto(replace(s, typeahead=""), node.options[key], acts)
        if key is not None and ev.decision == "confirm" and node.confirm_prompt.get(key):
            s = replace(s, confirming=key, typeahead="")
            acts.append(Collect(_prompts(node.confirm_prompt[key], s.lang), 1, node.timeout))
            return s, acts
        return self._key_menu(s, node, acts)

    def _confirmed(self, s: Session, node: Any, ev: Collected) -> tuple[Session, list[Action]]:
        """The answer to "您是要查询电费吗？是请按1": 1 takes the choice; anything else, or
        nothing, gives the key menu."""
        key, s = s.confirming, replace(s, confirming=None, transitions=0)
        assert key is not None
        yes = ev.digits[:1] == "1"
        acts: list[Action] = [Record({"node": s.node, "confirm": key, "yes": yes})]
        if yes:
            s = replace(s, typeahead=ev.digits[1:])
            return self._goto(s, node.options[key], acts)
        return self._key_menu(s, node, acts)

    def _retry(self, s: Session, node: Any, reason_prompts: Sequence[str],
               acts: list[Action]) -> tuple[Session, list[Action]]:
        """A wrong or missing answer: re-prompt while attempts remain, then on_fail."""
        attempts = s.attempts + 1
        if attempts > node.retries:
            acts.append(Record({"node": s.node, "gave_up_after": attempts}))
            return self._goto(replace(s, typeahead=""), node.on_fail, acts)
        s = replace(s, attempts=attempts, typeahead="", transitions=0)
        if node.type == "menu":
            acts.append(Collect(_prompts(node.prompt, s.lang), 1, node.timeout,
                                flush=_prompts(reason_prompts, s.lang)))
        else:
            acts.append(Collect(_prompts(node.prompt, s.lang), node.max_length, node.timeout,
                                flush=_prompts(reason_prompts, s.lang),
                                terminator=node.terminator,
                                inter_digit_timeout_s=node.inter_digit_timeout))
        return s, acts

    def _menu_input(self, s: Session, node: Any, ev: Collected,
                    acts: list[Action] | None = None) -> tuple[Session, list[Action]]:
        acts = [] if acts is None else acts
        key = ev.digits[:1]
        s = replace(s, transitions=0)
        if not key:
            acts.append(Record({"node": s.node, "input": "", "timeout": True}))
            return self._retry(s, node, node.no_input_prompt, acts)
        acts.append(Record({"node": s.node, "input": key}))
        if key not in node.options:
            return self._retry(s, node, node.invalid_prompt, acts)
        # anything typed beyond the one key is type-ahead for what comes next
        s = replace(s, typeahead=ev.digits[1:] + s.typeahead)
        return self._goto(s, node.options[key], acts)

    def _collect_input(self, s: Session, node: Any, ev: Collected
                       ) -> tuple[Session, list[Action]]:
        acts: list[Action] = []
        digits = ev.digits
        if node.terminator:
            digits = digits.split(node.terminator[0])[0] if len(node.terminator) == 1 else \
                re.split(f"[{re.escape(node.terminator)}]", digits)[0]
        s = replace(s, transitions=0)
        if not digits:
            acts.append(Record({"node": s.node, "input": "", "timeout": ev.timed_out}))
            return self._retry(s, node, node.no_input_prompt, acts)
        acts.append(Record({"node": s.node, "input": digits}))
        if (not re.fullmatch(r"[0-9]+", digits)
                or not node.min_length <= len(digits) <= node.max_length):
            return self._retry(s, node, node.invalid_prompt, acts)
        s = replace(s, vars={**s.vars, node.var: digits})
        return self._goto(s, node.next, acts)


def _jsonable(v: Any) -> Any:
    if is_dataclass(v) and not isinstance(v, type):
        return _jsonable(asdict(v))
    if isinstance(v, datetime | date | time):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return str(v)
