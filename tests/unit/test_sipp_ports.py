"""The SIPp callers' ports (tests/support/sipp.py): a call never starts on a port another process
holds (Linux's ephemeral range overlaps the callers' block)."""

from __future__ import annotations

import itertools
import socket

import pytest

from tests.support import sipp


def test_a_port_held_by_another_socket_is_not_free() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        assert not sipp.udp_port_free(port)
    assert sipp.udp_port_free(port)


def test_a_call_skips_ports_that_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sipp, "_ports", itertools.count(0))
    base = 100 * sipp.SLOT
    assert sipp.free_uac_ports(taken=lambda _p: False) == sipp.uac_ports(base)
    # the next call's SIP port is taken (as by an Asterisk's socket): it gets the one after
    got = sipp.free_uac_ports(taken=lambda p: p == sipp.uac_ports(base + 1)[0])
    assert got == sipp.uac_ports(base + 2)
    # a taken media port (any of the four) or control port counts too
    got = sipp.free_uac_ports(taken=lambda p: p == sipp.uac_ports(base + 3)[1] + 3)
    assert got == sipp.uac_ports(base + 4)
    got = sipp.free_uac_ports(taken=lambda p: p == sipp.uac_ports(base + 5)[2])
    assert got == sipp.uac_ports(base + 6)


def test_no_free_ports_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="no free SIPp caller ports"):
        sipp.free_uac_ports(taken=lambda _p: True, tries=3)
