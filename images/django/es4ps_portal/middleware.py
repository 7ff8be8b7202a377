"""Health probes of the portal, answered to the kubelet and never through the Ingress."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import split_domain_port

logger = logging.getLogger(__name__)
PROBE_PATHS = ("/healthz", "/readyz")


def _database_error() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return f"database: {type(exc).__name__}"
    return None


def _addressed_to_the_pod(request: HttpRequest) -> bool:
    """The kubelet probes the Pod by its IP; a request through the Ingress names the public host."""
    domain, _port = split_domain_port(request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", ""))
    return domain != settings.PORTAL_HOST


class HealthCheckMiddleware:
    """Answers /healthz (the process runs) and /readyz (the database answers).

    The broker is not part of readiness: changes wait in the outbox while it is
    away (provisioning.outbox), so the portal keeps taking registrations.

    It runs before host validation because the kubelet probes the Pod by its
    IP. Requests for the public host name are not answered here (they get the
    portal's 404): /readyz names what is broken, which is nobody's business
    on the internet.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path not in PROBE_PATHS or not _addressed_to_the_pod(request):
            return self.get_response(request)
        if request.path == "/healthz":
            return JsonResponse({"status": "ok"})
        problem = _database_error()
        if problem:
            logger.warning("not ready: %s", problem)
            return JsonResponse({"status": "unavailable", "problems": [problem]}, status=503)
        return JsonResponse({"status": "ok"})
