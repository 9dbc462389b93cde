"""The FastAGI peer check's parser (ivr/agi_peer.py) on planted /proc/net/tcp{,6} text, and the
secret's place in agi_network_script (issue 10, defect 8)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from config.settings import SettingsError, load_settings
from ivr.agi_peer import parse_endpoint, socket_owner
from ivr.fastagi import script_and_key
from tests.support.settings import write_test_settings

HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
          "timeout inode")
TAIL = "00000000:00000000 00:00000000 00000000"


def line(n: int, local: str, remote: str, state: str, uid: int) -> str:
    return (f"{n:4d}: {local} {remote} {state} {TAIL} {uid:5d}        0 {40000 + n} "
            "1 0 20 4 30 10 -1")


# 127.0.0.1 on a little-endian host, as the kernel prints it; 4573 = 0x11DD, 54321 = 0xD431
LO = "0100007F"
TCP = [
    HEADER,
    line(0, f"{LO}:11DD", "00000000:0000", "0A", 0),       # the FastAGI listener (root)
    line(1, f"{LO}:D431", f"{LO}:11DD", "01", 595),        # Asterisk's end: the peer
    line(2, f"{LO}:11DD", f"{LO}:D431", "01", 0),          # the CTI's accepted end
    line(3, f"{LO}:D432", f"{LO}:11DD", "01", 1000),       # another user's connection
    line(4, f"{LO}:D433", f"{LO}:11DD", "06", 0),          # a TIME_WAIT leftover
    line(5, f"{LO}:D434", f"{LO}:270F", "01", 595),        # Asterisk's, but to another port
]
SERVER = ("127.0.0.1", 4573)


def test_the_peer_is_the_socket_whose_local_address_is_the_peers_and_remote_is_ours() -> None:
    assert socket_owner(TCP, ("127.0.0.1", 54321), SERVER, "little") == 595
    assert socket_owner(TCP, ("127.0.0.1", 54322), SERVER, "little") == 1000
    # our own accepted socket (local 4573, remote the peer) is never taken for the peer's
    assert socket_owner(TCP, ("127.0.0.1", 4573), ("127.0.0.1", 54321), "little") == 0


def test_no_socket_time_wait_or_another_connection_is_no_owner() -> None:
    assert socket_owner(TCP, ("127.0.0.1", 50000), SERVER, "little") is None  # not listed
    assert socket_owner(TCP, ("127.0.0.1", 54323), SERVER, "little") is None  # TIME_WAIT, uid 0
    # 54324 belongs to Asterisk's uid but is connected elsewhere, not to this server
    assert socket_owner(TCP, ("127.0.0.1", 54324), SERVER, "little") is None
    assert socket_owner([], ("127.0.0.1", 54321), SERVER, "little") is None


def test_the_port_filter_matches_the_address_columns_only() -> None:
    # the peer's port in hex appears elsewhere on these lines (another address's port, the
    # other column, another host's address): only local = peer and remote = us is the peer
    lines = [HEADER,
             line(0, f"{LO}:11DD", f"{LO}:D431", "01", 0),         # swapped columns
             line(1, "0200007F:D431", f"{LO}:11DD", "01", 1000),   # 127.0.0.2, same port
             line(2, f"{LO}:D431", "0100007F:11DE", "01", 1001),   # to another server port
             line(3, f"{LO}:D431", f"{LO}:11DD", "01", 595)]
    assert socket_owner(lines, ("127.0.0.1", 54321), SERVER, "little") == 595
    assert socket_owner(lines[:4], ("127.0.0.1", 54321), SERVER, "little") is None
    # lower-case hex in the wanted port would never match the kernel's upper-case text
    assert socket_owner([HEADER, line(0, f"{LO}:00AB", f"{LO}:11DD", "01", 7)],
                        ("127.0.0.1", 0xAB), SERVER, "little") == 7


def test_lines_that_do_not_parse_are_skipped() -> None:
    junk = ["", "garbage", "   9: ZZZZ:11DD 0100007F:11DD 01 x x x 595 0 1",
            "  10: 0100:11DD 0100007F:11DD 01 x x x 595 0 1", *TCP]
    assert socket_owner(junk, ("127.0.0.1", 54321), SERVER, "little") == 595


def test_a_big_endian_host_prints_addresses_in_network_order() -> None:
    lines = [HEADER, line(0, "7F000001:D431", "7F000001:11DD", "01", 595)]
    assert socket_owner(lines, ("127.0.0.1", 54321), SERVER, "big") == 595
    assert socket_owner(lines, ("127.0.0.1", 54321), SERVER, "little") is None


def test_ipv6_and_ipv4_mapped_peers_in_tcp6() -> None:
    one = "00000000000000000000000001000000"  # ::1
    mapped = "0000000000000000FFFF00000100007F"  # ::ffff:127.0.0.1
    tcp6 = [HEADER,
            line(0, f"{one}:D431", f"{one}:11DD", "01", 595),
            line(1, f"{mapped}:D432", f"{mapped}:11DD", "01", 596)]
    assert parse_endpoint(f"{one}:11DD", "little") == (ipaddress.ip_address("::1"), 4573)
    assert socket_owner(tcp6, ("::1", 54321), ("::1", 4573), "little") == 595
    # a dual-stack listener sees an IPv4 client as ::ffff:127.0.0.1; either spelling matches
    assert socket_owner(tcp6, ("::ffff:127.0.0.1", 54322), ("::ffff:127.0.0.1", 4573),
                        "little") == 596
    assert socket_owner(tcp6, ("127.0.0.1", 54322), SERVER, "little") == 596


@pytest.mark.parametrize(("script", "want"), [
    ("ivr?key=s3cret", ("ivr", "s3cret")),
    ("/ivr/?key=s3cret", ("ivr", "s3cret")),
    ("ivr?other=1&key=s3cret", ("ivr", "s3cret")),
    ("ivr", ("ivr", None)),
    ("ivr?", ("ivr", None)),
    ("ivr?key=", ("ivr", "")),
    ("ivr?key=a&key=b", ("ivr", None)),  # two keys: neither is taken
    ("", ("", None)),
])
def test_the_secret_is_the_one_key_in_the_scripts_query(script: str,
                                                        want: tuple[str, str | None]) -> None:
    assert script_and_key(script) == want


@pytest.mark.parametrize(("value", "want"), [(None, None), (True, True), (False, False)])
def test_fastagi_peer_uid_setting(tmp_path: Path, value: bool | None, want: bool | None) -> None:
    over = {} if value is None else {"fastagi": {"peer_uid": value}}
    path = write_test_settings(tmp_path / "hotline.toml", over)
    assert load_settings(path, {}).fastagi.peer_uid is want


def test_fastagi_peer_uid_must_be_a_boolean(tmp_path: Path) -> None:
    path = write_test_settings(tmp_path / "hotline.toml", {"fastagi": {"peer_uid": "yes"}})
    with pytest.raises(SettingsError, match=r"\[fastagi\] peer_uid must be true or false"):
        load_settings(path, {})
