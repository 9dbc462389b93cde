"""The CTI's AudioSocket listener against a fake Asterisk speaking AudioSocket over a real TCP
socket, with the real Korean vosk model: the uuid handshake, the prompt's audio out (paced),
the caller's audio in, barge-in by a key and by speech, silence, a full decoder pool, and the
caller hanging up mid-prompt. The utterances are espeak-ng's Korean at 8 kHz, as the
AudioSocket() application carries a call, and at 16 kHz (kind 0x12), as the channel driver
carries a wideband leg Dialed with c(slin16) (tests/contract/test_speech_vosk_ko.py
synthesises them)."""

from __future__ import annotations

import asyncio
import math
import struct
import uuid
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cti.audiosocket.protocol import HANGUP, Frame, FrameReader, Kind, audio, encode
from cti.audiosocket.server import AudioSocketServer, Listening, resample
from ivr.agi_session import AgiIvrSession, IvrContext
from ivr.engine import Engine
from ivr.schema import FlowSet, load_flow_dir
from ivr.speech_port import ListenOutcome, ListenRequest
from prompts.catalog import load_catalog
from speech.intent import Thresholds
from speech.models import ModelRegistry
from speech.pool import DecoderPool
from tests.contract.test_speech_vosk_ko import MODEL_DIR, frames, silence, speak

ROOT = Path(__file__).resolve().parents[2]
CHOICES = {"1": ("요금", "전기 요금"), "2": ("정전",), "3": ("수리 기사", "기사"),
           "0": ("상담원",)}
RATE = 8000
FRAME = 320  # 20 ms of slin at 8 kHz
PROMPT_S = 3.0
LISTEN_S = 1.0


@pytest.fixture(scope="module")
def models() -> ModelRegistry:
    registry = ModelRegistry({"ko": MODEL_DIR})
    registry.get("ko")  # once for the module (seconds)
    return registry


@pytest.fixture(scope="module")
def prompt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s prompt: a quiet 440 Hz tone, so it is told apart from silence on the wire."""
    path = tmp_path_factory.mktemp("prompts") / "menu.wav"
    n = int(PROMPT_S * RATE)
    pcm = b"".join(struct.pack("<h", int(3000 * math.sin(2 * math.pi * 440 * i / RATE)))
                   for i in range(n))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    return path


@pytest.fixture
async def server(models: ModelRegistry) -> AsyncIterator[AudioSocketServer]:
    srv = AudioSocketServer("127.0.0.1", 0, models=models, pool=DecoderPool(2),
                            thresholds=Thresholds(), listen_s=LISTEN_S)
    await srv.start()
    serving = asyncio.create_task(srv.serve_forever(), name="audiosocket-under-test")
    yield srv
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    await srv.close()


@dataclass
class FakeAsterisk:
    """What app_audiosocket does on its side: connect, say the uuid, send the caller's audio
    and keys, play what comes back (here: keep it, with when it came)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    got: list[tuple[float, Frame]] = field(default_factory=list)
    closed_at: float | None = None
    task: asyncio.Task[None] | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set on each read, and close
    rate: int = RATE   # the channel's: 8000 (the application), 16000 (Dial with c(slin16))

    @classmethod
    async def connect(cls, port: int, key: str, rate: int = RATE) -> FakeAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        fake = cls(reader, writer, rate=rate)
        writer.write(encode(Kind.UUID, uuid.UUID(key).bytes))
        await writer.drain()
        fake.task = asyncio.create_task(fake._read(), name="fake-asterisk-read")
        return fake

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        frames_in = FrameReader()
        try:
            while data := await self.reader.read(65536):
                self.got += [(loop.time(), f) for f in frames_in.feed(data)]
                self.arrived.set()
        except ConnectionResetError:   # closed before it read what we sent
            pass
        self.closed_at = loop.time()
        self.arrived.set()

    async def until_received(self, n: int, timeout: float = 10) -> bool:
        """Until the server has sent n frames (it sends one every 20 ms: the prompt, then
        silence); False if it closed first. The fake's clock is the server's own frames, as
        Asterisk's is the channel's: no sleeping."""
        async with asyncio.timeout(timeout):
            while len(self.got) < n:
                if self.closed_at is not None:
                    return False
                self.arrived.clear()
                await self.arrived.wait()
        return True

    async def send_audio(self, pcm: bytes, realtime: bool = True) -> None:
        """The caller's audio; in real time, one frame in for each frame the server sends
        out (20 ms each), as Asterisk passes the channel's audio at the channel's pace."""
        base = len(self.got)
        for i, chunk in enumerate(frames(pcm, self.rate)):
            if self.closed_at is not None:
                return
            if realtime and not await self.until_received(base + i + 1):
                return
            self.writer.write(audio(chunk, self.rate))
            await self.writer.drain()

    async def key(self, digit: str) -> None:
        self.writer.write(encode(Kind.DTMF, digit.encode()))
        await self.writer.drain()

    async def closed(self, timeout: float = 15) -> None:
        assert self.task is not None
        async with asyncio.timeout(timeout):
            await self.task

    def audio_out(self) -> list[tuple[float, bytes]]:
        """The audio the server sent, all of it at the channel's rate."""
        assert all(f.rate in (None, self.rate) for _, f in self.got)
        return [(t, f.payload) for t, f in self.got if f.rate == self.rate]

    def prompt_frames(self) -> list[tuple[float, bytes]]:
        return [(t, p) for t, p in self.audio_out() if any(p)]


