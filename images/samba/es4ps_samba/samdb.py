"""The two ways this image opens a DC's directory (SamDB): its files as the system, or a DC over LDAP as an account.

Every module of the DC side, the worker and the backup steps opens its SamDB
through one of these, so how a connection is made is written once.
"""

from __future__ import annotations

from pathlib import Path


def open_samdb_at(data_dir: Path):
    """The sam.ldb of the DC directory `data_dir` (etc/smb.conf, private/sam.ldb) as the system (root, no
    network): for converging before samba serves, beside a running samba as samba-tool does, or on a copy."""
    from samba.auth import system_session
    from samba.param import LoadParm
    from samba.samdb import SamDB

    lp = LoadParm()
    lp.load(str(data_dir / "etc" / "smb.conf"))
    return SamDB(url=str(data_dir / "private" / "sam.ldb"), session_info=system_session(), lp=lp)


def open_remote_samdb(url: str, realm: str, netbios_name: str, username: str, password: str):
    """A connection to the DC at `url` (e.g. `ldap://127.0.0.1`) as `username` of the domain.

    No smb.conf: the worker runs in its own container and the operator's Jobs
    on their own, without the DC's files; the realm and workgroup are enough.
    """
    from samba.credentials import Credentials
    from samba.param import LoadParm
    from samba.samdb import SamDB

    lp = LoadParm()
    lp.set("realm", realm.upper())
    lp.set("workgroup", netbios_name.upper())
    credentials = Credentials()
    credentials.guess(lp)
    credentials.set_domain(netbios_name.upper())
    credentials.set_username(username)
    credentials.set_password(password)
    return SamDB(url=url, lp=lp, credentials=credentials)
