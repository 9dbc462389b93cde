"""Speech on the live call (issue 13) with real SIPp callers through the real Asterisk: the
FastAGI session connects a menu to the CTI's listener, which plays the prompt, hears the caller
with the real Korean vosk model and ends on a key, a result or silence. Callers come on two
kinds of leg: G.711 mu-law phones (narrowband: the session runs the AudioSocket() application,
8 kHz) and G.722 phones (wideband: the session Dials the AudioSocket channel driver with
c(slin16), so the listener hears 16 kHz).

The Korean test flow (tests/support/flows/speech_ko.yaml) is put in place of main.yaml for this
module; [speech] has the Korean model in the suite's settings (conftest), with accept_at 0.95 and
confirm_below 0.3, so that a middling result is asked back: this model's own word confidences
are mostly 1.0, so the confirm callers say two choices' words (기사 정전 기사), which the vote
puts at two thirds at most. The callers' RTP carries
espeak-ng's Korean (tests/contract/test_speech_vosk_ko.py synthesises it) as their phone's
codec would (tests/support/speech_calls.py).

Each caller's result is read from the call record's IVR path (the intent: key, confidence,
decision), once AMI has seen the caller's channel hang up; nothing waits on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cti.db.models import Call
from hotline import stack
from tests.contract.test_speech_vosk_ko import UTTERANCES, VOICES, speak
from tests.integration.callers import call_story
from tests.integration.conftest import Backend, CtiProcess
from tests.support.ami import AmiRecorder, AmiTimeout
from tests.support.settings import REPO
from tests.support.sipp import Caller, Keys, Pause, SippResult
from tests.support.speech_calls import RATES, place_speaking_call

pytestmark = pytest.mark.integration

FLOW = REPO / "tests" / "support" / "flows" / "speech_ko.yaml"
SAY_AT_MS = 3000      # the caller speaks 3 s after the answer: inside the 18 s speech prompt
# callers at once (the functional ones, the accuracy run): one short of the pool's 8 decoders,
# so a call just ended that still holds its decoder for a moment never sends the next to keys
AT_ONCE = 7
LEGS = ("g711", "g722")   # the phone's codec: narrowband (AudioSocket()), wideband (Dial)
CODEC = {"g711": "pcmu", "g722": "g722"}
# the accuracy run's wideband voices (espeak-ng words a minute, pitch 0-99): 10 voices x the
# 6 utterances = 60 calls; the narrowband run keeps the contract test's 5 voices (30 calls)
WIDE_VOICES = [(110, 25), (130, 35), (150, 45), (170, 55), (190, 65), (210, 75), (230, 85),
               (120, 70), (200, 30), (250, 50)]
# intent accuracy asked of 16 kHz over real calls (the bar), and the most wrong choices
# taken without asking; see test_accuracy_over_real_calls for the figures measured
WIDE_BAR = 0.85
WRONG_TAKEN_AT_MOST = 3  # 5 % of the 60; the runs took 1 (seven runs) and 3 (one)


def said(text: str, speed: int = 180, pitch: int = 50, leg: str = "g711") -> bytes:
    """espeak-ng's Korean as 16-bit PCM at the rate of the leg's codec."""
    return speak(text, speed, pitch, RATES[CODEC[leg]])


def _wait_status(cti: CtiProcess, pred: Callable[[dict[str, Any]], bool], what: str,
                 timeout: float = 60) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def matched() -> bool:
        nonlocal last
        last = cti.status()
        return bool(last) and pred(last)

    try:
        stack.wait_until(matched, timeout, what)
    except stack.StackError:
        raise AssertionError(f"{what}: never; last status {last}") from None
    return last


@pytest.fixture(scope="module")
def korean_flow(cti: CtiProcess) -> Iterator[None]:
    """The Korean test flow as the entry flow, and its model loaded, for this module only."""
    path = cti.settings.ivr.flows_dir / "main.yaml"
    original = path.read_text(encoding="utf-8")
    version = _wait_status(cti, lambda s: (s.get("flows") or {}).get("last_reload_ok"),
                           "the flows loaded")["flows"]["version"]
    shutil.copyfile(FLOW, path)
    try:
        _wait_status(cti, lambda s: s["flows"]["version"] == version + 1
                     and s["flows"]["last_reload_ok"], "the Korean flow in service")
        # the listener loads the model once a flow in service hears Korean (seconds)
        _wait_status(cti, lambda s: "ko" in ((s.get("speech") or {}).get("models_loaded")
                                             or []), "the Korean model loaded", timeout=120)
        yield
    finally:
        path.write_text(original, encoding="utf-8")
        _wait_status(cti, lambda s: s["flows"]["version"] == version + 2
                     and s["flows"]["last_reload_ok"], "main.yaml back in service")


@dataclass
class Speaker:
    caller: Caller
    speech: list[tuple[int, bytes]]
    expect: str | None = None   # the option key the utterance stands for


@dataclass
class Heard:
    sipp: SippResult
    record: Call
    story: str
    dialed_audiosocket: bool   # the session Dialed the AudioSocket channel driver (wideband)

    @property
    def path(self) -> list[dict[str, Any]]:
        return list(self.record.ivr_path or [])

    @property
    def speech(self) -> dict[str, Any] | None:
        """The menu's intent record, if the menu listened and voted."""
        return next((p for p in self.path if p.get("node") == "menu" and "speech" in p
                     and p["speech"] != "unavailable"), None)

    def reached(self, node: str) -> bool:
        return any(p.get("node") == node and p.get("hangup") for p in self.path)


