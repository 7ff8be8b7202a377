"""The worker's view of the directory: idempotent account operations over one SamDB connection.

Every account the worker manages lives in one container (`ES4PS_USERS_OU`,
default `OU=ES4PS`); lookups never leave it, so a registration can never
enable, change or delete an account that staff created elsewhere, even one
with the same sAMAccountName.

Each operation converges: asking for a state the account is already in
succeeds without writing. Errors are sorted into three kinds the worker acts
on: `NotFoundYet` and `DirectoryUnavailable` are retried, `DirectoryRefused`
is final and carries a reason meant for the person (never a secret).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import ldb
from es4ps_contract.passwords import COMPLEXITY_REASON
from es4ps_contract.tasks import CreateUser, UpdateAttributes
from samba.credentials import Credentials
from samba.dsdb import UF_ACCOUNTDISABLE, UF_NORMAL_ACCOUNT
from samba.param import LoadParm
from samba.samdb import SamDB

logger = logging.getLogger(__name__)

# Contract field -> LDAP attribute: the only attributes an update may write.
LDAP_ATTRIBUTES = {"given_name": "givenName", "surname": "sn", "display_name": "displayName"}
DEFAULT_USERS_OU = "OU=ES4PS"
# ldb reports a dropped or refused connection as an operations error; busy and
# unavailable are the server asking us to come back later.
_CONNECTION_ERRORS = frozenset(
    {ldb.ERR_OPERATIONS_ERROR, ldb.ERR_UNAVAILABLE, ldb.ERR_BUSY, ldb.ERR_TIME_LIMIT_EXCEEDED}
)
_SEARCH_ATTRIBUTES = ["userAccountControl", "mail", "givenName", "sn", "displayName"]

T = TypeVar("T")


class NotFoundYet(LookupError):
    """The account is not (yet) on this DC: it may still be replicating. Retried, then reported as failed."""


class DirectoryUnavailable(ConnectionError):
    """The DC cannot be reached or is busy. Retried."""


class DirectoryRefused(Exception):
    """The directory refused the change for good; `reason` is a sentence for the person, never a secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode_password(password: str) -> bytes:
    """unicodePwd's wire form: the password in double quotes, UTF-16-LE."""
    return f'"{password}"'.encode("utf-16-le")


def _refusal(exc: ldb.LdbError, what: str) -> DirectoryRefused:
    code, message = exc.args[0], str(exc.args[1]) if len(exc.args) > 1 else ""
    # Samba's own text may name attributes and values; it goes to the worker log only, never into an event.
    logger.warning("the directory refused %s: LDAP error %s: %s", what, code, message[:300])
    if code == ldb.ERR_CONSTRAINT_VIOLATION and "password" in message.lower():
        return DirectoryRefused(COMPLEXITY_REASON)
    return DirectoryRefused(f"the directory refused to {what} (LDAP error {code})")


