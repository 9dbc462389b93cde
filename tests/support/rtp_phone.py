"""A phone's media end for tests: sends a sine tone as G.711 mu-law RTP and keeps what it hears.

SIPp answers or places the call and puts this socket's port in its SDP; this class does the
RTP. It sends from the port it receives on (Asterisk's endpoints are rtp_symmetric), to where
Asterisk's RTP comes from, and stamps every packet it receives with its arrival time, so a test
can ask "what did this phone hear between t0 and t1" and look for a tone with `tone_level`.
"""

from __future__ import annotations

import math
import socket
import struct
import threading
import time
import wave
from collections.abc import Sequence
from pathlib import Path

RATE = 8000
FRAME = 160  # 20 ms
PT_PCMU = 0
_BIAS = 0x84
_CLIP = 32635


def lin2ulaw(sample: int) -> int:
    """G.711 mu-law of one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), _CLIP) + _BIAS
    exponent, mask = 7, 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _ulaw2lin(u: int) -> int:
    u = ~u & 0xFF
    exponent, mantissa = (u >> 4) & 0x07, u & 0x0F
    sample = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return -sample if u & 0x80 else sample


ULAW_TO_LIN = [_ulaw2lin(u) for u in range(256)]


def tone_frame(freq_hz: float, amplitude: int) -> bytes:
    """One 20 ms mu-law frame of the tone; freq_hz must fit a whole number of periods in 20 ms
    (every multiple of 50 Hz does), so repeating the frame is a continuous sine."""
    periods = freq_hz * FRAME / RATE
    if abs(periods - round(periods)) > 1e-9:
        raise ValueError(f"{freq_hz} Hz does not repeat every 20 ms; use a multiple of 50 Hz")
    return bytes(lin2ulaw(round(amplitude * math.sin(2 * math.pi * freq_hz * i / RATE)))
                 for i in range(FRAME))


def tone_level(samples: Sequence[int], freq_hz: float, rate: int = RATE) -> float:
    """The amplitude of freq_hz in samples (Goertzel): about A for a sine of amplitude A."""
    n = len(samples)
    if n == 0:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * freq_hz / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = max(0.0, s1 * s1 + s2 * s2 - coeff * s1 * s2)
    return 2 * math.sqrt(power) / n


def wav_samples(path: Path) -> tuple[int, list[int]]:
    """(rate, samples) of a 16-bit mono wav (what MixMonitor writes)."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, path
        data = w.readframes(w.getnframes())
        return w.getframerate(), list(struct.unpack(f"<{len(data) // 2}h", data))


class RtpPhone:
    """Bound at 127.0.0.1:port; starts sending its tone once Asterisk's RTP reaches it."""

    def __init__(self, port: int, tone_hz: float, amplitude: int = 6000) -> None:
        self.port = port
        self.tone_hz = tone_hz
        self._frame = tone_frame(tone_hz, amplitude)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.remote: tuple[str, int] | None = None
        self.received: list[tuple[float, bytes]] = []  # (arrival epoch seconds, mu-law)
        self.sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rtp-phone-{port}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seq, ts, ssrc = 1, 0, 0x5EED0000 + self.port
        next_send = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if self.remote is not None and now >= next_send:
                hdr = struct.pack("!BBHII", 0x80, PT_PCMU, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
                try:
                    self.sock.sendto(hdr + self._frame, self.remote)
                    self.sent += 1
                except OSError:
                    pass
                seq, ts = seq + 1, ts + FRAME
                next_send += FRAME / RATE
                if now - next_send > 0.2:  # fell far behind (a stalled machine): no burst
                    next_send = now
            wait = min(0.02, max(0.001, next_send - time.monotonic()))
            self.sock.settimeout(wait)
            try:
                data, addr = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            if len(data) < 12 or data[0] >> 6 != 2:
                continue
            cc, pt = data[0] & 0x0F, data[1] & 0x7F
            if pt != PT_PCMU:
                continue
            with self._lock:
                self.received.append((time.time(), data[12 + 4 * cc:]))
            self.remote = addr

    def heard(self, t0: float, t1: float) -> list[int]:
        """Linear samples of what arrived between t0 and t1 (epoch seconds)."""
        with self._lock:
            chunks = [p for at, p in self.received if t0 <= at < t1]
        return [ULAW_TO_LIN[b] for chunk in chunks for b in chunk]

    def packets_since(self, t0: float) -> int:
        with self._lock:
            return sum(1 for at, _ in self.received if at >= t0)

    def wait_heard(self, t0: float, seconds: float, timeout: float) -> float:
        """Wait until `seconds` of audio arrived after t0; the epoch time when it had."""
        need = int(seconds * RATE / FRAME)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                got = [at for at, _ in self.received if at >= t0]
            if len(got) >= need:
                return got[need - 1] + 1e-6
            self._stop.wait(0.05)
        raise AssertionError(f"RTP phone {self.port} ({self.tone_hz:g} Hz) heard "
                             f"{self.packets_since(t0)} packets after {t0:.3f}, not {need}, "
                             f"within {timeout:g}s")

    def first_of(self, freq_hz: float, since: float, timeout: float) -> float:
        """The arrival time of the first packet after `since` that carries freq_hz (a whole
        20 ms frame of it), waiting up to `timeout` seconds for one."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            with self._lock:
                fresh = [(at, p) for at, p in self.received[seen:] if at >= since]
                seen = len(self.received)
            for at, p in fresh:
                if tone_level([ULAW_TO_LIN[b] for b in p], freq_hz) > 1500:
                    return at
            self._stop.wait(0.05)
        raise AssertionError(f"RTP phone {self.port} never heard {freq_hz:g} Hz after "
                             f"{since:.3f} within {timeout:g}s; {self.describe()}")

    def describe(self) -> str:
        """What this phone did: packets heard and sent, the last arrival, where it sends."""
        with self._lock:
            n, last = len(self.received), (self.received[-1][0] if self.received else None)
        when = f"{last:.3f}" if last is not None else "never"
        return (f"phone {self.port}: heard {n} packets (last at {when}), sent {self.sent} "
                f"to {self.remote}, thread {'alive' if self._thread.is_alive() else 'dead'}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