def _record(backend: Backend, number: str) -> Call | None:
    with backend.sessions() as s:
        rec = s.execute(select(Call).where(Call.caller_number == number)
                        .where(Call.outcome.is_not(None))).scalar_one_or_none()
        if rec is not None:
            s.expunge(rec)
        return rec


def _written(backend: Backend, number: str, timeout: float = 20) -> Call | None:
    """The call record once the IVR wrote its outcome (after the hangup, for a caller who
    hung up), within a deadline."""
    got: list[Call] = []

    def written() -> bool:
        rec = _record(backend, number)
        got[:] = [rec] if rec is not None else []
        return bool(got)

    try:
        stack.wait_until(written, timeout, f"the call record of {number}")
    except stack.StackError:
        return None
    return got[0]


def _dialed_audiosocket(ami: AmiRecorder, number: str, since: int) -> bool:
    return any(e.get("Event") == "DialBegin" and e.get("CallerIDNum") == number
               and str(e.get("DestChannel", "")).startswith("AudioSocket/")
               for e in ami.events()[since:])


def place(speakers: list[Speaker], cti: CtiProcess, ami: AmiRecorder, backend: Backend,
          workdir: Path, at_once: int | None = None) -> dict[str, Heard]:
    """Place the calls, `at_once` at a time (a new one as soon as one ends; None: all at
    once); each result once AMI saw its channel hang up and the IVR's call record (its path)
    is written."""
    target = f"{cti.settings.pbx.bind_ip}:{cti.settings.pbx.sip_port}"
    mark = ami.mark()

    async def all_calls() -> list[SippResult]:
        gate = asyncio.Semaphore(at_once or len(speakers))

        async def one(sp: Speaker) -> SippResult:
            async with gate:
                return await place_speaking_call(sp.caller, sp.speech, target, workdir,
                                                 timeout_s=150)

        return await asyncio.gather(*(one(sp) for sp in speakers))

    results = asyncio.run(all_calls())
    out = {}
    for sp, res in zip(speakers, results, strict=True):
        number = sp.caller.number
        try:
            ami.wait_for(lambda e, n=number: e.get("Event") == "Hangup"
                         and e.get("CallerIDNum") == n, 30, f"Hangup of {number}", since=mark)
        except AmiTimeout as exc:  # what the SIPp caller itself said (a port it could not bind)
            raise AmiTimeout(f"{exc}; SIPp exit {res.returncode}: {res.stderr[-800:]}"
                             f"{res.errors[-800:]}") from None
        rec = _written(backend, number)
        if rec is None:
            raise AssertionError(call_story(ami, number, mark, cti.settings))
        out[number] = Heard(res, rec, call_story(ami, number, mark, cti.settings),
                            _dialed_audiosocket(ami, number, mark))
    return out


