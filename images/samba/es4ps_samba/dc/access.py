"""The worker's least privilege: its own account, with rights delegated on the managed OU only.

On every start, before samba runs, the entrypoint converges in the local
sam.ldb (as root, no network, no password needed):

- the managed OU (`ES4PS_USERS_OU`, default `OU=ES4PS`);
- the worker's account (`ES4PS_WORKER_ACCOUNT`) in CN=Users, outside the OU
  it manages, so the worker can never reset, enable or delete itself; its
  password never expires (a worker must not stop after 42 days);
- ACEs on the OU, inherited below it, that let that account do exactly what
  the tasks need: create and delete users, groups and OUs inside the OU, reset
  the password of those users, write userAccountControl and the
  allow-listed attributes (`WRITABLE_USER_ATTRIBUTES`, the Unix ones and the
  RDN for moves between the OU's sub-OUs included), and the members and
  gidNumber of groups inside the OU (a policy's groups). Nothing outside the OU: not Domain Admins, not
  Administrator, not accounts staff made elsewhere;
- on the same OU, after those, ACEs denying everyone (and SELF, said
  explicitly) the writing of the accounts' binding line (`BINDING_ATTRIBUTE`):
  ACEs apply in order, so the worker's allow comes first and wins, and the
  deny stops everyone else whose right comes from above (a delegation on the
  domain, the built-in Administrators). SELF has no right to it anyway (no
  property set holds it); Domain Admins keep theirs (the user class grants it
  on the object itself), which is why the line carries a MAC as well;
- the container of deleted registrations (`DELETED_REGISTRATIONS`) under the
  OU, in which only the worker's account may create and delete records;
- the computers OU (`COMPUTERS_OU`) under the managed OU (a DC that joins
  has it by replication already), where the worker's
  rights grow to computer objects, and there only: create and delete them,
  reset their password, write userAccountControl, their binding line and
  their RDN (a move between the OU's sub-OUs); the same deny of the binding
  line to everyone else (the computers themselves included) as for accounts;
- the worker's state directory on the volume, owned by the worker's user;
- the domain's `ms-DS-MachineAccountQuota` at 0, unless the DC leaves the
  domain-wide settings alone (`ES4PS_DOMAIN_SETTINGS` `when-only-ours`, while
  the old DCs of a domain joined are in it): no ordinary user adds computers to the domain
  (AD's default lets everyone add ten; Samba 4.17 refuses them anyway, an
  external or later directory might not). Computers are added by
  administrators or pre-staged by staff.

Each step reads first and writes only what differs, so a restart changes
nothing. The account's password is set again only when the mounted one
differs from the one last set (a salted digest on the volume says which).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from es4ps_contract.directory import COMPUTERS_OU

from ..managed import BINDING_ATTRIBUTE, DELETED_REGISTRATION_CLASS, DELETED_REGISTRATIONS
from ..samdb import open_samdb_at
from .config import DCConfig
from .peers import writes_domain_settings

# Attributes of managed user objects the worker may write (besides the password and userAccountControl).
WRITABLE_USER_ATTRIBUTES = (
    "givenName",
    "sn",
    "displayName",
    "mail",
    "userPrincipalName",
    BINDING_ATTRIBUTE,  # the registration the account belongs to (see the worker's binding)
    "info",  # where that line lived before: the worker empties it when it moves the line
    "uidNumber",
    "gidNumber",
    "loginShell",
    "unixHomeDirectory",
    # The RDN: moving an account to another policy's OU renames it (also needs create-child there).
    "name",
    "cn",
)
# Object classes the worker may create and delete inside the managed OU.
CREATABLE_CLASSES = ("user", "group", "organizationalUnit")
# Attributes of computer objects in the computers OU the worker may write (besides their password).
WRITABLE_COMPUTER_ATTRIBUTES = ("userAccountControl", BINDING_ATTRIBUTE, "name", "cn")
UF_DONT_EXPIRE_PASSWD = 0x10000
_MACHINE_ACCOUNT_QUOTA = "ms-DS-MachineAccountQuota"
_PASSWORD_DIGEST_NAME = ".es4ps-worker-password"  # noqa: S105 (a file name)


def _schema_guid(samdb, display_name: str) -> str:
    """The schemaIDGUID of an attribute or class, by its LDAP display name."""
    import ldb
    from samba.dcerpc import misc
    from samba.ndr import ndr_unpack

    found = samdb.search(
        base=samdb.get_schema_basedn(),
        scope=ldb.SCOPE_ONELEVEL,
        expression=f"(lDAPDisplayName={ldb.binary_encode(display_name)})",
        attrs=["schemaIDGUID"],
    )
    return str(ndr_unpack(misc.GUID, found[0]["schemaIDGUID"][0]))


def _extended_right(samdb, name: str) -> str:
    import ldb

    found = samdb.search(
        base=f"CN={name},CN=Extended-Rights,{samdb.get_config_basedn()}", scope=ldb.SCOPE_BASE, attrs=["rightsGuid"]
    )
    return str(found[0]["rightsGuid"][0])


def delegated_aces(samdb, sid: str) -> list[str]:
    """The ACEs (SDDL) the managed OU carries for the worker's SID (they go first in its list)."""
    user = _schema_guid(samdb, "user")
    group = _schema_guid(samdb, "group")
    # Create and delete these classes here and in every OU below (container-inherit).
    aces = [f"(OA;CI;CCDC;{_schema_guid(samdb, cls)};;{sid})" for cls in CREATABLE_CLASSES]
    # On user objects below (inherit-only, for users): reset the password, write the allowed attributes.
    aces.append(f"(OA;CIIO;CR;{_extended_right(samdb, 'User-Force-Change-Password')};{user};{sid})")
    for attribute in ("userAccountControl", *WRITABLE_USER_ATTRIBUTES):
        aces.append(f"(OA;CIIO;WP;{_schema_guid(samdb, attribute)};{user};{sid})")
    # On groups below: their members and their Unix group number (a policy's groups).
    for attribute in ("member", "gidNumber"):
        aces.append(f"(OA;CIIO;WP;{_schema_guid(samdb, attribute)};{group};{sid})")
    return aces


