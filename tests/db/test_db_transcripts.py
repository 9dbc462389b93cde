"""Post-call transcription on SQLite and PostgreSQL: every indexed recording gets one job, the
job table survives a restart (a job left running goes back to the queue, or fails with no
attempts left), retries stop at the limit, transcripts are stored with word timings and found
by the recordings search, a keyword hit writes one alert and its MQTT message after the commit,
and an alert becomes a complaint order linked to its call."""

from __future__ import annotations

import threading
import wave
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.keyword_alerts import AlertHandled, KeywordAlertService
from callcenter.transcription import TranscriptionService
from config.speech import SpeechSettings
from config.topics import SUPERVISOR_ALERTS_TOPIC
from cti.db import transcripts as store
from cti.db.calls import record_call_start
from cti.db.models import Call, WorkOrder
from cti.db.models_recordings import AuditLog, Recording
from cti.db.models_transcripts import KeywordAlert, Transcript, TranscriptionJob
from cti.db.recorder_store import DbRecordingIndex
from cti.db.recordings import RecordingQuery, purge, search, search_one
from cti.db.web_audit import AuditEntry
from cti.notifier import Notifier
from recorder.ports import RecordingFacts
from recorder.retention import RetentionPolicy
from tests.support.fakes import Clock, FakeBus
from workorders.lifecycle import Role
from workorders.service import Actor, WorkOrderService

CALL = "1764988200.11"
WAV = f"20261127/{CALL}_{CALL[:-1]}2_seat01.wav"
WAV2 = f"20261127/{CALL}_{CALL[:-1]}3_seat02.wav"


def _vosk(*words: tuple[str, float]) -> dict[str, Any]:
    return {"text": " ".join(w for w, _ in words),
            "result": [{"word": w, "start": s, "end": s + 0.4, "conf": 0.9} for w, s in words]}


class FakeRecogniser:
    """The vosk port: what each call 'said', or an error to raise; counts its calls."""

    def __init__(self, result: dict[str, Any] | Exception) -> None:
        self.result = result
        self.calls: list[tuple[str, Path]] = []
        self.threads: list[str] = []

    def __call__(self, lang: str, path: Path, stop: threading.Event) -> dict[str, Any]:
        self.calls.append((lang, path))
        self.threads.append(threading.current_thread().name)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def _wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 800)


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    for rel in (WAV, WAV2):
        _wav(tmp_path / rel)
    return tmp_path


def _settings(**kw: Any) -> SpeechSettings:
    return SpeechSettings(models={"ko": Path("/models/ko"), "zh": Path("/models/zh")},
                          alert_keywords=("투표", "12345", "律师"), **kw)


def _service(sessions: sessionmaker[Session], storage: Path, recogniser: FakeRecogniser,
             now: datetime, bus: FakeBus | None = None, **kw: Any) -> TranscriptionService:
    return TranscriptionService(sessions, _settings(**kw), storage, recogniser,
                                alerts=Notifier(bus) if bus is not None else None,
                                clock=Clock(now, timedelta(seconds=1)))


def _index(sessions: sessionmaker[Session], rel: str, now: datetime,
           queue: TranscriptionService | None) -> int:
    DbRecordingIndex(sessions, transcription=queue).index(RecordingFacts(
        rel_path=rel, started_at=now - timedelta(minutes=2), duration_s=60.0, size=960044,
        sha256="ab" * 32, indexed_by="event", caller_number="13900000001"), now)
    with sessions() as s:
        return s.scalars(select(Recording.id).where(Recording.rel_path == rel)).one()


@pytest.fixture
def call(session_factory: sessionmaker[Session], now: datetime) -> str:
    with session_factory.begin() as s:
        record_call_start(s, call_id=CALL, uniqueid=CALL, caller_number="13900000001",
                          dnis="95598", now=now - timedelta(minutes=3))
        c = s.scalars(select(Call).where(Call.call_id == CALL)).one()
        c.account_no, c.language = "1000000001", "zh"
    return CALL


