"""Checking a person's password against the directory: a simple LDAP bind to the DC over TLS.

The DC is reached with `ldaps://` or with `ldap://` plus StartTLS, its
certificate checked against the CA file (from cert-manager) and its host
name. The password travels only inside that TLS connection.
"""

from __future__ import annotations

import contextlib
import logging
import ssl

import ldap3
from django.conf import settings
from ldap3.core.exceptions import LDAPException

logger = logging.getLogger(__name__)

_INVALID_CREDENTIALS = 49


class DirectoryUnavailable(Exception):
    """The DC cannot be reached or its certificate is not trusted; says nothing about the password."""


def _server() -> ldap3.Server:
    if not settings.LDAP_URL or not settings.LDAP_CA_FILE:
        raise DirectoryUnavailable("ES4PS_LDAP_URL and ES4PS_LDAP_CA_FILE must be set")
    try:
        tls = ldap3.Tls(ca_certs_file=settings.LDAP_CA_FILE, validate=ssl.CERT_REQUIRED)
        return ldap3.Server(settings.LDAP_URL, tls=tls, connect_timeout=settings.LDAP_TIMEOUT_S)
    except LDAPException as exc:
        raise DirectoryUnavailable(f"the LDAP settings are not usable: {type(exc).__name__}") from None


def check_password(username: str, password: str) -> bool:
    """Whether the directory accepts `password` for `username` (a bind as username@REALM).

    Raises DirectoryUnavailable when the answer cannot be known.
    """
    # An empty password would be an anonymous bind, which "succeeds" (RFC 4513 5.1.2).
    if not password:
        return False
    server = _server()
    connection = ldap3.Connection(
        server,
        user=f"{username}@{settings.REALM}",
        password=password,
        authentication=ldap3.SIMPLE,
        receive_timeout=settings.LDAP_TIMEOUT_S,
        raise_exceptions=False,
    )
    try:
        connection.open()
        if not server.ssl and not connection.start_tls():
            raise DirectoryUnavailable("the DC refused StartTLS")
        if connection.bind():
            return True
        if connection.result.get("result") == _INVALID_CREDENTIALS:
            return False
        raise DirectoryUnavailable(f"the DC answered the bind with {connection.result.get('description')}")
    except LDAPException as exc:
        logger.warning("LDAP bind to %s failed: %s", settings.LDAP_URL, type(exc).__name__)
        raise DirectoryUnavailable(f"the DC cannot be reached ({type(exc).__name__})") from None
    finally:
        # After a failed TLS handshake the socket is gone; closing must not hide the real error.
        with contextlib.suppress(LDAPException):
            connection.unbind()