def request(prompt: Path, rate: int = RATE) -> ListenRequest:
    return ListenRequest("call-1", "ko", CHOICES, (prompt,), rate=rate)


async def start(server: AudioSocketServer, prompt: Path,
                rate: int = RATE) -> tuple[Listening, FakeAsterisk]:
    listening = server.listen(request(prompt, rate))
    assert listening is not None and listening.rate == rate
    fake = await FakeAsterisk.connect(server.port, listening.uuid, rate)
    return listening, fake


async def test_the_prompt_goes_out_paced_then_silence_ends_it(server: AudioSocketServer,
                                                              prompt: Path) -> None:
    listening, fake = await start(server, prompt)
    caller = asyncio.create_task(fake.send_audio(silence(PROMPT_S + 3 * LISTEN_S, RATE)))
    await fake.closed()
    caller.cancel()
    out = await listening.outcome()

    assert out == ListenOutcome(key=None, confidence=0.0, decision="none")
    sent = fake.audio_out()
    assert all(len(p) == FRAME for _, p in sent)
    with wave.open(str(prompt), "rb") as w:
        pcm = w.readframes(w.getnframes())
    played = b"".join(p for _, p in fake.prompt_frames())
    assert played == pcm  # the whole prompt, in order
    # in real time: 3 s of audio took about 3 s, not a burst
    times = [t for t, _ in fake.prompt_frames()]
    assert PROMPT_S - 0.3 < times[-1] - times[0] < PROMPT_S + 0.5
    # then silence frames for listen_seconds, the hangup frame, and the socket closed
    assert fake.got[-1][1].kind == Kind.HANGUP
    assert fake.closed_at is not None
    assert LISTEN_S - 0.1 < fake.closed_at - times[-1] < LISTEN_S + 0.6
    assert server.pool.in_use == 0


async def test_a_key_mid_prompt_stops_it_and_ends_the_listening(server: AudioSocketServer,
                                                                prompt: Path) -> None:
    listening, fake = await start(server, prompt)
    caller = asyncio.create_task(fake.send_audio(silence(PROMPT_S, RATE)))
    assert await fake.until_received(50)   # 1 s of the prompt out
    pressed = asyncio.get_running_loop().time()
    await fake.key("2")
    await fake.closed()
    caller.cancel()

    assert await listening.outcome() == ListenOutcome(digit="2")
    assert fake.closed_at is not None and fake.closed_at - pressed < 0.3
    assert len(fake.prompt_frames()) < 0.7 * PROMPT_S / 0.02   # cut, not played out
    assert server.pool.in_use == 0


