"""SIPp for the bench: one UAC process for all callers, one UAS for all 50 agent phones.

Callers: every call of the run is started within the first second and first pauses for its
own arrival offset (an injection-file field), so one SIPp process produces the seeded Poisson
schedule exactly. After the 200 OK the caller sends silence (RTP) for the whole call, so the
PBX's rtp_timeout never cuts it, and waits for the PBX's BYE: the agent's phone ends the call,
or the bench hangs the caller up when its patience runs out.

Agent phones: ring for `ring_ms`, answer, echo the caller's RTP (-rtp_echo), talk for the next
talk time of the list (SEQUENTIAL injection file: the n-th answered call gets the n-th talk
time on both sides), then hang up (BYE). A CANCEL while ringing is answered properly.
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

CALLER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="bench caller">
  <nop><action>
    <assignstr assign_to="off_s" value="[field0]"/>
    <todouble assign_to="off" variable="off_s"/>
  </action></nop>
  <pause variable="off"/>
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field1]@[local_ip]:[local_port]>;tag=[pid]bench[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:[field1]@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
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
      From: <sip:[field1]@[local_ip]:[local_port]>;tag=[pid]bench[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:[field1]@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""

PHONE_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="bench agent phones">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="their_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="our_to"/>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="their_contact"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]seat[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <recv request="CANCEL" timeout="{ring_ms}" ontimeout="answer"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]seat[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <send>
    <![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]seat[call_number]
      [last_Call-ID:]
      CSeq: [cseq] INVITE
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK" next="done"/>
  <label id="answer"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]seat[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=seat 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <nop><action>
    <assignstr assign_to="talk_s" value="[field0]"/>
    <todouble assign_to="talk" variable="talk_s"/>
  </action></nop>
  <pause variable="talk"/>
  <send retrans="500">
    <![CDATA[
      BYE [$their_contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$our_to];tag=[pid]seat[call_number]
      To: [$their_from]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
  <label id="done"/>
</scenario>
"""

REGISTER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="register bench seats">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[remote_ip]>;tag=[pid]reg[call_number]
      To: <sip:[field0]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[field0]@[local_ip]:{contact_port}>
      Max-Forwards: 70
      Expires: 3600
      Content-Length: 0
    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[remote_ip]>;tag=[pid]reg[call_number]
      To: <sip:[field0]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[field0]@[local_ip]:{contact_port}>
      [field1]
      Max-Forwards: 70
      Expires: 3600
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


class SippError(Exception):
    """A SIPp run failed."""


# ------------------------------------------------------------------------------------ files


def write_silence_pcap(path: Path, seconds: int) -> None:
    """G.711 mu-law silence every 20 ms for `seconds` (SIPp re-addresses the packets)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    payload = b"\xff" * 160
    for i in range(seconds * 50):
        rtp = struct.pack("!BBHII", 0x80, 0, (1000 + i) & 0xFFFF, (8000 + 160 * i) & 0xFFFFFFFF,
                          0x95590000) + payload
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        pkt = b"\x00" * 12 + b"\x08\x00" + ip + udp
        t_us = i * 20_000
        out.append(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(pkt), len(pkt)))
        out.append(pkt)
    path.write_bytes(b"".join(out))


def write_callers(path: Path, arrivals_s: Sequence[float], numbers: Sequence[str],
                  launch_rate: int, lead_s: float) -> None:
    """Call i is launched by SIPp at about i / launch_rate s and pauses until its arrival."""
    rows = ["SEQUENTIAL"]
    for i, (t, number) in enumerate(zip(arrivals_s, numbers, strict=True)):
        pause_ms = max(0, round((lead_s + t - i / launch_rate) * 1000))
        rows.append(f"{pause_ms};{number};")
    path.write_text("\n".join(rows) + "\n", encoding="ascii")


def write_talk_times(path: Path, talk_ms: Sequence[int]) -> None:
    path.write_text("SEQUENTIAL\n" + "".join(f"{t};\n" for t in talk_ms), encoding="ascii")


# -------------------------------------------------------------------------------- processes


def register_seats(secrets: Mapping[str, str], target: str, contact_port: int, workdir: Path,
                   local_port: int) -> None:
    """REGISTER every seat (digest auth) with its Contact on the agent-phone UAS port."""
    scen = workdir / "register.xml"
    scen.write_text(REGISTER_XML.format(contact_port=contact_port), encoding="ascii")
    inf = workdir / "seats.csv"
    rows = ["SEQUENTIAL"] + [f"{name};[authentication username={name} password={pw}]"
                             for name, pw in secrets.items()]
    inf.write_text("\n".join(rows) + "\n", encoding="ascii")
    err = workdir / "register.err"
    try:
        res = subprocess.run(
            ["sipp", target, "-sf", str(scen), "-inf", str(inf), "-m", str(len(secrets)),
             "-l", "10", "-r", "50", "-i", "127.0.0.1", "-p", str(local_port), "-cp",
             str(local_port + 1), "-timeout", "30s", "-timeout_error", "-nostdin",
             "-trace_err", "-error_file", str(err)],
            capture_output=True, text=True, cwd=workdir, check=False, timeout=40)
    except subprocess.TimeoutExpired:
        raise SippError("seat registration did not finish in 40 s") from None
    if res.returncode != 0:
        detail = err.read_text(errors="replace")[-2000:] if err.exists() else res.stderr[-2000:]
        raise SippError(f"seat registration failed ({res.returncode}): {detail}")


def start_phones(workdir: Path, port: int, media_port: int, talk_file: Path,
                 ring_ms: int) -> subprocess.Popen[bytes]:
    scen = workdir / "phones.xml"
    scen.write_text(PHONE_XML.format(ring_ms=ring_ms), encoding="ascii")
    return subprocess.Popen(
        ["sipp", "-sf", str(scen), "-inf", str(talk_file), "-i", "127.0.0.1", "-p", str(port),
         "-mp", str(media_port), "-rtp_echo", "-cp", str(port + 1), "-nostdin",
         "-trace_err", "-error_file", str(workdir / f"phones-{talk_file.stem}.err")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        cwd=workdir)


def start_callers(workdir: Path, target: str, service: str, callers_file: Path, n_calls: int,
                  launch_rate: int, port: int, media_port: int, pcap: Path,
                  max_s: int) -> subprocess.Popen[bytes]:
    scen = workdir / f"callers-{service}.xml"
    scen.write_text(CALLER_XML.replace("{pcap}", str(pcap)), encoding="ascii")
    return subprocess.Popen(
        ["sipp", target, "-sf", str(scen), "-inf", str(callers_file), "-s", service,
         "-m", str(n_calls), "-l", str(n_calls + 10), "-r", str(launch_rate), "-rp", "1000",
         "-i", "127.0.0.1", "-p", str(port), "-mp", str(media_port), "-cp", str(port + 1),
         "-recv_timeout", str(max_s * 1000), "-timeout", f"{max_s}s", "-nostdin",
         "-trace_err", "-error_file", str(workdir / f"callers-{service}.err"),
         "-trace_stat", "-stf", str(workdir / f"callers-{service}.stat.csv")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        cwd=workdir)


def stop(proc: subprocess.Popen[bytes], timeout: float = 5) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
