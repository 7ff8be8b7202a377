"""kube-controller-manager: every controller, signing with the cluster CA, a service account per controller."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Component
from .apiserver import SERVICE_CIDR

if TYPE_CHECKING:
    from ..cluster import Cluster


def command(cluster: Cluster) -> list[str]:
    pki = cluster.pki
    kubeconfig = cluster.kubeconfig_for("controller-manager")
    return [
        str(cluster.bin / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={cluster.ports.controller_manager}",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.key('sa')}",
        f"--root-ca-file={pki.cert('ca')}",
        f"--cluster-signing-cert-file={pki.cert('ca')}",
        f"--cluster-signing-key-file={pki.key('ca')}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--controllers=*",
        "--v=1",
    ]


def ready(cluster: Cluster) -> bool:
    """The controllers work: the service-account controller made the default namespace's ServiceAccount."""
    return cluster.query("get", "serviceaccount", "default", "-n", "default") is not None


CONTROLLER_MANAGER = Component("kube-controller-manager", command, ready, start_timeout_s=90)
