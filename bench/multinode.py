"""Three real nodes: a drain, a lost node and two DCs on two nodes, with the default topology. Prints JSON.

Deploys the chart's domain on the local cluster's multi-node mode exactly as
tests/e2e/test_multi_node_domain.py does (es4ps_testkit.multinode: two DCs in
`HostNetwork` mode, each on its own node; three broker members; two portal
replicas on PostgreSQL; two operator and two ingress controller replicas),
then measures, `--runs` times each (medians; `per_run` keeps every run):

- `drain_longest_wait_s`: people keep registering through the ingress
  controller (two at a time, each retrying what a gateway refuses, as a person
  would) while `kubectl drain` empties the node that runs a DC, a broker member
  and a portal replica; its Pods wait for it (their volumes are on it) until
  it is uncordoned and the domain is Ready with ReplicationHealthy True again.
  The longest time one registration took, from sending the form to its
  account ready (`drain_registrations`: how many completed meanwhile);
- `node_loss_registrations_lost`: the same people registering while the node
  of dc1 loses power (es4ps_localcluster's `lose_node`: every process of it
  killed, its network gone), stays away `--away` seconds, and comes back:
  registrations the portal accepted that never became ready accounts, the
  most of any run. Must be 0; `node_loss_longest_wait_s` beside it;
- `rejoin_s`: from the lost node's start (`bring_back_node`, which returns once
  it is Ready) until the domain's ReplicationHealthy is True again;
- `accounts_per_s_2dc_2nodes`: the pipeline as bench/directory_day2.py
  measures `accounts_per_s_2dc` on one machine (signed tasks with sealed
  passwords, published at once, `--n` of them, until every result event is
  back; es4ps_testkit.tasks.pipeline), here through the deployed broker to the
  workers of the two DCs on their two nodes. This process stands in for the
  portal with the portal's own client certificate and task keys, while the
  domain is paused and the portal scaled to 0 (its consumer would take the
  result events).

Needs the real-node lock: `flock /tmp/es4ps-realnode.lock .venv/bin/python bench/multinode.py`.
The cluster is started if none runs and stopped afterwards (ES4PS_KEEP_CLUSTER=1 keeps it).

    .venv/bin/python bench/multinode.py [--runs 3] [--n 100] [--away 90]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from es4ps_localcluster import Cluster
from es4ps_testkit import multinode
from es4ps_testkit.kube import KubeCluster
from es4ps_testkit.tasks import TaskClient, pipeline

NODES = 3


def replication_healthy(kube: KubeCluster, timeout_s: float = 900) -> None:
    def healthy() -> bool:
        conditions = kube.get("es4psdomain", "acme", multinode.NAMESPACE).get("status", {}).get("conditions", [])
        return any(c["type"] == "ReplicationHealthy" and c["status"] == "True" for c in conditions)

    kube.eventually(healthy, timeout=timeout_s, interval=2, message="ReplicationHealthy True")


def drain_run(domain: multinode.NodesDeployment) -> dict:
    kube = domain.kube
    node = multinode.node_holding_everything(kube)
    people = multinode.Registrations(domain.deployment, "bd").start()
    try:
        time.sleep(10)
        draining = multinode.drain(kube, node)
        output, _ = draining.communicate(timeout=660)
        if draining.returncode != 0:
            raise RuntimeError(f"kubectl drain {node} failed: {output[-2000:]}")
        time.sleep(20)  # the node stays cordoned a while, as during maintenance
        multinode.uncordon(kube, node)
        multinode.wait_domain_ready(kube)
        replication_healthy(kube)
    finally:
        multinode.uncordon(kube, node)
        people.stop()
    return {
        "drain_longest_wait_s": round(people.longest_wait_s, 1),
        "drain_registrations": sum(o.waited_s is not None for o in people.outcomes),
        "drain_registrations_lost": len(people.lost),
        "drain_registrations_failed": [o.error for o in people.outcomes if o.error],
        "drained": node,
    }


def node_loss_run(domain: multinode.NodesDeployment, away_s: float) -> dict:
    kube = domain.kube
    node = multinode.node_of(kube, multinode.dc_pod(1))
    people = multinode.Registrations(domain.deployment, "bl").start()
    try:
        time.sleep(10)
        domain.local.lose_node(node)
        time.sleep(away_s)
        started = time.monotonic()
        domain.local.bring_back_node(node)
        replication_healthy(kube)
        rejoin_s = time.monotonic() - started
        multinode.wait_domain_ready(kube)
    finally:
        people.stop()
    return {
        "node_loss_registrations_lost": len(people.lost),
        "node_loss_longest_wait_s": round(people.longest_wait_s, 1),
        "node_loss_registrations": sum(o.waited_s is not None for o in people.outcomes),
        "node_loss_registrations_failed": [o.error for o in people.outcomes if o.error],
        "rejoin_s": round(rejoin_s, 1),
        "lost": node,
    }


def pipeline_runs(domain: multinode.NodesDeployment, runs: int, n: int, work: Path) -> list[float]:
    """accounts/s of `runs` pipeline runs of `n` create tasks, the portal's consumer out of the way meanwhile."""
    kube = domain.kube
    rates = []
    with multinode.portal_stood_in(kube, work) as portal_env:
        client = TaskClient(portal_env)
        try:
            for _ in range(runs):
                rate, _, _ = pipeline(client, f"p{uuid.uuid4().hex[:5]}x", n)
                rates.append(round(rate, 1))
        finally:
            client.close()
    multinode.wait_domain_ready(kube)
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--n", type=int, default=100, help="accounts per pipeline run")
    parser.add_argument("--away", type=float, default=90, help="seconds a lost node stays away")
    args = parser.parse_args()

    local = Cluster()
    started_cluster = not (local.healthy() and local.mode == "multi" and local.node_count == NODES)
    if started_cluster:
        if local.running():
            local.down()
        local.up(node="multi", nodes=NODES)
    domain = None
    result: dict = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            domain = multinode.deploy_on_nodes(KubeCluster(local.kubeconfig), local, Path(tmp))
            replication_healthy(domain.kube)
            rates = pipeline_runs(domain, args.runs, args.n, Path(tmp))
            drains = [drain_run(domain) for _ in range(args.runs)]
            losses = [node_loss_run(domain, args.away) for _ in range(args.runs)]
            for run in [*drains, *losses]:
                print(json.dumps(run), file=sys.stderr)
            result = {
                "accounts_per_s_2dc_2nodes": statistics.median(rates),
                "drain_longest_wait_s": statistics.median(r["drain_longest_wait_s"] for r in drains),
                "node_loss_registrations_lost": max(r["node_loss_registrations_lost"] for r in losses),
                "node_loss_longest_wait_s": statistics.median(r["node_loss_longest_wait_s"] for r in losses),
                "rejoin_s": statistics.median(r["rejoin_s"] for r in losses),
                "n": args.n,
                "away_s": args.away,
                "per_run": {"accounts_per_s_2dc_2nodes": rates, "drains": drains, "losses": losses},
            }
    finally:
        if domain is not None:
            domain.close()
        if started_cluster and os.environ.get("ES4PS_KEEP_CLUSTER") != "1":
            local.down()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
