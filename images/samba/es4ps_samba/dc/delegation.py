"""`es4ps-samba-dc delegate`: an administrator's one step that readies a directory they run for ES4PS.

In external mode (docs/external-directory.md) ES4PS runs no DC: its worker
provisions into an OU of an Active Directory the organisation already runs,
as an account of that directory. This command, run once by one of its
administrators (over LDAPS, as an account that may change the OU's
permissions), gives that account exactly the rights the DC's entrypoint gives
its own worker (es4ps_samba.dc.access.delegate_ou): the OU (made when
missing), the rights on it, the denies on the binding line, the container of
deleted registrations. Nothing else in the directory is touched; running it
again changes nothing.

The worker's account must exist, outside the OU (inside it, the worker could
reset or delete itself). Its password is the administrator's business: the
operator only reads it from `spec.directory.external.credentialsSecretRef`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

from es4ps_contract.directory import MANAGED_OU, WORKER_ACCOUNT
from es4ps_contract.environment import Environment, SettingError, Variable

from ..samdb import AdministratorLogin
from .access import delegate_ou

VARIABLES = (
    Variable("ES4PS_LDAP_URL", "the directory: `ldaps://host:636`"),
    Variable("ES4PS_LDAP_CA_FILE", "the CA of its certificate"),
    Variable("ES4PS_REALM", "its realm, e.g. `CORP.EXAMPLE`"),
    Variable("ES4PS_NETBIOS_NAME", "its NetBIOS name (empty: the realm's first label)", ""),
    Variable("ES4PS_ADMIN_ACCOUNT", "the administrator running this step", "Administrator"),
    Variable("ES4PS_ADMIN_PASSWORD_FILE", "their password", secret_file=True),
    Variable("ES4PS_WORKER_ACCOUNT", "the account the worker binds as (it must exist, outside the OU)", WORKER_ACCOUNT),
    Variable("ES4PS_USERS_OU", "the OU given to ES4PS, relative to the domain, e.g. `OU=Registered`", MANAGED_OU),
)


@dataclass(frozen=True)
class DelegationConfig:
    login: AdministratorLogin
    worker_account: str
    users_ou: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DelegationConfig:
        env = Environment(VARIABLES, environ)
        login = AdministratorLogin.from_env(env)
        if not login.url.startswith("ldaps://"):
            raise SettingError(f"ES4PS_LDAP_URL {login.url!r}: the directory is reached with ldaps:// only")
        return cls(login=login, worker_account=env.text("ES4PS_WORKER_ACCOUNT"), users_ou=env.text("ES4PS_USERS_OU"))


def _account(samdb, name: str):
    import ldb

    found = samdb.search(
        base=samdb.domain_dn(),
        scope=ldb.SCOPE_SUBTREE,
        expression=f"(&(objectClass=user)(sAMAccountName={ldb.binary_encode(name)}))",
        attrs=["objectSid"],
    )
    if not found:
        raise SettingError(f"ES4PS_WORKER_ACCOUNT {name!r}: no such account in the directory; create it first")
    return found[0]


def delegate(config: DelegationConfig) -> str:
    """Converge the OU and the worker account's rights on it; returns the OU's DN."""
    import ldb
    from samba.dcerpc import security
    from samba.ndr import ndr_unpack

    samdb = config.login.open()
    ou_dn = ldb.Dn(samdb, f"{config.users_ou},{samdb.domain_dn()}")
    account = _account(samdb, config.worker_account)
    if account.dn.is_child_of(ou_dn):
        raise SettingError(f"the worker's account {account.dn} is inside {ou_dn}: it must live outside the OU")
    delegate_ou(samdb, str(ou_dn), str(ndr_unpack(security.dom_sid, account["objectSid"][0])))
    return str(ou_dn)


def main(environ: Mapping[str, str]) -> int:
    """The `delegate` command: 0 when the OU is ready, 2 on bad settings, 1 when the directory refused."""
    import ldb

    try:
        ou_dn = delegate(DelegationConfig.from_env(environ))
    except SettingError as exc:
        print(f"es4ps-samba-dc: {exc}", file=sys.stderr)
        return 2
    except ldb.LdbError as exc:
        hint = " (no such object: the OU's parent must exist)" if exc.args[0] == ldb.ERR_NO_SUCH_OBJECT else ""
        print(f"es4ps-samba-dc: the directory refused the delegation (LDAP error {exc.args[0]}){hint}", file=sys.stderr)
        return 1
    print(f"es4ps-samba-dc: {ou_dn} is delegated to the worker's account", flush=True)
    return 0