def _job(sessions: sessionmaker[Session], recording_id: int) -> TranscriptionJob:
    with sessions() as s:
        return s.scalars(select(TranscriptionJob)
                         .where(TranscriptionJob.recording_id == recording_id)).one()


def test_indexing_queues_one_job_and_a_worker_stores_words_and_raises_one_alert(
        session_factory: sessionmaker[Session], storage: Path, now: datetime,
        call: str) -> None:
    bus = FakeBus()
    heard = FakeRecogniser(_vosk(("고객", 0.5), ("변호사를", 1.2), ("투표", 2.0),
                                 ("일", 3.0), ("이", 3.3), ("삼", 3.6), ("사", 3.9), ("오", 4.2)))
    service = _service(session_factory, storage, heard, now, bus)
    rid = _index(session_factory, WAV, now, service)
    _index(session_factory, WAV, now, service)  # the reconciler indexes it again: one job
    job = _job(session_factory, rid)
    assert (job.state, job.attempts, job.lang) == ("queued", 0, None)

    assert service.work_one() is True
    assert service.work_one() is False  # one job only
    # the call was in Chinese, and a zh model is configured: its language, not the first one
    assert [lang for lang, _ in heard.calls] == ["zh"]
    assert heard.calls[0][1] == storage / WAV
    job = _job(session_factory, rid)
    assert (job.state, job.attempts, job.lang, job.last_error) == ("done", 1, "zh", None)
    with session_factory() as s:
        tr = s.scalars(select(Transcript).where(Transcript.recording_id == rid)).one()
        assert tr.text.startswith("고객 변호사를 투표")
        assert tr.words[1] == {"w": "변호사를", "s": 1.2, "e": 1.6, "c": 0.9}
        assert tr.model == "/models/zh"
        alert = s.scalars(select(KeywordAlert)).one()
    assert alert.keywords == [{"word": "투표", "start": 2.0}, {"word": "12345", "start": 3.0}]
    assert (alert.call_id, alert.seat, alert.caller_number, alert.status) == \
        (CALL, "seat01", "13900000001", "open")
    assert "투표" in alert.excerpt
    [msg] = bus.on(SUPERVISOR_ALERTS_TOPIC)
    assert msg["type"] == msg["kind"] == "keyword_alert"
    assert msg["alert_id"] == alert.id and msg["recording_id"] == rid
    assert msg["keywords"] == [{"word": "투표", "start": 2.0}, {"word": "12345", "start": 3.0}]
    assert set(msg) == {"type", "kind", "alert_id", "recording_id", "call_id", "seat",
                        "agent_id", "caller_number", "keywords", "excerpt", "at"}
    assert service.stats()["done"] == 1 and service.stats()["alerts_open"] == 1


def test_a_job_left_running_by_a_dead_process_is_queued_again_at_start(
        session_factory: sessionmaker[Session], storage: Path, now: datetime,
        call: str) -> None:
    first = _service(session_factory, storage, FakeRecogniser(_vosk(("네", 1.0))), now)
    rid = _index(session_factory, WAV, now, first)
    with session_factory.begin() as s:  # a worker took it, and the process died
        claimed = store.claim_next(s, now, 3)
    assert claimed is not None and claimed.recording_id == rid
    assert _job(session_factory, rid).state == "running"
    # recorded while transcription was off: no job yet
    other = _index(session_factory, WAV2, now, None)
    with session_factory() as s:
        assert s.scalars(select(TranscriptionJob)
                         .where(TranscriptionJob.recording_id == other)).first() is None

    again = _service(session_factory, storage, FakeRecogniser(_vosk(("네", 1.0))), now)
    assert again.sweep() == {"requeued": 1, "failed": 0, "queued": 1}
    job = _job(session_factory, rid)
    assert (job.state, job.attempts) == ("queued", 1)
    assert job.last_error is not None and "interrupted" in job.last_error
    assert _job(session_factory, other).state == "queued"
    assert again.work_one() and again.work_one() and not again.work_one()
    assert {_job(session_factory, r).state for r in (rid, other)} == {"done"}
    assert again.sweep() == {"requeued": 0, "failed": 0, "queued": 0}  # nothing left to do


