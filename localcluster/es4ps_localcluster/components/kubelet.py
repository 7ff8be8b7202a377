"""A real node's kubelet and its container runtime: Debian's containerd (CRI, runc, cgroupfs) and CNI bridge.

Pods get addresses from Debian's CNI plugins (bridge + host-local + portmap +
firewall; loopback is set up by containerd). Images come from the local
Docker engine (`es4ps_localcluster.images`), imported into containerd's
k8s.io namespace; containerd's image store lives in the cache directory so
imports survive a cluster restart.

Each node of a multi-node cluster has its own containerd (image store, state,
socket), kubelet root, CNI leases and cgroup root, so the kubelets never see
each other's Pods; its Pods' traffic to other nodes keeps their addresses
(no masquerading: `node_network` routes it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from . import NodeComponent
from .node import BRIDGE, DNS_ADDRESS, Node

if TYPE_CHECKING:
    from ..cluster import Cluster


def write_config(node: Node) -> None:
    """containerd's config.toml, the CNI network and the KubeletConfiguration."""
    for d in ("containerd/certs.d", "cni/net.d", "kubelet", "pod-logs", "run"):
        (node.state / d).mkdir(parents=True, exist_ok=True)
    (node.state / "containerd" / "config.toml").write_text(
        f"""version = 2
root = "{node.containerd_root}"
state = "{node.run_dir / "containerd"}"
[grpc]
  address = "{node.containerd_socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{node.sandbox_image}"
  # the VM lacks CAP_SYS_RESOURCE: never ask runc for a lower OOM score than ours
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".registry]
    # <host:port>/hosts.toml per registry (its CA), read at each pull: es4ps_localcluster.registry
    config_path = "{node.registry_hosts}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{node.state / "cni" / "net.d"}"
"""
    )
    network = {
        "cniVersion": "1.0.0",
        "name": "localcluster",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                # the one real node masquerades what leaves it; between nodes Pods keep their addresses
                "ipMasq": node.netns is None,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": node.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(node.run_dir / "cni-leases"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            # dockerd sets the FORWARD policy to DROP; this admits the pods' own traffic
            {"type": "firewall", "backend": "iptables"},
        ],
    }
    (node.state / "cni" / "net.d" / "10-localcluster.conflist").write_text(json.dumps(network, indent=2))
    kubelet = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(node.pki.cert("ca"))},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": node.cgroup_root,
        "containerRuntimeEndpoint": f"unix://{node.containerd_socket}",
        "clusterDNS": [DNS_ADDRESS],
        "clusterDomain": "cluster.local",
        "failSwapOn": False,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "tlsCertFile": str(node.pki.cert(f"{node.kubelet_user}-serving")),
        "tlsPrivateKeyFile": str(node.pki.key(f"{node.kubelet_user}-serving")),
        "podLogsDir": str(node.state / "pod-logs"),
        # a development machine's disk is shared with everything else: evict late, never GC our images
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
    }
    (node.state / "kubelet.json").write_text(json.dumps(kubelet, indent=2))


def containerd_command(node: Node) -> list[str]:
    return ["/usr/bin/containerd", f"--config={node.state / 'containerd' / 'config.toml'}"]


def kubelet_command(node: Node) -> list[str]:
    return [
        str(node.bin / "kubelet"),
        f"--config={node.state / 'kubelet.json'}",
        f"--kubeconfig={node.kubeconfig_for(node.kubelet_user)}",
        f"--root-dir={node.kubelet_root}",
        f"--node-ip={node.ip}",
        f"--hostname-override={node.name}",
        "--v=1",
    ]


def kubelet_ready(cluster: Cluster, node: Node) -> bool:
    """The node registered itself and reports Ready."""
    return cluster.condition_true("node", node.name)


def remove_workloads(node: Node) -> None:
    """Stop every container of the node's containerd, while it still runs."""
    ctr = ["ctr", "--address", str(node.containerd_socket), "-n", "k8s.io"]
    if not node.containerd_socket.exists():
        return
    tasks = subprocess.run([*ctr, "tasks", "ls", "-q"], capture_output=True, text=True, timeout=30).stdout.split()
    for task in tasks:
        subprocess.run([*ctr, "tasks", "kill", "-s", "SIGKILL", task], capture_output=True, timeout=30)
    for task in tasks:
        subprocess.run([*ctr, "tasks", "rm", "-f", task], capture_output=True, timeout=30)
    containers = subprocess.run([*ctr, "containers", "ls", "-q"], capture_output=True, text=True, timeout=30).stdout
    if containers.split():
        subprocess.run([*ctr, "containers", "rm", *containers.split()], capture_output=True, timeout=60)


def remove_images(node: Node, prefix: str) -> list[str]:
    """Remove the images named `prefix`... from the node's image store (a cache outliving the cluster); say which."""
    ctr = ["ctr", "--address", str(node.containerd_socket), "-n", "k8s.io"]
    names = subprocess.run([*ctr, "images", "ls", "-q"], capture_output=True, text=True, timeout=30, check=True).stdout
    doomed = [name for name in names.split() if name.startswith(prefix)]
    if doomed:
        subprocess.run([*ctr, "images", "rm", *doomed], capture_output=True, timeout=120, check=True)
    return doomed


def kill_shims(node: Node) -> None:
    """containerd shims outlive containerd; ours name our socket on their command line."""
    marker = str(node.containerd_socket).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmdline and marker in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


def containerd_ready(cluster: Cluster, node: Node) -> bool:
    """containerd answers on its socket (a socket file left by a stopped containerd does not)."""
    with socket.socket(socket.AF_UNIX) as probe:
        return probe.connect_ex(str(node.containerd_socket)) == 0


CONTAINERD = NodeComponent("containerd", containerd_command, containerd_ready, start_timeout_s=60)
KUBELET = NodeComponent("kubelet", kubelet_command, kubelet_ready, start_timeout_s=120)
