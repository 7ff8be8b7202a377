"""What a person fills in to register, for every test and benchmark: one allowed domain, one name, one good password.

The portals the tests run (in-process, live, deployed) allow `ALLOWED_DOMAIN`;
`form()` is the registration form as a browser sends it. Usernames and client
addresses are unique per call, across sessions too (the pid is part of them),
so tests sharing a DC, a broker or a rate limit never meet.
"""

from __future__ import annotations

import itertools
import os

ALLOWED_DOMAIN = "acme.example"
ORGANIZATION_NAME = "Acme Corp"
FIRST_NAME = "Ada"
LAST_NAME = "Lovelace"
# Meets the domain's complexity rules and contains no test username or name.
GOOD_PASSWORD = "Correct-Horse-42"  # noqa: S105 - a test password

_serial = itertools.count()


def form(username: str, email: str | None = None, password: str = GOOD_PASSWORD, **changes: str) -> dict[str, str]:
    """The registration form's fields: `email` defaults to `<username>@ALLOWED_DOMAIN`; `changes` replace fields."""
    data = {
        "username": username,
        "email": email if email is not None else f"{username}@{ALLOWED_DOMAIN}",
        "first_name": FIRST_NAME,
        "last_name": LAST_NAME,
        "new_password1": password,
        "new_password2": password,
    }
    return {**data, **changes}


def unique_username(prefix: str = "u") -> str:
    """A username no other test of any session uses (at most 20 characters, as AD wants)."""
    return f"{prefix}{os.getpid() % 100000}x{next(_serial)}"


# Where unique_client_ip() takes its addresses (RFC 2544's benchmarking range): the live portal's admin admits it.
CLIENT_RANGE = "198.18.0.0/15"


def unique_client_ip() -> str:
    """A documentation-range address per call, so per-address rate limits of one test do not hit the next."""
    serial = next(_serial)
    return f"198.18.{serial // 250 % 250}.{serial % 250 + 1}"
