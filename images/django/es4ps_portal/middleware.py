"""Middleware of the portal: health probes and the Content-Security-Policy header."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from es4ps_portal import broker

logger = logging.getLogger(__name__)


def _database_error() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return f"database: {type(exc).__name__}"
    return None


class HealthCheckMiddleware:
    """Answers /healthz (the process runs) and /readyz (database and broker reachable).

    It runs before host validation because the kubelet probes the pod by its IP.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/healthz":
            return JsonResponse({"status": "ok"})
        if request.path == "/readyz":
            problems = [p for p in (_database_error(), broker.connection_error()) if p]
            if problems:
                logger.warning("not ready: %s", "; ".join(problems))
                return JsonResponse({"status": "unavailable", "problems": problems}, status=503)
            return JsonResponse({"status": "ok"})
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Adds the Content-Security-Policy header: only the portal's own scripts, styles and forms."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response
