"""A real node: who it is, its folders and addresses, and what it changes on this machine (and undoes).

Pods run for real in Debian's containerd (`kubelet`), on a bridge network from
Debian's CNI plugins, with Services through kube-proxy (iptables), names from
CoreDNS on a link-local address and NetworkPolicies from kube-router's policy
controller (`kube_proxy`, `coredns`, `kube_router`).

Two kinds of real node:

- the one real node (`NODE=real`) is this machine: its name, its address, its
  iptables, a bridge and an address on `lo`. One per machine, whichever
  checkout starts it; KWOK clusters, by contrast, can run side by side.
- each node of a multi-node cluster (`NODES=3`) has a network namespace of
  its own (`node_network`) with its own address, iptables, bridge and DNS
  address on its own `lo`, and a cgroup root of its own (`/es4ps-<name>`) for
  its Pods. The mounts, the kernel, the clock and the CPUs are this machine's,
  shared by every node.

Facts of this VM that shape the settings: no CAP_SYS_RESOURCE (containerd's
`restrict_oom_score_adj`, since the kubelet asks for negative OOM scores;
no raised rlimits), cgroups v1 without systemd (cgroupfs driver), no swap
accounting (`failSwapOn: false`), no dummy interfaces (the DNS address sits
on lo).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
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
CGROUPS = Path("/sys/fs/cgroup")
NETNS_DIR = Path("/run/netns")


def host_ip() -> str:
    """The address of the interface that holds the default route."""
    out = subprocess.run(["ip", "-4", "route", "get", "192.0.2.123"], capture_output=True, text=True, check=True).stdout
    words = out.split()
    return words[words.index("src") + 1]


def node_name() -> str:
    return os.uname().nodename.lower()


@dataclass
class Node:
    """A node's identity and folders: what its components' configuration files and command lines need."""

    state: Path  # .local/cluster/node, or .local/cluster/nodes/<name>
    bin: Path
    pki: ClusterPKI
    kubeconfig_for: Callable[[str], Path]
    containerd_root: Path  # in the cache: imported images survive a cluster restart
    sandbox_image: str
    service_cidr: str
    ip: str = field(default_factory=host_ip)
    name: str = field(default_factory=node_name)
    pod_cidr: str = POD_CIDR
    # The network namespace (under /run/netns) of a node of a multi-node cluster; None: this machine's own.
    netns: str | None = None

    @property
    def netns_path(self) -> Path | None:
        return NETNS_DIR / self.netns if self.netns else None

    @property
    def cgroup_root(self) -> str:
        """Where the kubelet puts its Pods' cgroups (each node its own: one kernel's cgroups are shared)."""
        return f"/es4ps-{self.name}" if self.netns else "/"

    @property
    def probe_address(self) -> str:
        """Where this machine reaches the node's health endpoints."""
        return self.ip if self.netns else "127.0.0.1"

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    @property
    def registry_hosts(self) -> Path:
        """containerd's hosts directory: one folder per registry it needs told about (registry.trust_on_node)."""
        return self.state / "containerd" / "certs.d"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    @property
    def run_dir(self) -> Path:
        """What a node loses when it stops without warning, like a machine's /run: containerd's state, CNI leases."""
        return self.state / "run"

    @property
    def kubelet_user(self) -> str:
        return f"kubelet-{self.name}"

    def process_name(self, component: str) -> str:
        """The name of the node's process `component` in the cluster's pid records and logs."""
        return f"{self.name}-{component}" if self.netns else component

    def identities(self) -> list[Identity]:
        """The kubelet's certificates (client and serving), issued by the cluster CA."""
        return [
            Identity(self.kubelet_user, f"system:node:{self.name}", ("system:nodes",)),
            Identity(
                f"{self.kubelet_user}-serving",
                f"system:node:{self.name}",
                ("system:nodes",),
                (self.ip, self.name, "127.0.0.1"),
            ),
        ]