def test_a_job_that_killed_its_process_each_time_fails_at_the_limit(
        session_factory: sessionmaker[Session], storage: Path, now: datetime,
        call: str) -> None:
    service = _service(session_factory, storage, FakeRecogniser(_vosk()), now,
                       transcribe_attempts=2)
    rid = _index(session_factory, WAV, now, service)
    for _ in range(2):  # claimed, then the process died: twice
        with session_factory.begin() as s:
            assert store.claim_next(s, now, 2) is not None
        service.swept = None
        service.sweep()
    job = _job(session_factory, rid)
    assert (job.state, job.attempts) == ("failed", 2)
    assert job.finished_at is not None


def test_failures_are_retried_up_to_the_limit_then_failed(
        session_factory: sessionmaker[Session], storage: Path, now: datetime,
        call: str) -> None:
    broken = FakeRecogniser(RuntimeError("decoder fell over"))
    service = _service(session_factory, storage, broken, now, transcribe_attempts=3)
    rid = _index(session_factory, WAV, now, service)
    assert service.work_one()
    job = _job(session_factory, rid)
    assert (job.state, job.attempts) == ("queued", 1)
    assert job.last_error == "RuntimeError: decoder fell over"
    assert service.work_one() and service.work_one()
    assert not service.work_one()  # no attempts left: not claimed again
    job = _job(session_factory, rid)
    assert (job.state, job.attempts) == ("failed", 3)
    assert len(broken.calls) == 3
    with session_factory() as s:
        assert s.scalars(select(Transcript)).first() is None


def test_a_missing_file_fails_at_once(session_factory: sessionmaker[Session], tmp_path: Path,
                                      now: datetime, call: str) -> None:
    heard = FakeRecogniser(_vosk(("네", 1.0)))
    service = _service(session_factory, tmp_path / "empty", heard, now)
    rid = _index(session_factory, WAV, now, service)
    assert service.work_one()
    job = _job(session_factory, rid)
    assert (job.state, job.attempts) == ("failed", 1)
    assert "not on disk" in (job.last_error or "")
    assert heard.calls == []


def test_search_by_transcript_text_and_the_status_of_each_recording(
        session_factory: sessionmaker[Session], storage: Path, now: datetime,
        call: str) -> None:
    heard = FakeRecogniser(_vosk(("我", 1.0), ("要", 1.2), ("投诉", 1.4), ("律师", 2.0),
                                 ("100%", 3.0)))
    service = _service(session_factory, storage, heard, now)
    rid = _index(session_factory, WAV, now, service)
    other = _index(session_factory, WAV2, now, None)
    with session_factory() as s:
        before = {d["id"]: d for d in search(s, RecordingQuery())}
    assert before[rid]["transcript_status"] == "queued" and before[rid]["keywords"] == []
    assert before[other]["transcript_status"] == "none"
    assert service.work_one()
    with session_factory() as s:
        def ids(text: str) -> list[int]:
            return [d["id"] for d in search(s, RecordingQuery(text=text))]

        assert ids("投诉") == [rid]
        assert ids("我要投诉") == [rid]   # vosk's "我 要 投诉", typed together
        assert ids("要 投诉") == [rid]
        assert ids("停电") == []
        assert ids("100%") == [rid]
        assert ids("10_%") == []          # LIKE's wildcards are the characters themselves
        assert ids("%") == [rid]
        doc = search(s, RecordingQuery(text="律师"))[0]
        assert doc["transcript_status"] == "done" and doc["keywords"] == ["律师"]
        assert search_one(s, rid)["keywords"] == ["律师"]  # type: ignore[index]
        tr = store.transcript_doc(s, rid)
        assert tr["status"] == "done" and tr["lang"] == "zh"
        assert tr["words"][2] == {"w": "投诉", "s": 1.4, "e": 1.8, "c": 0.9}
        assert tr["keywords"] == [{"word": "律师", "start": 2.0}]
        none = store.transcript_doc(s, other)
        assert (none["status"], none["words"], none["text"]) == ("none", [], "")


