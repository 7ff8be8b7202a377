"""The two ways this image opens a DC's directory (SamDB): its files as the system, or a DC over LDAP as an account.

Every module of the DC side, the worker and the backup steps opens its SamDB
through one of these, so how a connection is made is written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from es4ps_contract.environment import Environment


def open_samdb_at(data_dir: Path):
    """The sam.ldb of the DC directory `data_dir` (etc/smb.conf, private/sam.ldb) as the system (root, no
    network): for converging before samba serves, beside a running samba as samba-tool does, or on a copy."""
    from samba.auth import system_session
    from samba.param import LoadParm
    from samba.samdb import SamDB

    lp = LoadParm()
    lp.load(str(data_dir / "etc" / "smb.conf"))
    return SamDB(url=str(data_dir / "private" / "sam.ldb"), session_info=system_session(), lp=lp)


def open_remote_samdb(url: str, realm: str, netbios_name: str, username: str, password: str, ca_file: str = ""):
    """A connection to the DC at `url` (e.g. `ldap://127.0.0.1`) as `username` of the domain.

    No smb.conf: the worker runs in its own container and the operator's Jobs
    on their own, without the DC's files; the realm and workgroup are enough.
    With `ca_file` (an `ldaps://` URL: a directory outside the Pod), the DC's
    certificate must be issued by that CA and name the URL's host (a DNS name:
    Samba checks no address), and the account binds with a simple bind of its
    user principal name inside TLS: Microsoft AD and Samba both refuse SASL
    signing or sealing inside TLS, and Samba's client asks for one.
    """
    from samba.credentials import Credentials
    from samba.param import LoadParm
    from samba.samdb import SamDB

    lp = LoadParm()
    lp.set("realm", realm.upper())
    lp.set("workgroup", netbios_name.upper())
    if ca_file:
        lp.set("tls cafile", ca_file)
        lp.set("tls verify peer", "ca_and_name")
    credentials = Credentials()
    credentials.guess(lp)
    credentials.set_domain(netbios_name.upper())
    credentials.set_username(username)
    credentials.set_password(password)
    if ca_file:
        credentials.set_bind_dn(f"{username}@{realm.lower()}")
    return SamDB(url=url, lp=lp, credentials=credentials)


@dataclass(frozen=True)
class AdministratorLogin:
    """How an administrator's one-off step (`delegate`, `move-legacy-accounts`) reaches the domain: the
    variables ES4PS_LDAP_URL, ES4PS_LDAP_CA_FILE, ES4PS_REALM, ES4PS_NETBIOS_NAME, ES4PS_ADMIN_ACCOUNT and
    ES4PS_ADMIN_PASSWORD_FILE of the step's own table (each step describes them for its use)."""

    url: str
    ca_file: str
    realm: str
    netbios_name: str
    account: str
    password: str = field(repr=False)

    @classmethod
    def from_env(cls, env: Environment) -> AdministratorLogin:
        realm = env.text("ES4PS_REALM").upper()
        return cls(
            url=env.text("ES4PS_LDAP_URL"),
            ca_file=env.text("ES4PS_LDAP_CA_FILE"),
            realm=realm,
            netbios_name=env.text("ES4PS_NETBIOS_NAME").upper() or realm.split(".")[0],
            account=env.text("ES4PS_ADMIN_ACCOUNT"),
            password=env.file_text("ES4PS_ADMIN_PASSWORD_FILE"),
        )

    def open(self):
        """The SamDB of the domain as this administrator."""
        return open_remote_samdb(self.url, self.realm, self.netbios_name, self.account, self.password, self.ca_file)
