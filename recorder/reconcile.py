"""The reconciler's diff: what is on disk against what the index says.

Pure: the adapter lists the folder, hashes the files and reads the index, then this decides.
- stray: a file with no index row (our name: the CTI was down at its end, so index it; any
  other name: a file that does not belong, reported only);
- missing: an index row whose file is gone;
- corrupt: a file whose SHA-256 is no longer the indexed one (never "fixed": it is evidence);
- open: a file still being written (unclosed header, recently touched), left for next time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from recorder.naming import BadRecordingName, parse


@dataclass(frozen=True)
class DiskFile:
    rel_path: str
    size: int
    sha256: str
    complete: bool
    age_s: float  # since last modified


@dataclass(frozen=True)
class IndexRow:
    recording_id: int
    rel_path: str
    sha256: str
    size: int


@dataclass
class Report:
    to_index: list[DiskFile] = field(default_factory=list)   # ours, unindexed, finished
    stray: list[DiskFile] = field(default_factory=list)      # not ours: reported only
    missing: list[IndexRow] = field(default_factory=list)
    corrupt: list[tuple[IndexRow, DiskFile]] = field(default_factory=list)
    still_open: list[DiskFile] = field(default_factory=list)
    ok: int = 0

    @property
    def clean(self) -> bool:
        return not (self.to_index or self.stray or self.missing or self.corrupt)


def diff(disk: Mapping[str, DiskFile], index: Mapping[str, IndexRow],
         settle_s: float) -> Report:
    """Compare the folder with the index; a file younger than settle_s with an open header is
    still being recorded and is neither stray nor to index yet."""
    r = Report()
    for rel, f in sorted(disk.items()):
        row = index.get(rel)
        if row is not None:
            if row.sha256 == f.sha256 and row.size == f.size:
                r.ok += 1
            else:
                r.corrupt.append((row, f))
            continue
        try:
            parse(rel)
        except BadRecordingName:
            r.stray.append(f)
            continue
        if not f.complete and f.age_s < settle_s:
            r.still_open.append(f)
        else:
            r.to_index.append(f)
    r.missing = [row for rel, row in sorted(index.items()) if rel not in disk]
    return r
