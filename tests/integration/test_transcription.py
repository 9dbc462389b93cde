"""Post-call transcription with a keyword alert over a real call (issue 13): a SIPp caller goes
through the real Asterisk's IVR to an agent's phone and says, in Korean, 너무 너무 화가 납니다
(I am so, so angry) three times; Asterisk's MixMonitor records the agent leg (8 kHz, both
directions mixed); the CTI indexes it, queues its transcription job in the same transaction,
and its worker transcribes it with the real Korean vosk model (full vocabulary). The test's
alert keyword is 너무 ([speech] alert_keywords = ["너무"] for this module): the transcript must
hold it, with word timings, a keyword_alerts row must name the call, seat, agent and caller,
and its MQTT message must reach hotline/supervisors/alerts.

Why 너무: no Mandarin model installs here, and this Korean model hears very few words of
espeak-ng's Korean at 8 kHz with its whole vocabulary (a scan of a hundred common nouns found
none it heard in most voices); 너무, said twice in this sentence, it hears in each of four voices
through a mu-law round trip (tests/contract/test_transcription_vosk_ko.py).

The suite runs with transcription off ([speech] transcribe_workers = 0, conftest): this module
restarts the CTI with one worker and its keyword, and restores it afterwards. Recordings of the
modules before it are given finished jobs first, so the worker's queue holds only this call's.
Everything waits on a condition with a deadline."""

from __future__ import annotations

import asyncio
import json
import threading
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import tomli_w
from sqlalchemy import select

from config.settings import load_settings
from cti.db.models import Agent
from cti.db.models_recordings import Recording
from cti.db.models_transcripts import KeywordAlert, Transcript, TranscriptionJob
from hotline import stack
from tests.contract.test_speech_vosk_ko import speak
from tests.integration.callers import call_story, is_event
from tests.integration.conftest import Backend, CtiProcess, ItEnv
from tests.support.agent_phones import AgentPhones, register_seats
from tests.support.ami import AmiRecorder
from tests.support.mqtt import MqttWatcher
from tests.support.ports import port
from tests.support.sipp import Caller, Keys, Pause, SippResult
from tests.support.speech_calls import place_speaking_call

pytestmark = pytest.mark.integration

PHONE_PORT, REGISTER_PORT = port(15066), port(15068)
SEAT = "seat33"
KEYWORD = "너무"
SENTENCE = "너무 너무 화가 납니다"
# when the caller says it, ms after the IVR answers: the agent answers some 5-8 s in (keys at
# 1.5 s and 3 s, a short ring); the first may fall on the queue's music, the later ones on
# the agent leg, which is what is recorded and transcribed
SAY_AT_MS = (10_000, 16_000, 22_000)
HANGUP_AFTER_0_MS = 27_000


@pytest.fixture(scope="module")
def transcribing(cti: CtiProcess, it_env: ItEnv, backend: Backend) -> Iterator[CtiProcess]:
    """The CTI restarted with one transcription worker and the test's keyword."""
    raw = tomllib.loads(it_env.settings_path.read_text(encoding="utf-8"))
    raw["speech"].update({"transcribe_workers": 1, "alert_keywords": [KEYWORD]})
    path = it_env.state / "hotline-transcription.toml"
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    path.chmod(0o644)
    # earlier modules' recordings are not this test's: their jobs are finished already
    now = datetime.now(UTC)
    with backend.sessions.begin() as s:
        has_job = select(TranscriptionJob.recording_id)
        for rid in s.scalars(select(Recording.id).where(Recording.id.not_in(has_job))):
            s.add(TranscriptionJob(recording_id=rid, state="failed", attempts=0,
                                   last_error="recorded before test_transcription",
                                   queued_at=now, finished_at=now))
    saved = (cti.settings, cti.env)
    cti.stop()
    cti.env = {**saved[1], "HOTLINE_SETTINGS": str(path)}
    cti.settings = load_settings(path, cti.env)
    assert cti.settings.speech.transcribe_workers == 1
    cti.start()
    try:
        yield cti
    finally:
        cti.stop()
        cti.settings, cti.env = saved
        cti.start()


