"""Recording over real Asterisk: every answered agent call is recorded by Asterisk itself,
indexed by the CTI, survives a CTI kill -9, and the reconciler catches planted faults.

SIPp callers reach SIPp agent phones that send a tone (so the recording has real audio).
Talk time is read from AMI (the seat's answer to the agent leg's hangup); the audio is checked
with sox, not by the file size.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import wave
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from cti.db.models import Agent
from cti.db.models_recordings import AuditLog, Recording
from hotline import stack
from recorder.audio import riff_complete
from tests.integration.callers import CallInProgress, is_event, seat_answered, ts
from tests.integration.conftest import Backend, CtiProcess
from tests.support.agent_phones import AgentPhones, register_seats
from tests.support.ami import AmiRecorder, Event, send_action
from tests.support.mqtt import MqttWatcher, Msg
from tests.support.ports import port
from tests.support.sipp import Caller, Keys, Pause
from tests.support.tone_phone import TonePhones

pytestmark = pytest.mark.integration
TONE_PORT, REGISTER_PORT = port(15070), port(15074)
SUP_PORT, SUP_REGISTER_PORT = port(15076), port(15078)
SEATS = ("seat05", "seat06")
PASSWORD = "95598"
HOTLINE = Path(sys.executable).parent / "hotline"


@pytest.fixture(scope="module")
def tone_phones(cti: CtiProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    wd = tmp_path_factory.mktemp("tone-phones")
    secrets = json.loads((cti.settings.state_dir / "secrets.json").read_text())
    phones = TonePhones(TONE_PORT, wd)
    try:
        register_seats({s: secrets[s] for s in SEATS},
                       f"{cti.settings.pbx.bind_ip}:{cti.settings.pbx.sip_port}", TONE_PORT, wd,
                       REGISTER_PORT)
        yield
    finally:
        phones.stop()


@pytest.fixture(scope="module")
def agents(backend: Backend) -> list[str]:
    with backend.sessions() as s:
        rows = s.execute(select(Agent.agent_id, Agent.skills).where(Agent.role == "agent")
                         .order_by(Agent.agent_id.desc())).all()
    return [a for a, skills in rows if "general" in skills][:2]


def _state(mqtt: MqttWatcher, agent: str, state: str, since: int, timeout: float = 30) -> Msg:
    return mqtt.wait_for(lambda m: m.topic == f"hotline/agents/{agent}/state"
                         and m.payload.get("state") == state, timeout, f"{agent} {state}",
                         since=since)


def _login_ready(mqtt: MqttWatcher, agent: str, seat: str) -> None:
    """No password on the bus: the harness's broker user writes the agent's command topic."""
    m0 = mqtt.mark()
    r = mqtt.command("agents", agent, {"action": "login", "seat": seat})
    assert r["ok"], r
    assert mqtt.command("agents", agent, {"action": "ready"})["ok"]
    _state(mqtt, agent, "ready", m0)


def _logout(mqtt: MqttWatcher, agent: str, seat: str) -> None:
    r = mqtt.command("agents", agent, {"action": "logout"})
    if not r["ok"]:  # refused (say, during a CTI restart): logging in again re-attaches
        r = mqtt.command("agents", agent, {"action": "login", "seat": seat})
        assert r["ok"], r
        r = mqtt.command("agents", agent, {"action": "logout"})
    assert r["ok"], r


def _to_agent(number: str, talk_ms: int) -> Caller:
    """Mandarin, 0 for an agent, then hang up talk_ms after the 0 (waiting and ringing
    included)."""
    return Caller(number, [Pause(1500), Keys("1"), Pause(1500), Keys("0")],
                  hangup_after_ms=talk_ms)


@dataclass
class Talk:
    call_id: str
    number: str
    seat: str
    answered: float   # AMI timestamps
    ended: float

    @property
    def seconds(self) -> float:
        return self.ended - self.answered


def _talk(ami: AmiRecorder, number: str, mark: int, call: CallInProgress) -> Talk:
    """Wait for the seat to answer and the agent leg to hang up; the talk time from AMI."""
    # Dial's DialEnd on the ACD path; app_queue reports its member's answer the same way
    answered = ami.wait_for(is_event("DialEnd", number, DialStatus="ANSWER"), 90, "seat answered",
                            since=mark)
    agent_leg = answered["DestChannel"]
    assert call.finish(120).ok
    hangup = ami.wait_for(lambda e: e.get("Event") == "Hangup"
                          and e.get("Channel") == agent_leg, 30, "agent leg hangup",
                          since=mark)
    seat = agent_leg.split("/", 1)[1].rsplit("-", 1)[0]
    return Talk(answered["Linkedid"], number, seat, ts(answered), ts(hangup))


def _done(ami: AmiRecorder, call_id: str, mark: int) -> Event:
    return ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                        and e.get("UserEvent") == "HotlineRecordingDone"
                        and e.get("CallId") == call_id, 30, "recording done", since=mark)


def _rows(backend: Backend, call_id: str) -> list[Recording]:
    with backend.sessions() as s:
        return list(s.scalars(select(Recording).where(Recording.call_id == call_id)))


def _indexed(backend: Backend, call_id: str, timeout: float = 30) -> Recording:
    found: list[Recording] = []

    def there() -> bool:
        found[:] = _rows(backend, call_id)
        return bool(found)

    stack.wait_until(there, timeout, f"the index row of call {call_id}")
    assert len(found) == 1, [r.rel_path for r in found]
    return found[0]


def _sox_rms(path: Path) -> float:
    res = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True, text=True,
                         check=True)
    for line in res.stderr.splitlines():
        if line.startswith("RMS     amplitude"):
            return float(line.split(":")[1])
    raise AssertionError(f"sox stat said nothing of RMS: {res.stderr}")


def _check_recording(cti: CtiProcess, rec: Recording, talk: Talk, agent: str | None) -> Path:
    path = cti.settings.recorder.storage_dir / rec.rel_path
    assert path.exists(), path
    assert riff_complete(path), "Asterisk did not close the wav"
    # one file per answered leg, named by the call (the IVR part, when recorded, apart)
    files = [f for f in cti.settings.recorder.storage_dir.rglob(f"{talk.call_id}_*.wav")
             if not f.name.endswith("_ivr.wav")]
    assert files == [path], files
    assert _sox_rms(path) > 0.01, "the recording is silent"
    with wave.open(str(path)) as w:
        duration = w.getnframes() / w.getframerate()
    assert abs(duration - talk.seconds) <= 1.0, (duration, talk.seconds)
    assert abs(rec.duration_s - duration) < 0.05
    assert rec.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rec.size_bytes == path.stat().st_size
    assert rec.seat == talk.seat and rec.agent_id == agent
    assert rec.caller_number == talk.number
    assert rec.kind == "agent"
    return path


@pytest.fixture(scope="module")
def recorded(cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend,
             tone_phones: None, agents: list[str],
             tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Recording, Talk]]:
    """Two answered calls, one after the other, to two agents."""
    wd = tmp_path_factory.mktemp("rec-calls")
    out = []
    for i, (agent, seat) in enumerate(zip(agents, SEATS, strict=True)):
        _login_ready(mqtt, agent, seat)
        number = f"{backend.prefix}8100{i:03d}"
        mark = ami.mark()
        call = CallInProgress(_to_agent(number, talk_ms=12_000 + 2_000 * i), cti.settings, wd)
        talk = _talk(ami, number, mark, call)
        _done(ami, talk.call_id, mark)
        rec = _indexed(backend, talk.call_id)
        out.append((rec, talk))
        _logout(mqtt, agent, seat)
    return out


def test_every_answered_call_is_recorded_with_audio_duration_and_checksum(
        cti: CtiProcess, recorded: list[tuple[Recording, Talk]], agents: list[str]) -> None:
    for (rec, talk), agent in zip(recorded, agents, strict=True):
        _check_recording(cti, rec, talk, agent)
        assert rec.indexed_by == "event"
        assert rec.queue == "general"


def test_simultaneous_calls_each_get_their_own_recording(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend,
        tone_phones: None, agents: list[str], tmp_path: Path) -> None:
    for a, s in zip(agents, SEATS, strict=True):
        _login_ready(mqtt, a, s)
    numbers = [f"{backend.prefix}81005{i:02d}" for i in range(2)]
    mark = ami.mark()
    calls = [CallInProgress(_to_agent(n, talk_ms=14_000 + 1_500 * i), cti.settings, tmp_path)
             for i, n in enumerate(numbers)]
    talks = [_talk(ami, n, mark, c) for n, c in zip(numbers, calls, strict=True)]
    assert len({t.call_id for t in talks}) == 2 and len({t.seat for t in talks}) == 2
    by_seat = dict(zip(SEATS, agents, strict=True))
    for talk in talks:
        _done(ami, talk.call_id, mark)
        _check_recording(cti, _indexed(backend, talk.call_id), talk, by_seat[talk.seat])
    for agent, seat in zip(agents, SEATS, strict=True):
        _logout(mqtt, agent, seat)


def test_astdb_notes_are_kept_by_day_and_old_days_are_dropped(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend,
        tone_phones: None, agents: list[str], tmp_path: Path) -> None:
    """Each recorded leg notes its caller and queue under hotline-rec/<day> in AstDB; the first
    recording of a day (per Asterisk start) drops the notes of 3 to 7 days before. The CTI's
    AMI user may not DBDel, and before this every leg's note stayed for ever."""
    now = datetime.now(UTC)
    old_day, kept_day = ((now - timedelta(days=d)).strftime("%Y%m%d") for d in (4, 1))
    for day in (old_day, kept_day):
        stack.asterisk_cli(cti.settings, f"database put hotline-rec/{day} 1.1_1.2 x|general|1")
    # as if Asterisk had just started: the next recording tidies
    stack.asterisk_cli(cti.settings, "dialplan set global HOTLINE_REC_TIDIED none")
    agent, seat = agents[0], SEATS[0]
    _login_ready(mqtt, agent, seat)
    number = f"{backend.prefix}8100700"
    mark = ami.mark()
    # the caller hangs up this long after its 0: the IVR's goodbye, the offer and the ring
    # come out of it (4 s was shorter than that: the caller gave up before the seat answered)
    call = CallInProgress(_to_agent(number, talk_ms=12_000), cti.settings, tmp_path)
    talk = _talk(ami, number, mark, call)
    done = _done(ami, talk.call_id, mark)
    day = done["File"].split("/recordings/", 1)[1].split("/", 1)[0]
    rec = _indexed(backend, talk.call_id)
    _logout(mqtt, agent, seat)
    notes = stack.asterisk_cli(cti.settings, f"database show hotline-rec/{day}")
    assert f"/hotline-rec/{day}/{talk.call_id}_" in notes, notes
    assert f"{number}|general|" in notes, notes
    assert "1.1_1.2" not in stack.asterisk_cli(cti.settings,
                                               f"database show hotline-rec/{old_day}")
    assert "1.1_1.2" in stack.asterisk_cli(cti.settings, f"database show hotline-rec/{kept_day}")
    stack.asterisk_cli(cti.settings, f"database deltree hotline-rec/{kept_day}")
    assert rec.queue == "general" and rec.caller_number == number