async def test_speech_mid_prompt_stops_it_and_the_choice_is_heard(server: AudioSocketServer,
                                                                  prompt: Path) -> None:
    listening, fake = await start(server, prompt)
    utterance = speak("상담원", 180, 50, RATE)   # 0.3 s lead, the word, 1 s of silence
    assert await fake.until_received(25)   # 0.5 s of the prompt out
    started = asyncio.get_running_loop().time()
    await fake.send_audio(utterance + silence(2.0, RATE))
    await fake.closed()
    out = await listening.outcome()

    assert (out.key, out.decision) == ("0", "accept") and out.confidence >= 0.8
    assert out.digit is None
    # barge-in: the tone stopped within a moment of the word starting (0.3 s into the
    # utterance), long before the prompt's 3 s were out
    last_tone = fake.prompt_frames()[-1][0]
    assert last_tone - started < 1.5, last_tone - started
    assert server.heard["accept"] >= 1


async def test_a_wideband_leg_is_played_and_heard_at_16_khz(server: AudioSocketServer,
                                                             prompt: Path) -> None:
    """A G.722 caller's menu (Dial(AudioSocket/...c(slin16))): the prompt goes out as slin16
    frames (kind 0x12, 640 bytes a 20 ms frame, the 8 kHz file resampled), the caller's 16 kHz
    audio is decoded at 16 kHz, and speech still stops the prompt."""
    listening, fake = await start(server, prompt, 16000)
    utterance = speak("상담원", 180, 50, 16000)
    assert await fake.until_received(25)
    started = asyncio.get_running_loop().time()
    await fake.send_audio(utterance + silence(2.0, 16000))
    await fake.closed()
    out = await listening.outcome()

    assert (out.key, out.decision) == ("0", "accept") and out.confidence >= 0.8
    sent = fake.audio_out()
    assert sent and all(len(p) == 2 * FRAME for _, p in sent)
    with wave.open(str(prompt), "rb") as w:
        wide = resample(w.readframes(w.getnframes()), RATE, 16000)
    played = b"".join(p for _, p in fake.prompt_frames())
    assert wide.startswith(played) and len(played) < len(wide)   # in order, then cut
    assert fake.prompt_frames()[-1][0] - started < 1.5
    assert server.rates[16000] == 1 and server.stats()["rates"] == {"16000": 1}


async def test_sample_rate_8000_keeps_every_leg_narrowband(models: ModelRegistry,
                                                            prompt: Path) -> None:
    srv = AudioSocketServer("127.0.0.1", 0, models=models, pool=DecoderPool(1),
                            thresholds=Thresholds(), listen_s=LISTEN_S, sample_rate=8000)
    listening = srv.listen(request(prompt, 16000))
    assert listening is not None and listening.rate == 8000
    listening.cancel()
    await srv.close()


async def test_a_narrowband_server_runs_the_application_for_a_g722_leg(
        models: ModelRegistry, prompt: Path) -> None:
    srv = AudioSocketServer("127.0.0.1", 0, models=models, pool=DecoderPool(1),
                            thresholds=Thresholds(), listen_s=LISTEN_S, sample_rate=8000)
    await srv.start()
    serving = asyncio.create_task(srv.serve_forever(), name="audiosocket-narrowband")
    services = await run_call(srv, prompt, "2", "g722")
    assert {"node": "menu", "input": "2"} in services.path
    assert srv.sessions == 1
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    await srv.close()


def test_prompts_resample_between_8_and_16_khz() -> None:
    pcm = struct.pack("<4h", 0, 100, 200, -300)
    assert struct.unpack("<8h", resample(pcm, 8000, 16000)) == (0, 50, 100, 150, 200, -50,
                                                                -300, -300)
    assert struct.unpack("<2h", resample(pcm, 16000, 8000)) == (50, -50)
    assert resample(pcm, 8000, 8000) == pcm
    with pytest.raises(ValueError):
        resample(pcm, 8000, 48000)


