"""Who is at the other end of a loopback TCP connection: the uid that owns the peer's socket.

FastAGI has no authentication of its own. Asterisk runs as its own user (hotline-asterisk), in a
chroot but on the host's network, so the socket it connects from is listed in the host's
/proc/net/tcp (or tcp6) with that user's uid. The peer's socket is the line whose local address
is the peer's address:port and whose remote address is ours.

`socket_owner` is the pure parser (unit-tested on planted text); `proc_peer_uid` reads /proc.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Endpoint = tuple[str, int]
ByteOrder = Literal["little", "big"]

PROC_NET = Path("/proc/net")
# a socket in TIME_WAIT is a kernel leftover with uid 0 and no owner: never the peer
TCP_TIME_WAIT = "06"


def _norm(addr: str) -> IpAddress:
    ip = ipaddress.ip_address(addr.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_endpoint(field: str, byteorder: ByteOrder = sys.byteorder) -> tuple[IpAddress, int]:
    """'0100007F:11E5' (or the 32-hex-digit IPv6 form) as the kernel prints it: each 32-bit word
    of the address in host byte order, the port in plain hex."""
    addr_hex, port_hex = field.split(":")
    if len(addr_hex) not in (8, 32):
        raise ValueError(f"address {addr_hex!r} is neither IPv4 nor IPv6")
    raw = b"".join(int(addr_hex[i:i + 8], 16).to_bytes(4, byteorder)
                   for i in range(0, len(addr_hex), 8))
    ip: IpAddress = ipaddress.IPv4Address(raw) if len(raw) == 4 else ipaddress.IPv6Address(raw)
    return _norm(str(ip)), int(port_hex, 16)


def socket_owner(lines: Iterable[str], peer: Endpoint, local: Endpoint,
                 byteorder: ByteOrder = sys.byteorder) -> int | None:
    """The uid owning the socket at `peer` that is connected to `local`, from /proc/net/tcp{,6}
    lines (headers and lines that do not parse are skipped); None when no such socket is listed
    (not on this host, already gone, or only a TIME_WAIT leftover)."""
    want_peer = (_norm(peer[0]), int(peer[1]))
    want_local = (_norm(local[0]), int(local[1]))
    # the kernel prints ports as 4 upper-case hex digits: a line whose ports differ is skipped
    # before any address is parsed (under load the table has hundreds of lines, and parsing
    # each was a tenth of the CTI's CPU per call: RELIABILITY.md, the CTI's profile)
    peer_port, local_port = f":{want_peer[1]:04X}", f":{want_local[1]:04X}"
    for line in lines:
        if peer_port not in line:
            continue
        cols = line.split()
        if (len(cols) < 8 or not cols[0].endswith(":") or cols[3] == TCP_TIME_WAIT
                or not cols[1].endswith(peer_port) or not cols[2].endswith(local_port)):
            continue
        try:
            if (parse_endpoint(cols[1], byteorder) == want_peer
                    and parse_endpoint(cols[2], byteorder) == want_local):
                return int(cols[7])
        except ValueError:
            continue
    return None


def proc_peer_uid(peer: Endpoint, local: Endpoint, proc_net: Path = PROC_NET) -> int | None:
    """The uid of the local process socket at `peer` (connected to us at `local`), from this
    host's /proc/net/tcp and tcp6; None if it is not a socket of this host's network."""
    for name in ("tcp", "tcp6"):
        try:
            text = (proc_net / name).read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        uid = socket_owner(text.splitlines(), peer, local)
        if uid is not None:
            return uid
    return None
