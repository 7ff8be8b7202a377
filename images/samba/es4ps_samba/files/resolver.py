"""How the file server finds the domain's names: a dnsmasq of its own sends the realm to the DC it joins through.

A Pod resolves through the cluster's DNS, which knows the DC's Service
(`ES4PS_JOIN_SERVER`) but not the realm's names and SRV records, which `net
ads join` and winbindd look up (without them the join fails: "failed to lookup
DC info for domain"). So at each start the entrypoint resolves the join server
once, runs dnsmasq on 127.0.0.1 sending the realm to that DC's DNS and every
other name to the Pod's own nameservers, and puts 127.0.0.1 first in
/etc/resolv.conf, the others kept after it (a restarted container finds the
file as it was left: the same file comes out).
"""

from __future__ import annotations

import socket
from pathlib import Path

from es4ps_contract.environment import SettingError

RESOLV_CONF = Path("/etc/resolv.conf")
LISTEN = "127.0.0.1"


def pod_nameservers(resolv_conf: str) -> list[str]:
    """The nameservers of resolv.conf other than this resolver's own address."""
    servers = []
    for line in resolv_conf.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and words[1] != LISTEN:
            servers.append(words[1])
    return servers


def with_resolver_first(resolv_conf: str) -> str:
    """resolv.conf with this resolver as its first nameserver, every other line as it was."""
    kept = [line for line in resolv_conf.splitlines() if line.split()[:2] != ["nameserver", LISTEN]]
    return "\n".join([f"nameserver {LISTEN}", *kept]) + "\n"


def dc_address(join_server: str) -> str:
    """The join server's address, as the Pod's DNS gives it (SettingError when it does not)."""
    try:
        return socket.getaddrinfo(join_server, 53, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except OSError as exc:
        raise SettingError(f"cannot resolve ES4PS_JOIN_SERVER {join_server!r}: {exc}") from None
