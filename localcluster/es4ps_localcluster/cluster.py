"""A local Kubernetes cluster made of real components, for development and tests: the orchestration.

    cluster = Cluster()            # state in .local/cluster/, admin kubeconfig .local/kubeconfig
    cluster.up(node="kwok")        # start what is not running; return when the cluster is usable
    cluster.healthy(), cluster.running(), cluster.mode, cluster.nodes, cluster.kubeconfig
    cluster.down()                 # stop the processes it recorded (nothing else), wipe its data

etcd, kube-apiserver, kube-controller-manager, kube-scheduler, the
cert-manager controller with its CRDs and a volume provisioner, all built
from the modules pinned under localcluster/tools/ (hack/build-tools.sh), each
described in its own module of `components`. Nodes are KWOK's simulated ones
(`node="kwok"`), this machine as one real node (`node="real"`: containerd,
kubelet, kube-proxy, CoreDNS and kube-router), or several real nodes, each in
a network namespace of its own (`node="multi", nodes=3`; `es4ps_localcluster.nodes`
starts, loses and brings back real nodes). With real nodes the API server
listens on every address, so Pods reach it.

The control plane's ports are picked free at the first start and recorded in
`<state>/ports.json` (or set with ES4PS_<NAME>_PORT, e.g. ES4PS_API_PORT), so
checkouts can each run a KWOK cluster at once. Real nodes use this machine's
network (its addresses, iptables, a bridge): one real-node cluster per machine.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import images, tools
from .components import Component, cert_manager, coredns, kube_router, kwok, node_network
from .components.apiserver import APISERVER, SERVICE_CIDR, SERVICE_IP, SERVICE_NAMES
from .components.cert_manager import CERT_MANAGER
from .components.controller_manager import CONTROLLER_MANAGER
from .components.etcd import ETCD
from .components.kwok import KWOK
from .components.node import NODE_SERVICE_IDENTITIES, NODE_SERVICE_USERS, Node, host_ip
from .components.scheduler import SCHEDULER
from .components.volume_provisioner import VOLUME_PROVISIONER
from .errors import ClusterError
from .nodes import RealNodes, leftovers
from .paths import BIN, CACHE, LOCAL
from .pki import ClusterPKI, Identity
from .processes import Supervisor, free_ports, http_ok

__all__ = ["Cluster", "ClusterError"]

DEFAULT_STATE = LOCAL / "cluster"
DEFAULT_KUBECONFIG = LOCAL / "kubeconfig"
NODE_MODES = ("kwok", "real", "multi")
DEFAULT_NODES = 3  # of a multi-node cluster
CONTROL_PLANE = (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, CERT_MANAGER, KWOK, VOLUME_PROVISIONER)
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "cert-manager-controller")
# What each node mode runs besides (hack/build-tools.sh builds them; `make demo` only the real node's).
REAL_NODE_BINARIES = ("kubelet", "kube-proxy", "coredns", "kube-router")
NODE_BINARIES = {"kwok": ("kwok",), "real": REAL_NODE_BINARIES, "multi": REAL_NODE_BINARIES}
# Who is who: the certificates of the control plane (the real node adds its own, node.Node.identities).
CONTROL_PLANE_IDENTITIES = [
    Identity("admin", "kubernetes-admin", ("system:masters",)),
    Identity("controller-manager", "system:kube-controller-manager"),
    Identity("scheduler", "system:kube-scheduler"),
    Identity("kwok", "kwok-controller", ("system:masters",)),
    Identity("cert-manager", "cert-manager", ("system:masters",)),
    Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
]
# The components that talk to the API with a kubeconfig of their own certificate.
CONTROL_PLANE_USERS = ("admin", "controller-manager", "scheduler", "kwok", "cert-manager")


@dataclass(frozen=True)
class Ports:
    """The control plane's ports on 127.0.0.1 (the API server's on every address with a real node)."""

    api: int
    etcd: int
    etcd_peer: int
    controller_manager: int
    scheduler: int
    kwok: int
    cert_manager_metrics: int

    @classmethod
    def pick(cls) -> Ports:
        """ES4PS_<FIELD>_PORT where set (ES4PS_API_PORT, ES4PS_ETCD_PORT, ...), else a port free right now."""
        fields = dataclasses.fields(cls)
        free = free_ports(len(fields))
        return cls(
            **{f.name: int(os.environ.get(f"ES4PS_{f.name.upper()}_PORT") or free[i]) for i, f in enumerate(fields)}
        )


class Cluster:
    """The local cluster: start, check and stop it; its components' settings live in `components`."""

    def __init__(self, state_dir: Path = DEFAULT_STATE, kubeconfig: Path = DEFAULT_KUBECONFIG) -> None:
        self.state = state_dir
        self.kubeconfig = kubeconfig
        self.bin = BIN
        self.pki = ClusterPKI(state_dir / "pki")
        self.processes = Supervisor(state_dir / "pids", state_dir / "logs")
        self.mode_file = state_dir / "node-mode"
        self.ports_file = state_dir / "ports.json"
        self.dockerd_marker = state_dir / "started-dockerd"
        self._node: Node | None = None

    # ---- what the components read

    @property
    def mode(self) -> str | None:
        """The node mode of the running (or last started) cluster: kwok, real or multi."""
        try:
            return self.mode_file.read_text().split()[0]
        except (OSError, IndexError):
            return None

    @property
    def node_count(self) -> int:
        """How many real nodes the running (or last started) cluster has (0 with KWOK)."""
        try:
            words = self.mode_file.read_text().split()
        except OSError:
            return 0
        return int(words[1]) if len(words) > 1 else (1 if words and words[0] == "real" else 0)

    @property
    def ports(self) -> Ports:
        """The ports of the running (or last started) cluster."""
        return Ports(**json.loads(self.ports_file.read_text()))

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.api}"

    @property
    def api_address(self) -> str:
        """Where Pods reach the API server (through the `kubernetes` Service's endpoint)."""
        if self.mode == "multi":
            return node_network.GATEWAY
        return self.node.ip if self.mode == "real" else "127.0.0.1"

    @property
    def node(self) -> Node:
        """The one real node's identity and folders (nothing starts here)."""
        if self._node is None:
            self._node = Node(
                self.state / "node",
                self.bin,
                self.pki,
                self.kubeconfig_for,
                containerd_root=CACHE / "containerd",
                sandbox_image=images.PAUSE.ref,
                service_cidr=SERVICE_CIDR,
            )
        return self._node

    @property
    def nodes(self) -> list[Node]:
        """The real nodes of the running (or last started) cluster: the one real node, or node1..nodeN."""
        if self.mode == "real":
            return [self.node]
        if self.mode != "multi":
            return []
        return [self._multi_node(index) for index in range(1, self.node_count + 1)]

    def _multi_node(self, index: int) -> Node:
        name = f"node{index}"
        return Node(
            self.state / "nodes" / name,
            self.bin,
            self.pki,
            self.kubeconfig_for,
            containerd_root=CACHE / "containerd-nodes" / name,
            sandbox_image=images.PAUSE.ref,
            service_cidr=SERVICE_CIDR,
            ip=node_network.node_address(index),
            name=name,
            pod_cidr=node_network.pod_cidr(index),
            netns=node_network.netns_name(name),
        )

    def kubeconfig_for(self, user: str) -> Path:
        """The kubeconfig of a component that logs in with its own certificate."""
        return self.state / "kubeconfigs" / f"{user}.kubeconfig"

    # ---- public API

    def up(self, node: str = "kwok", nodes: int | None = None) -> None:
        """Start every component not already running and wait until the cluster is usable.

        `nodes`: how many real nodes a multi-node cluster has (default 3; one per network namespace).
        """
        if node not in NODE_MODES:
            raise ClusterError(f"unknown node mode {node!r} (supported: {', '.join(NODE_MODES)})")
        count = {"kwok": 0, "real": 1}.get(node, nodes or DEFAULT_NODES)
        if node == "multi" and not 2 <= count <= node_network.MAX_NODES:
            raise ClusterError(f"a multi-node cluster has 2 to {node_network.MAX_NODES} nodes, not {count}")
        if self.running() and (self.mode, self.node_count) not in ((None, 0), (node, count)):
            raise ClusterError(
                f"a cluster with NODE={self.mode} ({self.node_count} real nodes) is running; "
                "stop it first (make cluster-down)"
            )
        if node == "kwok":
            try:
                tools.ensure("kwok")  # not built by `make setup`: the demo's real node does without
            except tools.ToolError as exc:
                raise ClusterError(str(exc)) from None
        self._check_binaries(node)
        self._prepare(node, count)

        self._start(ETCD)
        self._wait(ETCD)
        self._start(APISERVER)
        self._wait(APISERVER)
        self._start(CONTROLLER_MANAGER)
        self._start(SCHEDULER)
        if node == "kwok":
            self._start(KWOK)
        # the default StorageClass "local": hostPath volumes under the cluster's state
        self._start(VOLUME_PROVISIONER)
        cert_manager.install_crds(self)
        self.apply(*self._bootstrap_objects(node))
        self._start(CERT_MANAGER)
        self._wait(SCHEDULER)
        self._wait(CONTROLLER_MANAGER)
        if node == "kwok":
            self._wait(KWOK)
        else:
            RealNodes(self).start()
        self._wait(CERT_MANAGER)
        self._wait(VOLUME_PROVISIONER)

    def down(self) -> list[str]:
        """Stop every process this cluster recorded (and nothing else), then wipe its data.

        Returns what its real nodes left on this machine (namespaces, bridge, rule, cgroups, mounts): nothing, unless
        something failed.
        """
        multi = self.mode == "multi"
        held = RealNodes(self).stop() if self.nodes else []
        shutil.rmtree(self.state / "nodes", ignore_errors=True)
        for component in reversed(CONTROL_PLANE):
            self.processes.stop(component.name)
        if self.dockerd_marker.exists():  # the real node started it (for the pause image)
            images.stop_dockerd()
            self.dockerd_marker.unlink()
        for data in ("etcd", "volumes"):
            shutil.rmtree(self.state / data, ignore_errors=True)
        self.kubeconfig.unlink(missing_ok=True)
        self.mode_file.unlink(missing_ok=True)
        self.ports_file.unlink(missing_ok=True)
        return [*held, *leftovers(self.state, multi)]

    def lose_node(self, name: str) -> None:
        """Stop the multi-node cluster's node `name` without warning (processes killed, network gone, disk kept)."""
        RealNodes(self).lose(name)

    def lost_nodes(self) -> list[str]:
        """The multi-node cluster's nodes that do not run (lost, and not brought back)."""
        return [node.name for node in self.nodes if node.netns and not self.processes.pid(node.process_name("kubelet"))]

    def bring_back_node(self, name: str) -> None:
        """Start a lost node again, as a machine boots; return when it is Ready."""
        RealNodes(self).bring_back(name)

    def load_images(self, built: list[images.Image]) -> None:
        """Build these images if needed and import them into every real node's containerd."""
        host = images.docker_host()
        images.build(built, host)
        RealNodes(self).load_images(built, host)

    def image_engine(self) -> str:
        """The Docker engine to build images with (started, and recorded to stop with the cluster, if none runs)."""
        host, started = images.ensure_engine()
        if started:
            self.dockerd_marker.touch()
        return host

    def healthy(self) -> bool:
        """True when the API server answers /readyz with this cluster's credentials."""
        return self.kubeconfig.exists() and self.ports_file.exists() and self.http_ok(f"{self.server}/readyz")

    def running(self) -> dict[str, int]:
        """Recorded components whose process is still alive, name -> pid."""
        return self.processes.running()

    def ensure_up(self, node: str) -> bool:
        """The cluster up in `node` mode: kept when it already runs healthy so, else (re)started; True when this
        call started it (the caller stops it again)."""
        if self.healthy() and self.mode == node:
            return False
        if self.running():
            self.down()
        self.up(node=node)
        return True

    def kubectl(self, *args: str, input: str | None = None) -> str:
        """Run kubectl as the cluster admin; its output, or ClusterError with its stderr."""
        proc = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def query(self, *args: str, input: str | None = None) -> str | None:
        """kubectl's output, or None when it fails (for readiness checks: "not yet")."""
        try:
            return self.kubectl(*args, input=input)
        except (ClusterError, subprocess.TimeoutExpired):
            return None

    def condition_true(self, kind: str, name: str, condition: str = "Ready") -> bool:
        """Whether the object's `condition` has status True."""
        jsonpath = f'jsonpath={{.status.conditions[?(@.type=="{condition}")].status}}'
        return self.query("get", kind, name, "-o", jsonpath) == "True"

    def apply(self, *objects: dict) -> None:
        """Server-side apply of the objects as the admin."""
        if not objects:
            return
        self.kubectl(
            "apply",
            "--server-side",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}),
        )

    def http_ok(self, url: str, verify: bool = True) -> bool:
        """A readiness probe as the cluster admin (client certificate), trusting the cluster CA unless not `verify`."""
        try:
            context = self.pki.client_context("admin", verify)
        except (OSError, ValueError):
            return False
        return http_ok(url, context)

    # ---- start-up

    def _prepare(self, mode: str, count: int) -> None:
        """Ports, mode, certificates and kubeconfigs (the same as last time while the cluster runs)."""
        self.state.mkdir(parents=True, exist_ok=True)
        if not self.running() or not self.ports_file.exists():
            if self.running():
                raise ClusterError(
                    "a cluster without a record of its ports is running; stop it first (make cluster-down)"
                )
            self.ports_file.write_text(json.dumps(dataclasses.asdict(Ports.pick()), indent=1) + "\n")
        self.mode_file.write_text(f"{mode} {count}\n")
        identities = [
            *CONTROL_PLANE_IDENTITIES,
            Identity("apiserver", "kube-apiserver", server_names=self._apiserver_names()),
        ]
        node_users = [*NODE_SERVICE_USERS, *(node.kubelet_user for node in self.nodes)] if self.nodes else []
        if self.nodes:
            identities += [*NODE_SERVICE_IDENTITIES, *(i for node in self.nodes for i in node.identities())]
        self.pki.ensure(identities)
        for user in CONTROL_PLANE_USERS:
            self._write_kubeconfig(self.kubeconfig_for(user), user, self.server)
        # the nodes' processes reach the API where their Pods do (a node's 127.0.0.1 is its own)
        for user in node_users:
            self._write_kubeconfig(self.kubeconfig_for(user), user, f"https://{self.api_address}:{self.ports.api}")
        self._write_kubeconfig(self.kubeconfig, "admin", self.server)

    def _apiserver_names(self) -> tuple[str, ...]:
        return ("127.0.0.1", host_ip(), node_network.GATEWAY, "localhost", SERVICE_IP, *SERVICE_NAMES)

    def _bootstrap_objects(self, mode: str) -> list[dict]:
        if mode == "kwok":
            return kwok.nodes()
        return [*coredns.rbac_objects(), *kube_router.rbac_objects()]

    def _start(self, component: Component) -> None:
        self.processes.start(component.name, component.command(self), cwd=self.state)

    def _wait(self, component: Component) -> None:
        self.processes.wait(
            component.name, lambda: component.ready(self), component.start_timeout_s, error=ClusterError
        )

    def _check_binaries(self, node: str) -> None:
        missing = [b for b in (*BINARIES, *NODE_BINARIES[node]) if not (self.bin / b).exists()]
        if missing:
            raise ClusterError(f"missing binaries in {self.bin}: {', '.join(missing)} (run `make setup`)")
        if not shutil.which("kubectl"):
            raise ClusterError("kubectl is not on PATH")

    def _write_kubeconfig(self, path: Path, user: str, server: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "es4ps-local",
                    "cluster": {"server": server, "certificate-authority": str(self.pki.cert("ca"))},
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {"client-certificate": str(self.pki.cert(user)), "client-key": str(self.pki.key(user))},
                }
            ],
            "contexts": [{"name": "es4ps-local", "context": {"cluster": "es4ps-local", "user": user}}],
            "current-context": "es4ps-local",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
