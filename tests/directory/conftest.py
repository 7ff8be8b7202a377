"""Fixtures of the directory tests; the services (rabbitmq, samba_dc, ...) come from the root conftest."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from support.provisioning import TaskClient

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
