"""The processes a local cluster is made of, one module each.

Control plane (every node mode): `etcd`, `apiserver`, `controller_manager`,
`scheduler`, `cert_manager`, `volume_provisioner`, and `kwok` (simulated
nodes). A real node (`node`: who it is and what it changes on the host;
`node_network`: the namespaces and bridge of a multi-node cluster), each of
its processes once per node: `kubelet` (with containerd), `kube_proxy`,
`coredns`, `kube_router`.

Each module says how its process is started (`command`) and when it is ready
(`ready`), as a `Component` (a node's: a `NodeComponent`, given the node);
`es4ps_localcluster.cluster` and `es4ps_localcluster.nodes` start them in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..cluster import Cluster
    from .node import Node


@dataclass(frozen=True)
class Component:
    """One process of the cluster: its name (for its pid record and log), command line and readiness."""

    name: str
    command: Callable[[Cluster], list[str]]
    ready: Callable[[Cluster], bool]
    start_timeout_s: float


@dataclass(frozen=True)
class NodeComponent:
    """One process of each real node: its name (per node, `Node.process_name`), command line and readiness."""

    name: str
    command: Callable[[Node], list[str]]
    ready: Callable[[Cluster, Node], bool]
    start_timeout_s: float


def reader_role(user: str, rules: list[dict]) -> list[dict]:
    """A ClusterRole that lists and watches what `rules` name, bound to the certificate user `user`."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": user},
            "rules": [{**rule, "verbs": ["get", "list", "watch"]} for rule in rules],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": user},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    ]
