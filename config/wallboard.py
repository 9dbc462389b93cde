"""The [wallboard] settings: the amber and red thresholds of the supervisors' wallboard (大屏),
issue 15 §5. The server judges each figure (wallboard_levels) and the page only colours what it
is told, so the big screen, the console and any other client agree.

- longest wait: amber from `longest_wait_amber_s`, red from `longest_wait_red_s` (the 95598 rule
  is an answer within about 15 s, DOMAIN.md);
- service level: amber below `service_level_amber`, red below `service_level_red`;
- abandon rate: amber from `abandon_rate_amber`, red from `abandon_rate_red`;
- agents available (ready): amber at or below `agents_ready_amber`, red at or below
  `agents_ready_red`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

Level = Literal["ok", "amber", "red"]


@dataclass(frozen=True)
class WallboardSettings:
    longest_wait_amber_s: float = 15.0
    longest_wait_red_s: float = 30.0
    service_level_amber: float = 0.85
    service_level_red: float = 0.80
    abandon_rate_amber: float = 0.05
    abandon_rate_red: float = 0.10
    agents_ready_amber: int = 2
    agents_ready_red: int = 0


def _higher_is_worse(value: float | None, amber: float, red: float) -> Level | None:
    if value is None:
        return None
    return "red" if value >= red else "amber" if value >= amber else "ok"


def _lower_is_worse(value: float | None, amber: float, red: float, *,
                    inclusive: bool = False) -> Level | None:
    if value is None:
        return None
    if inclusive:
        return "red" if value <= red else "amber" if value <= amber else "ok"
    return "red" if value < red else "amber" if value < amber else "ok"


def wallboard_levels(w: WallboardSettings, *, longest_wait_s: float,
                     service_level: float | None, abandon_rate: float | None,
                     agents_ready: int) -> dict[str, Level | None]:
    """Pure: each watched figure's colour (None: no figure yet, e.g. no call today)."""
    return {
        "longest_wait": _higher_is_worse(longest_wait_s, w.longest_wait_amber_s,
                                         w.longest_wait_red_s),
        "service_level": _lower_is_worse(service_level, w.service_level_amber,
                                         w.service_level_red),
        "abandon_rate": _higher_is_worse(abandon_rate, w.abandon_rate_amber, w.abandon_rate_red),
        "agents_ready": _lower_is_worse(agents_ready, w.agents_ready_amber, w.agents_ready_red,
                                        inclusive=True),
    }


def wallboard_settings(raw: Mapping[str, Any]) -> WallboardSettings:
    """Build from the [wallboard] table; unknown keys, bad values and a red threshold milder
    than its amber one raise ValueError (the loader names the file)."""
    if not isinstance(raw, Mapping):
        raise ValueError("[wallboard] must be a table")
    known = {f.name: f for f in fields(WallboardSettings)}
    unknown = set(raw) - set(known)
    if unknown:
        raise ValueError(f"[wallboard] unknown keys {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        is_int = name.startswith("agents_")
        if isinstance(value, bool) or not isinstance(value, int if is_int else (int, float)):
            raise ValueError(f"[wallboard] {name} must be {'a whole' if is_int else 'a'} number")
        if value < 0 or (name.startswith(("service_level", "abandon_rate")) and value > 1):
            raise ValueError(f"[wallboard] {name} = {value} is out of range"
                             + (" (a share, 0 to 1)" if not is_int and "wait" not in name
                                else ""))
        values[name] = value
    w = WallboardSettings(**values)
    for what, worse in (("longest_wait", w.longest_wait_red_s >= w.longest_wait_amber_s),
                        ("service_level", w.service_level_red <= w.service_level_amber),
                        ("abandon_rate", w.abandon_rate_red >= w.abandon_rate_amber),
                        ("agents_ready", w.agents_ready_red <= w.agents_ready_amber)):
        if not worse:
            raise ValueError(f"[wallboard] {what}: the red threshold must be at least as bad "
                             "as the amber one")
    return w
