"""The CTI's AudioSocket listener (issue 13): a menu the caller may speak to, end to end.

The IVR's FastAGI session asks for a listening (ivr.speech_port) and connects the call to it;
Asterisk connects here and says the uuid. A narrowband leg (G.711) runs the application,
`AudioSocket(<uuid>,<host:port>)`, which carries 8 kHz only (kind 0x10); a wideband leg (G.722,
slin16) is bridged by `Dial(AudioSocket/<host:port>/<uuid>/c(slin16))` to the channel driver,
which carries 16 kHz (kind 0x12), so the recogniser hears what the caller's phone sent. The
listening's rate is fixed when the IVR asks ([speech] sample_rate caps it). From then on,
until one of them ends it:

- the menu prompt's audio goes to the caller from here at the listening's rate (resampled
  from the prompt file's), paced at 20 ms a frame, and stops the moment the caller speaks (vosk
  hears a word) or presses a key: barge-in is ours, not Asterisk's; after the prompt, silence
  frames keep the line (and AudioSocket()'s 2 s inactivity check) alive;
- the caller's audio goes to a vosk Recognizer over the menu's grammar, in a thread pool sized
  by [speech] max_decoders, never on the event loop; the call holds a DecoderPool lease from
  the moment it asks (none free: keys only, counted);
- it ends on a key (a DTMF frame, kind 0x03: the application forwards the caller's keys, and
  the channel driver gets them across Dial's bridge), on the end of an utterance (the intent
  is voted), on `listen_seconds` of silence after the prompt, or on the caller's hangup. Then
  the outcome is set, a hangup frame is sent and the socket closed, so AudioSocket() returns 0
  (or the AudioSocket channel hangs up and Dial returns) and the AGI session goes on.

Caller audio and what vosk makes of it stay here: the IVR gets a key from the flow's own options
or a DTMF key, and a confidence. A connection that does not start with a uuid we handed out is
closed unread (counted); with [fastagi] peer_uid, one from a process other than Asterisk's is
refused before it is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import uuid
import wave
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

from cti.audiosocket.protocol import (
    HANGUP,
    KIND_OF_RATE,
    Frame,
    FrameReader,
    Kind,
    ProtocolError,
    audio,
)
from ivr.agi_peer import Endpoint, proc_peer_uid
from ivr.speech_port import ListenOutcome, ListenRequest
from speech.grammar import Grammar, build_grammar
from speech.intent import Thresholds, vote
from speech.models import ModelRegistry
from speech.pool import DecoderPool, Lease

log = logging.getLogger(__name__)

FRAME_S = 0.020
UUID_TIMEOUT_S = 5.0
# a caller who started speaking has this long to finish (vosk ends an utterance on a pause)
MAX_UTTERANCE_S = 8.0
# no listening lasts longer, prompt included (a stuck peer never holds a decoder for ever)
MAX_LISTEN_S = 90.0
DECODE_RATES = (8000, 16000)  # what the Recognizer takes; vosk resamples for the model
LISTEN_RATES = (8000, 16000)  # AudioSocket() gives 8000; the channel driver's c(slin16) 16000
WARM_EVERY_S = 1.0  # how soon a flow change that adds a language has its model loaded

PeerUidOf = Callable[[Endpoint, Endpoint], int | None]


@lru_cache(maxsize=256)
def _grammar(choices: tuple[tuple[str, tuple[str, ...]], ...]) -> Grammar:
    return build_grammar(dict(choices))


def grammar_of(choices: Mapping[str, tuple[str, ...]]) -> Grammar:
    """A menu's grammar, built once per distinct set of phrases."""
    return _grammar(tuple((k, tuple(v)) for k, v in choices.items()))


