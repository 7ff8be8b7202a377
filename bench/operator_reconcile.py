"""Operator speed on the local cluster: apply -> children -> Ready, and API requests while idle. Prints JSON.

Runs the real operator (`python -m es4ps_operator`, as its ServiceAccount with
operator/deploy/rbac.yaml) against the local KWOK cluster with cert-manager
(`make cluster`; started and stopped here if it is not running), serving one
fresh namespace per run. Domains are examples/acme.yaml in Service network
mode (20 DCs with host ports cannot share the one KWOK node).

- `children_s_1`: one domain applied -> all its 23 children exist
- `ready_s_1`: the same domain applied -> Ready (certificates issued, every Pod ready)
- `ready_s_20`: 20 domains applied at once -> all 20 Ready
- `idle_requests_per_min`: requests the operator sends while nothing changes (the
  20 domains Ready), counted by the API server itself: a FlowSchema matches the
  operator's ServiceAccount and apiserver_flowcontrol_dispatched_requests_total
  counts what it dispatched for it (leader Lease renewals and watch restarts)

Times come from watch events as the benchmark receives them. Figures are
medians over the runs; `per_run` keeps each run's numbers.

    .venv/bin/python bench/operator_reconcile.py [--runs 3] [--domains 20] [--idle-seconds 120]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml
from es4ps_localcluster import Cluster
from es4ps_localcluster.processes import wait_until
from es4ps_testkit.domains import CRD, example_domain
from es4ps_testkit.kube import KubeCluster
from es4ps_testkit.operator_checks import children
from es4ps_testkit.operator_harness import (
    OperatorProcess,
    delete_identity,
    delete_namespace_without_operator,
    operator_identity,
)
from lightkube import Client, KubeConfig
from lightkube.generic_resource import create_namespaced_resource

ES4PSDomain = create_namespaced_resource("es4ps.io", "v1alpha1", "ES4PSDomain", "es4psdomains")
# The children of one domain in Service mode: 19 applied + the DC's external Service + 3 generated Secrets.
CHILDREN_PER_DOMAIN = 23


def bench_domain(namespace: str, name: str) -> dict:
    domain = example_domain(namespace)
    domain["metadata"]["name"] = name
    domain["spec"]["directory"] |= {"networkMode": "Service", "serviceType": "ClusterIP"}
    domain["spec"]["deletionPolicy"] = "Delete"
    return domain


class DomainWatch:
    """Records, from a watch on the domains of a namespace, when each first became Ready."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        # Its own client: closing it ends the watch.
        self.client, self.namespace = Client(KubeConfig.from_file(str(kubeconfig))), namespace
        self.ready_at: dict[str, float] = {}
        self._changed = threading.Condition()
        self._closed = False
        threading.Thread(target=self._run, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self.client.close()

    def _run(self) -> None:
        # A watch can end at any time (the server closes it, a connection breaks): watch again,
        # which lists the domains first, until closed.
        while not self._closed:
            with contextlib.suppress(Exception):
                self._watch()
            time.sleep(0.2)

    def _watch(self) -> None:
        for _, domain in self.client.watch(ES4PSDomain, namespace=self.namespace):
            status = domain.get("status") or {}
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
            current = status.get("observedGeneration") == domain["metadata"].get("generation")
            with self._changed:
                if ready and current:
                    self.ready_at.setdefault(domain["metadata"]["name"], time.monotonic())
                self._changed.notify_all()

    def wait_ready(self, names: set[str], timeout: float) -> float:
        """The time the last of `names` became Ready."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not names <= set(self.ready_at):
                if not self._changed.wait(deadline - time.monotonic()):
                    raise TimeoutError(f"not Ready within {timeout:.0f} s: {sorted(names - set(self.ready_at))}")
            return max(self.ready_at[name] for name in names)


def wait_children(cluster: KubeCluster, namespace: str, expected: int, timeout: float) -> float:
    """Poll (lightly) until `expected` managed children exist; the time they did."""
    wait_until(lambda: len(children(cluster, namespace)) >= expected, timeout, f"{expected} children", interval_s=0.05)
    return time.monotonic()


def dispatched_requests(cluster: KubeCluster, flow_schema: str) -> float:
    """Requests the API server dispatched under `flow_schema`, from its own metrics."""
    metrics = cluster.kubectl("get", "--raw", "/metrics").stdout
    prefix = "apiserver_flowcontrol_dispatched_requests_total{"
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(prefix) and f'flow_schema="{flow_schema}"' in line
    )


def count_operator_requests(cluster: KubeCluster, identity_namespace: str, name: str) -> None:
    """A FlowSchema that matches every request of the operator's ServiceAccount (and nothing else)."""
    cluster.apply(
        yaml.safe_dump(
            {
                "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
                "kind": "FlowSchema",
                "metadata": {"name": name},
                "spec": {
                    # Before every built-in schema that could match a ServiceAccount (the lowest is 200).
                    "matchingPrecedence": 120,
                    "priorityLevelConfiguration": {"name": "workload-low"},
                    "distinguisherMethod": {"type": "ByUser"},
                    "rules": [
                        {
                            "subjects": [
                                {
                                    "kind": "ServiceAccount",
                                    "serviceAccount": {"name": "es4ps-operator", "namespace": identity_namespace},
                                }
                            ],
                            "resourceRules": [
                                {
                                    "verbs": ["*"],
                                    "apiGroups": ["*"],
                                    "resources": ["*"],
                                    "namespaces": ["*"],
                                    "clusterScope": True,
                                }
                            ],
                            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                        }
                    ],
                },
            }
        )
    )


def one_run(
    cluster: KubeCluster,
    identity,
    flow_schema: str,
    domains: int,
    idle_seconds: float,
    log_dir: Path,
) -> dict:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    watch = DomainWatch(cluster.kubeconfig, namespace)
    operator = OperatorProcess(
        identity.kubeconfig,
        log_dir / f"{namespace}.log",
        [namespace],
        identity.namespace,
        {"ES4PS_LEASE_SECONDS": "30"},
    )
    try:
        operator.wait_until(operator.is_leader, 60, "leadership")

        started = time.monotonic()
        cluster.apply(yaml.safe_dump(bench_domain(namespace, "single")))
        children_s = wait_children(cluster, namespace, CHILDREN_PER_DOMAIN, 120) - started
        ready_s = watch.wait_ready({"single"}, 300) - started
        cluster.kubectl("delete", "es4psdomain", "single", "-n", namespace, "--timeout=120s")

        names = {f"d{index}" for index in range(domains)}
        started = time.monotonic()
        cluster.apply(yaml.safe_dump_all([bench_domain(namespace, name) for name in sorted(names)]))
        ready_s_many = watch.wait_ready(names, 600) - started

        time.sleep(10)  # let the last status writes and events settle
        before = dispatched_requests(cluster, flow_schema)
        time.sleep(idle_seconds)
        idle_per_min = (dispatched_requests(cluster, flow_schema) - before) * 60 / idle_seconds
        return {
            "children_s_1": round(children_s, 2),
            "ready_s_1": round(ready_s, 2),
            f"ready_s_{domains}": round(ready_s_many, 2),
            "idle_requests_per_min": round(idle_per_min, 1),
        }
    finally:
        operator.stop()
        watch.close()
        delete_namespace_without_operator(cluster, namespace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--domains", type=int, default=20)
    parser.add_argument("--idle-seconds", type=float, default=120)
    args = parser.parse_args()

    local = Cluster()
    started_cluster = not local.healthy()
    if started_cluster:
        local.up(node="kwok")
    cluster = KubeCluster(local.kubeconfig)
    cluster.apply(CRD)
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/es4psdomains.es4ps.io")
    identity_namespace = f"bench-operator-{uuid.uuid4().hex[:6]}"
    flow_schema = f"es4ps-bench-{identity_namespace}"
    cluster.kubectl("create", "namespace", identity_namespace)
    runs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            identity = operator_identity(cluster, identity_namespace, Path(tmp))
            count_operator_requests(cluster, identity_namespace, flow_schema)
            for _ in range(args.runs):
                runs.append(one_run(cluster, identity, flow_schema, args.domains, args.idle_seconds, Path(tmp)))
    finally:
        cluster.kubectl("delete", "flowschema", flow_schema, "--ignore-not-found", check=False)
        delete_identity(cluster, identity_namespace)
        cluster.kubectl("delete", "namespace", identity_namespace, "--wait=false", check=False)
        if started_cluster and os.environ.get("ES4PS_KEEP_CLUSTER") != "1":
            local.down()
    medians = {key: round(statistics.median(run[key] for run in runs), 2) for key in runs[0]}
    print(
        json.dumps(
            {**medians, "runs": args.runs, "domains": args.domains, "idle_seconds": args.idle_seconds, "per_run": runs},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
