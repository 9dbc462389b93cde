"""Adapter: runs one caller's IVR session, turning engine actions into FastAGI commands."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from acd.calendar import Calendar, Decision, decide
from ivr import engine as e
from ivr import say
from ivr.fastagi import AgiChannel, AgiCommandError, AgiHangup
from ivr.speech_port import ListenRequest, SpeechPort

log = logging.getLogger(__name__)

ALL_KEYS = "0123456789*#"
QUERY_TIMEOUT_S = 5.0
# music to a caller whose lookup is still running after [ivr] max_silence_s (a MOH class)
HOLD_MUSIC = "default"
# the call record is worth a short wait, never the caller's silence
RECORD_TIMEOUT_S = 3.0
# what a caller on the nuisance list hears (prompts/catalog/callers.yaml)
NUISANCE_WARNING = "callers.nuisance_warning"
# after hours (prompts/catalog/calendars.yaml): the skill is closed, it opens at ..., and what
# happens next (transferred to an open skill, or a callback offered: 1 books it, 2 declines)
CLOSED, OPENS_AT, OPENS_AT_END = "calendars.closed", "calendars.opens_at", "calendars.opens_at_end"
ROUTED, CALLBACK_OFFER = "calendars.routed", "calendars.callback_offer"
CALLBACK_BOOKED, CALLBACK_FAILED = "calendars.callback_booked", "calendars.callback_failed"
CALLBACK_KEYS = {"1": "book", "2": "decline"}
CALLBACK_TRIES = 3
CALLBACK_WAIT_S = 6.0
PLAY_TIMEOUT_S = 120.0
# after a wrong answer, keys still arriving (a caller mashing the keypad) are swallowed until
# the caller pauses this long, so one burst of garbage costs one retry, not all of them
DRAIN_QUIET_MS = 400
DRAIN_MAX_KEYS = 64
# a leg whose codec carries 16 kHz (Asterisk's format names): the listener hears it at 16 kHz
WIDEBAND_FORMATS = frozenset({"g722", "slin16", "slin24", "slin32", "slin44", "slin48",
                              "slin96", "slin192", "opus", "speex16", "speex32", "siren7",
                              "siren14", "g719", "silk16", "silk24"})


class IvrServices(Protocol):
    """What the IVR needs from the rest of the system (the database, in production)."""

    async def query(self, kind: str, args: dict[str, Any]) -> Any: ...

    async def call_started(self, *, call_id: str, uniqueid: str, caller: str, dnis: str,
                           now: datetime) -> None: ...

    async def ivr_finished(self, *, call_id: str, outcome: str, path: list[dict[str, Any]],
                           lang: str, account: str | None, skill: str | None,
                           priority: int | None, now: datetime,
                           outage_ids: Sequence[int] = ()) -> None: ...

    async def caller_lists(self, caller: str) -> frozenset[str]:
        """The inbound lists the caller's number is on (cti.db.callers: nuisance, vip)."""
        ...

    async def calendars(self) -> Mapping[str, Calendar]:
        """The skills' service hours (cti.db.calendars); a skill without one is 7×24."""
        ...

    async def book_callback(self, *, call_id: str, caller: str, skill: str, at: datetime,
                            lang: str, valid_for: timedelta, now: datetime) -> int:
        """An after-hours callback to the caller when `skill` opens (`at`); its id."""
        ...


class PromptPaths(Protocol):
    def asterisk_path(self, prompt_id: str, lang: str) -> str: ...

    def local_file(self, prompt_id: str, lang: str) -> Path: ...


