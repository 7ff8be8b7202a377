"""The ES4PS operator: reconciles ES4PSDomain objects (es4ps.io/v1alpha1) with kopf.

Where things are (handlers -> reconcile -> builders, kube, status; never back):

    cli           `python -m es4ps_operator`: HTTP endpoint, leader Lease, kopf
    config        the operator's settings from the environment (images, timeouts)
    handlers      kopf glue: watches, one reconcile loop per domain, deletion
    reconcile     one reconciliation: build, apply, prune, status, events
    domain        an ES4PSDomain read into typed values
    naming        names, labels and annotations of the children
    builders/     pure functions: domain -> manifests, one module per component
    children      what the operator remembers of each child, what to re-apply or prune
    status        the status derived from the children (pure)
    kube          the only module that writes to the API (server-side apply)
    leader        leader election with a Lease (several replicas, one active)
    observability Prometheus metrics, /healthz and /metrics
"""
