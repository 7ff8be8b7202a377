"""gunicorn's server hooks for the portal (`es4ps-portal serve` passes `--config python:es4ps_portal.gunicorn_hooks`).

The metrics of every worker process are summed by gunicorn's master, which
serves them on `ES4PS_PORTAL_METRICS_PORT` (a port of the Pod that neither the
Service's public port nor the Ingress leads to): a scrape never waits for a
busy worker and sees the counts of all of them. The workers write their
counts to `PROMETHEUS_MULTIPROC_DIR` (prometheus-client's multiprocess mode),
which `serve` made fresh for this start and the master removes on exit.
"""

from __future__ import annotations

import os
import shutil

from prometheus_client import multiprocess

from es4ps_portal import metrics
from es4ps_portal.environment import env

_metrics_server = None


def when_ready(server) -> None:
    """The master listens: serve the workers' metrics from it."""
    global _metrics_server
    port = env.integer("ES4PS_PORTAL_METRICS_PORT", minimum=0, maximum=65535)
    if port:
        _metrics_server = metrics.serve(port)
        server.log.info("serving the workers' metrics on port %d", port)


def post_fork(server, worker) -> None:
    """A worker does not serve metrics: close its copy of the master's metrics socket."""
    if _metrics_server is not None:
        _metrics_server.socket.close()


def child_exit(server, worker) -> None:
    """Forget a dead worker's live gauges (its counters and histograms stay in the sums)."""
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
