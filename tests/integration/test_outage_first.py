"""Outage-first with real SIP callers through Asterisk (issue 12): a caller whose number belongs
to an account inside an outage hears the notice before the menu and, hanging up, is counted
deflected; a caller with no outage gets the plain menu at once; a notice published through the
OutageService (as the console does) is heard by the very next call; 1 goes on to the menu.

What was played is read back from Asterisk's own AMI events (tests/support/callview.py), the
call record from the database. The test hangs a caller up through AMI once the event it waits
for (a prompt starting) has arrived: no test waits on a fixed sleep.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from callcenter.outage_service import OutageService, Who
from cti.db import outages as store
from cti.db.ivr_queries import accounts_for_phone
from cti.db.models import Account, AccountPhone, Call, Outage, WorkOrder
from hotline import stack
from ivr.say import say_datetime
from outages.incidents import DetectionSettings, Mode
from outages.scope import Cause
from prompts.index import PromptIndex
from tests.integration.callers import CallInProgress
from tests.integration.conftest import Backend, CtiProcess
from tests.support.ami import AmiRecorder, Event, send_action
from tests.support.callview import CallView, contains_run
from tests.support.ctilog import CtiLog
from tests.support.sipp import Caller, Keys, Pause
from workorders.lifecycle import Role, SlaPolicy
from workorders.service import Actor, NewOrder, WorkOrderService

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Asia/Shanghai")
SUP = Who("it-supervisor", "supervisor")
# the added time a caller with no outage may see between the language and the menu (the
# lookup is a few ms; bench/outage_lookup.py measures it): anything near a second is a bug
NO_ADDED_DELAY_S = 1.0
_serial = itertools.count(1)


@dataclass
class Heard:
    view: CallView
    record: Call


@dataclass
class Numbers:
    """Fresh caller numbers (this module's own), each on one account."""

    fault_account: str      # the demo's account inside a fault outage on its feeder
    fault_notice: int       # that outage's notice id
    quiet_account: str      # an account in no outage, with a 台区: the publish test's
    plain: str              # a number of the demo's no-outage account

    def new_phone(self, backend: Backend, account_no: str) -> str:
        """Another number for the account, as the carrier presents it (+86, the IVR
        normalizes it); unique per call, so each call's AMI events are its own."""
        digits = f"{backend.prefix}66{next(_serial):05d}"  # 66: this module's own range
        with backend.sessions.begin() as s:
            assert not accounts_for_phone(s, digits), f"{digits} is somebody's already"
            account_id = s.scalar(select(Account.id).where(Account.account_no == account_no))
            s.add(AccountPhone(account_id=account_id, phone=digits))
        return "+86" + digits


@pytest.fixture(scope="module")
def numbers(backend: Backend, cti: CtiProcess) -> Numbers:
    now = datetime.now(UTC)
    fault_account = backend.demo["outage_fault"]["account_no"]
    svc = OutageService(backend.sessions)
    demo_accounts = {d["account_no"] for d in backend.demo.values()}
    with backend.sessions() as s:
        notices = svc.for_account(s, fault_account, now)
        assert notices and len(notices) == 1, notices
        quiet = next(a for a in s.scalars(
            select(Account.account_no).where(Account.transformer_area.is_not(None))
            .order_by(Account.account_no))
            if a not in demo_accounts and svc.for_account(s, a, now) == ())
    nums = Numbers(fault_account, notices[0].id, quiet, "")
    nums.plain = nums.new_phone(backend, backend.demo["no_outage"]["account_no"])
    return nums


def _prompt_starts(ami: AmiRecorder, number: str, path: str) -> Callable[[Event], bool]:
    return lambda e: (e.get("Event") == "AGIExecStart" and e.get("CallerIDNum") == number
                      and path in str(e.get("Command", "")))


def _call(backend: Backend, cti: CtiProcess, ami: AmiRecorder, prompts: PromptIndex,
          workdir: Path, caller: Caller, hang_up_at: tuple[str, str],
          press: tuple[str, str] | None = None) -> Heard:
    """Place the call; hang it up through AMI as the prompt `hang_up_at` (id, lang) starts;
    return what Asterisk played and the call record once the IVR has written its end.

    `press` (prompt id, digit): once that prompt (Mandarin) starts, the caller's channel
    receives the digit (AMI PlayDTMF with Receive, as if the phone had sent it). A key timed
    in the SIPp scenario would have to guess how long the prompts before it take, and on a
    busy machine the IVR's pauses between prompts add up: CI once pressed it mid-notice."""
    since = ami.mark()
    call = CallInProgress(caller, cti.settings, workdir)
    if press is not None:
        prompt_id, digit = press
        playing = ami.wait_for(_prompt_starts(ami, caller.number,
                                              prompts.asterisk_path(prompt_id, "zh")),
                               60, f"{prompt_id} playing to {caller.number}", since)
        reply = send_action(ami, {"Action": "PlayDTMF", "Channel": playing["Channel"],
                                  "Digit": digit, "Duration": "200", "Receive": "yes"})
        assert reply.success, reply
    path = prompts.asterisk_path(*hang_up_at)
    started = ami.wait_for(_prompt_starts(ami, caller.number, path), 60,
                           f"{hang_up_at[0]} playing to {caller.number}", since)
    send_action(ami, {"Action": "Hangup", "Channel": started["Channel"]})
    call.finish(60)
    ami.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("CallerIDNum") == caller.number,
                 30, f"Hangup of {caller.number}", since)
    view = CallView(ami.events()[since:], caller.number, prompts)

    def ended() -> Call | None:
        with backend.sessions() as s:
            rec = s.scalars(select(Call).where(Call.call_id == view.linkedid)).one_or_none()
            if rec is not None:
                s.expunge(rec)
            return rec if rec is not None and rec.ended_at is not None else None
    stack.wait_until(lambda: ended() is not None, 15, f"the call record of {caller.number}")
    record = ended()
    assert record is not None
    return Heard(view, record)


