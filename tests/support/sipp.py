"""SIPp callers for integration tests: a scenario per caller, built from a list of steps and the
caller_* parts in bench/sipp/ (the one home of the SIPp XML)."""

from __future__ import annotations

import asyncio
import itertools
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from bench.sipp import scenario
from tests.support.ports import SLOT
from tests.support.rtp import EVENT_MS, write_call_pcap

_ports = itertools.count(0)


@dataclass(frozen=True)
class Pause:
    """The caller listens (a person waits for the prompt before pressing keys)."""

    ms: int


@dataclass(frozen=True)
class Keys:
    """The caller presses keys: SIP INFO (application/dtmf-relay) or RFC 2833 events in RTP."""

    digits: str
    mode: str = "info"  # info | rfc2833
    gap_ms: int = 250


@dataclass
class Caller:
    number: str  # the From user: the caller's number as the carrier presents it
    steps: list[Pause | Keys] = field(default_factory=list)
    hangup_after_ms: int | None = None  # None: wait for the PBX to hang up
    # the phone's codec: pcmu (G.711, narrowband) or g722 (wideband: offered first, PCMU after;
    # the call's RTP must then be G.722, tests/support/speech_calls.py)
    codec: str = "pcmu"


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str
    errors: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


AUDIO_TAIL_MS = 240_000  # a caller waiting for the PBX to hang up keeps sending audio


def scenario_xml(caller: Caller, pcap: Path | None = None) -> tuple[str, list[tuple[int, str]],
                                                                     int]:
    """The scenario, the RFC 2833 keys to put in the caller's RTP (ms, key), and its length."""
    num = escape(caller.number)
    steps = []
    if pcap is not None:
        # the caller's whole RTP stream: audio throughout, with any RFC 2833 keys inside it
        steps.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n')
    cseq = 2
    t = 0
    rtp_keys: list[tuple[int, str]] = []
    for step in caller.steps:
        if isinstance(step, Pause):
            steps.append(f'  <pause milliseconds="{step.ms}"/>\n')
            t += step.ms
            continue
        for i, d in enumerate(step.digits):
            if i:
                steps.append(f'  <pause milliseconds="{step.gap_ms}"/>\n')
                t += step.gap_ms
            if step.mode == "info":
                steps.append(scenario("caller_info", number=num, cseq=cseq, digit=escape(d)))
                cseq += 1
            else:
                rtp_keys.append((t, d))
                # the key is held for EVENT_MS inside the RTP stream; keep the timeline in step
                steps.append(f'  <pause milliseconds="{EVENT_MS + 40}"/>\n')
                t += EVENT_MS + 40
    if caller.hangup_after_ms is None:
        steps.append(scenario("caller_awaits_bye"))
        total = t + AUDIO_TAIL_MS
    else:
        steps.append(f'  <pause milliseconds="{caller.hangup_after_ms}"/>\n')
        steps.append(scenario("caller_bye", number=num, cseq=cseq))
        total = t + caller.hangup_after_ms + 1000
    xml = scenario("caller", title=f"95598 caller {num}",
                   invite=scenario({"pcmu": "caller_invite", "g722": "caller_invite_g722"}
                                   [caller.codec], number=num),
                   steps="".join(steps))
    return xml, rtp_keys, total


def uac_ports(n: int) -> tuple[int, int, int]:
    """The SIP, media (and media + 2) and control ports of the test callers' call `n` (0-599:
    100 per test slot): away from every Asterisk's RTP range (the test slots', `make up`'s and
    the benchmarks': tests/unit/test_bench_capacity.py checks them), unique among calls under
    way at once."""
    return 40000 + n, 42000 + 4 * n, 41000 + n


def udp_port_free(port: int) -> bool:
    """Whether a UDP port can be bound on every IPv4 address (so also on 127.0.0.1): not held by
    any socket, IPv4 or dual-stack IPv6."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_uac_ports(taken: Callable[[int], bool] = lambda p: not udp_port_free(p),
                   tries: int = 100) -> tuple[int, int, int]:
    """The next call's ports (uac_ports) in this slot's block whose every port is free. The
    block sits in Linux's ephemeral range (32768-60999), where any process's unbound UDP socket
    may land: each Asterisk holds two at random (`ss -uapn`: one IPv4, one dual-stack IPv6), and a
    clean-clone run once lost two calls to a SIPp that could not bind (`no AMI event ... in` 30 s
    later, the SIPp long gone). Such a call skips to the next ports."""
    for _ in range(tries):
        sip, media, ctrl = uac_ports(next(_ports) % 100 + 100 * SLOT)
        if not any(taken(p) for p in (sip, ctrl, *range(media, media + 4))):
            return sip, media, ctrl
    raise RuntimeError(f"no free SIPp caller ports in slot {SLOT}'s block after {tries} tries")


async def place_call(caller: Caller, target: str, service: str = "95598",
                     timeout_s: int = 180, workdir: Path | None = None,
                     audio: Callable[[Path, list[tuple[int, str]], int], None] | None = None
                     ) -> SippResult:
    """Run one SIPp UAC call to completion; ports are unique per call within this process.
    `audio(pcap, rtp_keys, total_ms)` writes the call's RTP (default: silence with the RFC
    2833 keys, write_call_pcap)."""
    sip_port, media_port, ctrl_port = free_uac_ports()
    n = sip_port - 40000
    wd = Path(workdir or tempfile.mkdtemp(prefix="sipp-"))
    wd.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test setup, before the call starts
    scen = wd / f"caller-{caller.number}-{n}.xml"
    pcap = wd / f"caller-{caller.number}-{n}.pcap"
    xml, rtp_keys, total_ms = scenario_xml(caller, pcap)
    (audio or write_call_pcap)(pcap, rtp_keys, total_ms)
    scen.write_text(xml, encoding="iso-8859-1")
    err = wd / f"caller-{caller.number}-{n}.errors.log"
    proc = await asyncio.create_subprocess_exec(
        "sipp", target, "-sf", str(scen), "-s", service, "-m", "1", "-l", "1",
        "-i", "127.0.0.1", "-p", str(sip_port), "-mp", str(media_port), "-cp", str(ctrl_port),
        "-timeout", f"{timeout_s}s", "-timeout_error", "-recv_timeout", f"{timeout_s * 1000}",
        "-trace_err", "-error_file", str(err), "-nostdin",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=wd)
    out, errb = await proc.communicate()
    return SippResult(proc.returncode or 0, out.decode(errors="replace"),
                      errb.decode(errors="replace"),
                      err.read_text(errors="replace") if err.exists() else "")
