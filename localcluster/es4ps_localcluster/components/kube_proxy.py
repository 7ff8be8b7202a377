"""kube-proxy on each real node: Services through iptables, ClusterIPs reachable from this machine too."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..processes import http_ok
from . import NodeComponent
from .node import CLUSTER_CIDR, Node

if TYPE_CHECKING:
    from ..cluster import Cluster

HEALTH_PORT = 10256


def write_config(node: Node) -> None:
    proxy = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(node.kubeconfig_for("kube-proxy"))},
        "mode": "iptables",
        "clusterCIDR": CLUSTER_CIDR,
        "hostnameOverride": node.name,
        # setting nf_conntrack_max needs privileges this VM does not grant
        "conntrack": {"maxPerCore": 0},
        "healthzBindAddress": f"{node.probe_address}:{HEALTH_PORT}",
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": ["primary"],
    }
    (node.state / "kube-proxy.json").write_text(json.dumps(proxy, indent=2))


def command(node: Node) -> list[str]:
    return [str(node.bin / "kube-proxy"), f"--config={node.state / 'kube-proxy.json'}", "--v=1"]


def ready(cluster: Cluster, node: Node) -> bool:
    return http_ok(f"http://{node.probe_address}:{HEALTH_PORT}/healthz")


KUBE_PROXY = NodeComponent("kube-proxy", command, ready, start_timeout_s=60)
