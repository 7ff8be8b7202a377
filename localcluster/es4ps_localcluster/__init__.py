"""A local Kubernetes cluster of real components, as a library (the way envtest is one), and what runs on it.

    from es4ps_localcluster import Cluster
    cluster = Cluster(); cluster.up(node="kwok"); ...; cluster.down()

    python -m es4ps_localcluster up [--node kwok|real] | down | status
    python -m es4ps_localcluster images build|load|down|env|list ...
    python -m es4ps_localcluster demo up|mail|down

Modules: `cluster` (the orchestration, `Cluster`), `components` (one module per
process: etcd, API server, ..., the real node's kubelet), `pki` (the one
certificate authority helper), `processes` (the one process supervisor and
`wait_until`), `images` (container images without a registry), `ingress`
(Traefik, the ingress controller of the demo and the e2e tests), `demo` (`make demo`),
`paths` (where the checkout keeps things), `cli`.
"""

from __future__ import annotations

__all__ = ["Cluster", "ClusterError"]


def __getattr__(name: str):
    # Imported on first use, so `processes`, `paths` or a component's own process start without the rest.
    if name in __all__:
        from . import cluster

        return getattr(cluster, name)
    raise AttributeError(name)
