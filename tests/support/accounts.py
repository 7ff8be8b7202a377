"""Checks and task builders shared by the directory tests (and usable by any test with the service fixtures)."""

from __future__ import annotations

import ssl
import uuid

import ldap3
import ldb
from es4ps_contract.events import ResultEvent
from es4ps_contract.tasks import CreateUser, Task

from .provisioning import TaskClient
from .services import SambaDC

# A password the domain accepts (complexity on, not containing the test names).
PASSWORD = "Corr3ct-Horse!battery"  # noqa: S105 - a test account's password


def password_authenticates(dc: SambaDC, username: str, password: str, address: str | None = None) -> bool:
    """True when a simple bind as the user over LDAPS (the certificate checked against the test CA) succeeds."""
    tls = ldap3.Tls(ca_certs_file=str(dc.ca_file), validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(address or dc.address, port=636, use_ssl=True, tls=tls, connect_timeout=5)
    connection = ldap3.Connection(server, user=f"{username}@{dc.dns_domain}", password=password)
    try:
        return connection.bind()
    finally:
        connection.unbind()


ACCOUNT_ATTRIBUTES = ["userAccountControl", "givenName", "sn", "displayName", "mail", "userPrincipalName"]


def find_account(dc: SambaDC, username: str, attrs: list[str] = ACCOUNT_ATTRIBUTES) -> ldb.Message | None:
    """The account named `username` anywhere in the domain, or None."""
    result = dc.samdb().search(
        base=dc.base_dn,
        scope=ldb.SCOPE_SUBTREE,
        expression=f"(sAMAccountName={ldb.binary_encode(username)})",
        attrs=attrs,
    )
    return result[0] if len(result) else None


def binding(username: str, registration: str | None = None) -> dict[str, str]:
    """The registration fields of a test account's tasks: one registration per username unless told otherwise."""
    registration = registration or str(uuid.uuid5(uuid.NAMESPACE_URL, f"es4ps-test:{username}"))
    return {"registration": registration, "email": f"{username}@acme.example"}


def create_task(client: TaskClient, username: str, password: str = PASSWORD, **fields: str) -> CreateUser:
    """A create task for `username` with the password sealed; `fields` override names, address and registration."""
    values = {"given_name": "Ana", "surname": "Example", **binding(username), **fields}
    values.setdefault("sealed_password", client.seal(username, password))
    return CreateUser(username, **values)


def run(client: TaskClient, task: Task, timeout_s: float = 60) -> ResultEvent:
    """Publish `task` and return its result event."""
    return client.wait_for(client.submit(task), timeout_s)