def _ivr_ok(h: Heard) -> None:
    assert not h.view.user_events("HotlineFallback"), "the IVR fell back: it crashed or died"
    assert h.view.longest_gap() < 1.5, f"dead air of {h.view.longest_gap():.1f}s"


def _menu_follows_welcome_at_once(h: Heard) -> None:
    """Nothing between the language choice and the menu: no prompt, no noticeable wait."""
    played = h.view.played()
    names = [p.prompt for p in played]
    menu = names.index("ivr.main_menu")
    assert names[:menu] == ["ivr.welcome"], names
    gap = played[menu].start - played[0].end
    assert gap < NO_ADDED_DELAY_S, f"the menu came {gap:.2f}s after the language choice"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


MANDARIN: list[Pause | Keys] = [Pause(1500), Keys("1")]  # during the welcome: Mandarin


def test_a_caller_on_an_outage_feeder_hears_it_before_the_menu_and_hangs_up_deflected(
        backend: Backend, cti: CtiProcess, ami: AmiRecorder, prompt_index: PromptIndex,
        numbers: Numbers, workdir: Path) -> None:
    number = numbers.new_phone(backend, numbers.fault_account)

    h = _call(backend, cti, ami, prompt_index, workdir, Caller(number, MANDARIN),
              ("outage.hangup_hint", "zh"))  # hangs up as the hint starts: in the window

    _ivr_ok(h)
    heard = h.view.heard_ids()
    fault = backend.demo["outage_fault"]["outages"][0]
    restore = datetime.fromisoformat(fault["expected_restore_at"]).astimezone(TZ)
    started = h.record.started_at
    now = (started if started.tzinfo else started.replace(tzinfo=UTC)).astimezone(TZ)
    assert contains_run(heard, ["outage.here", "outage.cause.fault", "outage.restore_at",
                                *say_datetime(restore, "zh", now=now)]), heard
    assert "ivr.main_menu" not in h.view.offered_ids()  # before the menu, which never came
    assert h.record.outcome == "deflected"
    assert h.record.outage_ids == [numbers.fault_notice]
    assert h.record.caller_number == number


