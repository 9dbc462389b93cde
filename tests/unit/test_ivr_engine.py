"""Unit tests of ivr.engine over the shipped main flow, driven by a scripted fake caller."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr import say
from ivr.engine import (
    MAX_TRANSITIONS_WITHOUT_INPUT,
    Action,
    Collect,
    Collected,
    Engine,
    EngineError,
    Event,
    Hangup,
    Play,
    Played,
    Prompt,
    Query,
    QueryResult,
    Record,
    Session,
    SetChannelVar,
    Start,
    Transfer,
    speak,
)
from ivr.schema import FlowSet, load_flow_dir, parse_flow
from outages.announce import Announcement, announcement
from outages.scope import Cause, Notice, PlaceGroup, Scope
from prompts.catalog import load_catalog
from tests.support.fakes import Bill

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(ROOT / "prompts" / "catalog")
FLOWS = load_flow_dir(ROOT / "ivr" / "flows", CATALOG.has, required=["main"])
TZ = ZoneInfo("Asia/Shanghai")
ENGINE = Engine(FLOWS, "main", TZ)

NOW = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
START = Start(caller="13800138000", call_id="call-1", now=NOW, dnis="95598")
ACCOUNT = "3700081616"
OTHER_ACCOUNT = "3700099999"


# ------------------------------------------------------------------- what the database hands back


@dataclass(frozen=True)
class Outage:
    kind: str
    start_at: Any
    expected_restore_at: Any


@dataclass(frozen=True)
class WorkOrder:
    number: str
    sla_due_at: Any


BILL = Bill(ACCOUNT, Decimal("123.45"), date(2026, 4, 15), Decimal("88.00"),
            # 20:00 UTC on 31 March is 04:00 on 1 April in Beijing
            datetime(2026, 3, 31, 20, 0, tzinfo=UTC))
NOTHING_DUE = Bill(ACCOUNT, Decimal("0.00"), None, None, None)
ORDER = WorkOrder("26040100017", datetime(2026, 4, 1, 6, 30, tzinfo=UTC))  # 14:30 Beijing

# ------------------------------------------------------------------------------ the fake caller

heard = Played(None)  # a prompt played to its end without a key
timeout = Collected("", timed_out=True)
NOT_FOUND = QueryResult(None)


def press(digits: str) -> Collected:
    return Collected(digits)


def key(digit: str) -> Played:
    return Played(digit)


def found(value: Any) -> QueryResult:
    return QueryResult(value)


ANSWER_TO: dict[type, type] = {Play: Played, Collect: Collected, Query: QueryResult}
Caller = Callable[[Action], Event]


def scripted(answers: Iterable[Event]) -> Caller:
    """A caller who answers each thing the IVR waits on with the next answer of the script."""
    queue = list(answers)

    def answer(waiting: Action) -> Event:
        assert queue, f"the script ran out while the IVR waits on {waiting}"
        return queue.pop(0)

    answer.left = queue  # type: ignore[attr-defined]
    return answer


def silent(waiting: Action) -> Event:
    """A caller who never presses anything; lookups find nothing."""
    if isinstance(waiting, Play):
        return heard
    return timeout if isinstance(waiting, Collect) else NOT_FOUND


def heard_in(action: Action) -> tuple[Prompt, ...]:
    """The prompts an action plays to the caller."""
    if isinstance(action, Collect):
        return (*action.flush, *action.prompts)
    if isinstance(action, Play | Transfer | Hangup):
        return action.prompts
    return ()


@dataclass
class Call:
    session: Session
    steps: list[tuple[Event | None, list[Action]]] = field(default_factory=list)

    @property
    def actions(self) -> list[Action]:
        return [a for _, acts in self.steps for a in acts]

    @property
    def end(self) -> Transfer | Hangup:
        last = self.actions[-1]
        assert isinstance(last, Transfer | Hangup), last
        return last

    @property
    def transfer(self) -> Transfer:
        assert isinstance(self.end, Transfer), self.end
        return self.end

    def of(self, kind: type) -> list[Any]:
        return [a for a in self.actions if isinstance(a, kind)]

    def plays(self) -> list[tuple[str, ...]]:
        return [tuple(p.id for p in a.prompts) for a in self.of(Play)]

    def prompts(self) -> list[Prompt]:
        """Every prompt the caller hears, in order."""
        return [p for a in self.actions for p in heard_in(a)]

    def waits(self) -> list[Action]:
        return [acts[-1] for _, acts in self.steps if not isinstance(acts[-1], Transfer | Hangup)]


def drive(caller: Caller | Sequence[Event], engine: Engine = ENGINE, start: Start = START,
          max_steps: int = 500) -> Call:
    """Run one call to its end, answering each blocking action with the caller's event."""
    if not callable(caller):
        caller = scripted(caller)
    session, acts = engine.start(start)
    call = Call(session, [(None, acts)])
    while not session.done:
        assert len(call.steps) <= max_steps, f"no end after {max_steps} steps"
        assert acts, "the engine returned nothing to do"
        waiting = acts[-1]
        assert isinstance(waiting, Play | Collect | Query), f"cannot answer {waiting}"
        if isinstance(waiting, Play):
            assert waiting.barge_in, "a prompt without barge-in must not wait for the caller"
        event = caller(waiting)
        assert isinstance(event, ANSWER_TO[type(waiting)]), f"IVR waits on {waiting}, got {event}"
        session, acts = engine.step(session, event)
        call.steps.append((event, acts))
    call.session = session
    left = getattr(caller, "left", [])
    assert not left, f"the call ended before answers {left}"
    return call


