"""Operator speed on the local cluster: apply -> children -> Ready, and API requests while idle. Prints JSON.

Runs the real operator (`python -m es4ps_operator`, as its ServiceAccount with
operator/deploy/rbac.yaml) against the local cluster (started and stopped here
if none of the mode runs), serving one fresh namespace per run.

On KWOK nodes with cert-manager (`--node kwok`, the default; domains are
examples/acme.yaml in Service network mode, since DCs with host ports cannot
share the one KWOK node):

- `children_s_1`: one domain applied -> all its 23 children exist
- `ready_s_1`: the same domain applied -> Ready (certificates issued, every Pod ready)
- `ready_s_<N>`: `--domains` N (default 50) domains applied at once -> all Ready
- `idle_requests_per_min_<N>`: requests the operator sends while nothing changes (the
  N domains Ready), counted by the API server itself: a FlowSchema matches the
  operator's ServiceAccount and apiserver_flowcontrol_dispatched_requests_total
  counts what it dispatched for it (leader Lease renewals and watch restarts)

On the real node (`--node real`; needs the heavy lock, builds and loads the images):

- `ready_s_1_real`: one domain applied -> Ready with real Pods: the broker, the DC
  provisioning its domain, the worker, the portal migrating its database

Times come from watch events as the benchmark receives them. Figures are
medians over the runs; `per_run` keeps each run's numbers.

    .venv/bin/python bench/operator_reconcile.py [--runs 3] [--domains 50] [--idle-seconds 120]
    flock /tmp/es4ps-heavy.lock .venv/bin/python bench/operator_reconcile.py --node real [--runs 3]
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
from es4ps_devtools import deployment as steps
from es4ps_devtools.images import IMAGES
from es4ps_localcluster import Cluster
from es4ps_localcluster.processes import wait_until
from es4ps_testkit.domains import CRD, example_domain
from es4ps_testkit.e2e import LocalNode
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


def apply_until_ready(
    cluster: KubeCluster, watch: DomainWatch, domain: dict, children: int, timeout: float
) -> tuple[float, float]:
    """Apply one domain; (seconds until its `children` exist, seconds until it is Ready), then delete it."""
    namespace, name = domain["metadata"]["namespace"], domain["metadata"]["name"]
    started = time.monotonic()
    cluster.apply(yaml.safe_dump(domain))
    children_s = wait_children(cluster, namespace, children, 120) - started
    ready_s = watch.wait_ready({name}, timeout) - started
    cluster.kubectl("delete", "es4psdomain", name, "-n", namespace, "--timeout=300s")
    return children_s, ready_s


@contextlib.contextmanager
def serving_namespace(cluster: KubeCluster, identity, log_dir: Path, extra_env: dict[str, str] | None = None):
    """A fresh namespace, a watch on its domains and the operator serving it (the leader); all gone afterwards."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    watch = DomainWatch(cluster.kubeconfig, namespace)
    operator = OperatorProcess(
        identity.kubeconfig,
        log_dir / f"{namespace}.log",
        [namespace],
        identity.namespace,
        {"ES4PS_LEASE_SECONDS": "30", **(extra_env or {})},
    )
    try:
        operator.wait_until(operator.is_leader, 60, "leadership")
        yield namespace, watch
    finally:
        operator.stop()
        watch.close()
        delete_namespace_without_operator(cluster, namespace)


def kwok_run(
    cluster: KubeCluster, identity, flow_schema: str, domains: int, idle_seconds: float, log_dir: Path
) -> dict:
    with serving_namespace(cluster, identity, log_dir) as (namespace, watch):
        children_s, ready_s = apply_until_ready(
            cluster, watch, bench_domain(namespace, "single"), CHILDREN_PER_DOMAIN, 300
        )

        names = {f"d{index}" for index in range(domains)}
        started = time.monotonic()
        cluster.apply(yaml.safe_dump_all([bench_domain(namespace, name) for name in sorted(names)]))
        ready_s_many = watch.wait_ready(names, 900) - started

        time.sleep(10)  # let the last status writes and events settle
        before = dispatched_requests(cluster, flow_schema)
        time.sleep(idle_seconds)
        idle_per_min = (dispatched_requests(cluster, flow_schema) - before) * 60 / idle_seconds
        return {
            "children_s_1": round(children_s, 2),
            "ready_s_1": round(ready_s, 2),
            f"ready_s_{domains}": round(ready_s_many, 2),
            f"idle_requests_per_min_{domains}": round(idle_per_min, 1),
        }


def real_domain(namespace: str, node: LocalNode) -> dict:
    """examples/acme.yaml as the e2e tests deploy it on the real node (host network, the node's DNS)."""
    domain = example_domain(namespace)
    domain["metadata"]["name"] = "single"
    domain["spec"]["deletionPolicy"] = "Delete"
    steps.set_paths(domain["spec"], node.spec_changes())
    return domain


def real_run(cluster: KubeCluster, identity, node: LocalNode, log_dir: Path) -> dict:
    images = {f"ES4PS_{name.upper()}_IMAGE": IMAGES[name].ref for name in ("samba", "portal")}
    images["ES4PS_BROKER_IMAGE"] = IMAGES["rabbitmq"].ref
    with serving_namespace(cluster, identity, log_dir, images) as (namespace, watch):
        # The example names Secrets a platform engineer makes first: the SMTP password and the staff user's.
        made = [
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
             "stringData": {"password": f"Bench-{uuid.uuid4().hex}"}}
            for name in ("acme-smtp", "acme-staff")
        ]  # fmt: skip
        cluster.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": made}))
        _children_s, ready_s = apply_until_ready(cluster, watch, real_domain(namespace, node), 1, 900)
        return {"ready_s_1_real": round(ready_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", choices=("kwok", "real"), default="kwok")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--domains", type=int, default=50)
    parser.add_argument("--idle-seconds", type=float, default=120)
    args = parser.parse_args()

    local = Cluster()
    started_cluster = not (local.healthy() and local.mode == args.node)
    if started_cluster:
        if local.running():
            local.down()
        local.up(node=args.node)
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
            if args.node == "real":
                node = LocalNode(cluster)
                node.load_images()
                for _ in range(args.runs):
                    runs.append(real_run(cluster, identity, node, Path(tmp)))
            else:
                count_operator_requests(cluster, identity_namespace, flow_schema)
                for _ in range(args.runs):
                    runs.append(kwok_run(cluster, identity, flow_schema, args.domains, args.idle_seconds, Path(tmp)))
    finally:
        cluster.kubectl("delete", "flowschema", flow_schema, "--ignore-not-found", check=False)
        delete_identity(cluster, identity_namespace)
        cluster.kubectl("delete", "namespace", identity_namespace, "--wait=false", check=False)
        if started_cluster and os.environ.get("ES4PS_KEEP_CLUSTER") != "1":
            local.down()
    medians = {key: round(statistics.median(run[key] for run in runs), 2) for key in runs[0]}
    settings = {"node": args.node, "runs": args.runs}
    if args.node == "kwok":
        settings |= {"domains": args.domains, "idle_seconds": args.idle_seconds}
    print(json.dumps({**medians, **settings, "per_run": runs}, indent=2))


if __name__ == "__main__":
    main()
