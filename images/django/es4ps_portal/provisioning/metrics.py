"""The consumer's Prometheus metrics (`es4ps-portal consume`): the outbox relay, the result events, expiry.

Served on `ES4PS_CONSUMER_METRICS_PORT` (es4ps_portal.metrics.serve). Only the
consumer imports this module, so the web processes' endpoint never shows
these series (their gauges would be per-process zeros there).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TASKS_PUBLISHED = Counter(
    "es4ps_portal_tasks_published",
    "Directory tasks the outbox relay handed to the broker (confirmed), by operation.",
    ["operation"],
)
PUBLISH_FAILURES = Counter(
    "es4ps_portal_task_publish_failures",
    "Publishes of the outbox relay the broker did not confirm (the task stays queued and is tried again).",
)
OUTBOX_TASKS = Gauge(
    "es4ps_portal_outbox_tasks",
    "Directory tasks waiting in the outbox for the broker (shared by every replica's relay).",
)
OUTBOX_OLDEST_AGE = Gauge(
    "es4ps_portal_outbox_oldest_task_age_seconds",
    "Age of the oldest task waiting in the outbox; 0 when none waits.",
)
RESULTS = Counter(
    "es4ps_portal_task_results",
    "Result events recorded, by operation and outcome (succeeded, failed, rejected, not_applied).",
    ["operation", "outcome"],
)
RESULTS_DROPPED = Counter(
    "es4ps_portal_task_results_dropped",
    "Result events dropped unread, by reason: unsigned, unknown_worker (no key for the DC it names),"
    " bad_signature, malformed. Anything but malformed means a broker credential is being misused.",
    ["reason"],
)
PROVISIONING_DURATION = Histogram(
    "es4ps_portal_provisioning_duration_seconds",
    "From the change in the portal to the worker's result, by operation.",
    ["operation"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)
REGISTRATIONS_EXPIRED = Counter(
    "es4ps_portal_registrations_expired",
    "Unconfirmed registrations expired: dropped (nothing was sent to the directory), or, made by the previous"
    " release, their deletion queued.",
)
PENDING_REGISTRATIONS = Gauge(
    "es4ps_portal_pending_registrations",
    "Unconfirmed registrations (address not yet proven; nothing of them is in the directory).",
)
PENDING_REGISTRATION_CAP = Gauge(
    "es4ps_portal_pending_registration_cap",
    "The caps on unconfirmed registrations (spec.portal.pendingRegistrations), by scope.",
    ["scope"],
)