@contextmanager
def _cti_killed(cti: CtiProcess, mqtt: MqttWatcher, agent: str) -> Iterator[None]:
    """The CTI is killed (-9) for the block, then started again; once the block went well,
    wait until it has resynced: it re-publishes every agent's state."""
    cti.kill9()
    try:
        yield
    finally:
        m1 = mqtt.mark()
        cti.start()
    mqtt.wait_for(lambda m: m.topic == f"hotline/agents/{agent}/state", 30,
                  "agent state after the restart", since=m1)


def test_cti_killed_mid_call_recording_is_complete_and_indexed_when_it_returns(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend,
        tone_phones: None, agents: list[str], tmp_path: Path) -> None:
    agent, seat = agents[0], SEATS[0]
    _login_ready(mqtt, agent, seat)
    number = f"{backend.prefix}8100100"
    mark = ami.mark()
    call = CallInProgress(_to_agent(number, talk_ms=14_000), cti.settings, tmp_path)
    ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                 and e.get("UserEvent") == "HotlineRecordingStart"
                 and e.get("Caller") == number, 90, "recording started", since=mark)
    with _cti_killed(cti, mqtt, agent):
        talk = _talk(ami, number, mark, call)
        done = _done(ami, talk.call_id, mark)
        path = cti.settings.recorder.storage_dir / done["File"].split("/recordings/", 1)[1]
        # Asterisk finished the file on its own, with no CTI
        stack.wait_until(lambda: riff_complete(path), 10, "Asterisk to close the wav")
        assert _rows(backend, talk.call_id) == []
    rec = _indexed(backend, talk.call_id)
    assert (rec.indexed_by, rec.queue) == ("reconcile", "general")
    assert abs(rec.started_at.timestamp() - talk.answered) < 1.5
    _check_recording(cti, rec, talk, agent)
    _logout(mqtt, agent, seat)


