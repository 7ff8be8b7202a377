"""Rate limits per client address and per account, counted in Django's cache (shared by all workers).

The limits come from the domain (`spec.portal.rateLimits`, settings.RATE_LIMITS).
Fixed windows: each (action, scope, key) has a counter that expires with its
window. Keys are hashed, so the cache never holds e-mail addresses.

Views take the `rate_limited` decorator: a POST (or any request, for mailed
links) over the limit gets the view's refusal page, status 429; an attempt
counts either always or only when the view says it failed
(`request.rate_limit.hit()`). Forms that check passwords use `Limit` itself.

A client address is counted by what identifies one client: an IPv4 address
as it is (a campus behind one NAT shares it: the defaults leave room for a
class), an IPv6 address by its /64 (one host can hold a whole /64).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import math
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.translation import ngettext

from es4ps_portal.client_address import client_address
from es4ps_portal.metrics import RATE_LIMIT_REFUSALS

IPV6_CLIENT_PREFIX = 64


class RateLimited(Exception):
    """Too many attempts; `message` says when to try again."""

    def __init__(self, retry_after_s: int) -> None:
        minutes = max(1, math.ceil(retry_after_s / 60))
        self.retry_after_s = retry_after_s
        self.message = ngettext(
            "Too many attempts. Please try again in %(minutes)d minute.",
            "Too many attempts. Please try again in %(minutes)d minutes.",
            minutes,
        ) % {"minutes": minutes}
        super().__init__(self.message)


def address_key(address: str) -> str:
    """What a client address is counted as: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by its /64."""
    try:
        ip = ipaddress.ip_address(address.strip().split("%")[0])
    except ValueError:
        return address.strip().lower()
    if ip.version == 6 and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(ip)


class Limit:
    """The counters of one action for one request: its client address and, when given, one account."""

    def __init__(self, action: str, request: HttpRequest, account: str | None = None) -> None:
        self.action = action
        now = time.time()
        identities = [("ip", address_key(client_address(request)))]
        if account:
            identities.append(("account", account.strip().casefold()))
        self.counters = []
        for scope, value in identities:
            attempts, window_s = settings.RATE_LIMITS[action][scope]
            window = int(now // window_s)
            digest = hashlib.sha256(value.encode()).hexdigest()[:32]
            retry_after = int((window + 1) * window_s - now) + 1
            self.counters.append((f"es4ps:rl:{action}:{scope}:{digest}:{window}", attempts, retry_after))

    def check(self) -> None:
        """Raise RateLimited when the client or the account has used up its attempts."""
        for key, attempts, retry_after in self.counters:
            if cache.get(key, 0) >= attempts:
                RATE_LIMIT_REFUSALS.labels(self.action).inc()
                raise RateLimited(retry_after)

    def hit(self) -> None:
        """Count one attempt for the client and the account."""
        for key, _attempts, retry_after in self.counters:
            if not cache.add(key, 1, timeout=retry_after):
                try:
                    cache.incr(key)
                except ValueError:  # expired between add and incr
                    cache.add(key, 1, timeout=retry_after)


def rate_limited(
    action: str,
    refused: Callable[[HttpRequest, RateLimited], HttpResponse],
    *,
    account: Callable[[HttpRequest], str | None] = lambda request: None,
    count_every_attempt: bool = True,
    methods: tuple[str, ...] = ("POST",),
):
    """Limit a view's `methods` requests for `action`, per client address and per `account(request)`.

    Over the limit the view does not run: `refused(request, exc)` answers
    (a page with status 429, or a redirect). With `count_every_attempt`, each request counts;
    otherwise the view calls `request.rate_limit.hit()` for the attempts that
    failed (a wrong code, an unknown link).
    """

    def decorate(view):
        @functools.wraps(view)
        def limited(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                return view(request, *args, **kwargs)
            request.rate_limit = limit = Limit(action, request, account(request))
            try:
                limit.check()
            except RateLimited as exc:
                return refused(request, exc)
            if count_every_attempt:
                limit.hit()
            return view(request, *args, **kwargs)

        return limited

    return decorate
