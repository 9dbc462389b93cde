"""Recording files for tests: 8 kHz 16-bit mono wavs of a sine tone, as Asterisk's MixMonitor
writes them, closed or still open."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

RATE = 8000


def write_tone_wav(path: Path, seconds: float, *, amplitude: int = 5000,
                   freq_hz: float = 440.0) -> None:
    """A closed wav of `seconds` of tone (amplitude 0 gives digital silence); makes the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(
            struct.pack("<h", int(amplitude * math.sin(2 * math.pi * freq_hz * i / RATE)))
            for i in range(int(RATE * seconds))))


def leave_open(path: Path) -> None:
    """Zero the RIFF and data sizes, as a writer that has not closed the file leaves them."""
    raw = bytearray(path.read_bytes())
    raw[4:8] = raw[40:44] = struct.pack("<I", 0)
    path.write_bytes(bytes(raw))