async def test_a_full_pool_means_keys_and_is_counted(models: ModelRegistry,
                                                     prompt: Path) -> None:
    srv = AudioSocketServer("127.0.0.1", 0, models=models, pool=DecoderPool(1),
                            thresholds=Thresholds(), listen_s=LISTEN_S)
    first = srv.listen(request(prompt))
    assert first is not None
    assert srv.listen(request(prompt)) is None
    assert srv.pool.stats().fallbacks == 1
    first.cancel()  # never connected: the decoder is free again
    assert srv.pool.in_use == 0
    again = srv.listen(request(prompt))
    assert again is not None
    again.cancel()
    assert await again.outcome() == ListenOutcome(connected=False)
    await srv.close()


@pytest.mark.parametrize("how", ["hangup frame", "socket closed"])
async def test_a_caller_hanging_up_mid_prompt(server: AudioSocketServer, prompt: Path,
                                              how: str) -> None:
    listening, fake = await start(server, prompt)
    await fake.send_audio(silence(0.5, RATE))
    if how == "hangup frame":
        fake.writer.write(HANGUP)
        await fake.writer.drain()
    else:
        fake.writer.close()
    async with asyncio.timeout(5):
        out = await listening.outcome()
    assert out.hangup
    await fake.closed(5)
    for _ in range(100):  # the session's own cleanup, right after the outcome (deadline 1 s)
        if server.pool.in_use == 0:
            break
        await asyncio.sleep(0.01)
    assert server.pool.in_use == 0


async def test_a_connection_without_our_uuid_is_closed_unheard(server: AudioSocketServer
                                                               ) -> None:
    fake = await FakeAsterisk.connect(server.port, str(uuid.uuid4()))
    await fake.send_audio(silence(0.2, RATE), realtime=False)
    await fake.closed(5)
    assert fake.got == []
    assert server.refused["unknown_uuid"] == 1
    # and one that never says a uuid at all (a port scan) is dropped too
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(10):
        assert await reader.read() == b""
    writer.close()


async def test_a_uuid_is_good_once(server: AudioSocketServer, prompt: Path) -> None:
    listening, fake = await start(server, prompt)
    await fake.key("1")
    await fake.closed()
    assert (await listening.outcome()).digit == "1"
    replay = await FakeAsterisk.connect(server.port, listening.uuid)
    await replay.closed(5)
    assert replay.got == [] and server.refused["unknown_uuid"] == 1


# ------------------------------------------------------- the FastAGI session through the listener


class ShortPrompts:
    """Every prompt is the 3 s tone (the IVR's own files are up to 18 s long)."""

    def __init__(self, wav: Path) -> None:
        self.wav = wav

    def asterisk_path(self, prompt_id: str, lang: str) -> str:
        return f"/var/lib/hotline/prompts/{prompt_id}"

    def local_file(self, prompt_id: str, lang: str) -> Path:
        return self.wav


class Services:
    def __init__(self) -> None:
        self.path: list[dict[str, object]] = []
        self.outcome = ""

    async def query(self, kind: str, args: dict[str, object]) -> object:
        raise AssertionError("the Korean test flow looks nothing up")

    async def call_started(self, **_: object) -> None:
        return None

    async def caller_lists(self, caller: str) -> frozenset[str]:
        return frozenset()

    async def calendars(self) -> dict[str, object]:
        return {}  # every skill open 7x24

    async def ivr_finished(self, *, outcome: str, path: list[dict[str, object]],
                           **_: object) -> None:
        self.outcome, self.path = outcome, list(path)