@lru_cache(maxsize=512)
def prompt_audio(path: Path) -> tuple[int, bytes]:
    """(rate, 16-bit mono PCM) of a prompt WAV; the cache's files are named by their content, so
    a path's audio never changes. ValueError on a file that is not 16-bit mono at 8 or 16 kHz."""
    with wave.open(str(path), "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        if width != 2 or channels != 1 or rate not in KIND_OF_RATE:
            raise ValueError(f"{path}: {channels} channel(s) of {8 * width}-bit at {rate} Hz, "
                             "not 16-bit mono slin")
        return rate, w.readframes(w.getnframes())


def resample(pcm: bytes, rate: int, to: int) -> bytes:
    """16-bit mono PCM from `rate` to `to`, for 8 <-> 16 kHz only: up, each new sample halfway
    between its neighbours; down, each pair averaged (a crude low-pass, enough for prompts: a
    recogniser never hears them). Pure Python, run once per prompt file and rate (cached)."""
    if rate == to:
        return pcm
    x = array("h")
    x.frombytes(pcm[:len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        x.byteswap()
    if (rate, to) == (8000, 16000):
        out = array("h", bytes(2 * 2 * len(x)))
        out[0::2] = x
        nxt = x[1:] + x[-1:]
        out[1::2] = array("h", [(a + b) >> 1 for a, b in zip(x, nxt, strict=True)])
    elif (rate, to) == (16000, 8000):
        out = array("h", [(x[i] + x[i + 1]) >> 1 for i in range(0, len(x) - 1, 2)])
    else:
        raise ValueError(f"no resampling from {rate} Hz to {to} Hz")
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


@lru_cache(maxsize=512)
def prompt_at(path: Path, rate: int) -> bytes:
    """A prompt's PCM at `rate` (the listening's)."""
    r, pcm = prompt_audio(path)
    return resample(pcm, r, rate)


def _join_prompts(paths: tuple[Path, ...], rate: int) -> bytes:
    return b"".join(prompt_at(p, rate) for p in paths)


class Listening:
    """One menu's listening: created when the IVR asks, run when Asterisk connects."""

    def __init__(self, server: AudioSocketServer, request: ListenRequest, lease: Lease,
                 grammar: Grammar, rate: int, prompt_pcm: bytes) -> None:
        self._uuid = str(uuid.uuid4())
        self._server = server
        self.request = request
        self._lease = lease
        self.grammar = grammar
        self._listen_rate = rate
        self.prompt_pcm = prompt_pcm
        self._connected = False
        self._done: asyncio.Future[ListenOutcome] = asyncio.get_running_loop().create_future()
        self._ended = asyncio.Event()
        self._rec: _Decoder | None = None
        self._vote_lock = asyncio.Lock()
        self._audio = bytearray()
        self._have_audio = asyncio.Event()
        self._rate: int | None = None
        self.speaking_at: float | None = None   # loop time the caller's first word was heard
        self.prompt_stopped = False

    @property
    def uuid(self) -> str:
        return self._uuid

    @property
    def rate(self) -> int:
        return self._listen_rate

    @property
    def connected(self) -> bool:
        return self._connected

    async def outcome(self) -> ListenOutcome:
        return await asyncio.shield(self._done)

    def cancel(self) -> None:
        """The IVR is done with it (or gave up): never connected means no outcome yet."""
        self._decide(ListenOutcome(connected=False))
        self._server._forget(self._uuid)
        self._lease.release()

    def _decide(self, outcome: ListenOutcome) -> None:
        if not self._done.done():
            self._done.set_result(outcome)
        self._ended.set()

    # ------------------------------------------------------------------------------ the session

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  frames: FrameReader, early: list[Frame]) -> None:
        for frame in early:   # what came in the uuid's packet
            self._on_frame(frame)
        call = self.request.call_id
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(coro, name=f"audiosocket-{name}-{call}")
            for name, coro in (("in", self._receive(reader, frames)), ("decode", self._decode()),
                               ("out", self._send(writer)))]
        try:
            async with asyncio.timeout(MAX_LISTEN_S):
                ended = asyncio.create_task(self._ended.wait(),
                                            name=f"audiosocket-end-{self.request.call_id}")
                tasks.append(ended)
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            log.warning("call %s: listening cut after %.0f s", self.request.call_id,
                        MAX_LISTEN_S)
        finally:
            failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for t in failed:
                exc = t.exception()
                if not isinstance(exc, ConnectionError | ProtocolError):
                    log.error("call %s: %s failed: %r", self.request.call_id, t.get_name(), exc)
            if not self._done.done():
                await self._final_vote()   # whatever was heard so far, else nothing
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(HANGUP)
                await writer.drain()
            self._lease.release()

    async def _receive(self, reader: asyncio.StreamReader, frames: FrameReader) -> None:
        while not self._ended.is_set():
            data = await reader.read(8192)
            if not data:
                self._decide(ListenOutcome(hangup=True))
                return
            for frame in frames.feed(data):
                self._on_frame(frame)

    def _on_frame(self, frame: Frame) -> None:
        rate = frame.rate
        if rate is not None:
            if self._rate is None:
                self._rate = rate
                self._server.rates[rate] += 1
            if rate == self._rate and rate in DECODE_RATES:
                self._audio += frame.payload
                self._have_audio.set()
            return
        if frame.kind == Kind.DTMF:
            digit = frame.digit
            if digit is not None:
                self.prompt_stopped = True
                self._decide(ListenOutcome(digit=digit))
            return
        if frame.kind in (Kind.HANGUP, Kind.ERROR):
            self._decide(ListenOutcome(hangup=True))

    async def _decode(self) -> None:
        loop = asyncio.get_running_loop()
        executor = self._server.executor
        while not self._ended.is_set():
            await self._have_audio.wait()
            self._have_audio.clear()
            chunk, self._audio = bytes(self._audio), bytearray()
            if self._rec is None:
                rate = self._rate
                assert rate is not None
                self._rec = _Decoder(await loop.run_in_executor(
                    executor, self._server.recognizer, self.request.lang, rate,
                    self.grammar.phrases))
            ended, partial = await loop.run_in_executor(executor, self._rec.step, chunk)
            if (ended or partial) and self.speaking_at is None:
                self.speaking_at = loop.time()
                self.prompt_stopped = True   # barge-in: the sender stops at the next frame
            if ended:
                await self._final_vote()
                return

    async def _final_vote(self) -> None:
        """Vote on everything heard; decides the outcome (nothing heard: none). The end of an
        utterance and the end of the window may both get here: the second finds it decided."""
        async with self._vote_lock:
            if self._done.done():
                return
            result: dict[str, Any] = {"text": ""}
            if self._rec is not None:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self._server.executor, self._rec.finish)
            intent = vote(result, self.grammar, self._server.thresholds)
            self._server.heard[intent.decision] += 1
            self._decide(ListenOutcome(key=intent.key, confidence=intent.confidence,
                                       decision=intent.decision))

    async def _send(self, writer: asyncio.StreamWriter) -> None:
        """The prompt, paced in real time, until barge-in; then silence, while the window
        after it runs (listen_seconds, or MAX_UTTERANCE_S once the caller speaks)."""
        loop = asyncio.get_running_loop()
        rate = self._listen_rate
        step = int(rate * FRAME_S) * 2
        silence = audio(b"\0" * step, rate)
        pcm = self.prompt_pcm
        listen_s = self._server.listen_s
        next_at = loop.time()
        sent, prompt_end = 0, None
        while not self._ended.is_set():
            if prompt_end is None and (self.prompt_stopped or sent >= len(pcm)):
                prompt_end = loop.time()
            if prompt_end is None:
                frame = audio(pcm[sent:sent + step], rate) if len(pcm) - sent >= step else \
                    audio(pcm[sent:] + b"\0" * (step - (len(pcm) - sent)), rate)
                sent += step
            else:
                frame = silence
                now = loop.time()
                if self.speaking_at is None and now - prompt_end >= listen_s:
                    await self._final_vote()   # silence after the prompt: nothing (keys)
                    return
                if self.speaking_at is not None and now - self.speaking_at >= MAX_UTTERANCE_S:
                    await self._final_vote()
                    return
            writer.write(frame)
            await writer.drain()
            next_at += FRAME_S
            delay = next_at - loop.time()
            if delay < -0.2:   # the loop stalled: resynchronise rather than burst
                next_at = loop.time()
                delay = 0.0
            await asyncio.sleep(max(0.0, delay))


