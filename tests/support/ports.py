"""Test ports, shifted by HOTLINE_TEST_SLOT (0-5) so that several suites can run at once on one
machine (one per developer work tree) without their Asterisk, broker or SIPp ports colliding."""

from __future__ import annotations

import os

SLOT = int(os.environ.get("HOTLINE_TEST_SLOT", "0"))
assert 0 <= SLOT <= 5, "HOTLINE_TEST_SLOT must be 0-5"


def port(base: int, stride: int = 100) -> int:
    """The port for this slot: base + stride * slot. Ports 15000-15099 (Asterisk's SIP and AMI,
    SIPp phones) step by 100, so each slot has its own block; keep new phones in 15000-15099."""
    return base + stride * SLOT
