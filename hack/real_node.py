"""The real node of the local cluster: containerd, kubelet, kube-proxy, CoreDNS and kube-router on this machine.

Used by hack/local_cluster.py for `make cluster NODE=real`. Pods run for real in
Debian's containerd (CRI plugin, runc, cgroupfs), on a bridge network from
Debian's CNI plugins (bridge + host-local + portmap + firewall; loopback is
set up by containerd), with Services through kube-proxy (iptables) and names from
CoreDNS running as a host process on a link-local address the kubelet hands
to pods as their resolver (like NodeLocal DNSCache; it stays clear of port 53
on the node's own IP, which a host-network Samba DC needs). NetworkPolicies are
enforced by kube-router's network policy controller alone (iptables + ipset;
its routing and service proxy stay off), since the bridge CNI ignores them.
Like other implementations it admits traffic from the node itself (probes,
host-network Pods).

Facts of this VM that shape the settings: no CAP_SYS_RESOURCE (containerd's
`restrict_oom_score_adj`, since the kubelet asks for negative OOM scores;
no raised rlimits), cgroups v1 without systemd (cgroupfs driver), no swap
accounting (`failSwapOn: false`), no dummy interfaces (the DNS address sits
on lo). Images come from the local Docker engine (hack/local_images.py), imported
into containerd's k8s.io namespace; containerd's image store lives in the
cache directory so imports survive a cluster restart.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

DNS_ADDRESS = "169.254.20.10"
POD_CIDR = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
BRIDGE = "es4ps0"
KUBE_ROUTER_HEALTH_PORT = 20244


def host_ip() -> str:
    """The address of the interface that holds the default route."""
    out = subprocess.run(["ip", "-4", "route", "get", "192.0.2.123"], capture_output=True, text=True, check=True).stdout
    words = out.split()
    return words[words.index("src") + 1]


def node_name() -> str:
    return os.uname().nodename.lower()


class RealNode:
    """Configuration files and command lines of the node's components, plus host setup and teardown."""

    def __init__(
        self, state: Path, cache: Path, bin_dir: Path, pki, kubeconfig_for, sandbox_image: str, service_cidr: str
    ) -> None:
        self.state = state / "node"
        self.service_cidr = service_cidr
        self.containerd_root = cache / "containerd"
        self.bin = bin_dir
        self.pki = pki
        self.kubeconfig_for = kubeconfig_for
        self.sandbox_image = sandbox_image
        self.ip = host_ip()
        self.name = node_name()

    @property
    def containerd_socket(self) -> Path:
        return self.state / "containerd" / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    # ---- certificates the node's components need (issued by the cluster CA)

    def certificates(self) -> list[tuple[str, str, list[str], list[str], bool]]:
        """(file name, CN, organisations, SANs, server) for PKI._issue."""
        return [
            ("kubelet", f"system:node:{self.name}", ["system:nodes"], [], False),
            ("kubelet-serving", f"system:node:{self.name}", ["system:nodes"], [self.ip, self.name, "127.0.0.1"], True),
            ("kube-proxy", "system:kube-proxy", [], [], False),
            ("coredns", "system:coredns", [], [], False),
            ("kube-router", "system:kube-router", [], [], False),
        ]

    # ---- configuration

    def write_config(self) -> None:
        p = self.pki.path
        for d in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "pod-logs"):
            (self.state / d).mkdir(parents=True, exist_ok=True)
        (self.state / "containerd" / "config.toml").write_text(
            f"""version = 2
root = "{self.containerd_root}"
state = "{self.state / "containerd" / "state"}"
[grpc]
  address = "{self.containerd_socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{self.sandbox_image}"
  # the VM lacks CAP_SYS_RESOURCE: never ask runc for a lower OOM score than ours
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{self.state / "cni" / "net.d"}"
"""
        )
        network = {
            "cniVersion": "1.0.0",
            "name": "es4ps",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.state / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                # dockerd sets the FORWARD policy to DROP; this admits the pods' own traffic
                {"type": "firewall", "backend": "iptables"},
            ],
        }
        (self.state / "cni" / "net.d" / "10-es4ps.conflist").write_text(json.dumps(network, indent=2))
        kubelet = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(p("ca", "crt"))},
            },
            "authorization": {"mode": "Webhook"},
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "clusterDNS": [DNS_ADDRESS],
            "clusterDomain": "cluster.local",
            "failSwapOn": False,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "tlsCertFile": str(p("kubelet-serving", "crt")),
            "tlsPrivateKeyFile": str(p("kubelet-serving", "key")),
            "podLogsDir": str(self.state / "pod-logs"),
            # a development machine's disk is shared with everything else: evict late, never GC our images
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
        }
        (self.state / "kubelet.json").write_text(json.dumps(kubelet, indent=2))
        proxy = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.kubeconfig_for("kube-proxy"))},
            "mode": "iptables",
            "clusterCIDR": CLUSTER_CIDR,
            "hostnameOverride": self.name,
            # setting nf_conntrack_max needs privileges this VM does not grant
            "conntrack": {"maxPerCore": 0},
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "nodePortAddresses": ["primary"],
        }
        (self.state / "kube-proxy.json").write_text(json.dumps(proxy, indent=2))
        (self.state / "Corefile").write_text(
            f""".:53 {{
    bind {DNS_ADDRESS}
    errors
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {self.kubeconfig_for("coredns")}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    forward . /etc/resolv.conf
    cache 30
    loop
}}
"""
        )

    def rbac_objects(self) -> list[dict]:
        """What CoreDNS and kube-router's policy controller may read."""
        return [
            *_reader_role(
                "system:coredns",
                [
                    {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"]},
                    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"]},
                ],
            ),
            *_reader_role(
                "system:kube-router",
                [
                    # its informers start for Services and endpoints too, even with the service proxy off
                    {"apiGroups": [""], "resources": ["pods", "namespaces", "nodes", "services", "endpoints"]},
                    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"]},
                    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"]},
                ],
            ),
        ]

    # ---- host setup

    def prepare_host(self) -> None:
        for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"):
            Path("/proc/sys", key).write_text("1\n")
        addresses = subprocess.run(["ip", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
        if f"{DNS_ADDRESS}/32" not in addresses:
            subprocess.run(["ip", "addr", "add", f"{DNS_ADDRESS}/32", "dev", "lo"], check=True)

    # ---- command lines

    def commands(self) -> dict[str, list[str]]:
        return {
            "containerd": ["/usr/bin/containerd", f"--config={self.state / 'containerd' / 'config.toml'}"],
            "kubelet": [
                str(self.bin / "kubelet"),
                f"--config={self.state / 'kubelet.json'}",
                f"--kubeconfig={self.kubeconfig_for('kubelet')}",
                f"--root-dir={self.kubelet_root}",
                f"--node-ip={self.ip}",
                f"--hostname-override={self.name}",
                "--v=1",
            ],
            "kube-proxy": [str(self.bin / "kube-proxy"), f"--config={self.state / 'kube-proxy.json'}", "--v=1"],
            "coredns": [str(self.bin / "coredns"), "-conf", str(self.state / "Corefile")],
            "kube-router": [
                str(self.bin / "kube-router"),
                f"--kubeconfig={self.kubeconfig_for('kube-router')}",
                f"--hostname-override={self.name}",
                "--run-firewall=true",
                "--run-router=false",
                "--run-service-proxy=false",
                "--enable-cni=false",
                f"--service-cluster-ip-range={self.service_cidr}",
                f"--health-port={KUBE_ROUTER_HEALTH_PORT}",
                "--v=1",
            ],
        }

    # ---- teardown

    def remove_workloads(self) -> None:
        """Stop every container of the node's containerd, while it still runs."""
        ctr = ["ctr", "--address", str(self.containerd_socket), "-n", "k8s.io"]
        if not self.containerd_socket.exists():
            return
        tasks = subprocess.run([*ctr, "tasks", "ls", "-q"], capture_output=True, text=True, timeout=30).stdout.split()
        for task in tasks:
            subprocess.run([*ctr, "tasks", "kill", "-s", "SIGKILL", task], capture_output=True, timeout=30)
        for task in tasks:
            subprocess.run([*ctr, "tasks", "rm", "-f", task], capture_output=True, timeout=30)
        containers = subprocess.run(
            [*ctr, "containers", "ls", "-q"], capture_output=True, text=True, timeout=30
        ).stdout.split()
        if containers:
            subprocess.run([*ctr, "containers", "rm", *containers], capture_output=True, timeout=60)

    def kill_shims(self) -> None:
        """containerd shims outlive containerd; ours name our socket on their command line."""
        marker = str(self.containerd_socket).encode()
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

    def clean_host(self) -> None:
        """Undo what the node did to the host: mounts, network namespaces, bridge, iptables rules, DNS address."""
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.state))), key=len, reverse=True):
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


def _reader_role(user: str, rules: list[dict]) -> list[dict]:
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
