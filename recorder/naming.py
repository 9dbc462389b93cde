"""Recording file names: one wav per answered agent leg, named by the call it belongs to.

The dialplan writes `<YYYYMMDD>/<call_id>_<leg_id>_<seat>.wav` under the recordings folder
(bind-mounted into the Asterisk chroot at IN_CHROOT_DIR): call_id is the Linkedid, so every
leg of a transferred or re-queued call carries the same call id; leg_id is the agent
channel's Uniqueid; seat is the answering endpoint (or `ivr` for the caller's IVR part, or `msg`
for the voice message a customer left on a return visit: the customer's own leg, kind `ivr`).
Both ids carry the node's Asterisk systemname when it has one ("pbx1-1700000000.12"), which
keeps them unique across PBX nodes; names written before systemname was set have none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath

from config.settings import ASTERISK_ID_PATTERN

IN_CHROOT_DIR = "/var/lib/hotline/recordings"
IVR_SEAT = "ivr"
MESSAGE_SEAT = "msg"  # a return visit's voice message (回访留言), Record()ed by the dialplan
_ID = ASTERISK_ID_PATTERN  # [<systemname>-]<epoch>.<seq>
_NAME_RE = re.compile(
    rf"(?P<day>[0-9]{{8}})/(?P<call_id>{_ID})_(?P<leg_id>{_ID})_(?P<seat>[a-z]+[0-9]*)\.wav")


class BadRecordingName(ValueError):
    """A path that is not one of ours (a stray file, or an attempt to leave the folder)."""


@dataclass(frozen=True)
class RecordingName:
    day: date
    call_id: str
    leg_id: str
    seat: str

    @property
    def kind(self) -> str:
        return "ivr" if self.seat in (IVR_SEAT, MESSAGE_SEAT) else "agent"

    @property
    def message(self) -> bool:
        """A voice message: as long as the customer chose, not as long as the leg."""
        return self.seat == MESSAGE_SEAT

    @property
    def rel_path(self) -> str:
        return f"{self.day:%Y%m%d}/{self.call_id}_{self.leg_id}_{self.seat}.wav"


def parse(rel_path: str) -> RecordingName:
    """The facts in a relative recording path; BadRecordingName if it is not one of ours."""
    m = _NAME_RE.fullmatch(rel_path)
    if not m:
        raise BadRecordingName(f"not a recording name: {rel_path!r}")
    d = m["day"]
    try:
        day = date(int(d[:4]), int(d[4:6]), int(d[6:]))
    except ValueError:
        raise BadRecordingName(f"bad date in recording name: {rel_path!r}") from None
    return RecordingName(day, m["call_id"], m["leg_id"], m["seat"])


def relative_to_storage(in_chroot_path: str) -> str:
    """The dialplan reports the in-chroot path; the index keeps it relative to the folder."""
    p = PurePosixPath(in_chroot_path)
    try:
        rel = p.relative_to(IN_CHROOT_DIR)
    except ValueError:
        raise BadRecordingName(f"not under {IN_CHROOT_DIR}: {in_chroot_path!r}") from None
    return parse(str(rel)).rel_path


def resolve(storage_dir: Path, rel_path: str) -> Path:
    """The host path of an indexed recording; refuses anything that is not one of our names."""
    return storage_dir / parse(rel_path).rel_path
