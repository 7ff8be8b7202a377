"""The DNS forwarder a DC's Pod and the file server run in front of the realm's DNS (dnsmasq).

Both need the realm's names answered by a DC while every other name goes to
the cluster: the operator writes this command into the DC Pod's `resolver`
container, the file server's entrypoint starts it itself. One command line,
so both forward alike: nothing read from the host's files, nothing cached
(a DC's records change as DCs join and leave), no privileges kept.
"""

from __future__ import annotations

from collections.abc import Iterable


def dnsmasq_forwarder(listen: str, realm: str, realm_server: str, upstreams: Iterable[str]) -> list[str]:
    """dnsmasq in the foreground on `listen`: the realm's names to `realm_server`, the rest to `upstreams`."""
    return [
        "dnsmasq",
        "--keep-in-foreground",
        "--log-facility=-",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        f"--listen-address={listen}",
        "--bind-interfaces",
        "--cache-size=0",
        "--pid-file=",
        "--user=nobody",
        "--group=nogroup",
        f"--server=/{realm.lower()}/{realm_server}",
        *(f"--server={server}" for server in upstreams),
    ]
