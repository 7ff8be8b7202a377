"""Fixtures of the local Kubernetes cluster: `cluster` (KWOK nodes), `real_cluster` (a real node), fresh namespaces.

Each reuses a running cluster of its mode (`make cluster [NODE=real]`);
otherwise it starts one with es4ps_localcluster, the same code, switching
modes if needed (tests marked e2e, the real-node ones, run last, so one switch
suffices), and stops what it started at the end of the session
(ES4PS_KEEP_CLUSTER=1 keeps it). If a cluster cannot start, every test that
needs it fails with the reason.
"""

from __future__ import annotations

import os
import sys
import uuid

import pytest
from es4ps_localcluster import Cluster, ClusterError

from ..kube import KubeCluster


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Run the tests on the real node (marked e2e) last: switching the cluster's node mode happens once."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


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
