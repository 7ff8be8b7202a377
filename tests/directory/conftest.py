"""Fixtures of the directory tests; the services come from tests/support/service_fixtures.py."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from support.provisioning import TaskClient
from support.service_fixtures import *  # noqa: F403 - the service fixtures, by name

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
