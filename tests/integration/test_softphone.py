"""A real softphone as a seat (issue 14, section 5): baresip 1.0 from Debian (baresip-core),
headless, registers as seat46 with the seat's own password and auto-answers what the ACD offers.

The agent logs in at seat46 over the web API and goes ready. A SIPp caller, whose media is a
Python RTP end sending 500 Hz (tests/support/rtp_phone.py), goes through the IVR to the ACD;
baresip answers by itself. Audio flows both ways: the caller hears the softphone's 800 Hz
(its aufile source), and the softphone hears the caller's 500 Hz (the wav its sndfile module
writes of what it decoded). From the web API the agent puts the caller on hold (the caller
hears our music, not the agent) and back (the softphone's tone again), then transfers the call
to the billing skill: a second agent on a SIPp seat phone (seat47) gets it, and baresip's call
ends. That agent transfers it back to the first agent by name; baresip answers again and then
hangs up itself (ctrl_tcp "hangup"): the caller's leg ends with cause 16 and the agent goes to
wrap-up. Waits are on AMI events, ctrl_tcp events and RTP arriving, with deadlines.

Why "a headless baresip 1.0 registered here, but its auto-answer could not complete a call":
the client's configuration, not the PBX. On an offer baresip sends 180 Ringing, logs
"answering call ... with 200" and starts its audio source; if the source cannot start it
returns before sending the 200 OK, and the INVITE rings on until the caller's side cancels it.
On a machine without a sound device the default alsa source cannot start ("audio:
start_source failed: No such device"), and neither can aufile with a wav that is not at
ausrc_srate ("aufile: input file ... must have sample-rate 8000 Hz"). The second test
reproduces both from baresip's SIP trace: only 180 and, at the ACD's ring timeout, 487 go back
to the PBX; the ACD takes it as a ring-no-answer. With a source that starts (aufile at 8 kHz
here; ausine should do too, untested), the same phone completes calls.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from cti.db.models import Agent
from tests.integration.callers import (
    call_story,
    hang_up,
    is_event,
    seat_answered,
    wait_agent_state,
    web_login,
)
from tests.integration.conftest import Backend, CtiProcess
from tests.support.agent_phones import AgentPhones, register_seats
from tests.support.ami import AmiRecorder, Event
from tests.support.ports import SLOT, port
from tests.support.rtp_phone import RATE, RtpPhone, tone_level, wav_samples
from tests.support.sipp import Caller, Keys, Pause, scenario_xml
from tests.support.softphone import Softphone

pytestmark = pytest.mark.integration
SOFT_SEAT, SIPP_SEAT = "seat46", "seat47"
# this module's ports, in the slot's block (tests/support/ports.py): baresip's ctrl_tcp and SIP
# (UDP and TCP on it, TLS on the next port: 15033-15035), the SIPp seat phone and its
# registration; RTP: baresip's range, then the caller's RTP end
SOFT_CTRL, SOFT_SIP = port(15033), port(15034)
SIPP_PHONE, SIPP_REGISTER = port(15036), port(15037)
RTP_BASE = port(32000, 20)
SOFT_RTP = (RTP_BASE, RTP_BASE + 9)
CALLER_RTP = RTP_BASE + 12
CALLER_HZ, SOFT_HZ = 500.0, 800.0
AMPLITUDE = 6000
HEARD, NOT_HEARD = 1500.0, 300.0  # a tone at AMPLITUDE measures about 6000


def _tone_wav(path: Path, hz: float, seconds: int, rate: int = 8000) -> Path:
    """A mono 16-bit sine wav (sox) for baresip's aufile source; vol 0.2 is about 6500."""
    subprocess.run(["sox", "-n", "-r", str(rate), "-c", "1", "-b", "16", str(path), "synth",
                    str(seconds), "sine", f"{hz:g}", "vol", "0.2"], check=True)
    return path


def _secrets(cti: CtiProcess) -> dict[str, str]:
    return dict(json.loads((cti.settings.state_dir / "secrets.json").read_text()))


def _registrar(cti: CtiProcess) -> str:
    return f"{cti.settings.pbx.bind_ip}:{cti.settings.pbx.sip_port}"


def _softphone(cti: CtiProcess, home: Path, audio_source: str, sip_trace: bool = False
               ) -> Softphone:
    phone = Softphone(home, seat=SOFT_SEAT, secret=_secrets(cti)[SOFT_SEAT],
                      registrar=_registrar(cti), sip_port=SOFT_SIP, ctrl_port=SOFT_CTRL,
                      rtp_ports=SOFT_RTP, audio_source=audio_source, sip_trace=sip_trace)
    phone.start()
    try:
        phone.wait_registered(20)
    except BaseException:
        phone.stop()
        raise
    return phone


