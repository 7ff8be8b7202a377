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

A policy puts an account into an OU below the managed OU and into groups,
which the worker creates there when they are missing (only the workers
allowed to, `creates_containers`: with several DCs, one, so two DCs never
create the same group; the others wait for replication), and never into a
group outside it. Unix attributes come with the create task; the uidNumber is
the range's start plus the account's RID, which the domain already keeps
unique across DCs (each DC draws RIDs from its own pool, handed out by the
RID master), so workers on several DCs never need to agree on a counter.

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
from es4ps_contract.events import REASON_NOT_FOUND, REASON_NOT_OURS, REASON_SUPERSEDED, REASON_USERNAME_TAKEN
from es4ps_contract.passwords import PASSWORD_REFUSED_REASON
from es4ps_contract.policies import PRIVILEGED_GROUPS, UnixAttributes
from es4ps_contract.signing import SignedTask
from samba.credentials import Credentials
from samba.dcerpc import security
from samba.dsdb import UF_ACCOUNTDISABLE, UF_NORMAL_ACCOUNT
from samba.ndr import ndr_unpack
from samba.param import LoadParm
from samba.samdb import SamDB

from .binding import ATTRIBUTES, PASSWORD, POLICY, STATE, Binding, Mark

logger = logging.getLogger(__name__)

# Contract field -> LDAP attribute: the only attributes an update may write.
LDAP_ATTRIBUTES = {"given_name": "givenName", "surname": "sn", "display_name": "displayName"}
DEFAULT_USERS_OU = "OU=ES4PS"
# ldb reports a dropped or refused connection as an operations error; busy and
# unavailable are the server asking us to come back later.
_CONNECTION_ERRORS = frozenset(
    {ldb.ERR_OPERATIONS_ERROR, ldb.ERR_UNAVAILABLE, ldb.ERR_BUSY, ldb.ERR_TIME_LIMIT_EXCEEDED}
)
_SEARCH_ATTRIBUTES = [
    "userAccountControl", "mail", "givenName", "sn", "displayName", "info", "memberOf", "objectSid",
    "uidNumber", "gidNumber", "loginShell", "unixHomeDirectory",
]  # fmt: skip
# Adding a member that is one already, or removing one that is not: a redelivery or another process did it.
_MEMBERSHIP_ALREADY_SO = frozenset(
    {ldb.ERR_ENTRY_ALREADY_EXISTS, ldb.ERR_ATTRIBUTE_OR_VALUE_EXISTS, ldb.ERR_NO_SUCH_ATTRIBUTE}
)
NOT_OURS = REASON_NOT_OURS
SUPERSEDED = REASON_SUPERSEDED
ALREADY_APPLIED = "already applied"

