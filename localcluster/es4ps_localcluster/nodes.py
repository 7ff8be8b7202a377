"""The local cluster's real nodes: start them, wait for them, lose one without warning and bring it back, stop them.

Each node runs containerd, the kubelet, kube-proxy, CoreDNS and kube-router
(`components`). The one real node (`NODE=real`) runs them on this machine's
own network; the nodes of a multi-node cluster (`NODES=3`) each in a network
namespace of their own (`components.node_network`), with their own cgroup root,
containerd image store and state. Losing a node stops it the way a machine
that loses power stops: every process of it killed at once, its Pods'
processes, mounts, network namespaces, containerd state and CNI leases gone
(what a reboot clears), its network namespace deleted; only its disk (the
kubelet's folder, the containerd image store, its volumes) stays. Bringing it
back starts it like a machine that boots again.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from . import images
from .components import NodeComponent, coredns, kube_proxy, kube_router, kubelet, node_network
from .components.apiserver import SERVICE_CIDR
from .components.node import (
    CGROUPS,
    Node,
    clean_host,
    kill_pods,
    mount_points,
    prepare_cgroups,
    prepare_host,
    remove_cgroups,
    remove_pod_namespaces,
    unmount_under,
)
from .errors import ClusterError

if TYPE_CHECKING:
    from .cluster import Cluster

# In the order they start; kube-router last: it looks up its Node object when it starts.
COMPONENTS = (kubelet.CONTAINERD, kubelet.KUBELET, kube_proxy.KUBE_PROXY, coredns.COREDNS, kube_router.KUBE_ROUTER)


class RealNodes:
    """The cluster's real nodes (`cluster.nodes`): one on this machine's network, or several in namespaces."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.nodes = cluster.nodes
        self.multi = any(node.netns for node in self.nodes)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no real node {name!r} (nodes: {', '.join(n.name for n in self.nodes)})")

    # ---- start

    def start(self) -> None:
        """Start every node's processes not already running; return when every node is Ready."""
        if self.multi:
            node_network.create_bridge()
        else:
            prepare_host()
        for node in self.nodes:
            self._prepare(node)
        host = self.cluster.image_engine()
        images.build([images.PAUSE], host)
        self._start_all(self.nodes, host)
        if self.multi:
            node_network.route_services(SERVICE_CIDR, self.nodes[0])

    def bring_back(self, name: str) -> None:
        """Start a lost node again, as a machine boots: its network, its processes; return when it is Ready."""
        node = self.node(name)
        self._prepare(node)
        self._start_all([node], self.cluster.image_engine())

    def _prepare(self, node: Node) -> None:
        kubelet.write_config(node)
        kube_proxy.write_config(node)
        coredns.write_config(node)
        if node.netns:
            node_network.add_node(node, [other for other in self.nodes if other is not node])
            prepare_cgroups(node)

    def _start_all(self, nodes: list[Node], host: str) -> None:
        for node in nodes:
            self._start(node, kubelet.CONTAINERD)
        for node in nodes:
            self._wait(node, kubelet.CONTAINERD)
            images.load(node.containerd_socket, [images.PAUSE], host)
            for component in (kubelet.KUBELET, kube_proxy.KUBE_PROXY, coredns.COREDNS):
                self._start(node, component)
        for node in nodes:
            for component in (kubelet.KUBELET, coredns.COREDNS, kube_proxy.KUBE_PROXY):
                self._wait(node, component)
            if node.netns:
                self._record_pod_cidr(node)
            self._start(node, kube_router.KUBE_ROUTER)
        for node in nodes:
            self._wait(node, kube_router.KUBE_ROUTER)

    def _start(self, node: Node, component: NodeComponent) -> None:
        self.cluster.processes.start(
            node.process_name(component.name), component.command(node), cwd=node.state, netns=node.netns_path
        )

    def _wait(self, node: Node, component: NodeComponent) -> None:
        self.cluster.processes.wait(
            node.process_name(component.name),
            lambda: component.ready(self.cluster, node),
            component.start_timeout_s,
            error=ClusterError,
        )

    def _record_pod_cidr(self, node: Node) -> None:
        """The node's Pod CIDR in its Node object, as a cluster's IPAM would write it (routes are made already)."""
        current = self.cluster.query("get", "node", node.name, "-o", "jsonpath={.spec.podCIDR}")
        if not current:
            patch = {"spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]}}
            self.cluster.kubectl("patch", "node", node.name, "--type=merge", "-p", json.dumps(patch))

    def load_images(self, built: list[images.Image], host: str) -> None:
        """Import built images into every node's containerd (the nodes at once; each skips what it has)."""
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            for done in [pool.submit(images.load, node.containerd_socket, built, host) for node in self.nodes]:
                done.result()

    # ---- stop

    def lose(self, name: str) -> None:
        """Stop a node without warning, like a power cut: nothing of it runs, its disk stays."""
        node = self.node(name)
        if not node.netns:
            raise ValueError("only a node of a multi-node cluster can be lost (the one real node is this machine)")
        for component in reversed(COMPONENTS):
            self.cluster.processes.stop(node.process_name(component.name), warn=False)
        kubelet.kill_shims(node)
        self._clear_runtime(node)
        held = node_network.remove_node(node)
        live = [n for n in self.nodes if n is not node and self.cluster.processes.pid(n.process_name("kubelet"))]
        node_network.route_services(SERVICE_CIDR, live[0] if live else None)
        if held:
            raise ClusterError(f"node {name} is lost, but not all of it: {'; '.join(held)}")

    def stop(self) -> list[str]:
        """Stop every node's processes and Pods, undo what the nodes changed on this machine, wipe their state.

        Returns what still holds a node's network namespace (nothing, unless something outside the nodes does).
        """
        for node in self.nodes:
            self.cluster.processes.stop(node.process_name(kubelet.KUBELET.name))
            kubelet.remove_workloads(node)
            for component in (kube_router.KUBE_ROUTER, coredns.COREDNS, kube_proxy.KUBE_PROXY, kubelet.CONTAINERD):
                self.cluster.processes.stop(node.process_name(component.name))
            kubelet.kill_shims(node)
            if node.netns:
                self._clear_runtime(node)
            else:
                clean_host(node)
            shutil.rmtree(node.state, ignore_errors=True)
        if not self.multi:
            return []
        remove_pod_namespaces()  # those of Pods that had ended before (their processes told nothing)
        return node_network.remove_all()

    @staticmethod
    def _clear_runtime(node: Node) -> None:
        """What a power cut clears: the Pods' processes, every other process in the node's network namespace, the
        Pods' network namespaces and mounts; containerd's state."""
        remove_pod_namespaces(kill_pods(node))
        node_network.kill_processes(node)
        unmount_under(node.state)
        shutil.rmtree(node.run_dir, ignore_errors=True)
        remove_cgroups(node)


def leftovers(cluster_state: Path, multi: bool) -> list[str]:
    """What stopped real nodes must not leave behind: mounts under the cluster's state; with several nodes also
    their namespaces, links, bridge, FORWARD rule and cgroups."""
    found = [*node_network.leftovers(), *(f"cgroup {path}" for path in node_cgroups())] if multi else []
    state = f"{cluster_state}/"
    found += [f"mount {mount}" for mount in mount_points() if mount.startswith(state)]
    return found


def node_cgroups() -> list[str]:
    """The cgroup roots of multi-node cluster nodes (`/es4ps-<name>`) in any hierarchy."""
    return sorted(str(path) for path in CGROUPS.glob("*/es4ps-*"))
