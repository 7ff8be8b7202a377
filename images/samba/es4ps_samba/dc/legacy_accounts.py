"""`es4ps-samba-dc move-legacy-accounts FILE`: an administrator moves ES4PS-Containers' accounts to be claimed.

ES4PS-Containers' worker made each account in `CN=Users`, named by its
username, without `mail`. The portal adopts an account the product never bound
only in the managed OU, only for a create sent after the person proved the
address, and only when the account's `mail` is that address (docs/directory.md).
This step, run once by an administrator of the domain (the worker has no right
outside its OU and must never get one), moves each account the portal imported
(FILE: the list `es4ps-portal manage import_es4ps_containers --accounts-file`
wrote) from `CN=Users` into the managed OU and sets its `mail` from the old
portal's record. It writes no binding: the account stays the old one, with its
old password, until its person claims it.

What it cannot match it leaves alone and reports: no account of the name, an
account elsewhere than `CN=Users`, one already in the managed OU (bound, or of
another address), a disabled account (a claim would enable it), a privileged
account (a member of Domain Admins or another group with rights over the
domain: never put where the worker has rights), a `mail` of another address,
an address another account holds, a name the managed OU holds already.
Nothing is deleted.

Each account is written `mail` first, then moved: run again (or after being
stopped half-way) it finishes what is left and reports the moved ones as
`already moved`. The report is one JSON object on stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from es4ps_contract.directory import MANAGED_OU
from es4ps_contract.environment import Environment, SettingError, Variable

from ..managed import BINDING_ATTRIBUTE, privileged_memberships
from ..samdb import AdministratorLogin

VARIABLES = (
    Variable("ES4PS_LDAP_URL", "the domain's DC: `ldap://<its address>` (in dc0's Pod), or `ldaps://host:636`"),
    Variable("ES4PS_LDAP_CA_FILE", "the CA of an ldaps:// DC's certificate", ""),
    Variable("ES4PS_REALM", "the domain's realm"),
    Variable("ES4PS_NETBIOS_NAME", "its NetBIOS name (empty: the realm's first label)", ""),
    Variable("ES4PS_ADMIN_ACCOUNT", "the administrator running this step", "Administrator"),
    Variable("ES4PS_ADMIN_PASSWORD_FILE", "their password", secret_file=True),
    Variable("ES4PS_USERS_OU", "the managed OU, relative to the domain", MANAGED_OU),
)
# Where ES4PS-Containers' worker made its accounts (SamDB.newuser's default container).
LEGACY_CONTAINER = "CN=Users"

MOVED, ALREADY_MOVED = "moved", "already moved"
NO_ACCOUNT = "no account of this name in the directory"
ELSEWHERE = f"the account is not in {LEGACY_CONTAINER} (ES4PS-Containers did not make it there)"
IN_THE_OU = "the account is in the managed OU already, bound or with another address"
PRIVILEGED = "a privileged account (member of {groups}): never moved where the worker has rights"
OTHER_MAIL = "the account's mail is another address"
DISABLED = "the account is disabled in the directory (left alone: a claim would enable it)"
ADDRESS_HELD = "another account has this address"
NAME_HELD = "an object of this name is in the managed OU already"


@dataclass(frozen=True)
class MoveConfig:
    login: AdministratorLogin
    users_ou: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> MoveConfig:
        env = Environment(VARIABLES, environ)
        return cls(login=AdministratorLogin.from_env(env), users_ou=env.text("ES4PS_USERS_OU"))


def read_accounts(path: Path) -> list[tuple[str, str]]:
    """(username, address) of each entry of the import's accounts file; SettingError when it is not one."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        return [(str(entry["username"]), str(entry["email"])) for entry in entries]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise SettingError(f"{path}: not the accounts file of import_es4ps_containers ({type(exc).__name__})") from None


class _Domain:
    """The domain as this step reads and writes it, as the administrator."""

    def __init__(self, samdb, users_ou: str) -> None:
        import ldb

        self.samdb = samdb
        self.base = samdb.domain_dn()
        self.ou = ldb.Dn(samdb, f"{users_ou},{self.base}")
        self.legacy = ldb.Dn(samdb, f"{LEGACY_CONTAINER},{self.base}")
        self.domain_sid = str(samdb.get_domain_sid())

    def search(self, expression: str, attrs: list[str], base=None) -> list:
        import ldb

        scope = ldb.SCOPE_SUBTREE if base is None else ldb.SCOPE_BASE
        return list(self.samdb.search(base=base or self.base, scope=scope, expression=expression, attrs=attrs))

    def privileged(self, dn) -> list[str]:
        from samba.dcerpc import security
        from samba.ndr import ndr_unpack

        found = self.search("(objectClass=*)", ["tokenGroups", "objectSid"], base=dn)[0]
        sids = [str(ndr_unpack(security.dom_sid, v)) for v in [*found.get("tokenGroups", []), found["objectSid"][0]]]
        return privileged_memberships(sids, self.domain_sid)