class _Decoder:
    """A Recognizer used from the pool's threads, one call at a time: a feed still running in
    a thread when its task was cancelled must finish before finish() reads the result."""

    def __init__(self, rec: Any) -> None:
        self._rec = rec
        self._lock = threading.Lock()

    def step(self, pcm: bytes) -> tuple[bool, bool]:
        """Feed a chunk: (the utterance ended, something is heard so far)."""
        with self._lock:
            ended = bool(self._rec.feed(pcm))
            return ended, ended or bool(self._rec.partial())

    def finish(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._rec.finish())


class AudioSocketServer:
    """Implements ivr.speech_port.SpeechPort over AudioSocket."""

    def __init__(self, host: str, port: int, *, models: ModelRegistry, pool: DecoderPool,
                 thresholds: Thresholds, listen_s: float, backlog: int = 1024,
                 peer_uid: int | None = None, peer_uid_of: PeerUidOf = proc_peer_uid,
                 recognizer_factory: Callable[[Any, int, tuple[str, ...]], Any] | None = None,
                 sample_rate: int = 16000) -> None:
        """sample_rate ([speech] sample_rate): the widest rate a listening takes, 16000 where
        the caller's leg carries it; 8000 keeps every call on the AudioSocket() application."""
        if sample_rate not in LISTEN_RATES:
            raise ValueError(f"sample rate {sample_rate} is not one of {LISTEN_RATES}")
        self.sample_rate = sample_rate
        self.host, self.port, self.backlog = host, port, backlog
        self.models = models
        self.pool = pool
        self.thresholds = thresholds
        self.listen_s = listen_s
        self.peer_uid = peer_uid
        self._peer_uid_of = peer_uid_of
        self._recognizer_factory = recognizer_factory
        # vosk decodes here, one thread per decoder the pool lends
        self.executor = ThreadPoolExecutor(max_workers=pool.size, thread_name_prefix="speech")
        self._pending: dict[str, Listening] = {}
        self._server: asyncio.Server | None = None
        self.refused: Counter[str] = Counter()
        self.heard: Counter[str] = Counter()   # decisions: accept, confirm, none
        self.rates: Counter[int] = Counter()   # sessions by the rate Asterisk sent
        self.sessions = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def listen(self, request: ListenRequest) -> Listening | None:
        if not self.models.available(request.lang):
            return None
        lease = self.pool.try_acquire()
        if lease is None:
            return None
        rate = 16000 if request.rate >= 16000 and self.sample_rate >= 16000 else 8000
        try:
            grammar = grammar_of(request.choices)
            pcm = _join_prompts(request.prompts, rate)
        except (OSError, ValueError, EOFError, wave.Error) as exc:
            lease.release()
            log.error("call %s: cannot listen: %s", request.call_id, exc)
            return None
        listening = Listening(self, request, lease, grammar, rate, pcm)
        self._pending[listening.uuid] = listening
        return listening

    def _forget(self, key: str) -> None:
        self._pending.pop(key, None)

    def recognizer(self, lang: str, rate: int, phrases: tuple[str, ...]) -> Any:
        """In the pool: a Recognizer over the language's model (loaded on first use)."""
        model = self.models.get(lang)
        if self._recognizer_factory is not None:
            return self._recognizer_factory(model, rate, phrases)
        from speech.recognize import Recognizer  # vosk, only where speech is configured

        return Recognizer(model, rate, phrases)

    def stats(self) -> dict[str, Any]:
        pool = self.pool.stats()
        return {"address": self.address, "sessions": self.sessions,
                "decoders": {"size": pool.size, "in_use": pool.in_use, "peak": pool.peak,
                             "granted": pool.granted, "fallbacks": pool.fallbacks},
                "heard": dict(self.heard), "refused": dict(self.refused),
                "rates": {str(r): n for r, n in sorted(self.rates.items())},
                "models_loaded": list(self.models.loaded())}

    async def keep_warm(self, wanted: Callable[[], Iterable[str]],
                        every_s: float = WARM_EVERY_S) -> None:
        """Load, in the pool, each configured model that the flows in service can use
        (`wanted`: the languages their menus list phrases in) as soon as they can, so no caller
        waits seconds for a load: at startup, and after a flow change adds a language. A model
        nobody's menu uses is never loaded (hundreds of MB each). Runs until cancelled."""
        loop = asyncio.get_running_loop()
        tried: set[str] = set()
        while True:
            for lang in sorted(set(wanted()) & set(self.models.languages) - tried):
                tried.add(lang)
                try:
                    await loop.run_in_executor(self.executor, self.models.get, lang)
                    log.info("speech model for %s loaded", lang)
                except Exception:   # its callers get keys, and the first one tries again
                    log.exception("speech model for %s failed to load", lang)
            await asyncio.sleep(every_s)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  backlog=self.backlog)
        if self.port == 0:  # tests: the port the system chose
            self.port = self._server.sockets[0].getsockname()[1]
        log.info("AudioSocket listening on %s", self.address)

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            async with self._server:
                await self._server.serve_forever()
        finally:
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _refusal(self, peer: Any, local: Any) -> str | None:
        if self.peer_uid is None:
            return None
        try:
            uid = self._peer_uid_of((peer[0], peer[1]), (local[0], local[1]))
        except (TypeError, IndexError, ValueError, OSError):
            uid = None
        return None if uid == self.peer_uid else "peer_uid"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            refusal = self._refusal(peer, writer.get_extra_info("sockname"))
            if refusal is not None:
                self.refused[refusal] += 1
                log.warning("AudioSocket connection from %s refused: not Asterisk's", peer)
                return
            frames = FrameReader()
            got: list[Frame] = []
            try:
                async with asyncio.timeout(UUID_TIMEOUT_S):
                    while not got:
                        data = await reader.read(4096)
                        if not data:
                            return
                        got = frames.feed(data)
            except (TimeoutError, ProtocolError, ConnectionError):
                self.refused["no_uuid"] += 1
                return
            first = got[0]
            listening = None
            if first.kind == Kind.UUID and len(first.payload) == 16:
                listening = self._pending.pop(str(uuid.UUID(bytes=first.payload)), None)
            if listening is None:
                self.refused["unknown_uuid"] += 1
                log.warning("AudioSocket connection from %s with no listening of ours", peer)
                return
            self.sessions += 1
            listening._connected = True
            await listening.run(reader, writer, frames, got[1:])
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

