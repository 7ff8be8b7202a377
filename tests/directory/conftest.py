"""Fixtures of the directory tests; the services come from tests/support/service_fixtures.py."""

from __future__ import annotations

import itertools
import os
import ssl
from collections.abc import Iterator

import ldap3
import pytest
from support.provisioning import TaskClient
from support.service_fixtures import *  # noqa: F403 - the service fixtures, by name
from support.services import SambaDC

_serial = itertools.count()


@pytest.fixture(scope="session")
def task_client(portal_env: dict[str, str]) -> Iterator[TaskClient]:
    client = TaskClient(portal_env)
    yield client
    client.close()


@pytest.fixture
def username() -> str:
    """A username no other test of any session uses."""
    return f"t{os.getpid() % 100000}x{next(_serial)}"


def password_authenticates(dc: SambaDC, username: str, password: str) -> bool:
    """True when a simple bind as the user over LDAPS (checked against the test CA) succeeds."""
    tls = ldap3.Tls(ca_certs_file=str(dc.ca_file), validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(dc.address, port=636, use_ssl=True, tls=tls, connect_timeout=5)
    connection = ldap3.Connection(server, user=f"{username}@{dc.dns_domain}", password=password)
    try:
        return connection.bind()
    finally:
        connection.unbind()
