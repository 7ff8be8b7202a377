"""kube-router's network policy controller alone (localcluster/tools/kube-router): NetworkPolicies on each node.

The bridge CNI ignores NetworkPolicies; this enforces them with iptables and
ipset (its routing, service proxy and CNI stay off). Like other
implementations it admits traffic from the node itself (probes, host-network
Pods). Only v2.1.0 is served by the Go proxy, with known advisories: a local
test cluster's tool, not a recommendation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..processes import http_ok
from . import NodeComponent, reader_role

if TYPE_CHECKING:
    from ..cluster import Cluster
    from .node import Node

HEALTH_PORT = 20244


def rbac_objects() -> list[dict]:
    """What the policy controller may read."""
    return reader_role(
        "system:kube-router",
        [
            # its informers start for Services and endpoints too, even with the service proxy off
            {"apiGroups": [""], "resources": ["pods", "namespaces", "nodes", "services", "endpoints"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"]},
        ],
    )


def command(node: Node) -> list[str]:
    return [
        str(node.bin / "kube-router"),
        f"--kubeconfig={node.kubeconfig_for('kube-router')}",
        f"--hostname-override={node.name}",
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--enable-cni=false",
        f"--service-cluster-ip-range={node.service_cidr}",
        f"--health-port={HEALTH_PORT}",
        "--v=1",
    ]


def ready(cluster: Cluster, node: Node) -> bool:
    return http_ok(f"http://{node.probe_address}:{HEALTH_PORT}/healthz")


KUBE_ROUTER = NodeComponent("kube-router", command, ready, start_timeout_s=60)