@dataclass
class IvrContext:
    """Everything a session needs, handed over by the composition root."""

    engine_factory: Callable[[], e.Engine]
    prompts: PromptPaths
    services: IvrServices
    clock: Callable[[], datetime]
    # [ivr] max_silence_s: a reply to a command that plays nothing must come within it (res_agi
    # waits for our next command for ever, in silence); a lookup past it gets music
    max_silence_s: float = 2.0
    # storm mode's shortened menus in force (the CTI's storm watch keeps it, no read per call)
    short_menus: Callable[[], bool] = lambda: False
    # takes a caller whose session gave up (a FastAGI path too slow) to the dialplan's fallback
    # by another way than FastAGI (AMI Redirect); None: the close alone, which arrives late
    rescue: Callable[[str], Awaitable[bool]] | None = None
    # lets callers speak to menus (AudioSocket, issue 13); None: keys only
    speech: SpeechPort | None = None
    # service hours (issue 15 §3): the center's time zone ([ivr] timezone), the 7×24 skill a
    # caller of a closed skill goes to without a callback, and how long a callback stays due
    tz: tzinfo = ZoneInfo("Asia/Shanghai")
    always_open: str = "general"
    callback_valid: timedelta = timedelta(hours=4)


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class AgiIvrSession:
    """Executes the actions of one session over one AGI channel."""

    def __init__(self, agi: AgiChannel, ctx: IvrContext) -> None:
        self.agi = agi
        self.ctx = ctx
        self.path: list[dict[str, Any]] = []
        h = agi.headers
        self.uniqueid = h.get("agi_uniqueid", "")
        # the dialplan passes the Linkedid as the first argument: the call's identity
        self.call_id = h.get("agi_arg_1") or self.uniqueid
        self.caller = h.get("agi_callerid", "") if h.get("agi_callerid") != "unknown" else ""
        self.dnis = h.get("agi_extension", "")
        self.link_s = ctx.max_silence_s
        self.channel = h.get("agi_channel", "")
        self._leg_rate: int | None = None

    def _paths(self, prompts: Sequence[e.Prompt]) -> list[str]:
        return [self.ctx.prompts.asterisk_path(p.id, p.lang) for p in prompts]

    async def play(self, prompts: Sequence[e.Prompt], barge_in: bool) -> str | None:
        """STREAM FILE each prompt; with barge-in, the first key pressed stops it and is kept."""
        escape = ALL_KEYS if barge_in else ""
        for path in self._paths(prompts):
            res = await self.agi.command(f"STREAM FILE {path} {_quote(escape)}",
                                         timeout=PLAY_TIMEOUT_S)
            code = res.get("result", ("", ""))[0]
            if res.get("error") == "AGIAppError":
                # result=-1: the file could not be played or the channel is gone; find out which
                await self._check_alive()
                log.error("call %s: could not play %s", self.call_id, path)
                continue
            if code and code != "0":
                return chr(int(code))
        return None

    async def leg_rate(self) -> int:
        """16000 when the caller's leg carries wideband audio (its codec, the first of the
        channel's native formats, is G.722, slin16, ...), else 8000. Asked once a call (the
        codec was agreed at the answer)."""
        if self._leg_rate is None:
            res = await self.agi.command('GET VARIABLE "CHANNEL(audionativeformat)"',
                                         timeout=self.link_s)
            code, value = res.get("result", ("0", ""))[:2]
            first = value.strip("()").split("|", 1)[0].strip() if code == "1" else ""
            self._leg_rate = 16000 if first in WIDEBAND_FORMATS else 8000
        return self._leg_rate

    async def listen(self, act: e.Listen) -> e.Heard:
        """A menu the caller may speak to: the channel is connected to the CTI's listener,
        which plays the prompt, hears the caller and ends the connection (closes the socket) on
        a key, a result or silence; the session goes on from there. A narrowband leg runs the
        AudioSocket() application (8 kHz, in the channel's own thread); a wideband one Dials
        the AudioSocket channel driver with slin16, so the listener hears 16 kHz (one more
        channel and a bridge for the listening's length). Anything that keeps us from
        listening gives the key menu (Heard.unavailable)."""
        port = self.ctx.speech
        if port is None:
            return e.Heard(unavailable="off")
        try:
            files = tuple(self.ctx.prompts.local_file(p.id, p.lang) for p in act.prompts)
        except LookupError:
            log.error("call %s: a speech menu prompt is not built", self.call_id)
            return e.Heard(unavailable="error")
        rate = await self.leg_rate() if port.sample_rate >= 16000 else 8000
        listening = port.listen(ListenRequest(self.call_id, act.lang, act.choices, files,
                                              rate=rate))
        if listening is None:
            log.warning("call %s: every speech decoder is busy: keys only", self.call_id)
            return e.Heard(unavailable="busy")
        try:
            # the uuid is ours (uuid4) and the address the settings': nothing of the caller's
            if listening.rate == 16000:
                # g: back to the dialplan (this AGI) when the listener hangs the channel up
                cmd = (f"EXEC Dial "
                       f"{_quote(f'AudioSocket/{port.address}/{listening.uuid}/c(slin16),,g')}")
            else:
                cmd = f"EXEC AudioSocket {_quote(f'{listening.uuid},{port.address}')}"
            res = await self.agi.command(cmd, timeout=PLAY_TIMEOUT_S)
            if res.get("error") == "AGIAppError":
                # result=-1: the listener was not reached, or the channel is gone
                await self._check_alive()
                log.error("call %s: AudioSocket failed: keys only", self.call_id)
                return e.Heard(unavailable="error")
            if listening.rate == 16000 and not listening.connected:
                # Dial goes on (g) when the AudioSocket channel could not be had: find out
                await self._check_alive()
                log.error("call %s: AudioSocket channel not connected: keys only",
                          self.call_id)
                return e.Heard(unavailable="error")
            try:
                # the listener decided before it closed the socket that ended AudioSocket()
                async with asyncio.timeout(self.link_s):
                    out = await listening.outcome()
            except TimeoutError:
                log.error("call %s: AudioSocket ended without an outcome", self.call_id)
                return e.Heard(unavailable="error")
        finally:
            listening.cancel()  # a no-op once it ended
        if out.hangup:
            await self._check_alive()
        if not out.connected:
            return e.Heard(unavailable="error")
        digit = out.digit if out.digit and out.digit in ALL_KEYS else None
        return e.Heard(digit=digit, key=out.key, confidence=out.confidence,
                       decision=out.decision)

    async def _check_alive(self) -> None:
        res = await self.agi.command("CHANNEL STATUS", timeout=self.link_s)
        if res.get("error") or res.get("result", ("", ""))[0] not in ("4", "5", "6"):
            raise AgiHangup("channel is not up")

    async def drain(self) -> int:
        """Swallow keys until the caller pauses; returns how many were dropped."""
        for dropped in range(DRAIN_MAX_KEYS):
            res = await self.agi.command(f"WAIT FOR DIGIT {DRAIN_QUIET_MS}",
                                         timeout=self.link_s + DRAIN_QUIET_MS / 1000)
            if res.get("error") == "AGIAppError":
                raise AgiHangup("WAIT FOR DIGIT returned -1")
            if res.get("result", ("0",))[0] in ("0", ""):
                return dropped
        return DRAIN_MAX_KEYS

    async def _read(self, prompts: str, max_digits: int, terminator: str,
                    timeout_s: float) -> tuple[str, str]:
        """One Read: (keys, READSTATUS). Terminator keys end the input and are not returned."""
        args = f"HOTLINE_INPUT,{prompts},{max_digits},t({terminator}),1,{timeout_s:g}"
        res = await self.agi.command(f"EXEC Read {_quote(args)}",
                                     timeout=PLAY_TIMEOUT_S + timeout_s * (max_digits + 1))
        if res.get("error") == "AGIAppError":
            raise AgiHangup("Read returned -1")
        got = await self.agi.command('GET FULL VARIABLE "${HOTLINE_INPUT}|${READSTATUS}"',
                                     timeout=self.link_s)
        value = got.get("result", ("", ""))[1] if got.get("result", ("0",))[0] == "1" else ""
        digits, _, status = value.partition("|")
        if status == "HANGUP":
            raise AgiHangup("Read saw a hangup")
        return digits, status

    async def collect(self, act: e.Collect) -> e.Collected:
        """Menus read one key. A number reads its first key under the first-key timeout while the
        prompt plays (barge-in), then the rest under the inter-digit timeout."""
        if act.flush:
            await self.play(act.flush, barge_in=False)
            await self.drain()
        have, term = act.typeahead, act.terminator
        limit = act.max_digits + (1 if term else 0)
        if any(k in have for k in term) or len(have) >= limit:
            return e.Collected(have)
        prompts = "" if have else "&".join(self._paths(act.prompts))
        if act.inter_digit_timeout_s is None:
            keys, status = await self._read(prompts, limit - len(have), term, act.timeout_s)
            return e.Collected(have + keys, timed_out=status == "TIMEOUT")
        if not have:
            first, status = await self._read(prompts, 1, term, act.timeout_s)
            if not first:  # nothing, or the terminator alone
                return e.Collected("", timed_out=status == "TIMEOUT")
            have = first
            if len(have) >= limit:
                return e.Collected(have)
        rest, status = await self._read("", limit - len(have), term, act.inter_digit_timeout_s)
        return e.Collected(have + rest, timed_out=status == "TIMEOUT")

    async def query(self, act: e.Query) -> e.QueryResult:
        """The lookup, cut off after its node's timeout (else QUERY_TIMEOUT_S); past
        max_silence_s the caller hears music while it runs (the flow's on_error path
        apologises and transfers on a timeout, or goes on, for a lookup the caller did not
        ask for). A lookup whose limit is within max_silence_s never starts the music."""
        loop = asyncio.get_running_loop()
        limit = act.timeout_s if act.timeout_s is not None else QUERY_TIMEOUT_S
        deadline = loop.time() + limit
        lookup = asyncio.create_task(self.ctx.services.query(act.kind, dict(act.args)),
                                     name=f"ivr-lookup-{self.call_id}")
        music = False
        try:
            await asyncio.wait({lookup}, timeout=min(self.link_s, limit))
            if not lookup.done() and deadline - loop.time() > 0.05:
                log.warning("call %s: %s lookup slower than %.1fs: music until it ends",
                            self.call_id, act.kind, self.link_s)
                await self.agi.command(f"SET MUSIC on {HOLD_MUSIC}", timeout=self.link_s)
                music = True
                await asyncio.wait({lookup}, timeout=max(0.0, deadline - loop.time()))
            timed_out = not lookup.done()
        finally:
            if not lookup.done():
                lookup.cancel()  # the lookup's own task: nothing else waits on it
        if music:
            await self.agi.command("SET MUSIC off", timeout=self.link_s)
        if timed_out:
            log.error("call %s: %s lookup timed out", self.call_id, act.kind)
            return e.QueryResult(error="timeout")
        exc = lookup.exception()
        if exc is not None:  # a broken database must not leave the caller in silence
            # one line, no traceback: a database outage fails every lookup for a while
            log.error("call %s: %s lookup failed: %s: %s", self.call_id, act.kind,
                      type(exc).__name__, exc)
            return e.QueryResult(error=type(exc).__name__)
        return e.QueryResult(value=lookup.result())

    async def set_var(self, name: str, value: str) -> None:
        await self.agi.command(f"SET VARIABLE {name} {_quote(value)}", timeout=self.link_s)

    async def run(self) -> None:
        ctx = self.ctx
        now = ctx.clock()
        engine = ctx.engine_factory()
        outcome, skill, priority, account, session = "hangup", None, None, None, None
        try:
            async with asyncio.timeout(RECORD_TIMEOUT_S):
                await ctx.services.call_started(call_id=self.call_id, uniqueid=self.uniqueid,
                                                caller=self.caller, dnis=self.dnis, now=now)
        except Exception:
            log.exception("call %s: could not record the call start", self.call_id)
        try:
            # the link first: Asterisk plays the dialplan's music until our first command, so a
            # FastAGI path too slow to answer a NOOP within max_silence_s leaves the caller
            # there and goes to the fallback (AgiCommandError below) before any prompt
            await self.agi.command("NOOP", timeout=self.link_s)
            if await self._is_nuisance():
                # 骚扰来电: the warning in both languages (none chosen yet), then the IVR ends
                # the call; the record says refused
                await self.play([e.Prompt(NUISANCE_WARNING, "zh"),
                                 e.Prompt(NUISANCE_WARNING, "en")], barge_in=False)
                await self._record_end("refused", None, None, None, None)
                await self.set_var("HOTLINE_NEXT", "hangup")
                return
            session, actions = engine.start(e.Start(caller=self.caller, call_id=self.call_id,
                                                    now=now, dnis=self.dnis,
                                                    storm=ctx.short_menus()))
            while True:
                event: e.Event | None = None
                for act in actions:
                    if isinstance(act, e.Record):
                        self.path.append(dict(act.step))
                    elif isinstance(act, e.SetChannelVar):
                        await self.set_var(act.name, act.value)
                    elif isinstance(act, e.Play):
                        digit = await self.play(act.prompts, act.barge_in)
                        if act.barge_in:
                            event = e.Played(digit)
                    elif isinstance(act, e.Collect):
                        event = await self.collect(act)
                    elif isinstance(act, e.Listen):
                        event = await self.listen(act)
                    elif isinstance(act, e.Query):
                        event = await self.query(act)
                    elif isinstance(act, e.Transfer):
                        outcome, skill, priority = "transfer", act.skill, act.priority
                        account = act.account
                        closed = await self._closed(act.skill)
                        if closed is None:
                            await self.play(act.prompts, barge_in=False)
                        else:
                            routed = await self._after_hours(closed, session.lang)
                            if routed is None:  # a callback is booked: nothing more today
                                await self._record_end("self_served", session, None, None,
                                                       None)
                                await self.set_var("HOTLINE_NEXT", "hangup")
                                return
                            skill = routed
                        await self._record_end(outcome, session, account, skill, priority)
                        for name, value in (("HOTLINE_SKILL", skill),
                                            ("HOTLINE_PRIORITY", str(act.priority)),
                                            ("HOTLINE_ACCOUNT", act.account or ""),
                                            ("HOTLINE_REASON", act.reason)):
                            await self.set_var(name, value)
                        await self.set_var("HOTLINE_NEXT", "transfer")  # last: commits the exit
                        return
                    elif isinstance(act, e.Hangup):
                        outcome = "self_served"
                        await self.play(act.prompts, barge_in=False)
                        await self._record_end(outcome, session, None, None, None)
                        await self.set_var("HOTLINE_NEXT", "hangup")
                        return
                if event is None:
                    raise e.EngineError(f"no blocking action in {actions!r}")
                session, actions = engine.step(session, event)
        except AgiHangup:
            # at an outage notice or in its window, the caller got what they called for
            await self._record_end(e.Engine.hangup_outcome(session), session, None, None, None)
            raise
        except AgiCommandError as exc:
            # Asterisk misbehaved, or the FastAGI path is too slow for a caller to wait on:
            # leave HOTLINE_NEXT empty and close, so the dialplan's fallback serves
            log.error("call %s: AGI command failed (%s); dialplan fallback takes over",
                      self.call_id, exc)
            await self._rescue()
            await self._record_end("fallback", session, None, None, None)

    async def _is_nuisance(self) -> bool:
        """Whether the caller's number is on the nuisance list. A failed lookup lets the call
        in: a database hiccup must not turn callers away."""
        try:
            async with asyncio.timeout(RECORD_TIMEOUT_S):
                return "nuisance" in await self.ctx.services.caller_lists(self.caller)
        except Exception:
            log.exception("call %s: could not look the caller up in the caller lists",
                          self.call_id)
            return False

    async def _closed(self, skill: str) -> Decision | None:
        """Where a call for `skill` goes when its calendar says it is closed now; None when it
        is open. A failed lookup lets the call through as if open: a database hiccup must not
        send callers away."""
        try:
            async with asyncio.timeout(RECORD_TIMEOUT_S):
                calendars = await self.ctx.services.calendars()
            decision = decide(calendars, skill, self.ctx.clock(), self.ctx.tz)
        except Exception:
            log.exception("call %s: could not read the service hours of %s; taken as open",
                          self.call_id, skill)
            return None
        return None if decision.open else decision

    def _hours_fact(self, d: Decision, lang: str) -> list[e.Prompt]:
        """"The service you chose is closed now; it opens again <when>." (the when left out
        when it never opens within the calendar's search)."""
        out = [e.Prompt(CLOSED, lang)]
        if d.opens_at is not None:
            when = say.say_datetime(d.opens_at, lang, now=self.ctx.clock())
            end = [OPENS_AT_END] if lang == "zh" else []
            out += [e.Prompt(p, lang) for p in (OPENS_AT, *when, *end)]
        return out

    async def _after_hours(self, d: Decision, lang: str) -> str | None:
        """Tell a caller of a closed skill so, then: transfer to the open skill the calendar
        routes to; or offer a callback for when it opens (1 books it and the call ends: None;
        2, nothing keyed, or no number to call: the 7×24 skill). The path records the skill
        asked for and where the call went."""
        step: dict[str, Any] = {"node": "after_hours", "skill": d.skill, "action": d.action}
        hours = self._hours_fact(d, lang)
        if d.action == "route":
            await self.play([*hours, e.Prompt(ROUTED, lang)], barge_in=False)
            self.path.append({**step, "routed_to": d.target, "hops": list(d.hops)})
            return d.target
        if d.opens_at is not None and self.caller:
            answer = await self._offer_callback(hours, lang)
            step["answer"] = answer
            if answer == "book":
                job = await self._book_callback(d, lang)
                if job is not None:
                    await self.play([e.Prompt(CALLBACK_BOOKED, lang)], barge_in=False)
                    self.path.append({**step, "callback_at": d.opens_at.isoformat(),
                                      "job": job})
                    return None
                hours = [e.Prompt(CALLBACK_FAILED, lang)]
            else:
                hours = []
        await self.play([*hours, e.Prompt(ROUTED, lang)], barge_in=False)
        self.path.append({**step, "routed_to": self.ctx.always_open})
        return self.ctx.always_open

    async def _offer_callback(self, hours: list[e.Prompt], lang: str) -> str:
        """The hours and the offer, then one key: `book`, `decline`, or `none` (nothing keyed,
        or CALLBACK_TRIES wrong keys; each wrong key hears why and the offer again)."""
        await self.play(hours, barge_in=False)
        offer = "&".join(self._paths([e.Prompt(CALLBACK_OFFER, lang)]))
        for _ in range(CALLBACK_TRIES):
            key, _status = await self._read(offer, 1, "", CALLBACK_WAIT_S)
            if not key:
                return "none"
            if key in CALLBACK_KEYS:
                return CALLBACK_KEYS[key]
            await self.play([e.Prompt("ivr.invalid", lang)], barge_in=False)
            await self.drain()
        return "none"

    async def _book_callback(self, d: Decision, lang: str) -> int | None:
        assert d.opens_at is not None
        try:
            async with asyncio.timeout(RECORD_TIMEOUT_S):
                return await self.ctx.services.book_callback(
                    call_id=self.call_id, caller=self.caller, skill=d.skill, at=d.opens_at,
                    lang=lang, valid_for=self.ctx.callback_valid, now=self.ctx.clock())
        except Exception:
            log.exception("call %s: could not book the after-hours callback", self.call_id)
            return None

    async def _rescue(self) -> None:
        if self.ctx.rescue is None or not self.channel:
            return
        try:
            async with asyncio.timeout(RECORD_TIMEOUT_S):
                moved = await self.ctx.rescue(self.channel)
            log.warning("call %s: %s to the dialplan's fallback over AMI", self.call_id,
                        "moved" if moved else "not moved (gone, or its exit was set)")
        except Exception:  # the close still reaches Asterisk, late
            log.exception("call %s: could not move the caller to the fallback", self.call_id)

    async def _record_end(self, outcome: str, session: e.Session | None, account: str | None,
                          skill: str | None, priority: int | None) -> None:
        lang = session.lang if session else "zh"
        if account is None and session is not None and session.vars.get("account"):
            account = str(session.vars["account"])
        try:
            async with asyncio.timeout(RECORD_TIMEOUT_S):
                await self.ctx.services.ivr_finished(
                    call_id=self.call_id, outcome=outcome, path=self.path, lang=lang,
                    account=account, skill=skill, priority=priority, now=self.ctx.clock(),
                    outage_ids=e.Engine.heard_outages(session))
        except Exception:
            log.exception("call %s: could not record the IVR outcome", self.call_id)


def make_ivr_handler(ctx: IvrContext) -> Callable[[AgiChannel], Any]:
    async def handle(agi: AgiChannel) -> None:
        await AgiIvrSession(agi, ctx).run()
    return handle
