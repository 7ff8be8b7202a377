"""The portal's Prometheus metrics (prometheus-client), and the endpoint that serves them apart from the public port.

Two processes count, each served on its own port, never through the Ingress:

- the web processes (`es4ps-portal serve`: gunicorn's workers) count what
  people do and how long requests take (this module); gunicorn's master
  serves the sum over its workers on `ES4PS_PORTAL_METRICS_PORT`
  (prometheus-client's multiprocess mode: `serve` gives every start a fresh
  `PROMETHEUS_MULTIPROC_DIR`, see `gunicorn_hooks`);
- the consumer (`es4ps-portal consume`: one process) counts the outbox relay,
  the result events and expiry (`provisioning.metrics`), served on
  `ES4PS_CONSUMER_METRICS_PORT`. Web processes never import those, so their
  endpoint shows none of the consumer's series.

Outcomes are fixed words (below), never user input, so the number of series
stays bounded. Request latency is labelled by the view's name, not the path
(paths carry tokens and usernames).
"""

from __future__ import annotations

import os
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, start_http_server

# --- the web processes -------------------------------------------------------------------------

REGISTRATIONS = Counter(
    "es4ps_portal_registrations",
    "Registration forms sent, by outcome: accepted, invalid, rate_limited, too_many_pending (a cap on unconfirmed"
    " registrations), failed.",
    ["outcome"],
)
VERIFICATIONS = Counter(
    "es4ps_portal_verifications",
    "Address verifications by link or code, by outcome: verified, invalid, rate_limited, failed.",
    ["method", "outcome"],
)
LOGINS = Counter(
    "es4ps_portal_logins",
    "Sign-ins (people and staff), by outcome: succeeded, failed, password_expired, locked, rate_limited, unavailable.",
    ["outcome"],
)
PASSWORD_RESETS = Counter(
    "es4ps_portal_password_resets",
    "Password resets: step request (queued: whether the address has an account is the mail relay's business;"
    " invalid, rate_limited) and step confirm"
    " (accepted, invalid, rate_limited, failed).",
    ["step", "outcome"],
)
RATE_LIMIT_REFUSALS = Counter(
    "es4ps_portal_rate_limit_refusals",
    "Requests refused by a rate limit, by action (register, login, verify, reset).",
    ["action"],
)
BREACHED_PASSWORD_LOOKUPS = Counter(
    "es4ps_portal_breached_password_lookups",
    "New passwords looked up in the breach corpus, by outcome: breached (refused), clean, unavailable (the corpus"
    " did not answer; the password was accepted).",
    ["outcome"],
)
TASKS_QUEUED = Counter(
    "es4ps_portal_tasks_queued",
    "Directory tasks written to the outbox (committed with their change), by operation.",
    ["operation"],
)
REQUESTS = Counter(
    "es4ps_portal_requests",
    "HTTP requests answered, by view name, method and status code.",
    ["view", "method", "status"],
)
REQUEST_DURATION = Histogram(
    "es4ps_portal_request_duration_seconds",
    "Time to answer an HTTP request, by view name and method.",
    ["view", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# A client may send any method: the label takes these, anything else is "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _view_label(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name
    return "static" if request.path.startswith(settings.STATIC_URL) else "unmatched"


class RequestMetricsMiddleware:
    """Counts every request (after the probes, which are not the portal's traffic) and times it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = self.get_response(request)
        view = _view_label(request)
        method = request.method if request.method in _METHODS else "other"
        REQUEST_DURATION.labels(view, method).observe(time.perf_counter() - start)
        REQUESTS.labels(view, method, str(response.status_code)).inc()
        return response


def serve(port: int, address: str = "0.0.0.0"):  # noqa: S104 - the Pod's own port, which the Ingress never routes to
    """Serve this process's metrics (multiprocess mode: every process's) on `port` in a thread; returns the server."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        server, _thread = start_http_server(port, address, registry=registry)
    else:
        server, _thread = start_http_server(port, address)
    return server
