"""recorder.disk: why a leg went unrecorded, and when the recordings disk counts as full."""

from __future__ import annotations

from recorder.disk import (
    DISK_FULL,
    FILE_MISSING,
    FILE_UNREADABLE,
    TRUNCATED,
    DiskState,
    LegFile,
    unrecorded,
)

MB = 1024 * 1024


def test_a_whole_recording_has_no_reason_even_on_a_full_disk() -> None:
    assert unrecorded(LegFile(True, True, 11.5, 12.0), free=0, min_free=MB) is None
    assert unrecorded(LegFile(True, True, 3.0, None), free=0, min_free=MB) is None


def test_a_full_disk_is_the_reason_whatever_the_file_shows() -> None:
    for f in (LegFile(False, False, 0.0, 12.0), LegFile(True, False, 0.0, 12.0),
              LegFile(True, True, 4.0, 12.0)):
        why = unrecorded(f, free=4096, min_free=MB)
        assert why is not None and why[0] == DISK_FULL
        assert "4096 bytes free" in why[1]


def test_a_disk_full_during_the_leg_is_the_reason_after_space_came_back() -> None:
    why = unrecorded(LegFile(True, True, 4.0, 12.0), free=100 * MB, min_free=MB, was_full=True)
    assert why is not None and why[0] == DISK_FULL


def test_with_room_the_reason_is_what_is_wrong_with_the_file() -> None:
    room = 100 * MB
    assert unrecorded(LegFile(False, False, 0.0, 12.0), room, MB)[0] == FILE_MISSING  # type: ignore[index]
    assert unrecorded(LegFile(True, False, 0.0, 12.0), room, MB)[0] == FILE_UNREADABLE  # type: ignore[index]
    why = unrecorded(LegFile(True, True, 4.0, 12.0), room, MB)
    assert why == (TRUNCATED, "4.0s of audio for a 12s leg")


def test_disk_state_alerts_once_each_way_with_hysteresis() -> None:
    d = DiskState(MB)
    assert d.update(10 * MB, now=1.0) is None
    assert d.update(MB - 1, now=2.0) == "full"
    assert d.update(0, now=3.0) is None  # still full: no second alert
    assert d.update(int(1.5 * MB), now=4.0) is None  # at the edge: not back yet
    assert d.full and d.full_since(100.0)
    assert d.update(2 * MB, now=5.0) == "ok"
    assert not d.full
    assert d.full_since(4.5) and not d.full_since(5.5)
    assert d.update(MB - 1, now=6.0) == "full"