def test_a_hang_up_during_the_notice_is_deflected_too(
        backend: Backend, cti: CtiProcess, ami: AmiRecorder, prompt_index: PromptIndex,
        numbers: Numbers, workdir: Path) -> None:
    number = numbers.new_phone(backend, numbers.fault_account)

    h = _call(backend, cti, ami, prompt_index, workdir, Caller(number, MANDARIN),
              ("outage.cause.fault", "zh"))

    _ivr_ok(h)
    assert (h.record.outcome, h.record.outage_ids) == ("deflected", [numbers.fault_notice])


def test_a_caller_with_no_outage_gets_the_plain_menu_at_once(
        backend: Backend, cti: CtiProcess, ami: AmiRecorder, prompt_index: PromptIndex,
        numbers: Numbers, workdir: Path) -> None:
    h = _call(backend, cti, ami, prompt_index, workdir, Caller(numbers.plain, MANDARIN),
              ("ivr.main_menu", "zh"))

    _ivr_ok(h)
    _menu_follows_welcome_at_once(h)
    assert not [p for p in h.view.offered_ids() if p.startswith("outage.")]
    assert (h.record.outcome, h.record.outage_ids) == ("hangup", None)


def test_an_unknown_number_gets_the_plain_menu_at_once(
        backend: Backend, cti: CtiProcess, ami: AmiRecorder, prompt_index: PromptIndex,
        numbers: Numbers, workdir: Path) -> None:
    number = f"{backend.prefix}65{next(_serial):05d}"  # nobody's (65: this module's range)

    h = _call(backend, cti, ami, prompt_index, workdir, Caller(number, MANDARIN),
              ("ivr.main_menu", "zh"))

    _ivr_ok(h)
    _menu_follows_welcome_at_once(h)
    assert (h.record.outcome, h.record.outage_ids) == ("hangup", None)


@pytest.fixture
def published(backend: Backend, numbers: Numbers) -> Iterator[Callable[[], int]]:
    """Publishes a storm-repair notice on the quiet account's 台区 when called, as the console
    does (OutageService.publish); closes it after the test, so no later caller hears it."""
    svc = OutageService(backend.sessions)
    ids: list[int] = []

    def publish() -> int:
        now = datetime.now(UTC)
        with backend.sessions() as s:
            place = store.place_of_account(s, numbers.quiet_account)
        assert place is not None and place.transformer_area
        ids.append(svc.publish(store.NoticeDraft(
            Cause.STORM_REPAIR, now - timedelta(minutes=10),
            transformer_areas=frozenset({(place.area_id, place.transformer_area)}),
            expected_restore_at=now + timedelta(hours=3),
            agent_text="台风致线路倒杆 (integration test)"), SUP, now))
        return ids[-1]
    yield publish
    for oid in ids:
        svc.close(oid, SUP, datetime.now(UTC))


def test_a_notice_published_now_is_heard_by_the_very_next_call(
        backend: Backend, cti: CtiProcess, ami: AmiRecorder, prompt_index: PromptIndex,
        numbers: Numbers, workdir: Path, published: Callable[[], int]) -> None:
    before = numbers.new_phone(backend, numbers.quiet_account)
    after = numbers.new_phone(backend, numbers.quiet_account)
    first = _call(backend, cti, ami, prompt_index, workdir, Caller(before, MANDARIN),
                  ("ivr.main_menu", "zh"))
    _menu_follows_welcome_at_once(first)  # the CTI's index is built, with no notice in it

    oid = published()
    h = _call(backend, cti, ami, prompt_index, workdir, Caller(after, MANDARIN),
              ("outage.hangup_hint", "zh"))

    _ivr_ok(h)
    assert contains_run(h.view.heard_ids(), ["outage.here", "outage.cause.storm_repair",
                                             "outage.restore_at"]), h.view.heard_ids()
    assert (h.record.outcome, h.record.outage_ids) == ("deflected", [oid])


