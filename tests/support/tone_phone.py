"""A SIPp agent phone that answers and talks: it sends a steady tone, so a recording of the
call has real audio on the agent's side (a silent phone would record as digital silence)."""

from __future__ import annotations

import struct
from pathlib import Path

from bench.sipp import scenario
from tests.support.agent_phones import SippUas
from tests.support.rtp import PT_PCMU, PTIME_MS, SAMPLES, _packet, _rtp, tone_payload


def write_tone_pcap(path: Path, seconds: float, freq: float = 440.0,
                    amplitude: int = 8000) -> None:
    """RTP (PCMU, 20 ms packets, one SSRC) of a sine tone, as a pcap SIPp can play."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    n_packets = int(seconds * 1000 / PTIME_MS)
    seq, ts = 2000, 16000
    for i in range(n_packets):
        payload = tone_payload(ts, freq, amplitude)
        pkt = _packet(_rtp(PT_PCMU, i == 0, seq, ts, payload))
        t_us = i * PTIME_MS * 1000
        out.append(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(pkt), len(pkt)))
        out.append(pkt)
        seq += 1
        ts += SAMPLES
    path.write_bytes(b"".join(out))


class TonePhones(SippUas):
    """One SIPp UAS answering every INVITE to its port after ring_ms, then sending a tone."""

    def __init__(self, port: int, workdir: Path, *, ring_ms: int = 1000,
                 tone_s: float = 120.0) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        pcap = workdir / f"tone-{port}.pcap"
        write_tone_pcap(pcap, tone_s)
        play = f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
        super().__init__(scenario("phone_answer", ring_ms=ring_ms, while_talking=play), port,
                         workdir, name="uas-tone")
