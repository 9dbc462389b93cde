"""Real SIP callers dial 95598 through Asterisk; what they heard is read back from AMI and the DB.

All scenarios of one backend are placed at once (as real callers would be), then each test
checks its own caller. A caller either waits for the PBX to hang up (the IVR ends the call),
or is hung up by the test through AMI once the event it waits for (joining the agent queue)
has arrived: no test waits on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from cti.db.models import Call, WorkOrder
from ivr.say import say_amount, say_datetime, say_digits
from prompts.index import PromptIndex
from tests.integration.conftest import Backend, CtiProcess
from tests.support.ami import AmiRecorder, send_action
from tests.support.callview import CallView, contains_run
from tests.support.sipp import Caller, Keys, Pause, SippResult, place_call

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Asia/Shanghai")


@dataclass
class Scenario:
    caller: Caller
    hang_up_in_queue: bool = False  # the test ends the call once it reached the agent queue


def scenarios(b: Backend) -> dict[str, Scenario]:
    d = b.demo
    n = iter(range(100))

    def num() -> str:
        return f"{b.prefix}{next(n):07d}"

    arrears = d["bill_arrears"]["account_no"]
    return {
        # 1 Mandarin, 1 bill, the account number and #, then listen until the IVR says goodbye
        "bill_known": Scenario(Caller(num(), [Pause(1500), Keys("1"), Pause(1500), Keys("1"),
                                              Pause(1500), Keys(arrears + "#")])),
        "bill_unknown": Scenario(Caller(num(), [Pause(1500), Keys("1"), Pause(1500), Keys("1"),
                                                Pause(1500),
                                                Keys(d["unknown_account"]["account_no"] + "#"),
                                                Pause(9000)], hangup_after_ms=1)),
        "outage_fault": Scenario(Caller(num(), [Pause(1500), Keys("1"), Pause(1500), Keys("2"),
                                                Pause(1500),
                                                Keys(d["outage_fault"]["account_no"] + "#")])),
        "fault_report": Scenario(Caller(num(), [Pause(1500), Keys("1"), Pause(1500), Keys("3"),
                                                Pause(1500), Keys("1"), Pause(1500),
                                                Keys(d["no_outage"]["account_no"] + "#")])),
        "option_0": Scenario(Caller(num(), [Pause(1500), Keys("1"), Pause(1500), Keys("0")]),
                             hang_up_in_queue=True),
        # English, keyed with RFC 2833 events in RTP rather than SIP INFO
        "english_bill": Scenario(Caller(num(), [Pause(1500), Keys("2", mode="rfc2833"),
                                                Pause(1500), Keys("1", mode="rfc2833"),
                                                Pause(1500),
                                                Keys(arrears + "#", mode="rfc2833")])),
        # garbage at the main menu, then the caller asks for an agent
        "garbage_star_pound": Scenario(Caller(num(), [Pause(1500), Keys("1"), Pause(1500),
                                                      Keys("*#*#", gap_ms=150), Pause(7000),
                                                      Keys("0")]), hang_up_in_queue=True),
        # 30 digits at the account prompt, then a valid account: the bill is still read
        "garbage_30_digits": Scenario(Caller(num(), [Pause(1500), Keys("1"), Pause(1500),
                                                     Keys("1"), Pause(1500),
                                                     Keys("7" * 30, gap_ms=120), Pause(8000),
                                                     Keys(arrears + "#")])),
        # nothing at all: re-prompted, then put through to an agent
        "no_input": Scenario(Caller(num(), []), hang_up_in_queue=True),
        # everything keyed during the welcome prompt (type-ahead)
        "typeahead": Scenario(Caller(num(), [Pause(700), Keys("11" + arrears + "#",
                                                              gap_ms=120)])),
    }


@dataclass
class Outcome:
    sipp: SippResult
    view: CallView
    record: Call | None


def _hang_up_when_queued(ami: AmiRecorder, number: str, stop: threading.Event) -> None:
    """The agent-transfer point: Asterisk holds the caller for the ACD (HotlineQueued)."""
    ev = ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                      and e.get("UserEvent") == "HotlineQueued"
                      and e.get("CallerIDNum") == number, timeout=240,
                      what=f"HotlineQueued for {number}")
    if not stop.is_set():
        send_action(ami, {"Action": "Hangup", "Channel": ev["Channel"]})


@pytest.fixture(scope="module")
def outcomes(backend: Backend, cti: CtiProcess, ami: AmiRecorder, prompt_index: PromptIndex,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    scen = scenarios(backend)
    target = f"{cti.settings.pbx.bind_ip}:{cti.settings.pbx.sip_port}"
    workdir = tmp_path_factory.mktemp(f"sipp-{backend.name}")
    stop = threading.Event()
    watchers = []
    errors: list[BaseException] = []
    for sc in scen.values():
        if sc.hang_up_in_queue:
            def watch(number: str = sc.caller.number) -> None:
                try:
                    _hang_up_when_queued(ami, number, stop)
                except BaseException as exc:  # reported below, with the test's failure
                    errors.append(exc)
            t = threading.Thread(target=watch, daemon=True)
            t.start()
            watchers.append(t)

    async def all_calls() -> list[SippResult]:
        return await asyncio.gather(*(place_call(sc.caller, target, workdir=workdir,
                                                 timeout_s=240) for sc in scen.values()))

    results = asyncio.run(all_calls())
    stop.set()
    for t in watchers:
        t.join(5)
    out = {}
    for (name, sc), res in zip(scen.items(), results, strict=True):
        ami.wait_for(lambda e, num=sc.caller.number: e.get("Event") == "Hangup"
                     and e.get("CallerIDNum") == num, 30, f"Hangup of {name}")
        view = CallView(ami.events(), sc.caller.number, prompt_index)
        with backend.sessions() as s:
            rec = s.execute(select(Call).where(Call.call_id == view.linkedid)).scalar_one_or_none()
            if rec is not None:
                s.expunge(rec)
        out[name] = Outcome(res, view, rec)
    assert not errors, errors
    return out


def _ivr_ok(o: Outcome) -> None:
    """The session never crashed into the dialplan's fallback and never left dead air."""
    assert not o.view.user_events("HotlineFallback"), "the IVR fell back: it crashed or died"
    assert o.record is not None, "no call record"
    # a caller put through to agents and then hung up while waiting ends as 'abandoned' once
    # the ACD has seen the hangup (until then the record still says 'transfer')
    assert o.record.outcome in ("self_served", "transfer", "hangup", "abandoned"), \
        o.record.outcome
    assert o.view.longest_gap() < 1.5, f"dead air of {o.view.longest_gap():.1f}s"