def zh(*ids: str) -> tuple[Prompt, ...]:
    return tuple(Prompt(i, "zh") for i in ids)


# welcome played, Mandarin chosen, no outage notice for the caller's number (outage-first)
ZH: list[Event] = [heard, press("1"), NOT_FOUND]
EN: list[Event] = [heard, press("2"), NOT_FOUND]


def outage_first(lang: str = "zh") -> Query:
    """The lookup by the caller's number after the language choice (outage-first)."""
    return Query("caller_outages", {"caller": START.caller, "lang": lang, "tz": TZ, "now": NOW},
                 1.5)


def asked(call: Call) -> list[Query]:
    """The lookups the caller asked for (all but outage-first's)."""
    return [q for q in call.of(Query) if q.kind != "caller_outages"]

# ------------------------------------------------------------------------------------- bill


def test_bill_found_speaks_amount_due_date_and_last_payment() -> None:
    call = drive([*ZH, press("1"), press(ACCOUNT), found(BILL), heard, heard, heard, heard,
                  press("0")])

    assert asked(call) == [Query("bill", {"account": ACCOUNT, "now": NOW})]
    assert call.plays() == [
        ("ivr.welcome",),
        ("ivr.bill_amount_due", *say.say_amount(Decimal("123.45"), "zh")),
        ("ivr.bill_due_date", *say.say_date(date(2026, 4, 15), "zh")),
        ("ivr.bill_last_payment", *say.say_amount(Decimal("88.00"), "zh")),
        # the payment was stored at 20:00 UTC on 31 March: in Beijing that is 1 April
        ("ivr.bill_last_payment_on", "num.zh.4", "unit.zh.month", "num.zh.1", "unit.zh.day"),
    ]
    assert call.plays()[1] == ("ivr.bill_amount_due", "num.zh.1", "num.zh.100", "num.zh.2",
                               "num.zh.10", "num.zh.3", "unit.zh.yuan", "num.zh.4",
                               "unit.zh.jiao", "num.zh.5", "unit.zh.fen")
    assert call.end == Transfer("general", 0, "caller_choice", ACCOUNT, zh("ivr.transfer"))


def test_bill_with_nothing_due_says_so_then_offers_the_after_menu() -> None:
    call = drive([*ZH, press("1"), press(ACCOUNT), found(NOTHING_DUE), heard, timeout, timeout])

    assert call.plays()[1:] == [("ivr.bill_nothing_due",)]
    # nothing typed at the after-query menu: one re-prompt (no "no input" apology), then goodbye
    after = [w for w in call.waits() if isinstance(w, Collect)][-2:]
    assert [(w.prompts, w.flush) for w in after] == [(zh("ivr.after_query_menu"), ())] * 2
    assert call.end == Hangup(zh("ivr.goodbye"))


def test_bill_after_menu_1_repeats_the_bill() -> None:
    call = drive([*ZH, press("1"), press(ACCOUNT), found(NOTHING_DUE), heard, press("1"), heard,
                  press("9"), press("0")])

    assert call.plays()[1:] == [("ivr.bill_nothing_due",)] * 2
    assert asked(call) == [Query("bill", {"account": ACCOUNT, "now": NOW})]
    assert call.transfer.reason == "caller_choice"


def test_unknown_account_is_told_then_asked_again() -> None:
    call = drive([*ZH, press("1"), press(OTHER_ACCOUNT), NOT_FOUND, press(ACCOUNT),
                  found(NOTHING_DUE), heard, press("0")])

    after_not_found = call.steps[6][1]
    assert [a for a in after_not_found if not isinstance(a, Record)] == [
        Play(zh("ivr.account_unknown"), barge_in=False),
        Collect(zh("ivr.enter_account"), 10, 6, terminator="#", inter_digit_timeout_s=4),
    ]
    assert [q.args["account"] for q in asked(call)] == [OTHER_ACCOUNT, ACCOUNT]
    assert call.end == Transfer("general", 0, "caller_choice", ACCOUNT, zh("ivr.transfer"))


