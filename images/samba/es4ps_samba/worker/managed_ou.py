"""One connection to the DC, as the worker's account, scoped to the managed OU: lookups and what policies place.

Computers are looked up in the managed computers OU inside it (`COMPUTERS_OU`)
only, the one place the worker's rights on computer objects reach.

Lookups never leave the managed OU (`ES4PS_USERS_OU`), and the directory
itself refuses any write outside it (es4ps_samba.dc.access), so an account or
group staff made elsewhere is never found, let alone changed.

A policy puts an account into an OU below the managed OU and into groups,
which the worker creates there when they are missing (only the workers
allowed to, `creates_containers`: with several DCs, one, so two DCs never
create the same group; the others wait for replication), and never into a
group outside it. Unix attributes come with the create task; the uidNumber is
the range's start plus the account's RID, which the domain already keeps
unique across DCs (each DC draws RIDs from its own pool, handed out by the
RID master), so workers on several DCs never need to agree on a counter. The
policy's groups get a gidNumber the same way (start + the group's RID), so
Linux members that read the directory's numbers list them in `id`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import ldb
from es4ps_contract.directory import COMPUTERS_OU
from es4ps_contract.policies import PRIVILEGED_GROUPS, UnixAttributes
from es4ps_contract.validation import computer_account_name
from samba.dcerpc import security
from samba.ndr import ndr_unpack

from ..managed import BINDING_ATTRIBUTE, DELETED_REGISTRATION_CLASS, DELETED_REGISTRATIONS
from ..samdb import open_remote_samdb
from .errors import ContainerMissing, DirectoryRefused, DirectoryUnavailable, NotFoundYet, refusal

logger = logging.getLogger(__name__)

ACCOUNT_ATTRIBUTES = [
    "userAccountControl", "mail", "givenName", "sn", "displayName", BINDING_ATTRIBUTE, "info", "memberOf",
    "objectSid", "uidNumber", "gidNumber", "loginShell", "unixHomeDirectory",
]  # fmt: skip
COMPUTER_ATTRIBUTES = ["userAccountControl", BINDING_ATTRIBUTE, "dNSHostName"]
# Adding a member that is one already, or removing one that is not: a redelivery or another process did it.
_MEMBERSHIP_ALREADY_SO = frozenset(
    {ldb.ERR_ENTRY_ALREADY_EXISTS, ldb.ERR_ATTRIBUTE_OR_VALUE_EXISTS, ldb.ERR_NO_SUCH_ATTRIBUTE}
)


def child(samdb, parent: ldb.Dn, kind: str, name: str) -> ldb.Dn:
    """The DN `kind=name,parent`, the value escaped by ldb (names are validated by the contract anyway)."""
    dn = ldb.Dn(samdb, str(parent))
    dn.add_child(ldb.Dn(samdb, f"{kind}=x"))
    dn.set_component(0, kind, name)
    return dn


class ManagedOU:
    """A SamDB connection (`samdb`) and the managed OU's DN (`dn`) on it."""

    def __init__(self, samdb, dn: ldb.Dn, creates_containers: bool) -> None:
        self.samdb = samdb
        self.dn = dn
        self.creates_containers = creates_containers
        self.deleted_registrations = ldb.Dn(samdb, f"{DELETED_REGISTRATIONS},{dn}")
        self.computers = ldb.Dn(samdb, f"{COMPUTERS_OU},{dn}")

    @classmethod
    def connect(
        cls,
        url: str,
        realm: str,
        netbios_name: str,
        account: str,
        password: str,
        users_ou: str,
        creates: bool,
        ca_file: str = "",
    ) -> ManagedOU:
        """Bind as the worker's account; the managed OU must exist (else the DC is not ready yet)."""
        samdb = open_remote_samdb(url, realm, netbios_name, account, password, ca_file)
        managed = cls(samdb, ldb.Dn(samdb, f"{users_ou},{samdb.domain_dn()}"), creates)
        for dn in (managed.dn, managed.deleted_registrations, managed.computers):
            try:
                samdb.search(base=dn, scope=ldb.SCOPE_BASE, attrs=["objectClass"])
            except ldb.LdbError as exc:
                if exc.args[0] == ldb.ERR_NO_SUCH_OBJECT:
                    # The DC's entrypoint creates them before samba serves: not there means not ready yet.
                    raise ContainerMissing(str(dn), managed_ou=dn == managed.dn) from None
                raise
        return managed

    # -- lookups ----------------------------------------------------------------------------

    def find(self, username: str) -> ldb.Message | None:
        """The user `username` inside the managed OU, or None."""
        # sAMAccountName is indexed: a constant-cost lookup however large the domain.
        result = self.samdb.search(
            base=self.dn,
            scope=ldb.SCOPE_SUBTREE,
            expression=f"(&(objectClass=user)(sAMAccountName={ldb.binary_encode(username)}))",
            attrs=ACCOUNT_ATTRIBUTES,
        )
        return result[0] if len(result) else None

    def find_computer(self, name: str) -> ldb.Message | None:
        """The computer called `name` (canonical) inside the computers OU, or None."""
        result = self.samdb.search(
            base=self.computers,
            scope=ldb.SCOPE_SUBTREE,
            expression=f"(&(objectClass=computer)(sAMAccountName={ldb.binary_encode(computer_account_name(name))}))",
            attrs=COMPUTER_ATTRIBUTES,
        )
        return result[0] if len(result) else None

    def _find_group(self, name: str) -> ldb.Message | None:
        found = self.samdb.search(
            base=self.dn,
            scope=ldb.SCOPE_SUBTREE,
            expression=f"(&(objectClass=group)(sAMAccountName={ldb.binary_encode(name)}))",
            attrs=["adminCount", "isCriticalSystemObject", "objectSid", "gidNumber"],
        )
        return found[0] if len(found) else None

    # -- deleted registrations ----------------------------------------------------------------

    def _deletion_dn(self, registration: str) -> ldb.Dn:
        return child(self.samdb, self.deleted_registrations, "CN", registration)

    def is_deleted(self, registration: str) -> bool:
        """Whether a delete of `registration` was applied (on any DC whose changes reached this one)."""
        try:
            self.samdb.search(base=self._deletion_dn(registration), scope=ldb.SCOPE_BASE, attrs=["cn"])
        except ldb.LdbError as exc:
            if exc.args[0] == ldb.ERR_NO_SUCH_OBJECT:
                return False
            raise
        return True

    def record_deletion(self, registration: str, mark: str) -> None:
        """Remember for good that `registration` was deleted (by the task of `mark`)."""
        record = {
            "dn": self._deletion_dn(registration),
            "objectClass": DELETED_REGISTRATION_CLASS,
            "description": f"es4ps deleted by {mark}",
        }
        self._add_container(record, "record the deleted registration")

    def prune_deletions(self, created_before: str) -> int:
        """Delete the records made before `created_before` (LDAP generalized time); returns how many."""
        found = self.samdb.search(
            base=self.deleted_registrations,
            scope=ldb.SCOPE_ONELEVEL,
            expression=f"(&(objectClass={DELETED_REGISTRATION_CLASS})(whenCreated<={created_before}))",
            attrs=["cn"],
        )
        for record in found:
            try:
                self.samdb.delete(record.dn)
            except ldb.LdbError as exc:
                if exc.args[0] != ldb.ERR_NO_SUCH_OBJECT:  # another worker pruned it a moment ago
                    raise
        return len(found)

    # -- writes -----------------------------------------------------------------------------

    def modify(self, message: ldb.Message, what: str) -> None:
        """One modify; a vanished account is not found (yet), a lost race is retried, the rest refused."""
        try:
            self.samdb.modify(message)
        except ldb.LdbError as exc:
            code = exc.args[0]
            if code == ldb.ERR_NO_SUCH_OBJECT:
                raise NotFoundYet("the account vanished while it was changed") from None
            if code in (ldb.ERR_NO_SUCH_ATTRIBUTE, ldb.ERR_ATTRIBUTE_OR_VALUE_EXISTS):
                # Our delete/add pair lost a race with another change: read again and retry.
                raise DirectoryUnavailable("the account changed while it was being changed") from None
            raise refusal(exc, what) from None

    def move_under(
        self, entry: ldb.Message, container: ldb.Dn, what: str, find_again: Callable[[], ldb.Message | None]
    ) -> tuple[ldb.Message, bool]:
        """Move the account or computer `entry` under `container` unless it is there; returns (it as it is now,
        whether it moved)."""
        if entry.dn.parent().get_casefold() == container.get_casefold():
            return entry, False
        try:
            self.samdb.rename(entry.dn, child(self.samdb, container, "CN", entry.dn.get_rdn_value()))
        except ldb.LdbError as exc:
            raise refusal(exc, f"move the {what}") from None
        moved = find_again()
        if moved is None:
            raise NotFoundYet(f"the {what} vanished while it was moved")
        return moved, True

    def _add_container(self, record: dict, what: str) -> None:
        try:
            self.samdb.add(record)
        except ldb.LdbError as exc:
            if exc.args[0] != ldb.ERR_ENTRY_ALREADY_EXISTS:  # another process made it a moment ago: fine
                raise refusal(exc, what) from None

    # -- policies: OUs, groups, Unix ids ------------------------------------------------------

    def policy_container(self, ou: str) -> ldb.Dn:
        """Where accounts of the OU named `ou` live (the managed OU for ""), created if missing and allowed."""
        return self.sub_ou(self.dn, ou, "An ES4PS policy's accounts")

    def computers_container(self, ou: str) -> ldb.Dn:
        """Where computers of the OU named `ou` live (the computers OU for ""), created if missing and allowed."""
        return self.sub_ou(self.computers, ou, "Computers ES4PS manages")

    def sub_ou(self, parent: ldb.Dn, ou: str, description: str) -> ldb.Dn:
        """The OU named `ou` under `parent` (`parent` itself for ""), created if missing and allowed."""
        if not ou:
            return parent
        dn = child(self.samdb, parent, "OU", ou)
        try:
            self.samdb.search(base=dn, scope=ldb.SCOPE_BASE, attrs=["ou"])
            return dn
        except ldb.LdbError as exc:
            if exc.args[0] != ldb.ERR_NO_SUCH_OBJECT:
                raise
        if not self.creates_containers:
            raise NotFoundYet(
                f"the OU {ou} is not on this DC yet", reason=f"the OU {ou} was not found (retries exhausted)"
            )
        record = {"dn": dn, "objectClass": "organizationalUnit", "description": description}
        self._add_container(record, f"create the OU {ou}")
        logger.info("created the OU %s", dn)
        return dn

    def group(self, name: str) -> ldb.Message:
        """The managed group `name` (inside the managed OU; with its SID and gidNumber), created there if missing
        and allowed.

        A group of that name outside the managed OU is never used, and a
        privileged one never even looked up: the worker's rights would not let
        it add members there anyway, and the refusal says why.
        """
        if name.lower() in PRIVILEGED_GROUPS:
            raise DirectoryRefused(f"the group {name} is a privileged group of the domain")
        group = self._find_group(name)
        if group is None:
            if not self.creates_containers:
                raise NotFoundYet(
                    f"the group {name} is not on this DC yet",
                    reason=f"the group {name} was not found (retries exhausted)",
                )
            dn = child(self.samdb, self.dn, "CN", name)
            record = {
                "dn": dn,
                "objectClass": "group",
                "sAMAccountName": name,
                "description": "An ES4PS policy's group",
            }
            self._add_container(record, f"create the group {name}")
            logger.info("created the group %s", dn)
            # Made just now, here or by another process; or the name belongs to something outside the OU.
            group = self._find_group(name)
            if group is None:
                raise DirectoryRefused(f"the group name {name} is taken by another object of the domain")
        protected = str(group.get("adminCount", idx=0) or "0") != "0"
        if protected or str(group.get("isCriticalSystemObject", idx=0)) == "TRUE":
            raise DirectoryRefused(f"the group {name} is a privileged group of the domain")
        return group

    def groups(self, names: tuple[str, ...]) -> list[ldb.Message]:
        return [self.group(name) for name in names]

    def set_groups(self, account: ldb.Message, groups: list[ldb.Message], exclusive: bool) -> bool:
        """Make the account a member of `groups`; `exclusive`: and of no other group inside the managed OU.

        Groups outside the managed OU are never touched. Returns whether anything changed.
        """
        wanted = {group.dn.get_casefold(): group.dn for group in groups}
        current = {}
        for value in account.get("memberOf") or ():
            dn = ldb.Dn(self.samdb, str(value))
            if dn.is_child_of(self.dn):
                current[dn.get_casefold()] = dn
        changes = [(dn, ldb.FLAG_MOD_ADD) for key, dn in wanted.items() if key not in current]
        if exclusive:
            changes += [(dn, ldb.FLAG_MOD_DELETE) for key, dn in current.items() if key not in wanted]
        for group_dn, flag in changes:
            message = ldb.Message(group_dn)
            message["member"] = ldb.MessageElement(str(account.dn), flag, "member")
            try:
                self.samdb.modify(message)
            except ldb.LdbError as exc:
                if exc.args[0] not in _MEMBERSHIP_ALREADY_SO:
                    raise refusal(exc, "change the account's groups") from None
        return bool(changes)

    def ensure_unix(self, account: ldb.Message, unix: UnixAttributes, delete_if_no_room: bool) -> None:
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
            rid = _rid(account)
            uid = unix.uid_number(rid)
            if uid is None:
                if delete_if_no_room:
                    self.samdb.delete(account.dn)
                span = f"{unix.uid_range_start}-{unix.uid_range_end}"
                raise DirectoryRefused(f"no uidNumber left: the range {span} has no room for RID {rid}")
            missing["uidNumber"] = str(uid)
        if not missing:
            return
        message = ldb.Message(account.dn)
        for attribute, value in missing.items():
            message[attribute] = ldb.MessageElement(value, ldb.FLAG_MOD_REPLACE, attribute)
        self.modify(message, "set the Unix attributes")

    def ensure_group_gids(self, groups: list[ldb.Message], unix: UnixAttributes) -> None:
        """Give each group without one a gidNumber: the range's start plus its RID. Never changed once set.

        Added, not replaced: if another worker set one meanwhile, the add fails and theirs stays. A group
        whose RID does not fit the range gets none (logged): its members still log in, `id` leaves it out.
        """
        for group in groups:
            if group.get("gidNumber") is not None:
                continue
            gid = unix.uid_number(_rid(group))
            if gid is None:
                logger.warning("no gidNumber for %s: RID %s is outside the policy's range", group.dn, _rid(group))
                continue
            message = ldb.Message(group.dn)
            message["gidNumber"] = ldb.MessageElement(str(gid), ldb.FLAG_MOD_ADD, "gidNumber")
            try:
                self.samdb.modify(message)
            except ldb.LdbError as exc:
                if exc.args[0] != ldb.ERR_ATTRIBUTE_OR_VALUE_EXISTS:
                    raise refusal(exc, "give the group a gidNumber") from None


def _rid(found: ldb.Message) -> int:
    """The relative id of an object read with its objectSid: the last part of the SID."""
    return int(str(ndr_unpack(security.dom_sid, found["objectSid"][0])).rsplit("-", 1)[1])