def test_bill_known_account_hears_amount(outcomes: dict[str, Outcome], backend: Backend) -> None:
    o = outcomes["bill_known"]
    assert o.sipp.ok, o.sipp.errors
    _ivr_ok(o)
    amount = Decimal(backend.demo["bill_arrears"]["amount_due"])
    assert amount > 0
    heard = o.view.heard_ids()
    assert contains_run(heard, ["ivr.bill_amount_due", *say_amount(amount, "zh")]), heard
    assert "ivr.bill_due_date" in heard
    assert o.record.outcome == "self_served"
    assert o.record.account_no == backend.demo["bill_arrears"]["account_no"]
    assert o.record.language == "zh"


def test_bill_unknown_account_is_told_and_reprompted(outcomes: dict[str, Outcome]) -> None:
    o = outcomes["bill_unknown"]
    _ivr_ok(o)
    offered = o.view.offered_ids()
    assert "ivr.account_unknown" in o.view.heard_ids()
    i = offered.index("ivr.account_unknown")
    assert "ivr.enter_account" in offered[i + 1:], "not re-prompted for the account"
    assert "ivr.bill_amount_due" not in offered


def test_outage_in_fault_area_hears_restoration_time(outcomes: dict[str, Outcome],
                                                     backend: Backend) -> None:
    o = outcomes["outage_fault"]
    assert o.sipp.ok, o.sipp.errors
    _ivr_ok(o)
    outages = backend.demo["outage_fault"]["outages"]
    fault = next(x for x in outages if x["kind"] == "fault")
    restore = datetime.fromisoformat(fault["expected_restore_at"]).astimezone(TZ)
    now = o.record.started_at
    now = (now if now.tzinfo else now.replace(tzinfo=ZoneInfo("UTC"))).astimezone(TZ)
    heard = o.view.heard_ids()
    # the notice as outage-first says it (OutageService.for_account), without the hang-up hint
    assert contains_run(heard, ["outage.here", "outage.cause.fault", "outage.restore_at",
                                *say_datetime(restore, "zh", now=now)]), heard
    assert "outage.hangup_hint" not in o.view.offered_ids()
    assert "ivr.outage_apology" in heard