def test_lookup_error_transfers_to_an_agent() -> None:
    call = drive([*ZH, press("1"), press(ACCOUNT), QueryResult(error="timeout")])

    assert call.end == Transfer("general", 0, "lookup_failed", ACCOUNT, zh("ivr.lookup_failed"))
    assert {"node": "bill_lookup", "query": "bill", "found": False, "error": "timeout"} in [
        dict(r.step) for r in call.of(Record)]


def test_an_unspeakable_date_is_skipped_rather_than_crashing_the_call() -> None:
    """9999-12-31 is a common "no date" sentinel; in Beijing it overflows the calendar."""
    sentinel = Bill(ACCOUNT, Decimal("1.00"), None, Decimal("5.00"),
                    datetime(9999, 12, 31, 23, 59, tzinfo=UTC))

    call = drive([*ZH, press("1"), press(ACCOUNT), found(sentinel), heard, heard, heard,
                  press("0")])

    assert call.plays()[-1] == ("ivr.bill_last_payment_on",)
    assert call.transfer.reason == "caller_choice"


# ------------------------------------------------------------------------------- outage-first

# what the services answer (outages.announce.announcement, in the language the lookup was told)
STORM = Announcement(prompts=("outage.here", "outage.cause.storm_repair", "outage.restore_at",
                              "day.zh.today", "time.zh.afternoon", "num.zh.3", "unit.zh.hour",
                              "unit.zh.zheng", "outage.order_exists", "outage.hangup_hint"),
                     notice_ids=(7,), accounts=(ACCOUNT,))
TWO_PLACES = Announcement(prompts=("outage.account_tail", "num.zh.1", "outage.account_tail_end",
                                   "outage.cause.fault", "outage.restore_unknown",
                                   "outage.account_tail", "num.zh.2", "outage.account_tail_end",
                                   "outage.cause.planned", "outage.restore_overdue",
                                   "outage.hangup_hint"),
                          notice_ids=(3, 4), accounts=(ACCOUNT, OTHER_ACCOUNT))
NOTICE_PLAY = Play(zh(*STORM.prompts), barge_in=True)
WINDOW = Collect(zh("outage.hangup_hint"), 1, 4)


def until(answers: Sequence[Event]) -> Session:
    """The session after these answers, the call still going (to ask what a hang-up means)."""
    session, _ = ENGINE.start(START)
    for ev in answers:
        session, _ = ENGINE.step(session, ev)
    assert not session.done
    return session


def test_a_caller_in_an_outage_hears_it_before_the_menu_then_the_window() -> None:
    call = drive([heard, press("1"), found(STORM), heard, timeout, press("0")])

    assert call.of(Query) == [outage_first()]
    assert call.plays() == [("ivr.welcome",), STORM.prompts]
    menus = [w for w in call.waits() if isinstance(w, Collect)]
    # after the notice: the hint and its window, then (nothing pressed) the menu, no apology
    assert menus[1:] == [WINDOW, Collect(zh("ivr.main_menu"), 1, 6)]
    assert call.end == Transfer("general", 0, "caller_choice", None, zh("ivr.transfer"))
    assert ENGINE.heard_outages(call.session) == [7]


@pytest.mark.parametrize("answers", [
    [heard, press("1"), found(STORM)],           # during the notice
    [heard, press("1"), found(STORM), heard],    # in the window after it
], ids=["during-notice", "in-window"])
def test_a_hang_up_during_the_notice_or_its_window_is_deflected(answers: list[Event]) -> None:
    session = until(answers)

    assert ENGINE.hangup_outcome(session) == "deflected"
    assert ENGINE.heard_outages(session) == [7]


def test_a_hang_up_at_the_menu_after_the_window_is_a_plain_hangup() -> None:
    session = until([heard, press("1"), found(STORM), heard, timeout])

    assert session.node == "main_menu"
    assert ENGINE.hangup_outcome(session) == "hangup"
    assert ENGINE.heard_outages(session) == [7]  # still told: the call record keeps it


def test_no_notice_for_the_caller_is_a_plain_hangup_and_none_heard() -> None:
    session = until([heard, press("1"), NOT_FOUND])

    assert session.node == "main_menu"
    assert ENGINE.hangup_outcome(session) == "hangup"
    assert ENGINE.heard_outages(session) == []
    assert ENGINE.hangup_outcome(None) == "hangup"


