"""CoreDNS on each real node (localcluster/tools/coredns): cluster names for Pods, as a host process.

It binds only the node's DNS address on lo (node.DNS_ADDRESS, what the
kubelet gives Pods as their resolver), so a host-network Samba DC keeps port 53
on the node's own address; everything else goes to this machine's resolvers
(which the nodes of a multi-node cluster do not reach: nothing leaves the
machine, so outside names get no answer there).
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
    (node.state / "Corefile").write_text(
        f""".:53 {{
    bind {DNS_ADDRESS}
    errors
    ready {node.probe_address}:{READY_PORT}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {node.kubeconfig_for("coredns")}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    forward . /etc/resolv.conf
    cache 30
    loop
}}
"""
    )


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
