"""Fixtures of the operator's integration tests: the CRD, the operator's identity, the operator itself.

- `es4ps_crd`: the KWOK cluster with the ES4PSDomain CRD installed as a user would
- `operator_account`: the operator's ServiceAccount, bound to operator/deploy/rbac.yaml and nothing else
- `domain_namespace`: a fresh namespace whose claims get volumes
- `start_operator(**env)`: an operator replica serving that namespace (es4ps_testkit.operator_harness)

Each test gets a fresh namespace and its own operator process serving only
that namespace (other test sessions may share the cluster and run their own
operators; a cluster-wide one would reconcile their domains too).
"""

from __future__ import annotations

import uuid

import pytest

from ..domains import CRDS
from ..operator_harness import delete_identity, fresh_namespace, operator_identity, operator_replicas


@pytest.fixture(scope="session")
def es4ps_crd(cluster):
    """ES4PS's CRDs (ES4PSDomain, ES4PSBackup), installed as a user would."""
    for crd in CRDS:
        cluster.apply(crd)

    def established(name: str) -> bool:
        # Polled rather than `kubectl wait`, which fails at once while a new CRD has no conditions yet.
        conditions = cluster.get("crd", name, check=False).get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    for name in ("es4psdomains.es4ps.io", "es4psbackups.es4ps.io"):
        cluster.eventually(lambda name=name: established(name), timeout=60, message=f"the CRD {name} established")
    return cluster


@pytest.fixture(scope="session")
def operator_account(es4ps_crd, tmp_path_factory):
    """The operator's ServiceAccount, bound to operator/deploy/rbac.yaml and nothing else."""
    namespace = f"es4ps-op-{uuid.uuid4().hex[:6]}"
    es4ps_crd.kubectl("create", "namespace", namespace)
    yield operator_identity(es4ps_crd, namespace, tmp_path_factory.mktemp("operator-identity"))
    delete_identity(es4ps_crd, namespace)
    es4ps_crd.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def domain_namespace(es4ps_crd):
    with fresh_namespace(es4ps_crd) as name:
        yield name


@pytest.fixture
def start_operator(operator_account, domain_namespace, tmp_path):
    """Start operator replicas serving the test's namespace: start_operator(**env) -> OperatorProcess."""
    with operator_replicas(operator_account, domain_namespace, tmp_path) as start:
        yield start
