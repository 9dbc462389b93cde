"""SIPp callers who speak (issue 13): a caller's RTP is silence with utterances spliced in at
given moments after the answer, as a phone's stream would carry a person's words, encoded as
the phone's codec: G.711 mu-law (narrowband, 8 kHz) or G.722 (wideband, 16 kHz; RTP payload 9,
whose clock is 8000 by RFC 3551's old mistake, so 160 timestamp steps a 20 ms packet either
way). Keys go as SIP INFO (tests/support/sipp.py builds the scenario and places the ports)."""

from __future__ import annotations

import struct
import subprocess
import sys
from array import array
from collections.abc import Sequence
from pathlib import Path

import G722

from tests.support import sipp
from tests.support.rtp import PT_PCMU, PTIME_MS, SAMPLES, SSRC
from tests.support.sipp import Caller, Keys, SippResult

PT_G722 = 9
RATES = {"pcmu": 8000, "g722": 16000}    # the audio rate each codec carries
# a speaking caller's stream is cut here: long enough for any menu these tests run (a caller
# waiting for the PBX's BYE past it sends no more audio, well within the PBX's RTP timeout)
MAX_AUDIO_MS = 60_000


def ulaw(pcm: bytes) -> bytes:
    """16-bit 8 kHz mono PCM as G.711 mu-law (sox; what a narrowband phone sends)."""
    return subprocess.run(["sox", "-t", "raw", "-r", "8000", "-e", "signed-integer", "-b", "16",
                           "-c", "1", "-", "-t", "raw", "-e", "u-law", "-b", "8", "-"],
                          input=pcm, capture_output=True, check=True, timeout=30).stdout


def g722(pcm: bytes) -> bytes:
    """16-bit 16 kHz mono PCM as G.722 at 64 kbit/s (libg722, bit-exact to ITU's: what a
    wideband phone sends); 8 bytes a millisecond."""
    samples = array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    return bytes(G722.G722(16000, 64000).encode(samples))


def write_speech_pcap(path: Path, speech: Sequence[tuple[int, bytes]], total_ms: int,
                      codec: str = "pcmu") -> None:
    """RTP every 20 ms for `total_ms` (at most MAX_AUDIO_MS): silence, and each (offset ms,
    16-bit PCM at the codec's rate), the whole stream encoded as `codec` (pcmu or g722)."""
    rate = RATES[codec]
    n_packets = min(total_ms, MAX_AUDIO_MS) // PTIME_MS
    if codec == "pcmu":
        # mu-law is sample by sample: each utterance is encoded alone (sox dithers what it
        # encodes) and spliced into digital silence
        encoded = bytearray(b"\xff" * SAMPLES * n_packets)
        for at_ms, said in speech:
            start, law = at_ms * 8, ulaw(said)
            assert start + len(law) <= len(encoded), "an utterance runs past the end of the call"
            encoded[start:start + len(law)] = law
        pt = PT_PCMU
    else:
        # G.722 is adaptive (ADPCM): the whole stream is encoded in one go, as a phone does
        pcm = bytearray(2 * rate * PTIME_MS // 1000 * n_packets)
        for at_ms, said in speech:
            start = 2 * at_ms * rate // 1000
            assert start + len(said) <= len(pcm), "an utterance runs past the end of the call"
            pcm[start:start + len(said)] = said
        encoded, pt = bytearray(g722(bytes(pcm))), PT_G722
    size = len(encoded) // n_packets   # 160 bytes a packet for both
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i in range(n_packets):
        payload = bytes(encoded[i * size:(i + 1) * size])
        rtp = struct.pack("!BBHII", 0x80, pt, (1000 + i) & 0xFFFF,
                          (8000 + SAMPLES * i) & 0xFFFFFFFF, SSRC) + payload
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        pkt = b"\x00" * 12 + b"\x08\x00" + ip + udp
        t_us = i * PTIME_MS * 1000
        out.append(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(pkt),
                               len(pkt)))
        out.append(pkt)
    path.write_bytes(b"".join(out))


async def place_speaking_call(caller: Caller, speech: Sequence[tuple[int, bytes]], target: str,
                              workdir: Path, timeout_s: int = 180) -> SippResult:
    """One SIPp call whose audio carries `speech` (offset ms, 16-bit PCM at the rate of the
    caller's codec); keys only as SIP INFO."""
    assert all(not isinstance(s, Keys) or s.mode == "info" for s in caller.steps)
    return await sipp.place_call(
        caller, target, timeout_s=timeout_s, workdir=workdir,
        audio=lambda pcap, _keys, total_ms: write_speech_pcap(pcap, speech, total_ms,
                                                              caller.codec))