@pytest.fixture(scope="module")
def sipp_seat(cti: CtiProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The second agent's seat: a SIPp phone that answers after a second."""
    wd = tmp_path_factory.mktemp("softphone-sipp-seat")
    answering = AgentPhones(SIPP_PHONE, wd, answer=True, ring_ms=1000)
    try:
        register_seats({SIPP_SEAT: _secrets(cti)[SIPP_SEAT]}, _registrar(cti), SIPP_PHONE, wd,
                       SIPP_REGISTER)
        yield
    finally:
        answering.stop()


@pytest.fixture(scope="module")
def agents(backend: Backend) -> tuple[str, str]:
    """A general agent without billing (at the softphone), and a billing agent (at SIPp): the
    transfer to billing can only go to the second one."""
    with backend.sessions() as s:
        rows = s.execute(select(Agent.agent_id, Agent.skills).where(Agent.role == "agent")
                         .order_by(Agent.agent_id)).all()
    first = next(a for a, sk in rows if "general" in sk and "billing" not in sk)
    second = next(a for a, sk in rows if "billing" in sk and a != first)
    return first, second


def _ready(c: httpx.Client, agent: str) -> None:
    r = c.post(f"/api/agents/{agent}/state", json={"state": "ready"})
    assert r.status_code == 200 and r.json()["state"] == "ready", r.text


def _answered(ami: AmiRecorder, number: str, seat: str, since: int,
              cti: CtiProcess) -> Event:
    try:
        ami.wait_for(lambda e: is_event("UserEvent", number, UserEvent="HotlineOffer")(e)
                     and e.get("Seat") == seat, 60, f"offer to {seat}", since=since)
        return ami.wait_for(seat_answered(number, seat), 30, f"{seat} answered", since=since)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{call_story(ami, number, since, cti.settings)}"
                             ) from None


