"""The operator as users run it, for the integration tests and the benchmark.

- `OperatorProcess`: `python -m es4ps_operator` as a child process with its own
  HTTP port and log file; stop (SIGTERM), kill (SIGKILL), read its metrics.
- `operator_identity`: a ServiceAccount bound to exactly the rules in
  operator/deploy/rbac.yaml and a kubeconfig with its token, so every test
  checks that those rules suffice.

Volumes come from the local cluster's default StorageClass
(es4ps_localcluster.components.volume_provisioner).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import yaml
from es4ps_localcluster.paths import ROOT
from es4ps_localcluster.processes import free_port, start_process, wait_until

RBAC = ROOT / "operator" / "deploy" / "rbac.yaml"


class OperatorProcess:
    """One operator replica as a process."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        namespaces: list[str],
        lease_namespace: str,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "ES4PS_HTTP_PORT": str(self.port),
            "ES4PS_LOG_FORMAT": "plain",
            "ES4PS_NAMESPACES": ",".join(namespaces),
            "ES4PS_LEADER_ELECTION_NAMESPACE": lease_namespace,
            "ES4PS_LEASE_SECONDS": "6",
            "ES4PS_SAMBA_IMAGE": "es4ps/samba:test",
            "ES4PS_PORTAL_IMAGE": "es4ps/portal:test",
            "ES4PS_BROKER_IMAGE": "es4ps/broker:test",
            **(extra_env or {}),
        }
        self.process = start_process([sys.executable, "-m", "es4ps_operator"], log_path, env)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:  # noqa: S310
                return response.status, response.read().decode()
        except OSError:
            return 0, ""

    def metric(self, name: str, labels: str = "") -> float | None:
        """The value of one Prometheus sample, e.g. metric("es4ps_operator_leader")."""
        _, text = self.get("/metrics")
        for line in text.splitlines():
            if line.startswith(f"{name}{labels} ") or line.startswith(f"{name}{{{labels}}} "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def is_leader(self) -> bool:
        return self.metric("es4ps_operator_leader") == 1.0

    def wait_until(self, probe, timeout: float, what: str) -> None:
        """wait_until(probe) for this replica: AssertionError with its log if it exits or times out first."""
        wait_until(probe, timeout, f"the operator, {what}", self.log_path, self.process, error=AssertionError)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, as Kubernetes stops a Pod; SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: the process dies wherever it is."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@dataclasses.dataclass(frozen=True)
class OperatorIdentity:
    """The operator's ServiceAccount: a kubeconfig with its token, and its namespace (where its Lease lives)."""

    kubeconfig: Path
    namespace: str


def operator_identity(cluster, namespace: str, directory: Path) -> OperatorIdentity:
    """A ServiceAccount in `namespace` with exactly operator/deploy/rbac.yaml's rules."""
    documents = list(yaml.safe_load_all(RBAC.read_text()))
    cluster_role = next(d for d in documents if d["kind"] == "ClusterRole")
    role = next(d for d in documents if d["kind"] == "Role")
    # A per-run name: several test sessions may share the cluster.
    name = f"es4ps-operator-{namespace}"
    cluster_role["metadata"]["name"] = name
    role["metadata"] |= {"name": "es4ps-operator-leader-election", "namespace": namespace}
    subject = [{"kind": "ServiceAccount", "name": "es4ps-operator", "namespace": namespace}]
    objects = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "es4ps-operator", "namespace": namespace}},
        cluster_role,
        role,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": subject,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "es4ps-operator-leader-election", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "es4ps-operator-leader-election",
            },
            "subjects": subject,
        },
    ]
    cluster.apply(yaml.safe_dump_all(objects))
    return OperatorIdentity(service_account_kubeconfig(cluster, namespace, "es4ps-operator", directory), namespace)


def service_account_kubeconfig(cluster, namespace: str, account: str, directory: Path) -> Path:
    """A kubeconfig that authenticates with nothing but a token of the ServiceAccount (as its Pod would)."""
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=4h").stdout.strip()
    server = yaml.safe_load(Path(cluster.kubeconfig).read_text())["clusters"][0]["cluster"]
    kubeconfig = directory / f"{account}.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": server}],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [{"name": account, "context": {"cluster": "local", "user": account}}],
                "current-context": account,
            }
        )
    )
    return kubeconfig


def delete_identity(cluster, namespace: str) -> None:
    name = f"es4ps-operator-{namespace}"
    cluster.kubectl("delete", "clusterrolebinding,clusterrole", name, "--ignore-not-found", check=False)


@contextlib.contextmanager
def fresh_namespace(cluster):
    """A new namespace whose claims get volumes; deleted with its volumes afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        delete_namespace_without_operator(cluster, name)


def drop_finalizers(cluster, name: str, namespace: str) -> None:
    """Let a domain go without its operator (which may be gone already)."""
    cluster.merge_patch("es4psdomain", name, {"metadata": {"finalizers": None}}, namespace, check=False)


def delete_namespace_without_operator(cluster, namespace: str) -> None:
    """Delete a namespace of domains whose operator may be gone already: drop their finalizers first."""
    for domain in cluster.get("es4psdomains", namespace=namespace, check=False).get("items", []):
        drop_finalizers(cluster, domain["metadata"]["name"], namespace)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@contextlib.contextmanager
def operator_replicas(identity: OperatorIdentity, namespace: str, log_dir: Path):
    """A function starting operator replicas that serve `namespace`; all are stopped at the end."""
    started: list[OperatorProcess] = []

    def start(wait_for_leadership: bool = True, **extra_env: str) -> OperatorProcess:
        process = OperatorProcess(
            identity.kubeconfig, log_dir / f"operator-{len(started)}.log", [namespace], identity.namespace, extra_env
        )
        started.append(process)
        process.wait_until(lambda: process.get("/healthz")[0] == 200, 30, "/healthz answering")
        if wait_for_leadership:
            process.wait_until(process.is_leader, 30, "leadership")
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()
