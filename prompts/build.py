"""Build-time prompt synthesis: catalog texts -> 8 kHz wav files in the cache dir + index.json.

Never imported by a call path: the IVR only reads the index (`prompts.index`). The command is
`hotline prompts build` (hotline/cli.py), which passes the settings in.

Pipeline per distinct (voice, rate, text): pyttsx3 (espeak-ng) writes a 22 kHz wav into a
private temp dir; the build waits for its size to settle, then one sox run trims the silence
espeak leaves around the speech, resamples to 8 kHz mono 16-bit signed PCM (what Asterisk's
format_wav plays), measures it, normalises to -3 dBFS and pads a short tail so pieces join
naturally; the result is checked and renamed atomically to `<cache_dir>/<key>.wav`.

Synthesis runs in long-lived worker subprocesses, one pyttsx3 engine each, behind the
`Synthesiser` port. Not a ProcessPoolExecutor: it cannot kill one stuck worker (a running task
cannot be cancelled) and one crashed worker breaks the whole pool. Here a worker that overruns
its deadline or dies is killed and replaced, and a retry can ask for a fresh engine (espeak can
be initialised only once per process, so a fresh engine means a fresh process).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from array import array
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from prompts.catalog import Catalog
from prompts.index import AUDIO_SUFFIX, INDEX_FILE, PromptIndex

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
MIN_SPEECH_SECONDS = 0.1
MIN_PEAK = 0.01
"""Peak amplitude (full scale = 1.0) below which a recording counts as silent."""

_WAV_HEADER_BYTES = 44


class BuildError(Exception):
    """The prompts could not be built; the message names the prompt, language and text."""


class SynthesisError(Exception):
    """One synthesis attempt failed; the build may retry."""


class SynthesisTimeout(SynthesisError):
    """One synthesis attempt overran its deadline; the worker was killed."""


class VoiceError(Exception):
    """The synthesiser does not know the voice; retrying cannot help."""


class Synthesiser(Protocol):
    """Port: turns text into a wav file (any rate and width: the build converts it)."""

    def synthesise(self, text: str, voice: str, rate: int, out_path: Path, *,
                   timeout: float, fresh: bool) -> None:
        """Write `text` spoken by `voice` at `rate` words per minute to `out_path`.

        Return within about `timeout` seconds or raise SynthesisTimeout. `fresh` asks for an
        engine that has not served earlier calls. Raise SynthesisError when an attempt fails
        and VoiceError when the voice is unknown. The file may still be incomplete or silent on
        return; the build checks it.
        """
        ...


def prompt_key(voice: str, rate: int, text: str) -> str:
    """The cache key: the first 20 hex chars of sha256 of `voice|rate|text`."""
    return hashlib.sha256(f"{voice}|{rate}|{text}".encode()).hexdigest()[:20]


# ---------------------------------------------------------------- the pyttsx3 adapter

def _worker_main(request_fd: int, reply_fd: int) -> None:
    """Runs in a worker subprocess: one pyttsx3 engine, requests over a pipe until EOF/None."""
    requests = Connection(request_fd, writable=False)
    replies = Connection(reply_fd, readable=False)
    try:
        import pyttsx3

        engine = pyttsx3.init("espeak")
        errors: list[BaseException | None] = []
        engine.connect("error", lambda **event: errors.append(event.get("exception")))
        # The driver proxy starts out "busy" and queues commands until a run loop has run once;
        # after this empty run, setProperty takes effect (and fails) synchronously.
        engine.runAndWait()
    except Exception as exc:  # anything: report it to the parent instead of dying silently
        replies.send(("init-error", f"{type(exc).__name__}: {exc}"))
        return
    replies.send(("ready", os.getpid()))
    while True:
        try:
            request = requests.recv()
        except EOFError:
            return
        if request is None:
            return
        text, voice, rate, out_path = request
        errors.clear()
        engine.setProperty("voice", voice)
        if errors:
            replies.send(("bad-voice", f"{errors[0]}"))
            continue
        engine.setProperty("rate", rate)
        engine.save_to_file(text, out_path)
        engine.runAndWait()
        replies.send(("error", "; ".join(map(str, errors))) if errors else ("ok", None))


# A plain interpreter running one function, rather than multiprocessing's spawn: spawn re-runs
# the parent's __main__ in the child, which breaks under `python -` and re-runs unguarded scripts.
_WORKER_CODE = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from prompts.build import _worker_main; "
                "_worker_main(int(sys.argv[2]), int(sys.argv[3]))")
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


class _Worker:
    """One synthesis subprocess and its two pipes."""

    def __init__(self) -> None:
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _WORKER_CODE, _PACKAGE_ROOT, str(request_r), str(reply_w)],
                pass_fds=(request_r, reply_w), stdin=subprocess.DEVNULL,
                # The espeak driver prints "Audio saved to ..." for every file.
                stdout=subprocess.DEVNULL, close_fds=True)
        except BaseException:
            for fd in (request_w, reply_r):
                os.close(fd)
            raise
        finally:
            os.close(request_r)
            os.close(reply_w)
        self._requests = Connection(request_w, readable=False)
        self._replies = Connection(reply_r, writable=False)
        self._ready = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def _receive(self, timeout: float) -> tuple[str, Any]:
        try:
            if not self._replies.poll(max(timeout, 0.0)):
                raise SynthesisTimeout(f"no answer from synthesis worker within {timeout:.3g} s")
            reply: tuple[str, Any] = self._replies.recv()
        except (EOFError, OSError):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(1)
            raise SynthesisError(f"synthesis worker died (exit code {self.process.returncode})") \
                from None
        return reply

    def call(self, request: tuple[str, str, int, str], timeout: float) -> None:
        # Start-up counts against the same deadline: the per-prompt deadline is a hard one.
        deadline = time.monotonic() + timeout
        if not self._ready:
            status, detail = self._receive(timeout)
            if status != "ready":
                raise SynthesisError(f"synthesis worker failed to start: {detail}")
            self._ready = True
        try:
            self._requests.send(request)
        except OSError as exc:
            raise SynthesisError(f"synthesis worker is gone: {exc}") from exc
        status, detail = self._receive(deadline - time.monotonic())
        if status == "bad-voice":
            raise VoiceError(detail)
        if status != "ok":
            raise SynthesisError(f"pyttsx3 reported: {detail}")

    def stop(self, grace: float = 1.0) -> None:
        with contextlib.suppress(OSError):
            self._requests.send(None)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(grace)
        self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self._requests.close()
        self._replies.close()


class Pyttsx3Synthesiser:
    """The real `Synthesiser`: pyttsx3 with the espeak driver in `workers` subprocesses.

    Thread-safe: up to `workers` calls run at once, each on its own worker. Use it as a context
    manager (or call `close`) to stop the workers.
    """

    def __init__(self, workers: int = 2) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        self._closed = False
        self.started = 0
        """How many worker processes were started (fresh engines included)."""
        self._lock = threading.Lock()
        for _ in range(workers):
            self._idle.put(None)  # started on first use, so an all-cached build spawns nothing

    def synthesise(self, text: str, voice: str, rate: int, out_path: Path, *,
                   timeout: float, fresh: bool) -> None:
        if self._closed:
            raise RuntimeError("synthesiser is closed")
        worker = self._idle.get()
        try:
            if worker is not None and (fresh or not worker.alive()):
                worker.kill()
                worker = None
            if worker is None:
                try:
                    worker = _Worker()
                except OSError as exc:  # out of processes or fds: worth another try later
                    raise SynthesisError(f"cannot start a synthesis worker: {exc}") from exc
                with self._lock:
                    self.started += 1
            worker.call((text, voice, rate, str(out_path)), timeout)
        except SynthesisError:
            # A timed-out worker may still be writing; a crashed one is useless. Replace it.
            if worker is not None:
                worker.kill()
            worker = None
            raise
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        """Stop every worker (they are all idle once no call is running)."""
        self._closed = True
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                return
            if worker is not None:
                worker.stop()

    def __enter__(self) -> Pyttsx3Synthesiser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- checks and conversion

@dataclass(frozen=True)
class _Stats:
    seconds: float
    peak: float


def _wait_stable(path: Path, deadline: float, interval: float = 0.005,
                 empty_grace: float = 0.1) -> int:
    """Wait until `path` exists with more than a header and the same size on two polls.

    pyttsx3 2.99 can return from runAndWait before the file is complete, and sometimes writes
    a header with no audio at all. A file stuck at header size for `empty_grace` seconds is
    given up on at once: waiting out the whole deadline made every such retry cost seconds.
    """
    last = -1
    empty_since: float | None = None
    while True:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = -1
        now = time.monotonic()
        if size > _WAV_HEADER_BYTES and size == last:
            return size
        if 0 <= size <= _WAV_HEADER_BYTES:
            empty_since = now if empty_since is None else empty_since
            if now - empty_since >= empty_grace:
                raise SynthesisError(f"empty file ({size} bytes)")
        else:
            empty_since = None
        if now >= deadline:
            if size < 0:
                raise SynthesisError("no file was written")
            if size <= _WAV_HEADER_BYTES:
                raise SynthesisError(f"empty file ({size} bytes)")
            raise SynthesisError("file size still changing at the deadline")
        last = size
        time.sleep(interval)


_STAT_RE = re.compile(r"^(Length \(seconds\)|Maximum amplitude|Minimum amplitude):\s*(\S+)",
                      re.MULTILINE)


def _convert(sox: str, raw: Path, out: Path, timeout: float) -> _Stats:
    """One sox run: trim silence, 8 kHz mono s16 PCM, measure, normalise, pad the tail."""
    cmd = [
        sox, "-D", str(raw), "-b", "16", "-e", "signed-integer", "-c", "1",
        "-r", str(SAMPLE_RATE), "-t", "wav", str(out),
        # Trim espeak's ~0.3 s end pause (and any lead-in) so that concatenated pieces
        # ("一" "百" "二" "十") sound like one number rather than a list.
        "silence", "1", "0.005", "0.1%", "reverse", "silence", "1", "0.005", "0.1%", "reverse",
        # Headroom before resampling, which would otherwise clip espeak's full-scale peaks.
        "gain", "-6", "rate", str(SAMPLE_RATE),
        # Measured before normalising, which would blow faint noise up to a loud peak.
        "stat",
        "gain", "-n", "-3", "pad", "0.01", "0.06",
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                              timeout=max(timeout, 1.0), check=False)
    except subprocess.TimeoutExpired:
        raise SynthesisTimeout("sox did not finish in time") from None
    if done.returncode != 0:
        raise SynthesisError(f"sox failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    found = dict(_STAT_RE.findall(done.stderr))
    try:
        seconds = float(found["Length (seconds)"])
        peak = max(abs(float(found["Maximum amplitude"])), abs(float(found["Minimum amplitude"])))
    except (KeyError, ValueError):
        raise SynthesisError(f"cannot read sox stat output: {done.stderr.strip()[-300:]}") \
            from None
    return _Stats(seconds, peak)


def check_wav(path: Path) -> str | None:
    """Why `path` is not a playable prompt (8 kHz mono 16-bit PCM, > 0.1 s, not silent), or
    None if it is fine."""
    try:
        with wave.open(str(path), "rb") as w:
            params = w.getparams()
            frames = w.readframes(params.nframes)
    except (OSError, EOFError, wave.Error) as exc:
        return f"unreadable wav: {exc}"
    if (params.nchannels, params.sampwidth, params.framerate, params.comptype) != \
            (1, 2, SAMPLE_RATE, "NONE"):
        return (f"wrong format: {params.nchannels} ch, {params.sampwidth * 8} bit, "
                f"{params.framerate} Hz, {params.comptype}")
    if params.nframes < MIN_SPEECH_SECONDS * SAMPLE_RATE or len(frames) < 2 * params.nframes:
        return f"too short: {params.nframes} frames"
    samples = array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()  # wav is little-endian
    if max(max(samples), -min(samples)) < MIN_PEAK * 32768:
        return "silent"
    return None


# ---------------------------------------------------------------- the build

@dataclass
class _Job:
    key: str
    voice: str
    text: str
    uses: list[tuple[str, str]] = field(default_factory=list)  # (id, lang) sharing this audio

    def describe(self) -> str:
        ids = ", ".join(f"{i!r} ({lang})" for i, lang in self.uses)
        return f"prompt {ids} with voice {self.voice!r}, text {self.text!r}"


@dataclass
class _Counters:
    synthesised: int = 0
    reused: int = 0
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *, synthesised: int = 0, reused: int = 0, retries: int = 0) -> None:
        with self.lock:
            self.synthesised += synthesised
            self.reused += reused
            self.retries += retries


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes it 0600; the index is no secret and the CTI, which runs as its own user
        # (hotline/stack.py start_cti), reads what root's `hotline up` built: 0644 like the audio
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def build_prompts(catalog: Catalog, cache_dir: Path, voices: Mapping[str, str], rate: int, *,
                  jobs: int = 2, synthesiser: Synthesiser | None = None, attempts: int = 4,
                  attempt_timeout: float = 20.0, prompt_deadline: float = 60.0,
                  sox: str = "sox") -> PromptIndex:
    """Synthesise every catalog entry that has no valid cached file, then write index.json.

    Keys are `prompt_key(voices[lang], rate, text)`; a valid `<cache_dir>/<key>.wav` is reused.
    Each missing file gets up to `attempts` tries (a fresh engine from the third on), each
    within `attempt_timeout` s and all within `prompt_deadline` s; then BuildError names the
    prompt id, language and text. `jobs` prompts are produced at once; without a
    `synthesiser`, a `Pyttsx3Synthesiser(jobs)` is started and stopped here. Files of ids no
    longer in the catalog are left in place (other checkouts may share the cache).
    """
    started = time.monotonic()
    if jobs < 1 or attempts < 1:
        raise ValueError("jobs and attempts must be >= 1")
    if shutil.which(sox) is None:
        raise BuildError(f"sox not found ({sox!r}): install sox to build the prompts")
    missing = sorted({lang for _, lang, _ in catalog.entries()} - set(voices))
    if missing:
        raise BuildError(f"no voice configured for language(s) {', '.join(missing)} "
                         f"(settings [prompts] voices)")
    cache_dir.mkdir(parents=True, exist_ok=True)

    table: dict[str, dict[str, str]] = {}
    by_key: dict[str, _Job] = {}
    for prompt_id, lang, text in catalog.entries():
        key = prompt_key(voices[lang], rate, text)
        table.setdefault(lang, {})[prompt_id] = key
        by_key.setdefault(key, _Job(key, voices[lang], text)).uses.append((prompt_id, lang))

    counters = _Counters()
    todo: list[_Job] = []
    for job in by_key.values():
        if check_wav(cache_dir / f"{job.key}{AUDIO_SUFFIX}") is None:
            counters.add(reused=1)
        else:
            todo.append(job)

    if todo:
        own = synthesiser is None
        synth: Synthesiser = Pyttsx3Synthesiser(jobs) if synthesiser is None else synthesiser
        try:
            with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as tmp:
                _run_jobs(todo, synth, Path(tmp), cache_dir, rate, jobs, attempts,
                          attempt_timeout, prompt_deadline, sox, counters)
        finally:
            if own and isinstance(synth, Pyttsx3Synthesiser):
                synth.close()

    index = PromptIndex(cache_dir=cache_dir, voices=dict(voices), rate=rate, prompts=table)
    _write_atomic(cache_dir / INDEX_FILE,
                  (json.dumps(index.to_json(), ensure_ascii=False, indent=1) + "\n").encode())
    log.info("prompts built in %s: synthesised %d, reused %d, retried %d, %.1f s",
             cache_dir, counters.synthesised, counters.reused, counters.retries,
             time.monotonic() - started)
    return index


def _run_jobs(todo: Sequence[_Job], synth: Synthesiser, tmp: Path, cache_dir: Path, rate: int,
              jobs: int, attempts: int, attempt_timeout: float, prompt_deadline: float,
              sox: str, counters: _Counters) -> None:
    stop = threading.Event()

    def one(job: _Job) -> None:
        if not stop.is_set():
            _produce(job, synth, tmp, cache_dir, rate, attempts, attempt_timeout,
                     prompt_deadline, sox, counters, stop)

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="prompt-build")
    futures: list[Future[None]] = [pool.submit(one, job) for job in todo]
    try:
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            exc = failed[0].exception()
            assert exc is not None
            raise exc
    finally:
        # Fail fast, on an error or Ctrl-C alike: queued jobs are dropped and running ones stop
        # after their current attempt, rather than the pool working through the whole catalog.
        stop.set()
        for f in futures:
            f.cancel()
        pool.shutdown(wait=True)


def _produce(job: _Job, synth: Synthesiser, tmp: Path, cache_dir: Path, rate: int,
             attempts: int, attempt_timeout: float, prompt_deadline: float, sox: str,
             counters: _Counters, stop: threading.Event) -> None:
    deadline = time.monotonic() + prompt_deadline
    final = cache_dir / f"{job.key}{AUDIO_SUFFIX}"
    failures: list[str] = []
    for attempt in range(1, attempts + 1):
        if stop.is_set():
            return  # the build is already failing or interrupted
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            failures.append("prompt deadline reached")
            break
        raw = tmp / f"{job.key}.{attempt}.raw.wav"
        converted = tmp / f"{job.key}.{attempt}{AUDIO_SUFFIX}"
        try:
            synth.synthesise(job.text, job.voice, rate, raw,
                             timeout=min(attempt_timeout, remaining), fresh=attempt >= 3)
            _wait_stable(raw, min(time.monotonic() + 2.0, deadline))
            stats = _convert(sox, raw, converted, deadline - time.monotonic())
            if stats.seconds <= MIN_SPEECH_SECONDS:
                raise SynthesisError(f"only {stats.seconds:.3f} s of sound")
            if stats.peak < MIN_PEAK:
                raise SynthesisError(f"silent (peak {stats.peak:.4f})")
            problem = check_wav(converted)
            if problem is not None:
                raise SynthesisError(f"converted file unusable: {problem}")
            os.replace(converted, final)
            counters.add(synthesised=1, retries=attempt - 1)
            if attempt > 1:
                log.info("%s: succeeded on attempt %d after: %s", job.describe(), attempt,
                         "; ".join(failures))
            return
        except VoiceError as exc:
            raise BuildError(f"cannot synthesise {job.describe()}: unknown voice: {exc}") \
                from exc
        except SynthesisError as exc:
            failures.append(f"attempt {attempt}: {exc}")
            log.debug("%s: attempt %d failed: %s", job.describe(), attempt, exc)
        finally:
            for path in (raw, converted):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
    raise BuildError(f"could not synthesise {job.describe()} "
                     f"({len(failures)} failures: {'; '.join(failures)})")