def test_retention_takes_the_transcript_with_the_audio(
        session_factory: sessionmaker[Session], storage: Path, now: datetime,
        call: str) -> None:
    service = _service(session_factory, storage, FakeRecogniser(_vosk(("네", 1.0))), now)
    rid = _index(session_factory, WAV, now, service)
    assert service.work_one()
    with session_factory.begin() as s:
        done = purge(s, RetentionPolicy(default_days=1), now + timedelta(days=3), "test")
    assert [d["recording_id"] for d in done] == [rid]
    with session_factory() as s:
        assert s.scalars(select(Transcript)).first() is None
        assert store.transcript_doc(s, rid)["words"] == []
    assert service.sweep()["queued"] == 0  # a deleted recording is not queued again


def _audit(action: str, now: datetime) -> AuditEntry:
    return AuditEntry(at=now, actor="S01", role="supervisor", action=action, target=None,
                      allowed=True)


def test_an_alert_becomes_one_complaint_order_linked_to_its_call(
        session_factory: sessionmaker[Session], storage: Path, now: datetime,
        call: str) -> None:
    service = _service(session_factory, storage, FakeRecogniser(
        _vosk(("我", 1.0), ("找", 1.2), ("律师", 1.4))), now)
    rid = _index(session_factory, WAV, now, service)
    _index(session_factory, WAV2, now, service)
    assert service.work_one() and service.work_one()
    workorders = WorkOrderService(session_factory, _policy(), clock=lambda: now)
    alerts = KeywordAlertService(session_factory, workorders, clock=lambda: now)
    listed = alerts.list("open", 100, 0, _audit("keyword_alert.list", now))
    assert len(listed) == 2
    first = next(a for a in listed if a["recording_id"] == rid)
    form = alerts.prefill(first["id"], _audit("keyword_alert.prefill", now))
    assert (form["type"], form["caller_number"], form["account_number"], form["call_id"]) == \
        ("complaint", "13900000001", "1000000001", CALL)
    assert "律师" in form["description"] and "我 找 律师" in form["description"]

    order = alerts.complaint(first["id"], Actor("S01", Role.SUPERVISOR), None,
                             _audit("keyword_alert.complaint", now))
    assert order["type"] == "complaint" and order["call_id"] == CALL
    assert order["caller_number"] == "13900000001"
    # the call's account went in (no such account in this test's database, as it says)
    assert "1000000001" in order["description"]
    assert "律师" in order["description"]
    with pytest.raises(AlertHandled):
        alerts.complaint(first["id"], Actor("S01", Role.SUPERVISOR), "again",
                         _audit("keyword_alert.complaint", now))
    second = next(a for a in listed if a["recording_id"] != rid)
    dismissed = alerts.dismiss(second["id"], "S01", _audit("keyword_alert.dismiss", now))
    assert dismissed["status"] == "dismissed" and dismissed["handled_by"] == "S01"
    with pytest.raises(AlertHandled):
        alerts.dismiss(second["id"], "S01", _audit("keyword_alert.dismiss", now))
    assert alerts.list("open", 100, 0, _audit("keyword_alert.list", now)) == []
    [made] = alerts.list("order_created", 100, 0, _audit("keyword_alert.list", now))
    assert made["work_order_number"] == order["number"] and made["handled_by"] == "S01"
    with session_factory() as s:
        assert s.scalars(select(WorkOrder.number).where(WorkOrder.call_id == CALL)).all() == \
            [order["number"]]  # one order: the refused second try made none
        actions = s.scalars(select(AuditLog.action)).all()
    assert actions.count("keyword_alert.complaint") == 1  # the service writes allowed ones