@pytest.mark.parametrize("during", [key("1"), heard], ids=["key-during-notice", "after-it"])
def test_1_goes_on_to_the_main_menu(during: Played) -> None:
    answers = [heard, press("1"), found(STORM), during]
    if during == heard:
        answers.append(press("1"))
    call = drive([*answers, press("0")])

    menus = [w for w in call.waits() if isinstance(w, Collect)]
    assert menus[-1] == Collect(zh("ivr.main_menu"), 1, 6)
    assert call.transfer.reason == "caller_choice"
    assert {"node": "outage_first_window", "input": "1"} in [dict(r.step) for r in call.of(Record)]


def test_another_key_in_the_window_also_reaches_the_menu_without_an_apology() -> None:
    call = drive([heard, press("1"), found(STORM), heard, press("5"), press("0")])

    menus = [w for w in call.waits() if isinstance(w, Collect)]
    assert menus[-1] == Collect(zh("ivr.main_menu"), 1, 6)
    assert "ivr.invalid" not in [p.id for p in call.prompts()]


@pytest.mark.parametrize("answer", [NOT_FOUND, QueryResult(error="DatabaseUnavailable"),
                                    QueryResult(error="timeout")],
                         ids=["no-notice", "database-away", "too-slow"])
def test_no_notice_or_a_failed_lookup_is_the_plain_menu_at_once(answer: QueryResult) -> None:
    session, _ = ENGINE.start(START)
    session, _ = ENGINE.step(session, heard)
    session, acts = ENGINE.step(session, press("1"))
    assert acts[-1] == outage_first()
    assert acts[-1].timeout_s is not None and acts[-1].timeout_s <= 2  # never long silence

    session, acts = ENGINE.step(session, answer)

    assert [a for a in acts if not isinstance(a, Record)] == [Collect(zh("ivr.main_menu"), 1, 6)]


def test_the_notice_is_asked_for_and_played_in_english() -> None:
    english = Announcement(("outage.here", "outage.cause.fault", "outage.restore_unknown",
                            "outage.hangup_hint"), (9,), (ACCOUNT,))

    call = drive([heard, press("2"), found(english), heard, timeout, press("0")])

    assert call.of(Query) == [outage_first("en")]
    assert call.of(Play)[-1] == Play(tuple(Prompt(i, "en") for i in english.prompts), True)
    assert call.end.prompts == (Prompt("ivr.transfer", "en"),)


def test_accounts_in_several_places_hear_each_and_every_notice_is_recorded() -> None:
    session = until([heard, press("1"), found(TWO_PLACES)])

    assert ENGINE.heard_outages(session) == [3, 4]


def test_keys_typed_ahead_skip_the_notice_and_its_window() -> None:
    """'1' then '1' typed through the welcome: Mandarin, then the bill, as without a notice."""
    call = drive([heard, press("11"), found(STORM), press(ACCOUNT), found(NOTHING_DUE), heard,
                  press("0")])

    assert STORM.prompts not in call.plays()
    assert [q.kind for q in call.of(Query)] == ["caller_outages", "bill"]
    assert ENGINE.heard_outages(call.session) == []


def test_a_notice_of_garbage_is_not_spoken() -> None:
    bad = Announcement(("outage.here", "../../etc/passwd", 7), (1,), ())  # type: ignore[arg-type]

    call = drive([heard, press("1"), found(bad), heard, timeout, press("0")])

    assert ("../../etc/passwd",) not in call.plays()
    assert all(CATALOG.has(p.id, p.lang) for p in call.prompts())
    assert call.transfer.reason == "caller_choice"


# ------------------------------------------------------------------------------- outage menu


def test_the_outage_menu_speaks_the_notices_of_the_keyed_account() -> None:
    told = Announcement(STORM.prompts[:-1], (7,), (ACCOUNT,))  # no hang-up hint in the menu

    call = drive([*ZH, press("2"), press(ACCOUNT), found(told), heard, timeout, timeout])

    assert asked(call) == [Query("account_outages", {"account": ACCOUNT, "lang": "zh",
                                                     "tz": TZ, "now": NOW})]
    assert call.plays()[1:] == [(*told.prompts, "ivr.outage_apology")]
    assert ENGINE.heard_outages(call.session) == [7]
    assert call.end == Hangup(zh("ivr.goodbye"))


def test_a_hang_up_in_the_outage_menu_is_not_deflected() -> None:
    told = Announcement(STORM.prompts[:-1], (7,), (ACCOUNT,))
    session = until([*ZH, press("2"), press(ACCOUNT), found(told)])

    assert ENGINE.hangup_outcome(session) == "hangup"


