"""Prometheus metrics and the HTTP endpoint serving them with the liveness probe.

    GET /healthz   200 while the event loop answers (the liveness probe)
    GET /metrics   Prometheus text format

The endpoint runs in every replica, the waiting ones too, so a replica that
is not the leader is still alive to Kubernetes.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

RECONCILES = Counter("es4ps_operator_reconciles_total", "Reconciliations of a domain, by result", ["result"])
RECONCILE_SECONDS = Histogram(
    "es4ps_operator_reconcile_duration_seconds",
    "Duration of one reconciliation of a domain",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CHILDREN_WRITTEN = Counter(
    "es4ps_operator_children_written_total",
    "Children written, by what happened (created, updated, restored, pruned)",
    ["action"],
)
SECRETS_GENERATED = Counter("es4ps_operator_secrets_generated_total", "Secrets generated for domains")
DOMAINS = Gauge("es4ps_operator_domains", "Domains this replica reconciles")
LEADER = Gauge("es4ps_operator_leader", "1 while this replica is the active one, else 0")
# Per domain with a backup schedule (the ES4PSBackupsStale alert): namespace and name as labels of their own,
# since the series comes from the operator's Pod, whose `namespace` label is the operator's.
LAST_BACKUP = Gauge(
    "es4ps_operator_last_backup_timestamp_seconds",
    "When the newest completed backup of a domain with a schedule finished (its creation before the first)",
    ["es4ps_namespace", "es4ps_domain"],
)


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def start_http_server(port: int, host: str = "0.0.0.0") -> web.AppRunner:  # noqa: S104 (a Pod's probe port)
    """Serve /healthz and /metrics; returns the runner to stop with `await runner.cleanup()`."""
    app = web.Application()
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
