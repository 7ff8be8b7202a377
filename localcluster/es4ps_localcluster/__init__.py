"""A local Kubernetes cluster of real components, as a library (the way envtest is one).

    from es4ps_localcluster import Cluster
    cluster = Cluster(); cluster.up(node="kwok"); ...; cluster.down()

    python -m es4ps_localcluster up [--node kwok|real] | down | status
    python -m es4ps_localcluster images build|down|env ...

Modules: `cluster` (the orchestration, `Cluster`), `components` (one module per
process: etcd, API server, ..., the real node's kubelet), `pki` (the one
certificate authority helper), `processes` (the one process supervisor and
`wait_until`), `images` (container images without a registry), `ingress`
(Traefik, the cluster's ingress controller), `tools` (the Go-built tools, each
built when first needed), `paths` (where the checkout keeps things), `cli`.

It knows Kubernetes and nothing of the products run on it (a unit test holds
it to that): what a product builds, deploys or names is its own (ES4PS's is
in es4ps_devtools).
"""

from __future__ import annotations

__all__ = ["Cluster", "ClusterError"]


def __getattr__(name: str):
    # Imported on first use, so `processes`, `paths` or a component's own process start without the rest.
    if name in __all__:
        from . import cluster

        return getattr(cluster, name)
    raise AttributeError(name)
