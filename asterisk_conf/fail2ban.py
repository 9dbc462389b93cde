"""The SIP brute-force ban: a private fail2ban server's configuration, rendered from settings.

Asterisk writes its security events (a failed digest, an unknown account, an ACL refusal) to
security.log (logger.conf.j2). fail2ban, from Debian's packages, reads that file with Debian's own
`asterisk` filter and, after `maxretry` failures from one address within `findtime` seconds,
puts the address in an nftables set that rejects its packets to the SIP port for `bantime`
seconds; then the address is let in again.

Why fail2ban rather than a banner of our own reading AMI's `security` events: it is the tool an
auditor expects and knows, its filter for Asterisk's security log is maintained upstream, it keeps
banning when the CTI is down (a ban that depends on the CTI would stop with it), and the AMI user
of the CTI then needs no `security` read class.

The server is the hotline's own (its own config folder, socket, pid and nftables table), so it
neither needs nor disturbs a fail2ban the host may run. Carrier addresses are never banned: a
carrier that sends a few bad requests must not take the hotline off the network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEBIAN_FAIL2BAN = Path("/etc/fail2ban")
JAIL = "hotline-sip"
TABLE = "hotline-f2b"


@dataclass(frozen=True)
class BanPolicy:
    maxretry: int = 5  # failures from one address ...
    findtime_s: int = 600  # ... within this time ...
    bantime_s: int = 3600  # ... ban it for this long
    # nftables table of this server's set and rule; one per fail2ban server on the host
    table: str = TABLE


def render(*, security_log: Path, run_dir: Path, sip_port: int, ignore: Sequence[str],
           policy: BanPolicy = BanPolicy(), sip_tls_port: int = 0) -> dict[str, str]:
    """fail2ban.conf and jail.local of the hotline's fail2ban server, as {name: text}. A banned
    address is shut out of the SIP port and, when [pbx] sip_tls_port is on, the TLS one."""
    ports = ",".join(str(p) for p in (sip_port, sip_tls_port) if p)
    server = (
        "[Definition]\n"
        "loglevel = INFO\n"
        f"logtarget = {run_dir / 'fail2ban.log'}\n"
        f"socket = {run_dir / 'fail2ban.sock'}\n"
        f"pidfile = {run_dir / 'fail2ban.pid'}\n"
        "dbfile = :memory:\n"
        "dbpurgeage = 1d\n"
        "syslogsocket = auto\n"
        "allowipv6 = auto\n"
        "\n[Thread]\n"
    )
    ignoreip = " ".join(["127.0.0.1/8", "::1", *ignore])
    jail = (
        "[DEFAULT]\n"
        "backend = polling\n"
        "usedns = no\n"
        f"ignoreip = {ignoreip}\n"
        f"\n[{JAIL}]\n"
        "enabled = true\n"
        "filter = asterisk\n"
        f"logpath = {security_log}\n"
        f"maxretry = {policy.maxretry}\n"
        f"findtime = {policy.findtime_s}\n"
        f"bantime = {policy.bantime_s}\n"
        # only SIP is closed to the address: UDP and TCP, on the SIP and the SIP-over-TLS port
        f'action = nftables-multiport[name={JAIL}, port="{ports}", protocol="udp,tcp", '
        f"table={policy.table}, blocktype=drop]\n"
    )
    return {"fail2ban.conf": server, "jail.local": jail}


def write(files: Mapping[str, str], conf_dir: Path) -> None:
    """The config folder fail2ban-server -c reads: ours plus Debian's filters and actions."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf_dir.chmod(0o750)
    for name, text in files.items():
        (conf_dir / name).write_text(text, encoding="utf-8")
    (conf_dir / "jail.conf").write_text("", encoding="utf-8")
    for sub in ("filter.d", "action.d"):
        link = conf_dir / sub
        if not link.is_symlink():
            link.symlink_to(DEBIAN_FAIL2BAN / sub)


def server_command(conf_dir: Path, run_dir: Path) -> list[str]:
    """The server in the foreground (so its pid is the caller's child), jails loaded from this
    config: `fail2ban-client -f start` execs the server after reading the config."""
    return ["fail2ban-client", "-c", str(conf_dir), "-s", str(run_dir / "fail2ban.sock"),
            "-p", str(run_dir / "fail2ban.pid"), "-x", "-f", "start"]


def client_command(run_dir: Path, *args: str) -> list[str]:
    return ["fail2ban-client", "-s", str(run_dir / "fail2ban.sock"), *args]


__all__ = ["JAIL", "TABLE", "BanPolicy", "client_command", "render", "server_command", "write"]
