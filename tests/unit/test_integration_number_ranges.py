"""The integration modules' caller numbers: each module has its own two-digit ranges after the
backend's prefix (tests/integration/conftest.py, Backend.prefix). One session's modules share a
database, so a module whose numbers overlap another's would count the other's call records as
its own: test_storm_mode once waited for records of test_standby's calls, on both backends, in
CI only (where both run in one session)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
# f"{backend.prefix}7500001", f"{backend.prefix}76{next(serial):05d}", ...
NUMBER = re.compile(r"\{backend\.prefix\}(\d\d)")


def ranges() -> dict[str, set[str]]:
    used: dict[str, set[str]] = defaultdict(set)
    for module in sorted(INTEGRATION.glob("test_*.py")):
        for two in NUMBER.findall(module.read_text(encoding="utf-8")):
            used[two].add(module.stem)
    return used


def test_the_modules_number_ranges_are_found() -> None:
    used = ranges()
    # the scan sees the modules that place calls (guards against a pattern that finds nothing)
    assert {"test_acd", "test_standby", "test_storm_mode", "test_outage_first",
            "test_calendars", "test_callback_due"} <= set().union(*used.values())


def test_no_two_integration_modules_share_a_number_range() -> None:
    shared = {two: modules for two, modules in ranges().items() if len(modules) > 1}
    assert shared == {}, f"number ranges used by more than one module: {shared}"
