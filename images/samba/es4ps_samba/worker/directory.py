"""The worker's operations on the directory: idempotent account changes over one connection (`managed_ou`).

The worker binds as its own account, whose rights the DC delegated on the
managed OU only (`ES4PS_USERS_OU`; see es4ps_samba.dc.access), so a
registration can never enable, change or delete an account that staff created
elsewhere, even one with the same sAMAccountName.

Inside the OU, every account belongs to one registration (`binding`): a task
of another registration is refused before anything is written, and an older
task never overwrites what a newer one set.

Each operation converges: asking for a state the account is already in
succeeds without writing. Errors are sorted into three kinds the worker acts
on (`errors`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import ldb
from es4ps_contract.directory import MANAGED_OU
from es4ps_contract.events import REASON_NOT_OURS, REASON_SUPERSEDED, REASON_USERNAME_TAKEN
from es4ps_contract.policies import UnixAttributes
from es4ps_contract.signing import SignedTask
from samba.dsdb import UF_ACCOUNTDISABLE, UF_NORMAL_ACCOUNT

from .binding import ATTRIBUTES, PASSWORD, POLICY, STATE, Binding, Mark
from .errors import CONNECTION_ERRORS, DirectoryRefused, DirectoryUnavailable, NotFoundYet, refusal
from .managed_ou import ManagedOU, child

logger = logging.getLogger(__name__)

# Contract field -> LDAP attribute: the only attributes an update may write.
LDAP_ATTRIBUTES = {"given_name": "givenName", "surname": "sn", "display_name": "displayName"}
NOT_OURS = REASON_NOT_OURS
SUPERSEDED = REASON_SUPERSEDED
ALREADY_APPLIED = "already applied"

T = TypeVar("T")


def encode_password(password: str) -> bytes:
    """unicodePwd's wire form: the password in double quotes, UTF-16-LE."""
    return f'"{password}"'.encode("utf-16-le")


