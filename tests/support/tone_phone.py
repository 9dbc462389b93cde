"""A SIPp agent phone that answers and talks: it sends a steady tone, so a recording of the
call has real audio on the agent's side (a silent phone would record as digital silence)."""

from __future__ import annotations

import math
import struct
import subprocess
from pathlib import Path

from tests.support.agent_phones import UAS_ANSWER
from tests.support.rtp import PT_PCMU, PTIME_MS, SAMPLES, _packet, _rtp

_BIAS, _CLIP = 0x84, 32635


def mulaw(sample: int) -> int:
    """G.711 mu-law of one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    s = min(abs(sample), _CLIP) + _BIAS
    exponent = max(0, s.bit_length() - 8)
    mantissa = (s >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def write_tone_pcap(path: Path, seconds: float, freq: float = 440.0,
                    amplitude: int = 8000) -> None:
    """RTP (PCMU, 20 ms packets, one SSRC) of a sine tone, as a pcap SIPp can play."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    n_packets = int(seconds * 1000 / PTIME_MS)
    seq, ts = 2000, 16000
    for i in range(n_packets):
        payload = bytes(mulaw(int(amplitude * math.sin(2 * math.pi * freq * (ts + k) / 8000)))
                        for k in range(SAMPLES))
        pkt = _packet(_rtp(PT_PCMU, i == 0, seq, ts, payload))
        t_us = i * PTIME_MS * 1000
        out.append(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(pkt), len(pkt)))
        out.append(pkt)
        seq += 1
        ts += SAMPLES
    path.write_bytes(b"".join(out))


_ACK = '<recv request="ACK" optional="true" rtd="true" crlf="true"/>'


class TonePhones:
    """One SIPp UAS answering every INVITE to its port after ring_ms, then sending a tone."""

    def __init__(self, port: int, workdir: Path, *, ring_ms: int = 1000,
                 tone_s: float = 120.0) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        pcap = workdir / f"tone-{port}.pcap"
        write_tone_pcap(pcap, tone_s)
        scen = workdir / f"uas-tone-{port}.xml"
        xml = UAS_ANSWER.format(ring_ms=ring_ms)
        assert xml.count(_ACK) == 1
        # the ACK must be mandatory here: SIPp refuses an optional <recv> right before a <nop>
        scen.write_text(xml.replace(_ACK, _ACK.replace(' optional="true"', "")
                                    + "\n  <nop><action><exec play_pcap_audio="
                                    f'"{pcap}"/></action></nop>'))
        self.proc = subprocess.Popen(
            ["sipp", "-sf", str(scen), "-i", "127.0.0.1", "-p", str(port), "-mp",
             str(26000 + (port % 1000) * 10), "-cp", str(port + 1000), "-nostdin",
             "-trace_err", "-error_file", str(workdir / f"uas-tone-{port}.err")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
