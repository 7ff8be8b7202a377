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
    # Pods of real nodes reach the API through the `kubernetes` Service: the server must then listen on,
    # and advertise, an address they reach (the host's, or this machine's on the nodes' bridge).
    bind = "127.0.0.1" if cluster.mode == "kwok" else "0.0.0.0"  # noqa: S104
    return [
        str(cluster.bin / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{cluster.ports.etcd}",
        f"--bind-address={bind}",
        f"--advertise-address={cluster.api_address}",
        f"--secure-port={cluster.ports.api}",
        f"--tls-cert-file={pki.cert('apiserver')}",
        f"--tls-private-key-file={pki.key('apiserver')}",
        f"--client-ca-file={pki.cert('ca')}",
        f"--kubelet-client-certificate={pki.cert('apiserver-kubelet-client')}",
        f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
        # the nodes' names are not in any resolver (node1, ...): logs and exec go to their addresses
        "--kubelet-preferred-address-types=InternalIP,Hostname",
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
