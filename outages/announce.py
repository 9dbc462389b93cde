"""What a caller with a known outage hears before the menu, as prompt ids the IVR plays.

Pure: no I/O. The output is the same kind of items the IVR engine plays today (`ivr.engine.speak`
for a `say` node): a list of prompt ids, sentences from `PHRASES` below and the number, digit and
time pieces of `ivr.say` (prompts/catalog/pieces.yaml). The free text of a notice is never read
here, so it can never be spoken.

What the adapters supply (the wiring step):
- the caller's `PlaceGroup`s from `outages.scope.NoticeIndex.for_accounts`, the language the
  caller chose, `now`, and the center's time zone (times are spoken in local time, as the engine
  does with its `tz`);
- `PHRASES` added to the prompt catalog (prompts/catalog/*.yaml) and the audio built with
  `hotline prompts build`; until then `missing_phrases(catalog)` names what is missing.
The IVR plays `Announcement.prompts` before the main menu; "1" goes on to the menu, a hang-up
during or soon after it counts the call as deflected, with `notice_ids` on the call record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from types import MappingProxyType
from typing import Final, Protocol

from ivr import say
from outages.scope import CAUSES, Notice, PlaceGroup

MAX_PLACES_SPOKEN = 3
MAX_NOTICES_PER_PLACE = 3  # as ivr.engine.MAX_OUTAGES_SPOKEN
ACCOUNT_TAIL_DIGITS = 4
MENU_KEY = "1"  # "press 1 for other services" (outage.hangup_hint says it)

# The new sentences, Mandarin and English. They go into the prompt catalog as they are; the
# pieces between them (digits, times) come from ivr.say.
PHRASES: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType({
    "outage.here": {
        "zh": "您好，您所在的区域",
        "en": "In your area, there is"},
    "outage.account_tail": {
        "zh": "您尾号为",
        "en": "At the address of your account ending in"},
    "outage.account_tail_end": {
        "zh": "的户号所在区域",
        "en": "there is"},
    "outage.also": {
        "zh": "同时，该区域还",
        "en": "There is also"},
    "outage.cause.fault": {
        "zh": "因设备故障停电，抢修人员正在处理。",
        "en": "a power cut caused by a fault, and a repair crew is working on it."},
    "outage.cause.planned": {
        "zh": "正在进行计划检修，暂停供电。",
        "en": "planned maintenance work with the power off."},
    "outage.cause.storm_repair": {
        "zh": "因恶劣天气造成线路受损停电，抢修人员正在全力抢修。",
        "en": "a power cut from storm damage to the lines, and repair crews are working on it."},
    "outage.cause.temporary": {
        "zh": "因临时检修暂停供电。",
        "en": "a temporary power cut for urgent maintenance."},
    "outage.cause.upstream": {
        "zh": "因上级电网故障停电，我们正在尽快恢复供电。",
        "en": "a power cut caused by a fault on the wider grid, and we are restoring it."},
    "outage.cause.external_damage": {
        "zh": "因外力破坏造成线路故障停电，抢修人员正在处理。",
        "en": "a power cut caused by damage to the line by a third party, and a repair crew "
              "is working on it."},
    "outage.cause.load_limiting": {
        "zh": "因电网负荷紧张，正在实施有序用电，暂停供电。",
        "en": "a scheduled power cut because the grid is short of supply."},
    "outage.cause.reported": {
        "zh": "有多位用户报告停电，我们已安排人员核实处理。",
        "en": "a power cut reported by several customers, and we have sent a crew to check."},
    "outage.restore_at": {
        "zh": "预计恢复供电时间为",
        "en": "Power is expected back"},
    "outage.restore_overdue": {
        "zh": "抢修仍在进行，我们将尽快恢复供电。",
        "en": "Repairs are taking longer than expected; we will restore power as soon as we can."},
    "outage.restore_unknown": {
        "zh": "恢复供电时间正在评估中。",
        "en": "The time power will be back is still being assessed."},
    "outage.order_exists": {
        "zh": "抢修工单已经受理，您无需重复报修。",
        "en": "A repair order already covers this, so you do not need to report it again."},
    "outage.hangup_hint": {
        "zh": "如果您是为此来电，现在可以挂机；办理其他业务请按一。",
        "en": "If this is why you called, you may hang up now. For other services, press one."},
})


class _TextSource(Protocol):
    def has(self, prompt_id: str, lang: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Announcement:
    """The prompt ids to play before the menu, and what they told (for the call record)."""

    prompts: tuple[str, ...]
    notice_ids: tuple[int, ...]   # every notice spoken, once, in order
    accounts: tuple[str, ...]     # the accounts the caller was told about


def _local(t: datetime, tz: tzinfo | None) -> datetime:
    return t.astimezone(tz) if tz is not None else t


def _restore(n: Notice, lang: str, now: datetime, tz: tzinfo | None) -> list[str]:
    at = n.restore_at
    if at is None:
        return ["outage.restore_unknown"]
    if at <= now:
        # a past time would sound like a mistake; the caller needs to hear work goes on
        return ["outage.restore_overdue"]
    return ["outage.restore_at", *say.say_datetime(_local(at, tz), lang, now=_local(now, tz))]


def _notice(n: Notice, lang: str, now: datetime, tz: tzinfo | None) -> list[str]:
    out = [CAUSES[n.cause].phrase, *_restore(n, lang, now, tz)]
    if n.master_order is not None:
        out.append("outage.order_exists")
    return out


def _tail(account_no: str, lang: str) -> list[str]:
    digits = "".join(c for c in account_no if c.isascii() and c.isdigit())
    return say.say_digits(digits[-ACCOUNT_TAIL_DIGITS:], lang)


def announcement(groups: Sequence[PlaceGroup], lang: str, now: datetime,
                 tz: tzinfo | None = None) -> Announcement | None:
    """What to play before the menu; None when no group has a notice (the plain menu, at once).

    One group: "in your area" + each notice. Several: each group opens with the tail of its
    first account ("your account ending 1234"). Per notice: its cause phrase, the expected
    restoration as a spoken time (or that work goes on, once that time has passed, or that it
    is being assessed), and that a repair order covers it when one does. Then the hang-up hint.
    """
    if lang not in say.LANGS:
        raise ValueError(f"unsupported language {lang!r}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware datetime")
    spoken = [g for g in groups if g.notices][:MAX_PLACES_SPOKEN]
    if not spoken:
        return None
    prompts: list[str] = []
    ids: list[int] = []
    for g in spoken:
        if len(spoken) == 1:
            prompts.append("outage.here")
        else:
            prompts += ["outage.account_tail", *_tail(g.accounts[0], lang),
                        "outage.account_tail_end"]
        for i, n in enumerate(g.notices[:MAX_NOTICES_PER_PLACE]):
            if i:
                prompts.append("outage.also")
            prompts += _notice(n, lang, now, tz)
            if n.id not in ids:
                ids.append(n.id)
    prompts.append("outage.hangup_hint")
    return Announcement(prompts=tuple(prompts), notice_ids=tuple(ids),
                        accounts=tuple(a for g in spoken for a in g.accounts))


def missing_phrases(catalog: _TextSource, langs: Iterable[str] = say.LANGS) -> list[str]:
    """`id/lang` of every phrase not yet in the prompt catalog, sorted (for `hotline doctor`)."""
    return sorted(f"{pid}/{lang}" for pid in PHRASES for lang in langs
                  if not catalog.has(pid, lang))
