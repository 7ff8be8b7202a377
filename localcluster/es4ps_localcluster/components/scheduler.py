"""kube-scheduler, with its defaults (one profile), no leader election."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Component

if TYPE_CHECKING:
    from ..cluster import Cluster


def command(cluster: Cluster) -> list[str]:
    kubeconfig = cluster.kubeconfig_for("scheduler")
    return [
        str(cluster.bin / "kube-scheduler"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={cluster.ports.scheduler}",
        "--leader-elect=false",
        "--v=1",
    ]


def ready(cluster: Cluster) -> bool:
    # its serving certificate is self-signed: trust is not the question here, only health
    return cluster.http_ok(f"https://127.0.0.1:{cluster.ports.scheduler}/healthz", verify=False)


SCHEDULER = Component("kube-scheduler", command, ready, start_timeout_s=60)
