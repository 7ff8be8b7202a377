"""The client's address of a request, as the rate limits count it and the audit trail records it.

Each trusted proxy in front of the portal (the Ingress) appends the address it
saw to X-Forwarded-For, so the entry `settings.TRUSTED_PROXY_COUNT` from the
end is the client; anything before it is the client's own claim.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.http import HttpRequest


def client_ip(meta: Mapping[str, str], trusted_proxies: int) -> str:
    """The client's address from a request's META: the X-Forwarded-For entry our proxies wrote, else the peer."""
    forwarded = [a.strip() for a in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
    if trusted_proxies and len(forwarded) >= trusted_proxies:
        return forwarded[-trusted_proxies]
    return meta.get("REMOTE_ADDR", "")


def client_address(request: HttpRequest) -> str:
    """The address of the client that sent `request`, through the proxies the settings trust."""
    return client_ip(request.META, settings.TRUSTED_PROXY_COUNT)
