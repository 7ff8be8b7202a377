"""The three kinds of directory error the worker acts on, and how an LDAP error becomes one of them.

`NotFoundYet` and `DirectoryUnavailable` are retried; `DirectoryRefused` is
final and carries a reason meant for the person (never a secret).
"""

from __future__ import annotations

import logging

import ldb
from es4ps_contract.events import REASON_NOT_FOUND
from es4ps_contract.passwords import PASSWORD_REFUSED_REASON

logger = logging.getLogger(__name__)

# ldb reports a dropped or refused connection as an operations error; busy and
# unavailable are the server asking us to come back later.
CONNECTION_ERRORS = frozenset(
    {ldb.ERR_OPERATIONS_ERROR, ldb.ERR_UNAVAILABLE, ldb.ERR_BUSY, ldb.ERR_TIME_LIMIT_EXCEEDED}
)


class NotFoundYet(LookupError):
    """The account (or a policy's OU or group) is not (yet) on this DC: it may still be replicating.

    Retried, then reported as failed with `reason`.
    """

    def __init__(self, message: str, reason: str = REASON_NOT_FOUND) -> None:
        super().__init__(message)
        self.reason = reason


class DirectoryUnavailable(ConnectionError):
    """The DC cannot be reached or is busy. Retried."""


class DirectoryRefused(Exception):
    """The directory refused the change for good; `reason` is a sentence for the person, never a secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refusal(exc: ldb.LdbError, what: str) -> DirectoryRefused:
    """The final refusal for an LDAP error of a write that could not `what`; connection errors are re-raised."""
    code, message = exc.args[0], str(exc.args[1]) if len(exc.args) > 1 else ""
    if code in CONNECTION_ERRORS:
        raise exc
    # Samba's own text may name attributes and values; it goes to the worker log only, never into an event.
    logger.warning("the directory refused %s: LDAP error %s: %s", what, code, message[:300])
    if code == ldb.ERR_CONSTRAINT_VIOLATION and "password" in message.lower():
        return DirectoryRefused(PASSWORD_REFUSED_REASON)
    return DirectoryRefused(f"the directory refused to {what} (LDAP error {code})")
