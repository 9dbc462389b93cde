"""The [storm] settings: when storm mode switches itself on and off (outages.storm.StormPolicy),
the two handling profiles (normal days and storms) and the storm watch's cadence; parsed and
checked once at startup."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import Any

from outages.storm import NORMAL, STORM, Handling, StormPolicy, check_profiles


@dataclass(frozen=True)
class StormSettings:
    policy: StormPolicy = field(default_factory=StormPolicy)
    normal: Handling = NORMAL
    storm: Handling = STORM
    # how often the CTI's storm watch reads the switch and samples the load: a console or CLI
    # switch reaches the ACD within this
    watch_every_s: float = 3.0


_POLICY_KEYS = {"aht_s", "on_ratio", "off_ratio", "min_calls_per_min", "faults_on",
                "faults_off", "calm_for_min", "manual_off_hold_min"}
_HANDLING_KEYS = {f.name for f in fields(Handling)}
KNOWN = _POLICY_KEYS | {"watch_every_s", "normal", "storm"}


def _handling(raw: object, base: Handling, what: str) -> Handling:
    if not isinstance(raw, Mapping):
        raise ValueError(f"[storm.{what}] must be a table")
    unknown = set(raw) - _HANDLING_KEYS
    if unknown:
        raise ValueError(f"[storm.{what}]: unknown setting(s) {', '.join(sorted(unknown))}")
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        current = getattr(base, key)
        if isinstance(current, bool):
            if not isinstance(value, bool):
                raise ValueError(f"[storm.{what}] {key} must be true or false")
            changes[key] = value
        elif key == "queue_cap":
            changes[key] = int(value)
        elif key == "ewt_deflect_s":
            # 0 (TOML has no null): no deflection
            changes[key] = float(value) or None
        else:
            changes[key] = float(value)
    return replace(base, **changes)


def storm_settings(raw: Mapping[str, Any]) -> StormSettings:
    """Build from the [storm] table (and its [storm.normal] and [storm.storm] tables, each a
    partial Handling over the built-in profile); unknown keys and bad values raise ValueError
    (the settings loader turns it into SettingsError with the file name)."""
    unknown = set(raw) - KNOWN
    if unknown:
        raise ValueError(f"[storm]: unknown setting(s) {', '.join(sorted(unknown))}")
    d = StormPolicy()
    policy = StormPolicy(
        aht_s=float(raw.get("aht_s", d.aht_s)),
        on_ratio=float(raw.get("on_ratio", d.on_ratio)),
        off_ratio=float(raw.get("off_ratio", d.off_ratio)),
        min_calls_per_min=float(raw.get("min_calls_per_min", d.min_calls_per_min)),
        faults_on=int(raw.get("faults_on", d.faults_on)),
        faults_off=int(raw.get("faults_off", d.faults_off)),
        calm_for=timedelta(minutes=float(raw.get("calm_for_min",
                                                 d.calm_for.total_seconds() / 60))),
        manual_off_hold=timedelta(minutes=float(raw.get(
            "manual_off_hold_min", d.manual_off_hold.total_seconds() / 60))),
    )
    normal = _handling(raw.get("normal", {}), NORMAL, "normal")
    storm = _handling(raw.get("storm", {}), STORM, "storm")
    check_profiles(normal, storm)
    every = float(raw.get("watch_every_s", StormSettings.watch_every_s))
    if not 0 < every <= 60:
        raise ValueError(f"[storm] watch_every_s must be more than 0 and at most 60, got {every}")
    return StormSettings(policy=policy, normal=normal, storm=storm, watch_every_s=every)