def test_failover_queue_calls_are_recorded_too(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend,
        tone_phones: None, agents: list[str], tmp_path: Path) -> None:
    """With the CTI gone for the whole call, the caller fails over to app_queue; its member
    gosub records, and the CTI indexes the file when it is back."""
    agent, seat = agents[0], SEATS[0]
    # a seat's queue member is paused while nobody is logged in there
    _login_ready(mqtt, agent, seat)
    number = f"{backend.prefix}8100200"
    with _cti_killed(cti, mqtt, agent):
        mark = ami.mark()
        call = CallInProgress(_to_agent(number, talk_ms=18_000), cti.settings, tmp_path)
        ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                     and e.get("UserEvent") == "HotlineFailover"
                     and e.get("CallerIDNum") == number, cti.settings.acd.cti_stale_s + 60,
                     "failover to app_queue", since=mark)
        started = ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                               and e.get("UserEvent") == "HotlineRecordingStart"
                               and e.get("Caller") == number, 60, "recording started",
                               since=mark)
        assert started["Queue"] == "hotline-agents"
        talk = _talk(ami, number, mark, call)
        _done(ami, talk.call_id, mark)
    rec = _indexed(backend, talk.call_id)
    # caller, queue and start come from what Asterisk kept in AstDB for the CTI
    _check_recording(cti, rec, talk, agent)
    assert (rec.indexed_by, rec.queue) == ("reconcile", "hotline-agents")
    _logout(mqtt, agent, seat)