@pytest.fixture(scope="module")
def calls(korean_flow: None, backend: Backend, cti: CtiProcess, ami: AmiRecorder,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Heard]:
    """The functional callers, as many at once as the accuracy run (fewer than the pool's
    decoders)."""
    serial = iter(range(1, 100))

    def num() -> str:
        return f"{backend.prefix}82{next(serial):05d}"

    # a caller in two minds, 기사 정전 기사 ("technician, outage, technician"): two votes for 3
    # and one for 2 put the intent's confidence at two thirds at most, whatever vosk's own
    # confidence for each word, so it is asked back. (기사 alone was meant to be asked back on
    # the model's middling confidence, but a CI run heard all four voices at 1.0.) On G.722
    # (16 kHz): through G.711 the model missed a word of three too often. Offline at 16 kHz
    # these voices were all asked back on 3 at 0.67.
    confirm_voices = [("기사 정전 기사", 150, 40), ("기사 정전 기사", 170, 60),
                      ("기사 정전 기사", 100, 20), ("기사 정전 기사", 130, 50)]
    speakers = {
        # each on both kinds of leg: G.711 (AudioSocket(), 8 kHz), G.722 (Dial, 16 kHz)
        **{f"{name}_{leg}": sp for leg in LEGS for name, sp in {
            # 상담원 ("agent") mid-prompt: accepted at 1.0 in every alignment tried
            "spoken": Speaker(Caller(num(), [], codec=CODEC[leg]),
                              [(SAY_AT_MS, said("상담원", leg=leg))], "0"),
            # 2 (SIP INFO) 4 s into the 18 s speech prompt
            "key": Speaker(Caller(num(), [Pause(4000), Keys("2")], codec=CODEC[leg]), []),
            # nothing at all: the key menu, its retry, then the flow's on_fail
            "silent": Speaker(Caller(num(), [], codec=CODEC[leg]), []),
        }.items()},
        **{f"confirm_{i}": Speaker(Caller(num(), [Pause(8000), Keys("1")],
                                          codec=CODEC["g722"]),
                                   [(SAY_AT_MS, said(text, speed, pitch, leg="g722"))], "3")
           for i, (text, speed, pitch) in enumerate(confirm_voices)},
    }
    workdir = tmp_path_factory.mktemp(f"speech-{backend.name}")
    heard = place(list(speakers.values()), cti, ami, backend, workdir, at_once=AT_ONCE)
    return {name: heard[sp.caller.number] for name, sp in speakers.items()}


@pytest.mark.parametrize("leg", LEGS)
def test_each_leg_is_heard_at_its_own_rate(calls: dict[str, Heard], leg: str) -> None:
    """A G.722 caller's menu is Dialed to the AudioSocket channel driver (slin16), a G.711
    caller's runs the AudioSocket() application (8 kHz)."""
    for name in ("spoken", "key", "silent"):
        h = calls[f"{name}_{leg}"]
        assert h.dialed_audiosocket == (leg == "g722"), (name, h.story)


@pytest.mark.parametrize("leg", LEGS)
def test_a_spoken_choice_routes_the_call(calls: dict[str, Heard], leg: str) -> None:
    h = calls[f"spoken_{leg}"]
    assert h.sipp.ok, (h.sipp.errors, h.story)
    assert h.speech is not None and h.speech["speech"] == "0", (h.path, h.story)
    assert h.speech["decision"] == "accept" and h.speech["confidence"] >= 0.95
    assert h.reached("chose_agent"), h.path
    assert h.record.outcome == "self_served"
    # the path holds the intent, never the words heard
    assert not any("상담원" in str(p) for p in h.path)