def test_1_after_the_notice_reaches_the_main_menu(
        backend: Backend, cti: CtiProcess, ami: AmiRecorder, prompt_index: PromptIndex,
        numbers: Numbers, workdir: Path) -> None:
    number = numbers.new_phone(backend, numbers.fault_account)

    # 1 is pressed as the hint ("hang up if this is why you called; 1 for other services")
    # starts
    h = _call(backend, cti, ami, prompt_index, workdir, Caller(number, MANDARIN),
              ("ivr.main_menu", "zh"), press=("outage.hangup_hint", "1"))

    _ivr_ok(h)
    offered = h.view.offered_ids()
    assert "outage.hangup_hint" in offered
    assert offered.index("outage.cause.fault") < offered.index("ivr.main_menu"), offered
    assert {"node": "outage_first_window", "input": "1"} in h.record.ivr_path, h.record.ivr_path
    assert (h.record.outcome, h.record.outage_ids) == ("hangup", [numbers.fault_notice])


# ------------------------------------------------------------------ fault reports in outages

# Mandarin, 3 fault report, 1 confirm, then the account and #
FAULT_REPORT: list[Pause | Keys] = [Pause(1500), Keys("1"), Pause(1500), Keys("3"), Pause(1500),
                                    Keys("1"), Pause(1500)]


def _stranger(backend: Backend) -> str:
    """A number on no account (65: this module's range): no outage-first notice before the
    menu, so the keys of FAULT_REPORT meet the menus they were timed for."""
    return f"{backend.prefix}65{next(_serial):05d}"


def _report(backend: Backend, cti: CtiProcess, ami: AmiRecorder, prompts: PromptIndex,
            workdir: Path, account_no: str) -> tuple[Heard, WorkOrder]:
    number = _stranger(backend)
    h = _call(backend, cti, ami, prompts, workdir,
              Caller(number, [*FAULT_REPORT, Keys(account_no + "#")]), ("ivr.goodbye", "zh"))
    _ivr_ok(h)
    with backend.sessions() as s:
        order = s.scalars(select(WorkOrder).where(WorkOrder.call_id == h.view.linkedid)).one()
        s.expunge(order)
    return h, order


def test_a_fault_report_inside_a_known_outage_joins_its_repair_order_and_is_told_so(
        backend: Backend, cti: CtiProcess, ami: AmiRecorder, prompt_index: PromptIndex,
        numbers: Numbers, workdir: Path) -> None:
    first_h, first = _report(backend, cti, ami, prompt_index, workdir, numbers.fault_account)
    second_h, second = _report(backend, cti, ami, prompt_index, workdir, numbers.fault_account)

    fault = backend.demo["outage_fault"]["outages"][0]
    restore = datetime.fromisoformat(fault["expected_restore_at"]).astimezone(TZ)
    for h in (first_h, second_h):
        heard = h.view.heard_ids()
        assert contains_run(heard, ["ivr.fault_in_outage", "outage.restore_at"]), heard
        assert contains_run(heard, say_datetime(
            restore, "zh", now=h.record.started_at.astimezone(TZ))), heard
        assert "ivr.fault_created" not in heard  # no new order number: it joined the outage's
    with backend.sessions() as s:
        outage = s.get(Outage, numbers.fault_notice)
        assert outage is not None and outage.master_order_id is not None
        master_id = outage.master_order_id
    assert first.outage_id == second.outage_id == numbers.fault_notice
    # one master for the outage (the first report, or an earlier one); the rest its children
    assert second.master_id == master_id
    assert first.id == master_id or first.master_id == master_id


def _cluster(backend: Backend, size: int) -> list[str]:
    """`size` accounts of one 台区 on one feeder that no notice covers and no demo purpose
    uses: the incident test's own cluster."""
    now = datetime.now(UTC)
    svc = OutageService(backend.sessions)
    demo_accounts = {d["account_no"] for d in backend.demo.values()}
    groups: dict[tuple[int, int | None, str | None], list[str]] = {}
    with backend.sessions() as s:
        for no, area, feeder, ta in s.execute(
                select(Account.account_no, Account.area_id, Account.feeder_id,
                       Account.transformer_area)
                .where(Account.transformer_area.is_not(None)).order_by(Account.account_no)):
            if no not in demo_accounts:
                groups.setdefault((area, feeder, ta), []).append(no)
        for accounts in sorted(groups.values(), key=len, reverse=True):
            quiet = [a for a in accounts if svc.for_account(s, a, now) == ()]
            if len(quiet) == len(accounts) >= size and not _reported(s, accounts):
                return accounts[:size]
    raise AssertionError(f"no 台区 with {size} quiet accounts in the demo city")