def _policy() -> Any:
    from config.workorders import WorkOrderSettings

    return WorkOrderSettings().policy()


def test_workers_at_once_take_each_job_exactly_once(
        session_factory: sessionmaker[Session], tmp_path: Path, now: datetime,
        call: str) -> None:
    rels = [f"20261127/{CALL}_{CALL[:-1]}{9 + i}_seat0{1 + i % 2}.wav" for i in range(6)]
    for rel in rels:
        _wav(tmp_path / rel)
    heard = FakeRecogniser(_vosk(("네", 1.0)))
    service = _service(session_factory, tmp_path, heard, now)
    ids = [_index(session_factory, rel, now, service) for rel in rels]
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            while service.work_one():
                pass
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=drain) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(p.name for _, p in heard.calls) == sorted(Path(r).name for r in rels)
    assert {(_job(session_factory, r).state, _job(session_factory, r).attempts)
            for r in ids} == {("done", 1)}


class CountingBus(FakeBus):
    """Sets `got[n]` when the n-th message is published (after its commit)."""

    def __init__(self) -> None:
        super().__init__()
        self.got = [threading.Event() for _ in range(3)]

    def publish(self, topic: str, payload: Any, *, qos: int = 1, retain: bool = False) -> None:
        super().publish(topic, payload, qos=qos, retain=retain)
        self.got[min(len(self.sent), len(self.got)) - 1].set()


async def test_the_service_sweeps_then_works_in_its_own_threads_until_cancelled(
        session_factory: sessionmaker[Session], storage: Path, now: datetime,
        call: str) -> None:
    import asyncio

    heard = FakeRecogniser(_vosk(("律师", 1.0)))
    rid = _index(session_factory, WAV, now, None)  # indexed while transcription was off
    bus = CountingBus()
    service = _service(session_factory, storage, heard, now, bus)
    task = asyncio.create_task(service.run(), name="transcription")
    try:
        # each transcript's alert is published after its commit: the job is done by then
        assert await asyncio.to_thread(bus.got[0].wait, 30), "the swept job was not done"
        assert _job_state(session_factory, rid) == "done"
        other = _index(session_factory, WAV2, now, service)  # queued and woken at once
        assert await asyncio.to_thread(bus.got[1].wait, 30), "the new job was not done"
        assert _job_state(session_factory, other) == "done"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert service.swept == {"requeued": 0, "failed": 0, "queued": 1}
    assert len(heard.calls) == 2
    # the pool's own threads did the work, not the event loop's nor its default executor
    assert all(name.startswith("transcribe") for name in heard.threads), heard.threads
    workers = [t for t in threading.enumerate() if t.name.startswith("transcribe")]
    for t in workers:  # they stop once cancelled (at the next poll or chunk)
        t.join(10)
    assert not any(t.is_alive() for t in workers)
    assert service.stats()["done"] == 2


def _job_state(sessions: sessionmaker[Session], recording_id: int) -> str | None:
    with sessions() as s:
        return s.scalars(select(TranscriptionJob.state)
                         .where(TranscriptionJob.recording_id == recording_id)).first()


def test_a_queued_job_past_a_lowered_attempt_limit_fails_at_start(
        session_factory: sessionmaker[Session], storage: Path, now: datetime,
        call: str) -> None:
    broken = FakeRecogniser(RuntimeError("no"))
    service = _service(session_factory, storage, broken, now, transcribe_attempts=3)
    rid = _index(session_factory, WAV, now, service)
    assert service.work_one() and service.work_one()
    assert (_job(session_factory, rid).state, _job(session_factory, rid).attempts) == \
        ("queued", 2)
    lowered = _service(session_factory, storage, broken, now, transcribe_attempts=2)
    assert lowered.sweep() == {"requeued": 0, "failed": 1, "queued": 0}
    job = _job(session_factory, rid)
    assert job.state == "failed" and "no attempts left" in (job.last_error or "")
