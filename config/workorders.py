"""The [workorders] settings: SLA minutes per area kind, meter-fault hours, duplicate window,
escalation thresholds, tick interval; parsed and checked once at startup."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from workorders.lifecycle import InvalidWorkOrder, SlaPolicy


@dataclass(frozen=True)
class WorkOrderSettings:
    arrival_minutes: Mapping[str, int] = field(default_factory=lambda: MappingProxyType(
        {"urban": 45, "rural": 90, "remote": 120}))
    meter_restore_hours: float = 8.0
    duplicate_window_min: float = 30.0
    escalation_thresholds: tuple[float, ...] = (0.8, 1.0)
    urge_realert_min: float = 10.0
    tick_interval_s: float = 30.0

    def policy(self) -> SlaPolicy:
        return SlaPolicy(
            arrival_minutes=MappingProxyType(dict(self.arrival_minutes)),
            meter_restore_hours=self.meter_restore_hours,
            thresholds=self.escalation_thresholds,
            duplicate_window=timedelta(minutes=self.duplicate_window_min),
            urge_realert_after=timedelta(minutes=self.urge_realert_min),
        )


KNOWN = frozenset(WorkOrderSettings.__dataclass_fields__)


def workorder_settings(raw: Mapping[str, Any]) -> WorkOrderSettings:
    """Build from the [workorders] table; unknown keys and bad values raise ValueError (the
    settings loader turns it into SettingsError with the file name)."""
    unknown = set(raw) - KNOWN
    if unknown:
        raise ValueError(f"[workorders]: unknown setting(s) {', '.join(sorted(unknown))}")
    d = WorkOrderSettings()
    arrival = raw.get("arrival_minutes", d.arrival_minutes)
    if not isinstance(arrival, Mapping):
        raise ValueError("[workorders] arrival_minutes must be a table, e.g. { urban = 45 }")
    s = WorkOrderSettings(
        arrival_minutes=MappingProxyType({str(k): int(v) for k, v in arrival.items()}),
        meter_restore_hours=float(raw.get("meter_restore_hours", d.meter_restore_hours)),
        duplicate_window_min=float(raw.get("duplicate_window_min", d.duplicate_window_min)),
        escalation_thresholds=tuple(
            float(t) for t in raw.get("escalation_thresholds", d.escalation_thresholds)),
        urge_realert_min=float(raw.get("urge_realert_min", d.urge_realert_min)),
        tick_interval_s=float(raw.get("tick_interval_s", d.tick_interval_s)),
    )
    if s.tick_interval_s <= 0:
        raise ValueError("[workorders] tick_interval_s must be positive")
    try:
        s.policy()
    except InvalidWorkOrder as exc:
        raise ValueError(f"[workorders] {exc}") from None
    return s
