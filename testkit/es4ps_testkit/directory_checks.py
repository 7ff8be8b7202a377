"""Asking a deployed DC directly, as a domain computer would: an LDAP bind over LDAPS and a Kerberos login.

Used by the e2e tests against DCs in Pods: the directory's own answer, never the
portal's or the operator's opinion of it.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ldap3


def _ldaps(address: str, ca_file: Path, tls_name: str) -> ldap3.Server:
    tls = ldap3.Tls(ca_certs_file=str(ca_file), validate=ssl.CERT_REQUIRED, valid_names=[tls_name])
    return ldap3.Server(f"ldaps://{address}:636", tls=tls, connect_timeout=10)


def ldap_bind(address: str, ca_file: Path, tls_name: str, user: str, password: str) -> bool:
    """A simple bind as `user` (user@realm) over LDAPS, the DC's certificate checked for `tls_name`."""
    connection = ldap3.Connection(_ldaps(address, ca_file, tls_name), user=user, password=password, receive_timeout=20)
    try:
        return connection.bind()
    except ldap3.core.exceptions.LDAPException:
        return False
    finally:
        connection.unbind()


@contextmanager
def admin_connection(
    address: str, ca_file: Path, tls_name: str, realm: str, password: str
) -> Iterator[ldap3.Connection]:
    """The domain's Administrator over LDAPS, for reading the topology."""
    user = f"Administrator@{realm.lower()}"
    connection = ldap3.Connection(_ldaps(address, ca_file, tls_name), user=user, password=password, auto_bind=True)
    try:
        yield connection
    finally:
        connection.unbind()


def kerberos_login(address: str, realm: str, username: str, password: str) -> bool:
    """`kinit username@REALM` against the KDC at `address` only (MIT Kerberos, its own config and cache)."""
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "krb5.conf"
        config.write_text(
            f"[libdefaults]\n default_realm = {realm}\n dns_lookup_kdc = false\n dns_lookup_realm = false\n"
            f" rdns = false\n\n[realms]\n {realm} = {{\n  kdc = {address}\n }}\n"
        )
        result = subprocess.run(
            ["kinit", f"{username}@{realm}"],
            input=password + "\n",
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "KRB5_CONFIG": str(config), "KRB5CCNAME": f"FILE:{directory}/ccache"},
        )
        return result.returncode == 0