def test_no_outage_offers_the_fault_report() -> None:
    nothing = Announcement((), (), (ACCOUNT,))

    call = drive([*ZH, press("2"), press(ACCOUNT), found(nothing), heard, press("3"),
                  press("0")])

    assert call.plays()[1:] == [("ivr.outage_none",)]
    assert zh("ivr.fault_intro", "ivr.fault_confirm") in [w.prompts for w in call.of(Collect)]
    assert call.transfer.reason == "caller_choice"


def test_an_unknown_account_in_the_outage_menu_is_told_then_asked_again() -> None:
    call = drive([*ZH, press("2"), press(OTHER_ACCOUNT), NOT_FOUND, press("0" * 10),
                  found(Announcement((), (), ("0" * 10,))), heard, press("0")])

    assert "ivr.account_unknown" in [p.id for p in call.prompts()]
    assert [q.args["account"] for q in asked(call)] == [OTHER_ACCOUNT, "0" * 10]


def test_the_old_outage_list_is_still_spoken_by_a_flow_that_asks_for_it() -> None:
    """`say ... as: outages` (a list of outages) stays for admins' own flows."""
    ids = speak([Outage("fault", NOW, datetime(2026, 4, 1, 17, 0, tzinfo=UTC))] * 5,
                "outages", "zh", NOW, TZ)

    assert ids is not None and ids.count("ivr.outage_fault") == 3
    assert ids[1:7] == ["ivr.outage_restore", "day.zh.tomorrow", "time.zh.dawn", "num.zh.1",
                        "unit.zh.hour", "unit.zh.zheng"]


# ------------------------------------------------------------------------------- fault report


@pytest.mark.parametrize("sla_due_at", [ORDER.sla_due_at, ORDER.sla_due_at.isoformat()],
                         ids=["datetime", "iso-text"])
def test_fault_report_creates_a_work_order_and_reads_its_number(sla_due_at: Any) -> None:
    order = WorkOrder(ORDER.number, sla_due_at)

    call = drive([*ZH, press("3"), press("1"), press(ACCOUNT), found(BILL), found(order),
                  heard, heard])

    assert asked(call) == [
        Query("bill", {"account": ACCOUNT, "now": NOW}),
        Query("create_workorder", {"order_type": "fault_repair", "account": ACCOUNT,
                                   "caller": START.caller, "call_id": START.call_id,
                                   "now": NOW}),
    ]
    number = call.plays()[1]
    assert number == ("ivr.fault_created", *say.say_digits("26040100017", "zh"))
    # one piece per digit, and 1 is read 幺 as in phone numbers
    assert number[1:] == ("num.zh.2", "num.zh.6", "num.zh.0", "num.zh.4", "num.zh.0",
                          "num.zh.yao", "num.zh.0", "num.zh.0", "num.zh.0", "num.zh.yao",
                          "num.zh.7")
    # due 06:30 UTC: today at 14:30 in Beijing
    assert call.plays()[2] == ("ivr.fault_arrival", "day.zh.today", "time.zh.afternoon",
                               "num.zh.liang", "unit.zh.hour", "num.zh.3", "num.zh.10",
                               "unit.zh.fen")
    assert call.end == Hangup(zh("ivr.goodbye"))


def test_fault_report_that_cannot_be_saved_goes_to_repair_agents() -> None:
    call = drive([*ZH, press("3"), press("1"), press(ACCOUNT), found(BILL),
                  QueryResult(error="OperationalError")])

    assert call.end == Transfer("repair", 5, "workorder_failed", ACCOUNT,
                                zh("ivr.fault_failed"))


def test_a_fault_report_during_a_database_outage_is_taken_and_its_number_comes_later() -> None:
    # the account cannot be checked (the database is away): the report is taken anyway, the
    # service journals it (callcenter/journal.py) and answers with no number yet
    call = drive([*ZH, press("3"), press("1"), press(ACCOUNT),
                  QueryResult(error="DatabaseUnavailable"), found(WorkOrder("", None))])

    assert [q.kind for q in call.of(Query)] == ["caller_outages", "bill", "create_workorder"]
    assert call.plays()[1:] == [("ivr.fault_recorded_later",)]
    assert call.end == Hangup(zh("ivr.goodbye"))


# --------------------------------------------------------------------------- agent, language


def test_option_0_transfers_to_an_agent() -> None:
    call = drive([*ZH, press("0")])

    assert call.end == Transfer("general", 0, "caller_choice", None, zh("ivr.transfer"))
    assert call.session.done


