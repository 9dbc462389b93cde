"""Post-call transcription (issue 13): every indexed recording is transcribed by a bounded pool
of worker threads of its own, and a transcript holding alert keywords alerts the supervisors.

- **Resumable:** the queue is the transcription_jobs table, not memory. A recording gets its
  job in the unit of work that indexes it (cti.db.recorder_store.DbRecordingIndex), and the
  sweep at start gives one to every recording without (indexed while the CTI was down or
  transcription off) and puts back jobs a dead process left running.
- **Bounded, off the call path:** [speech] transcribe_workers threads (its own executor, never
  the event loop's default one nor the live calls' DecoderPool: a live call never waits for a
  transcription), each at a lower CPU priority (nice +10 on its thread) than the live decoders.
- **What it hears:** the recording's wav (one leg, both directions as MixMonitor mixed them,
  8 kHz) through the full-vocabulary recogniser of the call's language (calls.language), or the
  first configured model's when the call's language has none. Words are kept with timings.
- **Alerts:** speech.keywords finds [speech] alert_keywords; a hit writes a keyword_alerts row
  in the transcript's unit of work and the notifier's outbox sends it to
  hotline/supervisors/alerts after the commit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from config.speech import SpeechSettings
from cti.db import transcripts as store
from cti.db.transcripts import Claimed, NewAlert
from recorder.naming import resolve
from speech import jobs
from speech.keywords import excerpt, find_keywords, words_of

log = logging.getLogger(__name__)

IDLE_POLL_S = 2.0      # a worker with nothing queued looks again this often (or when woken)
STATS_EVERY_S = 10.0   # the counts for the status file, refreshed at most this often when idle
SWEEP_RETRY_S = 5.0
CHUNK_S = 0.5          # audio fed to the recogniser per step (the stop flag is seen between)
NICE = 10


class Stopped(Exception):
    """The service stopped in the middle of a job: it stays running in the table, and the next
    start's sweep queues it again."""


class AlertOutbox(Protocol):
    def keyword_alert(self, session: Session, alert: NewAlert) -> None: ...


# (language, wav path, stop flag) -> vosk's result {"text", "result": [words]}
Recognise = Callable[[str, Path, threading.Event], dict[str, Any]]


def read_wav(path: Path) -> tuple[int, bytes]:
    """(rate, 16-bit mono PCM) of a recording; ValueError for any other format."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path.name}: {w.getnchannels()} channel(s) of "
                             f"{8 * w.getsampwidth()} bits, not 16-bit mono")
        rate = w.getframerate()
        if rate not in (8000, 16000):
            raise ValueError(f"{path.name}: {rate} Hz, not 8000 or 16000")
        return rate, w.readframes(w.getnframes())


def vosk_recogniser(models: Any) -> Recognise:
    """The real recogniser: speech.models.ModelRegistry's model for the language (loaded once
    per process, shared with the live calls), a full-vocabulary speech.recognize.Recognizer."""
    def recognise(lang: str, path: Path, stop: threading.Event) -> dict[str, Any]:
        from speech.recognize import Recognizer  # imports vosk

        rate, pcm = read_wav(path)
        rec = Recognizer(models.get(lang), rate, [])
        step = int(rate * CHUNK_S) * 2
        for i in range(0, len(pcm), step):
            if stop.is_set():
                raise Stopped()
            rec.feed(pcm[i:i + step])
        return rec.finish()
    return recognise


def _lower_priority() -> None:
    """This thread only (Linux: a thread is a task with its own nice value)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    except (OSError, AttributeError):
        pass


