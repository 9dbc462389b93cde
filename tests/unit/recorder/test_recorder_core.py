"""The recorder's pure cores: file naming, retention decisions, the reconcile diff, wav facts."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from recorder.audio import NotAWav, inspect, riff_complete
from recorder.naming import BadRecordingName, parse, relative_to_storage, resolve
from recorder.reconcile import DiskFile, IndexRow, diff
from recorder.retention import RetentionError, RetentionPolicy
from tests.support.wav import leave_open, write_tone_wav

CATS = ("complaint", "consultation", "fault_repair", "report")

# ---------------------------------------------------------------------------------- naming


def test_names_carry_the_call_the_leg_and_the_seat() -> None:
    n = parse("20261127/1764210600.7_1764210612.9_seat07.wav")
    assert (n.day, n.call_id, n.leg_id, n.seat, n.kind) == (
        date(2026, 11, 27), "1764210600.7", "1764210612.9", "seat07", "agent")
    assert parse("20261127/1764210600.7_1764210600.7_ivr.wav").kind == "ivr"
    # a return visit's voice message: the customer's own leg, marked by its seat
    msg = parse("20261127/pbx1-1764210600.900000007_pbx1-1764210600.900000007_msg.wav")
    assert (msg.kind, msg.seat, msg.message) == ("ivr", "msg", True)
    assert not n.message
    assert n.rel_path == "20261127/1764210600.7_1764210612.9_seat07.wav"


@pytest.mark.parametrize("bad", [
    "planted.wav", "20261127/x_1.1_seat01.wav", "20261327/1.1_1.1_seat01.wav",
    "../20261127/1.1_1.1_seat01.wav", "20261127/1.1_1.1_seat01.wav/../../etc/passwd",
    "20261127/1.1_1.1_seat01.mp3", "/20261127/1.1_1.1_seat01.wav",
])
def test_anything_else_is_not_one_of_ours(bad: str) -> None:
    with pytest.raises(BadRecordingName):
        parse(bad)


def test_in_chroot_paths_map_into_the_folder_and_never_out_of_it(tmp_path: Path) -> None:
    rel = relative_to_storage("/var/lib/hotline/recordings/20261127/1.2_1.3_seat01.wav")
    assert rel == "20261127/1.2_1.3_seat01.wav"
    assert resolve(tmp_path, rel) == tmp_path / rel
    with pytest.raises(BadRecordingName):
        relative_to_storage("/etc/asterisk/20261127/1.2_1.3_seat01.wav")
    with pytest.raises(BadRecordingName):
        resolve(tmp_path, "../x/20261127/1.2_1.3_seat01.wav")


# ------------------------------------------------------------------------------- retention


def _policy() -> RetentionPolicy:
    return RetentionPolicy.from_mapping(
        {"default": 180, "complaint": 730, "consultation": 90, "fault_repair": 365}, CATS)


def test_complaints_are_kept_longer_than_consultations() -> None:
    p = _policy()
    assert p.keep_days(["complaint"]) == (730, "complaint")
    assert p.keep_days(["consultation"]) == (90, "consultation")
    assert p.keep_days([]) == (180, "default")
    # a consultation that became a complaint is kept as a complaint
    assert p.keep_days(["consultation", "complaint"]) == (730, "complaint")
    # a category's own rule wins over the default even when shorter
    assert p.keep_days(["consultation", "praise"]) == (90, "consultation")
    assert p.keep_days(["praise"]) == (180, "default")


def test_expiry_is_exact_to_the_day() -> None:
    p = _policy()
    start = datetime(2026, 1, 1, 8, tzinfo=UTC)
    assert not p.expired(start, ["consultation"], start + timedelta(days=90) - timedelta(1e-6))
    assert p.expired(start, ["consultation"], start + timedelta(days=90))
    assert not p.expired(start, ["complaint"], start + timedelta(days=700))


@pytest.mark.parametrize("raw, message", [
    ({"complaint": 730}, "default: missing"),
    ({"default": 0}, "at least 1"),
    ({"default": "180"}, "must be an integer"),
    ({"default": True}, "must be an integer"),
    ({"default": 180, "complain": 730}, "unknown work-order category"),
])
def test_bad_retention_settings_are_refused_clearly(raw: dict[str, object],
                                                    message: str) -> None:
    with pytest.raises(RetentionError, match=message):
        RetentionPolicy.from_mapping(raw, CATS)


# ------------------------------------------------------------------------------- reconcile

A = "20261127/1.1_1.2_seat01.wav"
B = "20261127/1.3_1.4_seat02.wav"
C = "20261127/1.5_1.6_seat03.wav"


def _f(rel: str, sha: str = "s", *, complete: bool = True, age: float = 100.0) -> DiskFile:
    return DiskFile(rel, 10, sha, complete, age)


def test_the_diff_finds_missing_stray_and_corrupt_files() -> None:
    disk = {A: _f(A), B: _f(B, "changed"), C: _f(C), "notes.txt": _f("notes.txt")}
    index = {A: IndexRow(1, A, "s", 10), B: IndexRow(2, B, "s", 10),
             "20261127/9.9_9.9_seat09.wav": IndexRow(3, "20261127/9.9_9.9_seat09.wav", "s", 10)}
    r = diff(disk, index, settle_s=30)
    assert r.ok == 1
    assert [row.recording_id for row in r.missing] == [3]
    assert [(row.recording_id, f.sha256) for row, f in r.corrupt] == [(2, "changed")]
    assert [f.rel_path for f in r.to_index] == [C]
    assert [f.rel_path for f in r.stray] == ["notes.txt"]
    assert not r.clean


def test_a_file_being_recorded_is_left_alone_until_it_settles() -> None:
    assert diff({A: _f(A, complete=False, age=2)}, {}, settle_s=30).still_open
    # Asterisk died mid-write: the header never closed, but the audio is there; index it
    assert diff({A: _f(A, complete=False, age=60)}, {}, settle_s=30).to_index
    assert diff({A: _f(A)}, {A: IndexRow(1, A, "s", 10)}, settle_s=30).clean


# -------------------------------------------------------------------------------- wav facts


def test_wav_facts(tmp_path: Path) -> None:
    tone, silent = tmp_path / "tone.wav", tmp_path / "silent.wav"
    write_tone_wav(tone, 2.5, amplitude=8000)
    write_tone_wav(silent, 1.0, amplitude=0)
    f = inspect(tone, with_rms=True)
    assert f.duration_s == pytest.approx(2.5) and f.complete
    assert f.rms == pytest.approx(8000 / math.sqrt(2), rel=0.01)
    assert f.size == tone.stat().st_size
    assert f.sha256 == hashlib.sha256(tone.read_bytes()).hexdigest()
    assert inspect(silent, with_rms=True).rms == 0
    assert inspect(tone).rms == 0  # not computed unless asked


def test_an_unclosed_wav_is_seen_as_such_and_measured_from_its_data(tmp_path: Path) -> None:
    path = tmp_path / "open.wav"
    write_tone_wav(path, 2.0, amplitude=8000)
    leave_open(path)
    assert not riff_complete(path)
    assert inspect(path).duration_s == pytest.approx(2.0)


def test_not_a_wav(tmp_path: Path) -> None:
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"not a wav at all")
    with pytest.raises(NotAWav):
        inspect(bad)
