"""The local Kubernetes cluster for tests: session fixtures and helpers to act on it as a user would.

`cluster` gives the fast KWOK cluster, `real_cluster` the one with a real node
(containerd + kubelet on this machine). Each reuses a running cluster of its
mode (`make cluster [NODE=real]`); otherwise it starts one with
es4ps_localcluster, the same code, switching modes if needed (the root
conftest runs real-node tests last, so one switch suffices), and stops what
it started at the end of the session. If a cluster cannot start, every test
that needs it fails with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from es4ps_localcluster import Cluster, ClusterError
from es4ps_localcluster.paths import BIN, ROOT  # noqa: F401 - ROOT: for the tests that import it from here


@dataclass
class KubeCluster:
    """A running cluster, driven through kubectl and helm like a user would."""

    kubeconfig: Path

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses that act on this cluster (KUBECONFIG, our tools first on PATH)."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": f"{BIN}:{os.environ['PATH']}"}

    def run(self, *argv: str, input: str | None = None, check: bool = True, timeout: float = 120):
        """Run a command (kubectl, helm, ...) against the cluster; fail the test with its output on error."""
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"`{' '.join(argv)}` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120):
        return self.run("kubectl", *args, input=input, check=check, timeout=timeout)

    def helm(self, *args: str, check: bool = True, timeout: float = 300):
        return self.run("helm", *args, check=check, timeout=timeout)

    def apply(self, manifest: str | Path, namespace: str | None = None, server_side: bool = True):
        """Apply YAML text or a file, as `kubectl apply` would."""
        args = ["apply"] + (["--server-side"] if server_side else [])
        if namespace:
            args += ["-n", namespace]
        if isinstance(manifest, Path):
            return self.kubectl(*args, "-f", str(manifest))
        return self.kubectl(*args, "-f", "-", input=manifest)

    def merge_patch(self, kind: str, name: str, patch: dict, namespace: str | None = None, check: bool = True):
        """`kubectl patch --type=merge` with `patch` (a dict; None removes a field)."""
        ns = ["-n", namespace] if namespace else []
        return self.kubectl("patch", kind, name, *ns, "--type=merge", "-p", json.dumps(patch), check=check)

    def get(self, kind: str, name: str | None = None, namespace: str | None = None, check: bool = True) -> dict:
        """The object (or list) as a dict; {} when it does not exist and check is False."""
        args = ["get", kind] + ([name] if name else []) + (["-n", namespace] if namespace else []) + ["-o", "json"]
        proc = self.kubectl(*args, check=check)
        return json.loads(proc.stdout) if proc.returncode == 0 else {}

    def wait_for(
        self, kind: str, name: str, condition: str = "Ready", namespace: str | None = None, timeout: float = 120
    ) -> dict:
        """Wait until the object has `condition` True (kubectl wait); return the object."""
        ns = ["-n", namespace] if namespace else []
        deadline = time.monotonic() + timeout
        # kubectl wait fails at once on an object that does not exist yet
        while not self.get(kind, name, namespace, check=False):
            if time.monotonic() > deadline:
                pytest.fail(f"{kind}/{name} did not appear within {timeout:.0f} s")
            time.sleep(0.5)
        remaining = max(1, int(deadline - time.monotonic()))
        self.kubectl(
            "wait", f"--for=condition={condition}", f"--timeout={remaining}s", kind, name, *ns, timeout=remaining + 10
        )
        return self.get(kind, name, namespace)

    def eventually(self, probe, timeout: float = 60, interval: float = 0.5, message: str = "condition"):
        """Call probe() until it returns a truthy value; fail the test after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"{message} not reached within {timeout:.0f} s")
            time.sleep(interval)


class _ClusterSession:
    """Starts or switches the local cluster on demand; stops it at the end if this session started it."""

    def __init__(self) -> None:
        self.local = Cluster()
        self.started = False

    def ensure(self, mode: str) -> KubeCluster:
        if not (self.local.healthy() and self.local.mode == mode):
            try:
                if self.local.running():
                    print(f"\nswitching the local cluster from NODE={self.local.mode} to NODE={mode}", file=sys.stderr)
                    self.local.down()
                self.local.up(node=mode)
            except ClusterError as exc:
                pytest.fail(f"the local cluster (NODE={mode}) could not start: {exc}", pytrace=False)
            self.started = True
        return KubeCluster(self.local.kubeconfig)


@pytest.fixture(scope="session")
def _cluster_session():
    session = _ClusterSession()
    yield session
    if session.started and os.environ.get("ES4PS_KEEP_CLUSTER") != "1":
        session.local.down()


@pytest.fixture(scope="session")
def cluster(_cluster_session) -> KubeCluster:
    """The local cluster with KWOK nodes and cert-manager."""
    return _cluster_session.ensure("kwok")


@pytest.fixture(scope="session")
def real_cluster(_cluster_session) -> KubeCluster:
    """The local cluster with a real node: Pods run the locally built images in containerd."""
    return _cluster_session.ensure("real")


def _fresh_namespace(kube: KubeCluster):
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(cluster: KubeCluster) -> str:
    """A fresh namespace on the KWOK cluster for one test, deleted afterwards (without waiting)."""
    yield from _fresh_namespace(cluster)


@pytest.fixture
def real_namespace(real_cluster: KubeCluster) -> str:
    """A fresh namespace on the real-node cluster for one test."""
    yield from _fresh_namespace(real_cluster)
