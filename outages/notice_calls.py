"""Planned-outage notice calls (issue 14 §4): who is called about a planned outage, and when.

Pure: no I/O and no clock; `now` is passed in, times are timezone-aware.

The affected important customers (重要客户: hospitals, life support, industry; flagged on the
customer) are called at each lead time before the outage starts, by default 7 days and 1 day
before. A lead's call is due from `start - lead` and is worth making until the next shorter
lead's call is due (or, for the shortest, until the outage starts): an outage published 3 days
ahead gets its 7-day call at once and its 1-day call the day before, and one published 12
hours ahead gets only the 1-day call. Nobody else is ever called.

Each call is one job, known by its key (outage, account, number, lead): `reconcile` compares the
calls an outage wants now with the jobs it already has and says what to create, what to move
(the outage's times changed) and what to cancel (the outage was closed or cancelled, it began,
its scope or the customer changed), so running it on every tick, or again after a restart,
changes nothing when nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import Final

from ivr import say
from outages.scope import Cause, Place, Scope

DEFAULT_LEAD_DAYS: tuple[int, ...] = (7, 1)
MAX_LEAD_DAYS = 30


def _aware(t: datetime, what: str) -> None:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime for {what} {t!r}: pass a timezone-aware datetime")


def check_lead_days(days: Iterable[int]) -> tuple[int, ...]:
    """The lead days, longest first, each once; ValueError for a bad one."""
    out = set()
    for d in days:
        if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_LEAD_DAYS:
            raise ValueError(f"a notice's lead must be 1 to {MAX_LEAD_DAYS} days, not {d!r}")
        out.add(d)
    return tuple(sorted(out, reverse=True))


@dataclass(frozen=True, slots=True)
class PlannedOutage:
    """What the scheduler needs of an outage notice: its scope and start, and whether calls
    about it may be made at all (a planned kind, published, not closed or cancelled)."""

    id: int
    scope: Scope
    start_at: datetime
    callable: bool = True

    def __post_init__(self) -> None:
        _aware(self.start_at, "start_at")


@dataclass(frozen=True, slots=True)
class Customer:
    """An important customer's account and one phone number of it (national form)."""

    account_no: str
    number: str
    place: Place
    lang: str = "zh"


Key = tuple[int, str, str, int]
"""(outage id, account, number, lead days): one notice call."""


@dataclass(frozen=True, slots=True)
class NoticeCall:
    outage_id: int
    account_no: str
    number: str
    lead_days: int
    not_before: datetime
    expires_at: datetime
    lang: str = "zh"

    @property
    def key(self) -> Key:
        return (self.outage_id, self.account_no, self.number, self.lead_days)


def windows(start_at: datetime, lead_days: Sequence[int]) -> list[tuple[int, datetime, datetime]]:
    """(lead, due from, worth making until) of each lead, longest first."""
    _aware(start_at, "start_at")
    leads = check_lead_days(lead_days)
    out = []
    for i, lead in enumerate(leads):
        until = start_at - timedelta(days=leads[i + 1]) if i + 1 < len(leads) else start_at
        out.append((lead, start_at - timedelta(days=lead), until))
    return out


def wanted(outage: PlannedOutage, customers: Iterable[Customer], lead_days: Sequence[int],
           now: datetime) -> list[NoticeCall]:
    """The calls this outage wants now: for each important customer it covers, each lead whose
    time is not over. None for an outage that may not be called about or has begun."""
    _aware(now, "now")
    if not outage.callable or now >= outage.start_at:
        return []
    leads = [w for w in windows(outage.start_at, lead_days) if now < w[2]]
    return [NoticeCall(outage.id, c.account_no, c.number, lead, due, until, c.lang)
            for c in customers if outage.scope.covers(c.place)
            for lead, due, until in leads]


@dataclass(frozen=True, slots=True)
class Existing:
    """A notice job already made: its key, state and times."""

    job_id: int
    key: Key
    state: str
    not_before: datetime | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Changes:
    create: tuple[NoticeCall, ...] = ()
    # (job id, the call it is now): a scheduled job whose times moved, or a cancelled one the
    # outage wants again (its scope came back), scheduled anew
    move: tuple[tuple[int, NoticeCall], ...] = ()
    cancel: tuple[int, ...] = ()
    # a job the outage wants that is over (done, gave up, ...) is left as it is: a customer is
    # told once per lead
    kept: tuple[int, ...] = field(default=())

    def __bool__(self) -> bool:
        return bool(self.create or self.move or self.cancel)


