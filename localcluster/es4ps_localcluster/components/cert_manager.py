"""The cert-manager controller (v1.11, localcluster/tools/cert-manager) with its CRDs from crds/third_party.

v1.11 is the last release whose controller the Go module proxy can serve; it
speaks only stable APIs and runs fine against 1.34. No webhook: cert-manager
objects get no defaulting or validation beyond their CRDs' schemas.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..paths import ROOT
from . import Component

if TYPE_CHECKING:
    from ..cluster import Cluster

CRDS = ROOT / "crds" / "third_party" / "cert-manager.crds.yaml"
NAMESPACE = "cert-manager"
PROBE_ISSUER = "es4ps-local-selfsigned"


def install_crds(cluster: Cluster) -> None:
    """Apply cert-manager's CRDs and its namespace; wait until the API serves the CRDs."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app=cert-manager")


def command(cluster: Cluster) -> list[str]:
    return [
        str(cluster.bin / "cert-manager-controller"),
        f"--kubeconfig={cluster.kubeconfig_for('cert-manager')}",
        "--leader-elect=false",
        f"--cluster-resource-namespace={NAMESPACE}",
        # a Certificate's Secret goes away with it (like the operator's other children)
        "--enable-certificate-owner-ref",
        f"--metrics-listen-address=127.0.0.1:{cluster.ports.cert_manager_metrics}",
        # a local cluster has API capacity to spare: issue many domains' certificates faster
        "--kube-api-qps=100",
        "--kube-api-burst=200",
        "--v=1",
    ]


def ready(cluster: Cluster) -> bool:
    """cert-manager is working when a SelfSigned ClusterIssuer gets its Ready condition."""
    probe = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "ClusterIssuer",
        "metadata": {"name": PROBE_ISSUER},
        "spec": {"selfSigned": {}},
    }
    applied = cluster.query("apply", "--server-side", "-f", "-", input=json.dumps(probe))
    return applied is not None and cluster.condition_true("clusterissuer", PROBE_ISSUER)


CERT_MANAGER = Component("cert-manager", command, ready, start_timeout_s=120)