class FakeAgi:
    """Asterisk's side of FastAGI, as far as the Korean test flow needs: EXEC AudioSocket
    connects a FakeAsterisk that plays the caller's part; a key menu (Read) times out."""

    def __init__(self, caller: bytes | str, codec: str = "ulaw") -> None:
        self.headers = {"agi_uniqueid": "1.1", "agi_arg_1": "1.1", "agi_callerid": "821",
                        "agi_extension": "95598", "agi_channel": "PJSIP/carrier-1"}
        self.caller = caller   # the utterance, or a key
        self.codec = codec     # the leg's: ulaw (narrowband) or g722 (wideband)
        self.commands: list[str] = []

    async def command(self, cmd: str, timeout: float = 30) -> dict[str, object]:
        self.commands.append(cmd)
        if cmd == 'GET VARIABLE "CHANNEL(audionativeformat)"':
            return {"result": ("1", f"({self.codec}|ulaw)"), "status_code": 200}
        rate = 0
        if cmd.startswith("EXEC AudioSocket"):
            key, address = cmd.split(" ", 2)[2].strip('"').split(",")
            rate = RATE
        elif cmd.startswith("EXEC Dial"):
            # AudioSocket/host:port/uuid/c(slin16),,g
            dest, _timeout, options = cmd.split(" ", 2)[2].strip('"').split(",")
            tech, address, key, codec = dest.split("/")
            assert (tech, codec, options) == ("AudioSocket", "c(slin16)", "g")
            rate = 16000
        if rate:
            port = int(address.rsplit(":", 1)[1])
            fake = await FakeAsterisk.connect(port, key, rate)
            if isinstance(self.caller, str):
                assert await fake.until_received(25)   # 0.5 s into the prompt
                await fake.key(self.caller)
            else:
                asyncio.create_task(fake.send_audio(self.caller + silence(9, rate)))
            await fake.closed()
            return {"result": ("0", ""), "status_code": 200}
        if cmd.startswith("GET FULL VARIABLE"):
            return {"result": ("1", "|TIMEOUT"), "status_code": 200}
        return {"result": ("0", ""), "status_code": 200}


def korean_flows() -> FlowSet:
    catalog = load_catalog(ROOT / "prompts" / "catalog")
    return load_flow_dir(ROOT / "tests" / "support" / "flows", catalog.has, required=["main"])


async def run_call(server: AudioSocketServer, prompt: Path, caller: bytes | str,
                   codec: str = "ulaw") -> Services:
    """One call through the FastAGI session; a g722 leg is Dialed (slin16) where the server
    takes 16 kHz, anything else runs the application."""
    flows = korean_flows()
    services = Services()
    ctx = IvrContext(engine_factory=lambda: Engine(flows, "main",
                                                   speech_langs=frozenset({"ko"})),
                     prompts=ShortPrompts(prompt), services=services,
                     clock=lambda: datetime.now(UTC), speech=server)
    agi = FakeAgi(caller, codec)
    await AgiIvrSession(agi, ctx).run()  # type: ignore[arg-type]
    # the leg's codec says how the menu is connected: Dial'ed with slin16, or the application
    connect = [c for c in agi.commands if c.startswith("EXEC Dial") or "AudioSocket" in c]
    wide = codec == "g722" and server.sample_rate == 16000
    assert all(c.startswith("EXEC Dial" if wide else "EXEC AudioSocket")
               for c in connect), agi.commands
    # the leg's codec is asked at most once a call, and not at all by a narrowband server
    asked = agi.commands.count('GET VARIABLE "CHANNEL(audionativeformat)"')
    assert asked <= (0 if server.sample_rate == 8000 else 1), agi.commands
    return services


@pytest.mark.parametrize(("codec", "rate"), [("ulaw", RATE), ("g722", 16000)])
async def test_a_spoken_choice_routes_the_call(server: AudioSocketServer, prompt: Path,
                                               codec: str, rate: int) -> None:
    services = await run_call(server, prompt, speak("상담원", 180, 50, rate), codec)
    heard = [p for p in services.path if "speech" in p]
    assert heard == [{"node": "menu", "speech": "0", "confidence": heard[0]["confidence"],
                      "decision": "accept"}]
    assert {"node": "chose_agent", "hangup": True} in services.path
    assert services.outcome == "self_served"


