"""The staff door: where the admin may be reached at all (spec.portal.admin), before anyone signs in.

With `ADMIN_HOST` the admin answers on that host name only, and that host
serves nothing else (its static files aside): the public host has no
/admin/, so its sign-in page is not there to be tried. With
`ADMIN_SOURCE_RANGES` only clients in those networks reach the admin; the
address is the one the trusted proxies report (es4ps_portal.client_address),
as the rate limits count it. Everybody else gets 403 before a page or a form.
Staff who do reach it still sign in with a password and a second factor
(`otp`).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect

from es4ps_portal.client_address import client_address

# Where es4ps_portal.urls mounts the admin.
ADMIN_PATH = "/admin/"


def admitted(address: str) -> bool:
    """Whether a client address may reach the admin (every address when no range is named)."""
    if not settings.ADMIN_SOURCE_RANGES:
        return True
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in settings.ADMIN_SOURCE_RANGES)


class AdminDoorMiddleware:
    """Refuses the admin on the wrong host (404) or from outside the named ranges (403)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        to_admin = request.path.startswith(ADMIN_PATH)
        if settings.ADMIN_HOST:
            on_admin_host = request.get_host().lower() == settings.ADMIN_HOST
            if on_admin_host and not to_admin:
                if request.path == "/":
                    return HttpResponseRedirect(ADMIN_PATH)
                raise Http404("the admin's host serves the admin only")
            if to_admin and not on_admin_host:
                raise Http404("the admin is served on its own host")
        if to_admin and not admitted(client_address(request)):
            raise PermissionDenied("the admin is not reachable from this address")
        return self.get_response(request)
