"""AudioSocket framing, apart from any socket (as panoramisk's ami_protocol is): a frame is a
kind byte, a big-endian 16-bit payload length and the payload.

What Asterisk 22.10 sends (res_audiosocket.c, checked in the chroot's build): 0x01 the UUID
(16 bytes) first; 0x10 audio as signed 16-bit little-endian mono at 8 kHz, 0x11-0x18 the same
at 12, 16, 24, 32, 44.1, 48, 96 and 192 kHz (the channel driver's c(slinNN) codecs; the
AudioSocket() application always uses 0x10); 0x03 a DTMF digit (one ASCII byte: the
application and the channel driver both forward the caller's keys); 0x00 hangup (an empty
payload; a closed socket means the same); 0xff an error code. Asterisk accepts the audio kinds
and 0x00 from us and drops the connection on anything else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum


class Kind(IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10           # slin, 8 kHz
    AUDIO_SLIN12 = 0x11
    AUDIO_SLIN16 = 0x12
    AUDIO_SLIN24 = 0x13
    AUDIO_SLIN32 = 0x14
    AUDIO_SLIN44 = 0x15
    AUDIO_SLIN48 = 0x16
    AUDIO_SLIN96 = 0x17
    AUDIO_SLIN192 = 0x18
    ERROR = 0xFF


RATES: dict[int, int] = {Kind.AUDIO: 8000, Kind.AUDIO_SLIN12: 12000, Kind.AUDIO_SLIN16: 16000,
         Kind.AUDIO_SLIN24: 24000, Kind.AUDIO_SLIN32: 32000, Kind.AUDIO_SLIN44: 44100,
         Kind.AUDIO_SLIN48: 48000, Kind.AUDIO_SLIN96: 96000, Kind.AUDIO_SLIN192: 192000}
KIND_OF_RATE: dict[int, int] = {rate: kind for kind, rate in RATES.items()}
HEADER = struct.Struct(">BH")
# Asterisk's frames are 20 ms (640 bytes at 16 kHz, 7,680 at 192 kHz): anything much larger is
# not a peer we understand, and a frame is buffered whole before it is read
MAX_PAYLOAD = 16 * 1024
DTMF_KEYS = frozenset("0123456789*#ABCD")


class ProtocolError(Exception):
    """The peer sent something that is not AudioSocket (or more than we accept)."""


@dataclass(frozen=True)
class Frame:
    kind: int
    payload: bytes = b""

    @property
    def rate(self) -> int | None:
        """The audio's sample rate; None when this is not audio."""
        return RATES.get(self.kind)

    @property
    def digit(self) -> str | None:
        """A DTMF frame's key (0-9 * # A-D), None for anything else or a byte that is not one."""
        if self.kind != Kind.DTMF or len(self.payload) != 1:
            return None
        key = chr(self.payload[0])
        return key if key in DTMF_KEYS else None


def encode(kind: int, payload: bytes = b"") -> bytes:
    if len(payload) > 0xFFFF:
        raise ValueError(f"an AudioSocket payload holds at most 65535 bytes, not {len(payload)}")
    return HEADER.pack(kind, len(payload)) + payload


def audio(pcm: bytes, rate: int = 8000) -> bytes:
    """One audio frame of 16-bit little-endian mono PCM at `rate`."""
    return encode(KIND_OF_RATE[rate], pcm)


HANGUP = encode(Kind.HANGUP)


class FrameReader:
    """Bytes in (any split), whole frames out."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self.max_payload = max_payload

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        while len(self._buf) >= HEADER.size:
            kind, length = HEADER.unpack_from(self._buf)
            if length > self.max_payload:
                raise ProtocolError(f"frame of kind 0x{kind:02x} announces {length} bytes "
                                    f"(at most {self.max_payload})")
            end = HEADER.size + length
            if len(self._buf) < end:
                break
            out.append(Frame(kind, bytes(self._buf[HEADER.size:end])))
            del self._buf[:end]
        return out

    @property
    def pending(self) -> int:
        """Bytes of a frame not yet whole."""
        return len(self._buf)
