"""The network of a multi-node cluster on one machine: a namespace per node on one bridge, routes per Pod CIDR.

    this machine (root namespace)                 node i (network namespace es4ps-node<i>)
    bridge es4ps-nodes 10.243.0.1/24  <-- veth -->  eth0 10.243.0.<10+i>/24, default route via 10.243.0.1
    route 10.244.<i>.0/24 via 10.243.0.<10+i>       lo 169.254.20.10 (its CoreDNS), bridge es4ps0 10.244.<i>.1/24
    route 10.96.0.0/16 (Services) via one node      route 10.244.<j>.0/24 via 10.243.0.<10+j> for every other node

Every address is private and lives only on this machine: the bridge and the
namespaces are made here and removed by `remove_all`. Pod traffic between
nodes is routed, never masqueraded, so a NetworkPolicy on one node sees the
other node's Pod addresses (kube-router's ipsets hold every Pod of the
cluster). The machine reaches the nodes (the API server's kubelet calls, a
test talking to a host-network DC), the Pods and, through one node's
kube-proxy, the Services; the nodes reach the API server and a test's SMTP
server at the bridge's address. Nothing is forwarded off the machine.

dockerd sets the FORWARD policy to DROP and loads br_netfilter, so frames
bridged between two nodes would pass iptables' FORWARD chain and be dropped:
one rule, tagged with a comment, admits what stays on the nodes' bridge.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from .node import DNS_ADDRESS, NETNS_DIR, Node

BRIDGE = "es4ps-nodes"
NODE_NETWORK = "10.243.0.0/24"
GATEWAY = "10.243.0.1"  # this machine, as the nodes see it
PREFIX_LENGTH = 24
NETNS_PREFIX = "es4ps-"
FORWARD_RULE = ["FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-m", "comment", "--comment", "es4ps nodes", "-j", "ACCEPT"]
MAX_NODES = 9
SYS_NET = Path("/sys/class/net")  # this machine's links (sysfs of its own network namespace)


def node_address(index: int) -> str:
    """Node `index`'s (1..9) address on the nodes' bridge."""
    return f"10.243.0.{10 + index}"


def pod_cidr(index: int) -> str:
    """Node `index`'s Pod addresses (inside the cluster's 10.244.0.0/16; the one real node has 10.244.0.0/24)."""
    return f"10.244.{index}.0/24"


def netns_name(node_name: str) -> str:
    return f"{NETNS_PREFIX}{node_name}"


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed: {proc.stderr.strip()}")
    return proc


def _veth(node: Node) -> str:
    """The node's link on the bridge, this machine's side (interface names have at most 15 characters)."""
    return f"es4ps-{node.name}"[:15]


def create_bridge() -> None:
    """The nodes' bridge with this machine's address on it, and the rule that lets frames cross it."""
    if _run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{GATEWAY}/{PREFIX_LENGTH}", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
    if _run("iptables", "-C", *FORWARD_RULE, check=False).returncode != 0:
        _run("iptables", "-I", *FORWARD_RULE)


def add_node(node: Node, others: list[Node]) -> None:
    """The node's namespace, its link to the bridge, its addresses and routes; this machine's route to its Pods."""
    assert node.netns, node.name
    if (NETNS_DIR / node.netns).exists():
        return
    _run("ip", "netns", "add", node.netns)
    inside = ("ip", "-n", node.netns)
    _run("ip", "link", "add", _veth(node), "type", "veth", "peer", "name", "eth0", "netns", node.netns)
    _run("ip", "link", "set", _veth(node), "master", BRIDGE, "up")
    _run(*inside, "link", "set", "lo", "up")
    _run(*inside, "addr", "add", f"{DNS_ADDRESS}/32", "dev", "lo")
    _run(*inside, "addr", "add", f"{node.ip}/{PREFIX_LENGTH}", "dev", "eth0")
    _run(*inside, "link", "set", "eth0", "up")
    _run(*inside, "route", "add", "default", "via", GATEWAY)
    for other in others:
        _run(*inside, "route", "add", other.pod_cidr, "via", other.ip)
    # forwarding for the node's Pods; bridged Pod traffic through iptables (kube-proxy, kube-router)
    _run("ip", "netns", "exec", node.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    _run("ip", "netns", "exec", node.netns, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
    _run("ip", "route", "replace", node.pod_cidr, "via", node.ip)


def _namespace_of(netns: Path) -> tuple[int, int] | None:
    """The network namespace mounted at `netns` as (device, inode) of nsfs; None if there is none."""
    try:
        found = netns.stat()
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def _is(path: Path, namespace: tuple[int, int]) -> bool:
    """Whether `path` (a process's ns/net, an open descriptor) is the namespace `namespace`."""
    try:
        found = path.stat()
    except OSError:  # the process ended meanwhile, or the descriptor closed
        return False
    return (found.st_dev, found.st_ino) == namespace


def _processes() -> list[Path]:
    return [proc for proc in Path("/proc").iterdir() if proc.name.isdigit()]


def kill_processes(node: Node, timeout_s: float = 30) -> None:
    """SIGKILL every process still in the node's network namespace, as a power cut stops everything on a machine.

    Beyond the Pods (their cgroups) and the node's own components: whatever else one of them started there
    (a runc or CNI plugin its killed parent left running, an `ip netns exec` helper). One such process keeps the
    namespace alive after `ip netns delete`, and with it the node's link on the bridge (`holders` says so).
    """
    assert node.netns_path, node.name
    namespace = _namespace_of(node.netns_path)
    deadline = time.monotonic() + timeout_s
    while namespace and time.monotonic() < deadline:
        inside = [int(proc.name) for proc in _processes() if _is(proc / "ns" / "net", namespace)]
        if not inside:
            return
        for pid in inside:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def holders(namespace: tuple[int, int]) -> list[str]:
    """What keeps a network namespace alive once `ip netns delete` removed its file: a process in it or holding it
    open. (Not a mount of it in another mount namespace: removing the file unmounts those too.)"""
    found = []
    for proc in _processes():
        with contextlib.suppress(OSError):  # the process ended meanwhile
            what = f"process {proc.name} ({(proc / 'comm').read_text().strip()})"
            if _is(proc / "ns" / "net", namespace):
                found.append(f"{what} runs in it")
            elif any(_is(fd, namespace) for fd in (proc / "fd").iterdir()):
                found.append(f"{what} holds it open")
    return found


def _delete_namespace(netns: Path) -> list[str]:
    """`ip netns delete`; then what still holds the namespace (nothing, normally)."""
    namespace = _namespace_of(netns)
    _run("ip", "netns", "delete", netns.name, check=False)
    return [f"{netns.name}'s network namespace: {held}" for held in holders(namespace)] if namespace else []


def remove_node(node: Node) -> list[str]:
    """The node's namespace: its link, addresses, iptables and ipsets go with it. Returns what still holds the
    namespace (nothing, unless something outside the node keeps it).

    The routes to its Pods stay (on this machine and the other nodes): traffic for them finds no one on the
    bridge, and never takes this machine's default route off the machine.
    """
    held = _delete_namespace(node.netns_path) if node.netns_path else []
    _run("ip", "link", "delete", _veth(node), check=False)
    return held


def route_services(service_cidr: str, via: Node | None) -> None:
    """This machine reaches the Services through `via`'s kube-proxy (as the one real node reaches them itself)."""
    if via is None:
        _run("ip", "route", "del", service_cidr, check=False)
    else:
        _run("ip", "route", "replace", service_cidr, "via", via.ip)


def _links() -> list[str]:
    """This machine's links of ours: the bridge and the nodes' links on it."""
    return sorted(path.name for path in SYS_NET.glob(f"{NETNS_PREFIX}*"))


def remove_all() -> list[str]:
    """Every node namespace of ours, the nodes' links, the bridge (and the routes through it), the FORWARD rule.

    Deleting a node's link deletes its pair inside the namespace too, even in a namespace something still holds;
    returns what holds one (nothing, unless something outside the nodes keeps it).
    """
    held = []
    for netns in sorted(NETNS_DIR.glob(f"{NETNS_PREFIX}*")) if NETNS_DIR.exists() else []:
        held += _delete_namespace(netns)
    for link in _links():
        _run("ip", "link", "delete", link, check=False)
    while _run("iptables", "-C", *FORWARD_RULE, check=False).returncode == 0:
        _run("iptables", "-D", *FORWARD_RULE)
    return held


def leftovers() -> list[str]:
    """What `remove_all` removes, if any of it is still there (for `cluster-down`'s check and the tests)."""
    namespaces = sorted(NETNS_DIR.glob(f"{NETNS_PREFIX}*")) if NETNS_DIR.exists() else []
    found = [f"network namespace {netns.name}" for netns in namespaces]
    found += [f"bridge {link}" if link == BRIDGE else f"link {link}" for link in _links()]
    if _run("iptables", "-C", *FORWARD_RULE, check=False).returncode == 0:
        found.append("iptables FORWARD rule 'es4ps nodes'")
    return found
