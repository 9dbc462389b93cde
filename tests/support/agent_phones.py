"""SIPp agent phones: register seats with digest auth, and one UAS that answers for all of them."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

REGISTER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="register seats">
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
      Expires: {expires}
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
      Expires: {expires}
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""

# answers every INVITE after `ring_ms`, then waits for the BYE (from either side's hangup)
UAS_ANSWER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="agent phones that answer">
  <recv request="INVITE" crlf="true"/>
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
  <pause milliseconds="{ring_ms}"/>
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
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
    ]]>
  </send>
  <recv request="ACK" optional="true" rtd="true" crlf="true"/>
  <recv request="BYE"/>
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
</scenario>
"""

# rings and never answers: Asterisk's Dial times out and CANCELs (ring-no-answer)
UAS_NO_ANSWER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="agent phones that never answer">
  <recv request="INVITE" crlf="true"/>
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
  <recv request="CANCEL"/>
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
  <recv request="ACK"/>
</scenario>
"""


def register_seats(secrets: Mapping[str, str], target: str, contact_port: int, workdir: Path,
                   local_port: int, expires: int = 3600) -> None:
    """REGISTER each seat (digest auth) with its Contact on the agent-phone UAS."""
    workdir.mkdir(parents=True, exist_ok=True)
    scen = workdir / f"register-{contact_port}.xml"
    scen.write_text(REGISTER.format(contact_port=contact_port, expires=expires))
    inf = workdir / f"seats-{contact_port}.csv"
    rows = ["SEQUENTIAL"] + [f"{name};[authentication username={name} password={pw}]"
                             for name, pw in secrets.items()]
    inf.write_text("\n".join(rows) + "\n")
    res = subprocess.run(
        ["sipp", target, "-sf", str(scen), "-inf", str(inf), "-m", str(len(secrets)),
         "-l", "10", "-r", "50", "-i", "127.0.0.1", "-p", str(local_port), "-cp",
         str(local_port + 1000), "-timeout", "30s", "-timeout_error", "-nostdin",
         "-trace_err", "-error_file", str(workdir / f"register-{contact_port}.err")],
        capture_output=True, text=True, cwd=workdir, check=False)
    if res.returncode != 0:
        err = (workdir / f"register-{contact_port}.err")
        raise AssertionError(f"seat registration failed ({res.returncode}): "
                             f"{err.read_text()[-2000:] if err.exists() else res.stderr[-2000:]}")


class AgentPhones:
    """One SIPp UAS answering (or not) every INVITE sent to its port, for as long as it runs."""

    def __init__(self, port: int, workdir: Path, *, answer: bool = True,
                 ring_ms: int = 1500) -> None:
        self.port = port
        workdir.mkdir(parents=True, exist_ok=True)
        scen = workdir / f"uas-{port}.xml"
        scen.write_text(UAS_ANSWER.format(ring_ms=ring_ms) if answer else UAS_NO_ANSWER)
        self.proc = subprocess.Popen(
            # SIPp takes media_port and media_port + 2 (video): keep phones 10 apart, and
            # away from Asterisk's RTP range
            ["sipp", "-sf", str(scen), "-i", "127.0.0.1", "-p", str(port), "-mp",
             str(26000 + (port % 1000) * 10), "-cp", str(port + 1000), "-nostdin", "-trace_err",
             "-error_file", str(workdir / f"uas-{port}.err")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