class Directory:
    """Account operations on one DC, over one SamDB connection that is reopened when it breaks."""

    def __init__(
        self, url: str, realm: str, netbios_name: str, admin_password: str, users_ou: str = DEFAULT_USERS_OU
    ) -> None:
        self.url = url
        self.realm = realm.upper()
        self.netbios_name = netbios_name.upper()
        self.users_ou = users_ou
        self._admin_password = admin_password
        self._samdb: SamDB | None = None
        self._container: ldb.Dn | None = None

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> SamDB:
        # No smb.conf: the worker may run in its own container without the DC's files.
        lp = LoadParm()
        lp.set("realm", self.realm)
        lp.set("workgroup", self.netbios_name)
        credentials = Credentials()
        credentials.guess(lp)
        credentials.set_domain(self.netbios_name)
        credentials.set_username("Administrator")
        credentials.set_password(self._admin_password)
        samdb = SamDB(url=self.url, lp=lp, credentials=credentials)
        container = ldb.Dn(samdb, f"{self.users_ou},{samdb.domain_dn()}")
        try:
            samdb.add(
                {
                    "dn": container,
                    "objectClass": "organizationalUnit",
                    "description": "Accounts people registered themselves (managed by ES4PS)",
                }
            )
        except ldb.LdbError as exc:
            if exc.args[0] != ldb.ERR_ENTRY_ALREADY_EXISTS:
                raise
        self._container = container
        return samdb

    def _run(self, action: Callable[[SamDB], T]) -> T:
        """Run `action` on the connection; on a connection error reopen it and try once more."""
        for attempt in (1, 2):
            try:
                if self._samdb is None:
                    self._samdb = self._connect()
                return action(self._samdb)
            except ldb.LdbError as exc:
                if exc.args[0] not in _CONNECTION_ERRORS:
                    raise
                self._samdb = None
                if attempt == 2:
                    raise DirectoryUnavailable(f"the directory is unavailable (LDAP error {exc.args[0]})") from None
                logger.info("reconnecting to %s after LDAP error %s", self.url, exc.args[0])
        raise AssertionError("not reached")

    def close(self) -> None:
        self._samdb = None

    # -- lookups ----------------------------------------------------------------------------

    def _find(self, samdb: SamDB, username: str) -> ldb.Message | None:
        result = samdb.search(
            base=self._container,
            scope=ldb.SCOPE_ONELEVEL,
            expression=f"(&(objectClass=user)(sAMAccountName={ldb.binary_encode(username)}))",
            attrs=_SEARCH_ATTRIBUTES,
        )
        return result[0] if len(result) else None

    def _require(self, samdb: SamDB, username: str) -> ldb.Message:
        found = self._find(samdb, username)
        if found is None:
            raise NotFoundYet(f"account {username} not found")
        return found

    def exists(self, username: str) -> bool:
        """True when the account is in the managed container on this DC."""
        return self._run(lambda samdb: self._find(samdb, username) is not None)

    # -- operations -------------------------------------------------------------------------

    def create_user(self, task: CreateUser, password: str) -> str:
        """Create the account disabled, with its password, in one add. Returns what happened.

        One add carries everything (the fastest way and atomic: the account
        never exists without its password). If the name is taken, the existing
        account is looked at: ours with the same e-mail address is this very
        registration delivered again (success); anything else is refused.
        """

        def create(samdb: SamDB) -> str:
            dn = ldb.Dn(samdb, str(self._container))
            dn.add_child(ldb.Dn(samdb, f"CN={task.username}"))
            try:
                samdb.add(
                    {
                        "dn": dn,
                        "objectClass": "user",
                        "sAMAccountName": task.username,
                        "userPrincipalName": f"{task.username}@{self.realm.lower()}",
                        "givenName": task.given_name,
                        "sn": task.surname,
                        "displayName": f"{task.given_name} {task.surname}",
                        "mail": task.email,
                        "userAccountControl": str(UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE),
                        "unicodePwd": encode_password(password),
                    }
                )
                return "created"
            except ldb.LdbError as exc:
                if exc.args[0] != ldb.ERR_ENTRY_ALREADY_EXISTS:
                    if exc.args[0] in _CONNECTION_ERRORS:
                        raise
                    raise _refusal(exc, "create the account") from None
            existing = self._find(samdb, task.username)
            if existing is not None and str(existing.get("mail", idx=0) or "").lower() == task.email.lower():
                return "already existed"
            raise DirectoryRefused("the username is already taken")

        return self._run(create)

    def _set_disabled(self, username: str, disabled: bool) -> str:
        def change(samdb: SamDB) -> str:
            account = self._require(samdb, username)
            flags = int(account["userAccountControl"][0])
            wanted = flags | UF_ACCOUNTDISABLE if disabled else flags & ~UF_ACCOUNTDISABLE
            if wanted == flags:
                return "already " + ("disabled" if disabled else "enabled")
            message = ldb.Message(account.dn)
            # Delete the old value and add the new one in one modify: it fails rather than
            # overwrite if someone changed the flags since we read them (then we are retried).
            message["0"] = ldb.MessageElement(str(flags), ldb.FLAG_MOD_DELETE, "userAccountControl")
            message["1"] = ldb.MessageElement(str(wanted), ldb.FLAG_MOD_ADD, "userAccountControl")
            self._modify(samdb, message, "change the account's state")
            return "disabled" if disabled else "enabled"

        return self._run(change)

    def enable_user(self, username: str) -> str:
        return self._set_disabled(username, False)

    def disable_user(self, username: str) -> str:
        return self._set_disabled(username, True)

    def set_password(self, username: str, password: str) -> str:
        """Reset the account's password (an administrator's reset: the old one stops working)."""

        def change(samdb: SamDB) -> str:
            account = self._require(samdb, username)
            message = ldb.Message(account.dn)
            message["unicodePwd"] = ldb.MessageElement(encode_password(password), ldb.FLAG_MOD_REPLACE, "unicodePwd")
            self._modify(samdb, message, "set the password")
            return "password set"

        return self._run(change)

    def update_attributes(self, task: UpdateAttributes) -> str:
        """Write the allow-listed attributes that differ from the directory's values."""

        def change(samdb: SamDB) -> str:
            account = self._require(samdb, task.username)
            message = ldb.Message(account.dn)
            for field, value in task.attributes.items():
                attribute = LDAP_ATTRIBUTES[field]
                if str(account.get(attribute, idx=0) or "") != value:
                    message[attribute] = ldb.MessageElement(value.encode(), ldb.FLAG_MOD_REPLACE, attribute)
            if len(message) == 0:
                return "already up to date"
            self._modify(samdb, message, "update the account")
            return "updated " + ", ".join(sorted(message.keys()))

        return self._run(change)

    def delete_user(self, username: str) -> str:
        """Delete the account; an account that is already gone counts as deleted."""

        def delete(samdb: SamDB) -> str:
            account = self._find(samdb, username)
            if account is None:
                return "already absent"
            try:
                samdb.delete(account.dn)
            except ldb.LdbError as exc:
                if exc.args[0] == ldb.ERR_NO_SUCH_OBJECT:
                    return "already absent"
                if exc.args[0] in _CONNECTION_ERRORS:
                    raise
                raise _refusal(exc, "delete the account") from None
            return "deleted"

        return self._run(delete)

    @staticmethod
    def _modify(samdb: SamDB, message: ldb.Message, what: str) -> None:
        try:
            samdb.modify(message)
        except ldb.LdbError as exc:
            code = exc.args[0]
            if code in _CONNECTION_ERRORS:
                raise
            if code == ldb.ERR_NO_SUCH_OBJECT:
                raise NotFoundYet("the account vanished while it was changed") from None
            if code in (ldb.ERR_NO_SUCH_ATTRIBUTE, ldb.ERR_ATTRIBUTE_OR_VALUE_EXISTS):
                # Our delete/add pair lost a race with another change: read again and retry.
                raise DirectoryUnavailable("the account changed while it was being changed") from None
            raise _refusal(exc, what) from None