def test_fault_report_creates_work_order(outcomes: dict[str, Outcome], backend: Backend) -> None:
    o = outcomes["fault_report"]
    assert o.sipp.ok, o.sipp.errors
    _ivr_ok(o)
    with backend.sessions() as s:
        orders = s.execute(select(WorkOrder).where(
            WorkOrder.caller_number == o.view.number)).scalars().all()
        assert len(orders) == 1
        wo = orders[0]
        assert wo.type == "fault_repair"
        assert wo.status == "accepted"
        assert wo.call_id == o.view.linkedid
        assert wo.sla_due_at is not None
        number = wo.number
    assert contains_run(o.view.heard_ids(), ["ivr.fault_created", *say_digits(number, "zh")])


def test_option_0_reaches_agent_transfer_point(outcomes: dict[str, Outcome]) -> None:
    o = outcomes["option_0"]
    _ivr_ok(o)
    transfer = o.view.user_events("HotlineTransfer")
    assert transfer and transfer[0]["Skill"] == "general"
    queued = o.view.user_events("HotlineQueued")
    assert queued and queued[0]["Skill"] == "general"
    assert o.record.outcome in ("transfer", "abandoned")  # hung up while waiting
    assert o.record.skill == "general"


def test_english_path_end_to_end(outcomes: dict[str, Outcome], backend: Backend) -> None:
    o = outcomes["english_bill"]
    assert o.sipp.ok, o.sipp.errors
    _ivr_ok(o)
    played = o.view.played()
    # the caller keyed 2 during the welcome, so the language menu itself was skipped
    after_welcome = played[[p.prompt for p in played].index("ivr.welcome") + 1:]
    assert after_welcome and {p.lang for p in after_welcome} == {"en"}
    amount = Decimal(backend.demo["bill_arrears"]["amount_due"])
    assert contains_run(o.view.heard_ids(), ["ivr.bill_amount_due", *say_amount(amount, "en")])
    assert "ivr.goodbye" in o.view.heard_ids()
    assert o.record.language == "en"


def test_star_pound_garbage_reprompts_then_serves(outcomes: dict[str, Outcome]) -> None:
    o = outcomes["garbage_star_pound"]
    _ivr_ok(o)
    offered = o.view.offered_ids()
    assert "ivr.invalid" in o.view.heard_ids()
    assert "ivr.main_menu" in offered[offered.index("ivr.invalid") + 1:]
    assert o.view.user_events("HotlineQueued")


def test_thirty_digits_reprompts_then_serves(outcomes: dict[str, Outcome],
                                             backend: Backend) -> None:
    o = outcomes["garbage_30_digits"]
    assert o.sipp.ok, o.sipp.errors
    _ivr_ok(o)
    heard = o.view.heard_ids()
    assert "ivr.account_invalid" in heard
    amount = Decimal(backend.demo["bill_arrears"]["amount_due"])
    assert contains_run(heard, ["ivr.bill_amount_due", *say_amount(amount, "zh")])


def test_no_input_reprompts_then_reaches_agents(outcomes: dict[str, Outcome]) -> None:
    o = outcomes["no_input"]
    _ivr_ok(o)
    assert o.view.heard_ids().count("ivr.no_input") >= 2
    transfer = o.view.user_events("HotlineTransfer")
    assert transfer and transfer[0]["Reason"] == "no_valid_input"
    assert o.view.user_events("HotlineQueued")


def test_typeahead_during_prompts(outcomes: dict[str, Outcome], backend: Backend) -> None:
    o = outcomes["typeahead"]
    assert o.sipp.ok, o.sipp.errors
    _ivr_ok(o)
    amount = Decimal(backend.demo["bill_arrears"]["amount_due"])
    assert contains_run(o.view.heard_ids(), ["ivr.bill_amount_due", *say_amount(amount, "zh")])
    assert o.record.account_no == backend.demo["bill_arrears"]["account_no"]
