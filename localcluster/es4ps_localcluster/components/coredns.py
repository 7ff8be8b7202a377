"""CoreDNS on each real node (localcluster/tools/coredns): cluster names for Pods, as a host process.

It binds only the node's DNS address on lo (node.DNS_ADDRESS, what the
kubelet gives Pods as their resolver), so a host-network Samba DC keeps port 53
on the node's own address. On the one real node everything else goes to this
machine's resolvers; the nodes of a multi-node cluster reach none (nothing
leaves the machine), so there every other name is answered NXDOMAIN at once:
a client (a Samba DC joining its domain, looking for its realm's KDC before
its own DNS serves) moves on instead of waiting for a timeout per query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..processes import http_ok
from . import NodeComponent, reader_role
from .node import DNS_ADDRESS, Node

if TYPE_CHECKING:
    from ..cluster import Cluster

READY_PORT = 18181


def write_config(node: Node) -> None:
    (node.state / "Corefile").write_text(_cluster_names(node) + (_no_outside_names() if node.netns else ""))


def _cluster_names(node: Node) -> str:
    # the one real node also forwards every other name to this machine's resolvers
    zones, outside = (
        ("cluster.local in-addr.arpa ip6.arpa", "") if node.netns else (".", "    forward . /etc/resolv.conf\n")
    )
    return f"""{zones}:53 {{
    bind {DNS_ADDRESS}
    errors
    ready {node.probe_address}:{READY_PORT}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig "{node.kubeconfig_for("coredns")}"
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
{outside}    cache 30
    loop
}}
"""


def _no_outside_names() -> str:
    """A node of a multi-node cluster reaches no resolver (nothing leaves the machine): every other name gets
    "no such name" at once, as it would from a resolver that knows nothing, not a timeout per query."""
    return f""".:53 {{
    bind {DNS_ADDRESS}
    errors
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""


def rbac_objects() -> list[dict]:
    """What CoreDNS may read."""
    return reader_role(
        "system:coredns",
        [
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"]},
        ],
    )


def command(node: Node) -> list[str]:
    return [str(node.bin / "coredns"), "-conf", str(node.state / "Corefile")]


def ready(cluster: Cluster, node: Node) -> bool:
    return http_ok(f"http://{node.probe_address}:{READY_PORT}/ready")


COREDNS = NodeComponent("coredns", command, ready, start_timeout_s=60)
