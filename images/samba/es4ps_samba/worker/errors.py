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

# The NT statuses of a refused bind, as Samba's LDAP client words them.
_BIND_REFUSALS = (
    "NT_STATUS_LOGON_FAILURE",
    "NT_STATUS_WRONG_PASSWORD",
    "NT_STATUS_NO_SUCH_USER",
    "NT_STATUS_ACCOUNT_DISABLED",
    "NT_STATUS_ACCOUNT_LOCKED_OUT",
    "NT_STATUS_PASSWORD_EXPIRED",
    "NT_STATUS_PASSWORD_MUST_CHANGE",
    "NT_STATUS_ACCOUNT_EXPIRED",
)
# Win32 ERROR_PASSWORD_RESTRICTION, as AD writes it in an LDAP diagnostic message.
_PASSWORD_RESTRICTION = "0000052D"  # noqa: S105 (an error code)


class NotFoundYet(LookupError):
    """The account (or a policy's OU or group) is not (yet) on this DC: it may still be replicating.

    Retried, then reported as failed with `reason`.
    """

    def __init__(self, message: str, reason: str = REASON_NOT_FOUND) -> None:
        super().__init__(message)
        self.reason = reason


class DirectoryUnavailable(ConnectionError):
    """The DC cannot be reached or is busy. Retried."""


class ContainerMissing(DirectoryUnavailable):
    """The managed OU (`managed_ou`: True), or a container the delegation makes in it, is not in the directory.

    Beside a DC of ours it is not made yet (waited for); in external mode it is the directory administrators'
    step, and the worker refuses to start and says which (es4ps_samba.worker.startcheck).
    """

    def __init__(self, dn: str, managed_ou: bool) -> None:
        super().__init__(f"{dn} does not exist yet")
        self.dn = dn
        self.managed_ou = managed_ou


class CredentialsRefused(DirectoryUnavailable):
    """The directory refused the worker's own bind (a wrong or expired password, a disabled account).

    A task waits as for an unavailable directory (an administrator fixes the account); at start the worker
    refuses to run instead (es4ps_samba.worker.startcheck.check_directory).
    """


class DirectoryRefused(Exception):
    """The directory refused the change for good; `reason` is a sentence for the person, never a secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def credentials_refused(exc: ldb.LdbError) -> bool:
    """Whether an LDAP error is the directory refusing the bind itself (Samba's client reports it as an
    operations error carrying the NT status; a simple bind as invalidCredentials)."""
    message = str(exc.args[1]) if len(exc.args) > 1 else ""
    return exc.args[0] == ldb.ERR_INVALID_CREDENTIALS or any(status in message for status in _BIND_REFUSALS)


def is_password_restriction(code: int, message: str) -> bool:
    """Whether a refused write broke the domain's password policy (length, complexity, history, minimum age).

    Microsoft AD answers a `unicodePwd` write that breaks the policy with constraintViolation (19) and the
    Win32 error ERROR_PASSWORD_RESTRICTION (0x52D) leading its diagnostic message
    ("0000052D: AtrErr: DSID-..., problem 1005 (CONSTRAINT_ATT_TYPE), data 0, Att 9005a (unicodePwd)");
    Samba answers the same code with its own words ("0000052D: Constraint violation - check_password_...").
    Other refusals of a password write (e.g. 53 with 0000001F: the connection is not encrypted) are the
    deployment's fault, not the person's.
    """
    return code == ldb.ERR_CONSTRAINT_VIOLATION and _PASSWORD_RESTRICTION in message.upper()


def refusal(exc: ldb.LdbError, what: str) -> DirectoryRefused:
    """The final refusal for an LDAP error of a write that could not `what`; connection errors are re-raised."""
    code, message = exc.args[0], str(exc.args[1]) if len(exc.args) > 1 else ""
    if code in CONNECTION_ERRORS:
        raise exc
    # Samba's own text may name attributes and values; it goes to the worker log only, never into an event.
    logger.warning("the directory refused %s: LDAP error %s: %s", what, code, message[:300])
    if is_password_restriction(code, message):
        return DirectoryRefused(PASSWORD_REFUSED_REASON)
    return DirectoryRefused(f"the directory refused to {what} (LDAP error {code})")
