"""cti.audiosocket.protocol: AudioSocket frames in and out, without a socket (the kinds as
Asterisk 22.10's res_audiosocket sends them: 0x10 slin 8 kHz, 0x12 slin16, 0x03 DTMF)."""

from __future__ import annotations

import uuid

import pytest

from cti.audiosocket.protocol import (
    HANGUP,
    Frame,
    FrameReader,
    Kind,
    ProtocolError,
    audio,
    encode,
)


def test_frames_are_kind_length_payload() -> None:
    u = uuid.UUID("4f1c1e0c-58a4-4b8a-9d0e-2c5a2d1f9b01")
    assert encode(Kind.UUID, u.bytes) == b"\x01\x00\x10" + u.bytes
    assert HANGUP == b"\x00\x00\x00"
    assert audio(b"\x01\x02" * 160) == b"\x10\x01\x40" + b"\x01\x02" * 160
    assert audio(b"\0" * 640, 16000)[:3] == b"\x12\x02\x80"   # slin16 is 0x12, not 0x11
    with pytest.raises(ValueError):
        encode(Kind.AUDIO, b"\0" * 70000)


def test_any_split_gives_the_same_frames() -> None:
    stream = (encode(Kind.UUID, bytes(16)) + audio(b"\x07" * 320) + encode(Kind.DTMF, b"5")
              + audio(b"\x09" * 640, 16000) + HANGUP)
    whole = FrameReader().feed(stream)
    assert [f.kind for f in whole] == [0x01, 0x10, 0x03, 0x12, 0x00]
    for cut in (1, 2, 3, 7, 333):
        r = FrameReader()
        got = [f for i in range(0, len(stream), cut) for f in r.feed(stream[i:i + cut])]
        assert got == whole and r.pending == 0


def test_what_a_frame_means() -> None:
    assert Frame(Kind.AUDIO, b"").rate == 8000
    assert Frame(Kind.AUDIO_SLIN16, b"").rate == 16000
    assert Frame(Kind.DTMF, b"").rate is None
    assert Frame(Kind.DTMF, b"#").digit == "#"
    assert Frame(Kind.DTMF, b"x").digit is None          # not a key
    assert Frame(Kind.DTMF, b"12").digit is None         # not one key
    assert Frame(Kind.AUDIO, b"1").digit is None


def test_an_oversized_frame_is_refused_before_it_is_buffered() -> None:
    with pytest.raises(ProtocolError):
        FrameReader().feed(b"\x10\xff\xff")