def _web_login(web: str, user: str, seat: str | None = None) -> httpx.Client:
    c = httpx.Client(base_url=web, timeout=15)
    body = {"user_id": user, "password": PASSWORD} | ({"seat": seat} if seat else {})
    r = c.post("/api/auth/login", json=body)
    assert r.status_code == 200, r.text
    return c


def _web_state(c: httpx.Client, agent: str, want: str, timeout: float = 20) -> None:
    stack.wait_until(lambda: c.get(f"/api/agents/{agent}").json().get("state") == want,
                     timeout, f"{agent} {want}")


def _leg_answered(ami: AmiRecorder, number: str, seat: str, since: int) -> Event:
    return ami.wait_for(seat_answered(number, seat), 60, f"{seat} answered", since=since)


def test_transfer_keeps_both_legs_on_the_call_and_a_supervisor_plays_them_in_the_browser(
        cti: CtiProcess, ami: AmiRecorder, backend: Backend, web: str, tone_phones: None,
        agents: list[str], tmp_path: Path) -> None:
    first, second = agents
    a = _web_login(web, first, SEATS[0])
    b = _web_login(web, second, SEATS[1])
    sup = _web_login(web, "S01")
    try:
        assert a.post(f"/api/agents/{first}/state", json={"state": "ready"}).status_code == 200
        number = f"{backend.prefix}8100300"
        mark = ami.mark()
        call = CallInProgress(_to_agent(number, talk_ms=22_000), cti.settings, tmp_path)
        leg1 = _leg_answered(ami, number, SEATS[0], mark)
        call_id = leg1["Linkedid"]
        _web_state(a, first, "on_call")
        start1 = ami.wait_for(lambda e: e.get("UserEvent") == "HotlineRecordingStart"
                              and e.get("CallId") == call_id, 10, "leg 1 recording",
                              since=mark)
        f1 = cti.settings.recorder.storage_dir / start1["File"].split("/recordings/", 1)[1]
        # let the first agent talk for three seconds of recorded audio, then transfer
        stack.wait_until(lambda: f1.exists() and f1.stat().st_size > 44 + 3 * 16000, 15,
                         "three seconds recorded on the first leg")
        assert b.post(f"/api/agents/{second}/state", json={"state": "ready"}).status_code == 200
        m = ami.mark()
        r = a.post(f"/api/calls/{call_id}/transfer", json={"agent_id": second})
        assert r.status_code == 200, r.text
        leg2 = _leg_answered(ami, number, SEATS[1], m)
        assert leg2["Linkedid"] == call_id
        assert call.finish(120).ok
        talks = []
        for leg in (leg1, leg2):
            end = ami.wait_for(lambda e, ch=leg["DestChannel"]: e.get("Event") == "Hangup"
                               and e.get("Channel") == ch, 30, "leg hangup", since=mark)
            talks.append(Talk(call_id, number, leg["DestChannel"][6:].rsplit("-", 1)[0],
                              ts(leg), ts(end)))
        found: list[Recording] = []

        def both() -> bool:
            found[:] = sorted(_rows(backend, call_id), key=lambda r: r.started_at)
            return len(found) == 2

        stack.wait_until(both, 30, "both legs indexed")
        assert [(r.seat, r.agent_id) for r in found] == [(SEATS[0], first), (SEATS[1], second)]
        for rec, talk in zip(found, talks, strict=True):
            path = cti.settings.recorder.storage_dir / rec.rel_path
            assert _sox_rms(path) > 0.01
            with wave.open(str(path)) as w:
                assert abs(w.getnframes() / w.getframerate() - talk.seconds) <= 1.0
            assert rec.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()

        # the supervisor finds both legs and plays one in the browser, seeking by Range
        rows = sup.get("/api/recordings", params={"caller": number}).json()
        assert sorted(r["id"] for r in rows) == sorted(r.id for r in found)
        assert {r["call_id"] for r in rows} == {call_id}
        data = (cti.settings.recorder.storage_dir / found[1].rel_path).read_bytes()
        r = sup.get(f"/api/recordings/{found[1].id}/audio", headers={"range": "bytes=44-2091"})
        assert r.status_code == 206 and r.content == data[44:2092]
        assert r.headers["content-range"] == f"bytes 44-2091/{len(data)}"
        whole = sup.get(f"/api/recordings/{found[1].id}/audio")
        assert whole.status_code == 200 and whole.content == data
        # an agent may not
        assert a.get("/api/recordings", params={"caller": number}).status_code == 403
        with backend.sessions() as s:
            trail = s.execute(select(AuditLog.actor, AuditLog.action, AuditLog.allowed)
                              .where(AuditLog.action.like("recording.%"))
                              .order_by(AuditLog.id.desc()).limit(4)).all()
        assert [tuple(t) for t in reversed(trail)] == [
            ("S01", "recording.search", True), ("S01", "recording.audio", True),
            ("S01", "recording.audio", True), (first, "recording.search", False)]
        for c, agent in ((a, first), (b, second)):
            assert c.post(f"/api/agents/{agent}/logout").status_code == 200
    finally:
        for c in (a, b, sup):
            c.close()


