"""External mode (`spec.directory.external`): the domain provisions into a directory the organisation runs.

No DC is run: one worker Deployment (builders.external) binds over LDAPS as
the account the directory's administrators delegated an OU to. What the
operator can judge itself (the URL) it judges here; what only the directory
can answer (the credentials, the account's rights) the worker checks when it
starts: it refuses to run and says why in its last line, which Kubernetes keeps
as the container's termination message (`worker_refusal` reads it back).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

# The line es4ps-worker ends with when it refuses to run (es4ps_samba.worker.startcheck.check_directory).
_REFUSAL = re.compile(r"es4ps-worker: refused \((?P<reason>[A-Za-z]+): (?P<message>.*)\)\s*$", re.MULTILINE)
# A Pod's termination message is at most 4 KiB; the condition keeps the refusal's own words short.
_MESSAGE_LIMIT = 600


@dataclasses.dataclass(frozen=True)
class External:
    """spec.directory.external as the API server defaulted it."""

    url: str
    ca_secret: str
    ca_key: str
    credentials_secret: str
    username_key: str
    password_key: str
    ou: str


def read_external(spec: Mapping[str, Any] | None) -> External | None:
    if not spec:
        return None
    ca, credentials = spec["caSecretRef"], spec["credentialsSecretRef"]
    return External(
        url=spec["url"],
        ca_secret=ca["name"],
        ca_key=ca["key"],
        credentials_secret=credentials["name"],
        username_key=credentials["usernameKey"],
        password_key=credentials["passwordKey"],
        ou=spec["ou"],
    )


def url_problem(url: str) -> str | None:
    """Why the worker cannot be pointed at `url`, or None: only LDAPS to a DNS name (the certificate's)."""
    try:
        parsed = urlsplit(url)
        host, _port = parsed.hostname or "", parsed.port
    except ValueError:
        return f"spec.directory.external.url {url!r} is not a URL"
    if parsed.scheme != "ldaps":
        return (
            f"spec.directory.external.url {url!r} does not use TLS: only ldaps:// is accepted, since"
            " passwords cross this connection"
        )
    if not host or parsed.path not in ("", "/") or parsed.query:
        return f"spec.directory.external.url {url!r} must be ldaps://<DNS name>[:port] with nothing after it"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return (
        f"spec.directory.external.url {url!r} names an address: use the DNS name the directory's"
        " certificate carries (the worker checks the name)"
    )


def worker_refusal(termination_messages: Iterable[str]) -> tuple[str, str] | None:
    """The reason and message of the newest refusal among the worker containers' termination messages."""
    for text in termination_messages:
        found = list(_REFUSAL.finditer(text))
        if found:
            return found[-1]["reason"], found[-1]["message"][:_MESSAGE_LIMIT]
    return None
