"""The real node (`NODE=real`): who it is, its network plan, and what it changes on this machine (and undoes).

Pods run for real in Debian's containerd (`kubelet`), on a bridge network from
Debian's CNI plugins, with Services through kube-proxy (iptables), names from
CoreDNS on a link-local address and NetworkPolicies from kube-router's policy
controller (`kube_proxy`, `coredns`, `kube_router`). The node is this machine:
its name, its address, its iptables, a bridge and an address on `lo`. So
there is one real node per machine, whichever checkout starts it; KWOK
clusters, by contrast, can run side by side.

Facts of this VM that shape the settings: no CAP_SYS_RESOURCE (containerd's
`restrict_oom_score_adj`, since the kubelet asks for negative OOM scores;
no raised rlimits), cgroups v1 without systemd (cgroupfs driver), no swap
accounting (`failSwapOn: false`), no dummy interfaces (the DNS address sits
on lo).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..pki import ClusterPKI, Identity

# CoreDNS's address, which the kubelet hands to Pods as their resolver (like NodeLocal DNSCache).
# It stays clear of port 53 on the node's own address, which a host-network Samba DC needs.
DNS_ADDRESS = "169.254.20.10"
POD_CIDR = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
BRIDGE = "es4ps0"


def host_ip() -> str:
    """The address of the interface that holds the default route."""
    out = subprocess.run(["ip", "-4", "route", "get", "192.0.2.123"], capture_output=True, text=True, check=True).stdout
    words = out.split()
    return words[words.index("src") + 1]


def node_name() -> str:
    return os.uname().nodename.lower()


@dataclass
class Node:
    """The node's identity and folders: what its components' configuration files and command lines need."""

    state: Path  # .local/cluster/node
    bin: Path
    pki: ClusterPKI
    kubeconfig_for: Callable[[str], Path]
    containerd_root: Path  # in the cache: imported images survive a cluster restart
    sandbox_image: str
    service_cidr: str
    ip: str = field(default_factory=host_ip)
    name: str = field(default_factory=node_name)

    @property
    def containerd_socket(self) -> Path:
        return self.state / "containerd" / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    def identities(self) -> list[Identity]:
        """The certificates the node's components need, issued by the cluster CA."""
        return [
            Identity("kubelet", f"system:node:{self.name}", ("system:nodes",)),
            Identity(
                "kubelet-serving", f"system:node:{self.name}", ("system:nodes",), (self.ip, self.name, "127.0.0.1")
            ),
            Identity("kube-proxy", "system:kube-proxy"),
            Identity("coredns", "system:coredns"),
            Identity("kube-router", "system:kube-router"),
        ]


def prepare_host() -> None:
    """Forwarding and bridge netfilter on; CoreDNS's address on lo."""
    for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"):
        Path("/proc/sys", key).write_text("1\n")
    addresses = subprocess.run(["ip", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
    if f"{DNS_ADDRESS}/32" not in addresses:
        subprocess.run(["ip", "addr", "add", f"{DNS_ADDRESS}/32", "dev", "lo"], check=True)


def clean_host(node: Node) -> None:
    """Undo what the node did to the host: mounts, network namespaces, bridge, iptables rules, DNS address."""
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(node.state))), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    for netns in Path("/var/run/netns").glob("cni-*") if Path("/var/run/netns").exists() else []:
        subprocess.run(["ip", "netns", "delete", netns.name], capture_output=True)
    subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)
    subprocess.run(["ip", "addr", "del", f"{DNS_ADDRESS}/32", "dev", "lo"], capture_output=True)
    for save, restore in (("iptables-save", "iptables-restore"), ("ip6tables-save", "ip6tables-restore")):
        rules = subprocess.run([save], capture_output=True, text=True).stdout
        kept = "\n".join(line for line in rules.splitlines() if "KUBE" not in line and "CNI-" not in line)
        if kept != rules.strip():
            subprocess.run([restore], input=kept + "\n", text=True, capture_output=True)
    # kube-router's ipsets, once no rule refers to them any more
    sets = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True).stdout.split()
    for name in sets:
        if name.startswith(("KUBE-", "inet6:KUBE-")):
            subprocess.run(["ipset", "destroy", name], capture_output=True)