def _reported(s: Any, accounts: list[str]) -> bool:
    return s.scalar(select(WorkOrder.id).join(Account, Account.id == WorkOrder.account_id)
                    .where(Account.account_no.in_(accounts)).limit(1)) is not None


def test_five_reports_on_one_taiqu_open_a_suspected_outage_later_callers_hear_and_join(
        backend: Backend, cti: CtiProcess, ami: AmiRecorder, prompt_index: PromptIndex,
        numbers: Numbers, workdir: Path) -> None:
    """Auto mode: five reports (filed by agents, through the work-order service with outage
    linking, as the desktop does) open a suspected outage on their 台区 or feeder; a sixth
    customer there calls and hears it before the menu, and their fault report through the
    real IVR joins it as a child of its master order."""
    accounts = _cluster(backend, 7)
    detection = DetectionSettings(threshold=5, window=timedelta(minutes=15), mode=Mode.AUTO)
    svc = OutageService(backend.sessions, detection=detection)
    orders = WorkOrderService(backend.sessions, SlaPolicy(), outages=svc)
    agent = Actor("it-agent", Role.AGENT)
    made = [orders.create(NewOrder(type="fault_repair", description="家里停电了（集成测试）",
                                   caller_number=f"1390000{i:04d}", account_no=a,
                                   channel="agent"), agent)
            for i, a in enumerate(accounts[:5])]
    now = datetime.now(UTC)
    with backend.sessions() as s:
        covering = svc.for_account(s, accounts[5], now)
    assert covering is not None and len(covering) == 1, covering
    suspected = covering[0]
    try:
        assert suspected.cause is Cause.REPORTED and not suspected.awaiting_confirmation
        with backend.sessions() as s:
            linked = s.scalars(select(WorkOrder).where(
                WorkOrder.number.in_([m["number"] for m in made]))).all()
            assert {o.outage_id for o in linked} == {suspected.id}
            masters = [o for o in linked if o.master_id is None]
            assert len(masters) == 1  # the cluster's first report; the other four its children

        # a later caller from that 台区 hears it before the menu
        phone = numbers.new_phone(backend, accounts[5])
        h = _call(backend, cti, ami, prompt_index, workdir, Caller(phone, MANDARIN),
                  ("outage.hangup_hint", "zh"))
        _ivr_ok(h)
        assert contains_run(h.view.heard_ids(), ["outage.here", "outage.cause.reported"]), \
            h.view.heard_ids()
        assert (h.record.outcome, h.record.outage_ids) == ("deflected", [suspected.id])

        # and a fault report from there through the IVR joins the master order
        _, order = _report(backend, cti, ami, prompt_index, workdir, accounts[6])
        assert (order.outage_id, order.master_id) == (suspected.id, masters[0].id)
    finally:
        svc.close(suspected.id, SUP, datetime.now(UTC))


def test_storm_mode_gives_the_short_menu_and_off_the_plain_one_again(
        backend: Backend, cti: CtiProcess, ami: AmiRecorder, prompt_index: PromptIndex,
        numbers: Numbers, workdir: Path) -> None:
    svc = OutageService(backend.sessions)
    log = CtiLog(cti.settings)
    at = log.mark()
    assert svc.set_storm(True, SUP, datetime.now(UTC))
    try:
        # the CTI's storm watch has read the switch (its next period): new callers get it
        log.wait_for("handling is now HandlingChanged(", at, 15)
        h = _call(backend, cti, ami, prompt_index, workdir, Caller(_stranger(backend), MANDARIN),
                  ("ivr.storm_menu", "zh"))
        _ivr_ok(h)
        assert "ivr.main_menu" not in h.view.offered_ids()
    finally:
        at = log.mark()
        assert svc.set_storm(False, SUP, datetime.now(UTC))
        log.wait_for("handling is now HandlingChanged(", at, 15)
    h = _call(backend, cti, ami, prompt_index, workdir, Caller(_stranger(backend), MANDARIN),
              ("ivr.main_menu", "zh"))
    _ivr_ok(h)
    _menu_follows_welcome_at_once(h)
    assert "ivr.storm_menu" not in h.view.offered_ids()
