"""Fixtures of the local Kubernetes cluster: `cluster` (KWOK nodes), `real_cluster` (a real node),
`multi_cluster` (three real nodes, each in a network namespace of its own), fresh namespaces, and
`nodes_restored` (every node back after a test that loses or drains one).

Each reuses a running cluster of its mode (`make cluster [NODE=real | NODES=3]`);
otherwise it starts one with es4ps_localcluster, the same code, switching
modes if needed, and stops what it started at the end of the session
(ES4PS_KEEP_CLUSTER=1 keeps it). The tests are ordered so that each mode
starts once: KWOK first, then the real node (tests marked e2e), then the
multi-node cluster (tests that use `multi_cluster`, or are marked
`multinode`), and last a test marked `stops_cluster`. If a cluster cannot
start, every test that needs it fails with the reason.

`--part=cluster` keeps only the tests that need a cluster (or dockerd),
`--part=processes` only the others: `make test` runs the two side by side
(hack/test.sh).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator

import pytest
from es4ps_localcluster import Cluster, ClusterError

from ..kube import KubeCluster

MULTI_NODES = 3


def cluster_mode_order(item) -> int:
    """Where a test runs in the session: KWOK 0, the real node 1, several real nodes 2, stopping the cluster 3."""
    if item.get_closest_marker("stops_cluster"):
        return 3
    if "multi_cluster" in item.fixturenames or item.get_closest_marker("multinode"):
        return 2
    return 1 if item.get_closest_marker("e2e") else 0


_CLUSTER_MARKERS = ("cluster", "e2e", "multinode", "stops_cluster", "images")


def needs_cluster(item) -> bool:
    """Whether a test needs the local cluster (any mode) or dockerd, whose images the real node runs."""
    return "_cluster_session" in item.fixturenames or any(item.get_closest_marker(m) for m in _CLUSTER_MARKERS)


def pytest_addoption(parser):
    parser.addoption(
        "--part",
        choices=("all", "cluster", "processes"),
        default="all",
        help="cluster: only the tests that need the local cluster or dockerd; processes: only the others "
        "(services as processes on this machine). `make test` runs both parts side by side (hack/test.sh).",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Keep the part asked for (--part), and group the tests by the cluster mode they need: each mode's cluster
    starts once (the sort is stable)."""
    part = config.getoption("part")
    if part != "all":
        kept, deselected = [], []
        for item in items:
            (kept if needs_cluster(item) == (part == "cluster") else deselected).append(item)
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = kept
    items.sort(key=cluster_mode_order)


class _ClusterSession:
    """Starts or switches the local cluster on demand; stops it at the end if this session started it."""

    def __init__(self) -> None:
        self.local = Cluster()
        self.started = False

    def ensure(self, mode: str, nodes: int | None = None) -> KubeCluster:
        wanted = {"kwok": 0, "real": 1}.get(mode, nodes)
        if not (self.local.healthy() and self.local.mode == mode and self.local.node_count == wanted):
            try:
                if self.local.running():
                    print(f"\nswitching the local cluster from NODE={self.local.mode} to NODE={mode}", file=sys.stderr)
                    self.local.down()
                # before up(): a start that fails half-way leaves processes only the session's end stops
                self.started = True
                self.local.up(node=mode, nodes=nodes)
            except ClusterError as exc:
                pytest.fail(f"the local cluster (NODE={mode}) could not start: {exc}", pytrace=False)
        return KubeCluster(self.local.kubeconfig)


@pytest.fixture(scope="session")
def _cluster_session():
    session = _ClusterSession()
    yield session
    if session.started and os.environ.get("ES4PS_KEEP_CLUSTER") != "1":
        session.local.down()


@pytest.fixture(scope="session")
def local_cluster(_cluster_session) -> Cluster:
    """The es4ps_localcluster object behind the fixtures (its nodes, to lose one and bring it back)."""
    return _cluster_session.local


@pytest.fixture(scope="session")
def cluster(_cluster_session) -> KubeCluster:
    """The local cluster with KWOK nodes and cert-manager."""
    return _cluster_session.ensure("kwok")


@pytest.fixture(scope="session")
def real_cluster(_cluster_session) -> KubeCluster:
    """The local cluster with a real node: Pods run the locally built images in containerd."""
    return _cluster_session.ensure("real")


@pytest.fixture(scope="session")
def multi_cluster(_cluster_session) -> KubeCluster:
    """The local cluster with three real nodes (node1..node3), each in a network namespace of its own."""
    return _cluster_session.ensure("multi", MULTI_NODES)


@pytest.fixture
def nodes_restored(multi_cluster, local_cluster) -> Iterator[None]:
    """After the test, however it ended, every node of the multi-node cluster runs and takes Pods: a lost node is
    brought back, a cordoned one uncordoned (a failed test must not leave the next one a node short)."""
    yield
    for name in local_cluster.lost_nodes():
        local_cluster.bring_back_node(name)
    for node in multi_cluster.get("nodes")["items"]:
        if node["spec"].get("unschedulable"):
            multi_cluster.kubectl("uncordon", node["metadata"]["name"])


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


@pytest.fixture
def multi_namespace(multi_cluster: KubeCluster) -> str:
    """A fresh namespace on the multi-node cluster for one test."""
    yield from _fresh_namespace(multi_cluster)
