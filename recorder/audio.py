"""Facts about a recording file: is it closed, how long, how loud, its size and SHA-256.

Asterisk's wav writer fills in the RIFF sizes when it closes the file, so a file whose RIFF
size does not match its length is still being written (or Asterisk died while writing it).
"""

from __future__ import annotations

import hashlib
import math
import struct
import sys
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


@dataclass(frozen=True)
class WavFacts:
    size: int
    sha256: str
    duration_s: float
    rms: float          # of 16-bit samples, 0..32767 (0 unless asked for)
    complete: bool      # the RIFF header matches the file: Asterisk closed it


class NotAWav(ValueError):
    """The file is not a readable PCM wav."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def riff_complete(path: Path) -> bool:
    """True when the RIFF chunk size equals the file length minus 8 (the writer closed it)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    return struct.unpack("<I", head[4:8])[0] == size - 8


def _pcm_of_unclosed(path: Path) -> tuple[int, int, bytes]:
    """(rate, channels, samples) of a canonical 44-byte-header wav whose sizes were never
    filled in (the writer died): the data is whatever follows the header."""
    raw = path.read_bytes()
    if (len(raw) < 44 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE" or raw[12:16] != b"fmt "
            or raw[36:40] != b"data"):
        raise NotAWav(f"{path}: not a wav with a canonical header")
    fmt, channels, rate = struct.unpack("<HHI", raw[20:28])
    bits = struct.unpack("<H", raw[34:36])[0]
    if fmt != 1 or bits != 16 or channels < 1:
        raise NotAWav(f"{path}: not 16-bit PCM")
    return rate, channels, raw[44:]


def inspect(path: Path, *, with_rms: bool = False) -> WavFacts:
    """All the facts in one read of the samples and one of the bytes (the RMS, a pass over
    every sample in Python, only when asked: indexing does not need it)."""
    size = path.stat().st_size
    complete = riff_complete(path)
    if complete:
        try:
            with wave.open(str(path), "rb") as w:
                width, rate, channels = w.getsampwidth(), w.getframerate(), w.getnchannels()
                if width != 2:
                    raise NotAWav(f"{path}: {8 * width}-bit samples, expected 16-bit PCM")
                raw = w.readframes(w.getnframes())
        except (wave.Error, EOFError, OSError) as exc:
            raise NotAWav(f"{path}: {exc}") from exc
    else:
        rate, channels, raw = _pcm_of_unclosed(path)
    samples = array("h")
    samples.frombytes(raw[: len(raw) - len(raw) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    n = len(samples)
    rms = math.sqrt(sum(s * s for s in samples) / n) if n and with_rms else 0.0
    return WavFacts(size=size, sha256=sha256_of(path),
                    duration_s=round(n / channels / rate, 3) if rate else 0.0,
                    rms=round(rms, 1), complete=complete)