def test_option_9_repeats_the_main_menu() -> None:
    call = drive([*ZH, press("9"), press("9"), press("0")])

    menus = [w for w in call.waits() if isinstance(w, Collect)]
    assert [m.prompts for m in menus] == [zh("ivr.language_menu")] + [zh("ivr.main_menu")] * 3
    assert all(m.flush == () for m in menus)


def test_english_sets_the_channel_language_and_every_later_prompt_is_english() -> None:
    call = drive([*EN, press("1"), press(ACCOUNT), found(BILL), heard, heard, heard, heard,
                  press("0")])

    acts = call.actions
    lang_set = acts.index(SetChannelVar("CHANNEL(language)", "en"))
    assert SetChannelVar("HOTLINE_LANG", "en") in acts
    before = [p for a in acts[:lang_set] if isinstance(a, Play | Collect) for p in a.prompts]
    after = [p for a in acts[lang_set:] if isinstance(a, Play | Collect | Transfer)
             for p in (*getattr(a, "flush", ()), *a.prompts)]
    assert {p.lang for p in before} == {"zh"}
    assert after and {p.lang for p in after} == {"en"}
    assert call.plays()[1] == ("ivr.bill_amount_due",
                               *say.say_amount(Decimal("123.45"), "en"))
    assert call.session.lang == "en"
    assert call.end.prompts == (Prompt("ivr.transfer", "en"),)


def test_no_language_choice_means_mandarin() -> None:
    call = drive([heard, timeout, timeout, NOT_FOUND, press("0")])

    assert SetChannelVar("CHANNEL(language)", "zh") in call.actions
    assert call.end == Transfer("general", 0, "caller_choice", None, zh("ivr.transfer"))


# -------------------------------------------------------------------------------- bad input


def test_star_hash_garbage_at_the_main_menu_is_invalid_then_the_menu_works() -> None:
    call = drive([*ZH, press("*#*#"), press("1"), press(ACCOUNT), NOT_FOUND, timeout, timeout,
                  timeout, timeout])

    retry = call.steps[4][1][-1]
    assert retry == Collect(zh("ivr.main_menu"), 1, 6, flush=zh("ivr.invalid"))
    # the rest of the garbage is not kept as type-ahead for the account prompt
    account_prompt = call.steps[5][1][-1]
    assert account_prompt == Collect(zh("ivr.enter_account"), 10, 6, terminator="#",
                                     inter_digit_timeout_s=4)


@pytest.mark.parametrize(("entry", "reason"), [
    ("1" * 30, "ivr.account_invalid"),
    ("370008161", "ivr.account_invalid"),
    ("37000*1616", "ivr.account_invalid"),
    ("*", "ivr.account_invalid"),
    ("#", "ivr.no_input"),
])
def test_bad_account_entry_is_refused_and_asked_again(entry: str, reason: str) -> None:
    call = drive([*ZH, press("1"), press(entry), press(ACCOUNT + "#"), found(NOTHING_DUE),
                  heard, press("0")])

    retry = call.steps[5][1][-1]
    assert retry == Collect(zh("ivr.enter_account"), 10, 6, flush=zh(reason), terminator="#",
                            inter_digit_timeout_s=4)
    assert [q.args["account"] for q in asked(call)] == [ACCOUNT]


def test_a_silent_caller_ends_in_a_transfer_for_no_valid_input() -> None:
    call = drive(silent)

    # language: one try and one retry; main menu: one try and three retries
    menus = [w for w in call.waits() if isinstance(w, Collect)]
    assert [m.prompts for m in menus] == [zh("ivr.language_menu")] * 2 + [zh("ivr.main_menu")] * 4
    assert [m.flush for m in menus] == [(), zh("ivr.no_input")] + [(), *[zh("ivr.no_input")] * 3]
    assert call.end == Transfer("general", 0, "no_valid_input", None,
                                zh("ivr.too_many_attempts", "ivr.transfer"))


def test_silence_at_the_account_prompt_ends_in_a_transfer() -> None:
    call = drive([*ZH, press("1"), timeout, timeout, timeout, timeout])

    assert call.transfer.reason == "no_valid_input"
    assert asked(call) == []


# -------------------------------------------------------------------------------- type-ahead


def test_key_pressed_during_the_welcome_answers_the_language_menu() -> None:
    call = drive([key("2"), NOT_FOUND, press("0")])

    waits = call.waits()
    assert [type(w) for w in waits] == [Play, Query, Collect]
    assert heard_in(waits[2]) == (Prompt("ivr.main_menu", "en"),)
    assert call.end.prompts == (Prompt("ivr.transfer", "en"),)
    assert SetChannelVar("CHANNEL(language)", "en") in call.actions