@pytest.mark.parametrize("leg", LEGS)
def test_a_key_still_works_mid_prompt(calls: dict[str, Heard], leg: str) -> None:
    """On a wideband leg the key crosses Dial's bridge to the AudioSocket channel, which sends
    it to the listener as a DTMF frame (kind 0x03), as the application does."""
    h = calls[f"key_{leg}"]
    assert h.sipp.ok, (h.sipp.errors, h.story)
    assert {"node": "menu", "input": "2"} in h.path, h.path
    assert h.reached("chose_outage"), h.path
    assert h.speech is None  # the key ended the listening: nothing was voted


@pytest.mark.parametrize("leg", LEGS)
def test_silence_falls_back_to_the_key_menu(calls: dict[str, Heard], leg: str) -> None:
    h = calls[f"silent_{leg}"]
    assert h.sipp.ok, (h.sipp.errors, h.story)
    assert h.speech == {"node": "menu", "speech": None, "confidence": 0.0,
                        "decision": "none"}, h.path
    # then the key menu exactly as without speech: no input twice (retries: 1), on_fail
    timeouts = [p for p in h.path if p.get("node") == "menu" and p.get("timeout")]
    assert len(timeouts) == 2, (h.path, h.record.outcome, h.story)
    assert h.path[-1] == {"node": "gave_up", "hangup": True}, h.path


def test_a_low_confidence_result_asks_to_confirm(calls: dict[str, Heard]) -> None:
    """기사 정전 기사 ("technician, outage, technician": choice 3 twice, choice 2 once) in four
    voices on G.722, then 1: the vote's confidence is at most two thirds, so each one heard in
    full is asked back on 3, and answered 1 goes to the repair choice. A word the model misses
    makes a tie (the key menu) or one clear choice, so at least one of the four must be asked
    back, not every one."""
    confirm = {n: h for n, h in calls.items() if n.startswith("confirm_")}
    asked = {n: h for n, h in confirm.items()
             if h.speech is not None and h.speech["decision"] == "confirm"}
    print(f"\nconfirm callers: {len(asked)} of {len(confirm)} asked back; "
          + "; ".join(f"{n}: {h.speech}" for n, h in confirm.items()))
    assert asked, {n: (h.speech, h.story) for n, h in confirm.items()}
    for name, h in asked.items():
        assert h.speech is not None and h.speech["speech"] == "3", (name, h.path)
        assert 0.3 <= h.speech["confidence"] < 0.95
        assert {"node": "menu", "confirm": "3", "yes": True} in h.path, (name, h.path,
                                                                         h.record.outcome,
                                                                         h.story)
        assert h.reached("chose_repair"), (name, h.path)
    # and nothing heard was taken as another choice without asking
    for name, h in confirm.items():
        if h.speech is not None and h.speech["decision"] == "accept":
            assert h.speech["speech"] == "3", (name, h.path)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    leg: str
    rows: list[tuple[str, str, dict[str, Any] | None]]   # (utterance, key meant, intent)
    cti_cpu_s: float
    asterisk_cpu_s: float
    wall_s: float

    @property
    def right(self) -> list[tuple[str, str, dict[str, Any] | None]]:
        return [r for r in self.rows if r[2] is not None and r[2]["speech"] == r[1]]

    @property
    def wrong_taken(self) -> list[tuple[str, str, dict[str, Any] | None]]:
        return [r for r in self.rows if r[2] is not None and r[2]["speech"] not in (None, r[1])
                and r[2]["decision"] == "accept"]

    @property
    def accuracy(self) -> float:
        return len(self.right) / len(self.rows)

    def report(self, backend: str) -> str:
        accepted = sum(1 for r in self.right if r[2] is not None and r[2]["decision"] == "accept")
        caller_s = self.wall_s * AT_ONCE
        missed = [(text, intent and intent["speech"]) for text, key, intent in self.rows
                  if (text, key, intent) not in self.right]
        return (f"{self.leg} ({backend}): {len(self.right)} of {len(self.rows)} heard right "
                f"({self.accuracy:.0%}), {accepted} accepted, {len(self.wrong_taken)} wrong "
                f"accepted; missed (said, heard): {missed}; "
                f"{self.wall_s:.0f} s with {AT_ONCE} callers at a time: CTI "
                f"{100 * self.cti_cpu_s / caller_s:.1f} %, Asterisk "
                f"{100 * self.asterisk_cpu_s / caller_s:.1f} % of a core per caller")


