"""Rate limits per client address and per account, counted in Django's cache (shared by all workers).

Fixed windows: each (action, scope, key) has a counter that expires with its
window. Views `check` before acting and `hit` for each attempt that counts
(every registration, every failed login, ...). Keys are hashed so the cache
never holds e-mail addresses.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


class RateLimited(Exception):
    """Too many attempts; `message` says when to try again."""

    def __init__(self, retry_after_s: int) -> None:
        minutes = max(1, math.ceil(retry_after_s / 60))
        self.retry_after_s = retry_after_s
        self.message = f"Too many attempts. Please try again in {minutes} minute{'s' if minutes > 1 else ''}."
        super().__init__(self.message)


def client_ip(meta: Mapping[str, str], trusted_proxies: int) -> str:
    """The client's address from a request's META: the X-Forwarded-For entry our proxies wrote, else the peer.

    Each trusted proxy appends the address it saw, so the entry `trusted_proxies`
    from the end is the client; anything before it is the client's own claim.
    """
    forwarded = [a.strip() for a in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
    if trusted_proxies and len(forwarded) >= trusted_proxies:
        return forwarded[-trusted_proxies]
    return meta.get("REMOTE_ADDR", "")


def _counters(action: str, request: HttpRequest, account: str | None) -> list[tuple[str, int, int]]:
    now = time.time()
    identities = [("ip", client_ip(request.META, settings.TRUSTED_PROXY_COUNT))]
    if account:
        identities.append(("account", account.casefold()))
    counters = []
    for scope, value in identities:
        attempts, window_s = settings.RATE_LIMITS[action][scope]
        window = int(now // window_s)
        digest = hashlib.sha256(value.encode()).hexdigest()[:32]
        retry_after = int((window + 1) * window_s - now) + 1
        counters.append((f"es4ps:rl:{action}:{scope}:{digest}:{window}", attempts, retry_after))
    return counters


def check(action: str, request: HttpRequest, account: str | None = None) -> None:
    """Raise RateLimited when the client or the account has used up its attempts for `action`."""
    for key, attempts, retry_after in _counters(action, request, account):
        if cache.get(key, 0) >= attempts:
            raise RateLimited(retry_after)


def hit(action: str, request: HttpRequest, account: str | None = None) -> None:
    """Count one attempt of `action` for the client and the account."""
    for key, _attempts, retry_after in _counters(action, request, account):
        if not cache.add(key, 1, timeout=retry_after):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, timeout=retry_after)
