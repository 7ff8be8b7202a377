"""Health probes of the portal, answered to the kubelet and never through the Ingress."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import split_domain_port

from es4ps_portal import broker

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
    """Answers /healthz (the process runs) and /readyz (database and broker reachable).

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
        problems = [p for p in (_database_error(), broker.connection_error()) if p]
        if problems:
            logger.warning("not ready: %s", "; ".join(problems))
            return JsonResponse({"status": "unavailable", "problems": problems}, status=503)
        return JsonResponse({"status": "ok"})
