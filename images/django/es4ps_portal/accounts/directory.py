"""Checking a person's password against the directory: a simple LDAP bind to the DC over TLS.

The DC is reached with `ldaps://` or with `ldap://` plus StartTLS, its
certificate checked against the CA file (from cert-manager) and its host
name. The password travels only inside that TLS connection.

A refused bind says why in its diagnostic message ("... data 52e ..." in
Active Directory's words): a wrong password, or a right one that has expired
or must be changed (only told when the password was right), or an account
locked after too many wrong passwords. A bind that succeeds also reads when
the password was last set (pwdLastSet), which the expiry reminders follow,
whatever computer the person changed it on.

The DCs' Service may pick a DC that has not yet replicated a new account or
password (a DC just restarted pulls its partners' changes a round or two
later; an account is made by whichever DC's worker took the task). So a
password one DC calls wrong is checked on each other DC of the domain
(`ES4PS_LDAP_DC_URLS`, dc0 first: the PDC emulator, where Windows DCs send
such a failure) before the portal calls it wrong. Each DC sees a try once
(its root DSE names it): a wrong password moves every DC's failure count by
one, as a single DC's would, so the lockout threshold means what it says.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import re
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import ldap3
from django.conf import settings
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

logger = logging.getLogger(__name__)

_INVALID_CREDENTIALS = 49
# Active Directory's sub-codes of a refused bind (its diagnostic message carries "data <hex>").
_EXPIRED_CODES = {"532", "773"}  # the password expired / must be changed at the next sign-in
_LOCKED_CODE = "775"
_SUBCODE = re.compile(r"\bdata ([0-9a-f]+)\b", re.IGNORECASE)
# What a sign-in for a name that is no confirmed person's binds as: longer than any sAMAccountName (20 characters), so
# no directory account has it, and no account's failure count moves (docs/portal.md: timing of the answers).
NO_ACCOUNT = "es4ps-no-such-account-here"
# pwdLastSet counts 100 ns intervals since 1601-01-01 (UTC).
_AD_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    WRONG = "wrong"
    EXPIRED = "expired"  # right, but expired or to be changed: proves the person knows it
    LOCKED = "locked"


@dataclass(frozen=True)
class BindResult:
    outcome: Outcome
    # When the password was set, as the directory says (accepted binds only; None when unknown).
    password_set_at: datetime | None = None


class DirectoryUnavailable(Exception):
    """The DC cannot be reached or its certificate is not trusted; says nothing about the password."""


class PasswordExpired(Exception):
    """A sign-in with the right password, which has expired: `user` may choose a new one (raised by the backend)."""

    def __init__(self, user) -> None:
        super().__init__("the password has expired")
        self.user = user


class AccountLocked(Exception):
    """The directory locked the account after too many wrong passwords (raised by the backend)."""


def _server(url: str) -> ldap3.Server:
    if not url or not settings.LDAP_CA_FILE:
        raise DirectoryUnavailable("ES4PS_LDAP_URL and ES4PS_LDAP_CA_FILE must be set")
    try:
        tls = ldap3.Tls(ca_certs_file=settings.LDAP_CA_FILE, validate=ssl.CERT_REQUIRED)
        # No schema read (ldap3's default): it tripled a sign-in's time (measured 260 -> 81 ms a bind over
        # LDAPS), and only raw values are read here.
        return ldap3.Server(url, tls=tls, connect_timeout=settings.LDAP_TIMEOUT_S, get_info=ldap3.NONE)
    except LDAPException as exc:
        raise DirectoryUnavailable(f"the LDAP settings are not usable: {type(exc).__name__}") from None


def bind(username: str, password: str) -> BindResult:
    """Bind as username@REALM with `password`: the directory's answer, and when the password was set.

    A password the DC calls wrong is checked on each other DC that answers (`ES4PS_LDAP_DC_URLS`).
    Raises DirectoryUnavailable when the answer cannot be known.
    """
    # An empty password would be an anonymous bind, which "succeeds" (RFC 4513 5.1.2).
    if not password:
        return BindResult(Outcome.WRONG)
    result, answered_by = _bind_at(settings.LDAP_URL, username, password)
    if answered_by is None:  # not a wrong password, or no other DC to ask, or no telling which DC said so
        return result
    asked = {answered_by}
    for url in settings.LDAP_DC_URLS:
        try:
            again, answered_by = _bind_at(url, username, password, asked)
        except DirectoryUnavailable:
            continue  # that DC away: the others' answers stand
        if again is not None and again.outcome is not Outcome.WRONG:
            return again
        if answered_by is not None:
            asked.add(answered_by)
    return result


def _bind_at(
    url: str, username: str, password: str, asked: set[str] | None = None
) -> tuple[BindResult | None, str | None]:
    """The bind on the DC at `url`, and that DC's name when it called the password wrong and other DCs are to be
    asked (ES4PS_LDAP_DC_URLS).

    `asked`: the DCs that called it wrong already; no bind, (None, None), when the DC at `url` is one of them
    or does not say which it is.
    """
    server = _server(url)
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
        name = None
        if asked is not None:
            name = _dc_name(connection)
            if name is None or name in asked:
                return None, None
        if connection.bind():
            return BindResult(Outcome.ACCEPTED, _password_set_at(connection, username)), None
        if connection.result.get("result") == _INVALID_CREDENTIALS:
            outcome = refusal_outcome(connection.result.get("message") or "")
            if outcome is not Outcome.WRONG or not settings.LDAP_DC_URLS:
                return BindResult(outcome), None
            return BindResult(outcome), name or _dc_name(connection)
        raise DirectoryUnavailable(f"the DC answered the bind with {connection.result.get('description')}")
    except LDAPException as exc:
        logger.warning("LDAP bind to %s failed: %s", url, type(exc).__name__)
        raise DirectoryUnavailable(f"the DC cannot be reached ({type(exc).__name__})") from None
    finally:
        # After a failed TLS handshake the socket is gone; closing must not hide the real error.
        with contextlib.suppress(LDAPException):
            connection.unbind()


def _dc_name(connection: ldap3.Connection) -> str | None:
    """The answering DC's host name, from its root DSE (anyone may read it); None when it cannot be read."""
    try:
        connection.search("", "(objectClass=*)", ldap3.BASE, attributes=["dnsHostName"])
        return connection.response[0]["raw_attributes"]["dnsHostName"][0].decode().lower()
    except (LDAPException, LookupError, TypeError, UnicodeDecodeError):
        return None


