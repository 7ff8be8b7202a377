"""A Kubernetes cluster driven through kubectl and helm, as a user would: the local one, a kind one, any kubeconfig.

The fixtures `cluster` and `real_cluster` (es4ps_testkit.plugins.cluster) give
the local cluster; benchmarks make one from a kubeconfig.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from es4ps_localcluster.paths import BIN
from es4ps_localcluster.processes import wait_until


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
        self.eventually(
            lambda: self.get(kind, name, namespace, check=False), timeout, message=f"{kind}/{name} to appear"
        )
        remaining = max(1, int(deadline - time.monotonic()))
        self.kubectl(
            "wait", f"--for=condition={condition}", f"--timeout={remaining}s", kind, name, *ns, timeout=remaining + 10
        )
        return self.get(kind, name, namespace)

    def eventually(self, probe, timeout: float = 60, interval: float = 0.5, message: str = "condition"):
        """Call probe() until it returns a truthy value, and return that; fail the test after timeout."""
        return wait_until(probe, timeout, message, interval_s=interval, error=AssertionError)