# What every node's kube-proxy, CoreDNS and kube-router log in as (the same user on each node).
NODE_SERVICE_IDENTITIES = [
    Identity("kube-proxy", "system:kube-proxy"),
    Identity("coredns", "system:coredns"),
    Identity("kube-router", "system:kube-router"),
]
NODE_SERVICE_USERS = tuple(identity.name for identity in NODE_SERVICE_IDENTITIES)


def prepare_host() -> None:
    """The one real node: forwarding and bridge netfilter on; CoreDNS's address on lo."""
    for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"):
        Path("/proc/sys", key).write_text("1\n")
    addresses = subprocess.run(["ip", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
    if f"{DNS_ADDRESS}/32" not in addresses:
        subprocess.run(["ip", "addr", "add", f"{DNS_ADDRESS}/32", "dev", "lo"], check=True)


def mount_points() -> list[str]:
    """Every mount point of this process's namespace, as paths (mountinfo writes a space as \\040)."""
    fields = (line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())
    return [re.sub(r"\\([0-7]{3})", lambda octal: chr(int(octal[1], 8)), field) for field in fields]


def unmount_under(folder: Path) -> None:
    """Unmount (lazily, deepest first) whatever is mounted under `folder`: Pod volumes, rootfs, shm."""
    mounts = mount_points()
    for mount in sorted((m for m in mounts if m.startswith(f"{folder}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)


def clean_host(node: Node) -> None:
    """Undo what the one real node did to the host: mounts, network namespaces, bridge, iptables, DNS address."""
    unmount_under(node.state)
    remove_pod_namespaces()
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


def remove_pod_namespaces(inodes: set[int] | None = None) -> None:
    """Delete the Pods' network namespaces containerd made (cni-*): all, or those whose nsfs inode is in `inodes`."""
    for netns in NETNS_DIR.glob("cni-*") if NETNS_DIR.exists() else []:
        with contextlib.suppress(OSError):
            if inodes is None or netns.stat().st_ino in inodes:
                subprocess.run(["ip", "netns", "delete", netns.name], capture_output=True)


# ---- a node's cgroup root (nodes of a multi-node cluster)


def _hierarchies() -> list[Path]:
    """The mounted cgroup v1 hierarchies (and the unified one, which holds nothing of ours but mirrors the tree)."""
    return [h for h in sorted(CGROUPS.iterdir()) if (h / "cgroup.procs").exists()]


def prepare_cgroups(node: Node) -> None:
    """The node's cgroup root in every hierarchy (the kubelet refuses a root that does not exist)."""
    for hierarchy in _hierarchies():
        root = hierarchy / node.cgroup_root.lstrip("/")
        root.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":  # a new cpuset has no CPUs or memory nodes until given its parent's
            for key in ("cpuset.cpus", "cpuset.mems"):
                if not (root / key).read_text().strip():
                    (root / key).write_text((hierarchy / key).read_text())


def pod_processes(node: Node) -> set[int]:
    """Every process in the node's cgroup root: its Pods' containers."""
    if not node.netns:
        raise ValueError("the one real node's Pods share this machine's cgroup root")
    pids: set[int] = set()
    for hierarchy in _hierarchies():
        root = hierarchy / node.cgroup_root.lstrip("/")
        for procs in root.rglob("cgroup.procs") if root.exists() else []:
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in procs.read_text().split())
    return pids


def kill_pods(node: Node, timeout_s: float = 30) -> set[int]:
    """SIGKILL every process of the node's Pods until none is left; the inodes of the network namespaces they had."""
    namespaces: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while (pids := pod_processes(node)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(OSError):
                namespaces.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    return namespaces


def remove_cgroups(node: Node) -> None:
    """Remove the node's cgroup tree, deepest first (its processes must be gone)."""
    for hierarchy in _hierarchies():
        root = hierarchy / node.cgroup_root.lstrip("/")
        if not root.exists():
            continue
        for folder in sorted((d for d in root.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()
