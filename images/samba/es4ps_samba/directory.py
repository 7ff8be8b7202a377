"""The worker's view of the directory: idempotent account operations over one SamDB connection.

The worker binds as its own account, whose rights the DC delegated on the
managed OU only (`ES4PS_USERS_OU`, default `OU=ES4PS`; see
es4ps_samba.dc.access): lookups never leave that OU, and the directory itself
refuses any write outside it, so a registration can never enable, change or
delete an account that staff created elsewhere, even one with the same
sAMAccountName.

Inside the OU, every account belongs to one registration (`binding`): a task
of another registration is refused before anything is written, and an older
task never overwrites what a newer one set.

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
from es4ps_contract.events import REASON_NOT_OURS, REASON_SUPERSEDED, REASON_USERNAME_TAKEN
from es4ps_contract.passwords import PASSWORD_REFUSED_REASON
from es4ps_contract.signing import SignedTask
from samba.credentials import Credentials
from samba.dsdb import UF_ACCOUNTDISABLE, UF_NORMAL_ACCOUNT
from samba.param import LoadParm
from samba.samdb import SamDB

from .binding import ATTRIBUTES, PASSWORD, STATE, Binding, Mark

logger = logging.getLogger(__name__)

# Contract field -> LDAP attribute: the only attributes an update may write.
LDAP_ATTRIBUTES = {"given_name": "givenName", "surname": "sn", "display_name": "displayName"}
DEFAULT_USERS_OU = "OU=ES4PS"
# ldb reports a dropped or refused connection as an operations error; busy and
# unavailable are the server asking us to come back later.
_CONNECTION_ERRORS = frozenset(
    {ldb.ERR_OPERATIONS_ERROR, ldb.ERR_UNAVAILABLE, ldb.ERR_BUSY, ldb.ERR_TIME_LIMIT_EXCEEDED}
)
_SEARCH_ATTRIBUTES = ["userAccountControl", "mail", "givenName", "sn", "displayName", "info"]
NOT_OURS = REASON_NOT_OURS
SUPERSEDED = REASON_SUPERSEDED
ALREADY_APPLIED = "already applied"

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
        return DirectoryRefused(PASSWORD_REFUSED_REASON)
    return DirectoryRefused(f"the directory refused to {what} (LDAP error {code})")


class Directory:
    """Account operations on one DC, over one SamDB connection that is reopened when it breaks."""

    def __init__(
        self,
        url: str,
        realm: str,
        netbios_name: str,
        account: str,
        password: str,
        users_ou: str = DEFAULT_USERS_OU,
    ) -> None:
        self.url = url
        self.realm = realm.upper()
        self.netbios_name = netbios_name.upper()
        self.account = account
        self.users_ou = users_ou
        self._password = password
        self._samdb: SamDB | None = None
        self._container: ldb.Dn | None = None

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> SamDB:
        # No smb.conf: the worker runs in its own container without the DC's files.
        lp = LoadParm()
        lp.set("realm", self.realm)
        lp.set("workgroup", self.netbios_name)
        credentials = Credentials()
        credentials.guess(lp)
        credentials.set_domain(self.netbios_name)
        credentials.set_username(self.account)
        credentials.set_password(self._password)
        samdb = SamDB(url=self.url, lp=lp, credentials=credentials)
        container = ldb.Dn(samdb, f"{self.users_ou},{samdb.domain_dn()}")
        try:
            samdb.search(base=container, scope=ldb.SCOPE_BASE, attrs=["ou"])
        except ldb.LdbError as exc:
            if exc.args[0] == ldb.ERR_NO_SUCH_OBJECT:
                # The DC's entrypoint creates it before samba serves: not there means not ready yet.
                raise DirectoryUnavailable(f"the managed OU {self.users_ou} does not exist yet") from None
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
        # sAMAccountName is indexed: a constant-cost lookup however large the domain.
        result = samdb.search(
            base=self._container,
            scope=ldb.SCOPE_SUBTREE,
            expression=f"(&(objectClass=user)(sAMAccountName={ldb.binary_encode(username)}))",
            attrs=_SEARCH_ATTRIBUTES,
        )
        return result[0] if len(result) else None

    def _owned(self, samdb: SamDB, signed: SignedTask) -> tuple[ldb.Message, Binding]:
        """The account of the task's username and its binding, if it belongs to the task's registration.

        An account made before bindings existed (no binding, empty `info`) is
        taken on by the registration with its address; any other account is
        refused before anything is written.
        """
        task = signed.task
        account = self._find(samdb, task.username)
        if account is None:
            raise NotFoundYet(f"account {task.username} not found")
        return account, _binding_of(account, task.registration, task.email)

    def exists(self, username: str) -> bool:
        """True when the account is in the managed OU on this DC."""
        return self._run(lambda samdb: self._find(samdb, username) is not None)

    # -- operations -------------------------------------------------------------------------

    def create_user(self, signed: SignedTask, password: str) -> str:
        """Create the account disabled, with its password and its binding, in one add. Returns what happened.

        One add carries everything (the fastest way and atomic: the account
        never exists without its password). If the name is taken, the existing
        account is looked at: one of this very registration is this task
        delivered again (success); anything else is refused.
        """
        task = signed.task

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
                        "info": str(Binding.new(task.registration, signed.issued_at, signed.task_id)),
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
            if existing is None:
                # The name is taken outside the managed OU (or by another kind of object).
                raise DirectoryRefused(REASON_USERNAME_TAKEN)
            try:
                _binding_of(existing, task.registration, task.email)
            except DirectoryRefused:
                raise DirectoryRefused(REASON_USERNAME_TAKEN) from None
            return "already existed"

        return self._run(create)

    def _change(self, signed: SignedTask, kind: str, what: str, changes: Callable[[ldb.Message], dict]) -> str:
        """Apply `changes(account)` (attribute -> MessageElement) with the binding's mark of `kind`, in one modify.

        Returns SUPERSEDED when a newer task of `kind` was applied already, and
        "already ..." (from `changes` returning {}) when nothing differs.
        """

        def change(samdb: SamDB) -> str:
            account, binding = self._owned(samdb, signed)
            if binding.marks.get(kind) == Mark(signed.issued_at, signed.task_id):
                return ALREADY_APPLIED
            if not binding.applies(kind, signed.issued_at, signed.task_id):
                return SUPERSEDED
            elements = changes(account)
            if not elements:
                return "already up to date"
            message = ldb.Message(account.dn)
            for key, element in elements.items():
                message[key] = element
            new_info = str(binding.marked(kind, signed.issued_at, signed.task_id)).encode()
            old_info = account.get("info", idx=0)
            # Delete the old value and add the new one in one modify: it fails rather than overwrite
            # if someone changed the account since we read it (then we are retried).
            if old_info is not None:
                message["info-old"] = ldb.MessageElement(bytes(old_info), ldb.FLAG_MOD_DELETE, "info")
            message["info-new"] = ldb.MessageElement(new_info, ldb.FLAG_MOD_ADD, "info")
            self._modify(samdb, message, what)
            return "done"

        return self._run(change)

    def _set_disabled(self, signed: SignedTask, disabled: bool) -> str:
        state = "disabled" if disabled else "enabled"

        def flags(account: ldb.Message) -> dict:
            current = int(account["userAccountControl"][0])
            wanted = current | UF_ACCOUNTDISABLE if disabled else current & ~UF_ACCOUNTDISABLE
            if wanted == current:
                return {}
            return {
                "uac-old": ldb.MessageElement(str(current), ldb.FLAG_MOD_DELETE, "userAccountControl"),
                "uac-new": ldb.MessageElement(str(wanted), ldb.FLAG_MOD_ADD, "userAccountControl"),
            }

        done = self._change(signed, STATE, "change the account's state", flags)
        return {"done": state, "already up to date": f"already {state}"}.get(done, done)

    def enable_user(self, signed: SignedTask) -> str:
        return self._set_disabled(signed, False)

    def disable_user(self, signed: SignedTask) -> str:
        return self._set_disabled(signed, True)

    def set_password(self, signed: SignedTask, password: str) -> str:
        """Reset the account's password (an administrator's reset: the old one stops working)."""
        element = ldb.MessageElement(encode_password(password), ldb.FLAG_MOD_REPLACE, "unicodePwd")
        done = self._change(signed, PASSWORD, "set the password", lambda _account: {"unicodePwd": element})
        return "password set" if done == "done" else done

    def update_attributes(self, signed: SignedTask) -> str:
        """Write the allow-listed attributes that differ from the directory's values."""
        attributes = signed.task.attributes

        def differing(account: ldb.Message) -> dict:
            elements = {}
            for field, value in attributes.items():
                attribute = LDAP_ATTRIBUTES[field]
                if str(account.get(attribute, idx=0) or "") != value:
                    elements[attribute] = ldb.MessageElement(value.encode(), ldb.FLAG_MOD_REPLACE, attribute)
            return elements

        changed = sorted(LDAP_ATTRIBUTES[field] for field in attributes)
        done = self._change(signed, ATTRIBUTES, "update the account", differing)
        return "updated " + ", ".join(changed) if done == "done" else done

    def delete_user(self, signed: SignedTask) -> str:
        """Delete the account of this registration; an account that is already gone counts as deleted."""

        def delete(samdb: SamDB) -> str:
            account = self._find(samdb, signed.task.username)
            if account is None:
                return "already absent"
            _binding_of(account, signed.task.registration, signed.task.email)
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


def _binding_of(account: ldb.Message, registration: str, email: str) -> Binding:
    """The account's binding if it belongs to `registration`; raises DirectoryRefused otherwise."""
    info = str(account.get("info", idx=0) or "")
    binding = Binding.parse(info)
    if binding is None:
        mail = str(account.get("mail", idx=0) or "")
        if info or mail.casefold() != email.casefold():
            raise DirectoryRefused(NOT_OURS)
        return Binding(registration)  # made before bindings existed: the registration with its address takes it on
    if binding.registration != registration:
        raise DirectoryRefused(NOT_OURS)
    return binding
