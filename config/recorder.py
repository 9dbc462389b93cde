"""[recorder] settings: where recordings live, whether the IVR part is recorded, retention."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder.retention import RetentionPolicy
from workorders.lifecycle import WORK_ORDER_TYPES  # the categories retention may name

DEFAULT_RETENTION: Mapping[str, int] = {"default": 180}


@dataclass(frozen=True)
class RecorderSettings:
    storage_dir: Path = Path("var/recordings")   # made absolute by load_settings
    record_ivr: bool = False
    settle_s: float = 30.0       # an unclosed file untouched this long is indexed as it is
    index_wait_s: float = 10.0   # how long the CTI waits for Asterisk to close a file
    purge_hour: int = 3          # the daily retention purge runs at this local hour
    # below this much free space the recordings disk counts as full: supervisors are alerted
    # and each leg recorded then without a whole file is logged with the reason
    min_free_mb: float = 100.0
    retention: RetentionPolicy = field(default_factory=lambda: RetentionPolicy(180))


def recorder_settings(raw: Mapping[str, Any], state_dir: Path, root: Path) -> RecorderSettings:
    """Build from the [recorder] table; the folder defaults to <state_dir>/recordings."""
    value = str(raw.get("storage_dir") or "")
    if value:
        p = Path(value)
        storage = p if p.is_absolute() else root / p
    else:
        storage = state_dir / "recordings"
    hour = int(raw.get("purge_hour", 3))
    if not 0 <= hour <= 23:
        raise ValueError(f"recorder.purge_hour must be 0-23, got {hour}")
    return RecorderSettings(
        storage_dir=storage,
        record_ivr=bool(raw.get("record_ivr", False)),
        settle_s=float(raw.get("settle_s", 30.0)),
        index_wait_s=float(raw.get("index_wait_s", 10.0)),
        purge_hour=hour,
        min_free_mb=float(raw.get("min_free_mb", 100.0)),
        retention=RetentionPolicy.from_mapping(dict(raw.get("retention", DEFAULT_RETENTION)),
                                               WORK_ORDER_TYPES),
    )