class TranscriptionService:
    def __init__(self, sessions: sessionmaker[Session], settings: SpeechSettings,
                 storage_dir: Path, recognise: Recognise, *, alerts: AlertOutbox | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if not settings.models:
            raise ValueError("transcription needs a model ([speech.models])")
        self.sessions = sessions
        self.settings = settings
        self.storage_dir = storage_dir
        self.recognise = recognise
        self.alerts = alerts
        self.clock = clock
        self.workers = max(1, settings.transcribe_workers)
        self.languages = tuple(settings.models)  # configuration order: the first is the default
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._counted_at = 0.0
        self._busy = 0
        self.swept: dict[str, int] | None = None
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="transcribe")

    # ------------------------------------------------------------------------- the queue

    def enqueue_in(self, session: Session, recording_id: int) -> None:
        """Queue a recording in the unit of work that indexes it (call wake() after commit)."""
        store.enqueue(session, recording_id, self.clock())

    def wake(self) -> None:
        self._wake.set()

    def sweep(self) -> dict[str, int]:
        """The start's sweep (blocking); run before any worker takes a job."""
        with self.sessions.begin() as s:
            done = store.sweep_at_start(s, self.clock(), self.settings.transcribe_attempts)
        self.swept = done
        self._refresh_counts(force=True)
        return done

    # ----------------------------------------------------------------------------- work

    def work_one(self) -> bool:
        """Claim and transcribe one job (blocking); False when none is queued."""
        with self.sessions.begin() as s:
            job = store.claim_next(s, self.clock(), self.settings.transcribe_attempts)
        if job is None:
            return False
        with self._lock:
            self._busy += 1
        try:
            self._run(job)
        finally:
            with self._lock:
                self._busy -= 1
            self._refresh_counts(force=True)
        return True

    def _run(self, job: Claimed) -> None:
        if job.deleted:
            self._fail(job, "the recording was deleted under retention", final=True)
            return
        lang = jobs.pick_language(job.call_lang, self.languages)
        assert lang is not None  # a model is configured (checked at construction)
        path = resolve(self.storage_dir, job.rel_path)
        started = time.monotonic()
        try:
            if not path.is_file():
                raise FileNotFoundError(f"{job.rel_path} is not on disk")
            result = self.recognise(lang, path, self._stop)
        except Stopped:
            log.info("transcription of recording %d stopped with the CTI; queued again at "
                     "the next start", job.recording_id)
            return
        except Exception as exc:
            self._fail(job, exc, final=isinstance(exc, FileNotFoundError | ValueError))
            return
        words = words_of(result)
        hits = find_keywords(words, self.settings.alert_keywords)
        text = " ".join(str(result.get("text", "")).split()) or " ".join(w.w for w in words)
        try:
            with self.sessions.begin() as s:
                alert = store.finish(
                    s, job, lang=lang, model=str(self.settings.models[lang]), text=text,
                    words=[w.doc() for w in words], hits=[h.doc() for h in hits],
                    excerpt=excerpt(words, hits), now=self.clock(),
                    on_alert=self.alerts.keyword_alert if self.alerts is not None else None)
        except Exception as exc:
            log.exception("transcript of recording %d not stored call_id=%s",
                          job.recording_id, job.call_id)
            self._fail(job, exc)
            return
        log.info("recording %d transcribed in %.1fs call_id=%s lang=%s words=%d alert=%s",
                 job.recording_id, time.monotonic() - started, job.call_id, lang, len(words),
                 alert.alert_id if alert is not None else None)

    def _fail(self, job: Claimed, error: BaseException | str, *, final: bool = False) -> None:
        try:
            with self.sessions.begin() as s:
                store.fail(s, job, error, self.clock(), self.settings.transcribe_attempts,
                           final=final)
        except Exception:  # the database is away: the job stays running; the next start
            log.exception("transcription failure of recording %d not recorded",  # requeues it
                          job.recording_id)

    def _worker(self, n: int) -> None:
        _lower_priority()
        while not self._stop.is_set():
            try:
                if self.work_one():
                    continue
                self._refresh_counts()
            except Exception:  # the database is away, say: try again after a pause
                log.exception("transcription worker %d", n)
            self._wake.wait(IDLE_POLL_S)
            self._wake.clear()

    async def run(self) -> None:
        """The sweep (retried until the database answers), then the workers, until cancelled;
        on the way out the workers stop between two chunks of audio."""
        loop = asyncio.get_running_loop()
        try:
            while self.swept is None:
                try:
                    await loop.run_in_executor(self._executor, self.sweep)
                except Exception:
                    log.exception("transcription sweep failed; trying again")
                    await asyncio.sleep(SWEEP_RETRY_S)
            await asyncio.gather(*(loop.run_in_executor(self._executor, self._worker, i)
                                   for i in range(self.workers)))
        finally:
            self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---------------------------------------------------------------------------- status

    def _refresh_counts(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._counted_at < STATS_EVERY_S:
            return
        self._counted_at = now
        try:
            with self.sessions() as s:
                counts = store.counts(s)
        except Exception:
            log.warning("transcription counts unavailable", exc_info=True)
            return
        with self._lock:
            self._counts = counts

    def stats(self) -> dict[str, Any]:
        """For cti.status.json (read on the event loop: no database here, the last counts)."""
        with self._lock:
            return {"workers": self.workers, "busy": self._busy, **self._counts,
                    "swept": self.swept}