def test_play_to_phone_plays_the_recording_on_the_supervisors_own_phone(
        cti: CtiProcess, ami: AmiRecorder, web: str, recorded: list[tuple[Recording, Talk]],
        tmp_path: Path) -> None:
    rec, _talk = recorded[1]
    secrets = json.loads((cti.settings.state_dir / "secrets.json").read_text())
    phone = AgentPhones(SUP_PORT, tmp_path, answer=True, ring_ms=500)
    sup = _web_login(web, "S05")
    try:
        register_seats({"sup05": secrets["sup05"]},
                       f"{cti.settings.pbx.bind_ip}:{cti.settings.pbx.sip_port}", SUP_PORT,
                       tmp_path, SUP_REGISTER_PORT)
        mark = ami.mark()
        r = sup.post(f"/api/recordings/{rec.id}/play-to-phone")
        assert r.status_code == 202, r.text
        assert r.json()["endpoint"] == "sup05"
        up = ami.wait_for(lambda e: e.get("Event") == "Newstate"
                          and e.get("Channel", "").startswith("PJSIP/sup05-")
                          and e.get("ChannelStateDesc") == "Up", 30, "sup05 answered",
                          since=mark)
        down = ami.wait_for(lambda e: e.get("Event") == "Hangup"
                            and e.get("Channel") == up["Channel"],
                            rec.duration_s + 30, "playback over", since=mark)
        # Asterisk hung up when the file had played: the call lasted as long as the recording
        assert abs((ts(down) - ts(up)) - rec.duration_s) <= 1.5, (ts(down) - ts(up),
                                                                  rec.duration_s)
    finally:
        sup.close()
        phone.stop()


