"""Test ports, shifted by the slot (0-5) so that several suites can run at once on one machine
(one per developer work tree, and one per xdist worker) without their Asterisk, broker or SIPp
ports colliding."""

from __future__ import annotations

import os

# `make test` runs the suite in two pytest-xdist workers (gw0, gw1): each takes the next slot
# from HOTLINE_TEST_SLOT, so a `make test` on slot 0 holds slots 0 and 1
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
SLOT = int(os.environ.get("HOTLINE_TEST_SLOT", "0")) + (
    int(_WORKER.removeprefix("gw")) if _WORKER.startswith("gw") else 0)
assert 0 <= SLOT <= 5, "HOTLINE_TEST_SLOT (plus the xdist worker's number) must be 0-5"


def port(base: int, stride: int = 100) -> int:
    """The port for this slot: base + stride * slot. Ports 15000-15099 (Asterisk's SIP and AMI,
    SIPp phones) step by 100, so each slot has its own block; keep new phones in 15000-15099."""
    return base + stride * SLOT