@pytest.mark.parametrize("codec", ["ulaw", "g722"])
async def test_a_key_during_the_listening_routes_as_a_key(server: AudioSocketServer,
                                                          prompt: Path, codec: str) -> None:
    services = await run_call(server, prompt, "2", codec)
    assert {"node": "menu", "input": "2"} in services.path
    assert {"node": "chose_outage", "hangup": True} in services.path
    assert not any("speech" in p for p in services.path)


async def test_silence_gives_the_key_menu(server: AudioSocketServer, prompt: Path) -> None:
    services = await run_call(server, prompt, silence(0.1, RATE))
    # nothing heard, then the key menu (Read) timed out twice: the flow's on_fail
    assert {"node": "menu", "speech": None, "confidence": 0.0, "decision": "none"} \
        in services.path
    assert services.path[-1] == {"node": "gave_up", "hangup": True}


async def test_a_full_pool_gives_the_key_menu_at_once(models: ModelRegistry,
                                                      prompt: Path) -> None:
    srv = AudioSocketServer("127.0.0.1", 0, models=models, pool=DecoderPool(1),
                            thresholds=Thresholds(), listen_s=LISTEN_S)
    await srv.start()
    hog = srv.listen(request(prompt))
    services = await run_call(srv, prompt, "1")
    assert {"node": "menu", "speech": "unavailable", "reason": "busy"} in services.path
    assert srv.pool.stats().fallbacks == 1
    assert hog is not None
    hog.cancel()
    await srv.close()


async def test_a_model_is_loaded_once_the_flows_use_its_language(tmp_path: Path) -> None:
    import threading

    loads: list[Path] = []
    loaded = threading.Event()

    def loader(path: Path) -> object:
        loads.append(path)
        loaded.set()
        return object()

    registry = ModelRegistry({"ko": tmp_path / "ko", "zh": tmp_path / "zh"}, loader=loader)
    srv = AudioSocketServer("127.0.0.1", 0, models=registry, pool=DecoderPool(1),
                            thresholds=Thresholds(), listen_s=LISTEN_S)
    wanted: set[str] = {"en"}   # the shipped flows' phrases: no model for them here
    rounds = 0
    asked = asyncio.Event()

    def flows_want() -> set[str]:   # keep_warm asks once a round, on the loop
        nonlocal rounds
        rounds += 1
        asked.set()
        return wanted

    async def more_rounds(n: int) -> None:
        target = rounds + n
        async with asyncio.timeout(5):
            while rounds < target:
                asked.clear()
                await asked.wait()

    warm = asyncio.create_task(srv.keep_warm(flows_want, every_s=0.01))
    await more_rounds(10)
    assert loads == []          # nothing the flows use: nothing loaded (hundreds of MB each)
    wanted = {"en", "ko"}       # a flow change adds Korean phrases
    assert await asyncio.to_thread(loaded.wait, 5)
    await more_rounds(10)       # ten more rounds: still one load
    assert loads == [tmp_path / "ko"] and registry.loaded() == ("ko",)
    warm.cancel()
    await asyncio.gather(warm, return_exceptions=True)
    await srv.close()


async def test_a_peer_that_is_not_asterisks_user_is_refused(models: ModelRegistry,
                                                            prompt: Path) -> None:
    srv = AudioSocketServer("127.0.0.1", 0, models=models, pool=DecoderPool(1),
                            thresholds=Thresholds(), listen_s=LISTEN_S, peer_uid=595,
                            peer_uid_of=lambda peer, local: 0)   # root, not hotline-asterisk
    await srv.start()
    listening = srv.listen(request(prompt))
    assert listening is not None
    fake = await FakeAsterisk.connect(srv.port, listening.uuid)   # even with a good uuid
    await fake.closed(5)
    assert fake.got == [] and srv.refused["peer_uid"] == 1
    listening.cancel()
    await srv.close()