def test_the_ivr_part_is_recorded_when_the_setting_is_on(
        cti: CtiProcess, ami: AmiRecorder, mqtt: MqttWatcher, backend: Backend,
        tone_phones: None, agents: list[str], tmp_path: Path) -> None:
    """[recorder] record_ivr is the dialplan global RECORD_IVR; flip it live for one call."""
    agent, seat = agents[1], SEATS[1]
    send_action(ami, {"Action": "Setvar", "Variable": "RECORD_IVR", "Value": "1"})
    try:
        _login_ready(mqtt, agent, seat)
        number = f"{backend.prefix}8100400"
        mark = ami.mark()
        call = CallInProgress(_to_agent(number, talk_ms=12_000), cti.settings, tmp_path)
        talk = _talk(ami, number, mark, call)
    finally:
        send_action(ami, {"Action": "Setvar", "Variable": "RECORD_IVR", "Value": "0"})
    found: list[Recording] = []

    def both() -> bool:
        found[:] = _rows(backend, talk.call_id)
        return len(found) == 2

    stack.wait_until(both, 30, "the IVR and agent recordings indexed")
    by_kind = {r.kind: r for r in found}
    ivr, leg = by_kind["ivr"], by_kind["agent"]
    assert (ivr.seat, ivr.agent_id, ivr.queue, ivr.caller_number) == (None, None, None, number)
    path = cti.settings.recorder.storage_dir / ivr.rel_path
    assert riff_complete(path) and _sox_rms(path) > 0.001  # the IVR's prompts
    # the IVR part ends where the agent part begins (the caller waited in between)
    assert ivr.started_at <= leg.started_at
    assert ivr.duration_s < (leg.started_at - ivr.started_at).total_seconds() + 1.5
    _check_recording(cti, leg, talk, agent)
    _logout(mqtt, agent, seat)


def _hotline(cti: CtiProcess, *args: str,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HOTLINE), *args], env={**cti.env, **(env or {})},
                          capture_output=True, text=True, check=False, timeout=60)


def test_reconciler_finds_planted_deleted_stray_and_corrupted_files(
        cti: CtiProcess, recorded: list[tuple[Recording, Talk]]) -> None:
    storage = cti.settings.recorder.storage_dir
    (gone, _), (damaged, _) = recorded
    gone_path, damaged_path = storage / gone.rel_path, storage / damaged.rel_path
    gone_bytes, damaged_bytes = gone_path.read_bytes(), damaged_path.read_bytes()
    ours = gone_path.with_name(f"1.1_1.1_{damaged.seat}.wav")  # named by a call, never indexed
    foreign = storage / "planted-by-test.wav"
    try:
        gone_path.unlink()
        # one sample changed in the middle: same size, different checksum
        mid = len(damaged_bytes) // 2
        damaged_path.write_bytes(damaged_bytes[:mid] + bytes([damaged_bytes[mid] ^ 0xFF])
                                 + damaged_bytes[mid + 1:])
        shutil.copyfile(damaged_path, ours)
        shutil.copyfile(damaged_path, foreign)
        res = _hotline(cti, "recordings", "reconcile", "--json")
        assert res.returncode == 1, res.stderr
        doc = json.loads(res.stdout)
        assert {"id": gone.id, "file": gone.rel_path} in doc["missing"]
        corrupt = {c["file"]: c for c in doc["corrupt"]}
        assert damaged.rel_path in corrupt
        assert corrupt[damaged.rel_path]["indexed_sha256"] == damaged.sha256
        assert corrupt[damaged.rel_path]["file_size"] == damaged.size_bytes
        stray = {s["file"]: s["ours"] for s in doc["stray"]}
        assert stray.get(ours.relative_to(storage).as_posix()) is True
        assert stray.get("planted-by-test.wav") is False
        assert doc["clean"] is False
    finally:
        gone_path.write_bytes(gone_bytes)
        damaged_path.write_bytes(damaged_bytes)
        ours.unlink(missing_ok=True)
        foreign.unlink(missing_ok=True)
    res = _hotline(cti, "recordings", "reconcile", "--json")
    doc = json.loads(res.stdout)
    for key in ("missing", "corrupt", "stray"):
        files = {x["file"] for x in doc[key]}
        assert not files & {gone.rel_path, damaged.rel_path, "planted-by-test.wav"}, doc