def test_key_pressed_during_the_bill_skips_the_rest_and_answers_the_after_menu() -> None:
    call = drive([*ZH, press("1"), press(ACCOUNT), found(BILL), key("0")])

    assert call.plays()[1:] == [("ivr.bill_amount_due",
                                 *say.say_amount(Decimal("123.45"), "zh"))]
    assert call.end == Transfer("general", 0, "caller_choice", ACCOUNT, zh("ivr.transfer"))


def test_account_typed_ahead_at_the_main_menu_is_handed_to_the_account_prompt() -> None:
    call = drive([*ZH, press("1" + ACCOUNT), press(ACCOUNT), NOT_FOUND, press("0" * 10),
                  found(NOTHING_DUE), heard, press("0")])

    assert call.steps[4][1][-1] == Collect(zh("ivr.enter_account"), 10, 6, typeahead=ACCOUNT,
                                           terminator="#", inter_digit_timeout_s=4)


def test_keys_typed_ahead_through_the_language_menu_keep_the_language_change() -> None:
    """'2' then '1' typed at once: English, then the bill. The language change must still
    reach the channel (and the path record) even though no prompt waited in between."""
    call = drive([heard, press("21"), NOT_FOUND, press(ACCOUNT), found(NOTHING_DUE), heard,
                  press("0")])

    assert call.steps[3][1][-1] == Collect((Prompt("ivr.enter_account", "en"),), 10, 6,
                                           terminator="#", inter_digit_timeout_s=4)
    assert SetChannelVar("CHANNEL(language)", "en") in call.actions
    assert SetChannelVar("HOTLINE_LANG", "en") in call.actions
    assert {"node": "language", "input": "2"} in [dict(r.step) for r in call.of(Record)]


# ------------------------------------------------------------------------- engine guard rails


def flowset(text: str) -> FlowSet:
    flow = parse_flow(text, "test.yaml")
    return FlowSet({flow.id: flow})


def test_runaway_branch_loop_ends_in_a_transfer() -> None:
    spin = flowset("""
flow: spin
entry: check
nodes:
  check:
    type: branch
    cases:
      - {var: caller, op: set, goto: bump}
    default: out
  bump:
    type: set
    values: {n: 1}
    next: check
  out:
    type: transfer
    skill: billing
""")

    call = drive(silent, engine=Engine(spin, "spin", TZ))

    assert call.end == Transfer("general", 0, "runaway_flow", None, zh("ivr.transfer"))
    assert len(call.steps) == 1
    assert len(call.of(Record)) <= MAX_TRANSITIONS_WITHOUT_INPUT + 2


def test_runaway_after_caller_input_also_ends_in_a_transfer() -> None:
    spin = flowset("""
flow: spin
entry: menu
nodes:
  menu:
    type: menu
    prompt: [ivr.main_menu]
    options: {"1": check, "0": out}
    on_fail: out
  check:
    type: branch
    cases:
      - {var: caller, op: set, goto: check}
    default: out
  out:
    type: hangup
""")

    call = drive([press("1")], engine=Engine(spin, "spin", TZ))

    assert call.transfer.reason == "runaway_flow"


def test_a_finished_session_refuses_more_events() -> None:
    call = drive([*ZH, press("0")])

    with pytest.raises(EngineError):
        ENGINE.step(call.session, press("1"))


def test_an_event_the_node_does_not_expect_is_an_engine_error() -> None:
    session, _ = ENGINE.start(START)  # waiting on the welcome prompt

    with pytest.raises(EngineError):
        ENGINE.step(session, press("1"))
    with pytest.raises(EngineError):
        ENGINE.step(session, NOT_FOUND)


# ------------------------------------------------------------------------- every session ends

QUERY_RESULTS = [
    NOT_FOUND, QueryResult(error="timeout"), found(BILL), found(NOTHING_DUE), found(ORDER),
    found([Outage("fault", NOW, datetime(2026, 4, 1, 17, 0, tzinfo=UTC))]), found([]),
    found([Outage("planned", "not a date", None), 7, None]), found("garbage"), found(42),
    found({"amount_due": "abc", "due_date": "2026-13-45", "number": "12ab"}),
    found(Bill(ACCOUNT, Decimal("10") ** 15, date.max, Decimal("-1"), None)),
    found(WorkOrder("", "yesterday")),
    found(Announcement((), (), ())),
    found(Announcement(("no such prompt", None), ("x",), ())),  # type: ignore[arg-type]
]


