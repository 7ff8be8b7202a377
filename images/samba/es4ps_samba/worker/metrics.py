"""The worker's Prometheus metrics (prometheus-client), summed over its pool processes.

`es4ps-worker` runs Celery's prefork pool: tasks run in child processes, so
the counts live in prometheus-client's multiprocess mode, each process
writing to files of a directory made fresh for every start; the main
process serves their sum on `ES4PS_WORKER_METRICS_PORT`.

prometheus-client chooses where values live when it is first imported, so
the worker points it at the directory (`use_multiprocess_directory`) before
anything imports it: that is why this module imports it only inside its
functions, and the worker module imports this one freely.

    es4ps_worker_tasks_total{operation, outcome}      succeeded, failed, rejected, not_applied, repeated
    es4ps_worker_task_retries_total{operation}        retries while the account is not there yet or the DC is away
    es4ps_worker_task_duration_seconds{operation}     one attempt, from receipt to result event
    es4ps_worker_publish_to_apply_seconds{operation}  from the portal's change (the task's signed issue time)
                                                      to its outcome here: broker, outbox and retries included
    es4ps_worker_directory_errors_total{operation, error}  unavailable, not_found_yet, refused, internal
    es4ps_worker_unauthentic_bindings_total           binding lines met whose MAC did not verify (or of an
                                                      earlier version): someone wrote one who should not have
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any


def use_multiprocess_directory() -> str:
    """Make a fresh directory for this start's metrics and point prometheus-client at it; returns its path.

    Call before prometheus-client is imported; the caller removes the directory when the worker ends.
    """
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the worker chose its multiprocess directory")
    directory = tempfile.mkdtemp(prefix="es4ps-worker-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory


class WorkerMetrics:
    """The worker's metrics; `registry` None leaves them unregistered (multiprocess mode collects from files)."""

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import Counter, Histogram

        self.tasks = Counter(
            "es4ps_worker_tasks",
            "Tasks finished, by operation and outcome (succeeded, failed, rejected, not_applied, repeated).",
            ["operation", "outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "es4ps_worker_task_retries",
            "Tasks put back for a retry (the account is not there yet, or the DC is unavailable).",
            ["operation"],
            registry=registry,
        )
        self.duration = Histogram(
            "es4ps_worker_task_duration_seconds",
            "One attempt at a task, from its receipt to its result event (or retry).",
            ["operation"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.publish_to_apply = Histogram(
            "es4ps_worker_publish_to_apply_seconds",
            "From the task's issue in the portal to its outcome in this worker (whole seconds of issue time).",
            ["operation"],
            buckets=(1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 21600, 86400),
            registry=registry,
        )
        self.directory_errors = Counter(
            "es4ps_worker_directory_errors",
            "Errors from the directory, by operation and kind (unavailable, not_found_yet, refused, internal).",
            ["operation", "error"],
            registry=registry,
        )
        self.creates_without_dc = Counter(
            "es4ps_worker_creates_without_dc",
            "Creates that went on without asking a DC that did not answer whether it holds the name, by DC.",
            ["dc"],
            registry=registry,
        )
        self.unauthentic_bindings = Counter(
            "es4ps_worker_unauthentic_bindings",
            "Binding lines met whose MAC did not verify (or written by an earlier version): they order nothing.",
            registry=registry,
        )


def serve(port: int, address: str) -> None:
    """Serve the sum of every pool process's metrics on `address`:`port`, in a thread of the main process."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, address, registry=registry)