class Directory:
    """Account operations on one DC, over one connection that is reopened when it breaks."""

    def __init__(
        self,
        url: str,
        realm: str,
        netbios_name: str,
        account: str,
        password: str,
        users_ou: str = MANAGED_OU,
        creates_containers: bool = True,
    ) -> None:
        self.url = url
        self.realm = realm.upper()
        self.netbios_name = netbios_name.upper()
        self.account = account
        self.users_ou = users_ou
        self.creates_containers = creates_containers
        self._password = password
        self._ou: ManagedOU | None = None

    def _run(self, action: Callable[[ManagedOU], T]) -> T:
        """Run `action` on the connection; on a connection error reopen it and try once more."""
        for attempt in (1, 2):
            try:
                if self._ou is None:
                    self._ou = ManagedOU.connect(
                        self.url,
                        self.realm,
                        self.netbios_name,
                        self.account,
                        self._password,
                        self.users_ou,
                        self.creates_containers,
                    )
                return action(self._ou)
            except ldb.LdbError as exc:
                if exc.args[0] not in CONNECTION_ERRORS:
                    raise
                self._ou = None
                if attempt == 2:
                    raise DirectoryUnavailable(f"the directory is unavailable (LDAP error {exc.args[0]})") from None
                logger.info("reconnecting to %s after LDAP error %s", self.url, exc.args[0])
        raise AssertionError("not reached")

    def close(self) -> None:
        self._ou = None

    def _owned(self, ou: ManagedOU, signed: SignedTask) -> tuple[ldb.Message, Binding]:
        """The account of the task's username and its binding, if it belongs to the task's registration.

        An account made before bindings existed (no binding, empty `info`) is
        taken on by the registration with its address; any other account is
        refused before anything is written.
        """
        task = signed.task
        account = ou.find(task.username)
        if account is None:
            raise NotFoundYet(f"account {task.username} not found")
        return account, _binding_of(account, task.registration, task.email)

    def exists(self, username: str) -> bool:
        """True when the account is in the managed OU on this DC."""
        return self._run(lambda ou: ou.find(username) is not None)

    # -- operations -------------------------------------------------------------------------

    def create_user(self, signed: SignedTask, password: str) -> str:
        """Create the account disabled, with its password and its binding, in one add. Returns what happened.

        One add carries everything (the fastest way and atomic: the account
        never exists without its password). If the name is taken, the existing
        account is looked at: one of this very registration is this task
        delivered again (success); anything else is refused. Then, both ways,
        what the policy gives: the uidNumber (it needs the RID, which exists
        only after the add) and the groups, so a redelivery finishes what a
        crash cut short.
        """
        task = signed.task
        unix = UnixAttributes.parse(task.unix) if task.unix else None

        def create(ou: ManagedOU) -> str:
            # The policy's OU and groups first: a group the worker may not use refuses the task before any write.
            dn = child(ou.samdb, ou.policy_container(task.ou), "CN", task.username)
            groups = ou.groups(task.groups)
            record = {
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
            done = "created"
            try:
                ou.samdb.add(record)
            except ldb.LdbError as exc:
                if exc.args[0] != ldb.ERR_ENTRY_ALREADY_EXISTS:
                    raise refusal(exc, "create the account") from None
                done = "already existed"
            if done == "created" and unix is None and not groups:
                return done  # the plain registration: one add, nothing to look up
            account = ou.find(task.username)
            if account is None:
                # The name is taken outside the managed OU (or by another kind of object).
                raise DirectoryRefused(REASON_USERNAME_TAKEN)
            if done != "created":
                try:
                    _binding_of(account, task.registration, task.email)
                except DirectoryRefused:
                    raise DirectoryRefused(REASON_USERNAME_TAKEN) from None
            if unix is not None:
                ou.ensure_unix(account, unix, delete_if_no_room=True)
                ou.ensure_group_gids(groups, unix)
            ou.set_groups(account, groups, exclusive=False)
            return done

        return self._run(create)

    def _change(self, signed: SignedTask, kind: str, what: str, changes: Callable[[ldb.Message], dict]) -> str:
        """Apply `changes(account)` (attribute -> MessageElement) with the binding's mark of `kind`, in one modify.

        Returns SUPERSEDED when a newer task of `kind` was applied already, and
        "already ..." (from `changes` returning {}) when nothing differs.
        """

        def change(ou: ManagedOU) -> str:
            account, binding = self._owned(ou, signed)
            if binding.marks.get(kind) == Mark(signed.issued_at, signed.task_id):
                return ALREADY_APPLIED
            if not binding.applies(kind, signed.issued_at, signed.task_id):
                return SUPERSEDED
            elements = changes(account)
            if not elements:
                return "already up to date"
            message = _marked(account, binding, kind, signed)
            for key, element in elements.items():
                message[key] = element
            ou.modify(message, what)
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

    def apply_policy(self, signed: SignedTask) -> str:
        """Move the account to the policy's OU and make its groups inside the managed OU exactly the policy's."""
        task = signed.task

        def apply(ou: ManagedOU) -> str:
            account, binding = self._owned(ou, signed)
            if binding.marks.get(POLICY) == Mark(signed.issued_at, signed.task_id):
                return ALREADY_APPLIED
            if not binding.applies(POLICY, signed.issued_at, signed.task_id):
                return SUPERSEDED
            container = ou.policy_container(task.ou)
            groups = ou.groups(task.groups)
            moved = account.dn.parent().get_casefold() != container.get_casefold()
            if moved:
                try:
                    ou.samdb.rename(account.dn, child(ou.samdb, container, "CN", account.dn.get_rdn_value()))
                except ldb.LdbError as exc:
                    raise refusal(exc, "move the account") from None
                account = ou.find(task.username)
                if account is None:
                    raise NotFoundYet("the account vanished while it was moved")
            regrouped = ou.set_groups(account, groups, exclusive=True)
            if task.unix:
                unix = UnixAttributes.parse(task.unix)
                ou.ensure_unix(account, unix, delete_if_no_room=False)
                ou.ensure_group_gids(groups, unix)
            # The mark last: a crash before it leaves the task to be applied again (every step converges).
            ou.modify(_marked(account, binding, POLICY, signed), "record the policy")
            if not (moved or regrouped):
                return "already up to date"
            return f"moved to {task.ou or 'the managed OU'}" if moved else "groups changed"

        return self._run(apply)

    def delete_user(self, signed: SignedTask) -> str:
        """Delete the account of this registration; an account that is already gone counts as deleted."""

        def delete(ou: ManagedOU) -> str:
            account = ou.find(signed.task.username)
            if account is None:
                return "already absent"
            _binding_of(account, signed.task.registration, signed.task.email)
            try:
                ou.samdb.delete(account.dn)
            except ldb.LdbError as exc:
                if exc.args[0] == ldb.ERR_NO_SUCH_OBJECT:
                    return "already absent"
                raise refusal(exc, "delete the account") from None
            return "deleted"

        return self._run(delete)


def _marked(account: ldb.Message, binding: Binding, kind: str, signed: SignedTask) -> ldb.Message:
    """A modify of the account that moves the binding's mark of `kind` to `signed`.

    It deletes the old value and adds the new one: the modify fails rather than
    overwrite if someone changed the account since we read it (then we are retried).
    """
    message = ldb.Message(account.dn)
    old_info = account.get("info", idx=0)
    if old_info is not None:
        message["info-old"] = ldb.MessageElement(bytes(old_info), ldb.FLAG_MOD_DELETE, "info")
    new_info = str(binding.marked(kind, signed.issued_at, signed.task_id)).encode()
    message["info-new"] = ldb.MessageElement(new_info, ldb.FLAG_MOD_ADD, "info")
    return message


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