@dataclass
class CallerPhone:
    """A SIPp caller (keys over SIP INFO) whose media is an RtpPhone sending CALLER_HZ; it
    waits for the PBX's BYE."""

    rtp: RtpPhone
    proc: subprocess.Popen[bytes]

    @classmethod
    def call(cls, number: str, cti: CtiProcess, wd: Path) -> CallerPhone:
        rtp = RtpPhone(CALLER_RTP, CALLER_HZ, AMPLITUDE)
        steps: list[Pause | Keys] = [Pause(1500), Keys("1"), Pause(1500), Keys("0")]
        xml, _keys, _ms = scenario_xml(Caller(number, steps), None)
        scen = wd / f"softphone-caller-{number}.xml"
        scen.write_text(xml.replace("m=audio [media_port]", f"m=audio {CALLER_RTP}"),
                        encoding="iso-8859-1")
        # the slot's caller port 98 (test_supervision.py's CallerPhone takes 99)
        n = 100 * SLOT + 98
        proc = subprocess.Popen(
            ["sipp", _registrar(cti), "-sf", str(scen), "-s", "95598", "-m", "1", "-l", "1",
             "-i", "127.0.0.1", "-p", str(31000 + n), "-mp", str(35000 + 4 * n),
             "-cp", str(34000 + n), "-timeout", "180s", "-timeout_error", "-nostdin",
             "-trace_err", "-error_file", str(wd / f"softphone-caller-{number}.err")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=wd)
        return cls(rtp, proc)

    def finish(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.rtp.close()


def _caller_hears_softphone(caller: RtpPhone, since: float) -> None:
    """A second of the softphone's tone reaches the caller after `since`."""
    t0 = caller.first_of(SOFT_HZ, since, timeout=20)
    t1 = caller.wait_heard(t0, 1.0, 20)
    level = tone_level(caller.heard(t0, t1), SOFT_HZ)
    assert level > HEARD, (level, caller.describe())


def _best_second(samples: list[int], hz: float, rate: int) -> float:
    """The strongest 1-second level of hz in samples."""
    return max((tone_level(samples[i:i + rate], hz, rate)
                for i in range(0, max(1, len(samples) - rate + 1), rate // 2)), default=0.0)


def test_baresip_answers_talks_holds_transfers_and_hangs_up(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, web: str, sipp_seat: None,
        agents: tuple[str, str], tmp_path: Path) -> None:
    first, second = agents
    tone = _tone_wav(tmp_path / "tone.wav", SOFT_HZ, 300)
    phone = _softphone(cti, tmp_path / "baresip", f"aufile,{tone}")
    a = web_login(web, first, SOFT_SEAT)
    b = web_login(web, second, SIPP_SEAT)
    caller: CallerPhone | None = None
    try:
        _ready(a, first)
        number = f"{backend.prefix}8400001"
        mark, soft_mark = ami.mark(), phone.mark()
        caller = CallerPhone.call(number, cti, tmp_path)
        answered = _answered(ami, number, SOFT_SEAT, mark, cti)
        caller_chan = answered["Channel"]
        # auto-answer: no CALL_INCOMING, the call is established by itself
        established = phone.wait_event("CALL_ESTABLISHED", 15, since=soft_mark)
        assert (established["accountaor"], established["direction"]) == (
            f"sip:{SOFT_SEAT}@{_registrar(cti)}", "incoming"), established
        assert number in established["peeruri"], established
        live = a.get("/api/calls", params={"live": "true"}).json()
        assert [(c["live_state"], c["agent_id"]) for c in live] == [("connected", first)]
        cid = live[0]["call_id"]
        assert wait_agent_state(a, first, "on_call")["call_id"] == cid

        # audio both ways: the caller hears the softphone's aufile tone (the softphone's side
        # is checked from its own recording once its call has ended, below)
        _caller_hears_softphone(caller.rtp, float(answered["_received"]))

        # hold: music to the caller, and no more of the agent's tone
        m = ami.mark()
        r = a.post(f"/api/calls/{cid}/hold", json={"on": True})
        assert r.status_code == 200 and r.json()["held"] is True, r.text
        moh = ami.wait_for(lambda e: e.get("Event") == "MusicOnHoldStart"
                           and e.get("Channel") == caller_chan, 10, "music to the caller",
                           since=m)
        t0 = float(moh["_received"]) + 0.3  # the bridge's last frames have passed by then
        t1 = caller.rtp.wait_heard(t0, 1.5, 20)
        held = caller.rtp.heard(t0, t1)
        assert tone_level(held, SOFT_HZ) < NOT_HEARD, tone_level(held, SOFT_HZ)
        assert max(abs(x) for x in held) > 1000, "the caller heard silence on hold, not music"
        # resume: bridged again, and the softphone's tone is back
        m = ami.mark()
        r = a.post(f"/api/calls/{cid}/hold", json={"on": False})
        assert r.status_code == 200 and r.json()["held"] is False, r.text
        back = ami.wait_for(lambda e: e.get("Event") == "BridgeEnter"
                            and e.get("Channel") == caller_chan, 10, "caller bridged again",
                            since=m)
        _caller_hears_softphone(caller.rtp, float(back["_received"]))
        assert wait_agent_state(a, first, "on_call")["call_id"] == cid

        # transfer to a skill: the billing agent's SIPp phone answers; baresip's call ends
        _ready(b, second)
        m, soft_mark = ami.mark(), phone.mark()
        r = a.post(f"/api/calls/{cid}/transfer", json={"skill": "billing"})
        assert r.status_code == 200, r.text
        # the billing agent's seat is offered it (a HotlineQueued is not always seen: with an
        # agent ready, the ACD's ring may Redirect the caller before the wait's first step ran)
        _answered(ami, number, SIPP_SEAT, m, cti)
        assert b.get(f"/api/calls/{cid}").json()["skill"] == "billing"
        phone.wait_event("CALL_CLOSED", 15, since=soft_mark)
        assert wait_agent_state(b, second, "on_call")["call_id"] == cid
        wait_agent_state(a, first, "ready", timeout=cti.settings.acd.wrap_up_s + 15)

        # the softphone heard the caller: its sndfile dump of the decoded audio (closed with
        # the call) holds the caller's tone, and what it sent holds its own
        heard, sent = phone.dump("dec"), phone.dump("enc")
        assert len(heard) == len(sent) == 1, (heard, sent, phone.tail())
        rate, samples = wav_samples(heard[0])
        assert rate == RATE and len(samples) > 2 * rate, (rate, len(samples))
        assert _best_second(samples, CALLER_HZ, rate) > HEARD, phone.tail()
        rate, samples = wav_samples(sent[0])
        assert _best_second(samples, SOFT_HZ, rate) > HEARD

        # back to the softphone's agent by name: baresip answers again, then hangs up itself
        m, soft_mark = ami.mark(), phone.mark()
        r = b.post(f"/api/calls/{cid}/transfer", json={"agent_id": first})
        assert r.status_code == 200, r.text
        again = _answered(ami, number, SOFT_SEAT, m, cti)
        phone.wait_event("CALL_ESTABLISHED", 15, since=soft_mark)
        _caller_hears_softphone(caller.rtp, float(again["_received"]))
        assert wait_agent_state(a, first, "on_call")["call_id"] == cid
        m = ami.mark()
        assert phone.command("hangup")["ok"] is True
        gone = ami.wait_for(lambda e: e.get("Event") == "Hangup"
                            and e.get("Channel") == caller_chan, 15, "caller hung up", since=m)
        assert gone.get("Cause") == "16", gone
        phone.wait_event("CALL_CLOSED", 10, since=soft_mark)
        assert caller.finish(30) == 0
        wait_agent_state(a, first, "wrap_up")
        for c, agent in ((a, first), (b, second)):
            assert c.post(f"/api/agents/{agent}/logout").status_code == 200
        assert "start_source failed" not in phone.output()
    finally:
        phone.stop()
        if caller is not None:
            caller.close()
        a.close()
        b.close()


@pytest.mark.parametrize("source", ["aufile-16kHz", "alsa-no-device"])
def test_a_softphone_whose_audio_source_fails_never_answers(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, web: str, agents: tuple[str, str],
        source: str, tmp_path: Path) -> None:
    """The earlier report's failure, reproduced with the same baresip and two sources that
    cannot start: a 16 kHz wav (aufile wants ausrc_srate, 8 kHz) and the default alsa source on
    this machine, which has no sound device. baresip auto-answers in its own log ("answering
    call ... with 200"), fails to start its audio, and never sends the 200 OK: the seat rings
    (180) until the ACD's ring timeout cancels it (487), a ring-no-answer. The PBX offered the
    call as it should; the client could not start its audio."""
    first = agents[0]
    audio = (f"aufile,{_tone_wav(tmp_path / 'tone16k.wav', SOFT_HZ, 30, rate=16000)}"
             if source == "aufile-16kHz" else "alsa,default")
    phone = _softphone(cti, tmp_path / "baresip", audio, sip_trace=True)
    a = web_login(web, first, SOFT_SEAT)
    caller: CallerPhone | None = None
    try:
        _ready(a, first)
        serial = {"aufile-16kHz": 11, "alsa-no-device": 12}[source]
        number = f"{backend.prefix}840{serial:04d}"
        mark, soft_mark = ami.mark(), phone.mark()
        caller = CallerPhone.call(number, cti, tmp_path)
        ami.wait_for(lambda e: is_event("UserEvent", number, UserEvent="HotlineOffer")(e)
                     and e.get("Seat") == SOFT_SEAT, 60, "offer to the softphone", since=mark)
        rona = ami.wait_for(lambda e: is_event("UserEvent", number, UserEvent="HotlineRona")(e)
                            and e.get("Seat") == SOFT_SEAT, 30, "ring-no-answer", since=mark)
        assert not [e for e in ami.events()[mark:] if seat_answered(number, SOFT_SEAT)(e)]
        ami.wait_for(lambda e: is_event("UserEvent", number, UserEvent="HotlineQueued")(e),
                     10, "the caller waits again", since=ami.events().index(rona))
        phone.wait_event("CALL_CLOSED", 10, since=soft_mark)
        assert wait_agent_state(a, first, "not_ready")["reason"] == "rona"
        out = phone.output()
        assert "answering call on line 1" in out and "start_source failed" in out, out
        if source == "aufile-16kHz":
            assert "must have sample-rate 8000 Hz" in out, out
        to_invite = [line for line, method in phone.sip_sent() if method == "INVITE"]
        assert to_invite == ["SIP/2.0 180 Ringing", "SIP/2.0 487 Request Terminated"], (
            to_invite, phone.tail(80))
        # the caller is still waiting in the queue: hang it up, so nothing rings later
        m = ami.mark()
        queued = next(e for e in reversed(ami.events()) if is_event(
            "UserEvent", number, UserEvent="HotlineQueued")(e))
        hang_up(ami, queued)
        ami.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("Channel")
                     == queued["Channel"], 10, "the caller hung up", since=m)
        assert caller.finish(30) == 0
        assert a.post(f"/api/agents/{first}/logout").status_code == 200
    finally:
        phone.stop()
        if caller is not None:
            caller.close()
        a.close()