def _why_not(domain: _Domain, account, username: str, email: str) -> str | None:
    """Why the account of `username` cannot be moved for `email` (None: it can)."""
    import ldb
    from samba.dsdb import UF_ACCOUNTDISABLE

    mail = str(account.get("mail", idx=0) or "")
    if account.dn.parent() != domain.legacy:
        return ELSEWHERE
    if groups := domain.privileged(account.dn):
        return PRIVILEGED.format(groups=", ".join(groups))
    if int(account["userAccountControl"][0]) & UF_ACCOUNTDISABLE:
        return DISABLED
    if mail and mail.casefold() != email.casefold():
        return OTHER_MAIL
    others = domain.search(f"(&(mail={ldb.binary_encode(email)})(!(sAMAccountName={ldb.binary_encode(username)})))", [])
    if others:
        return ADDRESS_HELD
    try:
        domain.search("(objectClass=*)", [], base=_in_the_ou(domain, account))
    except ldb.LdbError as exc:
        if exc.args[0] != ldb.ERR_NO_SUCH_OBJECT:
            raise
        return None
    return NAME_HELD


def _in_the_ou(domain: _Domain, account):
    """The account's DN once moved: its own name (escaped as it is) under the managed OU."""
    import ldb

    target = ldb.Dn(domain.samdb, str(account.dn))
    target.remove_base_components(len(domain.legacy))
    target.add_base(domain.ou)
    return target


def move_one(domain: _Domain, username: str, email: str) -> str:
    """Move one account (mail first, then the move): MOVED, ALREADY_MOVED, or why it stays where it is."""
    import ldb

    attributes = ["mail", "userAccountControl", BINDING_ATTRIBUTE]
    found = domain.search(f"(&(objectClass=user)(sAMAccountName={ldb.binary_encode(username)}))", attributes)
    if not found:
        return NO_ACCOUNT
    account = found[0]
    if account.dn.is_child_of(domain.ou):
        mail = str(account.get("mail", idx=0) or "")
        bound = BINDING_ATTRIBUTE in account
        return ALREADY_MOVED if mail.casefold() == email.casefold() and not bound else IN_THE_OU
    if why := _why_not(domain, account, username, email):
        return why
    target = _in_the_ou(domain, account)
    if "mail" not in account:
        message = ldb.Message(account.dn)
        message["mail"] = ldb.MessageElement(email, ldb.FLAG_MOD_REPLACE, "mail")
        domain.samdb.modify(message)
    domain.samdb.rename(account.dn, target)
    return MOVED


def move_accounts(config: MoveConfig, accounts: list[tuple[str, str]]) -> dict:
    """Move every account of `accounts` that can be; the report: {"moved": [...], "already_moved": [...],
    "skipped": [{"username", "reason"}]}."""
    domain = _Domain(config.login.open(), config.users_ou)
    report: dict = {"moved": [], "already_moved": [], "skipped": []}
    for username, email in accounts:
        outcome = move_one(domain, username, email)
        if outcome == MOVED:
            report["moved"].append(username)
        elif outcome == ALREADY_MOVED:
            report["already_moved"].append(username)
        else:
            report["skipped"].append({"username": username, "reason": outcome})
    return report


def main(environ: Mapping[str, str], accounts_file: str) -> int:
    """The `move-legacy-accounts` command: 0 with the report, 2 on bad settings, 1 when the directory refused."""
    import ldb

    try:
        config = MoveConfig.from_env(environ)
        report = move_accounts(config, read_accounts(Path(accounts_file)))
    except SettingError as exc:
        print(f"es4ps-samba-dc: {exc}", file=sys.stderr)
        return 2
    except ldb.LdbError as exc:
        print(
            f"es4ps-samba-dc: the directory refused a step (LDAP error {exc.args[0]}: {exc.args[-1]})", file=sys.stderr
        )
        return 1
    print(json.dumps(report, indent=2), flush=True)
    return 0
