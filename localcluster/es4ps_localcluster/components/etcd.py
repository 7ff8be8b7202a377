"""etcd, the cluster's store: one member on loopback, built from localcluster/tools/etcd.

Debian's etcd 3.4 is too old for current API servers (they need 3.4.31+ or
3.5.13+ for watch progress requests), hence the pinned v3.6 build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..processes import http_ok
from . import Component

if TYPE_CHECKING:
    from ..cluster import Cluster


def command(cluster: Cluster) -> list[str]:
    client, peer = f"http://127.0.0.1:{cluster.ports.etcd}", f"http://127.0.0.1:{cluster.ports.etcd_peer}"
    return [
        str(cluster.bin / "etcd"),
        f"--data-dir={cluster.state / 'etcd'}",
        "--name=es4ps-local",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=es4ps-local={peer}",
        "--listen-metrics-urls=",
        # a throwaway test cluster: durability is not worth the fsync latency
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def ready(cluster: Cluster) -> bool:
    return http_ok(f"http://127.0.0.1:{cluster.ports.etcd}/health")


ETCD = Component("etcd", command, ready, start_timeout_s=60)
