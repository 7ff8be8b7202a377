#!/usr/bin/env python3
"""A local Kubernetes cluster made of real components, for development and tests.

    local_cluster.py up [--node kwok|real]  start it in the background, return when it is ready
    local_cluster.py down                   stop the processes it recorded and wipe its data
    local_cluster.py status                 exit 0 when it answers

etcd, kube-apiserver (TLS on 127.0.0.1, RBAC, service-account tokens),
kube-controller-manager, kube-scheduler, KWOK (simulated Ready nodes, so Pods
get scheduled and become Running) and the cert-manager controller with its
CRDs, all built from the modules pinned under tools/ (hack/build-tools.sh).
With `--node real` the cluster gets a real node instead of KWOK's: containerd,
kubelet, kube-proxy, CoreDNS and kube-router (NetworkPolicies) on this machine
(hack/real_node.py), and the
API server listens on the host's address so Pods reach it.
State, logs and PIDs live under .local/cluster/; the admin kubeconfig is
.local/kubeconfig. The pytest fixture in tests/support/cluster.py uses the
same class.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import local_images as images
from real_node import KUBE_ROUTER_HEALTH_PORT, RealNode, host_ip

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".local" / "bin"
DEFAULT_STATE = ROOT / ".local" / "cluster"
DEFAULT_KUBECONFIG = ROOT / ".local" / "kubeconfig"
CERT_MANAGER_CRDS = ROOT / "crds" / "third_party" / "cert-manager.crds.yaml"
KWOK_STAGES = ROOT / "hack" / "kwok-stages.yaml"

API_PORT = int(os.environ.get("ES4PS_API_PORT", "6443"))
ETCD_PORT = int(os.environ.get("ES4PS_ETCD_PORT", "2379"))
SERVICE_CIDR = "10.96.0.0/16"
KWOK_NODES = int(os.environ.get("ES4PS_KWOK_NODES", "1"))
CERT_MANAGER_NAMESPACE = "cert-manager"
NODE_MODES = ("kwok", "real")
CONTROL_PLANE = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "cert-manager",
    "kwok",
    "volume-provisioner",
)


class ClusterError(RuntimeError):
    """The cluster could not be started; the message says which part and where its log is."""


# --------------------------------------------------------------------------- PKI


def _pki():
    # cryptography comes from the project's venv; imported lazily so `down` works without it.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    return x509, hashes, serialization, ec, rsa, ExtendedKeyUsageOID, NameOID


class PKI:
    """The cluster's certificates: one CA signing serving and client certificates."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, name: str, ext: str) -> Path:
        return self.dir / f"{name}.{ext}"

    def ensure(self, sans: list[str]) -> None:
        x509, hashes, serialization, ec, rsa, eku, NameOID = _pki()
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.path("ca", "crt").exists():
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "es4ps-local-cluster-ca")])
            cert = (
                self._builder(name, name, key.public_key(), days=3650)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
                )
                .sign(key, hashes.SHA256())
            )
            self._write("ca", cert, key)
        if not self.path("sa", "key").exists():
            # service-account token signing key
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.path("sa", "key").write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                )
            )
            self.path("sa", "pub").write_bytes(
                key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
        self._issue("apiserver", "kube-apiserver", [], sans, server=True)
        self._issue("admin", "kubernetes-admin", ["system:masters"], [])
        self._issue("controller-manager", "system:kube-controller-manager", [], [])
        self._issue("scheduler", "system:kube-scheduler", [], [])
        self._issue("kwok", "kwok-controller", ["system:masters"], [])
        self._issue("cert-manager", "cert-manager", ["system:masters"], [])
        self._issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ["system:masters"], [])

    def _builder(self, subject, issuer, public_key, days: int):
        x509 = _pki()[0]
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
        )

    def _write(self, name: str, cert, key) -> None:
        _, _, serialization, *_ = _pki()
        key_path = self.path(name, "key")
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)
        self.path(name, "crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def _issue(self, name: str, common_name: str, orgs: list[str], sans: list[str], server: bool = False) -> None:
        if self.path(name, "crt").exists():
            return
        x509, hashes, serialization, ec, _, eku, NameOID = _pki()
        ca_cert = x509.load_pem_x509_certificate(self.path("ca", "crt").read_bytes())
        ca_key = serialization.load_pem_private_key(self.path("ca", "key").read_bytes(), None)
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        builder = self._builder(x509.Name(attrs), ca_cert.subject, key.public_key(), days=365).add_extension(
            x509.ExtendedKeyUsage([eku.SERVER_AUTH if server else eku.CLIENT_AUTH]), critical=False
        )
        if sans:
            names = []
            for san in sans:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(san)))
                except ValueError:
                    names.append(x509.DNSName(san))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        self._write(name, builder.sign(ca_key, hashes.SHA256()), key)


