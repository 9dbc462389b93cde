"""SIPp callers for integration tests: a scenario per caller, generated from a list of steps."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

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


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str
    errors: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


INVITE = """  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:{number}@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 8 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:{number}@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"""

INFO = """  <send retrans="500">
    <![CDATA[
      INFO sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      Contact: sip:{number}@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={digit}
      Duration=160
    ]]>
  </send>
  <recv response="200"/>
"""

BYE_FROM_PBX = """  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
"""

BYE_FROM_CALLER = """  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} BYE
      Contact: sip:{number}@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
"""


AUDIO_TAIL_MS = 240_000  # a caller waiting for the PBX to hang up keeps sending audio


def scenario_xml(caller: Caller, pcap: Path | None = None) -> tuple[str, list[tuple[int, str]],
                                                                     int]:
    """The scenario, the RFC 2833 keys to put in the caller's RTP (ms, key), and its length."""
    num = escape(caller.number)
    parts = ['<?xml version="1.0" encoding="ISO-8859-1" ?>',
             '<!DOCTYPE scenario SYSTEM "sipp.dtd">',
             f'<scenario name="95598 caller {num}">', INVITE.format(number=num)]
    if pcap is not None:
        # the caller's whole RTP stream: audio throughout, with any RFC 2833 keys inside it
        parts.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
    cseq = 2
    t = 0
    rtp_keys: list[tuple[int, str]] = []
    for step in caller.steps:
        if isinstance(step, Pause):
            parts.append(f'  <pause milliseconds="{step.ms}"/>')
            t += step.ms
            continue
        for i, d in enumerate(step.digits):
            if i:
                parts.append(f'  <pause milliseconds="{step.gap_ms}"/>')
                t += step.gap_ms
            if step.mode == "info":
                parts.append(INFO.format(number=num, cseq=cseq, digit=escape(d)))
                cseq += 1
            else:
                rtp_keys.append((t, d))
                # the key is held for EVENT_MS inside the RTP stream; keep the timeline in step
                parts.append(f'  <pause milliseconds="{EVENT_MS + 40}"/>')
                t += EVENT_MS + 40
    if caller.hangup_after_ms is None:
        parts.append(BYE_FROM_PBX)
        total = t + AUDIO_TAIL_MS
    else:
        parts.append(f'  <pause milliseconds="{caller.hangup_after_ms}"/>')
        parts.append(BYE_FROM_CALLER.format(number=num, cseq=cseq))
        total = t + caller.hangup_after_ms + 1000
    parts.append("</scenario>")
    return "\n".join(parts), rtp_keys, total


async def place_call(caller: Caller, target: str, service: str = "95598",
                     timeout_s: int = 180, workdir: Path | None = None) -> SippResult:
    """Run one SIPp UAC call to completion; ports are unique per call within this process."""
    n = next(_ports) % 100 + 100 * SLOT
    # SIPp's own ports, away from Asterisk's RTP range; unique among calls under way at once
    sip_port, media_port, ctrl_port = 40000 + n, 42000 + 4 * n, 41000 + n
    wd = Path(workdir or tempfile.mkdtemp(prefix="sipp-"))
    wd.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test setup, before the call starts
    scen = wd / f"caller-{caller.number}-{n}.xml"
    pcap = wd / f"caller-{caller.number}-{n}.pcap"
    xml, rtp_keys, total_ms = scenario_xml(caller, pcap)
    write_call_pcap(pcap, rtp_keys, total_ms)
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
