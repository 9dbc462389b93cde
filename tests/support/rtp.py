"""One caller's RTP as a pcap: continuous G.711 audio with RFC 2833 key events spliced in.

SIPp's shipped DTMF pcaps all carry one SSRC and the RTP timestamps of one old capture, so
Asterisk drops any key whose timestamp is older than the last one (only keys in that capture's
order get through), and a caller sending no audio is cut off by the PBX's RTP timeout. A real
phone sends one stream: audio every 20 ms, events with ever-increasing sequence numbers and
timestamps. This builds exactly that.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from pathlib import Path

from tests.support.rtp_phone import lin2ulaw

PTIME_MS = 20
SAMPLES = 160  # 20 ms at 8 kHz
PT_PCMU = 0
PT_EVENT = 101
EVENT_MS = 160  # how long a key is held
END_REPEATS = 3
EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
SSRC = 0x95598095
SILENCE = b"\xff" * SAMPLES  # mu-law silence


def _packet(payload: bytes) -> bytes:
    """Ethernet + IPv4 + UDP around an RTP packet (SIPp re-addresses it; only RTP matters)."""
    udp_len = 8 + len(payload)
    udp = struct.pack("!HHHH", 6000, 6000, udp_len, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    eth = b"\x00" * 12 + b"\x08\x00"
    return eth + ip + udp


def _rtp(pt: int, marker: bool, seq: int, ts: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                       ts & 0xFFFFFFFF, SSRC) + payload


def tone_payload(ts: int, freq: float = 440.0, amplitude: int = 8000) -> bytes:
    """20 ms of a sine tone (mu-law) from RTP timestamp ts: a talking phone's audio."""
    return bytes(lin2ulaw(int(amplitude * math.sin(2 * math.pi * freq * (ts + k) / 8000)))
                 for k in range(SAMPLES))


def write_call_pcap(path: Path, keys: Iterable[tuple[int, str]], total_ms: int,
                    talk: Iterable[tuple[int, int]] = ()) -> None:
    """`keys` are (offset ms from the start of the stream, key); audio fills the rest:
    silence, or a tone (someone talking) within the (from ms, to ms) spans of `talk`."""
    starts = {round(t / PTIME_MS): k for t, k in keys}
    spans = [(round(a / PTIME_MS), round(b / PTIME_MS)) for a, b in talk]
    n_packets = max(total_ms // PTIME_MS, max(starts, default=0) + 20)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    seq, ts = 1000, 8000
    event_left = 0
    event: tuple[int, int] | None = None  # (code, start timestamp)
    end_left = 0
    for i in range(n_packets):
        if event is None and i in starts:
            event = (EVENT_CODES[starts[i]], ts)
            event_left, end_left = EVENT_MS // PTIME_MS, END_REPEATS
            first = True
        else:
            first = False
        if event is not None:
            code, start = event
            held = (EVENT_MS // PTIME_MS - event_left + 1) * SAMPLES
            if event_left > 0:
                payload = struct.pack("!BBH", code, 10, held)
                event_left -= 1
            else:
                payload = struct.pack("!BBH", code, 0x80 | 10, EVENT_MS // PTIME_MS * SAMPLES)
                end_left -= 1
            rtp = _rtp(PT_EVENT, first, seq, start, payload)
            if event_left == 0 and end_left == 0:
                event = None
        else:
            talking = any(a <= i < b for a, b in spans)
            rtp = _rtp(PT_PCMU, False, seq, ts, tone_payload(ts) if talking else SILENCE)
        seq += 1
        ts += SAMPLES
        t_us = i * PTIME_MS * 1000
        pkt = _packet(rtp)
        out.append(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(pkt), len(pkt)))
        out.append(pkt)
    path.write_bytes(b"".join(out))