def refusal_outcome(diagnostic: str) -> Outcome:
    """What a refused bind's diagnostic message says: expired, locked, or (anything else) a wrong password."""
    match = _SUBCODE.search(diagnostic)
    code = match.group(1).lower() if match else ""
    if code in _EXPIRED_CODES:
        return Outcome.EXPIRED
    if code == _LOCKED_CODE:
        return Outcome.LOCKED
    return Outcome.WRONG


def _base_dn() -> str:
    return ",".join(f"DC={label}" for label in settings.REALM.lower().split("."))


def _password_set_at(connection: ldap3.Connection, username: str) -> datetime | None:
    """pwdLastSet of the account just bound as (a person may read their own); None when it cannot be read."""
    try:
        connection.search(
            _base_dn(),
            f"(&(objectClass=user)(sAMAccountName={escape_filter_chars(username)}))",
            attributes=["pwdLastSet"],
            size_limit=1,
        )
        raw = connection.response[0]["raw_attributes"]["pwdLastSet"][0]
        ticks = int(raw)
    except (LDAPException, LookupError, TypeError, ValueError):
        return None
    return password_set_time(ticks)


def password_set_time(ticks: int) -> datetime | None:
    """pwdLastSet as a time; None for 0 (to be changed at the next sign-in) and nonsense."""
    if ticks <= 0:
        return None
    try:
        return _AD_EPOCH + timedelta(microseconds=ticks // 10)
    except OverflowError:
        return None