def test_search_by_agent_caller_queue_and_duration(
        cti: CtiProcess, recorded: list[tuple[Recording, Talk]], agents: list[str]) -> None:
    (first, t1), (second, t2) = recorded
    res = _hotline(cti, "recordings", "list", "--json", "--caller", t1.number)
    assert res.returncode == 0, res.stderr
    assert [r["id"] for r in json.loads(res.stdout)] == [first.id]
    res = _hotline(cti, "recordings", "list", "--json", "--agent", agents[1], "--queue",
                   "general", "--min-duration", str(int(second.duration_s) - 1))
    assert second.id in [r["id"] for r in json.loads(res.stdout)]
    assert first.id not in [r["id"] for r in json.loads(res.stdout)]
    res = _hotline(cti, "recordings", "list", "--json", "--min-duration", "5",
                   "--max-duration", "1")
    assert res.returncode == 2 and "min_duration" in res.stderr


def _alsa(folder: Path, default_pcm: str) -> dict[str, str]:
    """ALSA configured by one file of ours (ALSA_CONFIG_PATH), whatever sound cards the
    machine has: its default PCM is `default_pcm`."""
    conf = folder / "asound.conf"
    conf.write_text(f"pcm.!default {default_pcm}\n")
    return {"ALSA_CONFIG_PATH": str(conf)}


def test_replay_plays_the_recording_on_this_machines_sound_device(
        cti: CtiProcess, recorded: list[tuple[Recording, Talk]], tmp_path: Path) -> None:
    """No sound card needed: ALSA's default device is its file plugin, which writes what
    sounddevice plays as raw samples; those samples must be the recording's."""
    rec, _talk = recorded[0]
    played = tmp_path / "played.raw"
    env = _alsa(tmp_path, f'{{ type file; slave.pcm {{ type null }}; file "{played}"; '
                          'format "raw" }')
    res = _hotline(cti, "replay", rec.call_id, "--leg", str(rec.id), env=env)
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    with wave.open(str(cti.settings.recorder.storage_dir / rec.rel_path), "rb") as w:
        assert w.getsampwidth() == 2, w.getparams()
        recording = array("h", w.readframes(w.getnframes()))
    assert max(map(abs, recording)) > 1000  # a tone, so equal samples mean it really played
    raw = played.read_bytes()
    out = array("h", raw[:len(raw) - len(raw) % 2])
    head = out[:len(recording)]
    assert len(head) == len(recording), (len(out), len(recording))
    differ = sum(a != b for a, b in zip(head, recording, strict=True))
    assert differ == 0, f"{differ} of {len(recording)} samples played differ from the recording"
    assert not any(out[len(recording):]), "after the recording only silence may follow"


def test_replay_without_a_sound_device_says_so(
        cti: CtiProcess, recorded: list[tuple[Recording, Talk]], tmp_path: Path) -> None:
    rec, _talk = recorded[0]
    env = _alsa(tmp_path, "{ type hw; card 99 }")  # a card no machine here has
    res = _hotline(cti, "replay", rec.call_id, env=env)
    assert res.returncode == 3, (res.returncode, res.stdout, res.stderr)
    assert "no sound output device" in res.stderr, res.stderr