def reconcile(want: Iterable[NoticeCall], have: Iterable[Existing]) -> Changes:
    """What to do so that the jobs are the calls wanted: create the missing, move the scheduled
    whose times changed, revive a cancelled one wanted again, cancel the scheduled no longer
    wanted. A job being dialled is left to end; a job that is over stays over."""
    by_key: dict[Key, NoticeCall] = {}
    for c in want:
        by_key.setdefault(c.key, c)
    seen: set[Key] = set()
    move: list[tuple[int, NoticeCall]] = []
    cancel: list[int] = []
    kept: list[int] = []
    for job in sorted(have, key=lambda j: j.job_id):
        if job.key in seen:  # the unique index makes this impossible; keep the first
            continue
        seen.add(job.key)
        call = by_key.get(job.key)
        if call is None:
            if job.state == "scheduled":
                cancel.append(job.job_id)
            continue
        if job.state == "cancelled" or (job.state == "scheduled" and (
                job.not_before != call.not_before or job.expires_at != call.expires_at)):
            move.append((job.job_id, call))
        elif job.state != "scheduled":
            kept.append(job.job_id)
    create = [c for k, c in by_key.items() if k not in seen]
    return Changes(tuple(create), tuple(move), tuple(cancel), tuple(kept))


def by_outage(have: Iterable[Existing]) -> Mapping[int, list[Existing]]:
    out: dict[int, list[Existing]] = {}
    for j in have:
        out.setdefault(j.key[0], []).append(j)
    return out


# ------------------------------------------------------------------------- what is said

# The sentences of a notice call, Mandarin and English (prompts/catalog/outbound.yaml holds
# them as they are; tests/unit/test_outage_notice_calls.py keeps the two equal). The date, the
# times and the account's last digits between them are ivr.say's pieces; the outage's free
# text and the area's name are never spoken (no recording of them can exist): the area is the
# one of the customer's account, named by its last four digits as the IVR does.
PHRASES: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType({
    "notice.intro": {
        "zh": "您好，这里是国家电网九五五九八供电服务热线，现向您通知计划停电信息。",
        "en": "Hello, this is the State Grid customer service line, with notice of a planned "
              "power cut."},
    "notice.cause.planned": {
        "zh": "因计划检修，",
        "en": "the power will be off for planned maintenance work,"},
    "notice.cause.temporary": {
        "zh": "因临时检修，",
        "en": "the power will be off for urgent maintenance work,"},
    "notice.cause.load_limiting": {
        "zh": "因电网负荷紧张实施有序用电，",
        "en": "the power will be off because the grid is short of supply,"},
    "notice.from": {"zh": "将于", "en": "from"},
    "notice.until": {"zh": "至", "en": "until"},
    "notice.power_off": {"zh": "停电。"},  # English says it up front (the cause phrase)
    "notice.prepare": {
        "zh": "请您提前做好停电准备。",
        "en": "Please get ready for it."},
    # played by the dialplan after the notice, and at its end (hotline-outage-notice)
    "notice.repeat": {
        "zh": "重听请按一。",
        "en": "To hear this again, press one."},
    "notice.bye": {
        "zh": "感谢您的接听，再见。",
        "en": "Thank you for listening. Goodbye."},
})
ACCOUNT_TAIL_DIGITS = 4
MAX_PLAYS = 3  # the notice and at most two repeats (the dialplan's bound)


def _cause_phrase(cause: Cause) -> str:
    name = f"notice.cause.{cause.value}"
    return name if name in PHRASES else "notice.cause.planned"


def speech(cause: Cause, start_at: datetime, end_at: datetime | None, account_no: str,
           lang: str, now: datetime, tz: tzinfo | None = None) -> list[str]:
    """The prompt ids of one notice: who calls, the customer's account (its last digits), why,
    from when until when (in local time; "today"/"tomorrow" said as such), and to prepare.

    zh: 您好…通知计划停电信息。您尾号为1234的户号所在区域，因计划检修，
    将于明天上午八点整至下午五点整停电。请您提前做好停电准备。
    en: "... At the address of your account ending in 1234, the power will be off for planned
    maintenance work, from tomorrow at eight a.m. until five p.m. Please get ready for it."
    The end's date is said only when it is another day.
    """
    if lang not in say.LANGS:
        raise ValueError(f"unsupported language {lang!r}")
    _aware(now, "now")
    start = start_at.astimezone(tz) if tz is not None else start_at
    here_now = now.astimezone(start.tzinfo)
    digits = "".join(c for c in account_no if c.isascii() and c.isdigit())
    out = ["notice.intro", "outage.account_tail",
           *say.say_digits(digits[-ACCOUNT_TAIL_DIGITS:], lang)]
    if lang == "zh":
        out.append("outage.account_tail_end")
    out += [_cause_phrase(cause), "notice.from", *say.say_datetime(start, lang, now=here_now)]
    if end_at is not None:
        end = end_at.astimezone(start.tzinfo)
        out.append("notice.until")
        out += (say.say_time(end.time(), lang) if end.date() == start.date()
                else say.say_datetime(end, lang, now=here_now))
    if lang == "zh":
        out.append("notice.power_off")
    out.append("notice.prepare")
    return out
