"""The worker's operations on the directory: idempotent account changes over one connection (`managed_ou`).

Computers the portal manages follow the same rules, with the portal's record
of the computer (`computer_id`) in the place of the registration; what only
computers need is `computers`'.

The worker binds as its own account, whose rights the DC delegated on the
managed OU only (`ES4PS_USERS_OU`; see es4ps_samba.dc.access), so a
registration can never enable, change or delete an account that staff created
elsewhere, even one with the same sAMAccountName.

Inside the OU, every account the product made carries its binding line
(`binding`): the registration that owns it and the marks that order its tasks,
authenticated by a MAC only workers can make. The rules:

- A task of another registration than the one an authentic line names is
  refused before anything is written; an older task never overwrites what a
  newer one of the same kind set (it is *not applied*, and reported so).
- A line that is not authentic (its MAC fails: someone wrote it who should
  not have; or a line of an earlier version) orders nothing. The restrictive
  tasks staff rely on (disable, delete, apply a policy) apply whatever it
  names, so nobody can block or skip them by writing it; the others apply
  only when it names their registration. The next write makes it authentic.
- An account without a line was not made by the product: no task changes or
  deletes it, except a create sent after the person proved the address
  (`address_proven`) whose address is the account's `mail`, which takes it on
  (an account made before bindings existed).
- A delete leaves a record of the deleted registration in the directory
  (`DELETED_REGISTRATIONS`), replicated to every DC: a create of that
  registration, however late or whichever DC it reaches, is refused.

Each operation converges: asking for a state the account is already in
succeeds without writing. Errors are sorted into three kinds the worker acts
on (`errors`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import ldb
from es4ps_contract.directory import MANAGED_OU
from es4ps_contract.events import (
    REASON_COMPUTER_NOT_FOUND,
    REASON_COMPUTER_NOT_OURS,
    REASON_DELETED,
    REASON_NOT_BOUND,
    REASON_NOT_FOUND,
    REASON_NOT_OURS,
    REASON_USERNAME_TAKEN,
)
from es4ps_contract.policies import UnixAttributes
from es4ps_contract.signing import CLOCK_SKEW_S, DEFAULT_MAX_AGE_S, SignedTask
from es4ps_contract.tasks import ApplyPolicy, ComputerTask, DeleteComputer, DeleteUser, DisableComputer, DisableUser
from samba.dsdb import UF_ACCOUNTDISABLE

from .binding import ATTRIBUTE, ATTRIBUTES, LEGACY_ATTRIBUTE, PASSWORD, POLICY, STATE, Binding, Mark
from .errors import (
    CONNECTION_ERRORS,
    CredentialsRefused,
    DirectoryRefused,
    DirectoryUnavailable,
    NotFoundYet,
    credentials_refused,
    refusal,
)
from .managed_ou import ManagedOU, child
from .peers import Peers
from .privilege import check_least_privilege
from .records import account_record, encode_password

logger = logging.getLogger(__name__)

# Contract field -> LDAP attribute: the only attributes an update may write.
LDAP_ATTRIBUTES = {"given_name": "givenName", "surname": "sn", "display_name": "displayName"}
# The tasks staff rely on to take something away: an unauthentic line never stops them.
RESTRICTIVE = (DisableUser, DeleteUser, ApplyPolicy, DisableComputer, DeleteComputer)
# A deleted registration is remembered at least as long as any of its tasks could still be accepted.
DELETIONS_KEPT_S = DEFAULT_MAX_AGE_S + CLOCK_SKEW_S
_PRUNE_EVERY_S = 3600

T = TypeVar("T")


class Directory:
    """Account operations on one DC, over one connection that is reopened when it breaks."""

    def __init__(
        self,
        url: str,
        realm: str,
        netbios_name: str,
        account: str,
        password: str,
        binding_key: bytes,
        users_ou: str = MANAGED_OU,
        creates_containers: bool = True,
        ca_file: str = "",
    ) -> None:
        self.url = url
        self.ca_file = ca_file
        self.realm = realm.upper()
        self.netbios_name = netbios_name.upper()
        self.account = account
        self.users_ou = users_ou
        self.creates_containers = creates_containers
        self._password = password
        self._key = binding_key
        self._ou: ManagedOU | None = None
        self._pruned_at = 0.0
        # Called with each unauthentic line met (the worker counts them).
        self.on_unauthentic: Callable[[str], None] = lambda _username: None
        # The other DCs a create asks first (`peers`); an outside directory's DCs run no worker of ours.
        self.peers = None if ca_file else Peers(self.realm, self.netbios_name, account, password)

    def run(self, action: Callable[[ManagedOU], T]) -> T:
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
                        self.ca_file,
                    )
                return action(self._ou)
            except ldb.LdbError as exc:
                if credentials_refused(exc):
                    self._ou = None
                    raise CredentialsRefused(f"the directory refused the account {self.account}") from None
                if exc.args[0] not in CONNECTION_ERRORS:
                    raise
                self._ou = None
                if attempt == 2:
                    raise DirectoryUnavailable(f"the directory is unavailable (LDAP error {exc.args[0]})") from None
                logger.info("reconnecting to %s after LDAP error %s", self.url, exc.args[0])
        raise AssertionError("not reached")

    def close(self) -> None:
        self._ou = None

    def check_rights(self) -> None:
        """Raise TooManyRights when the worker's account can do more than its job needs (`privilege`)."""
        self.run(lambda ou: check_least_privilege(ou.samdb))

    # -- bindings ---------------------------------------------------------------------------

    def binding(self, account: ldb.Message, username: str) -> Binding | None:
        """The account's binding line (the one in `info` only when it has none where it belongs now)."""
        for attribute in (ATTRIBUTE, LEGACY_ATTRIBUTE):
            line = account.get(attribute, idx=0)
            binding = Binding.parse(str(line), self._key, username) if line is not None else None
            if binding is not None:
                if not binding.authentic:
                    logger.warning("the binding line of %s is not authentic: it orders nothing", username)
                    self.on_unauthentic(username)
                return binding
        return None

    def owned(self, ou: ManagedOU, signed: SignedTask) -> tuple[ldb.Message, Binding]:
        """The task's account (or computer) and its binding (for the task's registration or computer record), or a
        refusal (module docstring)."""
        task = signed.task
        computer = isinstance(task, ComputerTask)
        account = ou.find_computer(task.computer) if computer else ou.find(task.username)
        if account is None:
            reason = REASON_COMPUTER_NOT_FOUND if computer else REASON_NOT_FOUND
            raise NotFoundYet(f"{task.username} not found", reason=reason)
        binding = self.binding(account, task.username)
        if binding is None:
            raise DirectoryRefused(REASON_COMPUTER_NOT_OURS if computer else REASON_NOT_BOUND)
        if binding.registration != task.owner:
            if binding.authentic or not isinstance(task, RESTRICTIVE):
                raise DirectoryRefused(REASON_COMPUTER_NOT_OURS if computer else REASON_NOT_OURS)
            binding = Binding(task.owner, {}, authentic=False)
        return account, binding

    def _written(self, account: ldb.Message, binding: Binding, username: str) -> ldb.Message:
        """A modify of the account that writes `binding` as its (authentic) line.

        It deletes the old value and adds the new one: the modify fails rather than
        overwrite if another worker changed the line since we read it (then we are retried).
        """
        message = ldb.Message(account.dn)
        old = account.get(ATTRIBUTE, idx=0)
        if old is not None:
            message["binding-old"] = ldb.MessageElement(bytes(old), ldb.FLAG_MOD_DELETE, ATTRIBUTE)
        message["binding-new"] = ldb.MessageElement(
            binding.line(self._key, username).encode(), ldb.FLAG_MOD_ADD, ATTRIBUTE
        )
        if old is None and str(account.get(LEGACY_ATTRIBUTE, idx=0) or "").startswith("es4ps "):
            # The line of an earlier version moves to where it belongs.
            message["legacy"] = ldb.MessageElement([], ldb.FLAG_MOD_REPLACE, LEGACY_ATTRIBUTE)
        return message

    def marked(self, account: ldb.Message, binding: Binding, kinds: tuple[str, ...], signed: SignedTask) -> ldb.Message:
        """`_written` with the binding's marks of `kinds` moved to `signed`."""
        for kind in kinds:
            binding = binding.marked(kind, signed.issued_at, signed.task_id)
        return self._written(account, binding, signed.task.username)

    def line(self, owner: str, signed: SignedTask) -> str:
        """The binding line of an object a task creates: `owner` (its registration or computer record), every kind
        marked by the task."""
        return Binding.new(owner, signed.issued_at, signed.task_id).line(self._key, signed.task.username)

    def exists(self, username: str) -> bool:
        """True when the account is in the managed OU on this DC."""
        return self.run(lambda ou: ou.find(username) is not None)

    # -- operations -------------------------------------------------------------------------

    def create_user(self, signed: SignedTask, password: str, must_answer: bool = False) -> str:
        """Create the account disabled, with its password and its binding, in one add. Returns what happened.

        One add carries everything (the fastest way and atomic: the account
        never exists without its password). A deleted registration is never
        created again. If the name is taken, the existing account is looked
        at: one of this very registration is this task delivered again
        (success); an account the product never bound may be taken on (module
        docstring); anything else is refused. Then what the policy gives: the
        uidNumber (it needs the RID, which exists only after the add) and the
        groups, so a redelivery finishes what a crash cut short, unless a
        newer policy was applied since. A name another DC holds waits until it has
        replicated here (`peers`; `must_answer`: the handler's).
        """
        task = signed.task
        unix = UnixAttributes.parse(task.unix) if task.unix else None

        def create(ou: ManagedOU) -> str:
            if ou.is_deleted(task.registration):
                raise DirectoryRefused(REASON_DELETED)
            # The policy's OU and groups first: a group the worker may not use refuses the task before any write.
            dn = child(ou.samdb, ou.policy_container(task.ou), "CN", task.username)
            groups = ou.groups(task.groups)
            line = self.line(task.registration, signed)
            if self.peers is not None:
                self.peers.first_here(ou.samdb, task.username, must_answer, REASON_USERNAME_TAKEN)
            try:
                ou.samdb.add(account_record(dn, task, self.realm, line, password))
            except ldb.LdbError as exc:
                if exc.args[0] != ldb.ERR_ENTRY_ALREADY_EXISTS:
                    raise refusal(exc, "create the account") from None
                return self._created_before(ou, signed, password, groups, unix)
            if unix is None and not groups:
                return "created"  # the plain registration: one add, nothing to look up
            account = ou.find(task.username)
            if account is None:
                raise NotFoundYet("the account vanished after it was created")
            self._finish_policy(ou, account, groups, unix)
            return "created"

        return self.run(create)

    def _created_before(self, ou: ManagedOU, signed: SignedTask, password: str, groups, unix) -> str:
        """The create of an account whose name exists: this task again, an account to take on, or refused."""
        task = signed.task
        account = ou.find(task.username)
        if account is None:
            # The name is taken outside the managed OU (or by another kind of object).
            raise DirectoryRefused(REASON_USERNAME_TAKEN)
        binding = self.binding(account, task.username)
        if binding is None:
            mail = str(account.get("mail", idx=0) or "")
            if not task.address_proven or mail.casefold() != task.email.casefold():
                raise DirectoryRefused(REASON_USERNAME_TAKEN)
            # Made before bindings existed, and the person proved its address: bound to this registration,
            # with the password they chose.
            bound = Binding.new(task.registration, signed.issued_at, signed.task_id)
            message = self._written(account, bound, task.username)
            message["unicodePwd"] = ldb.MessageElement(encode_password(password), ldb.FLAG_MOD_REPLACE, "unicodePwd")
            ou.modify(message, "take on the account")
            self._finish_policy(ou, ou.find(task.username) or account, groups, unix)
            return "taken on"
        if binding.registration != task.registration:
            raise DirectoryRefused(REASON_USERNAME_TAKEN)
        this = (signed.issued_at, signed.task_id)
        if binding.authentic and (binding.marks.get(POLICY) == Mark(*this) or binding.applies(POLICY, *this)):
            # Unless a newer policy was applied since (a replayed create must not give the old groups back).
            self._finish_policy(ou, account, groups, unix)
        return "already existed"

    @staticmethod
    def _finish_policy(ou: ManagedOU, account: ldb.Message, groups: list[ldb.Message], unix) -> None:
        if unix is not None:
            ou.ensure_unix(account, unix, delete_if_no_room=True)
            ou.ensure_group_gids(groups, unix)
        ou.set_groups(account, groups, exclusive=False)

    def change(
        self, signed: SignedTask, kind: str, what: str, changes: Callable[[ldb.Message], dict], also: tuple = ()
    ) -> str:
        """Apply `changes(account)` (attribute -> MessageElement) with the binding's marks of `kind` (and of the
        kinds in `also`), in one modify.

        Returns SUPERSEDED when a newer task of `kind` was applied already, and
        "already ..." (from `changes` returning {}) when nothing differs.
        """

        def change(ou: ManagedOU) -> str:
            account, binding = self.owned(ou, signed)
            if settled := binding.standing(kind, signed.issued_at, signed.task_id):
                return settled
            elements = changes(account)
            if not elements and binding.authentic:
                return "already up to date"
            message = self.marked(account, binding, (kind, *also), signed)
            for key, element in elements.items():
                message[key] = element
            ou.modify(message, what)
            return "done" if elements else "already up to date"

        return self.run(change)

    def set_disabled(self, signed: SignedTask, disabled: bool, new_password: str | None = None) -> str:
        """Disable or enable the account (or computer); `new_password` replaces its password in the same modify
        (and moves the password's mark too)."""
        state = "disabled" if disabled else "enabled"

        def flags(account: ldb.Message) -> dict:
            current = int(account["userAccountControl"][0])
            wanted = current | UF_ACCOUNTDISABLE if disabled else current & ~UF_ACCOUNTDISABLE
            elements = {}
            if wanted != current:
                elements["uac-old"] = ldb.MessageElement(str(current), ldb.FLAG_MOD_DELETE, "userAccountControl")
                elements["uac-new"] = ldb.MessageElement(str(wanted), ldb.FLAG_MOD_ADD, "userAccountControl")
            if new_password is not None:
                replaced = encode_password(new_password)
                elements["unicodePwd"] = ldb.MessageElement(replaced, ldb.FLAG_MOD_REPLACE, "unicodePwd")
            return elements

        also = (PASSWORD,) if new_password is not None else ()
        done = self.change(signed, STATE, "change the account's state", flags, also)
        return {"done": state, "already up to date": f"already {state}"}.get(done, done)

    def enable_user(self, signed: SignedTask) -> str:
        return self.set_disabled(signed, False)

    def disable_user(self, signed: SignedTask) -> str:
        return self.set_disabled(signed, True)

    def set_password(self, signed: SignedTask, password: str) -> str:
        """Reset the account's password (an administrator's reset: the old one stops working)."""
        element = ldb.MessageElement(encode_password(password), ldb.FLAG_MOD_REPLACE, "unicodePwd")
        done = self.change(signed, PASSWORD, "set the password", lambda _account: {"unicodePwd": element})
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
        done = self.change(signed, ATTRIBUTES, "update the account", differing)
        return "updated " + ", ".join(changed) if done == "done" else done

    def apply_policy(self, signed: SignedTask) -> str:
        """Move the account to the policy's OU and make its groups inside the managed OU exactly the policy's."""
        task = signed.task

        def apply(ou: ManagedOU) -> str:
            account, binding = self.owned(ou, signed)
            if settled := binding.standing(POLICY, signed.issued_at, signed.task_id):
                return settled
            container = ou.policy_container(task.ou)
            groups = ou.groups(task.groups)
            account, moved = ou.move_under(account, container, "account", lambda: ou.find(task.username))
            regrouped = ou.set_groups(account, groups, exclusive=True)
            if task.unix:
                unix = UnixAttributes.parse(task.unix)
                ou.ensure_unix(account, unix, delete_if_no_room=False)
                ou.ensure_group_gids(groups, unix)
            # The mark last: a crash before it leaves the task to be applied again (every step converges).
            ou.modify(self.marked(account, binding, (POLICY,), signed), "record the policy")
            if not (moved or regrouped):
                return "already up to date"
            return f"moved to {task.ou or 'the managed OU'}" if moved else "groups changed"

        return self.run(apply)

    def delete(self, signed: SignedTask) -> str:
        """Delete the account of this registration (or the computer of this record) and remember the registration
        (or record) as deleted, on every DC.

        An account that is already gone counts as deleted; an account the
        product never bound is never deleted (refused, module docstring).
        """
        task = signed.task

        def delete(ou: ManagedOU) -> str:
            # First: a crash after it leaves a redelivery to delete the account; the other way round a late
            # create could slip in between.
            ou.record_deletion(task.owner, f"{signed.issued_at}/{signed.task_id}")
            self._prune_deletions(ou)
            try:
                account, _binding = self.owned(ou, signed)
            except NotFoundYet:
                return "already absent"
            try:
                ou.samdb.delete(account.dn)
            except ldb.LdbError as exc:
                if exc.args[0] == ldb.ERR_NO_SUCH_OBJECT:
                    return "already absent"
                raise refusal(exc, "delete the account") from None
            return "deleted"

        return self.run(delete)

    def _prune_deletions(self, ou: ManagedOU) -> None:
        """Now and then (one worker: the one that creates containers), forget deletions no task can follow."""
        now = time.time()
        if not self.creates_containers or now - self._pruned_at < _PRUNE_EVERY_S:
            return
        self._pruned_at = now
        before = time.strftime("%Y%m%d%H%M%S.0Z", time.gmtime(now - DELETIONS_KEPT_S))
        pruned = ou.prune_deletions(before)
        if pruned:
            logger.info("forgot %d deleted registrations older than %s", pruned, before)
