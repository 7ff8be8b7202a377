"""How a DC's Pod resolves names: the realm through its own Samba, the cluster's names through the cluster's DNS.

The DC's Samba answers clients from outside the cluster (in HostNetwork mode
on the node's address). It forwards names outside the domain's zone only to
`directory.dnsForwarder` (without one it answers them with NXDOMAIN) and
never to the cluster's DNS, so no Service name of the cluster can be read
from wherever the DC is reachable. Samba's DNS cannot forward by who asks,
so the DC's own processes, which need cluster names (the worker: the
broker's Service; the entrypoint: dc0's Service to join, the other DCs'
Services to keep the zone current), resolve through a container of their
own: dnsmasq from the DC image, on the loopback address RESOLVER_ADDRESS
(the node's loopback in HostNetwork mode: out of reach from outside the
node), sending the realm to Samba on 127.0.0.1 and every other name to the
cluster's DNS, as any Pod resolves. It keeps no cache: a DC that moved is
seen at once, and Samba's own lookups of its partners answer as Samba does.
"""

from __future__ import annotations

from typing import Any

from es4ps_contract.resolver import dnsmasq_forwarder

from ..config import OperatorConfig
from ..domain import Domain

# dnsmasq's address: loopback, never 127.0.0.1 (Samba's), nor 127.0.0.53/54 (systemd-resolved's on many nodes).
RESOLVER_ADDRESS = "127.0.0.2"
# Where the DC's Samba answers its own zone inside the Pod.
SAMBA_DNS = "127.0.0.1"


def resolver_upstream(domain: Domain, config: OperatorConfig) -> str | None:
    """Where names outside the realm go: the cluster's DNS, else the domain's forwarder, else nowhere."""
    return config.cluster_dns_ip or domain.directory.dns_forwarder


def resolver_arguments(domain: Domain, config: OperatorConfig) -> list[str]:
    """dnsmasq's command line: a forwarder on RESOLVER_ADDRESS only, the realm to the DC's own Samba."""
    upstream = resolver_upstream(domain, config)
    return dnsmasq_forwarder(RESOLVER_ADDRESS, domain.dns_domain, SAMBA_DNS, [upstream] if upstream else [])


def resolver_container(domain: Domain, config: OperatorConfig, image: str) -> dict[str, Any]:
    """The Pod's resolver (dnsmasq from the DC image): binds port 53 as root, then runs as nobody."""
    return {
        "name": "resolver",
        "image": image,
        "imagePullPolicy": config.images.pull_policy,
        "command": resolver_arguments(domain, config),
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {
            "runAsUser": 0,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "SETUID", "SETGID"]},
        },
    }


def pod_dns_config(domain: Domain, config: OperatorConfig) -> dict[str, Any]:
    """The Pod's resolv.conf: the resolver, then Samba (the realm still resolves while the resolver restarts).

    Lookups go over TCP (`use-vc`): while the DC's Samba is not up yet (a DC
    joining), dnsmasq drops a UDP question for the realm without a word and
    glibc waits out its timeout for each (40 s per name, longer than the
    startup probe allows); over TCP dnsmasq closes the connection at once and
    the lookup fails fast, as it did through the cluster's DNS.
    """
    return {
        "nameservers": [RESOLVER_ADDRESS, SAMBA_DNS],
        "options": [{"name": "use-vc"}],
        "searches": [
            f"{domain.namespace}.svc.{config.cluster_domain}",
            f"svc.{config.cluster_domain}",
            domain.dns_domain,
        ],
    }