def _notices(lang: str) -> list[QueryResult]:
    """What the services answer an outage lookup in `lang` (outages.announce itself)."""
    fault = Notice(1, Cause.STORM_REPAIR, Scope(areas=frozenset({1})),
                   datetime(2026, 4, 1, 0, 0, tzinfo=UTC),
                   expected_restore_at=datetime(2026, 4, 1, 9, 0, tzinfo=UTC),
                   master_order="26040100001")
    planned = Notice(2, Cause.PLANNED, Scope(feeders=frozenset({2})),
                     datetime(2026, 4, 1, 1, 0, tzinfo=UTC),
                     schedule_end_at=datetime(2026, 4, 1, 3, 0, tzinfo=UTC))
    one = [PlaceGroup((ACCOUNT,), (fault, planned))]
    two = [PlaceGroup((ACCOUNT,), (fault,)), PlaceGroup((OTHER_ACCOUNT,), (planned,))]
    return [found(announcement(g, lang, NOW, TZ)) for g in (one, two)]


NOTICES = {lang: _notices(lang) for lang in ("zh", "en")}
SILENCE_BOUND = 60  # once the caller stops answering, the longest way to an end in main.yaml
KEYS = "0123456789*#"
garbage = st.text(alphabet=KEYS, max_size=30).map(Collected)


def answers_to(waiting: Action) -> st.SearchStrategy[Event]:
    """What a caller might answer: mostly plausible (so calls reach the lookups and the say
    nodes), often wrong, sometimes nothing."""
    if isinstance(waiting, Play):
        return st.one_of(st.just(heard), st.sampled_from(KEYS).map(Played))
    if isinstance(waiting, Query):
        told = NOTICES[waiting.args["lang"]] if "lang" in waiting.args else []
        return st.sampled_from(QUERY_RESULTS + told)
    assert isinstance(waiting, Collect)
    if waiting.max_digits == 1:
        plausible = st.sampled_from("12309").map(Collected)
    else:
        plausible = st.sampled_from([ACCOUNT, ACCOUNT + "#", OTHER_ACCOUNT]).map(Collected)
    return st.one_of(plausible, st.just(timeout), garbage)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), answers=st.integers(min_value=0, max_value=60),
       lang=st.sampled_from(["zh", "en"]))
def test_every_session_ends_in_a_transfer_or_hangup(data: st.DataObject, answers: int,
                                                    lang: str) -> None:
    """Whatever the caller does for `answers` turns, then silence: the call ends, in a transfer
    or a hangup, speaking only prompts that exist in the channel's language, and the engine
    never raises."""
    left = [answers]

    def caller(waiting: Action) -> Event:
        if left[0] <= 0:
            return silent(waiting)
        left[0] -= 1
        return data.draw(answers_to(waiting))

    start = Start(caller="13800138000", call_id="c", now=NOW, lang=lang)
    call = drive(caller, start=start, max_steps=answers + SILENCE_BOUND)

    assert isinstance(call.end, Transfer | Hangup)
    for _, acts in call.steps[:-1]:
        assert isinstance(acts[-1], Play | Collect | Query)
        assert not any(isinstance(a, Transfer | Hangup) for a in acts)
    for p in call.prompts():
        assert CATALOG.has(p.id, p.lang), f"{p} is not in the catalog"
    # every prompt is in the language the channel was last told (Asterisk's own prompts, such
    # as "all agents busy" after a transfer, follow CHANNEL(language))
    channel_lang = lang
    for a in call.actions:
        if isinstance(a, SetChannelVar) and a.name == "CHANNEL(language)":
            channel_lang = a.value
        assert all(p.lang == channel_lang for p in heard_in(a)), (a, channel_lang)
    if isinstance(call.end, Transfer):
        assert call.transfer.reason in {"caller_choice", "no_valid_input", "lookup_failed",
                                   "workorder_failed"}


def test_storm_mode_gives_the_short_menu_and_its_keys() -> None:
    storm = Start(caller=START.caller, call_id=START.call_id, now=NOW, storm=True)
    to_agent = drive([heard, press("1"), NOT_FOUND, press("0")], start=storm)
    menus = [w.prompts for w in to_agent.waits() if isinstance(w, Collect)]
    assert menus[-1] == zh("ivr.storm_menu") and zh("ivr.main_menu") not in menus
    assert to_agent.end == Transfer("general", 0, "caller_choice", None, zh("ivr.transfer"))
    # 9: the full menu; off (the default), the main menu straight away
    full = drive([heard, press("1"), NOT_FOUND, press("9"), press("0")], start=storm)
    assert [w.prompts for w in full.waits() if isinstance(w, Collect)][-2:] == [
        zh("ivr.storm_menu"), zh("ivr.main_menu")]
    calm = drive([heard, press("1"), NOT_FOUND, press("0")])
    assert [w.prompts for w in calm.waits() if isinstance(w, Collect)][-1] == zh("ivr.main_menu")