def _run(leg: str, voices: list[tuple[int, int]], first: int, cti: CtiProcess,
         ami: AmiRecorder, backend: Backend, workdir: Path) -> Run:
    serial = iter(range(first, first + 100))
    speakers = [Speaker(Caller(f"{backend.prefix}82{next(serial):05d}", [Pause(12000)],
                               hangup_after_ms=1, codec=CODEC[leg]),
                        [(SAY_AT_MS, said(text, speed, pitch, leg))], key)
                for text, key in UTTERANCES for speed, pitch in voices]
    assert cti.pid is not None
    ast_pid = stack.pid_alive(stack.paths(cti.settings).asterisk_pid)
    assert ast_pid is not None
    c0, a0, t0 = _cpu_s(cti.pid), _cpu_s(ast_pid), time.monotonic()
    heard = place(speakers, cti, ami, backend, workdir, at_once=AT_ONCE)
    run = Run(leg, [], _cpu_s(cti.pid) - c0, _cpu_s(ast_pid) - a0, time.monotonic() - t0)
    for sp in speakers:
        h = heard[sp.caller.number]
        assert h.dialed_audiosocket == (leg == "g722"), h.story
        assert sp.expect is not None
        text = next(t for t, k in UTTERANCES if k == sp.expect)
        run.rows.append((text, sp.expect, h.speech))
    return run


def test_accuracy_over_real_calls(korean_flow: None, backend: Backend, cti: CtiProcess,
                                  ami: AmiRecorder, tmp_path: Path) -> None:
    """The issue's bar over real calls: 6 utterances in 10 espeak-ng voices (60 calls) from
    G.722 phones, heard at 16 kHz through Dial(AudioSocket/...c(slin16)), at least 85 % of
    intents right; each utterance its own call, 7 listening at a time. Then, for comparison,
    the contract test's 30 (5 voices) from G.711 phones through AudioSocket() at 8 kHz:
    reported, with the bar 8 kHz can keep (70-77 % in earlier runs).

    Measured in seven runs (espeak-ng's audio is the same every run; what varies is where the
    audio falls on vosk's frames, as the call's timing moves): 16 kHz 58, 57, 56, 57, 57, 58, 58
    of 60 (93-97 %), each run with 1 wrong choice taken (요금 heard as 기사 at 1.0 in one voice,
    as offline after a G.722 round trip); 8 kHz 22, 20, 21, 20, 20, 20, 24 of 30 (67-80 %), none
    taken wrong. An eighth run (a clean clone's make test, 2026-12-07, PostgreSQL): 16 kHz 55 of
    60 with 3 taken wrong, all the same confusion (요금 heard as 기사 at 1.0, which no
    confidence threshold can catch), in three voices; 8 kHz 21 of 30, none wrong. The 85 % bar
    (51 of 60) leaves 4 utterances below the worst run for that variation, and at most 3 wrong
    choices (5 % of the 60) may be taken without asking at either rate: a guard against a
    change that takes wrong choices wholesale (a confidence threshold lost), not a claim
    sharper than the runs show."""
    wide = _run("g722", WIDE_VOICES, 100, cti, ami, backend, tmp_path)
    narrow = _run("g711", VOICES, 200, cti, ami, backend, tmp_path)
    print(f"\nspeech over real calls: {wide.report(backend.name)}\n"
          f"speech over real calls: {narrow.report(backend.name)}")
    assert len(wide.rows) >= 50
    assert wide.accuracy >= WIDE_BAR, wide.rows
    assert narrow.accuracy >= 0.5, narrow.rows
    # vosk's run-to-run variation: 0 to 1 of 30 at 8 kHz over four runs of the earlier test
    assert len(wide.wrong_taken) <= WRONG_TAKEN_AT_MOST, wide.wrong_taken
    assert len(narrow.wrong_taken) <= WRONG_TAKEN_AT_MOST, narrow.wrong_taken
