"""SIPp callers who speak (issue 13): a caller's RTP is G.711 mu-law silence with utterances
spliced in at given moments after the answer, as a phone's stream would carry a person's words;
keys go as SIP INFO (tests/support/sipp.py builds the scenario and places the ports)."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.support import sipp
from tests.support.rtp import PT_PCMU, PTIME_MS, SAMPLES, SSRC
from tests.support.sipp import Caller, Keys, SippResult

SILENCE = b"\xff" * SAMPLES  # mu-law silence, 20 ms


def ulaw(pcm: bytes) -> bytes:
    """16-bit 8 kHz mono PCM as G.711 mu-law (sox; what a narrowband phone sends)."""
    return subprocess.run(["sox", "-t", "raw", "-r", "8000", "-e", "signed-integer", "-b", "16",
                           "-c", "1", "-", "-t", "raw", "-e", "u-law", "-b", "8", "-"],
                          input=pcm, capture_output=True, check=True, timeout=30).stdout


def write_speech_pcap(path: Path, speech: Sequence[tuple[int, bytes]], total_ms: int) -> None:
    """Mu-law RTP every 20 ms for `total_ms`: silence, and each (offset ms, mu-law audio)."""
    n_packets = total_ms // PTIME_MS
    audio = bytearray(SILENCE * n_packets)
    for at_ms, said in speech:
        start = at_ms * 8
        assert start + len(said) <= len(audio), "an utterance runs past the end of the call"
        audio[start:start + len(said)] = said
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i in range(n_packets):
        payload = bytes(audio[i * SAMPLES:(i + 1) * SAMPLES])
        rtp = struct.pack("!BBHII", 0x80, PT_PCMU, (1000 + i) & 0xFFFF,
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
    """One SIPp call whose audio carries `speech`; keys only as SIP INFO."""
    assert all(not isinstance(s, Keys) or s.mode == "info" for s in caller.steps)
    return await sipp.place_call(
        caller, target, timeout_s=timeout_s, workdir=workdir,
        audio=lambda pcap, _keys, total_ms: write_speech_pcap(pcap, speech, total_ms))