def computer_aces(samdb, sid: str) -> list[str]:
    """The ACEs (SDDL) the computers OU carries for the worker's SID: on computer objects only (they go first).

    An ACE inherited by "user" objects does not reach computers (an ACE names the class it is inherited by, not
    its subclasses), so the account ACEs of the managed OU give the worker nothing on them.
    """
    computer = _schema_guid(samdb, "computer")
    aces = [
        f"(OA;CI;CCDC;{computer};;{sid})",
        f"(OA;CIIO;CR;{_extended_right(samdb, 'User-Force-Change-Password')};{computer};{sid})",
    ]
    for attribute in WRITABLE_COMPUTER_ATTRIBUTES:
        aces.append(f"(OA;CIIO;WP;{_schema_guid(samdb, attribute)};{computer};{sid})")
    return aces


def binding_denies(samdb) -> list[str]:
    """The ACEs (SDDL) that keep everyone but the worker from writing the binding line of accounts and computers
    (they go last: a computer inherits the worker's allow from the nearer computers OU first)."""
    attribute = _schema_guid(samdb, BINDING_ATTRIBUTE)
    return [
        f"(OD;CIIO;WP;{attribute};{_schema_guid(samdb, cls)};{trustee})"
        for cls in ("user", "computer")
        for trustee in ("PS", "WD")
    ]


def _ensure_computers_ou(samdb, ou_dn: str, sid: str) -> None:
    """The computers OU under the managed OU, with the worker's rights on computer objects in it."""
    from samba.sd_utils import SDUtils

    dn = f"{COMPUTERS_OU},{ou_dn}"
    _ensure_ou(samdb, dn, "Computers ES4PS pre-staged (managed by ES4PS)")
    SDUtils(samdb).dacl_prepend_aces(dn, "".join(computer_aces(samdb, sid)))


def _ensure_deleted_registrations(samdb, ou_dn: str, sid: str) -> None:
    """The container of deleted registrations, where the worker alone creates and deletes records."""
    import ldb
    from samba.sd_utils import SDUtils

    dn = f"{DELETED_REGISTRATIONS},{ou_dn}"
    try:
        samdb.add({"dn": dn, "objectClass": "container", "description": "Registrations ES4PS deleted"})
    except ldb.LdbError as exc:
        if exc.args[0] != ldb.ERR_ENTRY_ALREADY_EXISTS:
            raise
    SDUtils(samdb).dacl_append_aces(dn, f"(OA;;CCDC;{_schema_guid(samdb, DELETED_REGISTRATION_CLASS)};;{sid})")


def _ensure_ou(samdb, ou_dn: str, description: str) -> None:
    import ldb

    try:
        samdb.add({"dn": ou_dn, "objectClass": "organizationalUnit", "description": description})
    except ldb.LdbError as exc:
        if exc.args[0] != ldb.ERR_ENTRY_ALREADY_EXISTS:
            raise


def _password_digest(password: str, salt: bytes) -> str:
    return salt.hex() + ":" + hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 100_000).hex()