@pytest.fixture(scope="module")
def phone(transcribing: CtiProcess, mqtt: MqttWatcher,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """An agent phone at SEAT that answers at once and sends no audio (the recording then
    holds only what the caller says)."""
    mqtt.cti_online()
    wd = tmp_path_factory.mktemp("transcription-phone")
    secrets = json.loads((transcribing.settings.state_dir / "secrets.json").read_text())
    phones = AgentPhones(PHONE_PORT, wd, answer=True, ring_ms=300)
    try:
        register_seats({SEAT: secrets[SEAT]},
                       f"{transcribing.settings.pbx.bind_ip}:{transcribing.settings.pbx.sip_port}",
                       PHONE_PORT, wd, REGISTER_PORT)
        yield
    finally:
        phones.stop()


@pytest.fixture(scope="module")
def agent(backend: Backend, mqtt: MqttWatcher, phone: None) -> Iterator[str]:
    with backend.sessions() as s:
        rows = s.execute(select(Agent.agent_id, Agent.skills).where(Agent.role == "agent")
                         .order_by(Agent.agent_id)).all()
    agent_id = [a for a, skills in rows if "general" in skills][-1]
    m0 = mqtt.mark()
    assert mqtt.command("agents", agent_id, {"action": "login", "seat": SEAT})["ok"]
    assert mqtt.command("agents", agent_id, {"action": "ready"})["ok"]
    mqtt.wait_for(lambda m: m.topic == f"hotline/agents/{agent_id}/state"
                  and m.payload.get("state") == "ready", 30, f"{agent_id} ready", since=m0)
    try:
        yield agent_id
    finally:
        mqtt.command("agents", agent_id, {"action": "logout"})


def _speaking_call(caller: Caller, target: str, workdir: Path) -> tuple[threading.Thread,
                                                                         list[SippResult]]:
    pcm = speak(SENTENCE, 150, 40, 8000)
    out: list[SippResult] = []

    def run() -> None:
        out.append(asyncio.run(place_speaking_call(
            caller, [(at, pcm) for at in SAY_AT_MS], target, workdir, timeout_s=120)))

    thread = threading.Thread(target=run, name="speaking-caller", daemon=True)
    thread.start()
    return thread, out


def test_a_recorded_call_is_transcribed_and_its_keyword_alerts_the_supervisors(
        transcribing: CtiProcess, agent: str, ami: AmiRecorder, mqtt: MqttWatcher,
        backend: Backend, tmp_path: Path) -> None:
    number = f"{backend.prefix}8300001"
    caller = Caller(number, [Pause(1500), Keys("1"), Pause(1500), Keys("0")],
                    hangup_after_ms=HANGUP_AFTER_0_MS)
    settings = transcribing.settings
    mark, m0 = ami.mark(), mqtt.mark()
    thread, result = _speaking_call(caller, f"{settings.pbx.bind_ip}:{settings.pbx.sip_port}",
                                    tmp_path)
    try:
        answered = ami.wait_for(is_event("DialEnd", number, DialStatus="ANSWER"), 60,
                                "the agent's phone answered", since=mark)
    except AssertionError:
        raise AssertionError(call_story(ami, number, mark, settings)) from None
    call_id = answered["Linkedid"]
    thread.join(120)
    assert result and result[0].ok, result
    ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                 and e.get("UserEvent") == "HotlineRecordingDone"
                 and e.get("CallId") == call_id, 30, "recording done", since=mark)

    found: dict[str, object] = {}

    def transcribed() -> bool:
        with backend.sessions() as s:
            row = s.execute(select(Recording, TranscriptionJob)
                            .join(TranscriptionJob,
                                  TranscriptionJob.recording_id == Recording.id)
                            .where(Recording.call_id == call_id,
                                   Recording.kind == "agent")).first()
            if row is None or row[1].state not in ("done", "failed"):
                return False
            found["rec"], found["job"] = row
            found["transcript"] = s.scalars(select(Transcript).where(
                Transcript.recording_id == row[0].id)).one_or_none()
            found["alert"] = s.scalars(select(KeywordAlert).where(
                KeywordAlert.recording_id == row[0].id)).one_or_none()
            return True

    stack.wait_until(transcribed, 180, f"the transcription of call {call_id}'s agent leg")
    rec, job = found["rec"], found["job"]
    assert isinstance(rec, Recording) and isinstance(job, TranscriptionJob)
    assert (job.state, job.lang, job.attempts) == ("done", "ko", 1), job.last_error
    tr = found["transcript"]
    assert isinstance(tr, Transcript)
    print(f"\ntranscript of the agent leg ({rec.duration_s:.1f} s): {tr.text}")
    heard = [w for w in tr.words if w["w"] == KEYWORD]
    assert heard, f"{KEYWORD} is not in the transcript: {tr.text!r}"
    # word timings: within the recording, in order
    assert all(0 <= w["s"] <= w["e"] <= rec.duration_s + 0.5 for w in tr.words)
    assert [w["s"] for w in tr.words] == sorted(w["s"] for w in tr.words)

    alert = found["alert"]
    assert isinstance(alert, KeywordAlert), "no keyword alert row"
    assert (alert.call_id, alert.seat, alert.agent_id, alert.caller_number, alert.status) == \
        (call_id, SEAT, agent, number, "open")
    assert alert.keywords and {k["word"] for k in alert.keywords} == {KEYWORD}
    assert alert.keywords[0]["start"] == pytest.approx(heard[0]["s"], abs=0.01)
    assert KEYWORD in alert.excerpt

    msg = mqtt.wait_for(lambda m: m.topic == "hotline/supervisors/alerts"
                        and m.payload.get("type") == "keyword_alert"
                        and m.payload.get("recording_id") == rec.id, 30,
                        "the keyword alert on hotline/supervisors/alerts", since=m0)
    assert msg.payload["alert_id"] == alert.id
    assert msg.payload["call_id"] == call_id and msg.payload["agent_id"] == agent
    assert msg.payload["keywords"] == [{"word": k["word"], "start": k["start"]}
                                       for k in alert.keywords]

    # cti.status.json's counts (written every 2 s, counted after each job)
    status: dict[str, object] = {}

    def counted() -> bool:
        status.clear()
        status.update(transcribing.status().get("transcription") or {})
        return bool(status.get("done")) and bool(status.get("alerts"))

    stack.wait_until(counted, 30, "the transcription counts in cti.status.json")
    assert status["workers"] == 1 and status["swept"] is not None
