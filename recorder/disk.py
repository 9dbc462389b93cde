"""Recording disk space: when the recordings folder counts as full, and why a leg went unrecorded.

Asterisk's MixMonitor says nothing when its writes fail (no AMI event, a file that stays empty or
stops growing), so the CTI judges each leg from the outside: the file the dialplan named, its
length against the leg's own, and the free space left where it was written. Pure, apart from
`free_bytes` (one statvfs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# a leg whose file holds this much less audio than the leg lasted was cut short; the slack covers
# the second MixMonitor needs to attach and the rounding of the dialplan's epochs
TRUNCATED_SLACK_S = 2.0

# why a leg has no (whole) recording
DISK_FULL = "disk_full"
FILE_MISSING = "file_missing"
FILE_UNREADABLE = "file_unreadable"
TRUNCATED = "truncated"


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer (Asterisk's user) may still write under path."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@dataclass(frozen=True)
class LegFile:
    """What the CTI found of one leg's recording once the leg ended."""

    exists: bool
    readable: bool  # a wav whose header and data could be read
    duration_s: float  # audio in the file (0 when not readable)
    leg_s: float | None  # how long the leg lasted (the dialplan's epochs), when known


def unrecorded(f: LegFile, free: int, min_free: int, *, was_full: bool = False
               ) -> tuple[str, str] | None:
    """(reason, detail) when the leg has no whole recording, else None. The reason is
    `disk_full` when the folder is below min_free now or was full during the leg (was_full),
    whatever the file shows: that is why it failed; otherwise what is wrong with the file."""
    if not f.exists:
        what = "no file"
    elif not f.readable:
        what = "the file is not a readable wav"
    elif f.leg_s is not None and f.duration_s < f.leg_s - TRUNCATED_SLACK_S:
        what = f"{f.duration_s:.1f}s of audio for a {f.leg_s:.0f}s leg"
    else:
        return None
    if free < min_free or was_full:
        return DISK_FULL, (f"{what}; the disk was full during the leg ({free} bytes free now, "
                           f"the recorder needs {min_free})")
    reason = (FILE_MISSING if not f.exists else FILE_UNREADABLE if not f.readable
              else TRUNCATED)
    return reason, what


class DiskState:
    """Full or not, with hysteresis: full below min_free, back to ok only above twice that, so a
    folder hovering at the edge does not alert on every recording. `update` returns the new
    state when it changed (the moment to alert supervisors), else None."""

    def __init__(self, min_free: int) -> None:
        self.min_free = min_free
        self.full = False
        self.full_until: float | None = None  # when the last full spell ended (epoch s)

    def update(self, free: int, now: float) -> str | None:
        if not self.full and free < self.min_free:
            self.full = True
            return "full"
        if self.full and free >= 2 * self.min_free:
            self.full, self.full_until = False, now
            return "ok"
        return None

    def full_since(self, epoch: float) -> bool:
        """Whether the disk was full at some time from epoch until now."""
        return self.full or (self.full_until is not None and self.full_until >= epoch)