def _password_already_set(digest_file: Path, password: str) -> bool:
    try:
        stored = digest_file.read_text().strip()
        return hmac.compare_digest(_password_digest(password, bytes.fromhex(stored.partition(":")[0])), stored)
    except (OSError, ValueError):
        return False


def _ensure_account(samdb, config: DCConfig) -> str:
    """Create or converge the worker's account; return its SID."""
    import ldb
    from samba.dcerpc import security
    from samba.ndr import ndr_unpack

    password = config.worker_password()
    name = ldb.binary_encode(config.worker_account)
    search = f"(&(objectClass=user)(sAMAccountName={name}))"
    digest_file = config.data_dir / _PASSWORD_DIGEST_NAME
    already_set = _password_already_set(digest_file, password)
    found = samdb.search(base=samdb.domain_dn(), expression=search, attrs=["objectSid", "userAccountControl"])
    if not found:
        samdb.newuser(
            config.worker_account,
            password,
            description="The ES4PS provisioning worker: rights delegated on the managed OU only",
        )
        found = samdb.search(base=samdb.domain_dn(), expression=search, attrs=["objectSid", "userAccountControl"])
    elif not already_set:
        samdb.setpassword(search, password)
    if not already_set:
        descriptor = os.open(digest_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(_password_digest(password, secrets.token_bytes(16)) + "\n")
    if not int(found[0]["userAccountControl"][0]) & UF_DONT_EXPIRE_PASSWD:
        samdb.setexpiry(search, 0, no_expiry_req=True)
    return str(ndr_unpack(security.dom_sid, found[0]["objectSid"][0]))


def _ensure_state_dir(config: DCConfig) -> None:
    state = config.worker_state_dir
    state.mkdir(mode=0o700, exist_ok=True)
    if (state.stat().st_uid, state.stat().st_gid) != (config.worker_uid, config.worker_uid):
        os.chown(state, config.worker_uid, config.worker_uid)
    state.chmod(0o700)


def close_machine_account_quota(samdb) -> bool:
    """Set the domain's ms-DS-MachineAccountQuota to 0 unless it is already; returns whether it wrote."""
    import ldb

    domain = samdb.domain_dn()
    found = samdb.search(base=domain, scope=ldb.SCOPE_BASE, attrs=[_MACHINE_ACCOUNT_QUOTA])[0]
    if str(found.get(_MACHINE_ACCOUNT_QUOTA, idx=0)) == "0":
        return False
    message = ldb.Message(ldb.Dn(samdb, str(domain)))
    message[_MACHINE_ACCOUNT_QUOTA] = ldb.MessageElement("0", ldb.FLAG_MOD_REPLACE, _MACHINE_ACCOUNT_QUOTA)
    samdb.modify(message)
    return True


def delegate_ou(samdb, ou_dn: str, sid: str) -> None:
    """Converge the OU `ou_dn` (made when missing), the rights of the account `sid` on it, the denies that keep
    everyone else from the binding line, the container of deleted registrations and the computers OU with the
    account's rights on computer objects there: what the entrypoint does for its own worker and
    `es4ps-samba-dc delegate` (es4ps_samba.dc.delegation) in a directory one runs."""
    from samba.sd_utils import SDUtils

    _ensure_ou(samdb, ou_dn, "Accounts people registered themselves (managed by ES4PS)")
    # Order matters (module docstring): the worker's allows first, the denies last.
    SDUtils(samdb).dacl_prepend_aces(ou_dn, "".join(delegated_aces(samdb, sid)))
    SDUtils(samdb).dacl_append_aces(ou_dn, "".join(binding_denies(samdb)))
    _ensure_deleted_registrations(samdb, ou_dn, sid)
    _ensure_computers_ou(samdb, ou_dn, sid)


def ensure_worker_access(config: DCConfig) -> None:
    """Converge the managed OU, the worker's account, its delegated rights, the machine account quota (0) and
    the worker's state directory."""
    samdb = open_samdb_at(config.data_dir)
    ou_dn = f"{config.users_ou},{samdb.domain_dn()}"
    samdb.transaction_start()
    try:
        # The computers OU too, like the managed OU: a DC that joins has both by replication already.
        delegate_ou(samdb, ou_dn, _ensure_account(samdb, config))
        if writes_domain_settings(config, samdb) and close_machine_account_quota(samdb):
            print("es4ps-samba-dc: ms-DS-MachineAccountQuota set to 0", flush=True)
    except BaseException:
        samdb.transaction_cancel()
        raise
    samdb.transaction_commit()
    _ensure_state_dir(config)
