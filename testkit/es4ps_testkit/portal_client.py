"""A person using the portal, made of HTTP requests: cookies, CSRF tokens, redirects, the Referer a browser sends.

Used against the portal as a local process (tests/portal) and behind the ingress
controller (Traefik) on the real node (tests/e2e). There the public name
(`accounts.acme.localhost`) is not in this machine's resolver, so the client
connects to a given address and still checks the certificate for that name,
like `curl --resolve`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import requests
from es4ps_localcluster.processes import wait_until
from requests.adapters import HTTPAdapter

from .registration import GOOD_PASSWORD, form

_CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
GATEWAY_ERRORS = (502, 503, 504)


class GatewayRefused(AssertionError):
    """A form's page came back as a gateway error (no portal behind the ingress controller for the moment)."""


class _FixedNameAdapter(HTTPAdapter):
    """HTTPS to an address, with SNI and the certificate check for the public name."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["server_hostname"] = self.hostname
        kwargs["assert_hostname"] = self.hostname
        super().init_poolmanager(*args, **kwargs)


class PortalClient:
    """One person's browser session.

    `base_url` is the portal as the person sees it. `connect_to` (an address)
    sends the requests there instead of resolving the URL's host; `ca_file`
    verifies the portal's certificate.
    """

    def __init__(
        self, base_url: str, client_ip: str | None = None, *, connect_to: str | None = None, ca_file: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        public = urlsplit(self.base_url)
        self._target = self.base_url
        if connect_to:
            self._target = f"{public.scheme}://{connect_to}" + (f":{public.port}" if public.port else "")
            self.http.headers["Host"] = public.netloc
            self.http.mount(self._target, _FixedNameAdapter(public.hostname))
        if ca_file:
            self.http.verify = ca_file
            # else REQUESTS_CA_BUNDLE from the environment would win over the session's CA
            self.http.trust_env = False
        if client_ip:
            # What the Ingress would append; the portal trusts one proxy in the tests.
            self.http.headers["X-Forwarded-For"] = client_ip

    def _url(self, path_or_url: str) -> str:
        """Where to send a request for a path or for a link of the portal (e.g. from a mail)."""
        if path_or_url.startswith("http"):
            parts = urlsplit(path_or_url)
            path_or_url = parts.path + (f"?{parts.query}" if parts.query else "")
        return self._target + path_or_url

    def _public(self, path: str) -> str:
        return self.base_url + urlsplit(path).path

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self._url(path), timeout=30, **kwargs)

    def csrf_token(self, page_path: str) -> str:
        page = self.get(page_path)
        match = _CSRF_RE.search(page.text)
        if match is None:
            refused = GatewayRefused if page.status_code in GATEWAY_ERRORS else AssertionError
            raise refused(f"no CSRF token on {page_path} (HTTP {page.status_code})")
        return match.group(1)

    def post(
        self, path: str, data: Mapping[str, str], *, form_page: str | None = None, token: str | None = None
    ) -> requests.Response:
        """Submit a form the way a browser does: CSRF token from the page that shows the form (or `token`, read
        from it before, e.g. to send several at once), its Referer."""
        page = form_page or path
        token = token or self.csrf_token(page)
        return self.http.post(
            self._url(path),
            data={**data, "csrfmiddlewaretoken": token},
            timeout=60,
            headers={"Referer": self._public(page)},
        )

    def register(self, username: str, email: str, password: str = GOOD_PASSWORD, **names: str) -> requests.Response:
        """Fill in and send the registration form (es4ps_testkit.registration; `names`: first_name, last_name)."""
        return self.post("/register/", form(username, email, password, **names))

    def confirm_link(self, link: str) -> requests.Response:
        """Open the link from the mail and press its button."""
        page = self.get(link)
        match = _CSRF_RE.search(page.text)
        if page.status_code != 200 or match is None:
            return page
        token = link.split("token=", 1)[1]
        return self.http.post(
            self._url(link.split("?", 1)[0]),
            timeout=60,
            data={"csrfmiddlewaretoken": match.group(1), "token": token},
            headers={"Referer": self._public(link)},
        )

    def reset_password(self, link: str, password: str) -> requests.Response:
        """Open the mailed reset link and choose `password` in its form."""
        data = {"token": link.split("token=", 1)[1], "new_password1": password, "new_password2": password}
        return self.post("/password/reset/confirm/", data, form_page=link)

    def login(self, username: str, password: str) -> requests.Response:
        return self.post("/login/", {"username": username, "password": password})

    def status(self) -> dict:
        response = self.get("/status.json")
        response.raise_for_status()
        return response.json()

    def wait_for_status(self, condition: Callable[[dict], bool], timeout_s: float = 60) -> dict:
        """Poll the status endpoint as the page does until `condition` holds; AssertionError with the last status."""
        seen: list[dict] = [{}]

        def reached() -> dict | None:
            seen[0] = self.status()
            return seen[0] if condition(seen[0]) else None

        return wait_until(
            reached, timeout_s, lambda: f"the expected status (last: {seen[0]})", interval_s=0.3, error=AssertionError
        )