T = TypeVar("T")


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
        creates_containers: bool = True,
    ) -> None:
        self.url = url
        self.realm = realm.upper()
        self.netbios_name = netbios_name.upper()
        self.account = account
        self.users_ou = users_ou
        self.creates_containers = creates_containers
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
        delivered again (success); anything else is refused. Then, both ways,
        what the policy gives: the uidNumber (it needs the RID, which exists
        only after the add) and the groups, so a redelivery finishes what a
        crash cut short.
        """
        task = signed.task
        unix = UnixAttributes.parse(task.unix) if task.unix else None

        def create(samdb: SamDB) -> str:
            # The policy's OU and groups first: a group the worker may not use refuses the task before any write.
            dn = self._child(samdb, self._policy_container(samdb, task.ou), "CN", task.username)
            groups = self._groups(samdb, task.groups)
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
                samdb.add(record)
            except ldb.LdbError as exc:
                if exc.args[0] != ldb.ERR_ENTRY_ALREADY_EXISTS:
                    if exc.args[0] in _CONNECTION_ERRORS:
                        raise
                    raise _refusal(exc, "create the account") from None
                done = "already existed"
            if done == "created" and unix is None and not groups:
                return done  # the plain registration: one add, nothing to look up
            account = self._find(samdb, task.username)
            if account is None:
                # The name is taken outside the managed OU (or by another kind of object).
                raise DirectoryRefused(REASON_USERNAME_TAKEN)
            if done != "created":
                try:
                    _binding_of(account, task.registration, task.email)
                except DirectoryRefused:
                    raise DirectoryRefused(REASON_USERNAME_TAKEN) from None
            if unix is not None:
                self._ensure_unix(samdb, account, unix, delete_if_no_room=True)
            self._set_groups(samdb, account, groups, exclusive=False)
            return done

        return self._run(create)

    # -- policies: OUs, groups, Unix ids -------------------------------------------------------

    @staticmethod
    def _child(samdb: SamDB, parent: ldb.Dn, kind: str, name: str) -> ldb.Dn:
        # Names are validated by the contract (no DN syntax in them); ldb escapes the value anyway.
        dn = ldb.Dn(samdb, str(parent))
        dn.add_child(ldb.Dn(samdb, f"{kind}=x"))
        dn.set_component(0, kind, name)
        return dn

    def _policy_container(self, samdb: SamDB, ou: str) -> ldb.Dn:
        """Where accounts of the OU named `ou` live (the managed OU for ""), created if missing and allowed."""
        if not ou:
            return self._container
        dn = self._child(samdb, self._container, "OU", ou)
        try:
            samdb.search(base=dn, scope=ldb.SCOPE_BASE, attrs=["ou"])
            return dn
        except ldb.LdbError as exc:
            if exc.args[0] != ldb.ERR_NO_SUCH_OBJECT:
                raise
        if not self.creates_containers:
            raise NotFoundYet(
                f"the OU {ou} is not on this DC yet", reason=f"the OU {ou} was not found (retries exhausted)"
            )
        try:
            samdb.add({"dn": dn, "objectClass": "organizationalUnit", "description": "An ES4PS policy's accounts"})
        except ldb.LdbError as exc:
            if exc.args[0] in _CONNECTION_ERRORS:
                raise
            if exc.args[0] != ldb.ERR_ENTRY_ALREADY_EXISTS:  # another process made it a moment ago: fine
                raise _refusal(exc, f"create the OU {ou}") from None
        logger.info("created the OU %s", dn)
        return dn

    def _find_group(self, samdb: SamDB, name: str) -> ldb.Message | None:
        found = samdb.search(
            base=self._container,
            scope=ldb.SCOPE_SUBTREE,
            expression=f"(&(objectClass=group)(sAMAccountName={ldb.binary_encode(name)}))",
            attrs=["adminCount", "isCriticalSystemObject"],
        )
        return found[0] if len(found) else None

    def _group(self, samdb: SamDB, name: str) -> ldb.Dn:
        """The managed group `name` (inside the managed OU), created there if missing and allowed.

        A group of that name outside the managed OU is never used, and a
        privileged one never even looked up: the worker's rights would not let
        it add members there anyway, and the refusal says why.
        """
        if name.lower() in PRIVILEGED_GROUPS:
            raise DirectoryRefused(f"the group {name} is a privileged group of the domain")
        group = self._find_group(samdb, name)
        if group is None:
            if not self.creates_containers:
                raise NotFoundYet(
                    f"the group {name} is not on this DC yet",
                    reason=f"the group {name} was not found (retries exhausted)",
                )
            dn = self._child(samdb, self._container, "CN", name)
            try:
                samdb.add(
                    {"dn": dn, "objectClass": "group", "sAMAccountName": name, "description": "An ES4PS policy's group"}
                )
                logger.info("created the group %s", dn)
            except ldb.LdbError as exc:
                if exc.args[0] in _CONNECTION_ERRORS:
                    raise
                if exc.args[0] != ldb.ERR_ENTRY_ALREADY_EXISTS:
                    raise _refusal(exc, f"create the group {name}") from None
            # Made just now, here or by another process; or the name belongs to something outside the OU.
            group = self._find_group(samdb, name)
            if group is None:
                raise DirectoryRefused(f"the group name {name} is taken by another object of the domain")
        protected = str(group.get("adminCount", idx=0) or "0") != "0"
        if protected or str(group.get("isCriticalSystemObject", idx=0)) == "TRUE":
            raise DirectoryRefused(f"the group {name} is a privileged group of the domain")
        return group.dn

    def _groups(self, samdb: SamDB, names: tuple[str, ...]) -> list[ldb.Dn]:
        return [self._group(samdb, name) for name in names]

    def _set_groups(self, samdb: SamDB, account: ldb.Message, groups: list[ldb.Dn], exclusive: bool) -> bool:
        """Make the account a member of `groups`; `exclusive`: and of no other group inside the managed OU.

        Groups outside the managed OU are never touched. Returns whether anything changed.
        """
        wanted = {dn.get_casefold(): dn for dn in groups}
        current = {}
        for value in account.get("memberOf") or ():
            dn = ldb.Dn(samdb, str(value))
            if dn.is_child_of(self._container):
                current[dn.get_casefold()] = dn
        changes = [(dn, ldb.FLAG_MOD_ADD) for key, dn in wanted.items() if key not in current]
        if exclusive:
            changes += [(dn, ldb.FLAG_MOD_DELETE) for key, dn in current.items() if key not in wanted]
        for group_dn, flag in changes:
            message = ldb.Message(group_dn)
            message["member"] = ldb.MessageElement(str(account.dn), flag, "member")
            try:
                samdb.modify(message)
            except ldb.LdbError as exc:
                code = exc.args[0]
                if code in _CONNECTION_ERRORS:
                    raise
                if code not in _MEMBERSHIP_ALREADY_SO:
                    raise _refusal(exc, "change the account's groups") from None
        return bool(changes)

    def _ensure_unix(self, samdb: SamDB, account: ldb.Message, unix: UnixAttributes, delete_if_no_room: bool) -> None:
        """Give the account the Unix attributes it lacks; never change one it has.

        Its uidNumber is the range's start plus its RID (known only once the
        account exists). An account whose RID does not fit (the range is too
        small for the domain) gets none and the task fails with the reason; a
        new account (`delete_if_no_room`, disabled and unused) is deleted
        again, since a Linux login without a uid would not work.
        """
        missing = {
            attribute: value
            for attribute, value in (
                ("gidNumber", str(unix.gid_number)),
                ("loginShell", unix.login_shell),
                ("unixHomeDirectory", unix.home_directory),
            )
            if account.get(attribute) is None
        }
        if account.get("uidNumber") is None:
            sid = ndr_unpack(security.dom_sid, account["objectSid"][0])
            rid = int(str(sid).rsplit("-", 1)[1])
            uid = unix.uid_number(rid)
            if uid is None:
                if delete_if_no_room:
                    samdb.delete(account.dn)
                span = f"{unix.uid_range_start}-{unix.uid_range_end}"
                raise DirectoryRefused(f"no uidNumber left: the range {span} has no room for RID {rid}")
            missing["uidNumber"] = str(uid)
        if not missing:
            return
        message = ldb.Message(account.dn)
        for attribute, value in missing.items():
            message[attribute] = ldb.MessageElement(value, ldb.FLAG_MOD_REPLACE, attribute)
        self._modify(samdb, message, "set the Unix attributes")

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
            message = _marked(account, binding, kind, signed)
            for key, element in elements.items():
                message[key] = element
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

    def apply_policy(self, signed: SignedTask) -> str:
        """Move the account to the policy's OU and make its groups inside the managed OU exactly the policy's."""
        task = signed.task

        def apply(samdb: SamDB) -> str:
            account, binding = self._owned(samdb, signed)
            if binding.marks.get(POLICY) == Mark(signed.issued_at, signed.task_id):
                return ALREADY_APPLIED
            if not binding.applies(POLICY, signed.issued_at, signed.task_id):
                return SUPERSEDED
            container = self._policy_container(samdb, task.ou)
            groups = self._groups(samdb, task.groups)
            moved = account.dn.parent().get_casefold() != container.get_casefold()
            if moved:
                target = self._child(samdb, container, "CN", account.dn.get_rdn_value())
                try:
                    samdb.rename(account.dn, target)
                except ldb.LdbError as exc:
                    if exc.args[0] in _CONNECTION_ERRORS:
                        raise
                    raise _refusal(exc, "move the account") from None
                account = self._find(samdb, task.username)
                if account is None:
                    raise NotFoundYet("the account vanished while it was moved")
            regrouped = self._set_groups(samdb, account, groups, exclusive=True)
            if task.unix:
                self._ensure_unix(samdb, account, UnixAttributes.parse(task.unix), delete_if_no_room=False)
            # The mark last: a crash before it leaves the task to be applied again (every step converges).
            self._modify(samdb, _marked(account, binding, POLICY, signed), "record the policy")
            if not (moved or regrouped):
                return "already up to date"
            return f"moved to {task.ou or 'the managed OU'}" if moved else "groups changed"

        return self._run(apply)

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