# --------------------------------------------------------------------------- cluster


class Cluster:
    """The local cluster: its processes, PKI, kubeconfigs and readiness checks."""

    def __init__(self, state_dir: Path = DEFAULT_STATE, kubeconfig: Path = DEFAULT_KUBECONFIG) -> None:
        self.state = state_dir
        self.kubeconfig = kubeconfig
        self.pki = PKI(state_dir / "pki")
        self.logs = state_dir / "logs"
        self.pids = state_dir / "pids"
        self.server = f"https://127.0.0.1:{API_PORT}"
        self.mode_file = state_dir / "node-mode"
        # the processes this object started, to notice at once when one exits during start-up
        self._started: dict[str, subprocess.Popen] = {}
        self.dockerd_marker = state_dir / "started-dockerd"
        self._node: RealNode | None = None

    @property
    def node(self) -> RealNode:
        """The real node's settings (only its files and command lines: nothing starts here)."""
        if self._node is None:
            self._node = RealNode(
                self.state,
                images.CACHE,
                BIN,
                self.pki,
                self._component_kubeconfig,
                sandbox_image=images.IMAGES["pause"].ref,
                service_cidr=SERVICE_CIDR,
            )
        return self._node

    @property
    def mode(self) -> str | None:
        """The node mode of the running (or last started) cluster."""
        try:
            return self.mode_file.read_text().strip()
        except OSError:
            return None

    # ---- public API

    def up(self, node: str = "kwok") -> None:
        """Start every component not already running and wait until the cluster is usable."""
        if node not in NODE_MODES:
            raise ClusterError(f"unknown node mode {node!r} (supported: {', '.join(NODE_MODES)})")
        if self.running() and self.mode not in (None, node):
            raise ClusterError(f"a cluster with NODE={self.mode} is running; stop it first (make cluster-down)")
        self._check_binaries()
        for d in (self.logs, self.pids):
            d.mkdir(parents=True, exist_ok=True)
        self.mode_file.write_text(node + "\n")
        self.pki.ensure(
            [
                "127.0.0.1",
                host_ip(),
                "localhost",
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ]
        )
        users = ["admin", "controller-manager", "scheduler", "kwok", "cert-manager"]
        if node == "real":
            for name, cn, orgs, sans, server in self.node.certificates():
                self.pki._issue(name, cn, orgs, sans, server=server)
            users += ["kubelet", "kube-proxy", "coredns", "kube-router"]
        for name in users:
            self._write_kubeconfig(self._component_kubeconfig(name), name)
        self._write_kubeconfig(self.kubeconfig, "admin")

        self._start("etcd", self._etcd_args())
        self._wait("etcd", lambda: self._http_ok(f"http://127.0.0.1:{ETCD_PORT}/health", tls=False), timeout=60)
        self._start("kube-apiserver", self._apiserver_args(node))
        self._wait("kube-apiserver", lambda: self._http_ok(f"{self.server}/readyz"), timeout=120)
        self._start("kube-controller-manager", self._controller_manager_args())
        self._start("kube-scheduler", self._scheduler_args())
        if node == "kwok":
            self._start("kwok", self._kwok_args())
        # the default StorageClass "local": hostPath volumes under the cluster's state
        self._start(
            "volume-provisioner",
            [
                sys.executable,
                str(ROOT / "hack" / "volume_provisioner.py"),
                str(self.kubeconfig),
                str(self.state / "volumes"),
            ],
        )
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CERT_MANAGER_CRDS), quiet=True)
        self.kubectl("apply", "--server-side", "-f", "-", input=self._bootstrap_objects(node), quiet=True)
        self.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app=cert-manager", quiet=True
        )
        self._start("cert-manager", self._cert_manager_args())
        self._wait("kube-scheduler", lambda: self._http_ok("https://127.0.0.1:10259/healthz", verify=False), 60)
        self._wait("kube-controller-manager", self._default_service_account_exists, timeout=90)
        if node == "kwok":
            self._wait("kwok", self._nodes_ready, timeout=90)
        else:
            self._start_real_node()
        self._wait("cert-manager", self._cert_manager_issues, timeout=120)
        self._wait("volume-provisioner", self._default_storage_class_exists, timeout=60)

    def _start_real_node(self) -> None:
        node = self.node
        node.write_config()
        node.prepare_host()
        host, started = images.ensure_engine()
        if started:
            self.dockerd_marker.touch()
        images.build(["pause"], host)
        self._start("containerd", node.commands()["containerd"])
        self._wait("containerd", node.containerd_socket.exists, timeout=60)
        images.load(node.containerd_socket, ["pause"], host)
        for name in ("kubelet", "kube-proxy", "coredns"):
            self._start(name, node.commands()[name])
        self._wait("kubelet", lambda: self._node_ready(node.name), timeout=120)
        self._wait("coredns", lambda: self._http_ok("http://127.0.0.1:18181/ready", tls=False), timeout=60)
        self._start("kube-router", node.commands()["kube-router"])  # it looks up its Node object at start
        health = f"http://127.0.0.1:{KUBE_ROUTER_HEALTH_PORT}/healthz"
        self._wait("kube-router", lambda: self._http_ok(health, tls=False), timeout=60)

    def down(self) -> None:
        """Stop every process this cluster recorded (and nothing else), then wipe its data."""
        if self.mode == "real":
            self._stop("kubelet")
            self.node.remove_workloads()
            for name in ("kube-router", "coredns", "kube-proxy", "containerd"):
                self._stop(name)
            self.node.kill_shims()
            self.node.clean_host()
            shutil.rmtree(self.node.state, ignore_errors=True)
        for name in reversed(CONTROL_PLANE):
            self._stop(name)
        if self.dockerd_marker.exists():  # the real node started it (for the pause image)
            images.stop_dockerd()
            self.dockerd_marker.unlink()
        for data in ("etcd", "volumes"):
            shutil.rmtree(self.state / data, ignore_errors=True)
        self.kubeconfig.unlink(missing_ok=True)
        self.mode_file.unlink(missing_ok=True)

    def healthy(self) -> bool:
        """True when the API server answers /readyz with this cluster's credentials."""
        return self.kubeconfig.exists() and self._http_ok(f"{self.server}/readyz")

    def kubectl(self, *args: str, input: str | None = None, quiet: bool = False) -> str:
        """Run kubectl as the cluster admin; raise ClusterError with its stderr on failure."""
        proc = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        if not quiet:
            return proc.stdout
        return ""

    def running(self) -> dict[str, int]:
        """Recorded components whose process is still alive, name -> pid."""
        alive = {}
        for pidfile in sorted(self.pids.glob("*.pid")):
            pid = self._recorded_pid(pidfile.stem)
            if pid:
                alive[pidfile.stem] = pid
        return alive

    # ---- component command lines

    def _component_kubeconfig(self, name: str) -> Path:
        return self.state / "kubeconfigs" / f"{name}.kubeconfig"

    def _etcd_args(self) -> list[str]:
        data = self.state / "etcd"
        return [
            str(BIN / "etcd"),
            f"--data-dir={data}",
            "--name=es4ps-local",
            f"--listen-client-urls=http://127.0.0.1:{ETCD_PORT}",
            f"--advertise-client-urls=http://127.0.0.1:{ETCD_PORT}",
            f"--listen-peer-urls=http://127.0.0.1:{ETCD_PORT + 1}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PORT + 1}",
            f"--initial-cluster=es4ps-local=http://127.0.0.1:{ETCD_PORT + 1}",
            "--listen-metrics-urls=",
            # a throwaway test cluster: durability is not worth the fsync latency
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_args(self, node: str) -> list[str]:
        p = self.pki.path
        # Pods of a real node reach the API through the `kubernetes` Service: the
        # server must then listen on, and advertise, the host's address.
        bind, advertise = ("0.0.0.0", host_ip()) if node == "real" else ("127.0.0.1", "127.0.0.1")  # noqa: S104
        return [
            str(BIN / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
            f"--bind-address={bind}",
            f"--advertise-address={advertise}",
            f"--secure-port={API_PORT}",
            f"--tls-cert-file={p('apiserver', 'crt')}",
            f"--tls-private-key-file={p('apiserver', 'key')}",
            f"--client-ca-file={p('ca', 'crt')}",
            f"--kubelet-client-certificate={p('apiserver-kubelet-client', 'crt')}",
            f"--kubelet-client-key={p('apiserver-kubelet-client', 'key')}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-key-file={p('sa', 'pub')}",
            f"--service-account-signing-key-file={p('sa', 'key')}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--enable-admission-plugins=NodeRestriction",
            "--profiling=false",
            "--v=1",
        ]

    def _controller_manager_args(self) -> list[str]:
        p = self.pki.path
        kubeconfig = self._component_kubeconfig("controller-manager")
        return [
            str(BIN / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={p('sa', 'key')}",
            f"--root-ca-file={p('ca', 'crt')}",
            f"--cluster-signing-cert-file={p('ca', 'crt')}",
            f"--cluster-signing-key-file={p('ca', 'key')}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*",
            "--v=1",
        ]

    def _scheduler_args(self) -> list[str]:
        kubeconfig = self._component_kubeconfig("scheduler")
        return [
            str(BIN / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--v=1",
        ]

    def _kwok_args(self) -> list[str]:
        return [
            str(BIN / "kwok"),
            f"--kubeconfig={self._component_kubeconfig('kwok')}",
            f"--config={KWOK_STAGES}",
            # only the nodes we create for it, never a real node
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--manage-nodes-with-label-selector=",
            "--cidr=10.244.128.0/20",
            "--node-ip=10.244.128.1",
            "--node-lease-duration-seconds=40",
            "--server-address=127.0.0.1:10247",
        ]

    def _cert_manager_args(self) -> list[str]:
        return [
            str(BIN / "cert-manager-controller"),
            f"--kubeconfig={self._component_kubeconfig('cert-manager')}",
            "--leader-elect=false",
            f"--cluster-resource-namespace={CERT_MANAGER_NAMESPACE}",
            # a Certificate's Secret goes away with it (like the operator's other children)
            "--enable-certificate-owner-ref",
            "--metrics-listen-address=127.0.0.1:9402",
            # a local cluster has API capacity to spare: issue many domains' certificates faster
            "--kube-api-qps=100",
            "--kube-api-burst=200",
            "--v=1",
        ]

    def _bootstrap_objects(self, node: str) -> str:
        objects: list[dict] = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CERT_MANAGER_NAMESPACE}},
        ]
        if node == "real":
            objects += self.node.rbac_objects()
        for i in range(KWOK_NODES if node == "kwok" else 0):
            name = f"kwok-node-{i}"
            resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "kwok",
                        },
                    },
                    "status": {"allocatable": resources, "capacity": resources},
                }
            )
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})

    # ---- readiness checks

    def _ssl_context(self, verify: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.path("ca", "crt")))
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(str(self.pki.path("admin", "crt")), str(self.pki.path("admin", "key")))
        return ctx

    def _http_ok(self, url: str, tls: bool = True, verify: bool = True) -> bool:
        try:
            ctx = self._ssl_context(verify) if tls else None
            with urllib.request.urlopen(url, context=ctx, timeout=3) as resp:  # noqa: S310 (local URLs)
                return resp.status == 200
        except (OSError, ValueError):
            return False

    def _default_service_account_exists(self) -> bool:
        try:
            self.kubectl("get", "serviceaccount", "default", "-n", "default", quiet=True)
            return True
        except ClusterError:
            return False

    def _nodes_ready(self) -> bool:
        try:
            out = self.kubectl(
                "get",
                "nodes",
                "-l",
                "type=kwok",
                "-o",
                'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
            )
        except ClusterError:
            return False
        return out.split() == ["True"] * KWOK_NODES

    def _default_storage_class_exists(self) -> bool:
        try:
            self.kubectl("get", "storageclass", "local", quiet=True)
            return True
        except ClusterError:
            return False

    def _node_ready(self, name: str) -> bool:
        try:
            status = self.kubectl("get", "node", name, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')
        except ClusterError:
            return False
        return status == "True"

    def _cert_manager_issues(self) -> bool:
        """cert-manager is working when a SelfSigned ClusterIssuer gets its Ready condition."""
        probe = {
            "apiVersion": "cert-manager.io/v1",
            "kind": "ClusterIssuer",
            "metadata": {"name": "es4ps-local-selfsigned"},
            "spec": {"selfSigned": {}},
        }
        try:
            self.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(probe), quiet=True)
            status = self.kubectl(
                "get",
                "clusterissuer",
                "es4ps-local-selfsigned",
                "-o",
                'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
            )
        except ClusterError:
            return False
        return status == "True"

    def _wait(self, name: str, check, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            started = self._started.get(name)
            if started is not None and started.poll() is not None:
                raise ClusterError(f"{name} exited during start-up; see {self._log_of(name)}:\n{self._tail(name)}")
            time.sleep(0.5)
        raise ClusterError(f"{name} was not ready after {timeout:.0f} s; see {self._log_of(name)}:\n{self._tail(name)}")

    def _log_of(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    # ---- processes

    def _tail(self, name: str, lines: int = 15) -> str:
        try:
            return "\n".join((self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _start(self, name: str, argv: list[str]) -> None:
        if self._recorded_pid(name):
            return
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (the child keeps it)
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.state
        )
        log.close()
        (self.pids / f"{name}.pid").write_text(f"{proc.pid}\n{argv[0]}\n")
        self._started[name] = proc

    def _recorded_pid(self, name: str) -> int | None:
        """The pid recorded for `name` if that process is alive and still runs our binary."""
        try:
            pid_text, binary = (self.pids / f"{name}.pid").read_text().split("\n")[:2]
            pid = int(pid_text)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError):
            return None
        return pid if cmdline == binary and state != "Z" else None

    def _stop(self, name: str) -> None:
        pid = self._recorded_pid(name)
        if pid:
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while self._recorded_pid(name) and time.monotonic() < deadline:
                time.sleep(0.2)
            if self._recorded_pid(name):
                os.killpg(pid, signal.SIGKILL)
        (self.pids / f"{name}.pid").unlink(missing_ok=True)

    def _check_binaries(self) -> None:
        missing = [
            b
            for b in (
                "etcd",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kwok",
                "cert-manager-controller",
            )
            if not (BIN / b).exists()
        ]
        if missing:
            raise ClusterError(f"missing binaries in {BIN}: {', '.join(missing)} (run `make setup`)")
        if not shutil.which("kubectl"):
            raise ClusterError("kubectl is not on PATH")

    def _write_kubeconfig(self, path: Path, cert: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        p = self.pki.path
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "es4ps-local",
                    "cluster": {"server": self.server, "certificate-authority": str(p("ca", "crt"))},
                }
            ],
            "users": [
                {"name": cert, "user": {"client-certificate": str(p(cert, "crt")), "client-key": str(p(cert, "key"))}}
            ],
            "contexts": [{"name": "es4ps-local", "context": {"cluster": "es4ps-local", "user": cert}}],
            "current-context": "es4ps-local",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the cluster and wait until it is ready")
    up.add_argument(
        "--node",
        default=os.environ.get("NODE", "kwok"),
        choices=NODE_MODES,
        help="kwok: simulated nodes (fast); real: containerd + kubelet on this machine",
    )
    sub.add_parser("down", help="stop the cluster and wipe its data")
    sub.add_parser("status", help="exit 0 when the cluster answers")
    args = parser.parse_args(argv)
    cluster = Cluster()
    if args.command == "up":
        start = time.monotonic()
        try:
            cluster.up(node=args.node)
        except ClusterError as exc:
            print(f"cluster: {exc}", file=sys.stderr)
            return 1
        print(f"cluster ready in {time.monotonic() - start:.1f} s; kubeconfig: {cluster.kubeconfig}")
        return 0
    if args.command == "down":
        cluster.down()
        print("cluster stopped")
        return 0
    healthy = cluster.healthy()
    print("running: " + ", ".join(f"{n} ({p})" for n, p in cluster.running().items()) if healthy else "not running")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
