"""kube-apiserver: TLS, RBAC and the Node authorizer, service-account tokens (localcluster/tools/kubernetes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Component

if TYPE_CHECKING:
    from ..cluster import Cluster

SERVICE_CIDR = "10.96.0.0/16"
# The first address of SERVICE_CIDR: the `kubernetes` Service, which Pods use to reach the API.
SERVICE_IP = "10.96.0.1"
SERVICE_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


def command(cluster: Cluster) -> list[str]:
    pki = cluster.pki
    # Pods of a real node reach the API through the `kubernetes` Service: the
    # server must then listen on, and advertise, the host's address.
    if cluster.mode == "real":
        bind, advertise = "0.0.0.0", cluster.node.ip  # noqa: S104
    else:
        bind, advertise = "127.0.0.1", "127.0.0.1"
    return [
        str(cluster.bin / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{cluster.ports.etcd}",
        f"--bind-address={bind}",
        f"--advertise-address={advertise}",
        f"--secure-port={cluster.ports.api}",
        f"--tls-cert-file={pki.cert('apiserver')}",
        f"--tls-private-key-file={pki.key('apiserver')}",
        f"--client-ca-file={pki.cert('ca')}",
        f"--kubelet-client-certificate={pki.cert('apiserver-kubelet-client')}",
        f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
        "--authorization-mode=Node,RBAC",
        f"--service-account-key-file={pki.path('sa', 'pub')}",
        f"--service-account-signing-key-file={pki.key('sa')}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        "--enable-admission-plugins=NodeRestriction",
        "--profiling=false",
        "--v=1",
    ]


def ready(cluster: Cluster) -> bool:
    return cluster.http_ok(f"{cluster.server}/readyz")


APISERVER = Component("kube-apiserver", command, ready, start_timeout_s=120)
